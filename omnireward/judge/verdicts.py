"""Reading what a judge wrote: verdicts in free text, the output-format check, Flex JSON.

Pure functions of text; nothing here runs a model.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from omnireward.errors import ConfigError

if TYPE_CHECKING:
    from omnireward.judge.templates import JudgeTemplate

LABELS = ("response1", "response2", "tie")  # pairwise options, in the order verdict_probs returns them
LETTER_LABEL = {"A": "response1", "B": "response2", "C": "tie"}
SWAP_LABEL = {"response1": "response2", "response2": "response1", "tie": "tie"}

_BRACKETS = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*(?:Response\s+)?([ABC])\s*\}?\s*\}")
_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_ANSWER_WORDS = [
    (re.compile(r"^(?:response|assistant|image|video|audio|model|option)?\s*([ABC])\b", re.IGNORECASE), None),
    (re.compile(r"\b(?:response|image|video|audio|model)\s*([12])\b", re.IGNORECASE), {"1": "A", "2": "B"}),
    (re.compile(r"\b(tie|equal|equally|same)\b", re.IGNORECASE), "C"),
]


def _answer_letter(content: str) -> str | None:
    for rx, mapping in _ANSWER_WORDS:
        m = rx.search(content)
        if m:
            if mapping is None:
                return m.group(1).upper()
            return mapping if isinstance(mapping, str) else mapping[m.group(1)]
    return None


def find_verdicts(text: str) -> list[tuple[int, str, str]]:
    """Every verdict written in `text`: (position, form, letter A|B|C), in reading order."""
    found = [(m.start(), "brackets", m.group(1)) for m in _BRACKETS.finditer(text)]
    found += [(m.start(), "boxed", m.group(1)) for m in _BOXED.finditer(text)]
    for m in _ANSWER.finditer(text):
        letter = _answer_letter(m.group(1))
        if letter:
            found.append((m.start(), "answer", letter))
    obj, start = _json_object(text)
    if obj is not None:
        letter = _winner_letter(obj.get("overall_winner"))
        if letter:
            found.append((start, "json", letter))
    return sorted(found)


def parse_verdict(text: str) -> str | None:
    """The critique's own final verdict (the last one written) as A|B|C, or None."""
    found = find_verdicts(text or "")
    return found[-1][2] if found else None


def format_ok(t: JudgeTemplate, text: str) -> bool:
    """Whether a completion follows the template's output format (the GRPO format reward)."""
    text = (text or "").strip()
    if t.format == "brackets":
        # A critique first, then exactly one verdict, at the very end.
        verdicts = list(_BRACKETS.finditer(text))
        return (
            len(verdicts) == 1
            and not text[verdicts[0].end() :].strip(" .\n")
            and re.search(r"\w", text[: verdicts[0].start()]) is not None
        )
    if t.format == "think":
        return re.fullmatch(r"<think>(.+?)</think>\s*<answer>\s*[ABC]\s*</answer>", text, re.DOTALL) is not None
    if t.format in ("flex", "flex_pointwise"):
        return parse_flex(text, pointwise=t.format == "flex_pointwise") is not None
    raise ConfigError(f"unknown judge format {t.format!r}", field="format")


