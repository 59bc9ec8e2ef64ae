"""MJ-Bench (MJ-Bench/MJ-Bench on the Hugging Face Hub; github.com/MJ-Bench/MJ-Bench): text-to-image
preference pairs in four subsets, `alignment`, `safety`, `quality` and `bias`. Each row: `caption`
(the text-to-image prompt), `image0`, `image1`, `label` (0: image0 is preferred, 1: image1) and
`info` (the sub-category, e.g. `object`, `nsfw_evident`; for bias the demographic).

The Hub release embeds the images; exported to JSON, JSONL or parquet (one file per subset, named
after it: `alignment.jsonl`, ...) they are paths (a string, or an object with `path`) relative to
the file's folder or `media_root`. Also read: `label0`/`label1` (or `label_0`/`label_1`), the
Pick-a-Pic-style probabilities the repository's `utils/rm_utils.get_label` reads (1/0: image0,
0/1: image1, 0.5/0.5: tie). The subset comes from a row's `perspective` or `subset` field, else
from the file name.

`caption` → prompt, `image0` → response1, `image1` → response2. A bias row shows one image twice
(image0 == image1: the benchmark scores each image alone and compares the scores across
demographics): it becomes a pointwise item of that image, with `meta.demographic` (its `info`) and
`meta.group` (its `occupation` when the row has one, else its caption). Task: text_to_image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from omnireward.data.formats.common import Result, Source, convert_file, file_source, record_id, req_str, type_name
from omnireward.data.records import Item, Pair, Response
from omnireward.errors import DataFormatError

PERSPECTIVES = ("alignment", "safety", "quality", "bias")
LABEL = {0: "response1", 1: "response2"}


def read(
    path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Iterator[Result]:
    files = bench_files(path) if path.is_dir() else [path]
    if not files:
        raise DataFormatError(f"no MJ-Bench subset files ({', '.join(PERSPECTIVES)}.json[l]|.parquet)", file=path)
    for f in files:
        source = file_source(f, media_root, allow_outside, check_media)
        subset = perspective_of(f)  # the file's subset, for rows that do not name theirs
        yield from convert_file(f, source, lambda raw, line, src, subset=subset: convert(raw, line, src, subset))


def perspective_of(path: Path) -> str | None:
    """The subset a file holds, from its name (`alignment.jsonl`, `mjbench_safety.parquet`, ...)."""
    stem = path.name.split(".")[0].lower()
    hits = [p for p in PERSPECTIVES if p in stem]
    return hits[0] if len(hits) == 1 else None


def bench_files(folder: Path) -> list[Path]:
    """A folder's subset files, in the benchmark's order."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".json", ".jsonl", ".parquet") and perspective_of(p):
            out.append(p)
    return sorted(out, key=lambda p: PERSPECTIVES.index(perspective_of(p)))


def is_mjbench(raw: dict) -> bool:
    keys = raw.keys()
    return {"caption", "image0", "image1"} <= keys and bool({"label", "label0", "label_0"} & keys)


def _image(raw: dict, key: str, source: Source):
    v = raw.get(key)
    if isinstance(v, dict):
        v, key = v.get("path"), f"{key}.path"
    if not isinstance(v, str) or not v:
        raise DataFormatError(
            f"expected an image path (a string or an object with path), got {type_name(v)}", field=key
        )
    return source.media("image", v, key), v


def _preference(raw: dict) -> str:
    if "label" in raw:
        v = raw["label"]
        if isinstance(v, bool) or v not in LABEL:
            raise DataFormatError(f"expected 0 (image0 preferred) or 1 (image1), got {v!r}", field="label")
        return LABEL[v]
    k0, k1 = ("label0", "label1") if "label0" in raw else ("label_0", "label_1")
    a, b = raw.get(k0), raw.get(k1)
    for k, v in ((k0, a), (k1, b)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in (0, 0.5, 1):
            raise DataFormatError(f"expected 0, 0.5 or 1, got {v!r}", field=k)
    if a + b != 1:
        raise DataFormatError(f"{k0} and {k1} must sum to 1, got {a} and {b}", field=k0)
    return "tie" if a == 0.5 else ("response1" if a == 1 else "response2")


def convert(raw: dict, line: int | None, source: Source, subset: str | None = None) -> Pair | Item:
    caption = req_str(raw, "caption")
    perspective = raw.get("perspective") or raw.get("subset") or subset
    if perspective is not None and str(perspective).lower() not in PERSPECTIVES:
        raise DataFormatError(f"unknown subset {perspective!r} (expected one of {', '.join(PERSPECTIVES)})")
    perspective = str(perspective).lower() if perspective else "unknown"
    img0, p0 = _image(raw, "image0", source)
    img1, p1 = _image(raw, "image1", source)
    rid = record_id(raw, line, source)
    if perspective != "unknown" and not str(rid).startswith(perspective):
        rid = f"{perspective}:{rid}"  # row numbers restart in every subset file
    info = raw.get("info")
    meta = {"perspective": perspective}
    if info not in (None, ""):
        meta["subcategory"] = info if isinstance(info, str) else str(info)
    if p0 == p1:  # one image shown twice: scored alone (the bias subset)
        meta["demographic"] = meta.pop("subcategory", None)
        meta["group"] = str(raw.get("occupation") or caption)
        return Item(id=rid, task="text_to_image", prompt=caption, response=Response(media=[img0]), meta=meta)
    return Pair(
        id=rid,
        task="text_to_image",
        prompt=caption,
        response1=Response(media=[img0]),
        response2=Response(media=[img1]),
        preference=_preference(raw),
        meta=meta,
    )
