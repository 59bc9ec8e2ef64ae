"""Low-level reading of JSONL, JSON and parquet with line numbers, and atomic JSONL writing.

Every raw object comes with the 1-based line where it starts in the file (for parquet, the
1-based row number), so that an error about a record can name `FILE:LINE`.

What streams: JSONL is read line by line and parquet in batches of rows, so memory does not
grow with the file. A JSON document (an array, or an object holding one) is parsed whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from omnireward.errors import DataFormatError, DependencyError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Keys that mark a top-level JSON object as one record rather than a wrapper around a list.
_RECORD_KEYS = {
    "prompt",
    "response",
    "response1",
    "responses",
    "chosen",
    "conversations",
    "messages",
    "query",
    "video_left",
}
_WS = " \t\r\n"


def iter_raw(path: str | Path, *, lenient: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield `(line, object)` for every record of a JSONL, JSON or parquet file.

    File-level problems (missing, empty, malformed JSON document, bad bytes in a JSON
    document, unreadable parquet) raise DataFormatError. In JSONL each line stands alone:
    with `lenient=True` a bad line yields `(line, DataFormatError)` and reading goes on;
    otherwise it raises.
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        yield from _iter_parquet(path)
        return
    if suffix in JSONL_SUFFIXES:
        yield from _iter_jsonl(path, lenient)
        return
    data = path.read_bytes()
    if not data.strip():
        raise DataFormatError("file is empty", file=path)
    # A `.json` file (or any other name) is a JSON document, unless it is JSONL in disguise.
    text = _decode(path, data)
    start = _skip_ws(text, 1 if text.startswith("\ufeff") else 0)
    try:
        doc, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise _json_error(path, e) from None
    if _skip_ws(text, end) < len(text):
        if isinstance(doc, dict):
            del text, doc
            yield from _iter_jsonl(path, lenient)
            return
        raise DataFormatError("extra data after the JSON document", file=path, line=_line_at(text, end))
    yield from _iter_document(path, text, start, doc)


def count_records(path: str | Path) -> int | None:
    """How many records a JSONL (non-blank lines) or parquet (rows) file holds; None for other files.

    Cheap (a byte scan or the parquet footer): it sizes progress bars, it does not parse.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        return None
    if suffix in PARQUET_SUFFIXES:
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001 - the reader reports an unreadable file properly
            return None
    if suffix in JSONL_SUFFIXES:
        with path.open("rb") as f:
            return sum(1 for raw in f if raw.strip())
    return None


def read_json_document(path: str | Path) -> Any:
    """Parse a whole JSON document (e.g. a dataset registry), with file/line on errors."""
    path = Path(path)
    _check_file(path)
    data = path.read_bytes()
    if not data.strip():
        raise DataFormatError("file is empty", file=path)
    try:
        return json.loads(_decode(path, data).lstrip("\ufeff"))
    except json.JSONDecodeError as e:
        raise _json_error(path, e) from None


def first_raw(path: str | Path) -> Any:
    """The first record of a file (for format detection); raises DataFormatError if none."""
    for _, obj in iter_raw(path):
        return obj
    raise DataFormatError("file holds no records", file=path)


def write_jsonl(path: str | Path, dicts: Iterable[dict]) -> int:
    """Write one JSON object per line; the file appears only once complete. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for d in dicts:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataFormatError("no such file", file=path)
    if path.is_dir():
        raise DataFormatError("expected a file, got a folder", file=path)


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataFormatError(
            f"invalid UTF-8 byte 0x{data[e.start]:02x} (files must be UTF-8)", file=path, line=line
        ) from None


def _json_error(path: Path, e: json.JSONDecodeError) -> DataFormatError:
    return DataFormatError(f"malformed JSON: {e.msg} (column {e.colno})", file=path, line=e.lineno)


def _iter_jsonl(path: Path, lenient: bool) -> Iterator[tuple[int, Any]]:
    """Line by line from the open file: memory holds one line at a time, whatever the file's size."""
    seen_any = False
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            if i == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            seen_any = True
            yield from _jsonl_line(path, i, raw.rstrip(b"\r\n"), lenient)
    if not seen_any:
        raise DataFormatError("file is empty", file=path)


def _jsonl_line(path: Path, i: int, raw: bytes, lenient: bool) -> Iterator[tuple[int, Any]]:
    """One line's object; bad bytes or bad JSON are that line's problem only."""
    try:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError(
                f"invalid UTF-8 byte 0x{raw[e.start]:02x} (files must be UTF-8)", file=path, line=i
            ) from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"malformed JSON: {e.msg} (column {e.colno})", file=path, line=i) from None
    except DataFormatError as err:
        if not lenient:
            raise
        err.raw_text = raw.decode("utf-8", errors="replace")
        yield i, err
        return
    yield i, obj


def _iter_document(path: Path, text: str, start: int, doc: Any) -> Iterator[tuple[int, Any]]:
    if isinstance(doc, list):
        yield from _scan_array(path, text, start)
        return
    if isinstance(doc, dict):
        key = _wrapped_list_key(doc)
        if key is None:
            yield _line_at(text, start), doc
            return
        yield from _scan_array(path, text, _member_value_pos(text, start, key))
        return
    raise DataFormatError(
        f"expected a list of records or an object, got {type(doc).__name__}", file=path, line=_line_at(text, start)
    )


def _wrapped_list_key(doc: dict) -> str | None:
    """The key of `{"data": [ {...}, ... ]}`-style wrappers; None when `doc` is itself a record."""
    if _RECORD_KEYS & doc.keys():
        return None
    keys = [k for k, v in doc.items() if isinstance(v, list) and all(isinstance(x, dict) for x in v)]
    if len(keys) == 1:
        return keys[0]
    for preferred in ("data", "train", "records", "examples"):
        if preferred in keys:
            return preferred
    return None


def _scan_array(path: Path, text: str, pos: int) -> Iterator[tuple[int, Any]]:
    """Yield the elements of the JSON array starting at `pos`, each with its start line."""
    decoder = json.JSONDecoder()
    i = _skip_ws(text, pos + 1)
    line, counted = 1, 0
    if text[i : i + 1] == "]":
        return
    while True:
        line += text.count("\n", counted, i)
        counted = i
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise _json_error(path, e) from None
        yield line, obj
        i = _skip_ws(text, i)
        if text[i : i + 1] == ",":
            i = _skip_ws(text, i + 1)
        elif text[i : i + 1] == "]":
            return
        else:  # unreachable for a document that json already parsed whole
            raise DataFormatError("malformed JSON array", file=path, line=_line_at(text, i))


def _member_value_pos(text: str, pos: int, key: str) -> int:
    """Position of the value of `key` in the JSON object starting at `pos` (already valid JSON)."""
    decoder = json.JSONDecoder()
    i = _skip_ws(text, pos + 1)
    while True:
        k, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ':'
        if k == key:
            return i
        _, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ','


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
    except ImportError as e:
        raise DependencyError("reading parquet needs pyarrow (pip install pyarrow)") from e
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise DataFormatError(f"not a readable parquet file ({e})", file=path) from None
    if pf.metadata.num_rows == 0:
        raise DataFormatError("file is empty (no rows)", file=path)
    row = 0
    for batch in pf.iter_batches(batch_size=1024):
        for obj in batch.to_pylist():
            row += 1
            yield row, obj
