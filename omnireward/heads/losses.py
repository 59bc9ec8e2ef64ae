"""Pairwise reward losses: Bradley–Terry, BT with margin, BT with ties (Rao–Kupper, Davidson).

All take margins d = r1 - r2 and labels y ∈ {+1 (response1), -1 (response2), 0 (tie)} and
return the mean negative log-likelihood.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSSES = ("bt", "bt_margin", "rao_kupper", "davidson")


def bt_loss(d: torch.Tensor, y: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """-log σ(s·d - m) over non-tie pairs (s = ±1); ties carry no BT signal and are skipped."""
    keep = y != 0
    if not keep.any():
        return d.sum() * 0.0
    s = y[keep].to(d.dtype)
    z = s * d[keep]
    if margin is not None:
        z = z - margin[keep].to(d.dtype)
    return -F.logsigmoid(z).mean()


def rao_kupper_loss(d: torch.Tensor, y: torch.Tensor, theta: float = 2.0) -> torch.Tensor:
    """Rao–Kupper: P(1≻2) = σ(d - log θ), P(tie) = 1 - σ(d - log θ) - σ(-d - log θ); θ > 1."""
    if theta <= 1.0:
        raise ValueError("rao_kupper needs theta > 1")
    eta = math.log(theta)
    log_p1 = F.logsigmoid(d - eta)
    log_p2 = F.logsigmoid(-d - eta)
    # 1 - σ(d-η) - σ(-d-η) = σ(η-d) - σ(-d-η), computed in log space for stability.
    log_tie = F.logsigmoid(eta - d) + torch.log(-torch.expm1(F.logsigmoid(-d - eta) - F.logsigmoid(eta - d)))
    ll = torch.where(y > 0, log_p1, torch.where(y < 0, log_p2, log_tie))
    return -ll.mean()


def davidson_loss(d: torch.Tensor, y: torch.Tensor, nu: float = 1.0) -> torch.Tensor:
    """Davidson: P(1≻2) ∝ e^{d/2}, P(2≻1) ∝ e^{-d/2}, P(tie) ∝ ν; ν > 0."""
    if nu <= 0:
        raise ValueError("davidson needs nu > 0")
    logits = torch.stack([d / 2, -d / 2, torch.full_like(d, math.log(nu))], dim=-1)
    target = torch.where(y > 0, 0, torch.where(y < 0, 1, 2)).long()
    return F.cross_entropy(logits, target)


def pairwise_loss(kind: str, d: torch.Tensor, y: torch.Tensor, margin: torch.Tensor | None = None,
                  tie_param: float | None = None) -> torch.Tensor:
    if kind == "bt":
        return bt_loss(d, y)
    if kind == "bt_margin":
        return bt_loss(d, y, margin if margin is not None else torch.zeros_like(d))
    if kind == "rao_kupper":
        return rao_kupper_loss(d, y, tie_param or 2.0)
    if kind == "davidson":
        return davidson_loss(d, y, tie_param or 1.0)
    raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")


def centering_loss(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Auxiliary (r1 + r2)^2 term that keeps rewards centred near zero (reward centering)."""
    return ((r1 + r2) ** 2).mean()