# ---- Flex JSON ---------------------------------------------------------------------------------
def _json_object(text: str) -> tuple[dict | None, int]:
    """The first JSON object in `text` that parses (models often wrap JSON in prose or fences)."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", text or ""):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj, m.start()
    return None, -1


def _winner_letter(v) -> str | None:
    if not isinstance(v, str):
        return None
    v = v.strip().strip("[]").strip()
    if v.upper() in ("A", "B", "C"):
        return v.upper()
    return _answer_letter(v)


def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _name(v) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(v).strip().lower()).strip("_") or "unnamed"


def _pair_dimension(d) -> dict | None:
    """A pairwise sub-dimension: its two scores rescaled to sum to 10 (0/0 becomes 5/5)."""
    if not isinstance(d, dict):
        return None
    a, b = _number(d.get("score_a")), _number(d.get("score_b"))
    if a is None or b is None or a < 0 or b < 0:
        return None
    total = a + b
    a, b = (10 * a / total, 10 * b / total) if total > 0 else (5.0, 5.0)
    return {"name": _name(d.get("name", "")), "reason": str(d.get("reason", "")), "score_a": a, "score_b": b}


def _pair_category(c: dict, dims: list[dict]) -> dict:
    sa, sb = sum(d["score_a"] for d in dims), sum(d["score_b"] for d in dims)
    winner = _winner_letter(c.get("winner")) or ("A" if sa > sb else "B" if sb > sa else "C")
    return {"winner": winner, "score_a": sa / len(dims), "score_b": sb / len(dims)}


def _pair_overall(obj: dict, cats: list[dict]) -> dict:
    overall = _winner_letter(obj.get("overall_winner"))
    if overall is None:
        votes = [c["winner"] for c in cats]
        overall = "A" if votes.count("A") > votes.count("B") else "B" if votes.count("B") > votes.count("A") else "C"
    return {"overall_winner": overall}


def _point_dimension(d) -> dict | None:
    """A pointwise sub-dimension: its score clipped to 0-10."""
    s = _number(d.get("score")) if isinstance(d, dict) else None
    if s is None:
        return None
    return {"name": _name(d.get("name", "")), "reason": str(d.get("reason", "")), "score": min(10.0, max(0.0, s))}


def _point_category(c: dict, dims: list[dict]) -> dict:
    return {"score": sum(d["score"] for d in dims) / len(dims)}


def _point_overall(obj: dict, cats: list[dict]) -> dict:
    overall = _number(obj.get("overall_score"))
    if overall is None:
        overall = sum(c["score"] for c in cats) / len(cats)
    return {"overall_score": min(10.0, max(0.0, overall))}


_FLEX_KINDS = {
    False: (_pair_dimension, _pair_category, _pair_overall),
    True: (_point_dimension, _point_category, _point_overall),
}


def parse_flex(text: str, *, pointwise: bool = False) -> dict | None:
    """Validated, normalised Flex JSON (pairwise, or `pointwise`), or None when invalid.

    The answer is an `intent`, a non-empty list of `categories`, each with a non-empty list of
    `dimensions`, and an overall judgement; any sub-dimension that does not validate makes the
    whole answer invalid.

    Pairwise: per sub-dimension the two scores are rescaled to sum to 10 (a 0/0 split becomes
    5/5); missing category winners come from the score sums, a missing overall winner from the
    category winners. Winners are A|B|C.

    Pointwise: scores are clipped to 0-10; a category's score is the mean of its dimensions', a
    missing overall score the mean of the categories'.
    """
    dimension, category, overall = _FLEX_KINDS[bool(pointwise)]
    obj, _ = _json_object(text)
    if obj is None or not isinstance(obj.get("categories"), list) or not obj["categories"]:
        return None
    cats = []
    for c in obj["categories"]:
        if not isinstance(c, dict) or not isinstance(c.get("dimensions"), list) or not c["dimensions"]:
            return None
        dims = []
        for d in c["dimensions"]:
            dim = dimension(d)
            if dim is None:
                return None
            dims.append(dim)
        cats.append({"name": _name(c.get("name", "")), "dimensions": dims, **category(c, dims)})
    return {"intent": str(obj.get("intent", "")), "categories": cats, **overall(obj, cats)}


def parse_flex_pointwise(text: str) -> dict | None:
    """`parse_flex(text, pointwise=True)`: validated pointwise Flex JSON (scores clipped to 0-10), or None."""
    return parse_flex(text, pointwise=True)


def flex_in_response_terms(flex: dict, swap: bool) -> dict:
    """Flex result with A/B mapped back to response1/response2 (undoing a swapped order)."""

    def lab(letter):
        label = LETTER_LABEL[letter]
        return SWAP_LABEL[label] if swap else label

    def sc(x):
        return (x["score_b"], x["score_a"]) if swap else (x["score_a"], x["score_b"])

    cats = {}
    for c in flex["categories"]:
        s1, s2 = sc(c)
        cats[c["name"]] = {
            "winner": lab(c["winner"]),
            "score1": s1,
            "score2": s2,
            "dimensions": {
                d["name"]: {"score1": sc(d)[0], "score2": sc(d)[1], "reason": d["reason"]} for d in c["dimensions"]
            },
        }
    return {"intent": flex["intent"], "categories": cats, "overall_winner": lab(flex["overall_winner"])}
