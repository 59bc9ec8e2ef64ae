"""Bradley–Terry reward head: dropout + linear on the response's hidden state (by default the last
real token's, of the last layer; `layer` and `pooling` choose others, see heads/pooling.py)."""

from __future__ import annotations

import torch
from torch import nn

from omnireward.heads.base import ScalarHead
from omnireward.heads.pooling import set_reading


class BTHead(ScalarHead):
    # No bias: BT losses are shift-invariant, and a bias-free linear is exactly the `score`
    # layer of transformers' *ForSequenceClassification, which makes export lossless.
    def __init__(self, hidden_size: int, dropout: float = 0.1, layer: int = -1, pooling: str = "last"):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(hidden_size, 1, bias=False)
        nn.init.normal_(self.score.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        set_reading(self, hidden_size, layer, pooling)  # which layer, pooled how (heads/pooling.py)

    def forward(self, last_hidden: torch.Tensor) -> torch.Tensor:
        return self.score(self.dropout(last_hidden.to(self.score.weight.dtype))).squeeze(-1)
