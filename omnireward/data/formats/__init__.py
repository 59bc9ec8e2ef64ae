"""Format readers: each turns a source (file or folder) into native records, one Result each.

    for res in load("data/omnirewardbench", "auto"):
        if res.ok: use(res.record)        # Pair / Item with absolute media paths
        else: print(res.error)            # "FILE:LINE: field: reason"

File-level problems (missing file, empty file, a malformed JSON document) raise
DataFormatError; problems with one record come back as a Result with `.error`, so a
conversion can keep going and report every refused record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from omnireward.data.formats import (
    editrewardbench,
    genaibench,
    hpdv3,
    imagerewarddb,
    mjbench,
    mmrb2,
    mmrewardbench,
    native,
    omnirewardbench,
    rewardbench,
    rewardbench2,
    sharegpt,
    trl,
    videogenrewardbench,
    vlrewardbench,
)
from omnireward.data.formats.common import Result, media_fields
from omnireward.data.formats.detect import FORMATS, detect_format
from omnireward.errors import DataFormatError

READERS = {
    "native": native.read,
    "omnirewardbench": omnirewardbench.read,
    "sharegpt": sharegpt.read,
    "trl": trl.read,
    "vlrewardbench": vlrewardbench.read,
    "genaibench": genaibench.read,
    "rewardbench": rewardbench.read,
    "videogenrewardbench": videogenrewardbench.read,
    "rewardbench2": rewardbench2.read,
    "mmrb2": mmrb2.read,
    "mmrewardbench": mmrewardbench.read,
    "editrewardbench": editrewardbench.read,
    "hpdv3": hpdv3.read,
    "imagerewarddb": imagerewarddb.read,
    "mjbench": mjbench.read,
}
# Spellings users may type for the same formats.
ALIASES = {
    "omnirewarddata": "sharegpt",
    "llamafactory": "sharegpt",
    "sharegpt_ranking": "sharegpt",
    "vl_rewardbench": "vlrewardbench",
    "genai_bench": "genaibench",
    "jsonl": "native",
    "reward_bench": "rewardbench",
    "reward-bench": "rewardbench",
    "videogen_rewardbench": "videogenrewardbench",
    "videogen-rewardbench": "videogenrewardbench",
    "reward_bench_2": "rewardbench2",
    "reward-bench-2": "rewardbench2",
    "multimodal_rewardbench_2": "mmrb2",
    "multimodal_rewardbench": "mmrewardbench",
    "editreward_bench": "editrewardbench",
    "editreward-bench": "editrewardbench",
    "mj_bench": "mjbench",
    "mj-bench": "mjbench",
}


def resolve_format(path: str | Path, fmt: str = "auto") -> str:
    """The reader name for `fmt` (`auto` detects it from the source)."""
    fmt = ALIASES.get(fmt.lower(), fmt.lower())
    if fmt == "auto":
        return detect_format(path)
    if fmt not in READERS:
        raise DataFormatError(f"unknown format {fmt!r} (expected auto or one of {', '.join(FORMATS)})", field="format")
    return fmt


def load(
    path: str | Path,
    fmt: str = "auto",
    *,
    media_root: str | Path | None = None,
    allow_outside_root: bool = False,
    check_media: bool = False,
) -> Iterator[Result]:
    """Every record of `path` read as `fmt`, converted to native records with absolute media paths.

    `check_media` also refuses records whose media files do not exist (decoding is validate's job).
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError("no such file or folder", file=path)
    name = resolve_format(path, fmt)
    yield from READERS[name](
        path,
        media_root=Path(media_root) if media_root else None,
        allow_outside=allow_outside_root,
        check_media=check_media,
    )


__all__ = ["FORMATS", "READERS", "Result", "detect_format", "load", "media_fields", "resolve_format"]
