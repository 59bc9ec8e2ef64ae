"""DPO's arithmetic (Rafailov et al. 2023) for judge trajectories: a preferred and a rejected
written judgement of the same pair, scored by the policy and a frozen reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """-log σ(β·[(log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))]) from summed sequence log-probs [B].

    `label_smoothing` ε > 0 is conservative DPO (the preference is wrong with probability ε).
    Returns the loss and per-batch statistics (implicit reward margin and accuracy).
    """
    logits = (chosen - ref_chosen) - (rejected - ref_rejected)
    loss = -(1 - label_smoothing) * F.logsigmoid(beta * logits) - label_smoothing * F.logsigmoid(-beta * logits)
    with torch.no_grad():
        stats = {
            "reward_margin": float((beta * logits).mean()),
            "reward_accuracy": float((logits > 0).float().mean()),
            "logp_margin": float((chosen - rejected).mean()),
        }
    return loss.mean(), stats
