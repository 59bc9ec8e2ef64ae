"""What a reward head offers the rest of the package (`RewardHead`), and the scalar head's defaults.

A head reads the hidden state of the last real token of each response ([N, H]) and gives:

- `forward(hidden)` → the reward [N]: the one number scoring, serving, export and reward
  statistics use (the mean μ of the Gaussian head, the weighted overall of the multi head);
- `outputs(hidden)` → a dict of named per-response tensors: `reward` [N] and whatever else the
  head predicts (`reward_std` [N]; `dimensions` [N, D]), which training and `omnireward score` read;
- `pair_loss(a, b, y, margin, loss)` → the loss of comparisons between responses a and b
  (`a`, `b`: `outputs` rows; y = +1 a wins, -1 b wins, 0 tie), given the configured pairwise loss;
- `check_loss(loss)` → raises ConfigError when the head cannot train with that loss;
- `dimensions` → the names of the head's reward dimensions (empty for one scalar).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class RewardHead(Protocol):
    dimensions: tuple[str, ...]

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor: ...

    def outputs(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def pair_loss(self, a: dict, b: dict, y: torch.Tensor, margin: torch.Tensor, loss: Callable) -> torch.Tensor: ...

    def check_loss(self, loss: Callable) -> None: ...


class ScalarHead(nn.Module):
    """A head whose forward is one scalar reward per response; any pairwise or listwise loss trains it.
    Subclasses implement `forward` only."""

    dimensions: tuple[str, ...] = ()

    def outputs(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"reward": self(hidden)}

    def pair_loss(self, a: dict, b: dict, y: torch.Tensor, margin: torch.Tensor, loss: Callable) -> torch.Tensor:
        return loss(a["reward"] - b["reward"], y, margin)

    def check_loss(self, loss: Callable) -> None:
        return None
