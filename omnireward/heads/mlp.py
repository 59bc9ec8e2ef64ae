"""A two-layer reward head (as BaseReward puts on Qwen2.5-VL): Linear → activation → dropout →
Linear on the response's hidden state, one scalar per response.

The first layer has a bias, the last none (BT losses are shift-invariant). It reads what the other
heads read (`layer`, `pooling`: heads/pooling.py) and trains with any pairwise or listwise loss.
"""

from __future__ import annotations

import torch
from torch import nn

from omnireward.errors import ConfigError
from omnireward.heads.base import ScalarHead
from omnireward.heads.pooling import set_reading

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLPHead(ScalarHead):
    # The first argument is the backbone's width (the `_partial_` call passes it); `hidden_size` is
    # the width of the head's own hidden layer.
    def __init__(
        self,
        in_size: int,
        hidden_size: int = 1024,
        dropout: float = 0.1,
        activation: str = "gelu",
        layer: int = -1,
        pooling: str = "last",
    ):
        super().__init__()
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
            raise ConfigError(f"must be a width >= 1, got {hidden_size!r}", field="head.hidden_size")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"must be in [0, 1), got {dropout!r}", field="head.dropout")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"must be one of {', '.join(ACTIVATIONS)}, got {activation!r}", field="head.activation")
        self.net = nn.Sequential(
            nn.Linear(in_size, hidden_size),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, 1, bias=False),
        )
        nn.init.normal_(self.net[-1].weight, std=1.0 / (hidden_size + 1) ** 0.5)
        set_reading(self, in_size, layer, pooling)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.to(self.net[0].weight.dtype)).squeeze(-1)
