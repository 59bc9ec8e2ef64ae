"""Optimiser and schedule shared by the modules: two learning rates, warmup, cosine decay."""

from __future__ import annotations

import math

import torch


def param_groups(model: torch.nn.Module, *, lr: float, lm_lr: float, weight_decay: float,
                 lm_prefixes: tuple[str, ...]) -> list[dict]:
    """New parts (projectors, heads, trainable encoders) at `lr`; the pretrained LM at `lm_lr`."""
    new, lm = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (lm if name.startswith(lm_prefixes) else new).append(p)
    groups = [{"params": new, "lr": lr, "weight_decay": weight_decay, "name": "new"}]
    if lm and lm_lr > 0:
        groups.append({"params": lm, "lr": lm_lr, "weight_decay": weight_decay, "name": "lm"})
    elif lm:
        for p in lm:
            p.requires_grad_(False)
    return groups


def warmup_cosine(optimizer, total_steps: int, warmup_ratio: float, min_ratio: float = 0.1):
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def configure(module, model, *, lr, lm_lr, weight_decay, warmup_ratio, lm_prefixes):
    groups = param_groups(model, lr=lr, lm_lr=lm_lr, weight_decay=weight_decay, lm_prefixes=lm_prefixes)
    opt = torch.optim.AdamW(groups)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    sched = warmup_cosine(opt, total, warmup_ratio)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def save_rng(checkpoint: dict) -> None:
    """Keep the RNG state in the checkpoint so dropout after a resume matches the uninterrupted run."""
    checkpoint["omnireward_rng"] = {"torch": torch.get_rng_state()}


def load_rng(checkpoint: dict) -> None:
    state = checkpoint.get("omnireward_rng")
    if state:
        torch.set_rng_state(state["torch"])
