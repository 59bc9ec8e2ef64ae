"""The scoring progress bar: records done, records per second and time left."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """`12.3 pairs/s`: the speed of this run (records skipped on resume do not count)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "records")
        if speed is None:
            return Text(f"– {unit}/s", style="progress.data.speed")
        return Text(f"{speed:.3g} {unit}/s" if speed < 100 else f"{speed:,.0f} {unit}/s", style="progress.data.speed")


def progress(*, transient: bool = False) -> Progress:
    """Description, bar, done/total, speed, elapsed, ETA (an unknown total shows a pulsing bar)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=transient,
    )
