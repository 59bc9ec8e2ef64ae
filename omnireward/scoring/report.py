"""Rich tables for summaries printed by `score` and `eval`."""

from __future__ import annotations

from rich.table import Table


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def summary_table(summary: dict, title: str = "reward accuracy") -> Table:
    t = Table(title=title)
    for col in ("task", "n", "ties", "acc w/o ties", "acc w/ ties", "tie ε"):
        t.add_column(col, justify="right" if col != "task" else "left")
    rows = list((summary.get("per_task") or {}).items())
    for name, s in rows + [("overall", summary)]:
        eps = s.get("tie_threshold")
        t.add_row(
            name,
            str(s["n"]),
            str(s.get("n_ties", 0)),
            _pct(s["accuracy_without_ties"]),
            _pct(s["accuracy_with_ties"]),
            "—" if eps is None else f"{eps:.4g}",
        )
    return t


def group_line(groups: dict) -> str:
    """One line on groups: how often the top reward is the gold best, and ranking agreement."""
    parts = [f"groups: {groups['n']}"]
    if groups.get("n_with_best"):
        parts.append(
            f"best-of-N win rate {_pct(groups['best_of_n_win_rate'])} over {groups['n_with_best']} "
            f"(chance {_pct(groups['best_of_n_chance'])})"
        )
    if groups.get("n_with_ranking"):
        tau = groups.get("ranking_kendall_tau")
        parts.append(
            f"ranking pair accuracy {_pct(groups['ranking_pair_accuracy'])}, Kendall τ "
            f"{'—' if tau is None else f'{tau:.3f}'} over {groups['n_with_ranking']}"
        )
    return "; ".join(parts)


def ensemble_line(e: dict) -> str:
    """One line on an ensemble's scores: rule, members, mean std, and each member's accuracy alone."""
    rule = e["rule"] + (f", λ = {e['lambda']:g}" if e["rule"] == "mean_minus_std" else "")
    line = (
        f"ensemble of {e['k']} ({rule}): mean std of the members' normalised rewards "
        f"{e['mean_std']:.3f} over {e['n_responses']} responses"
    )
    if e.get("mean_std_ranked_right") is not None and e.get("mean_std_ranked_wrong") is not None:
        line += f" (pairs ranked right {e['mean_std_ranked_right']:.3f}, wrong {e['mean_std_ranked_wrong']:.3f})"
    if e.get("member_accuracy"):
        line += "; members alone: " + ", ".join(_pct(a) for a in e["member_accuracy"])
    return line


def head_lines(summary: dict) -> list:
    """What head=gaussian, head=multi and ensembles add to a summary: accuracy of confident vs
    unconfident pairs (split at the median combined std), a table of per-dimension accuracies,
    and a line on the ensemble's spread."""
    out: list = []
    if summary.get("ensemble"):
        out.append(ensemble_line(summary["ensemble"]))
    u = summary.get("uncertainty")
    if u:
        c, n = u["confident"], u["unconfident"]
        out.append(
            f"confident pairs (combined std ≤ {u['threshold']:.3g}): {_pct(c['accuracy_without_ties'])} of "
            f"{c['n']}; unconfident: {_pct(n['accuracy_without_ties'])} of {n['n']}"
        )
    dims = summary.get("dimensions")
    if dims:
        t = Table(title="per-dimension accuracy")
        for col in ("dimension", "n", "ties", "acc w/o ties", "acc w/ ties"):
            t.add_column(col, justify="right" if col != "dimension" else "left")
        for name, d in dims.items():
            t.add_row(
                name, str(d["n"]), str(d["n_ties"]), _pct(d["accuracy_without_ties"]), _pct(d["accuracy_with_ties"])
            )
        out.append(t)
    return out
