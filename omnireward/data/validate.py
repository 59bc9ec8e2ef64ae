"""`data validate`: every problem of a preference file, each as `FILE:LINE: field: reason`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from omnireward.data import kinds
from omnireward.data.formats import load, media_fields, resolve_format
from omnireward.data.io import iter_raw
from omnireward.data.paths import resolve_media_path
from omnireward.data.records import Record, record_from_dict
from omnireward.errors import OmniRewardError


@dataclass(frozen=True)
class Problem:
    """One problem found in a file; `str()` gives `FILE:LINE: field: reason`."""

    file: str | None
    line: int | None
    field: str | None
    reason: str
    kind: str = "DataFormatError"

    @classmethod
    def from_error(cls, err: OmniRewardError, *, file=None, line=None, field=None) -> Problem:
        return cls(
            file=err.file or (str(file) if file is not None else None),
            line=err.line if err.line is not None else line,
            field=err.field or field,
            reason=err.reason,
            kind=type(err).__name__,
        )

    def __str__(self) -> str:
        return OmniRewardError(self.reason, file=self.file, line=self.line, field=self.field).format()


def validate(
    path: str | Path,
    *,
    media_root: str | Path | None = None,
    allow_outside_root: bool = False,
    decode_media: bool = True,
    fmt: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> list[Problem]:
    """Check schema and labels, media presence, media decoding and media paths; collect every problem.

    Relative media paths resolve against the file's folder, or `media_root` when given; a path
    escaping that root is a problem unless `allow_outside_root`. Files in other formats than
    native are read through their reader (`fmt`, auto-detected by default).
    """
    path = Path(path)
    problems: list[Problem] = []
    checked: dict[tuple[str, str], str | None] = {}
    seen: dict[str, int | None] = {}
    n = 0
    try:
        name = resolve_format(path, fmt)
        records = (
            _native(path, media_root, allow_outside_root)
            if name == "native"
            else _other(path, name, media_root, allow_outside_root)
        )
        for file, line, record, media, errors in records:
            problems += errors
            # Output ids must be unique (scores join on them); prep numbers repeats in other formats.
            if record is not None and name == "native":
                if record.id in seen:
                    problems.append(
                        Problem(file, line, "id", f"duplicate id {record.id!r} (first at line {seen[record.id]})")
                    )
                else:
                    seen[record.id] = line
            for field, mtype, full in media:
                reason = _check_media(full, mtype, decode_media, checked)
                if reason:
                    problems.append(Problem(file, line, field, reason, "MediaError"))
            n += 1
            if progress:
                progress(n)
    except OmniRewardError as err:  # file-level: missing, empty, malformed JSON document
        problems.append(Problem.from_error(err, file=path))
        return problems
    if n == 0:
        problems.append(Problem(str(path), None, None, "the file holds no records"))
    return problems


# (file, line, record or None, [(field, media type, absolute path)], problems found so far)
Checked = tuple[str, int | None, Record | None, list[tuple[str, str, str]], list[Problem]]


def _native(path: Path, media_root, allow_outside: bool) -> Iterator[Checked]:
    """Native records, checking every media path separately (a record may have several problems)."""
    root = Path(media_root) if media_root else path.parent
    for line, raw in iter_raw(path, lenient=True):
        if isinstance(raw, OmniRewardError):
            yield str(path), line, None, [], [Problem.from_error(raw, file=path, line=line)]
            continue
        try:
            record = record_from_dict(raw, default_id=f"{path.stem}-{line}")
        except OmniRewardError as err:
            yield str(path), line, None, [], [Problem.from_error(err, file=path, line=line)]
            continue
        media, errors = [], []
        for field, m in media_fields(record):
            try:
                media.append((field, m.type, str(resolve_media_path(m.path, root, allow_outside=allow_outside))))
            except OmniRewardError as err:
                errors.append(Problem.from_error(err, file=path, line=line, field=field))
        yield str(path), line, record, media, errors


def _other(path: Path, name: str, media_root, allow_outside: bool) -> Iterator[Checked]:
    for res in load(path, name, media_root=media_root, allow_outside_root=allow_outside):
        if not res.ok:
            yield res.file, res.line, None, [], [Problem.from_error(res.error, file=res.file, line=res.line)]
            continue
        yield res.file, res.line, res.record, [(f, m.type, m.path) for f, m in media_fields(res.record)], []


def _check_media(full: str, mtype: str, decode: bool, cache: dict) -> str | None:
    """Why the media file is unusable, or None; each file is checked once."""
    key = (mtype, full)
    if key not in cache:
        cache[key] = _media_problem(full, mtype, decode)
    return cache[key]


def _media_problem(full: str, mtype: str, decode: bool) -> str | None:
    p = Path(full)
    if not p.is_file():
        return f"media file not found: {full}"
    if p.stat().st_size == 0:
        return f"media file is empty: {full}"
    if not decode:
        return None
    kind = kinds.get(mtype)
    if kind is None or kind.decode is None:  # a kind that gives no decoder is checked for presence only
        return None
    try:  # each kind's decoder reads with small settings: enough to prove the file decodes
        kind.decode(p)
    except OmniRewardError as err:
        return f"{err.reason}: {full}"
    return None
