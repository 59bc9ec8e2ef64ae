"""The scoring order: records read lazily, sorted by length within fixed windows, cut into batches.

Scores are written in this order while a run goes (OUT.partial) and put back in input order at
the end; a window holds consecutive records, so that takes one window of lines at a time.

The order depends only on the input (never on what a previous run finished), so a resumed run
meets the same batches as an uninterrupted one: the first N records of that order are the N
lines already written, and a batch that a kill cut short is scored again whole (same batch,
same numbers) with only its missing lines written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from omnireward.data.formats import Result, load
from omnireward.data.records import Record, length_hint
from omnireward.errors import ResumeError

# Records sorted together by length (less padding). Fixed, so the order does not depend on
# --batch-size: a run resumed with another batch size lines up with what was written.
WINDOW = 1024


@dataclass
class Planned:
    """One batch: its number, how many records come before it, its records and their source lines."""

    index: int
    start: int
    records: list[Record]
    lines: list[int | None] = field(default_factory=list)
    skip: int = 0  # leading records already written (a batch cut by a kill)
    positions: list[int] = field(default_factory=list)  # each record's place among the readable records

    def tag(self, lines: list[dict]) -> list[dict]:
        """The lines still to write (past `skip`), each with its input position `_pos`."""
        return [{**x, "_pos": p} for x, p in zip(lines[self.skip :], self.positions[self.skip :])]


def read_records(
    path: str | Path,
    fmt: str = "auto",
    *,
    media_root=None,
    allow_outside_root: bool = False,
    on_reject: Callable[[Result], None],
) -> Iterator[tuple[int | None, Record]]:
    """(source line, record) for every readable record; the others go to `on_reject`.

    Media files must exist (checked here, so a missing file is a refused record, not a failed batch).
    """
    for res in load(path, fmt, media_root=media_root, allow_outside_root=allow_outside_root, check_media=True):
        if res.ok:
            yield res.line, res.record
        else:
            on_reject(res)


def plan(records: Iterable[tuple[int | None, Record]], batch_size: int, window: int = WINDOW) -> Iterator[Planned]:
    """Batches of at most `batch_size` records, sorted by length within each window of `window` records."""
    buf: list[tuple[int, int | None, Record]] = []
    index = start = 0

    def flush():
        nonlocal index, start
        buf.sort(key=lambda plr: length_hint(plr[2]))  # stable: equal lengths keep input order
        for i in range(0, len(buf), batch_size):
            chunk = buf[i : i + batch_size]
            yield Planned(
                index, start, [r for _, _, r in chunk], [ln for _, ln, _ in chunk], positions=[p for p, _, _ in chunk]
            )
            index += 1
            start += len(chunk)
        buf.clear()

    for position, (line, record) in enumerate(records):
        buf.append((position, line, record))
        if len(buf) == window:
            yield from flush()
    yield from flush()


def pending(batches: Iterable[Planned], done: int, written_ids: Iterator[str], out: Path) -> Iterator[Planned]:
    """The batches still to score when the output already holds `done` lines.

    Every written line must carry the id of the record at its place in the order; otherwise the
    output was not made by this plan, and resuming would lose or repeat records.
    """
    for b in batches:
        have = min(max(done - b.start, 0), len(b.records))
        for k in range(have):
            got = next(written_ids, None)
            if got != b.records[k].id:
                raise ResumeError(
                    f"line {b.start + k + 1} holds id {got!r} where this input's scoring order has "
                    f"{b.records[k].id!r}; pass --overwrite to start over",
                    file=out,
                )
        if have == len(b.records):
            continue
        b.skip = have
        yield b
    extra = next(written_ids, None)
    if extra is not None:
        raise ResumeError(
            f"holds more lines than the input has records (from id {extra!r}); pass --overwrite to start over", file=out
        )
