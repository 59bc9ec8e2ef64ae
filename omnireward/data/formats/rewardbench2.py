"""RewardBench 2 (allenai/reward-bench-2, `test` split): `id`, `prompt`, `chosen` (a list: one
completion, several in the Ties subset), `rejected` (a list, three outside Ties), `num_correct`,
`total_completions`, `subset` (Factuality, Precise IF, Math, Safety, Focus, Ties), optional
`models` and other columns.

Each row becomes a Group: the chosen completions first, then the rejected ones, `best = 0`
(a scalar model scores each completion alone, so the order does not matter to it).
`meta` keeps `subset`, `num_correct` and, when present, `models`; `omnireward eval` computes
the benchmark's own figures from them (best-of-4 accuracy per domain, the Ties rule). Ties ids
read `ref:N` (one correct answer) or `tied:N` (several). Task: text_to_text.
"""

from __future__ import annotations

from omnireward.data.formats.common import Source, file_reader, record_id, req_str, type_name
from omnireward.data.records import Group, Response
from omnireward.errors import DataFormatError

DOMAINS = ("Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties")


def is_rewardbench2(raw: dict) -> bool:
    """A RewardBench 2 row: `chosen` and `rejected` are lists and `num_correct` is given."""
    return isinstance(raw.get("chosen"), list) and isinstance(raw.get("rejected"), list) and "num_correct" in raw


def _texts(raw: dict, key: str) -> list[str]:
    v = raw.get(key)
    if not isinstance(v, list) or not v:
        raise DataFormatError(
            f"expected a non-empty list of completions, got {type_name(v)}"
            + (" (empty)" if isinstance(v, list) else ""),
            field=key,
        )
    for i, t in enumerate(v):
        if not isinstance(t, str) or not t.strip():
            raise DataFormatError(f"expected a non-empty string, got {type_name(t)}", field=f"{key}[{i}]")
    return v


def _count(raw: dict, key: str) -> int | None:
    v = raw.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise DataFormatError(f"expected a positive whole number, got {v!r}", field=key)
    return v


def convert(raw: dict, line: int | None, source: Source) -> Group:
    """One RewardBench 2 row as a text_to_text Group, chosen completions first."""
    prompt = req_str(raw, "prompt")
    chosen, rejected = _texts(raw, "chosen"), _texts(raw, "rejected")
    subset = req_str(raw, "subset")
    num_correct = _count(raw, "num_correct")
    if num_correct is None:
        raise DataFormatError("missing field", field="num_correct")
    if num_correct != len(chosen):
        raise DataFormatError(f"{num_correct} but chosen holds {len(chosen)} completion(s)", field="num_correct")
    total = _count(raw, "total_completions")
    if total is not None and total != len(chosen) + len(rejected):
        raise DataFormatError(
            f"{total} but chosen and rejected hold {len(chosen) + len(rejected)}", field="total_completions"
        )
    if subset.lower() == "ties" and ":" not in str(raw.get("id", "")):
        raise DataFormatError(f"a Ties row's id reads ref:N or tied:N, got {raw.get('id')!r}", field="id")
    meta: dict = {"subset": subset, "num_correct": num_correct}
    if isinstance(raw.get("models"), list):
        meta["models"] = [str(m) for m in raw["models"]]
    return Group(
        id=record_id(raw, line, source),
        task="text_to_text",
        prompt=prompt,
        responses=[Response(text=t) for t in chosen + rejected],
        best=0,
        meta=meta,
    )


read = file_reader(convert)
