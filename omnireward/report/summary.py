"""Everything a report shows, as one JSON-ready dict (written as summary.json): the plots are
drawn from it and nothing else, so every plotted number can be checked against the file."""

from __future__ import annotations

from collections import defaultdict

from omnireward.metrics import LABEL_SIGN, summarize
from omnireward.report import stats
from omnireward.report.consistency import judge_stats
from omnireward.report.headline import headline
from omnireward.report.published import comparison


def labelled_pairs(lines: list[dict]) -> list[dict]:
    """Pair lines with a margin and a gold label."""
    return [x for x in lines if "margin" in x and x.get("preference") in LABEL_SIGN]


def _with_intervals(part: dict, margins: list[float], labels: list[int], seed: int, n_boot: int) -> dict:
    part = dict(part)
    part["ci_without_ties"] = stats.bootstrap_interval(
        margins, labels, stats.accuracy_without_ties, n=n_boot, seed=seed
    )
    part["ci_with_ties"] = stats.bootstrap_interval(margins, labels, stats.accuracy_with_ties_fast, n=n_boot, seed=seed)
    return part


def accuracy_block(pairs: list[dict], *, seed: int = 0, n_boot: int = stats.N_BOOTSTRAP) -> dict:
    """Accuracy with and without ties, overall and per task, each with a bootstrap 95 % interval.

    The with-ties interval re-picks the tie threshold in every resample, so it includes the
    optimism of choosing ε on the same pairs.
    """
    margins = [float(x["margin"]) for x in pairs]
    labels = [LABEL_SIGN[x["preference"]] for x in pairs]
    tasks = [x.get("task") or "unknown" for x in pairs]
    base = summarize(margins, labels, tasks)
    per_task = base.pop("per_task")
    groups = defaultdict(list)
    for i, t in enumerate(tasks):
        groups[t].append(i)
    return {
        "overall": _with_intervals(base, margins, labels, seed, n_boot),
        "per_task": {
            t: _with_intervals(per_task[t], [margins[i] for i in idx], [labels[i] for i in idx], seed, n_boot)
            for t, idx in sorted(groups.items())
        },
    }


def report_summary(
    lines: list[dict],
    *,
    benchmark: str | None = None,
    records: dict | None = None,
    seed: int = 0,
    n_boot: int = stats.N_BOOTSTRAP,
    extra: dict | None = None,
) -> dict:
    """The report's numbers for the scores `lines` (see the module docstring)."""
    pairs = labelled_pairs(lines)
    margins = [float(x["margin"]) for x in pairs]
    labels = [LABEL_SIGN[x["preference"]] for x in pairs]
    acc = accuracy_block(pairs, seed=seed, n_boot=n_boot)
    head = headline(benchmark, lines, records)
    out = {
        **(extra or {}),
        "n_lines": len(lines),
        "n_labelled_pairs": len(pairs),
        "benchmark": benchmark,
        "accuracy": acc,
        "tie_curve": stats.tie_curve(margins, labels, acc["overall"]["tie_threshold"]),
        "margins": stats.margin_histogram(margins, labels),
        "calibration": stats.calibration(margins, labels),
        "judge": judge_stats(lines),
        "headline": head,
        "published": comparison(benchmark, acc, head),
        "bootstrap": {"resamples": n_boot, "seed": seed, "level": 0.95},
    }
    return out
