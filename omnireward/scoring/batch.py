"""The model call of BT scoring: a batch of records (pairs, items, groups) in, one line per record out.

    lines = score_batch(model, records)

is `lines_for(records, run_batch(model, prepare_batch(model, records), records))`: `prepare_batch`
is the CPU part (chat template, tokens, media features) and may run in a DataLoader worker;
`run_batch` is one forward pass over every response of every record. With the model's
`prefix_sharing` on (and a backbone that packs), each record is one packed sequence: its prompt
once, its responses after it (backbones/packing.py); the rewards are those of the unshared path.
"""

from __future__ import annotations

import math

import torch

from omnireward.backbones.base import Batch
from omnireward.data.records import Group, Item, Pair, Record, responses_of
from omnireward.reward_model import response_rows


def prepare_batch(model, records: list[Record]) -> Batch:
    """Tokens and media of every response of every record, record by record (CPU only)."""
    return model.collate_records(records)


# Head outputs a scores line carries beside the rewards (`reward` itself is always there).
REPORTED = ("reward_std", "dimensions")


@torch.no_grad()
def run_batch(model, batch: Batch, records: list[Record]) -> list[dict[str, list]]:
    """One forward pass; per record, the head's outputs for its responses in `responses_of` order:
    `reward` (a list of floats) and, where the head gives them, `reward_std` (floats) and
    `dimensions` ({name: value} per response)."""
    device = next(model.parameters()).device
    if device.type != "cpu":
        batch = batch.to(device)
    out = {k: v.float().cpu() for k, v in model.outputs(batch).items() if k == "reward" or k in REPORTED}
    names = model.head.dimensions
    result = []
    for rows in response_rows(batch, [len(responses_of(r)) for r in records]):
        rec = {"reward": [float(out["reward"][i]) for i in rows]}
        if "reward_std" in out:
            rec["reward_std"] = [float(out["reward_std"][i]) for i in rows]
        if "dimensions" in out:
            rec["dimensions"] = [dict(zip(names, out["dimensions"][i].tolist())) for i in rows]
        result.append(rec)
    return result


def score_batch(model, records: list[Record]) -> list[dict]:
    """One scores line per record (see `line_for`), in the order given."""
    return lines_for(records, run_batch(model, prepare_batch(model, records), records))


def lines_for(records: list[Record], outputs: list[dict[str, list]]) -> list[dict]:
    return [line_for(r, x["reward"], x) for r, x in zip(records, outputs)]


def line_for(rec: Record, rewards: list[float], extra: dict[str, list] | None = None) -> dict:
    """The scores line of one record.

    Pair: reward1, reward2, margin (+ preference when labelled). Item: reward. Group: rewards,
    ranking (indices, highest reward first; equal rewards keep input order), best (= ranking[0]),
    plus gold_best / gold_ranking when the record names them.

    `extra` holds further head outputs per response: `reward_std` (head=gaussian) gives pairs
    reward1_std, reward2_std and prob_response1 = Φ(margin / √(std1² + std2²)), items reward_std,
    groups rewards_std; `dimensions` (head=multi) gives pairs dimensions1 and dimensions2 (plus
    preference_dimensions, the record's per-dimension labels), items and groups dimensions.
    """
    extra = extra or {}
    std, dims = extra.get("reward_std"), extra.get("dimensions")
    line = {"id": rec.id, "task": rec.task}
    if isinstance(rec, Pair):
        r1, r2 = rewards
        line.update(reward1=r1, reward2=r2, margin=r1 - r2)
        if rec.preference is not None:
            line["preference"] = rec.preference
        if std is not None:
            line.update(
                reward1_std=std[0],
                reward2_std=std[1],
                prob_response1=0.5 * math.erfc(-(r1 - r2) / math.sqrt(2 * (std[0] ** 2 + std[1] ** 2))),
            )
        if dims is not None:
            line.update(dimensions1=dims[0], dimensions2=dims[1])
        if rec.dimension_preferences:
            line["preference_dimensions"] = dict(rec.dimension_preferences)
    elif isinstance(rec, Item):
        line["reward"] = rewards[0]
        if std is not None:
            line["reward_std"] = std[0]
        if dims is not None:
            line["dimensions"] = dims[0]
    elif isinstance(rec, Group):
        ranking = sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))
        line.update(rewards=list(rewards), ranking=ranking, best=ranking[0])
        if rec.gold_best is not None:
            line["gold_best"] = rec.gold_best
        if rec.ranking is not None:
            line["gold_ranking"] = list(rec.ranking)
        if std is not None:
            line["rewards_std"] = list(std)
        if dims is not None:
            line["dimensions"] = list(dims)
    else:
        raise TypeError(f"not a record: {type(rec).__name__}")
    return line
