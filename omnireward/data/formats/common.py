"""What every format reader shares: the per-record Result, media resolution, ids, text helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omnireward.data.io import iter_raw
from omnireward.data.paths import resolve_media_path
from omnireward.data.records import Media, Record, response_fields, responses_of
from omnireward.errors import DataFormatError, MediaError, OmniRewardError

# 3D assets given as mesh files rather than rendered views.
MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")


@dataclass
class Result:
    """One source record: either the converted `record` or the `error` that refused it."""

    file: str
    line: int | None
    raw: Any
    record: Record | None = None
    error: OmniRewardError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Source:
    """Where a record comes from and how its media paths resolve."""

    file: Path
    root: Path
    allow_outside: bool = False
    check_exists: bool = False

    def default_id(self, line: int | None) -> str:
        return f"{self.file.stem}-{line}"

    def media(self, mtype: str, path: Any, field: str) -> Media:
        """A Media item with an absolute path, refusing paths that escape the media root."""
        if not isinstance(path, str) or not path.strip():
            raise DataFormatError(f"expected a media path string, got {type_name(path)}", field=field)
        try:
            full = resolve_media_path(path, self.root, allow_outside=self.allow_outside)
        except OmniRewardError as err:
            err.at(field=field)
            raise
        if self.check_exists and not full.is_file():
            raise MediaError(f"media file not found: {str(full)!r}", field=field)
        return Media(mtype, str(full))


def file_source(
    path: Path, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Source:
    """The Source of one file whose media paths resolve against its own folder, or `media_root` when given."""
    return Source(path, Path(media_root) if media_root else path.parent, allow_outside, check_media)


def attempt(path: Path, line: int | None, raw: Any, build: Callable[[], Record]) -> Result:
    """The Result of one source record: the record `build()` returns, or the error it raised, placed
    at the file and line."""
    try:
        record = build()
    except OmniRewardError as err:
        return Result(str(path), line, raw, error=err.at(file=path, line=line))
    return Result(str(path), line, raw, record=record)


def convert_file(path: Path, source: Source, convert: Callable[[Any, int, Source], Record]) -> Iterator[Result]:
    """Run `convert(raw, line, source)` over every raw record of `path`, catching per-record errors."""
    for line, raw in iter_raw(path, lenient=True):
        if isinstance(raw, OmniRewardError):
            yield Result(str(path), line, getattr(raw, "raw_text", None), error=raw)
            continue
        yield attempt(path, line, raw, partial(_convert_object, convert, raw, line, source))


def _convert_object(convert: Callable[[Any, int, Source], Record], raw: Any, line: int, source: Source) -> Record:
    if not isinstance(raw, dict):
        raise DataFormatError(f"expected a JSON object, got {type_name(raw)}")
    return convert(raw, line, source)


def file_reader(
    convert: Callable[[Any, int, Source], Record], doc: str | None = None
) -> Callable[..., Iterator[Result]]:
    """The `read` of a format whose file holds one raw record per source record, each converted
    alone by `convert(raw, line, source)`; media paths resolve against the file's folder, or
    `media_root` when given."""

    def read(
        path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
    ) -> Iterator[Result]:
        yield from convert_file(path, file_source(path, media_root, allow_outside, check_media), convert)

    read.__module__, read.__qualname__ = convert.__module__, "read"
    read.__doc__ = doc
    return read


def resolve_record(record: Record, source: Source) -> Record:
    """Make every media path of a native record absolute (native field names in errors)."""
    record.prompt_media = [
        source.media(m.type, m.path, f"prompt_media[{i}].path") for i, m in enumerate(record.prompt_media)
    ]
    for name, resp in zip(response_fields(record), responses_of(record)):
        resp.media = [source.media(m.type, m.path, f"{name}.media[{i}].path") for i, m in enumerate(resp.media)]
    return record


def media_fields(record: Record) -> list[tuple[str, Media]]:
    """Every media item of a record with its native field name."""
    out = [(f"prompt_media[{i}].path", m) for i, m in enumerate(record.prompt_media)]
    for name, resp in zip(response_fields(record), responses_of(record)):
        out += [(f"{name}.media[{i}].path", m) for i, m in enumerate(resp.media)]
    return out


def req_str(d: dict, key: str, *, allow_empty: bool = False) -> str:
    """A required string field."""
    if key not in d or d[key] is None:
        raise DataFormatError("missing field", field=key)
    v = d[key]
    if not isinstance(v, str):
        raise DataFormatError(f"expected a string, got {type_name(v)}", field=key)
    if not allow_empty and not v.strip():
        raise DataFormatError("empty string", field=key)
    return v


def opt_str(d: dict, key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise DataFormatError(f"expected a string, got {type_name(v)}", field=key)
    return v or None


def record_id(raw: dict, line: int | None, source: Source, prefix: str = "") -> str:
    """The source's own id when it has one, else `<file stem>-<line>` (stable across runs)."""
    rid = raw.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        return source.default_id(line)
    return f"{prefix}{rid}"


def render_transcript(messages: list[dict]) -> str:
    """A multi-turn prompt as plain text: `System: ...`, `User: ...`, `Assistant: ...` blocks."""
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    return "\n\n".join(f"{names.get(m['role'], m['role'].title())}: {m['content']}" for m in messages)


def prompt_from_messages(messages: list[dict]) -> str:
    """One user turn stays as its text; anything longer (history, a system turn) is a transcript."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return render_transcript(messages)


def type_name(v: Any) -> str:
    return (
        "null"
        if v is None
        else {
            "str": "a string",
            "list": "a list",
            "dict": "an object",
            "int": "a number",
            "float": "a number",
            "bool": "a boolean",
        }.get(type(v).__name__, type(v).__name__)
    )
