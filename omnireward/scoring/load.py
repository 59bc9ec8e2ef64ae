"""Load a trained model folder for scoring, optionally quantised."""

from __future__ import annotations

from pathlib import Path

import torch

from omnireward.errors import ConfigError


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_for_scoring(model_dir: str | Path, *, quant: str = "none", device: str = "auto"):
    from omnireward.model_folder import require_reward_folder
    from omnireward.reward_model import RewardModel

    require_reward_folder(model_dir, "reward scoring")
    if quant not in ("none", "4bit", "8bit"):
        raise ConfigError(f"unknown --quant {quant!r}; expected 4bit, 8bit or none")
    dev = pick_device(device)
    if quant != "none":
        from omnireward.quant import load_quantized

        return load_quantized(model_dir, quant, dev)
    model, _ = RewardModel.from_pretrained(model_dir)
    return model.to(dev).eval()
