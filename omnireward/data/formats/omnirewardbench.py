"""Omni-RewardBench: a folder of `{task}_preferences.json` files plus `media_data/`.

Media paths in the benchmark are relative to `media_data/` (or `media_root` when given);
records come out with absolute paths. Ties are kept (`criteria_preference: tie`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from omnireward.data.formats.common import (
    MESH_SUFFIXES,
    Result,
    Source,
    convert_file,
    opt_str,
    record_id,
    req_str,
    type_name,
)
from omnireward.data.records import LABELS, TASKS, Media, Pair, Response
from omnireward.errors import DataFormatError

FILE_RE = re.compile(r"^(?P<task>[A-Za-z0-9_]+?)_preferences\.(json|jsonl|parquet)$")
# Field(s) holding the prompt's media, by task; the `*_path` spelling wins when both exist
# (the Hugging Face release stores decoded media under the short name).
PROMPT_MEDIA = {
    "text_image_to_text": ("image", ("image_path", "image")),
    "text_image_to_image": ("image", ("image_path", "image")),
    "text_video_to_text": ("video", ("video_path", "video")),
    "text_audio_to_text": ("audio", ("audio_path", "audio")),
}
# Media type of the responses of generation tasks (3D is decided per path: mesh or views).
RESPONSE_MEDIA = {
    "text_to_image": "image",
    "text_image_to_image": "image",
    "text_to_video": "video",
    "text_to_audio": "audio",
    "text_to_3d": "3d",
}


def task_of(path: Path) -> str | None:
    """The task named by a `{task}_preferences.json` file name (`text_to_3D` → `text_to_3d`)."""
    m = FILE_RE.match(path.name)
    if not m:
        return None
    task = m.group("task").lower()
    return task if task in TASKS else None


def bench_files(path: Path) -> list[Path]:
    """The preference files of a benchmark folder (or the one file given)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and FILE_RE.match(p.name))
    return [path]


def read(
    path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Iterator[Result]:
    files = bench_files(path)
    if not files:
        raise DataFormatError("no {task}_preferences.json files in this folder", file=path)
    for f in files:
        task = task_of(f)
        if task is None:
            raise DataFormatError(
                "cannot tell the task from the file name (expected "
                "{task}_preferences.json with one of: " + ", ".join(TASKS) + ")",
                file=f,
            )
        root = (
            Path(media_root)
            if media_root
            else (f.parent / "media_data" if (f.parent / "media_data").is_dir() else f.parent)
        )
        yield from convert_file(f, Source(f, root, allow_outside, check_media), partial(convert, task=task))


def convert(raw: dict, line: int | None, source: Source, *, task: str) -> Pair:
    """One benchmark record of `task` as a native Pair."""
    prompt = req_str(raw, "prompt")
    criteria = opt_str(raw, "criteria")
    pref = raw.get("criteria_preference")
    if pref is None:
        raise DataFormatError("missing field", field="criteria_preference")
    if pref not in LABELS:
        raise DataFormatError(
            f"unknown preference label {pref!r} (expected response1, response2 or tie)", field="criteria_preference"
        )
    prompt_media: list[Media] = []
    if task in PROMPT_MEDIA:
        mtype, keys = PROMPT_MEDIA[task]
        key, value = _pick(raw, keys)
        prompt_media = [source.media(mtype, value, key)]
    if task in RESPONSE_MEDIA:
        r1, r2 = (_media_response(raw, k, RESPONSE_MEDIA[task], source) for k in (1, 2))
    else:
        r1, r2 = Response(text=req_str(raw, "response1")), Response(text=req_str(raw, "response2"))
    meta = {k: raw[k] for k in ("model1", "model2") if raw.get(k) is not None}
    return Pair(
        id=record_id(raw, line, source, prefix=f"{task}-"),
        task=task,
        prompt=prompt,
        response1=r1,
        response2=r2,
        preference=pref,
        criteria=criteria,
        prompt_media=prompt_media,
        meta=meta,
    )


def _pick(raw: dict, keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of `keys` holding a path (or list of paths)."""
    for key in keys:
        v = raw.get(key)
        if isinstance(v, (str, list)):
            return key, v
    for key in keys:
        if isinstance(raw.get(key), dict):
            raise DataFormatError(
                f"embedded media objects are not supported; give a path relative to media_data/ in {keys[0]!r}",
                field=key,
            )
    raise DataFormatError("missing field" + (f" (or {', '.join(keys[1:])})" if len(keys) > 1 else ""), field=keys[0])


def _media_response(raw: dict, k: int, mtype: str, source: Source) -> Response:
    key, value = _pick(raw, (f"response{k}_path", f"response{k}"))
    if mtype != "3d":
        return Response(media=[source.media(mtype, value, key)])
    # text_to_3d: a mesh file, one image of the rendered views, or a list of view images.
    paths = value if isinstance(value, list) else [value]
    if not paths:
        raise DataFormatError(f"expected a path or a non-empty list of paths, got {type_name(value)}", field=key)
    media = []
    for i, p in enumerate(paths):
        field = f"{key}[{i}]" if isinstance(value, list) else key
        is_mesh = isinstance(p, str) and p.lower().endswith(MESH_SUFFIXES)
        media.append(source.media("mesh" if is_mesh else "image", p, field))
    return Response(media=media)
