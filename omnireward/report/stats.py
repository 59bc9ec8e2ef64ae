"""The numbers a report plots: bootstrap intervals, the tie-threshold curve, margin histograms
and calibration (temperature fitted on the data, expected calibration error).

Labels are signs as in `omnireward.metrics`: +1 response1, -1 response2, 0 tie. Every function
takes plain sequences and returns plain Python numbers and lists, ready for summary.json.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit

from omnireward.metrics import accuracy_at, accuracy_with_ties, accuracy_without_ties  # noqa: F401 (re-exported)

N_BOOTSTRAP = 1000
CALIBRATION_BINS = 10
MARGIN_BINS = 30


def _arrays(margins, labels) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(margins, dtype=float), np.asarray(labels, dtype=int)


def accuracy_with_ties_fast(margins, labels) -> float | None:
    """The tie-calibrated accuracy of `metrics.accuracy_with_ties` (best ε), as a bootstrap statistic."""
    return accuracy_with_ties(margins, labels)[0]


def bootstrap_interval(
    margins, labels, statistic, *, n: int = N_BOOTSTRAP, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """Percentile bootstrap interval of `statistic(margins, labels)` over pairs resampled with replacement.

    Resamples where the statistic is undefined (e.g. no non-tie pair drawn) are skipped; None when
    fewer than half of them are defined or there are no pairs.
    """
    m, y = _arrays(margins, labels)
    if len(m) == 0:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(m), len(m))
        v = statistic(m[idx], y[idx])
        if v is not None:
            values.append(v)
    if len(values) < n / 2:
        return None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def tie_curve(margins, labels, chosen_eps: float | None, points: int = 101) -> dict | None:
    """Accuracy as a function of the tie threshold ε on a grid from 0 to max |margin|, plus the chosen ε."""
    m, y = _arrays(margins, labels)
    if len(m) == 0:
        return None
    top = float(np.abs(m).max())
    grid = set(np.linspace(0.0, top, points).tolist())
    if chosen_eps is not None:
        grid.add(float(chosen_eps))
    grid = sorted(grid)
    return {
        "eps": grid,
        "accuracy": [accuracy_at(m, y, e) for e in grid],
        "chosen_eps": chosen_eps,
        "chosen_accuracy": accuracy_at(m, y, chosen_eps),
        "no_tie_accuracy": accuracy_at(m, y, None),
    }


def margin_histogram(margins, labels, bins: int = MARGIN_BINS) -> dict | None:
    """Counts of margins per gold label over shared bin edges, and each label's median margin."""
    m, y = _arrays(margins, labels)
    if len(m) == 0:
        return None
    lo, hi = float(m.min()), float(m.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    names = {1: "response1", -1: "response2", 0: "tie"}
    counts, medians = {}, {}
    for sign, name in names.items():
        sel = m[y == sign]
        if len(sel):
            counts[name] = np.histogram(sel, bins=edges)[0].astype(int).tolist()
            medians[name] = float(np.median(sel))
    return {"bin_edges": edges.tolist(), "counts": counts, "median": medians}


def fit_temperature(margins, targets) -> float:
    """T > 0 minimising the log loss of σ(margin / T) against binary targets (1: response1 preferred)."""
    m = np.asarray(margins, dtype=float)
    t = np.asarray(targets, dtype=float)
    if not np.any(m != 0):
        return 1.0

    def nll(log_t: float) -> float:
        z = m / np.exp(log_t)
        # log(1 + e^-z) for the positives, log(1 + e^z) for the negatives, written stably
        return float(np.mean(np.logaddexp(0.0, -z) * t + np.logaddexp(0.0, z) * (1 - t)))

    res = minimize_scalar(nll, bounds=(-12.0, 12.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def reliability(probs, targets, bins: int = CALIBRATION_BINS) -> tuple[list[dict], float]:
    """Equal-width bins over P(response1): per bin count, mean predicted P and observed share of
    response1; and the expected calibration error Σ (n_b / n) |share_b - mean_b|."""
    p = np.asarray(probs, dtype=float)
    t = np.asarray(targets, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        row = {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n, "mean_p": None, "share_response1": None}
        if n:
            row["mean_p"] = float(p[sel].mean())
            row["share_response1"] = float(t[sel].mean())
            ece += n / len(p) * abs(row["share_response1"] - row["mean_p"])
        out.append(row)
    return out, float(ece)


def calibration(margins, labels, bins: int = CALIBRATION_BINS) -> dict | None:
    """Reliability of σ(margin / T) as P(response1 preferred) on the non-tie pairs, T fitted on them.

    Also gives the ECE at T = 1 (the raw Bradley–Terry probability) for comparison.
    """
    m, y = _arrays(margins, labels)
    keep = y != 0
    if not keep.any():
        return None
    m, t = m[keep], (y[keep] == 1).astype(float)
    temp = fit_temperature(m, t)
    table, ece = reliability(expit(m / temp), t, bins)
    _, ece_raw = reliability(expit(m), t, bins)
    return {"n": int(keep.sum()), "temperature": temp, "ece": ece, "ece_at_t1": ece_raw, "bins": table}
