"""reward-bench (allenai/reward-bench): `prompt`, `chosen`, `rejected`, `subset`, optional
`chosen_model`, `rejected_model`, `id` (the `filtered` split, 2,985 single-turn items).

`chosen` → response1, preference `response1` (a scalar model scores each side alone, so the
order does not matter to it; `data prep --shuffle-sides` mixes sides for judges). `subset` and
the model names stay in `meta`: `omnireward eval` computes the benchmark's section scores from
`meta.subset`. Task: text_to_text.
"""

from __future__ import annotations

from omnireward.data.formats.common import Source, file_reader, record_id, req_str
from omnireward.data.records import Pair, Response

META_KEYS = ("subset", "chosen_model", "rejected_model")


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    """One reward-bench item as a text_to_text Pair (chosen → response1)."""
    prompt = req_str(raw, "prompt")
    chosen, rejected = req_str(raw, "chosen"), req_str(raw, "rejected")
    subset = req_str(raw, "subset")
    meta = {k: raw[k] for k in META_KEYS if isinstance(raw.get(k), str) and raw[k]}
    meta["subset"] = subset
    return Pair(
        id=record_id(raw, line, source),
        task="text_to_text",
        prompt=prompt,
        response1=Response(text=chosen),
        response2=Response(text=rejected),
        preference="response1",
        meta=meta,
    )


read = file_reader(convert)
