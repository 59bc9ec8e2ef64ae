"""Group scores for RL: every pair of a prompt's candidates judged, per-candidate win rates,
overall and per Flex category, and their weighted mix."""

from __future__ import annotations

from itertools import combinations

from omnireward.data.records import Pair, Record, Response
from omnireward.errors import ConfigError
from omnireward.scoring.judge_infer import Judge, Sampling

DEFAULT_WEIGHTS = {"overall": 1.0, "semantic_alignment": 1.0, "quality": 1.0, "aesthetics": 1.0, "personalised": 1.0}


def group_scores(
    record: Record,
    candidates: list[Response],
    judge: Judge,
    *,
    weights: dict | None = None,
    both_orders: bool = True,
    sampling: Sampling | None = None,
) -> dict:
    """Judge every pair of candidates for one prompt; per-candidate win-rates, overall and per
    Flex category, and their mix.

    A pair gives candidate i the credit p_response1 + p_tie/2 (j the rest); a Flex category
    gives 1, 0 or 1/2 by its winner (averaged over orders). `weights` maps "overall" and
    category names to weights (default DEFAULT_WEIGHTS); a category a candidate was never judged
    on counts with its overall win-rate, so without Flex `mixed == win_rate`. With `sampling`, each
    pair is judged by sampled judgements that vote (its p_* are their means).
    """
    n = len(candidates)
    if n < 2:
        raise ConfigError("group scoring needs at least two candidates", field="candidates")
    index = list(combinations(range(n), 2))
    pairs = [
        Pair(
            id=f"{record.id}:{i}-{k}",
            task=record.task,
            prompt=record.prompt,
            response1=candidates[i],
            response2=candidates[k],
            criteria=record.criteria,
            prompt_media=list(record.prompt_media),
        )
        for i, k in index
    ]
    more = {"sampling": sampling} if sampling is not None else {}
    lines = judge.judge_pairs(pairs, both_orders=both_orders, show_progress=False, **more)
    wins = [0.0] * n
    cat_credit: dict[str, list[float]] = {}
    cat_count: dict[str, list[int]] = {}
    credit = {"response1": 1.0, "response2": 0.0, "tie": 0.5}
    for (i, k), line in zip(index, lines):
        c = line["p_response1"] + line["p_tie"] / 2
        wins[i] += c
        wins[k] += 1 - c
        flexes = [f for f in (line.get("flex"), line.get("flex_swapped")) if f]
        names = {name for f in flexes for name in f["categories"]}
        for name in names:
            votes = [credit[f["categories"][name]["winner"]] for f in flexes if name in f["categories"]]
            v = sum(votes) / len(votes)
            cat_credit.setdefault(name, [0.0] * n)
            cat_count.setdefault(name, [0] * n)
            cat_credit[name][i] += v
            cat_credit[name][k] += 1 - v
            cat_count[name][i] += 1
            cat_count[name][k] += 1
    win_rate = [w / (n - 1) for w in wins]
    per_category = {
        name: [cat_credit[name][m] / cat_count[name][m] if cat_count[name][m] else None for m in range(n)]
        for name in cat_credit
    }
    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    total = sum(w.values())
    if total <= 0:
        raise ConfigError("group score weights must have a positive sum", field="weights")
    mixed = []
    for m in range(n):
        s = w.get("overall", 0.0) * win_rate[m]
        for name, wt in w.items():
            if name == "overall":
                continue
            rate = per_category.get(name, [None] * n)[m]
            s += wt * (win_rate[m] if rate is None else rate)
        mixed.append(s / total)
    return {"win_rate": win_rate, "per_category": per_category, "mixed": mixed, "pairs": lines}
