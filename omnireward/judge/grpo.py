"""GRPO's arithmetic (DeepSeekMath): rule rewards, group-normalised advantages, the clipped loss.

For each prompt G completions are sampled; each gets a rule reward (format + verdict
correctness); advantages are the rewards normalised within their group; the loss is the
clipped-ratio policy objective plus β·KL to a frozen reference (k3 estimator).
"""

from __future__ import annotations

import torch

from omnireward.errors import ConfigError


def verdict_reward(predicted: str | None, label: str, tie_credit: float = 0.0) -> float:
    """1 for the right verdict, `tie_credit` when exactly one of them is a tie, 0 otherwise or unparsed."""
    if predicted is None:
        return 0.0
    if predicted == label:
        return 1.0
    return tie_credit if "tie" in (predicted, label) else 0.0


def group_advantages(rewards: torch.Tensor, group: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """(r - mean of its group) / (std of its group) for rewards laid out group after group."""
    r = rewards.view(-1, group)
    adv = r - r.mean(1, keepdim=True)
    if scale:
        adv = adv / (r.std(1, keepdim=True, unbiased=False) + eps)
    return adv.reshape(-1)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    agg: str = "sequence",
) -> tuple[torch.Tensor, dict]:
    """Clipped-ratio policy loss + β·KL(π‖π_ref) (k3: e^{ref-logp} - (ref-logp) - 1), per token.

    `agg="sequence"` averages tokens within each completion then over completions (GRPO);
    `"token"` averages over all tokens of the batch.
    """
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(1)
    per_token = -torch.min(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    kl = torch.zeros_like(logp)
    if beta > 0 and ref_logp is not None:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_token = per_token + beta * kl
    if agg == "sequence":
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    elif agg == "token":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
    else:
        raise ConfigError(f"unknown loss_agg {agg!r} (expected sequence or token)", field="model.loss_agg")
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        clipped = ((ratio - 1).abs() > clip_eps).to(logp.dtype)
        stats = {"kl": float((kl * mask).sum() / n), "clip_frac": float((clipped * mask).sum() / n)}
    return loss, stats
