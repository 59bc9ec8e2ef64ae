"""Load a trained model folder for scoring, optionally quantised."""

from __future__ import annotations

from pathlib import Path

import torch



def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_for_scoring(model_dir: str | Path, *, quant="none", device: str = "auto"):
    """The folder's reward model on `device`; `quant` is a conf/quant option (none | 4bit | 8bit), a
    `Quantization`, or a CPU scoring precision: int8 (torch's dynamic int8 linears) or bf16."""
    from omnireward.model_folder import require_reward_folder
    from omnireward.quant import CPU_PRECISIONS, Quantization, load_cpu_precision, load_quantized, quant_option
    from omnireward.reward_model import RewardModel

    require_reward_folder(model_dir, "reward scoring")
    dev = pick_device(device)
    if isinstance(quant, str) and quant in CPU_PRECISIONS:
        return load_cpu_precision(model_dir, quant, dev)
    q = quant if isinstance(quant, Quantization) else quant_option(quant)
    if q is not None:
        return load_quantized(model_dir, q, dev)
    model, _ = RewardModel.from_pretrained(model_dir)
    return model.to(dev).eval()
