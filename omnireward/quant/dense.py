"""Writing an LM whose layers are quantised as a plain, dense transformers folder."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from omnireward.quant.bnb import dense_weight, inside, is_quantised_layer


@torch.no_grad()
def save_dense(lm: nn.Module, directory: str | Path) -> None:
    """Write a causal LM with bitsandbytes layers as a plain HF folder: quantised weights dequantised,
    no quantisation config. Quantising it again on load (the folder's `quant`) gives back the
    weights it trained over, and the folder also loads in full precision without bitsandbytes."""
    dtype = lm.get_input_embeddings().weight.dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    quantised = {name: m for name, m in lm.named_modules() if is_quantised_layer(m)}
    state = {}
    for name, m in quantised.items():
        state[f"{name}.weight"] = dense_weight(m).to(dtype).cpu()
        if getattr(m, "bias", None) is not None:
            state[f"{name}.bias"] = m.bias.detach().to(dtype).cpu()
    for key, value in lm.state_dict().items():
        if not inside(key, set(quantised)):
            state[key] = value.detach().cpu()
    save_plain(lm, directory, state)


def save_plain(model: nn.Module, directory: str | Path, state: dict) -> None:
    """`save_pretrained` of dense `state` without the quantisation config of a model transformers
    loaded quantised (the folder would otherwise not load back)."""
    quantizer, qconfig = getattr(model, "hf_quantizer", None), getattr(model.config, "quantization_config", None)
    try:
        if quantizer is not None:
            model.hf_quantizer = None
        if qconfig is not None:
            del model.config.quantization_config
        model.save_pretrained(directory, state_dict=state, safe_serialization=True)
    finally:
        if quantizer is not None:
            model.hf_quantizer = quantizer
        if qconfig is not None:
            model.config.quantization_config = qconfig
