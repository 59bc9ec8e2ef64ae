"""The statistics of scores: pairwise accuracy with and without ties (tie calibration, arXiv 2305.14324),
Kendall's τ-b, and the agreement of two scorings of the same records."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

LABEL_SIGN = {"response1": 1, "response2": -1, "tie": 0}


def accuracy_without_ties(margins, labels) -> float | None:
    """Share of non-tie pairs whose margin sign matches the label; margin 0 counts as wrong."""
    m = np.asarray(margins, dtype=float)
    y = np.asarray(labels, dtype=int)
    keep = y != 0
    if not keep.any():
        return None
    return float((np.sign(m[keep]) == y[keep]).mean())


def accuracy_with_ties(margins, labels) -> tuple[float | None, float | None]:
    """Best accuracy over all pairs when |margin| <= ε is called a tie; returns (accuracy, ε).

    ε = None means calling no pair a tie is best. Every distinct |margin| is a candidate ε, so
    the answer is exact; O(n log n) by sorting, vectorised (bootstrap intervals call it often).
    """
    m = np.asarray(margins, dtype=float)
    y = np.asarray(labels, dtype=int)
    n = len(m)
    if n == 0:
        return None, None
    a = np.abs(m)
    # Contribution of each pair when predicted tie vs not.
    correct_if_tie = (y == 0).astype(int)
    correct_if_not = ((np.sign(m) == y) & (y != 0)).astype(int)
    base = correct_if_not.sum()  # ε below every |margin|: nothing is a tie
    order = np.argsort(a, kind="stable")
    a_sorted = a[order]
    # Only thresholds at the end of a run of equal |margin| are valid cut points.
    last_of_run = np.append(a_sorted[1:] != a_sorted[:-1], True)
    cuts = np.nonzero(last_of_run)[0]
    acc = base + np.cumsum((correct_if_tie - correct_if_not)[order])[cuts]
    best = int(np.argmax(acc))  # the first (smallest) ε among equally good ones
    if acc[best] > base:
        return float(acc[best] / n), float(a_sorted[cuts[best]])
    return float(base / n), None


def accuracy_at(margins, labels, eps: float | None) -> float | None:
    """Three-way accuracy when |margin| <= eps is called a tie (eps None: no pair is a tie)."""
    m = np.asarray(margins, dtype=float)
    y = np.asarray(labels, dtype=int)
    if len(m) == 0:
        return None
    tie = np.zeros(len(m), dtype=bool) if eps is None else np.abs(m) <= eps
    correct = np.where(tie, y == 0, (np.sign(m) == y) & (y != 0))
    return float(correct.mean())


def summarize(margins, labels, tasks=None) -> dict:
    """Summary used by `score` and `eval`: n, both accuracies, ε, and the same per task."""
    margins = list(margins)
    labels = [LABEL_SIGN[lab] if isinstance(lab, str) else int(lab) for lab in labels]
    out = _one(margins, labels)
    if tasks is not None:
        groups = defaultdict(list)
        for i, t in enumerate(tasks):
            groups[t or "unknown"].append(i)
        out["per_task"] = {
            t: _one([margins[i] for i in idx], [labels[i] for i in idx]) for t, idx in sorted(groups.items())
        }
    return out


def _one(margins, labels) -> dict:
    acc_t, eps = accuracy_with_ties(margins, labels)
    return {
        "n": len(margins),
        "n_ties": int(sum(1 for y in labels if y == 0)),
        "accuracy_without_ties": accuracy_without_ties(margins, labels),
        "accuracy_with_ties": acc_t,
        "tie_threshold": eps,
    }


def agreement(full_lines: list[dict], quant_lines: list[dict]) -> dict:
    """Share of pairs whose margin has the same sign, and Kendall τ-b between all rewards."""
    if len(full_lines) != len(quant_lines):
        raise ValueError(f"{len(full_lines)} full-precision lines but {len(quant_lines)} quantised lines")
    full_r, quant_r, full_m, quant_m = [], [], [], []
    for a, b in zip(full_lines, quant_lines):
        if a.get("id") != b.get("id"):
            raise ValueError(f"lines out of order: {a.get('id')!r} vs {b.get('id')!r}")
        if "margin" in a:
            full_m.append(a["margin"])
            quant_m.append(b["margin"])
            full_r += [a["reward1"], a["reward2"]]
            quant_r += [b["reward1"], b["reward2"]]
        elif "rewards" in a:  # a group
            full_r += a["rewards"]
            quant_r += b["rewards"]
        else:
            full_r.append(a["reward"])
            quant_r.append(b["reward"])
    sign = float(np.mean(np.sign(full_m) == np.sign(quant_m))) if full_m else None
    return {
        "sign_agreement": sign,
        "kendall_tau": kendall_tau_b(full_r, quant_r),
        "n": len(full_lines),
        "n_pairs": len(full_m),
    }


def kendall_tau_b(x, y) -> float | None:
    """Kendall's τ-b (tie-corrected) in O(n log n): sort by (x, y), count y inversions (Knight 1966)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n != len(y):
        raise ValueError("x and y differ in length")
    if n < 2:
        return None
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    n0 = n * (n - 1) // 2
    ties_x = _tied_pairs(x)
    ties_xy = _tied_pairs_joint(x, y)
    swaps = _inversions(y)
    ties_y = _tied_pairs(np.sort(y))
    denom = (n0 - ties_x) * (n0 - ties_y)
    if denom == 0:
        return None
    concordant_minus_discordant = n0 - ties_x - ties_y + ties_xy - 2 * swaps
    return float(concordant_minus_discordant / np.sqrt(float(denom)))


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Σ t(t-1)/2 over runs of equal values in a sorted array."""
    if len(sorted_values) == 0:
        return 0
    _, counts = np.unique(sorted_values, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _tied_pairs_joint(x: np.ndarray, y: np.ndarray) -> int:
    _, counts = np.unique(np.stack([x, y], axis=1), axis=0, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j] (strictly), with a Fenwick tree over ranks."""
    ranks = np.searchsorted(np.unique(values), values) + 1
    size = int(ranks.max())
    tree = [0] * (size + 1)
    inversions = 0
    for seen, r in enumerate(ranks.tolist()):
        # count earlier values <= r, so the rest are strictly greater
        i, not_greater = r, 0
        while i > 0:
            not_greater += tree[i]
            i -= i & -i
        inversions += seen - not_greater
        i = r
        while i <= size:
            tree[i] += 1
            i += i & -i
    return inversions
