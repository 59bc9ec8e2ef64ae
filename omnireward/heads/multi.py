"""Multi-dimensional reward head: one scalar per named dimension, the reward their weighted sum.

A record may label each dimension (`preference: {visual_quality: response1, ...}`): each label
trains its own dimension. A record without dimension labels trains the weighted overall
reward r = Σ_k w_k r_k from its overall label (see docs/heads.md).
"""

from __future__ import annotations

import torch
from torch import nn

from omnireward.errors import ConfigError
from omnireward.heads.base import ScalarHead
from omnireward.heads.pooling import set_reading


class MultiHead(ScalarHead):
    def __init__(
        self,
        hidden_size: int,
        dimensions: list[str],
        weights: list[float] | None = None,
        dropout: float = 0.1,
        layer: int = -1,
        pooling: str = "last",
    ):
        super().__init__()
        dims = tuple(str(d) for d in (dimensions or ()))
        if not dims:
            raise ConfigError(
                "head=multi needs at least one dimension, e.g. "
                "head.dimensions=[visual_quality,motion_quality,text_alignment]",
                field="head.dimensions",
            )
        if len(set(dims)) != len(dims) or any(not d or d == "overall" for d in dims):
            raise ConfigError(
                f"dimension names must be distinct, non-empty and not 'overall', got {list(dims)}",
                field="head.dimensions",
            )
        if weights is None:
            weights = [1.0 / len(dims)] * len(dims)
        if len(weights) != len(dims):
            raise ConfigError(f"{len(weights)} weights for {len(dims)} dimensions {list(dims)}", field="head.weights")
        self.dimensions = dims
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(hidden_size, len(dims), bias=False)
        nn.init.normal_(self.score.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        # Not saved with the weights: the head's config is their one source.
        self.register_buffer("weights", torch.tensor([float(w) for w in weights]), persistent=False)
        set_reading(self, hidden_size, layer, pooling)

    def outputs(self, last_hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        per_dim = self.score(self.dropout(last_hidden.to(self.score.weight.dtype)))
        return {"reward": per_dim @ self.weights.to(per_dim.dtype), "dimensions": per_dim}

    def forward(self, last_hidden: torch.Tensor) -> torch.Tensor:
        return self.outputs(last_hidden)["reward"]
