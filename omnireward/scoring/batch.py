"""The model call of BT scoring: a batch of records (pairs, items, groups) in, one line per record out.

    lines = score_batch(model, records)

is `lines_for(records, run_batch(model, prepare_batch(model, records), records))`: `prepare_batch`
is the CPU part (chat template, tokens, media features) and may run in a DataLoader worker;
`run_batch` is one forward pass over every response of every record. With the model's
`prefix_sharing` on (and a backbone that packs), each record is one packed sequence: its prompt
once, its responses after it (backbones/packing.py); the rewards are those of the unshared path.
"""

from __future__ import annotations

import torch

from omnireward.backbones.base import Batch
from omnireward.data.records import Group, Item, Pair, Record, responses_of


def prepare_batch(model, records: list[Record]) -> Batch:
    """Tokens and media of every response of every record, record by record (CPU only)."""
    if model.prefix_sharing:
        from omnireward.prompts import reward_conversation

        packed = model.backbone.processor.pack(
            [[reward_conversation(r, resp) for resp in responses_of(r)] for r in records])
        if packed is not None:
            return packed
    owners = [r for r in records for _ in responses_of(r)]
    return model.collate(owners, [resp for r in records for resp in responses_of(r)])


@torch.no_grad()
def run_batch(model, batch: Batch, records: list[Record]) -> list[list[float]]:
    """One forward pass; the rewards of each record's responses, in `responses_of` order."""
    device = next(model.parameters()).device
    if device.type != "cpu":
        batch = batch.to(device)
    flat = model(batch).float().cpu().tolist()
    if "reward_index" in batch.tensors:  # packed: answer-major over records, absent answers skipped
        index = batch.tensors["reward_index"].cpu()
        out = [[] for _ in records]
        at = 0
        for k in range(index.shape[0]):
            for b in range(index.shape[1]):
                if index[k, b] >= 0:
                    out[b].append(flat[at])
                    at += 1
        return out
    out, at = [], 0
    for r in records:
        n = len(responses_of(r))
        out.append(flat[at:at + n])
        at += n
    return out


def score_batch(model, records: list[Record]) -> list[dict]:
    """One scores line per record (see `line_for`), in the order given."""
    return lines_for(records, run_batch(model, prepare_batch(model, records), records))


def lines_for(records: list[Record], rewards: list[list[float]]) -> list[dict]:
    return [line_for(r, x) for r, x in zip(records, rewards)]


def line_for(rec: Record, rewards: list[float]) -> dict:
    """The scores line of one record.

    Pair: reward1, reward2, margin (+ preference when labelled). Item: reward. Group: rewards,
    ranking (indices, highest reward first; equal rewards keep input order), best (= ranking[0]),
    plus gold_best / gold_ranking when the record names them.
    """
    line = {"id": rec.id, "task": rec.task}
    if isinstance(rec, Pair):
        r1, r2 = rewards
        line.update(reward1=r1, reward2=r2, margin=r1 - r2)
        if rec.preference is not None:
            line["preference"] = rec.preference
    elif isinstance(rec, Item):
        line["reward"] = rewards[0]
    elif isinstance(rec, Group):
        ranking = sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))
        line.update(rewards=list(rewards), ranking=ranking, best=ranking[0])
        if rec.gold_best is not None:
            line["gold_best"] = rec.gold_best
        if rec.ranking is not None:
            line["gold_ranking"] = list(rec.ranking)
    else:
        raise TypeError(f"not a record: {type(rec).__name__}")
    return line
