"""Quantisation, by job: the options (`options`), bitsandbytes layers (`bnb`), low-memory loading
(`lowmem`), dense saving (`dense`) and the CPU scoring precisions (`cpu`). Every name stays
importable from `omnireward.quant`."""

from omnireward.metrics import agreement, kendall_tau_b  # noqa: F401 (re-exported)
from omnireward.quant.bnb import (  # noqa: F401 (re-exported)
    dense_weight,
    import_bnb,
    is_quantised_layer,
    is_quantized,
    keep_cpu_layout,
    quantize_linears,
    quantize_lm,
    quantized_linear,
    quiet_bnb_logs,
)
from omnireward.quant.cpu import (  # noqa: F401 (re-exported)
    apply_bf16,
    apply_int8,
    check_cpu_precision,
    cpu_bf16_feature,
    int8_engine,
    precision_details,
)
from omnireward.quant.dense import save_dense, save_plain  # noqa: F401 (re-exported)
from omnireward.quant.lowmem import load_lm_quantized, read_safetensors, release_checkpoint_pages  # noqa: F401
from omnireward.quant.options import (  # noqa: F401 (re-exported)
    CPU_PRECISIONS,
    QUANTS,
    SCORING_QUANTS,
    Quantization,
    as_quantization,
    compute_dtype_for,
    quant_option,
)

# Loading a saved model folder quantised sits a layer above quantisation, in omnireward.scoring.load.
_FOLDER_LOADERS = ("load_quantized", "load_cpu_precision", "builder_quantizes")


def __getattr__(name):
    if name in _FOLDER_LOADERS:
        # deferred: scoring.load imports this package, so its names are looked up on first use
        from omnireward.scoring import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
