"""Optimiser and schedule shared by the modules: two learning rates, warmup, cosine decay."""

from __future__ import annotations

import math

import torch

from omnireward.errors import ResumeError
from omnireward.strategies import is_sharded


def param_groups(
    model: torch.nn.Module, *, lr: float, lm_lr: float, weight_decay: float, lm_prefixes: tuple[str, ...]
) -> list[dict]:
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


def pack_checkpoint(checkpoint: dict, module) -> None:
    """`on_save_checkpoint`: keep the RNG state, so dropout after a resume matches the uninterrupted
    run, and leave the module's frozen parameters out (see `frozen_keys`; not under FSDP or
    DeepSpeed, whose checkpoints are their own)."""
    checkpoint["omnireward_rng"] = {"torch": torch.get_rng_state()}
    trainer = getattr(module, "_trainer", None)
    if not (trainer is not None and is_sharded(trainer)) and "state_dict" in checkpoint:
        frozen = frozen_keys(module) & checkpoint["state_dict"].keys()
        for k in frozen:
            del checkpoint["state_dict"][k]
        checkpoint["omnireward_frozen"] = sorted(frozen)


def unpack_checkpoint(checkpoint: dict, module) -> None:
    """`on_load_checkpoint`: restore the RNG state and put back the frozen parameters the checkpoint
    left out, from the module as the same config built it (they never change), so loading stays strict."""
    state = checkpoint.get("omnireward_rng")
    if state:
        torch.set_rng_state(state["torch"])
    left_out = checkpoint.get("omnireward_frozen")
    if left_out and "state_dict" in checkpoint:
        own = module.state_dict()
        missing = [k for k in left_out if k not in own]
        if missing:
            raise ResumeError(
                f"the checkpoint expects frozen weights this model does not have ({missing[0]}, "
                f"{len(missing)} in all): resume with the config that wrote it"
            )
        for k in left_out:
            checkpoint["state_dict"].setdefault(k, own[k])


def frozen_keys(module) -> set[str]:
    """State-dict keys of parameters that do not train (frozen LM layers and embeddings, frozen
    encoders, a PEFT base, a DPO reference copy). A checkpoint need not hold them: the config
    rebuilds them as they were, so `last.ckpt` carries what training changes — for a LoRA run,
    the adapters and the optimiser state, not the base model."""
    trained = {id(p) for p in module.parameters() if p.requires_grad}
    keep = tuple(getattr(module, "checkpoint_keeps", ()))  # frozen, but changed by the module itself
    return {
        name
        for name, p in module.named_parameters(remove_duplicate=False)
        if id(p) not in trained and not (keep and name.startswith(keep))
    }
