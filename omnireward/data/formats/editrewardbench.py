"""EditReward-Bench (TIGER-Lab/EditReward-Bench, read by EditReward's
`evaluate/inference_{2,3,4}pair_hf.py`): one row per pairwise comparison of two edits of one
source image: `id`, `instruction`, `source_image`, `candidate_1`, `candidate_2`, `ranking`
(`A>B`, `B>A`, `A=B`; in the 3- and 4-candidate sets also `A>C`, `C>B`, ...), `comparison_type`
(`AvsB`, `AvsC`, ...), `dataset` (`2pair`, `3pair`, `4pair`), optional `score_1`, `score_2`,
`model_1`, `model_2`.

The Hugging Face release embeds images; exported to JSON/JSONL/parquet they are paths (a string,
or an object with `path`), relative to the file's folder or `media_root`. `source_image` →
prompt image, `instruction` → prompt, `candidate_1` → response1 (the left letter of
`comparison_type`), `candidate_2` → response2; `X>Y` with X the left letter → response1, with X
the right letter → response2; `X=Y` → tie. `meta` keeps `dataset`, `comparison_type`, the group
(the id before its first `_`, how EditReward groups comparisons of one sample) and the scores and
model names; `omnireward eval` reports pair accuracy and group accuracy (a group counts only
when all its comparisons are right). Task: text_image_to_image.
"""

from __future__ import annotations

import re

from omnireward.data.formats.common import Source, file_reader, record_id, req_str, type_name
from omnireward.data.records import Pair, Response
from omnireward.errors import DataFormatError

_RANK = re.compile(r"^\s*([A-D])\s*([<>=])\s*([A-D])\s*$")
_TYPE = re.compile(r"^([A-D])vs([A-D])$")


def is_editrewardbench(raw: dict) -> bool:
    return {"instruction", "source_image", "candidate_1", "candidate_2", "ranking"} <= raw.keys()


def _image(raw: dict, key: str, source: Source):
    v = raw.get(key)
    if isinstance(v, dict):
        v, key = v.get("path"), f"{key}.path"
    if not isinstance(v, str):
        raise DataFormatError(
            f"expected an image path (a string or an object with path), got {type_name(v)}", field=key
        )
    return source.media("image", v, key)


def group_of(item_id: str) -> str:
    """EditReward's group key: the id before its first `_` (the whole id when it has none)."""
    return item_id.split("_")[0] if "_" in item_id else item_id


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    instruction = req_str(raw, "instruction")
    src = _image(raw, "source_image", source)
    c1, c2 = _image(raw, "candidate_1", source), _image(raw, "candidate_2", source)
    left, right = "A", "B"
    ctype = raw.get("comparison_type")
    if ctype is not None:
        m = _TYPE.match(str(ctype))
        if not m:
            raise DataFormatError(f"unknown comparison type {ctype!r} (expected like AvsB)", field="comparison_type")
        left, right = m.groups()
    ranking = raw.get("ranking")
    m = _RANK.match(ranking) if isinstance(ranking, str) else None
    if not m or {m.group(1), m.group(3)} != {left, right}:
        raise DataFormatError(
            f"unknown ranking {ranking!r} (expected {left}>{right}, {right}>{left} or {left}={right})", field="ranking"
        )
    x, op, y = m.groups()
    if op == "=":
        pref = "tie"
    else:
        winner = x if op == ">" else y
        pref = "response1" if winner == left else "response2"
    rid = record_id(raw, line, source)
    meta = {"group": group_of(str(raw["id"]) if raw.get("id") is not None else rid), "ranking": ranking.strip()}
    for k in ("dataset", "comparison_type", "model_1", "model_2", "score_1", "score_2"):
        if raw.get(k) is not None:
            meta[k] = raw[k]
    return Pair(
        id=rid,
        task="text_image_to_image",
        prompt=instruction,
        prompt_media=[src],
        response1=Response(media=[c1]),
        response2=Response(media=[c2]),
        preference=pref,
        meta=meta,
    )


read = file_reader(convert)
