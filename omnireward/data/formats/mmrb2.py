"""Multimodal RewardBench 2 (facebookresearch/MMRB2): one JSON file per task, `t2i.json`,
`edit.json`, `interleaved.json`, `reasoning.json`, each `{"pairs": [...]}`. A pair has `id`,
`prompt_content` and `response_a` / `response_b` (`{"model_name", "response_content"}`), where
content is a list of `[kind, value]` parts (`["text", "..."]`, `["image", "images/....jpg"]`),
`chosen` (`A` | `B`), `human_annotations`, `prompt_source`, `prompt_metadata`.

`response_a` → response1, `response_b` → response2; `A` → response1, `B` → response2. Text parts
are joined with blank lines; image parts become media in order (paths relative to the JSON
file's folder, or `media_root`). `meta.mmrb2_task` is the file's task (image, edit, interleaved,
reasoning), `meta.prompt_source` and the model names are kept; `omnireward eval` reports the
benchmark's accuracy per task (each order of the pair counts as one judgement) and the
position-consistent accuracy (a pair counts only when both orders are right).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from omnireward.data.formats.common import Result, Source, convert_file, file_source, record_id, type_name
from omnireward.data.records import Media, Pair, Response, infer_task
from omnireward.errors import DataFormatError

# File stem → the benchmark's task name (compute_accuracy.py) and our task when it is fixed.
FILES = {
    "t2i": ("image", "text_to_image"),
    "edit": ("edit", "text_image_to_image"),
    "interleaved": ("interleaved", None),
    "reasoning": ("reasoning", None),
}
CHOSEN = {"A": "response1", "B": "response2"}


def bench_files(folder: Path) -> list[Path]:
    """The task files of an MMRB2 folder, in the benchmark's task order."""
    return [folder / f"{stem}.json" for stem in FILES if (folder / f"{stem}.json").is_file()]


def read(
    path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Iterator[Result]:
    """One task file, or a folder holding t2i.json, edit.json, interleaved.json and/or reasoning.json."""
    files = bench_files(path) if path.is_dir() else [path]
    if not files:
        raise DataFormatError(
            "no MMRB2 task file here (expected t2i.json, edit.json, interleaved.json or reasoning.json)", file=path
        )
    for f in files:
        yield from convert_file(f, file_source(f, media_root, allow_outside, check_media), convert)


def is_mmrb2(raw: dict) -> bool:
    return "prompt_content" in raw and "response_a" in raw and "chosen" in raw


def task_of_file(path: Path) -> str:
    stem = path.stem.lower()
    return FILES[stem][0] if stem in FILES else stem


def _content(value, field: str, source: Source) -> tuple[str, list[Media]]:
    if not isinstance(value, list) or not value:
        raise DataFormatError(f"expected a non-empty list of [kind, value] parts, got {type_name(value)}", field=field)
    texts, media = [], []
    for i, part in enumerate(value):
        f = f"{field}[{i}]"
        if not isinstance(part, list) or len(part) != 2 or not isinstance(part[1], str):
            raise DataFormatError(f"expected a [kind, value] pair of strings, got {part!r}"[:200], field=f)
        kind, v = part
        if kind == "text":
            texts.append(v)
        elif kind == "image":
            media.append(source.media("image", v, f))
        else:
            raise DataFormatError(f"unknown part kind {kind!r} (expected text or image)", field=f)
    return "\n\n".join(t for t in texts if t.strip()), media


def _response(raw: dict, key: str, source: Source) -> tuple[Response, str | None]:
    r = raw.get(key)
    if not isinstance(r, dict):
        raise DataFormatError(f"expected an object with response_content, got {type_name(r)}", field=key)
    text, media = _content(r.get("response_content"), f"{key}.response_content", source)
    name = r.get("model_name")
    return Response(text=text, media=media), (name if isinstance(name, str) else None)


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    """One MMRB2 pair; its task comes from the file name (t2i, edit, interleaved, reasoning)."""
    prompt, prompt_media = _content(raw.get("prompt_content"), "prompt_content", source)
    r1, m1 = _response(raw, "response_a", source)
    r2, m2 = _response(raw, "response_b", source)
    chosen = raw.get("chosen")
    if chosen not in CHOSEN:
        raise DataFormatError(f"unknown label {chosen!r} (expected A or B)", field="chosen")
    bench_task = task_of_file(source.file)
    fixed = FILES.get(source.file.stem.lower(), (None, None))[1]
    meta = {"mmrb2_task": bench_task}
    if isinstance(raw.get("prompt_source"), str):
        meta["prompt_source"] = raw["prompt_source"]
    if m1 or m2:
        meta["models"] = [m1, m2]
    if isinstance(raw.get("human_annotations"), list):
        meta["human_annotations"] = raw["human_annotations"]
    return Pair(
        id=record_id(raw, line, source),
        task=fixed or infer_task(prompt_media, [r1, r2]),
        prompt=prompt,
        response1=r1,
        response2=r2,
        preference=CHOSEN[chosen],
        prompt_media=prompt_media,
        meta=meta,
    )
