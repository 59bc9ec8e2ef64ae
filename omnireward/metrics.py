"""Pairwise accuracy with and without ties (tie calibration, arXiv 2305.14324)."""

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
    the answer is exact; O(n log n) by sorting.
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
    best_acc, best_eps = base, None
    order = np.argsort(a, kind="stable")
    gain = (correct_if_tie - correct_if_not)[order]
    cum = np.cumsum(gain)
    a_sorted = a[order]
    # Only thresholds at the end of a run of equal |margin| are valid cut points.
    last_of_run = np.append(a_sorted[1:] != a_sorted[:-1], True)
    for i in np.nonzero(last_of_run)[0]:
        acc = base + cum[i]
        if acc > best_acc:
            best_acc, best_eps = acc, float(a_sorted[i])
    return float(best_acc / n), best_eps


def summarize(margins, labels, tasks=None) -> dict:
    """Summary used by `score` and `eval`: n, both accuracies, ε, and the same per task."""
    margins = list(margins)
    labels = [LABEL_SIGN[lab] if isinstance(lab, str) else int(lab) for lab in labels]
    out = _one(margins, labels)
    if tasks is not None:
        groups = defaultdict(list)
        for i, t in enumerate(tasks):
            groups[t or "unknown"].append(i)
        out["per_task"] = {t: _one([margins[i] for i in idx], [labels[i] for i in idx])
                           for t, idx in sorted(groups.items())}
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
