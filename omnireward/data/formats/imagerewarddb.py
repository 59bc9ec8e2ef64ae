"""ImageRewardDB (THUDM / zai-org ImageRewardDB): one entry per generated image, `prompt_id`,
`prompt`, `image_path`, `rank` (1 = best within its prompt), optional `overall_rating`,
`image_text_alignment_rating`, `fidelity_rating`, `classification`, in JSON shards or the
`metadata-{split}.parquet` files.

The entries of one `prompt_id` become one Group: responses in file order, `ranking` = indices by
rank (best first) when every rank differs, and `best` when exactly one image has the top rank;
`meta.ranks` keeps the ranks as given. Groups train with `loss=plackett_luce` (or as their ordered
pairs). Image paths resolve against `media_root`, else the folder above the file's folder (where
LightRFT's `ImageRewardDBHandler` resolves them: shards sit one level below the dataset root).
An entry that cannot be read is refused with its line; a prompt with fewer than two images is
refused naming the line of its entry. Task: text_to_image.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from omnireward.data.formats.common import Result, Source, attempt, req_str, type_name
from omnireward.data.io import iter_raw
from omnireward.data.records import Group, Media, Response
from omnireward.errors import DataFormatError, OmniRewardError

RATINGS = ("overall_rating", "image_text_alignment_rating", "fidelity_rating")


def is_imagerewarddb(raw: dict) -> bool:
    return {"prompt_id", "image_path", "rank"} <= raw.keys()


def _entry(raw, source: Source) -> tuple[str, str, Media, int, dict]:
    if not isinstance(raw, dict):
        raise DataFormatError(f"expected a JSON object, got {type_name(raw)}")
    pid = raw.get("prompt_id")
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or not str(pid).strip():
        raise DataFormatError(f"expected a string or number, got {type_name(pid)}", field="prompt_id")
    prompt = req_str(raw, "prompt")
    image = source.media("image", raw.get("image_path"), "image_path")
    rank = raw.get("rank")
    if isinstance(rank, bool) or not isinstance(rank, (int, float)) or rank != int(rank) or rank < 1:
        raise DataFormatError(f"expected a whole number >= 1, got {rank!r}", field="rank")
    extra = {k: raw[k] for k in RATINGS + ("classification",) if raw.get(k) is not None}
    return str(pid), prompt, image, int(rank), extra


def read(
    path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Iterator[Result]:
    root = Path(media_root) if media_root else path.parent.parent
    source = Source(path, root, allow_outside, check_media)
    groups: dict[str, list[tuple[int, dict, str, Media, int, dict]]] = {}
    for line, raw in iter_raw(path, lenient=True):
        if isinstance(raw, OmniRewardError):
            yield Result(str(path), line, getattr(raw, "raw_text", None), error=raw)
            continue
        try:
            pid, prompt, image, rank, extra = _entry(raw, source)
        except OmniRewardError as err:
            yield Result(str(path), line, raw, error=err.at(file=path, line=line))
            continue
        groups.setdefault(pid, []).append((line, raw, prompt, image, rank, extra))
    for pid, entries in groups.items():
        line = entries[0][0]
        yield attempt(path, line, [e[1] for e in entries], partial(_group, pid, entries))


def _group(pid: str, entries) -> Group:
    if len(entries) < 2:
        raise DataFormatError(
            f"prompt_id {pid!r} has {len(entries)} image; a ranking needs two or more", field="prompt_id"
        )
    prompts = {e[2] for e in entries}
    if len(prompts) > 1:
        raise DataFormatError(f"prompt_id {pid!r} carries {len(prompts)} different prompts", field="prompt")
    ranks = [e[4] for e in entries]
    order = sorted(range(len(ranks)), key=lambda i: ranks[i])
    distinct = len(set(ranks)) == len(ranks)
    top = [i for i, r in enumerate(ranks) if r == min(ranks)]
    meta = {"prompt_id": pid, "ranks": ranks}
    ratings = {k: [e[5].get(k) for e in entries] for k in RATINGS if any(k in e[5] for e in entries)}
    meta.update(ratings)
    cls = entries[0][5].get("classification")
    if cls is not None:
        meta["classification"] = cls
    return Group(
        id=f"imagerewarddb-{pid}",
        task="text_to_image",
        prompt=entries[0][2],
        responses=[Response(media=[e[3]]) for e in entries],
        ranking=order if distinct else None,
        best=top[0] if len(top) == 1 else None,
        meta=meta,
    )
