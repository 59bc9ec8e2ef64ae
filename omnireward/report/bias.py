"""Bias diagnostics for every evaluation report (summary.json's `bias`, a section and plots on index.html).

- length: Spearman ρ between a response's reward and its length in words (judges: the margin
  against the length difference), and the accuracy on pairs whose preferred response is the
  shorter against those where it is the longer; a large gap means the model leans on length.
- position (judges): how often the verdict survives swapping the responses (scores written with
  --both-orders) and how often it names response1 against how often the gold label does.
- distribution: the evaluated rewards' mean and spread against the training responses'
  (reward_stats.json of the model folder); a shift warning when they drift apart.
- criteria consistency: records over the same prompt and the same two responses under different
  criteria whose gold labels disagree (the demo sets' flip twins) should flip with the criteria;
  the share that does, overall and per task.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from omnireward.data.records import Pair  # noqa: E402

SIGN = {"response1": 1, "response2": -1}
LENGTH_GAP_WARN = 0.15  # accuracy gap (preferred longer minus preferred shorter) that earns a warning
MIN_GROUP = 10  # pairs each side needs before the gap is judged
SHIFT_Z_WARN = 0.5  # |mean − training mean| / training std
STD_RATIO_WARN = (0.5, 2.0)


def _words(resp) -> int:
    return len(resp.text.split())


def _acc(xs: list[bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(x, y).statistic
    return None if rho is None or math.isnan(rho) else float(rho)


def length_bias(lines: list[dict], records: dict) -> dict | None:
    """Reward against length, and accuracy when the preferred response is shorter against longer."""
    lengths, rewards, margins, diffs = [], [], [], []
    shorter, longer = [], []
    for x in lines:
        rec = records.get(x.get("id"))
        if not isinstance(rec, Pair) or "margin" not in x:
            continue
        l1, l2 = _words(rec.response1), _words(rec.response2)
        if not (l1 or l2):
            continue
        if "reward1" in x:
            lengths += [l1, l2]
            rewards += [float(x["reward1"]), float(x["reward2"])]
        margins.append(float(x["margin"]))
        diffs.append(l1 - l2)
        gold = SIGN.get(x.get("preference"))
        if gold is None or l1 == l2 or x["margin"] == 0:
            continue
        right = (x["margin"] > 0) == (gold > 0)
        preferred_longer = (l1 > l2) == (gold > 0)
        (longer if preferred_longer else shorter).append(right)
    if not margins:
        return None
    out = {
        "n_pairs": len(margins),
        "spearman_reward_length": _spearman(lengths, rewards) if rewards else None,
        "spearman_margin_length_difference": _spearman(diffs, margins),
        "accuracy_preferred_shorter": _acc(shorter),
        "n_preferred_shorter": len(shorter),
        "accuracy_preferred_longer": _acc(longer),
        "n_preferred_longer": len(longer),
    }
    gap = out["accuracy_preferred_longer"] - out["accuracy_preferred_shorter"] if shorter and longer else None
    out["accuracy_gap"] = gap
    out["warning"] = bool(
        gap is not None and len(shorter) >= MIN_GROUP and len(longer) >= MIN_GROUP and gap > LENGTH_GAP_WARN
    )
    if rewards:  # mean reward per length quintile, for the plot
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        k = min(5, len(order))
        bins = [order[i * len(order) // k : (i + 1) * len(order) // k] for i in range(k)]
        out["by_length"] = [
            {
                "mean_words": statistics.fmean(lengths[i] for i in b),
                "mean_reward": statistics.fmean(rewards[i] for i in b),
                "n": len(b),
            }
            for b in bins
            if b
        ]
    return out


def position_bias(lines: list[dict]) -> dict | None:
    """Judges only: order consistency (both orders) and how often the verdict names response1."""
    judged = [x for x in lines if "verdict" in x and "p_response1" in x]
    if not judged:
        return None
    both = [x for x in judged if "order_agreement" in x]
    gold = [x["preference"] for x in judged if x.get("preference") in ("response1", "response2", "tie")]
    return {
        "n": len(judged),
        "both_orders": bool(both),
        "position_consistency": _acc([bool(x["order_agreement"]) for x in both]),
        "predicted_response1_share": sum(x["verdict"] == "response1" for x in judged) / len(judged),
        "gold_response1_share": _acc([g == "response1" for g in gold]),
    }


def _rewards(lines: list[dict]) -> list[float]:
    out = []
    for x in lines:
        if "reward1" in x:
            out += [float(x["reward1"]), float(x["reward2"])]
        elif "rewards" in x and "verdict" not in x:
            out += [float(v) for v in x["rewards"]]
        elif "reward" in x and "critique" not in x:
            out.append(float(x["reward"]))
    return out


def distribution_shift(lines: list[dict], train_stats: dict | None) -> dict | None:
    """The evaluated rewards against the training responses' mean and std (reward_stats.json)."""
    rewards = _rewards(lines)
    if len(rewards) < 2:
        return None
    mean, std = statistics.fmean(rewards), statistics.pstdev(rewards)
    out = {
        "n": len(rewards),
        "mean": mean,
        "std": std,
        "train_mean": None,
        "train_std": None,
        "shift_z": None,
        "std_ratio": None,
        "warning": False,
    }
    lo, hi = min(rewards), max(rewards)
    if train_stats and train_stats.get("std"):
        tm, ts = float(train_stats["mean"]), float(train_stats["std"])
        out.update(train_mean=tm, train_std=ts, shift_z=(mean - tm) / ts, std_ratio=std / ts)
        out["warning"] = bool(
            abs(out["shift_z"]) > SHIFT_Z_WARN or not STD_RATIO_WARN[0] <= out["std_ratio"] <= STD_RATIO_WARN[1]
        )
        lo, hi = min(lo, tm - 2 * ts), max(hi, tm + 2 * ts)
    edges = [lo + (hi - lo) * i / 20 for i in range(21)] if hi > lo else [lo - 0.5, lo + 0.5]
    counts = [0] * (len(edges) - 1)
    for r in rewards:
        counts[min(len(counts) - 1, max(0, int((r - edges[0]) / (edges[-1] - edges[0]) * len(counts))))] += 1
    out["histogram"] = {"bin_edges": edges, "counts": counts}
    return out


