"""The report's figures, drawn only from the summary dict (matplotlib, Agg, no pyplot state).

Each function takes the summary and returns a Figure, or None when the summary has nothing for
it; `draw_all` saves them as PNG files. Bars and lines carry labels so that tests can read every
plotted number back and compare it with summary.json.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from omnireward.report import bias  # noqa: E402

W_T, WITH_T = "accuracy w/o ties", "accuracy w/ ties"
LABEL_COLORS = {"response1": "tab:blue", "response2": "tab:orange", "tie": "tab:gray"}


def _num(v) -> float:
    return math.nan if v is None else float(v)


def _yerr(values: list[float], intervals: list) -> list[list[float]]:
    """Asymmetric error bars from [lo, hi] intervals (0 where there is none)."""
    lo = [v - ci[0] if ci and not math.isnan(v) else 0.0 for v, ci in zip(values, intervals)]
    hi = [ci[1] - v if ci and not math.isnan(v) else 0.0 for v, ci in zip(values, intervals)]
    return [lo, hi]


def accuracy(summary: dict) -> Figure | None:
    """Accuracy with and without ties per task and overall, with bootstrap 95 % intervals."""
    acc = summary["accuracy"]
    if not acc["overall"]["n"]:
        return None
    names = list(acc["per_task"]) + ["overall"]
    parts = [acc["per_task"][t] for t in acc["per_task"]] + [acc["overall"]]
    fig = Figure(figsize=(max(6.0, 1.1 * len(names) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.38
    for k, (key, ci, label) in enumerate(
        (("accuracy_without_ties", "ci_without_ties", W_T), ("accuracy_with_ties", "ci_with_ties", WITH_T))
    ):
        values = [_num(p[key]) for p in parts]
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(xs, values, width, label=label, yerr=_yerr(values, [p[ci] for p in parts]), capsize=3)
    ax.set_xticks(
        range(len(names)), [f"{n}\n(n={p['n']})" for n, p in zip(names, parts)], rotation=30, ha="right", fontsize=8
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.axhline(0.5, color="black", lw=0.6, ls=":")
    ax.set_title("Accuracy per task (bootstrap 95 % intervals)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def published(summary: dict) -> Figure | None:
    """The run beside the published rows measured in the same terms, per column."""
    comp = summary.get("published")
    if not comp or not comp["series"] or not comp["columns"]:
        return None
    cols, series = comp["columns"], comp["series"]
    fig = Figure(figsize=(max(6.0, 1.6 * len(cols) + 3), 4.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for k, s in enumerate(series):
        xs = [i - 0.4 + (k + 0.5) * width for i in range(len(cols))]
        ax.bar(xs, [_num(s["values"].get(c)) for c in cols], width, label=s["label"])
    ax.set_xticks(range(len(cols)), cols)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{comp['title']}: this run beside published results")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def tie_curve(summary: dict) -> Figure | None:
    """Three-way accuracy as the tie threshold ε grows, with the chosen ε marked."""
    tc = summary.get("tie_curve")
    if not tc:
        return None
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(tc["eps"], tc["accuracy"], label="accuracy w/ ties at ε")
    ax.axhline(_num(tc["no_tie_accuracy"]), color="gray", ls="--", lw=0.8, label="no pair called a tie")
    if tc["chosen_eps"] is not None:
        ax.axvline(tc["chosen_eps"], color="tab:red", lw=0.8)
        ax.plot(
            [tc["chosen_eps"]],
            [tc["chosen_accuracy"]],
            "o",
            color="tab:red",
            label=f"chosen ε = {tc['chosen_eps']:.4g}",
        )
    ax.set_xlabel("tie threshold ε (|margin| ≤ ε is a tie)")
    ax.set_ylabel("accuracy over all pairs")
    ax.set_ylim(0, 1.02)
    ax.set_title("Accuracy against the tie threshold")
    ax.legend(fontsize=8)
    return fig


def margins(summary: dict) -> Figure | None:
    """Histogram of margins (reward1 − reward2) per gold label."""
    mh = summary.get("margins")
    if not mh:
        return None
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for name, counts in mh["counts"].items():
        ax.stairs(
            counts,
            mh["bin_edges"],
            label=f"gold {name} (median {mh['median'][name]:.3g})",
            color=LABEL_COLORS[name],
            lw=1.5,
        )
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel("margin = reward1 − reward2")
    ax.set_ylabel("pairs")
    ax.set_title("Margin distribution per gold label")
    ax.legend(fontsize=8)
    return fig


def calibration(summary: dict) -> Figure | None:
    """Reliability diagram of σ(margin / T) against the share of response1 wins."""
    cal = summary.get("calibration")
    if not cal:
        return None
    fig = Figure(figsize=(5.2, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=0.8, label="perfect calibration")
    used = [b for b in cal["bins"] if b["count"]]
    ax.plot([b["mean_p"] for b in used], [b["share_response1"] for b in used], "o-", label="bins (size ∝ pairs)")
    ax.scatter(
        [b["mean_p"] for b in used],
        [b["share_response1"] for b in used],
        s=[20 + 200 * b["count"] / cal["n"] for b in used],
        alpha=0.3,
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"predicted P(response1) = σ(margin / T), T = {cal['temperature']:.3g}")
    ax.set_ylabel("observed share of response1")
    ax.set_title(f"Calibration: ECE {cal['ece']:.3f} (at T = 1: {cal['ece_at_t1']:.3f})")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def judge(summary: dict) -> Figure | None:
    """A judge's parseable-verdict share, position consistency and verdict mix."""
    js = summary.get("judge")
    if not js:
        return None
    keys = [k for k in ("parseable_share", "flex_valid_share", "position_consistency") if k in js]
    verdicts = [f"verdict {k}" for k in js["verdicts"]]
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(len(keys)), [js[k] for k in keys], color="tab:green", label="judge behaviour")
    ax.bar(
        range(len(keys), len(keys) + len(verdicts)),
        list(js["verdicts"].values()),
        color="tab:purple",
        label="verdict shares",
    )
    ax.set_xticks(
        range(len(keys) + len(verdicts)),
        [k.replace("_", " ") for k in keys] + verdicts,
        rotation=25,
        ha="right",
        fontsize=8,
    )
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Judge over {js['n']} pairs")
    ax.legend(fontsize=8)
    return fig


PLOTS = {
    "accuracy": accuracy,
    "published": published,
    "tie_curve": tie_curve,
    "margins": margins,
    "calibration": calibration,
    "judge": judge,
}
PLOTS.update(bias.PLOTS)  # bias_length, bias_distribution, bias_criteria


def draw_all(summary: dict, folder: str | Path) -> dict[str, str]:
    """Save every figure the summary supports as folder/<name>.png; returns name → file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, fn in PLOTS.items():
        fig = fn(summary)
        if fig is None:
            continue
        fig.savefig(folder / f"{name}.png", dpi=110)
        out[name] = f"{name}.png"
    return out
