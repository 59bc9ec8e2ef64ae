"""Load a trained model folder for scoring, optionally quantised."""

from __future__ import annotations

from pathlib import Path

import torch



def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_for_scoring(model_dir: str | Path, *, quant="none", device: str = "auto"):
    """The folder's reward model on `device`; `quant` is a conf/quant option (none | 4bit | 8bit) or a
    `Quantization`."""
    from omnireward.model_folder import require_reward_folder
    from omnireward.reward_model import RewardModel

    from omnireward.quant import Quantization, load_quantized, quant_option

    require_reward_folder(model_dir, "reward scoring")
    q = quant if isinstance(quant, Quantization) else quant_option(quant)
    dev = pick_device(device)
    if q is not None:
        return load_quantized(model_dir, q, dev)
    model, _ = RewardModel.from_pretrained(model_dir)
    return model.to(dev).eval()
