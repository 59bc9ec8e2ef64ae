"""Uncertainty-aware reward head: a mean μ and a log-variance log σ² per response.

The reward is μ; σ says how sure the model is of it. Pairs train with the probabilistic BT of
HPSv3 (`losses.gaussian_bt_loss`): P(1≻2) = Φ((μ1 - μ2) / √(σ1² + σ2²)), so a pair whose labels
the model cannot predict is cheapest with a large σ, one it can with a small σ.
"""

from __future__ import annotations

import torch
from torch import nn

from omnireward.errors import ConfigError
from omnireward.heads.losses import gaussian_bt_loss, is_plain_bt
from omnireward.heads.pooling import set_reading


class GaussianHead(nn.Module):
    dimensions: tuple[str, ...] = ()

    def __init__(
        self, hidden_size: int, dropout: float = 0.1, max_log_var: float = 8.0, layer: int = -1, pooling: str = "last"
    ):
        super().__init__()
        if max_log_var <= 0:
            raise ConfigError(f"max_log_var must be > 0, got {max_log_var}", field="head.max_log_var")
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(hidden_size, 1, bias=False)  # μ: BT is shift-invariant, no bias
        self.log_var = nn.Linear(hidden_size, 1)  # log σ²: its bias sets the overall level
        nn.init.normal_(self.score.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.normal_(self.log_var.weight, std=0.1 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.log_var.bias)  # σ = 1 at the start
        self.max_log_var = max_log_var
        set_reading(self, hidden_size, layer, pooling)

    def outputs(self, last_hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.dropout(last_hidden.to(self.score.weight.dtype))
        raw = self.log_var(h).squeeze(-1)
        # A smooth bound (|log σ²| < max_log_var) keeps σ finite and never zero, with gradients everywhere.
        log_var = self.max_log_var * torch.tanh(raw / self.max_log_var)
        return {"reward": self.score(h).squeeze(-1), "log_var": log_var, "reward_std": (0.5 * log_var).exp()}

    def forward(self, last_hidden: torch.Tensor) -> torch.Tensor:
        return self.outputs(last_hidden)["reward"]

    def pair_loss(self, a: dict, b: dict, y: torch.Tensor, margin: torch.Tensor, loss) -> torch.Tensor:
        return gaussian_bt_loss(a["reward"] - b["reward"], a["log_var"].exp() + b["log_var"].exp(), y)

    def check_loss(self, loss) -> None:
        if not is_plain_bt(loss):
            name = getattr(getattr(loss, "func", loss), "__name__", str(loss))
            raise ConfigError(
                f"head=gaussian trains with its own probabilistic BT (use loss=bt, the default), "
                f"not {name}; rankings train as their ordered pairs",
                field="loss",
            )
