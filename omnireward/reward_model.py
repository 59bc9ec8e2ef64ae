"""The networks a model folder holds: a reward model (backbone + head) or a judge (backbone alone).

A folder records what it is (`objective`: reward | judge | joint) in its `omnireward.yaml`, so
every command that loads one can do the right thing or say which command fits
(`omnireward.model_folder`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from omnireward import model_folder
from omnireward.backbones.base import Batch, decoder_layers
from omnireward.config import build
from omnireward.data.records import Pair, Record, Response, responses_of
from omnireward.errors import ConfigError
from omnireward.heads.base import RewardHead
from omnireward.heads.bt import BTHead
from omnireward.heads.pooling import check_layer, normalise, reading, reads_default, response_tokens
from omnireward.prompts import reward_conversation

if TYPE_CHECKING:
    from omegaconf import DictConfig


class RewardModel(nn.Module):
    """Backbone + reward head: a scalar (or the head's outputs) per conversation."""

    def __init__(self, backbone: nn.Module, head: nn.Module, prefix_sharing: bool = True):
        super().__init__()
        if not isinstance(head, RewardHead):
            raise ConfigError(
                f"{type(head).__name__} is not a reward head: subclass "
                "omnireward.heads.base.ScalarHead (or offer outputs, pair_loss, check_loss and "
                "dimensions; see docs/extending.md)",
                field="head",
            )
        layer, _ = reading(head)
        # A layer below the top is RMS-normalised before the head reads it (heads/pooling.py); the
        # top one (-1, or its positive index) is already the LM's final normed state.
        self.normalise_layer = False
        if layer != -1:  # a hidden layer other than the last: it must exist
            n_layers = len(decoder_layers(backbone.language_model()))
            check_layer(layer, n_layers)
            self.normalise_layer = layer % (n_layers + 1) != n_layers
        self.backbone = backbone
        self.head = head
        # Pairs and groups share their prompt's computation (backbones/packing.py) where the
        # backbone can pack them; rewards equal the unshared ones.
        self.prefix_sharing = prefix_sharing

    @classmethod
    def with_bt_head(cls, backbone: nn.Module, dropout: float = 0.0) -> RewardModel:
        """A reward model with the BT head (what `head=bt` builds)."""
        return cls(backbone, BTHead(backbone.hidden_size, dropout))

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg) -> RewardModel:
        """`backbone` with the head `cfg.head` names (training and loading a folder build it here)."""
        # Folders written before heads were components hold a BT head.
        head = cfg.get("head") or {"_target_": "omnireward.heads.bt.BTHead", "_partial_": True}
        return cls(backbone, build(head)(backbone.hidden_size))

    def collate(self, records: list[Record], responses: list[Response]) -> Batch:
        convs = [reward_conversation(r, resp) for r, resp in zip(records, responses)]
        if reading(self.head)[1] == "last":
            return self.backbone.processor(convs)
        return self.backbone.processor(convs, response_mask=True)  # pooling reads the response's tokens

    def collate_pairs(self, pairs: list[Pair]) -> Batch:
        """Rewards come out response1 of every pair first, then response2 (see `collate_records`)."""
        return self.collate_records(pairs)

    def collate_records(self, records: list[Record]) -> Batch:
        """Every response of every record (pairs, items, groups). Packed (one sequence per record,
        its prompt computed once) when prefix sharing is on and the backbone can, else one row per
        response. Either way the outputs come answer-major: every record's first response, then
        every second one, ... (records with fewer responses skipped); `response_rows` maps them."""
        if self.prefix_sharing:
            packed = self.backbone.processor.pack(
                [[reward_conversation(r, resp) for resp in responses_of(r)] for r in records]
            )
            if packed is not None:
                return packed
        owners, responses = [], []
        per_record = [responses_of(r) for r in records]
        for k in range(max(len(x) for x in per_record)):
            for r, rs in zip(records, per_record):
                if k < len(rs):
                    owners.append(r)
                    responses.append(rs[k])
        return self.collate(owners, responses)

    def hidden(self, batch: Batch) -> torch.Tensor:
        """What the head reads for every response [N, H] (in the order rewards come out): the last
        layer at the last token by default; else the head's `layer` (RMS-normalised below the top),
        at the last token or pooled over the response's tokens by `head.pool` (heads/pooling.py)."""
        if reads_default(self.head):
            return self.backbone.reward_hidden(batch)
        layer, pooling = reading(self.head)
        states = self.backbone.layer_states(batch, layer)
        rows, mask, last = response_tokens(batch, with_mask=pooling != "last")
        if pooling == "last":
            return normalise(states[rows, last].float(), self.normalise_layer)
        return self.head.pool(normalise(states[rows].float(), self.normalise_layer), mask)

    def forward(self, batch: Batch) -> torch.Tensor:
        """The reward of every response [N] (the head's scalar: μ, or the weighted overall)."""
        return self.head(self.hidden(batch)).float()

    def outputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Everything the head predicts per response: `reward` [N] and e.g. `reward_std`, `dimensions`."""
        return {k: v.float() for k, v in self.head.outputs(self.hidden(batch)).items()}

    def save_pretrained(self, out, cfg, stats: dict | None = None):
        """Write this model and its config as a model folder (see `omnireward.model_folder`)."""
        return model_folder.save(self, out, cfg, stats)

    @classmethod
    def from_pretrained(cls, path, **backbone_overrides) -> tuple[RewardModel, DictConfig]:
        """A reward (or joint) model folder; a judge folder stops with one line saying what it is."""
        model_folder.require_reward_folder(path, "a reward model")
        return model_folder.load(path, **backbone_overrides)

    @staticmethod
    def reward_stats(path) -> dict | None:
        return model_folder.reward_stats(path)


def response_rows(batch: Batch, counts: list[int]) -> list[list[int]]:
    """For each record (with `counts[b]` responses), the rows of its responses in the outputs of a
    `collate_records` batch: answer-major, absent answers skipped (packed or not)."""
    if "reward_index" in batch.tensors:
        present = batch.tensors["reward_index"].cpu() >= 0  # [K, B]
    else:
        present = torch.tensor([[k < n for n in counts] for k in range(max(counts))])
    pos = (present.reshape(-1).long().cumsum(0) - 1).reshape(present.shape)
    return [[int(pos[k, b]) for k in range(n)] for b, n in enumerate(counts)]


class JudgeModel(nn.Module):
    """A generative judge: the backbone writes critiques and verdicts; there is no reward head."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg) -> JudgeModel:
        return cls(backbone)

    def save_pretrained(self, out, cfg, stats: dict | None = None):
        return model_folder.save(self, out, cfg, stats)
