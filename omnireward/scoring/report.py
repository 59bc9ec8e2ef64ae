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
        t.add_row(name, str(s["n"]), str(s.get("n_ties", 0)), _pct(s["accuracy_without_ties"]),
                  _pct(s["accuracy_with_ties"]), "—" if eps is None else f"{eps:.4g}")
    return t
