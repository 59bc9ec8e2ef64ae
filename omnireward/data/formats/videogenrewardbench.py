"""VideoGen-RewardBench (VideoAlign, KwaiVGI/VideoGen-RewardBench): a CSV with one row per
pair of generated videos: `path_A`, `path_B`, `prompt`, human labels `Overall`, `VQ` (visual
quality), `MQ` (motion quality), `TA` (text alignment), each `A` | `B` | `same`, and optional
`A_model`, `B_model`, `fps_*`, `num_frames_*`.

`path_A` → response1, `path_B` → response2; the preference is `Overall` (`A` → response1, `B` →
response2, `same` → tie). VQ / MQ / TA become per-dimension labels `visual_quality`,
`motion_quality`, `text_alignment` (the pair's preference object, which trains `head=multi`), and
stay in `meta` with the model names, where `omnireward eval` finds them for the benchmark's own
per-dimension accuracies. Paths are relative to the CSV's
folder (or `media_root`). Rows have no id: `<file stem>-<line>`. Task: text_to_video.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from omnireward.data.formats.common import Result, Source, attempt, file_source, record_id, req_str
from omnireward.data.records import Pair, Response
from omnireward.errors import DataFormatError

LABELS = {"A": "response1", "B": "response2", "same": "tie"}
DIMENSIONS = ("VQ", "MQ", "TA")
# The names of the benchmark's dimensions as preference keys (and `head.dimensions` of head=multi).
DIMENSION_NAMES = {"VQ": "visual_quality", "MQ": "motion_quality", "TA": "text_alignment"}
REQUIRED = ("path_A", "path_B", "prompt", "Overall")


def header(path: Path) -> list[str]:
    """The CSV's column names ([] when the file is empty or not text)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def is_videogen_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and {"path_A", "path_B", "prompt"} <= set(header(path))


def iter_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, row) for every CSV row; the line is where the row starts (header is line 1)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(
                f"missing column(s) {', '.join(missing)} (a VideoGen-RewardBench CSV has {', '.join(REQUIRED)})",
                file=path,
                line=1,
            )
        start = 2
        for row in reader:
            yield start, row
            start = reader.line_num + 1


def read(
    path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Iterator[Result]:
    source = file_source(path, media_root, allow_outside, check_media)
    try:
        rows = list(iter_rows(path))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataFormatError(f"not a readable CSV ({e})", file=path) from None
    if not rows:
        raise DataFormatError("the CSV holds no rows", file=path)
    for line, row in rows:
        yield attempt(path, line, row, partial(convert, row, line, source))


def _label(row: dict, key: str) -> str:
    v = (row.get(key) or "").strip()
    if v not in LABELS:
        raise DataFormatError(f"unknown label {v!r} (expected A, B or same)", field=key)
    return v


def convert(row: dict, line: int | None, source: Source) -> Pair:
    """One CSV row as a text_to_video Pair."""
    prompt = req_str(row, "prompt")
    a = source.media("video", (row.get("path_A") or "").strip(), "path_A")
    b = source.media("video", (row.get("path_B") or "").strip(), "path_B")
    overall = _label(row, "Overall")
    meta = {d: _label(row, d) for d in DIMENSIONS if (row.get(d) or "").strip()}
    dims = {DIMENSION_NAMES[d]: LABELS[v] for d, v in meta.items() if d in DIMENSION_NAMES}
    meta.update({k: row[k] for k in ("A_model", "B_model") if row.get(k)})
    return Pair(
        id=record_id(row, line, source),
        task="text_to_video",
        prompt=prompt,
        response1=Response(media=[a]),
        response2=Response(media=[b]),
        preference=LABELS[overall],
        meta=meta,
        dimension_preferences=dims,
    )
