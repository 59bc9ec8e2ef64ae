"""VL-RewardBench metadata (`query`, two `response`s, `image`, `human_ranking`).

`human_ranking` gives each response's rank (0 = better): `[0, 1]` → response1, `[1, 0]` →
response2, equal ranks → tie. The image path is relative to the metadata file's folder
(the release keeps images in `images/`), or to `media_root` when given.
"""

from __future__ import annotations

from omnireward.data.formats.common import Source, file_reader, record_id, req_str, type_name
from omnireward.data.records import Pair, Response
from omnireward.errors import DataFormatError

META_KEYS = ("models", "judge", "query_source", "ground_truth", "rationale")


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    """One VL-RewardBench item as a text_image_to_text Pair."""
    query = req_str(raw, "query")
    responses = raw.get("response")
    if not isinstance(responses, list) or len(responses) != 2:
        raise DataFormatError(
            f"expected a list of two responses, got {type_name(responses)}"
            + (f" of {len(responses)}" if isinstance(responses, list) else ""),
            field="response",
        )
    for i, r in enumerate(responses):
        if not isinstance(r, str) or not r.strip():
            raise DataFormatError(f"expected a non-empty string, got {type_name(r)}", field=f"response[{i}]")
    ranking = raw.get("human_ranking")
    if (
        not isinstance(ranking, list)
        or len(ranking) != 2
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in ranking)
    ):
        raise DataFormatError(f"expected two numeric ranks like [0, 1], got {ranking!r}", field="human_ranking")
    pref = "tie" if ranking[0] == ranking[1] else ("response1" if ranking[0] < ranking[1] else "response2")
    image = source.media("image", raw.get("image"), "image")
    meta = {k: raw[k] for k in META_KEYS if raw.get(k) not in (None, "", [])}
    return Pair(
        id=record_id(raw, line, source),
        task="text_image_to_text",
        prompt=query,
        response1=Response(text=responses[0]),
        response2=Response(text=responses[1]),
        preference=pref,
        prompt_media=[image],
        meta=meta,
    )


read = file_reader(convert)
