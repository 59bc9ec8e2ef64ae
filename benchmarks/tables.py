"""Table renderers for `report.py`: each public function turns results lines into markdown.

A function takes the marker's arguments (`args`) and `where` filters and returns the table; it
reads results only through `results_log` (newest line per filter), so a table always shows one
measured run and names it.
"""

from __future__ import annotations

from results_log import newest


def _machine(row: dict) -> str:
    m = row.get("machine", {})
    return f"{m.get('cores')} cores, {m.get('ram_gib')} GiB RAM, GPU: {m.get('gpu', 'none')}, load {m.get('load_1min', '?')}"


def provenance(args: dict, where: list[str]) -> str:
    """Command, commit, date and machine of the newest matching line: the footnote under a figure."""
    row = newest(args["file"], where)
    return f"`{row['command']}` — commit `{row['commit']}`, {row['date'][:10]}, {_machine(row)}"
