"""What every backbone offers the heads: conversations with media in, hidden states out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import torch

from omnireward.data.records import Media

Part = Union[str, Media]


@dataclass
class Turn:
    """One chat turn; `parts` is text and media in reading order (media paths already absolute)."""

    role: str  # "system" | "user" | "assistant"
    parts: list[Part] = field(default_factory=list)


Conversation = list[Turn]


@dataclass
class Batch:
    """A collated batch; tensors live in `tensors`, anything else (media plans) in `extra`."""

    tensors: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)

    def to(self, device) -> "Batch":
        moved = {}
        for k, v in self.extra.items():
            moved[k] = _to(v, device)
        return Batch({k: v.to(device) for k, v in self.tensors.items()}, moved)

    def __len__(self) -> int:
        return int(self.tensors["attention_mask"].shape[0])


def _to(v, device):
    if isinstance(v, torch.Tensor):
        return v.to(device)
    if isinstance(v, dict):
        return {k: _to(x, device) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_to(x, device) for x in v)
    return v


@dataclass
class BackboneOutput:
    last_hidden: torch.Tensor  # [B, H] hidden state at the last real token
    logits: torch.Tensor | None = None  # [B, L, V] when asked for (LM loss, judging)
    hidden: torch.Tensor | None = None  # [B, L, H] when asked for