def _key(rec: Pair) -> tuple:
    def side(r):
        return (r.text, tuple(m.path for m in r.media))

    return (
        rec.task,
        rec.prompt,
        tuple(m.path for m in rec.prompt_media),
        frozenset((side(rec.response1), side(rec.response2))),
    )


def criteria_consistency(lines: list[dict], records: dict) -> dict | None:
    """Twins (same prompt, same two responses, different criteria, opposite gold winners): the share
    whose predicted winner flips with the criteria, and the share with both twins right."""
    groups = defaultdict(list)
    for x in lines:
        rec = records.get(x.get("id"))
        if isinstance(rec, Pair) and "margin" in x and rec.preference in SIGN and (rec.criteria or "").strip():
            groups[_key(rec)].append((rec, x))
    twins = []
    for members in groups.values():
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                (ra, xa), (rb, xb) = members[a], members[b]
                if ra.criteria == rb.criteria:
                    continue

                def winner(rec, x, by):  # the winning side's content under `by` (gold label or margin sign)
                    first = by > 0
                    r = rec.response1 if first else rec.response2
                    return (r.text, tuple(m.path for m in r.media))

                if winner(ra, xa, SIGN[ra.preference]) == winner(rb, xb, SIGN[rb.preference]):
                    continue  # the gold labels do not flip: not twins
                if xa["margin"] == 0 or xb["margin"] == 0:
                    flipped = False
                else:
                    flipped = winner(ra, xa, xa["margin"]) != winner(rb, xb, xb["margin"])
                both = (
                    (xa["margin"] > 0) == (SIGN[ra.preference] > 0)
                    and xa["margin"] != 0
                    and (xb["margin"] > 0) == (SIGN[rb.preference] > 0)
                    and xb["margin"] != 0
                )
                twins.append((ra.task, flipped, both))
    if not twins:
        return None
    per_task = defaultdict(list)
    for task, flipped, both in twins:
        per_task[task].append((flipped, both))
    return {
        "n_twins": len(twins),
        "flip_consistency": _acc([t[1] for t in twins]),
        "both_right": _acc([t[2] for t in twins]),
        "per_task": {
            t: {"n_twins": len(v), "flip_consistency": _acc([f for f, _ in v]), "both_right": _acc([b for _, b in v])}
            for t, v in sorted(per_task.items())
        },
    }


