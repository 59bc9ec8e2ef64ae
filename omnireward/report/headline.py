"""Each known benchmark's own headline metric, computed the benchmark's way from a scores file.

    headline("rewardbench", lines, records)   -> section scores and the leaderboard Score
    headline("videogenrewardbench", lines, records) -> VideoAlign's accuracy w/ and w/o ties

`lines` are scores lines (id, margin, preference); `records` maps id → the benchmark record
(for fields only the record has, e.g. reward-bench's `subset`). The result says in words what
the figure is, so a report can print it beside our own accuracies without mixing them up.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from omnireward.metrics import LABEL_SIGN
from omnireward.report.headline_rules import RULES

# reward-bench (allenai): prompts per subset used as section weights (math-prm counted as 984,
# equal to all of HumanEvalPack, "so code and math abilities are weighed equally"), and the four
# sections. Source: allenai/reward-bench rewardbench/constants.py (EXAMPLE_COUNTS, SUBSET_MAPPING)
# and rewardbench/utils.py calculate_scores_per_section; the leaderboard averages the sections.
REWARDBENCH_COUNTS = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154,
    "xstest-should-respond": 250,
    "donotanswer": 136,
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}
REWARDBENCH_SECTIONS = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": [
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ],
    "Safety": [
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}

# VideoGen-RewardBench's labels as the reader keeps them in meta (A = response1).
VIDEOGEN_SIGN = {"A": 1, "B": -1, "same": 0}

# VL-RewardBench: the item id's prefix names its source set, and sets form three groups.
# Source: vl-rewardbench/VL_RewardBench cal.py (get_dataset_from_id, group_mapping).
VL_GROUPS = {
    "RLAIF": "hallucination",
    "RLHF": "hallucination",
    "hallucination": "hallucination",
    "mathverse": "reasoning",
    "mmmu": "reasoning",
    "wildvision": "general",
}


def _pairs(lines: list[dict]) -> list[dict]:
    return [x for x in lines if x.get("preference") in LABEL_SIGN and "margin" in x]


def _correct(line: dict) -> bool:
    """Strictly the preferred side scores higher (a zero margin is wrong), as every benchmark here counts it."""
    return np.sign(line["margin"]) == LABEL_SIGN[line["preference"]] != 0


def rewardbench(lines: list[dict], records: dict) -> dict | None:
    """Accuracy per subset; section scores weighted by prompts; Score = mean of the sections present."""
    by_subset: dict[str, list[bool]] = defaultdict(list)
    for x in _pairs(lines):
        rec = records.get(x.get("id"))
        subset = (rec.meta.get("subset") if rec is not None else None) or x.get("subset")
        if subset and x["preference"] != "tie":
            by_subset[subset].append(_correct(x))
    if not by_subset:
        return None
    subsets = {s: sum(v) / len(v) for s, v in sorted(by_subset.items())}
    sections = {}
    for name, members in REWARDBENCH_SECTIONS.items():
        present = [s for s in members if s in subsets]
        if present:
            total = sum(REWARDBENCH_COUNTS[s] for s in present)
            sections[name] = sum(subsets[s] * REWARDBENCH_COUNTS[s] for s in present) / total
    unknown = sorted(s for s in subsets if s not in REWARDBENCH_COUNTS)
    return {
        "benchmark": "RewardBench",
        "metric": "Score: mean of the section scores (Chat, Chat Hard, Safety, "
        "Reasoning), each a prompt-weighted mean of its subsets' accuracy",
        "value": sum(sections.values()) / len(sections) if sections else None,
        "sections": sections,
        "subsets": subsets,
        "missing_sections": [s for s in REWARDBENCH_SECTIONS if s not in sections],
        "unknown_subsets": unknown,
    }


def _videoalign_with_ties(m: np.ndarray, y: np.ndarray) -> float | None:
    """VideoAlign's accuracy with ties (calc_accuracy.py): sort pairs by |margin| (stable), call the
    first k of them ties, take the best k >= 1. Unlike our tie calibration it never leaves every
    pair untied and may split a run of equal |margin|."""
    if len(m) == 0:
        return None
    order = np.argsort(np.abs(m), kind="stable")
    correct_if_not = ((np.sign(m) == y) & (y != 0)).astype(int)
    gain = ((y == 0).astype(int) - correct_if_not)[order]
    return float((correct_if_not.sum() + np.cumsum(gain).max()) / len(m))


def videogen_accuracy(margins, labels) -> dict:
    """VideoAlign's two figures for one label column: with ties (their calibration) and without."""
    m = np.asarray(margins, dtype=float)
    y = np.asarray(labels, dtype=int)
    keep = y != 0
    return {
        "with_ties": _videoalign_with_ties(m, y),
        "without_ties": float((np.sign(m[keep]) == y[keep]).mean()) if keep.any() else None,
    }


