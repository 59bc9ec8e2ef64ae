"""The networks a model folder holds: a reward model (backbone + head) or a judge (backbone alone).

A folder records what it is (`objective`: reward | judge | joint) in its `omnireward.yaml`, so
every command that loads one can do the right thing or say which command fits
(`omnireward.model_folder`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from omnireward.backbones.base import Batch
from omnireward.data.records import Pair, Record, Response
from omnireward.prompts import reward_conversation

if TYPE_CHECKING:
    from omegaconf import DictConfig


class RewardModel(nn.Module):
    """Backbone + reward head: a scalar (or the head's outputs) per conversation."""

    def __init__(self, backbone: nn.Module, head: nn.Module, prefix_sharing: bool = True):
        super().__init__()
        self.backbone = backbone
        self.head = head
        # Pairs and groups share their prompt's computation (backbones/packing.py) where the
        # backbone can pack them; rewards equal the unshared ones.
        self.prefix_sharing = prefix_sharing

    @classmethod
    def with_bt_head(cls, backbone: nn.Module, dropout: float = 0.0) -> "RewardModel":
        """A reward model with the BT head (what `head=bt` builds)."""
        from omnireward.heads.bt import BTHead

        return cls(backbone, BTHead(backbone.hidden_size, dropout))

    def collate(self, records: list[Record], responses: list[Response]) -> Batch:
        return self.backbone.processor([reward_conversation(r, resp) for r, resp in zip(records, responses)])

    def collate_pairs(self, pairs: list[Pair]) -> Batch:
        """Rewards come out response1 of every pair first, then response2: packed (one sequence per
        pair, the prompt computed once) when prefix sharing is on and the backbone can, else 2B rows."""
        if self.prefix_sharing:
            packed = self.backbone.processor.pack(
                [[reward_conversation(p, p.response1), reward_conversation(p, p.response2)] for p in pairs])
            if packed is not None:
                return packed
        return self.collate(pairs + pairs, [p.response1 for p in pairs] + [p.response2 for p in pairs])

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.backbone.reward_hidden(batch)).float()

    def save_pretrained(self, out, cfg, stats: dict | None = None):
        """Write this model and its config as a model folder (see `omnireward.model_folder`)."""
        from omnireward import model_folder

        return model_folder.save(self, out, cfg, stats)

    @classmethod
    def from_pretrained(cls, path, **backbone_overrides) -> tuple["RewardModel", "DictConfig"]:
        """A reward (or joint) model folder; a judge folder stops with one line saying what it is."""
        from omnireward import model_folder

        model_folder.require_reward_folder(path, "a reward model")
        return model_folder.load(path, **backbone_overrides)

    @staticmethod
    def reward_stats(path) -> dict | None:
        from omnireward import model_folder

        return model_folder.reward_stats(path)


class JudgeModel(nn.Module):
    """A generative judge: the backbone writes critiques and verdicts; there is no reward head."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def save_pretrained(self, out, cfg, stats: dict | None = None):
        from omnireward import model_folder

        return model_folder.save(self, out, cfg, stats)