def diagnostics(lines: list[dict], records: dict, train_stats: dict | None = None) -> dict:
    """Every diagnostic the lines (and the records behind them) allow; None where one does not apply."""
    out = {
        "length": length_bias(lines, records) if records else None,
        "position": position_bias(lines),
        "distribution": distribution_shift(lines, train_stats),
        "criteria": criteria_consistency(lines, records) if records else None,
    }
    out["warnings"] = [k for k in ("length", "distribution") if (out[k] or {}).get("warning")]
    if not records:
        out["note"] = "the records behind the scores were not found: length and criteria diagnostics need them"
    return out


# ---- figures (drawn only from the summary's `bias`) ----------------------------------------------
def length_figure(summary: dict) -> Figure | None:
    lb = (summary.get("bias") or {}).get("length")
    if not lb:
        return None
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    if lb.get("by_length"):
        bl = lb["by_length"]
        ax1.plot([b["mean_words"] for b in bl], [b["mean_reward"] for b in bl], "o-", label="mean reward per quintile")
        rho = lb.get("spearman_reward_length")
        ax1.set_title(f"Reward against length (Spearman ρ = {'n/a' if rho is None else f'{rho:.3f}'})", fontsize=9)
        ax1.set_xlabel("response length (words)")
        ax1.set_ylabel("reward")
        ax1.legend(fontsize=7)
    else:
        ax1.set_axis_off()
    names = ["preferred shorter", "preferred longer"]
    vals = [lb["accuracy_preferred_shorter"], lb["accuracy_preferred_longer"]]
    ns = [lb["n_preferred_shorter"], lb["n_preferred_longer"]]
    ax2.bar(range(2), [math.nan if v is None else v for v in vals], color=["tab:blue", "tab:orange"], label="accuracy")
    ax2.set_xticks(range(2), [f"{n}\n(n={k})" for n, k in zip(names, ns)])
    ax2.set_ylim(0, 1.05)
    ax2.axhline(0.5, color="black", lw=0.6, ls=":")
    ax2.set_title("Accuracy by which side is longer" + (" — WARNING" if lb["warning"] else ""), fontsize=9)
    return fig


def distribution_figure(summary: dict) -> Figure | None:
    ds = (summary.get("bias") or {}).get("distribution")
    if not ds:
        return None
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    h = ds["histogram"]
    ax.stairs(h["counts"], h["bin_edges"], fill=True, alpha=0.5, label=f"evaluated (mean {ds['mean']:.3g})")
    if ds["train_mean"] is not None:
        ax.axvline(ds["train_mean"], color="tab:red", lw=1.2, label=f"training mean {ds['train_mean']:.3g}")
        for s in (-1, 1):
            ax.axvline(ds["train_mean"] + s * ds["train_std"], color="tab:red", lw=0.8, ls="--")
        title = f"Rewards against training: shift {ds['shift_z']:+.2f} σ, spread ×{ds['std_ratio']:.2f}"
    else:
        title = "Rewards (no training statistics in the model folder)"
    ax.set_title(title + (" — WARNING" if ds["warning"] else ""), fontsize=9)
    ax.set_xlabel("reward")
    ax.set_ylabel("responses")
    ax.legend(fontsize=7)
    return fig


def criteria_figure(summary: dict) -> Figure | None:
    cc = (summary.get("bias") or {}).get("criteria")
    if not cc:
        return None
    names = list(cc["per_task"]) + ["overall"]
    parts = list(cc["per_task"].values()) + [cc]
    fig = Figure(figsize=(max(5.0, 1.2 * len(names) + 2), 3.8), layout="constrained")
    ax = fig.add_subplot()
    w = 0.38
    ax.bar(
        [i - w / 2 for i in range(len(names))],
        [p["flip_consistency"] for p in parts],
        w,
        label="verdict flips with the criteria",
    )
    ax.bar([i + w / 2 for i in range(len(names))], [p["both_right"] for p in parts], w, label="both twins right")
    ax.set_xticks(
        range(len(names)),
        [f"{n}\n(n={p['n_twins']})" for n, p in zip(names, parts)],
        fontsize=8,
        rotation=20,
        ha="right",
    )
    ax.set_ylim(0, 1.05)
    ax.set_title("Criteria consistency over twins", fontsize=9)
    ax.legend(fontsize=7)
    return fig