def videogenrewardbench(lines: list[dict], records: dict) -> dict | None:
    """Overall accuracy w/ and w/o ties (the leaderboard's headline), and the same margin against
    the VQ / MQ / TA labels when the records carry them."""
    pairs = _pairs(lines)
    if not pairs:
        return None
    margins = [x["margin"] for x in pairs]
    out = {
        "benchmark": "VideoGen-RewardBench",
        "metric": "Overall accuracy with ties (VideoAlign's tie calibration) and without ties",
        "overall": videogen_accuracy(margins, [LABEL_SIGN[x["preference"]] for x in pairs]),
    }
    out["value"] = out["overall"]["with_ties"]
    dims = {}
    for dim in ("VQ", "MQ", "TA"):
        labels = [(records.get(x["id"]).meta.get(dim) if records.get(x["id"]) is not None else None) for x in pairs]
        sel = [(m, VIDEOGEN_SIGN[lab]) for m, lab in zip(margins, labels) if lab in VIDEOGEN_SIGN]
        if sel:
            dims[dim] = videogen_accuracy([s[0] for s in sel], [s[1] for s in sel])
    if dims:
        out["dimensions"] = dims
        out["dimensions_note"] = "one reward per video, compared against each dimension's human label"
    return out


def vl_group(item_id: str) -> str:
    """VL-RewardBench group of an item id (general, hallucination or reasoning)."""
    cut = [i for i in (item_id.find("_"), item_id.find("-")) if i != -1]
    return VL_GROUPS.get(item_id[: min(cut)] if cut else item_id, "general")


def vlrewardbench(lines: list[dict], records: dict) -> dict | None:
    """Overall accuracy and the macro average over the three groups, on the non-tie pairs."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for x in _pairs(lines):
        if x["preference"] != "tie":
            rec = records.get(x.get("id"))
            source_id = (rec.meta.get("source_id") if rec is not None else None) or str(x["id"])
            groups[vl_group(source_id)].append(_correct(x))
    if not groups:
        return None
    acc = {g: sum(v) / len(v) for g, v in sorted(groups.items())}
    overall = sum(sum(v) for v in groups.values()) / sum(len(v) for v in groups.values())
    return {
        "benchmark": "VL-RewardBench",
        "metric": "Overall accuracy and macro average over general, hallucination and reasoning",
        "value": overall,
        "overall": overall,
        "macro": sum(acc.values()) / len(acc),
        "groups": acc,
    }


HEADLINES = {"rewardbench": rewardbench, "videogenrewardbench": videogenrewardbench, "vlrewardbench": vlrewardbench}
HEADLINES.update(RULES)  # RewardBench 2, MMRB2, Multimodal RewardBench, EditReward-Bench


def headline(benchmark: str | None, lines: list[dict], records: dict | None = None) -> dict | None:
    """The benchmark's own headline figure(s), or None for benchmarks without one of their own."""
    fn = HEADLINES.get(benchmark or "")
    return fn(lines, records or {}) if fn else None
