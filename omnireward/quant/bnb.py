"""bitsandbytes layers: quantising an LM's linear layers (nf4 / int8), telling a quantised layer
apart, and reading its weight back dense."""

from __future__ import annotations

import functools
import logging
import warnings

import torch
from torch import nn

from omnireward.errors import ConfigError, DependencyError, ModelError
from omnireward.quant.options import QUANTS, as_quantization, compute_dtype_for


def quiet_bnb_logs() -> None:
    """bitsandbytes' CPU backend logs a warning at import when the optional `kernels` package is
    absent; the fallback kernels it then uses are the ones we want anyway. (peft imports it too.)"""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def import_bnb():
    """bitsandbytes, or a DependencyError naming the install command."""
    quiet_bnb_logs()
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise DependencyError(
            f"quantisation needs bitsandbytes: pip install 'omnireward[quant]' (or pip install bitsandbytes) ({e})"
        ) from None
    # int8 matmul casts fp32 inputs to fp16 and says so on every call.
    warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    return bnb


def quantized_linear(
    linear: nn.Linear,
    quant: str,
    compute_dtype: torch.dtype,
    device,
    *,
    quant_type: str = "nf4",
    double_quant: bool = True,
) -> nn.Module:
    """A bitsandbytes copy of `linear`: 4-bit (nf4, double quantisation by default) or LLM.int8 (8bit).

    The weight is quantised when it is moved to `device`, so only one layer is ever held twice.
    """
    bnb = import_bnb()
    has_bias = linear.bias is not None
    w = linear.weight.data
    if quant == "4bit":
        q = _linear4bit_class()(
            linear.in_features,
            linear.out_features,
            bias=has_bias,
            compute_dtype=compute_dtype,
            compress_statistics=double_quant,
            quant_type=quant_type,
            device="meta",
        )
        # The AVX512-BF16 CPU path repacks weights and computes in bf16; fp32 keeps CPU scores
        # closest to full precision and keeps the weights in the layout that save/merge expects.
        q.support_avx512bf16_for_cpu = False
        q.weight = bnb.nn.Params4bit(
            w, requires_grad=False, compress_statistics=double_quant, quant_type=quant_type, module=q
        )
    elif quant == "8bit":
        q = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, bias=has_bias, has_fp16_weights=False, threshold=6.0, device="meta"
        )
        q.weight = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)
    else:
        raise ConfigError(f"unknown quantisation {quant!r}; expected one of {', '.join(QUANTS)}")
    if has_bias:
        q.bias = nn.Parameter(linear.bias.data.to(compute_dtype if quant == "4bit" else w.dtype), requires_grad=False)
    return q.to(device)


@functools.cache
def _linear4bit_class():
    bnb = import_bnb()

    class Linear4bit(bnb.nn.Linear4bit):
        """bitsandbytes' Linear4bit that also loads the state dict it saves (packed weight + quant state),
        so checkpoints of a QLoRA model (best-epoch weights, resumed runs) load back."""

        def _load_from_state_dict(
            self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        ):
            stats_prefix = prefix + "weight."
            stats = {k[len(stats_prefix) :]: state_dict.pop(k) for k in list(state_dict) if k.startswith(stats_prefix)}
            if stats and prefix + "weight" in state_dict:
                self.weight = bnb.nn.Params4bit.from_prequantized(
                    state_dict.pop(prefix + "weight"),
                    stats,
                    requires_grad=False,
                    device=self.weight.device,
                    module=self,
                )
            loaded_weight = bool(stats)
            super()._load_from_state_dict(
                state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
            )
            if loaded_weight:  # consumed above, not missing
                missing_keys[:] = [k for k in missing_keys if k != prefix + "weight"]

    return Linear4bit


def quantize_linears(
    module: nn.Module,
    quant: str,
    *,
    device="cpu",
    compute_dtype: torch.dtype | None = None,
    skip: tuple[nn.Module, ...] = (),
    **options,
) -> int:
    """Replace every nn.Linear under `module` (but those in `skip`) by a quantised one; returns the count."""
    compute_dtype = compute_dtype or compute_dtype_for(device)
    skip_ids = {id(m) for m in skip}
    targets = [(name, m) for name, m in module.named_modules() if type(m) is nn.Linear and id(m) not in skip_ids]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, quantized_linear(linear, quant, compute_dtype, device, **options))
    return len(targets)


def quantize_lm(lm: nn.Module, quant, *, device="cpu", compute_dtype: torch.dtype | None = None, **options) -> int:
    """Quantise the linear layers of an LM's decoder in place (not its LM head, nor vision/audio towers).

    `quant`: a `Quantization`, or "4bit" / "8bit"; `options` (4bit) override its quant_type
    ("nf4" | "fp4") and double_quant (bool).
    """
    q = as_quantization(quant)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    root = decoder if isinstance(decoder, nn.Module) else lm
    out_emb = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    n = quantize_linears(
        root,
        q.name,
        device=device,
        compute_dtype=compute_dtype or q.dtype_for(device),
        skip=(out_emb,) if out_emb is not None else (),
        **{**q.options(), **options},
    )
    if n == 0:
        raise ModelError(f"found no linear layers to quantise in {type(lm).__name__}")
    return n


def keep_cpu_layout(model: nn.Module) -> None:
    """4-bit layers loaded by transformers: no AVX512-BF16 repacking on CPU (fp32 compute, as for the
    layers quantised here, and the weight layout that saving and dequantising expect)."""
    for m in model.modules():
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False


def is_quantized(lm: nn.Module) -> bool:
    return any(type(p).__name__ in ("Params4bit", "Int8Params") for p in lm.parameters())


def is_quantised_layer(m: nn.Module) -> bool:
    """Whether `m` holds a bitsandbytes weight (4-bit or int8)."""
    w = getattr(m, "weight", None)
    return type(w).__name__ in ("Params4bit", "Int8Params")


def inside(key: str, owners) -> bool:
    """Whether the state-dict `key` belongs to one of the modules named in `owners`."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in owners for i in range(1, len(parts)))


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """A linear layer's weight as a dense float tensor (dequantised for bitsandbytes layers)."""
    w = layer.weight
    kind = type(w).__name__
    if kind == "Params4bit":
        import bitsandbytes.functional as F  # deferred: bitsandbytes is optional (omnireward[quant])

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
