"""The scored input, resolved once: where it is, how it is read, how many records, what it holds.

`omnireward score` opens its input once into an `InputSource`; the resume identity, the progress
bar's total and the reader all take it, so the file's existence is checked once, its format
detected once, its records counted once and its contents digested once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnireward.data.formats import resolve_format
from omnireward.data.io import count_records
from omnireward.errors import DataFormatError
from omnireward.scoring.identity import source_identity


@dataclass(frozen=True)
class InputSource:
    """`path` as given (messages name it so), `format` the reader's name (`auto` resolved), `count`
    the records where that is cheap (JSONL lines, parquet rows; else None), `identity` the content
    digest a resumed run must match."""

    path: Path
    format: str
    count: int | None
    identity: dict

    @classmethod
    def open(cls, path: str | Path, fmt: str = "auto") -> InputSource:
        path = Path(path)
        if not path.exists():  # before anything is written beside the output
            raise DataFormatError("no such file or folder", file=path)
        return cls(path, resolve_format(path, fmt), count_records(path), source_identity(path))

    @classmethod
    def of(cls, source: InputSource | str | Path, fmt: str = "auto") -> InputSource:
        """`source` itself, or the source opened from a path."""
        return source if isinstance(source, InputSource) else cls.open(source, fmt)
