"""HPDv3 (MizzenAI/HPDv3, the HPSv3 preference set), as LightRFT's `HPDv3Handler` reads it: a JSON
or JSONL list of pairs `prompt`, `path1` (the preferred image), `path2`, `model1`, `model2`,
optional `confidence` and `choice_dist`; image paths relative to the file's folder (or
`media_root`).

`path1` → response1 with `preference: response1` (a scalar model scores each image alone;
`data prep --shuffle-sides` mixes sides for judges). Pairs train with the BT loss (and with
`loss=plackett_luce`, which equals BT for two responses). Task: text_to_image.
"""

from __future__ import annotations

from omnireward.data.formats.common import Source, file_reader, record_id, req_str
from omnireward.data.records import Pair, Response


def is_hpdv3(raw: dict) -> bool:
    return {"prompt", "path1", "path2"} <= raw.keys()


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    prompt = req_str(raw, "prompt")
    a = source.media("image", raw.get("path1"), "path1")
    b = source.media("image", raw.get("path2"), "path2")
    meta = {k: raw[k] for k in ("model1", "model2", "confidence", "choice_dist") if raw.get(k) is not None}
    return Pair(
        id=record_id(raw, line, source),
        task="text_to_image",
        prompt=prompt,
        response1=Response(media=[a]),
        response2=Response(media=[b]),
        preference="response1",
        meta=meta,
    )


read = file_reader(convert)
