"""Published results per known benchmark (published/<benchmark>.yaml), each row with its source,
and the side-by-side comparison of a run with the rows measured in the same terms.

A row's `metric` says what its numbers are. Rows whose metric is one of ours
(accuracy_without_ties, accuracy_with_ties; `vl` for VL-RewardBench's own groups) are set beside
the run's figure for the same column; others are listed with their sources only.
"""

from __future__ import annotations

from importlib import resources

import yaml

from omnireward.errors import DataFormatError

FOLDER = "published"


def known() -> list[str]:
    """Benchmarks with a published-results file."""
    root = resources.files("omnireward.report").joinpath(FOLDER)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load(benchmark: str) -> dict | None:
    """The published-results file of `benchmark` (values still in its `unit`), or None."""
    res = resources.files("omnireward.report").joinpath(FOLDER, f"{benchmark}.yaml")
    if not res.is_file():
        return None
    doc = yaml.safe_load(res.read_text())
    for i, row in enumerate(doc.get("rows", [])):
        for key in ("model", "metric", "values", "source"):
            if not row.get(key):
                raise DataFormatError(
                    "missing field", file=f"omnireward/report/{FOLDER}/{benchmark}.yaml", field=f"rows[{i}].{key}"
                )
    return doc


def _ours(metric: str, column: str, accuracy: dict, headline: dict | None) -> float | None:
    """The run's figure in the same terms as a published `metric` and `column`."""
    if metric in ("accuracy_without_ties", "accuracy_with_ties"):
        part = accuracy["overall"] if column == "overall" else accuracy["per_task"].get(column)
        return part.get(metric) if part else None
    if metric == "vl" and headline:
        return headline.get(column) if column in ("overall", "macro") else headline.get("groups", {}).get(column)
    return None


def comparison(benchmark: str | None, accuracy: dict, headline: dict | None = None) -> dict | None:
    """Published rows and, per comparable row, the run's figure beside it (fractions in [0, 1]).

    `accuracy` is the report's accuracy block ({"overall": {...}, "per_task": {...}}).
    """
    doc = load(benchmark) if benchmark else None
    if doc is None:
        return None
    scale = 0.01 if doc.get("unit") == "percent" else 1.0
    rows, series = [], []
    ours: dict[tuple[str, str], float] = {}
    for row in doc["rows"]:
        values = {c: v * scale for c, v in row["values"].items()}
        mine = {c: _ours(row["metric"], c, accuracy, headline) for c in values}
        mine = {c: v for c, v in mine.items() if v is not None}
        rows.append(
            {
                "model": row["model"],
                "metric": row["metric"],
                "values": values,
                "source": row["source"],
                "comparable": bool(mine),
            }
        )
        if mine:
            series.append(
                {
                    "label": f"{row['model']} ({_short(row['metric'])})",
                    "metric": row["metric"],
                    "values": {c: values[c] for c in mine},
                }
            )
            ours.update({(row["metric"], c): v for c, v in mine.items()})
    columns = sorted({c for s in series for c in s["values"]}, key=_column_order)
    metrics = sorted({m for m, _ in ours})
    ours_series = [
        {"label": f"this run ({_short(m)})", "metric": m, "values": {c: v for (mm, c), v in ours.items() if mm == m}}
        for m in metrics
    ]
    return {
        "benchmark": benchmark,
        "title": doc.get("title", benchmark),
        "metrics": doc.get("metrics", {}),
        "rows": rows,
        "columns": columns,
        "series": ours_series + series,
    }


def _short(metric: str) -> str:
    return {"accuracy_without_ties": "w/o ties", "accuracy_with_ties": "w/ ties", "vl": "VL-RewardBench"}.get(
        metric, metric
    )


def _column_order(c: str):
    return (c in ("overall", "macro", "average"), c)
