"""Multimodal RewardBench (facebookresearch/multimodal_rewardbench, `data/all_data.json`): a list
of items with `ID`, `Text` (the prompt), `Image` (a path under `data/`, e.g.
`images/nocaps/13062.jpg`), `Output1`, `Output2`, `Better` (`Output1` | `Output2`) and `Category`.

`Output1` → response1, `Output2` → response2, `Better` names the preferred one. The image path is
relative to the file's folder (the release keeps `all_data.json` beside `images/`), or
`media_root`. `meta` keeps `category` and its split as the benchmark's `2_get_accuracy.py`
counts it (safety → safety/bias when the ID starts with `pairs`, else safety/toxicity; reasoning
→ reasoning/math when the ID starts with `math`, else reasoning/coding); `omnireward eval` reports
accuracy per category and overall. Task: text_image_to_text.
"""

from __future__ import annotations

from omnireward.data.formats.common import Source, file_reader, req_str
from omnireward.data.records import Pair, Response
from omnireward.errors import DataFormatError

BETTER = {"Output1": "response1", "Output2": "response2"}


def is_mmrewardbench(raw: dict) -> bool:
    return {"Output1", "Output2", "Better"} <= raw.keys()


def category_of(item_id: str, category: str) -> str:
    """The category as 2_get_accuracy.py counts it (safety and reasoning split by the ID's prefix)."""
    low = item_id.lower()
    if category == "safety":
        return "safety/bias" if low.startswith("pairs") else "safety/toxicity"
    if category == "reasoning":
        return "reasoning/math" if low.startswith("math") else "reasoning/coding"
    return category


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    item_id = req_str(raw, "ID")
    text = req_str(raw, "Text")
    out1, out2 = req_str(raw, "Output1"), req_str(raw, "Output2")
    better = raw.get("Better")
    if better not in BETTER:
        raise DataFormatError(f"unknown label {better!r} (expected Output1 or Output2)", field="Better")
    image = source.media("image", raw.get("Image"), "Image")
    category = req_str(raw, "Category")
    return Pair(
        id=item_id,
        task="text_image_to_text",
        prompt=text,
        prompt_media=[image],
        response1=Response(text=out1),
        response2=Response(text=out2),
        preference=BETTER[better],
        meta={"category": category_of(item_id, category), "source_category": category},
    )


read = file_reader(convert)