PLOTS = {"bias_length": length_figure, "bias_distribution": distribution_figure, "bias_criteria": criteria_figure}
CAPTIONS = {
    "bias_length": "Reward against response length, and accuracy where the preferred response is the shorter "
    "against the longer.",
    "bias_distribution": "The evaluated rewards against the training responses' mean ± one standard deviation.",
    "bias_criteria": "Twins under opposite criteria: how often the predicted winner flips, and both are right.",
}


def _f(v, fmt="{:.3f}") -> str:
    return "—" if v is None else fmt.format(v)


def _p(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def section(bias: dict | None) -> str:
    """The bias diagnostics as an HTML fragment for index.html."""
    from html import escape

    if not bias:
        return ""
    rows = []
    lb, pb, ds, cc = bias.get("length"), bias.get("position"), bias.get("distribution"), bias.get("criteria")
    if lb:
        rows += [
            ("Spearman ρ reward vs length (words)", _f(lb["spearman_reward_length"])),
            ("Spearman ρ margin vs length difference", _f(lb["spearman_margin_length_difference"])),
            (f"accuracy, preferred is shorter (n={lb['n_preferred_shorter']})", _p(lb["accuracy_preferred_shorter"])),
            (f"accuracy, preferred is longer (n={lb['n_preferred_longer']})", _p(lb["accuracy_preferred_longer"])),
        ]
    if pb:
        rows.append(
            (
                "position consistency (both orders)",
                _p(pb["position_consistency"]) if pb["both_orders"] else "— (score with --both-orders to measure it)",
            )
        )
        rows.append(
            (
                "verdict names response1 · gold says response1",
                f"{_p(pb['predicted_response1_share'])} · {_p(pb['gold_response1_share'])}",
            )
        )
    if ds:
        rows.append(("reward mean ± std (evaluated)", f"{ds['mean']:.4g} ± {ds['std']:.4g}"))
        if ds["train_mean"] is not None:
            rows += [
                ("reward mean ± std (training)", f"{ds['train_mean']:.4g} ± {ds['train_std']:.4g}"),
                ("shift (training σ) · spread ratio", f"{ds['shift_z']:+.3f} · {ds['std_ratio']:.3f}"),
            ]
    if cc:
        rows += [
            (f"criteria twins: verdict flips with the criteria (n={cc['n_twins']})", _p(cc["flip_consistency"])),
            ("criteria twins: both right", _p(cc["both_right"])),
        ]
        rows += [
            (
                f"&nbsp;&nbsp;{escape(t)} (n={v['n_twins']}): flips · both right",
                f"{_p(v['flip_consistency'])} · {_p(v['both_right'])}",
            )
            for t, v in cc["per_task"].items()
        ]
    warn = []
    if "length" in bias.get("warnings", []):
        warn.append(
            f"accuracy is {100 * lb['accuracy_gap']:.1f} points higher where the preferred response is the "
            "longer one: the model may be rewarding length"
        )
    if "distribution" in bias.get("warnings", []):
        warn.append(
            "the evaluated rewards are shifted from the training rewards: this set lies off the "
            "training distribution, and reward-normalised RL signals will be off"
        )
    out = ["<h2 id='bias'>Bias diagnostics</h2>"]
    out += [f"<p style='color:#c33'><b>Warning:</b> {escape(w)}.</p>" for w in warn]
    if rows:
        out.append(
            "<table>"
            + "".join(f"<tr><td>{k if k.startswith('&nbsp;') else escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
            + "</table>"
        )
    if bias.get("note"):
        out.append(f"<p class='note'>{escape(bias['note'])}.</p>")
    return "\n".join(out)
