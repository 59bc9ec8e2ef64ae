"""CPU scoring precisions: torch's dynamic int8 linears and bf16, and whether this machine runs them."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from omnireward.errors import ConfigError, ModelError
from omnireward.quant.bnb import is_quantized
from omnireward.quant.options import CPU_PRECISIONS


def cpu_bf16_feature() -> str | None:
    """The CPU feature that runs bf16 matrix products natively ("amx_bf16", "avx512_bf16", or "bf16" on
    Arm), or None: without one, torch emulates bf16 and it runs slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    try:
        if cpu is not None and cpu._is_amx_tile_supported():
            return "amx_bf16"
        if cpu is not None and cpu._is_avx512_bf16_supported():
            return "avx512_bf16"
    except (AttributeError, RuntimeError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    for name in ("amx_bf16", "avx512_bf16", "bf16"):
                        if name in flags:
                            return name
                    break
    except OSError:
        pass
    return None


def int8_engine() -> str | None:
    """The quantised-kernel engine for dynamic int8 linears: fbgemm on x86, qnnpack on Arm."""
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("fbgemm", "x86", "qnnpack") if e in engines), None)


def check_cpu_precision(precision: str, device) -> None:
    """One-line ConfigError where `precision` (int8 | bf16) cannot score on `device`."""
    dev = torch.device(device)
    if precision == "int8":
        if dev.type != "cpu":
            raise ConfigError(
                f"int8 is torch's dynamic int8 quantisation for CPU scoring; on {dev.type} use "
                "--quant 8bit (LLM.int8) or --quant 4bit (bitsandbytes), or --device cpu",
                field="--quant",
            )
        if int8_engine() is None:
            raise ConfigError(
                "int8 needs a quantised-kernel engine (fbgemm or qnnpack), and this torch build has none",
                field="--quant",
            )
    elif precision == "bf16":
        if dev.type == "cuda":
            if not torch.cuda.is_available() or not torch.cuda.is_bf16_supported():
                raise ConfigError(
                    "bf16 scoring needs a GPU with bf16 support (compute capability 8.0+); "
                    "use --quant none or 4bit/8bit",
                    field="--quant",
                )
        elif dev.type == "cpu":
            if cpu_bf16_feature() is None:
                raise ConfigError(
                    "bf16 scoring needs a CPU with bf16 instructions (avx512_bf16 or amx_bf16; "
                    "this one has neither, so bf16 would run slower than fp32); use --quant int8 "
                    "or none",
                    field="--quant",
                )
        else:
            raise ConfigError(f"bf16 scoring runs on cpu or cuda, not {dev.type}", field="--quant")
    else:
        raise ConfigError(
            f"unknown scoring precision {precision!r}; expected {' or '.join(CPU_PRECISIONS)}", field="--quant"
        )


def precision_details(precision: str) -> str:
    """What `--quant int8|bf16` does, as recorded beside the scores."""
    if precision == "int8":
        return (
            f"torch.ao dynamic qint8 (per-channel weights, activations quantised per batch) on the LM "
            f"decoder's linear layers, {int8_engine()} engine; LM head, embeddings, encoders and head fp32"
        )
    return "LM weights and activations in bfloat16; encoders, projectors and the reward head fp32"


def apply_int8(lm: nn.Module) -> int:
    """Replace the LM decoder's nn.Linear layers by torch's dynamic int8 ones (qint8 weights per output
    channel, activations quantised on the fly); returns how many. CPU only. The LM head, embeddings
    and anything outside the decoder keep their precision."""
    if is_quantized(lm):
        raise ConfigError(
            "this model's LM is already bitsandbytes-quantised (trained with quant=4bit|8bit); "
            "score it with --quant none",
            field="--quant",
        )
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    root = decoder if isinstance(decoder, nn.Module) else lm
    if any(p.dtype != torch.float32 for p in root.parameters() if p.is_floating_point()):
        lm.float()  # the int8 kernels take fp32 weights and activations
    engine = int8_engine()
    if engine is not None:
        torch.backends.quantized.engine = engine
    with warnings.catch_warnings():  # torch.ao's deprecation notices: the kernels are the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        # imported under the filter: torch.ao warns at import
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        quantize_dynamic(root, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    n = sum(1 for m in root.modules() if isinstance(m, DynamicLinear))
    if n == 0:
        raise ModelError(f"found no linear layers to quantise in {type(lm).__name__}")
    return n


def apply_bf16(lm: nn.Module) -> None:
    """The LM's weights in bfloat16 (its inputs follow); the rest of the reward model stays fp32."""
    if is_quantized(lm):
        raise ConfigError(
            "this model's LM is already bitsandbytes-quantised (trained with quant=4bit|8bit); "
            "score it with --quant none",
            field="--quant",
        )
    lm.to(torch.bfloat16)
