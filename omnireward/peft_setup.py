"""PEFT on a backbone's LM: LoRA, or QLoRA (LoRA over a 4-bit nf4 LM), as `cfg.peft` says.

Only the LM is wrapped: the reward head, projectors and encoders live outside it and are
trained and saved as usual. The wrapped LM saves itself *merged* as a plain transformers folder
(plus the adapter in `adapter/`), so a saved model reloads without peft and gives the scores it
gave in training.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from omnireward.errors import ConfigError, ModelError
from omnireward.quant import quiet_bnb_logs

quiet_bnb_logs()  # before peft imports bitsandbytes
from peft import LoraConfig, PeftModelForCausalLM

METHODS = ("none", "lora", "qlora")
# Attention and MLP projections of Llama/Qwen/Mistral-style decoders.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_DIR = "adapter"


def apply_peft(backbone, peft_cfg) -> None:
    """Wrap the backbone's LM (`.lm`, or `.model` for HF-native ones) in LoRA adapters, in place.

    For qlora the LM's decoder linears are first quantised to 4-bit.
    """
    cfg = dict(peft_cfg or {})
    method = cfg.get("method") or "none"
    if method == "none":
        return
    if method not in METHODS:
        raise ConfigError(f"unknown peft method {method!r}; expected one of {', '.join(METHODS)}", field="peft.method")
    from omnireward.quant import lm_attr

    attr = lm_attr(backbone)
    lm = getattr(backbone, attr)
    if is_peft_lm(lm):
        raise ModelError("the backbone's LM already has adapters")
    targets = cfg.get("target_modules") or default_targets(backbone, lm)
    if method == "qlora":
        from omnireward.quant import compute_dtype_for, quantize_lm

        dtype = cfg.get("compute_dtype", "auto")
        dtype = compute_dtype_for("cuda" if torch.cuda.is_available() else "cpu") if dtype in (None, "auto") \
            else getattr(torch, dtype)
        # Quantised on CPU: Lightning moves the packed weights (and their quant state) to the GPU later.
        quantize_lm(lm, "4bit", device="cpu", compute_dtype=dtype, quant_type=cfg.get("quant_type", "nf4"),
                    double_quant=cfg.get("double_quant", True))
    for m in lm.modules():
        # 4-bit layers (ours, or transformers' for backbone.quantization=4bit) stay in the standard
        # layout: bitsandbytes' AVX512-BF16 CPU repacking breaks merging on save, and tiny layers.
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False
    lora = _lora_config(cfg, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API renamed in v5
        setattr(backbone, attr, MergingLoraLM(lm, lora))


def _lora_config(cfg: dict, targets) -> LoraConfig:
    r = int(cfg.get("r", 16))
    if r <= 0:
        raise ConfigError(f"LoRA rank must be positive, got {r}", field="peft.r")
    return LoraConfig(r=r, lora_alpha=float(cfg.get("alpha") or 2 * r), lora_dropout=float(cfg.get("dropout", 0.0)),
                      target_modules=targets if isinstance(targets, str) else list(targets), bias="none",
                      task_type="CAUSAL_LM")


def default_targets(backbone, lm: nn.Module) -> list[str] | str:
    """The backbone's advertised `lora_targets`, else the Llama/Qwen projections the LM has, else all linears."""
    advertised = getattr(backbone, "lora_targets", None)
    if advertised:
        return advertised if isinstance(advertised, str) else list(advertised)
    present = {name.rsplit(".", 1)[-1] for name, m in lm.named_modules() if isinstance(m, nn.Linear)}
    found = [t for t in DEFAULT_TARGETS if t in present]
    return found or "all-linear"


def is_peft_lm(lm) -> bool:
    return hasattr(lm, "peft_config") and hasattr(lm, "get_base_model")


class MergingLoraLM(PeftModelForCausalLM):
    """A LoRA-wrapped causal LM whose `save_pretrained` writes the merged, plain transformers model
    (4-bit bases dequantised) and the adapter alone in `adapter/`."""

    def save_pretrained(self, save_directory, **kwargs):
        out = Path(save_directory)
        base = self.get_base_model()
        state = merged_state_dict(self)
        # A base loaded quantised by transformers (backbone.quantization=4bit) would otherwise write its
        # quantisation config beside the dense merged weights, and the folder would not load back.
        quantizer, qconfig = getattr(base, "hf_quantizer", None), getattr(base.config, "quantization_config", None)
        try:
            if quantizer is not None:
                base.hf_quantizer = None
            if qconfig is not None:
                del base.config.quantization_config
            base.save_pretrained(out, state_dict=state, safe_serialization=True)
        finally:
            if quantizer is not None:
                base.hf_quantizer = quantizer
            if qconfig is not None:
                base.config.quantization_config = qconfig
        super().save_pretrained(str(out / ADAPTER_DIR), safe_serialization=True)


@torch.no_grad()
def merged_state_dict(peft_lm) -> dict[str, torch.Tensor]:
    """The base model's state dict with every LoRA delta added and every quantised weight made dense."""
    from peft.tuners.lora import LoraLayer

    base = peft_lm.get_base_model()
    dtype = base.get_input_embeddings().weight.dtype
    lora = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    out: dict[str, torch.Tensor] = {}
    for name, layer in lora.items():
        inner = layer.get_base_layer()
        w = dense_weight(inner).float()
        for adapter in layer.active_adapters:
            if adapter in layer.lora_A:
                w = w + layer.get_delta_weight(adapter).float()
        out[f"{name}.weight"] = w.to(dtype).cpu()
        if getattr(inner, "bias", None) is not None:
            out[f"{name}.bias"] = inner.bias.detach().to(dtype).cpu()
    quantised = {name: m for name, m in base.named_modules()
                 if name not in lora and _is_quantised(m) and not _inside(name, lora)}
    for name, m in quantised.items():
        out[f"{name}.weight"] = dense_weight(m).to(dtype).cpu()
        if getattr(m, "bias", None) is not None:
            out[f"{name}.bias"] = m.bias.detach().to(dtype).cpu()
    owners = set(lora) | set(quantised)
    for key, value in base.state_dict().items():
        if not _inside(key, owners):
            out[key] = value.detach().cpu()
    return out


def _inside(key: str, owners) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:i]) in owners for i in range(1, len(parts)))


def _is_quantised(m: nn.Module) -> bool:
    w = getattr(m, "weight", None)
    return type(w).__name__ in ("Params4bit", "Int8Params")


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """A linear layer's weight as a dense float tensor (dequantised for bitsandbytes layers)."""
    w = layer.weight
    kind = type(w).__name__
    if kind == "Params4bit":
        import bitsandbytes.functional as F

        data, state = w.data, w.quant_state
        if getattr(state, "packing_format_for_cpu", False):  # repacked by an eval forward on an AVX512-BF16 CPU
            data, state = F._convert_weight_packed_for_cpu_inverse(data, state)
        return F.dequantize_4bit(data, state).float()
    if kind == "Int8Params":
        cb = getattr(w, "CB", None)
        scb = getattr(w, "SCB", None)
        if cb is None or scb is None:
            return w.data.float()
        return cb.float() * (scb.float().unsqueeze(1) / 127.0)
    return w.detach().float()
