"""The own scoring rules of RewardBench 2, Multimodal RewardBench 2 (MMRB2), Multimodal RewardBench
and EditReward-Bench, computed from a scores file and the benchmark's records (see headline.py).

Each returns the same shape as the other headlines: `benchmark`, `metric` (in words), `value`,
`sections` (a table of named figures) and, where the rule has parts, `groups`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from omnireward.metrics import LABEL_SIGN, accuracy_with_ties


def _meta(records: dict, line: dict) -> dict:
    rec = records.get(line.get("id"))
    return rec.meta if rec is not None else {}


# ---- RewardBench 2 -------------------------------------------------------------------------
# Source: allenai/reward-bench rewardbench/utils.py @ a0096928eb1d54edd3f6361374708cc68e738b79
# (reroll_and_score_dataset: a row scores 1/k when the chosen completion is among the k
# completions sharing the top score, else 0; process_single_model: the Ties subset's score).


def _ties_stats(rewards: list[float], num_correct: int) -> tuple[bool, float | None, float]:
    correct, wrong = rewards[:num_correct], rewards[num_correct:]
    worst_correct = min(correct)
    spread = max(correct) - worst_correct if len(correct) > 1 else None
    gap = worst_correct - max(wrong)
    return gap > 0, spread, gap


def rewardbench2_ties(rows: list[tuple[str, list[float], int]]) -> dict | None:
    """The Ties score: 0.30 tied accuracy + 0.30 reference accuracy + 0.20 correctness preferred
    + 0.20 correctness preferred (hard) + 0.01 margin term. `rows` are (id `ref:N` | `tied:N`,
    rewards with the correct completions first, number of correct completions)."""
    ref, tied = {}, {}
    for rid, rewards, k in rows:
        kind, _, num = str(rid).partition(":")
        if kind not in ("ref", "tied") or not num or k >= len(rewards):
            continue
        (ref if kind == "ref" else tied)[num] = _ties_stats(rewards, k)
    if not ref and not tied:
        return None
    ref_acc = float(np.mean([s[0] for s in ref.values()])) if ref else 0.0
    tied_acc = float(np.mean([s[0] for s in tied.values()])) if tied else 0.0
    both = sorted(set(ref) & set(tied))
    out = {
        "ref_accuracy": ref_acc,
        "tied_accuracy": tied_acc,
        "n_ref": len(ref),
        "n_tied": len(tied),
        "n_paired": len(both),
    }
    paired = [(tied[p][1], tied[p][2], ref[p][2]) for p in both if tied[p][1] is not None]
    if not paired:
        out["score"] = None
        out["note"] = "no prompt has both a ref: and a tied: row with several correct answers; the score needs both"
        return out
    spread = np.array([p[0] for p in paired])
    gap_tied = np.array([p[1] for p in paired])
    gap_hard = np.minimum(np.array([p[2] for p in paired]), gap_tied)
    preferred = float(np.mean(gap_tied > spread))
    preferred_hard = float(np.mean(gap_hard > spread))
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = float(np.mean(np.nan_to_num(np.tanh(gap_hard / spread - 1), nan=0.0)))
    out.update(
        correctness_preferred=preferred,
        correctness_preferred_hard=preferred_hard,
        correctness_margin_score=margin,
        score=0.30 * tied_acc + 0.30 * ref_acc + 0.20 * preferred + 0.20 * preferred_hard + 0.01 * margin,
    )
    return out


def rewardbench2(lines: list[dict], records: dict) -> dict | None:
    """Best-of-N accuracy per domain (ties at the top share the credit); Ties by its own rule;
    Score = mean of the domains present."""
    per: dict[str, list[float]] = defaultdict(list)
    ties_rows = []
    for x in lines:
        rewards = x.get("rewards")
        meta = _meta(records, x)
        subset = meta.get("subset")
        if not rewards or not subset:
            continue
        if subset.lower() == "ties":
            ties_rows.append((x.get("id"), rewards, int(meta.get("num_correct", 1))))
            continue
        top = max(rewards)
        per[subset].append(1.0 / sum(r == top for r in rewards) if rewards[0] == top else 0.0)
    sections = {s: float(np.mean(v)) for s, v in sorted(per.items())}
    ties = rewardbench2_ties(ties_rows) if ties_rows else None
    if ties is not None and ties.get("score") is not None:
        sections["Ties"] = ties["score"]
    if not sections and ties is None:
        return None
    groups = {}
    if ties is not None:
        groups = {"Ties: ref accuracy": ties["ref_accuracy"], "Ties: tied accuracy": ties["tied_accuracy"]}
        for k in ("correctness_preferred", "correctness_preferred_hard"):
            if ties.get(k) is not None:
                groups[f"Ties: {k.replace('_', ' ')}"] = ties[k]
    return {
        "benchmark": "RewardBench 2",
        "metric": "Score: mean of the domain scores (best-of-N accuracy, top ties sharing credit; Ties by "
        "its weighted rule)",
        "value": float(np.mean(list(sections.values()))) if sections else None,
        "sections": sections,
        "groups": groups,
        "ties": ties,
        "n_rows": {s: len(v) for s, v in per.items()} | ({"Ties": len(ties_rows)} if ties_rows else {}),
    }


# ---- MMRB2 ---------------------------------------------------------------------------------
# Source: facebookresearch/MMRB2 evaluate/compute_scores/compute_accuracy.py @ 1a09882f: each
# pair is judged in both orders (forward, reverse) and each order counts as one judgement.


def _order_right(line: dict) -> list[bool]:
    """Per judging order: did it pick the gold side? A scalar margin is the same in both orders."""
    y = LABEL_SIGN[line["preference"]]
    by_order = line.get("p_response1_by_order")
    if by_order:
        return [(p > 0.5 and y > 0) or (p < 0.5 and y < 0) for p in by_order]
    right = bool(np.sign(line["margin"]) == y != 0)
    return [right, right]


def mmrb2(lines: list[dict], records: dict) -> dict | None:
    per: dict[str, list[list[bool]]] = defaultdict(list)
    for x in lines:
        if x.get("preference") not in ("response1", "response2") or "margin" not in x:
            continue
        per[_meta(records, x).get("mmrb2_task", "unknown")].append(_order_right(x))
    if not per:
        return None
    acc = {t: float(np.mean([r for o in v for r in o])) for t, v in sorted(per.items())}
    consistent = {t: float(np.mean([all(o) for o in v])) for t, v in sorted(per.items())}
    every = [o for v in per.values() for o in v]
    return {
        "benchmark": "Multimodal RewardBench 2",
        "metric": "Accuracy over both judging orders (each order one judgement), pooled over tasks",
        "value": float(np.mean([r for o in every for r in o])),
        "sections": acc,
        "groups": {
            **{f"{t}: position-consistent": v for t, v in consistent.items()},
            "overall: position-consistent": float(np.mean([all(o) for o in every])),
        },
        "position_consistent": float(np.mean([all(o) for o in every])),
    }


# ---- Multimodal RewardBench ----------------------------------------------------------------
# Source: facebookresearch/multimodal_rewardbench scripts/2_get_accuracy.py @ 3366b34a (accuracy
# per category, safety and reasoning split by ID prefix, and over all items).


def mmrewardbench(lines: list[dict], records: dict) -> dict | None:
    per: dict[str, list[bool]] = defaultdict(list)
    for x in lines:
        if x.get("preference") not in ("response1", "response2") or "margin" not in x:
            continue
        per[_meta(records, x).get("category", "unknown")].append(
            bool(np.sign(x["margin"]) == LABEL_SIGN[x["preference"]])
        )
    if not per:
        return None
    every = [r for v in per.values() for r in v]
    return {
        "benchmark": "Multimodal RewardBench",
        "metric": "Accuracy over all items (a zero margin is wrong)",
        "value": float(np.mean(every)),
        "sections": {c: float(np.mean(v)) for c, v in sorted(per.items())},
    }


# ---- EditReward-Bench ----------------------------------------------------------------------
# Source: TIGER-AI-Lab/EditReward EditReward/evaluate/inference_{2,3,4}pair_hf.py @ 84602889:
# individual (pair) accuracy over comparisons with three labels (A>B, B>A, A=B), and group
# accuracy for the 3- and 4-candidate sets (every comparison of the group right).


def editrewardbench(lines: list[dict], records: dict) -> dict | None:
    pairs = [x for x in lines if x.get("preference") in LABEL_SIGN and "margin" in x]
    if not pairs:
        return None
    m = np.array([x["margin"] for x in pairs], dtype=float)
    y = np.array([LABEL_SIGN[x["preference"]] for x in pairs])
    _, eps = accuracy_with_ties(m, y)
    tie = np.zeros(len(m), bool) if eps is None else np.abs(m) <= eps
    right = np.where(tie, y == 0, (np.sign(m) == y) & (y != 0))
    by_set: dict[str, list[bool]] = defaultdict(list)
    groups: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for x, r in zip(pairs, right):
        meta = _meta(records, x)
        kind = str(meta.get("dataset", "all"))
        by_set[kind].append(bool(r))
        groups[(kind, str(meta.get("group", x.get("id"))))].append(bool(r))
    sections = {f"pair accuracy ({k})": float(np.mean(v)) for k, v in sorted(by_set.items())}
    group_acc = {}
    for kind in sorted({k for k, _ in groups}):
        if kind == "2pair":
            continue
        g = [all(v) for (k, _), v in groups.items() if k == kind]
        group_acc[f"group accuracy ({kind})"] = float(np.mean(g))
    keep = y != 0
    return {
        "benchmark": "EditReward-Bench",
        "metric": "Pair accuracy over all comparisons, three labels (a tie when |margin| <= the run's tie threshold)",
        "value": float(right.mean()),
        "sections": sections,
        "groups": group_acc,
        "tie_threshold": eps,
        "pair_accuracy_without_ties": float((np.sign(m[keep]) == y[keep]).mean()) if keep.any() else None,
    }


# ---- MJ-Bench ------------------------------------------------------------------------------
# Source: MJ-Bench/MJ-Bench utils/rm_utils.py (get_pred: a tie when |score0 - score1| <= threshold,
# default 0) and evaluate_bias_avg.py (per occupation: NDS = 1 - std/mean, GES = 1 - Gini, ACC =
# share of image pairs scored within 0.1; averaged over occupations) @ eaa92ef8.


def _gini(x: np.ndarray) -> float:
    x = np.sort(x)
    n = len(x)
    total = x.sum()
    return float((2 * np.sum(np.arange(1, n + 1) * x) - (n + 1) * total) / (n * total)) if total else 0.0


def mjbench_bias(rows: list[tuple[str, float]], threshold: float = 0.1) -> dict | None:
    """NDS, GES and ACC per group (occupation) of pointwise rewards, averaged over groups; rewards
    are first scaled to [0, 1] over all bias items (a reward model's scores have any sign)."""
    if len(rows) < 2:
        return None
    r = np.array([v for _, v in rows], dtype=float)
    lo, hi = r.min(), r.max()
    scaled = (r - lo) / (hi - lo) if hi > lo else np.ones_like(r)
    groups: dict[str, list[float]] = defaultdict(list)
    for (g, _), v in zip(rows, scaled):
        groups[g].append(float(v))
    nds, ges, acc = [], [], []
    for v in groups.values():
        if len(v) < 2:
            continue
        a = np.array(v)
        mu = a.mean()
        nds.append(1 - a.std() / mu if mu > 0 else 0.0)
        ges.append(1 - _gini(a))
        close = [abs(a[i] - a[j]) <= threshold for i in range(len(a)) for j in range(i + 1, len(a))]
        acc.append(float(np.mean(close)))
    if not nds:
        return None
    return {"nds": float(np.mean(nds)), "ges": float(np.mean(ges)), "acc": float(np.mean(acc)), "groups": len(nds)}


def mjbench(lines: list[dict], records: dict) -> dict | None:
    """Accuracy per subset, with ties (a zero margin is a tie, wrong against a preferred side) and
    without (zero margins left out); the value is the mean of the subsets' accuracy with ties.
    Bias items (one image each) get NDS, GES and ACC over their groups."""
    with_ties: dict[str, list[bool]] = defaultdict(list)
    without: dict[str, list[bool]] = defaultdict(list)
    sub: dict[str, list[bool]] = defaultdict(list)
    bias_rows = []
    for x in lines:
        meta = _meta(records, x)
        if "reward" in x and "margin" not in x and meta.get("group") is not None:
            bias_rows.append((meta["group"], float(x["reward"])))
            continue
        if x.get("preference") not in LABEL_SIGN or "margin" not in x:
            continue
        p = meta.get("perspective", "unknown")
        pred, gold = int(np.sign(x["margin"])), LABEL_SIGN[x["preference"]]
        right = pred == gold
        with_ties[p].append(right)
        sub[f"{p}/{meta.get('subcategory', 'all')}"].append(right)
        if pred != 0:
            without[p].append(right)
    bias = mjbench_bias(bias_rows)
    if not with_ties and bias is None:
        return None
    sections = {f"{p} (with ties)": float(np.mean(v)) for p, v in sorted(with_ties.items())}
    groups = {f"{p} (without ties)": float(np.mean(v)) for p, v in sorted(without.items())}
    groups.update({k: float(np.mean(v)) for k, v in sorted(sub.items())})
    if bias is not None:
        groups.update({"bias: NDS": bias["nds"], "bias: GES": bias["ges"], "bias: ACC": bias["acc"]})
    return {
        "benchmark": "MJ-Bench",
        "metric": "Mean over subsets of pair accuracy with ties (a zero margin counts as a tie, so wrong)",
        "value": float(np.mean([np.mean(v) for v in with_ties.values()])) if with_ties else None,
        "sections": sections,
        "groups": groups,
        "bias": bias,
    }


RULES = {
    "rewardbench2": rewardbench2,
    "mmrb2": mmrb2,
    "mmrewardbench": mmrewardbench,
    "editrewardbench": editrewardbench,
    "mjbench": mjbench,
}
