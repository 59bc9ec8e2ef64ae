"""Pairwise reward losses: Bradley–Terry, BT with margin, BT with ties (Rao–Kupper, Davidson).

All take margins d = r1 - r2, labels y ∈ {+1 (response1), -1 (response2), 0 (tie)} and the
records' target margins (NaN where a record has none), and return the mean negative
log-likelihood. Each is a config component (conf/loss/*.yaml, `_partial_: true`).

A loss says what it needs as attributes, which the trainer reads (nothing inspects its
signature): `needs_margin` (every training record must carry a `margin`), `listwise` (it scores
whole rankings: `loss(ranked, n_ranked, n_valid)`) and `plain_bt` (it is the Bradley–Terry
likelihood itself). Unset, each is False; `declare` sets them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from omnireward.errors import ConfigError

CAPABILITIES = ("needs_margin", "listwise", "plain_bt")


def declare(*, needs_margin: bool = False, listwise: bool = False, plain_bt: bool = False):
    """Decorator: the loss's capabilities as attributes (see the module docstring)."""

    def mark(fn):
        fn.needs_margin, fn.listwise, fn.plain_bt = needs_margin, listwise, plain_bt
        return fn

    return mark


def _declared(loss, capability: str) -> bool:
    return bool(getattr(getattr(loss, "func", loss), capability, False))  # a partial declares through its function


def needs_margin(loss) -> bool:
    """Whether `loss` (a function or a partial of one) requires the records' `margin`."""
    return _declared(loss, "needs_margin")


def is_listwise(loss) -> bool:
    """Whether `loss` scores whole rankings (`loss(ranked, n_ranked, n_valid)`)."""
    return _declared(loss, "listwise")


def is_plain_bt(loss) -> bool:
    """Whether `loss` is the plain Bradley–Terry likelihood."""
    return _declared(loss, "plain_bt")


def _bt(d: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    keep = y != 0
    if not keep.any():
        return d.sum() * 0.0
    z = y[keep].to(d.dtype) * d[keep]
    if m is not None:
        z = z - m[keep].to(d.dtype)
    return -F.logsigmoid(z).mean()


@declare(plain_bt=True)
def bt_loss(d: torch.Tensor, y: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """-log σ(s·d) over non-tie pairs (s = ±1); ties carry no BT signal and are skipped."""
    return _bt(d, y, None)


@declare(needs_margin=True)
def bt_margin_loss(d: torch.Tensor, y: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """-log σ(s·d - m): the winner must lead by the record's margin m (Llama-2 style)."""
    return _bt(d, y, margin)


def rao_kupper_loss(
    d: torch.Tensor, y: torch.Tensor, margin: torch.Tensor | None = None, theta: float = 2.0
) -> torch.Tensor:
    """Rao–Kupper: P(1≻2) = σ(d - log θ), P(tie) = 1 - σ(d - log θ) - σ(-d - log θ); θ > 1."""
    if theta <= 1.0:
        raise ConfigError(f"rao_kupper needs theta > 1, got {theta}", field="loss.theta")
    eta = math.log(theta)
    log_p1 = F.logsigmoid(d - eta)
    log_p2 = F.logsigmoid(-d - eta)
    # 1 - σ(d-η) - σ(-d-η) = σ(η-d) - σ(-d-η), computed in log space for stability.
    log_tie = F.logsigmoid(eta - d) + torch.log(-torch.expm1(F.logsigmoid(-d - eta) - F.logsigmoid(eta - d)))
    ll = torch.where(y > 0, log_p1, torch.where(y < 0, log_p2, log_tie))
    return -ll.mean()


def davidson_loss(
    d: torch.Tensor, y: torch.Tensor, margin: torch.Tensor | None = None, nu: float = 1.0
) -> torch.Tensor:
    """Davidson: P(1≻2) ∝ e^{d/2}, P(2≻1) ∝ e^{-d/2}, P(tie) ∝ ν; ν > 0."""
    if nu <= 0:
        raise ConfigError(f"davidson needs nu > 0, got {nu}", field="loss.nu")
    logits = torch.stack([d / 2, -d / 2, torch.full_like(d, math.log(nu))], dim=-1)
    target = torch.where(y > 0, 0, torch.where(y < 0, 1, 2)).long()
    return F.cross_entropy(logits, target)


def centering_loss(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Auxiliary (r1 + r2)^2 term that keeps rewards centred near zero (reward centering)."""
    return ((r1 + r2) ** 2).mean()


def gaussian_bt_loss(d: torch.Tensor, var: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Probabilistic BT (uncertainty-aware, as in HPSv3): rewards are Gaussian, r_i ~ N(μ_i, σ_i²),
    so r1 - r2 ~ N(d, var) with d = μ1 - μ2 and var = σ1² + σ2², and
    P(1≻2) = P(r1 - r2 > 0) = Φ(d / √var). Returns -log Φ(s·d / √var) over non-tie pairs."""
    keep = y != 0
    if not keep.any():
        return d.sum() * 0.0 + var.sum() * 0.0
    z = y[keep].to(d.dtype) * d[keep] / var[keep].sqrt()
    return -torch.special.log_ndtr(z).mean()


@declare(listwise=True)
def plackett_luce_loss(ranked: torch.Tensor, n_ranked: torch.Tensor, n_valid: torch.Tensor) -> torch.Tensor:
    """Plackett–Luce: the negative log-likelihood of a ranking, P(π) = Π_j e^{r_π(j)} / Σ_{k≥j} e^{r_π(k)}.

    `ranked` [G, K] holds each group's rewards in gold order, best first (padding after the
    `n_valid` present responses); the first `n_ranked` positions are ordered, the rest are only
    known to rank below them (a `best`-only group has n_ranked = 1). Mean over groups. K = 2 is
    exactly Bradley–Terry: -log(e^{r_w} / (e^{r_w} + e^{r_l})) = -log σ(r_w - r_l).
    """
    G, K = ranked.shape
    pos = torch.arange(K, device=ranked.device)[None, :]
    valid = pos < n_valid[:, None]
    # A large finite stand-in for -inf keeps gradients of padded positions at exactly 0 (not NaN).
    masked = ranked.masked_fill(~valid, -1e9)
    tail = torch.logcumsumexp(masked.flip(-1), dim=-1).flip(-1)  # log Σ_{k≥j} e^{r_k} over present k
    # The last present position is chosen from itself alone: its term is 0, so it is left out.
    stage = (pos < n_ranked[:, None]) & (pos < (n_valid[:, None] - 1))
    nll = torch.where(stage, tail - ranked, torch.zeros_like(ranked)).sum(-1)
    return nll.mean() if G else ranked.sum() * 0.0
