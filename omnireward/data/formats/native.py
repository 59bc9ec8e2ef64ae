"""The native format (DESIGN.md data contract) in JSONL, JSON or parquet."""

from __future__ import annotations

from omnireward.data.formats.common import Source, file_reader, resolve_record
from omnireward.data.records import Record, record_from_dict


def convert(raw: dict, line: int | None, source: Source) -> Record:
    """One native record with its media paths made absolute against the source's root."""
    record = record_from_dict(raw, default_id=source.default_id(line))
    return resolve_record(record, source)


read = file_reader(convert, "Relative media paths resolve against the file's folder, or `media_root` when given.")
