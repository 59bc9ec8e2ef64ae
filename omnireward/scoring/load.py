"""Load a trained model folder for scoring, optionally quantised."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from hydra.utils import get_method
from omegaconf import OmegaConf

from omnireward.errors import ConfigError
from omnireward.model_folder import require_reward_folder
from omnireward.quant.bnb import import_bnb, quantize_lm
from omnireward.quant.cpu import apply_bf16, apply_int8, check_cpu_precision
from omnireward.quant.lowmem import release_checkpoint_pages
from omnireward.quant.options import CPU_PRECISIONS, Quantization, as_quantization, quant_option
from omnireward.reward_model import RewardModel


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_for_scoring(model_dir: str | Path, *, quant="none", device: str = "auto"):
    """The folder's reward model on `device`; `quant` is a conf/quant option (none | 4bit | 8bit), a
    `Quantization`, or a CPU scoring precision: int8 (torch's dynamic int8 linears) or bf16."""
    require_reward_folder(model_dir, "reward scoring")
    dev = pick_device(device)
    if isinstance(quant, str) and quant in CPU_PRECISIONS:
        return load_cpu_precision(model_dir, quant, dev)
    q = quant if isinstance(quant, Quantization) else quant_option(quant)
    if q is not None:
        return load_quantized(model_dir, q, dev)
    model, _ = RewardModel.from_pretrained(model_dir)
    return model.to(dev).eval()


def load_quantized(model_dir: str | Path, quant, device: str | torch.device = "cpu"):
    """A saved reward model with its LM's linear layers quantised by `quant` (a `Quantization`, or
    "4bit" = nf4 + double quant, "8bit" = LLM.int8).

    Head, projectors and encoders stay in full precision; compute dtype is bf16 on GPU, fp32 on CPU
    unless the quantisation names one.
    """
    quant = as_quantization(quant)
    if quant is None:
        raise ConfigError("load_quantized needs a quantisation (4bit or 8bit)", field="quant")
    import_bnb()
    device = torch.device(device)
    if builder_quantizes(model_dir):
        # Backbones whose builder takes `quantization` load through transformers' BitsAndBytesConfig,
        # quantising while loading (no full-precision copy of the LM).
        model, _ = RewardModel.from_pretrained(model_dir, quantization=quant)
        for name, child in model.named_children():
            if name != "backbone":
                child.to(device)
        return model.eval()
    model, _ = RewardModel.from_pretrained(model_dir)
    lm = model.backbone.language_model()
    dtype = quant.dtype_for(device)
    if dtype != torch.float32:
        lm.to(dtype)
    quantize_lm(lm, quant, device=device, compute_dtype=dtype)
    if device.type == "cpu":
        release_checkpoint_pages(model)
    return model.to(device).eval()


def builder_quantizes(model_dir: str | Path) -> bool:
    """Whether the saved backbone's `_target_` builder accepts a `quantization` argument."""
    cfg_file = Path(model_dir) / "omnireward.yaml"
    if not cfg_file.exists():
        return False
    target = OmegaConf.load(cfg_file).get("backbone", {}).get("_target_")
    try:
        return "quantization" in inspect.signature(get_method(target)).parameters
    except Exception:  # noqa: BLE001 - an unknown target is RewardModel.from_pretrained's error to report
        return False


def load_cpu_precision(model_dir: str | Path, precision: str, device: str | torch.device = "cpu"):
    """A saved reward model for scoring in `precision`: "int8" (dynamic int8 linears in the LM's
    decoder, CPU) or "bf16" (the LM in bfloat16)."""
    device = torch.device(device)
    check_cpu_precision(precision, device)
    model, _ = RewardModel.from_pretrained(model_dir)
    lm = model.backbone.language_model()
    if precision == "int8":
        apply_int8(lm)
    else:
        apply_bf16(lm)
    return model.to(device).eval()
