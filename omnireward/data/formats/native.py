"""The native format (DESIGN.md data contract) in JSONL, JSON or parquet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from omnireward.data.formats.common import Result, Source, convert_file, resolve_record
from omnireward.data.records import Record, record_from_dict


def convert(raw: dict, line: int | None, source: Source) -> Record:
    """One native record with its media paths made absolute against the source's root."""
    record = record_from_dict(raw, default_id=source.default_id(line))
    return resolve_record(record, source)


def read(
    path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Iterator[Result]:
    """Relative media paths resolve against the file's folder, or `media_root` when given."""
    source = Source(path, Path(media_root) if media_root else path.parent, allow_outside, check_media)
    yield from convert_file(path, source, convert)
