"""Quantised scoring (bitsandbytes nf4 / int8 on the LM's linear layers; on CPU also torch's dynamic int8
and bf16) and agreement with full precision."""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireward.errors import ConfigError, DependencyError, ModelError

QUANTS = ("4bit", "8bit")
# Scoring precisions beyond the conf/quant components: applied to a loaded model, not while training.
CPU_PRECISIONS = ("int8", "bf16")
SCORING_QUANTS = ("none", *QUANTS, *CPU_PRECISIONS)


@dataclass(frozen=True)
class Quantization:
    """The `quant` config component (conf/quant/*.yaml): bitsandbytes quantisation of the LM's
    decoder linear layers while it loads — 4-bit (nf4 or fp4, optional double quantisation) or
    LLM.int8. The LM head, embeddings, encoders, projectors and the reward head stay in full
    precision. Every backbone family reads it: the modular backbone quantises its LM layer by
    layer, HF backbones pass it to transformers as a `BitsAndBytesConfig`.
    """

    bits: int = 4
    quant_type: str = "nf4"      # 4-bit only: nf4 | fp4
    double_quant: bool = True    # 4-bit only: quantise the quantisation constants too
    compute_dtype: str = "auto"  # auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16

    def __post_init__(self):
        if self.bits not in (4, 8):
            raise ConfigError(f"quant.bits must be 4 or 8, got {self.bits!r}", field="quant.bits")
        if self.quant_type not in ("nf4", "fp4"):
            raise ConfigError(f"quant.quant_type must be nf4 or fp4, got {self.quant_type!r}", field="quant.quant_type")
        if self.compute_dtype not in _DTYPES:
            raise ConfigError(f"quant.compute_dtype must be one of {', '.join(_DTYPES)}, got {self.compute_dtype!r}",
                              field="quant.compute_dtype")

    @property
    def name(self) -> str:
        """"4bit" or "8bit": the `--quant` spelling and the conf/quant option of the defaults."""
        return f"{self.bits}bit"

    def options(self) -> dict:
        """Keyword options of `quantized_linear` beyond the bit width."""
        return {"quant_type": self.quant_type, "double_quant": self.double_quant} if self.bits == 4 else {}

    def dtype_for(self, device) -> torch.dtype:
        return compute_dtype_for(device) if self.compute_dtype == "auto" else _DTYPES[self.compute_dtype]

    def hf_config(self):
        """The same settings as transformers' `BitsAndBytesConfig`."""
        from transformers import BitsAndBytesConfig

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True)
        compute = self.dtype_for("cuda" if torch.cuda.is_available() else "cpu")
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=self.quant_type,
                                  bnb_4bit_use_double_quant=self.double_quant, bnb_4bit_compute_dtype=compute)


_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def quant_option(name: str) -> Quantization | None:
    """The conf/quant option NAME (none | 4bit | 8bit) built as the training config builds it, so
    `score --quant 4bit` and `train quant=4bit` quantise the same way."""
    from importlib import resources

    from omegaconf import OmegaConf

    from omnireward.config import build, group_options

    options = group_options()["quant"]
    if name not in options:
        raise ConfigError(f"unknown quantisation {name!r}; expected one of {', '.join(options)} "
                          f"(scoring also takes {' or '.join(CPU_PRECISIONS)})", field="--quant")
    node = OmegaConf.create(resources.files("omnireward.conf").joinpath("quant", f"{name}.yaml").read_text())
    node = node.get("quant") if "_target_" not in node else node  # none.yaml sets the global `quant: null`
    return None if node is None else build(node)


def as_quantization(value) -> Quantization | None:
    """A `Quantization` from what callers hold: None / "none" (no quantisation), "4bit" / "8bit"
    (the conf/quant defaults), a `Quantization`, or a mapping of its fields (a saved `quant` config)."""
    if value in (None, "none", False):
        return None
    if isinstance(value, Quantization):
        return value
    if isinstance(value, str):
        if value not in QUANTS:
            raise ConfigError(f"unknown quantisation {value!r}; expected 4bit, 8bit or none", field="quant")
        return Quantization(bits=int(value[0]))
    if isinstance(value, dict) or hasattr(value, "items"):
        fields = {k: v for k, v in dict(value).items() if k not in ("_target_", "_partial_")}
        try:
            return Quantization(**fields)
        except TypeError as e:
            raise ConfigError(f"bad quant settings {fields}: {e}", field="quant") from None
    raise ConfigError(f"unknown quantisation {value!r}; expected 4bit, 8bit, none or a quant config", field="quant")


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
        raise DependencyError("quantisation needs bitsandbytes: pip install 'omnireward[quant]' "
                              f"(or pip install bitsandbytes) ({e})") from None
    # int8 matmul casts fp32 inputs to fp16 and says so on every call.
    warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    return bnb


def compute_dtype_for(device: torch.device | str) -> torch.dtype:
    """bf16 on GPU; fp32 on CPU, which keeps quantised scores closest to full precision."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def quantized_linear(linear: nn.Linear, quant: str, compute_dtype: torch.dtype, device, *,
                     quant_type: str = "nf4", double_quant: bool = True) -> nn.Module:
    """A bitsandbytes copy of `linear`: 4-bit (nf4, double quantisation by default) or LLM.int8 (8bit).

    The weight is quantised when it is moved to `device`, so only one layer is ever held twice.
    """
    bnb = import_bnb()
    has_bias = linear.bias is not None
    w = linear.weight.data
    if quant == "4bit":
        q = _linear4bit_class()(linear.in_features, linear.out_features, bias=has_bias, compute_dtype=compute_dtype,
                                compress_statistics=double_quant, quant_type=quant_type, device="meta")
        # The AVX512-BF16 CPU path repacks weights and computes in bf16; fp32 keeps CPU scores
        # closest to full precision and keeps the weights in the layout that save/merge expects.
        q.support_avx512bf16_for_cpu = False
        q.weight = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=double_quant, quant_type=quant_type,
                                     module=q)
    elif quant == "8bit":
        q = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=has_bias, has_fp16_weights=False,
                                threshold=6.0, device="meta")
        q.weight = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)
    else:
        raise ConfigError(f"unknown quantisation {quant!r}; expected one of {', '.join(QUANTS)}")
    if has_bias:
        q.bias = nn.Parameter(linear.bias.data.to(compute_dtype if quant == "4bit" else w.dtype),
                              requires_grad=False)
    return q.to(device)


@functools.cache
def _linear4bit_class():
    bnb = import_bnb()

    class Linear4bit(bnb.nn.Linear4bit):
        """bitsandbytes' Linear4bit that also loads the state dict it saves (packed weight + quant state),
        so checkpoints of a QLoRA model (best-epoch weights, resumed runs) load back."""

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                  unexpected_keys, error_msgs):
            stats_prefix = prefix + "weight."
            stats = {k[len(stats_prefix):]: state_dict.pop(k) for k in list(state_dict) if k.startswith(stats_prefix)}
            if stats and prefix + "weight" in state_dict:
                self.weight = bnb.nn.Params4bit.from_prequantized(
                    state_dict.pop(prefix + "weight"), stats, requires_grad=False, device=self.weight.device,
                    module=self)
            loaded_weight = bool(stats)
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)
            if loaded_weight:  # consumed above, not missing
                missing_keys[:] = [k for k in missing_keys if k != prefix + "weight"]

    return Linear4bit


def quantize_linears(module: nn.Module, quant: str, *, device="cpu", compute_dtype: torch.dtype | None = None,
                     skip: tuple[nn.Module, ...] = (), **options) -> int:
    """Replace every nn.Linear under `module` (but those in `skip`) by a quantised one; returns the count."""
    compute_dtype = compute_dtype or compute_dtype_for(device)
    skip_ids = {id(m) for m in skip}
    targets = [(name, m) for name, m in module.named_modules()
               if type(m) is nn.Linear and id(m) not in skip_ids]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, quantized_linear(linear, quant, compute_dtype, device, **options))
    return len(targets)


def quantize_lm(lm: nn.Module, quant, *, device="cpu", compute_dtype: torch.dtype | None = None,
                **options) -> int:
    """Quantise the linear layers of an LM's decoder in place (not its LM head, nor vision/audio towers).

    `quant`: a `Quantization`, or "4bit" / "8bit"; `options` (4bit) override its quant_type
    ("nf4" | "fp4") and double_quant (bool).
    """
    q = as_quantization(quant)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    root = decoder if isinstance(decoder, nn.Module) else lm
    out_emb = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    n = quantize_linears(root, q.name, device=device, compute_dtype=compute_dtype or q.dtype_for(device),
                         skip=(out_emb,) if out_emb is not None else (), **{**q.options(), **options})
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


@torch.no_grad()
def save_dense(lm: nn.Module, directory: str | Path) -> None:
    """Write a causal LM with bitsandbytes layers as a plain HF folder: quantised weights dequantised,
    no quantisation config. Quantising it again on load (the folder's `quant`) gives back the
    weights it trained over, and the folder also loads in full precision without bitsandbytes."""
    from omnireward.peft_setup import _inside, _is_quantised, dense_weight

    dtype = lm.get_input_embeddings().weight.dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    quantised = {name: m for name, m in lm.named_modules() if _is_quantised(m)}
    state = {}
    for name, m in quantised.items():
        state[f"{name}.weight"] = dense_weight(m).to(dtype).cpu()
        if getattr(m, "bias", None) is not None:
            state[f"{name}.bias"] = m.bias.detach().to(dtype).cpu()
    for key, value in lm.state_dict().items():
        if not _inside(key, set(quantised)):
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


def read_safetensors(path: str | Path):
    """(name, tensor) for every tensor of a safetensors file, in file order, read with plain reads.

    Not memory-mapped: a mapped checkpoint keeps every page it has touched in the process's
    resident memory while it is open, which is the whole full-precision model once each layer
    has been read to be quantised. Each tensor here is its own buffer, freed once dropped.
    """
    import json as _json
    import os as _os
    import struct

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = _json.loads(f.read(n))
        base = 8 + n
        entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                         key=lambda kv: kv[1]["data_offsets"][0])
        for name, meta in entries:
            begin, end = meta["data_offsets"]
            buf = torch.empty(end - begin, dtype=torch.uint8)
            f.seek(base + begin)
            f.readinto(buf.numpy())
            if hasattr(_os, "posix_fadvise"):  # nor keep it in the page cache: it is read once
                _os.posix_fadvise(f.fileno(), base + begin, end - begin, _os.POSIX_FADV_DONTNEED)
            yield name, buf.view(_SAFETENSORS_DTYPES[meta["dtype"]]).reshape(meta["shape"])


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


def load_lm_quantized(lm_dir: str | Path, quant, device: str | torch.device = "cpu") -> nn.Module:
    """A causal LM whose decoder linear layers are quantised as the checkpoint is read, one at a time.

    The model is built with its parameters on the meta device (no memory); each tensor is read,
    quantised when it is a decoder linear weight (nf4 + double quant for 4bit, int8 for 8bit) or
    kept in the compute dtype otherwise, and put in place, so the process never holds more than
    the quantised model plus one full-precision layer. Returns None when the checkpoint's names
    do not match the model's (a conversion transformers would apply): load it through
    transformers then.
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    lm_dir = Path(lm_dir)
    files = sorted(lm_dir.glob("*.safetensors"))
    if not files:
        return None
    q = as_quantization(quant)
    _return_large_frees_to_the_os()
    device = torch.device(device)
    dtype = q.dtype_for(device)
    config = AutoConfig.from_pretrained(lm_dir)
    with init_empty_weights(include_buffers=False):
        lm = AutoModelForCausalLM.from_config(config, dtype=dtype)
    decoder = lm.get_decoder()
    out_emb = lm.get_output_embeddings()
    linears = {name: m for name, m in lm.named_modules()
               if type(m) is nn.Linear and m is not out_emb and any(m is d for d in decoder.modules())}
    params = dict(lm.named_parameters(remove_duplicate=False))
    waiting: dict[str, dict[str, torch.Tensor]] = {}
    import_bnb()
    with torch.no_grad():
        for file in files:
            for key, tensor in read_safetensors(file):
                if key not in params:
                    return None
                module_name, _, attr = key.rpartition(".")
                if module_name in linears and attr in ("weight", "bias"):
                    got = waiting.setdefault(module_name, {})
                    got[attr] = tensor
                    lin = linears[module_name]
                    if "weight" in got and ("bias" in got or lin.bias is None):
                        _place_quantized(lm, module_name, lin, waiting.pop(module_name), q, dtype, device)
                    continue
                owner = lm.get_submodule(module_name) if module_name else lm
                value = tensor.to(dtype) if tensor.is_floating_point() else tensor
                owner._parameters[attr] = nn.Parameter(value.to(device), requires_grad=False)
    if waiting:
        return None
    if getattr(config, "tie_word_embeddings", False) or out_emb.weight.device.type == "meta":
        lm.tie_weights()
    if any(p.device.type == "meta" for p in lm.parameters()):
        return None
    _trim_heap()
    return lm.eval()


def _return_large_frees_to_the_os() -> None:
    """glibc serves a large allocation from its heap once a chunk that size has been freed (its
    mmap threshold grows), and a heap seldom shrinks: reading a checkpoint tensor by tensor would
    leave the process holding about the full-precision size. A fixed 1 MiB threshold keeps each
    tensor in its own mapping, given back when freed. No effect outside glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _trim_heap() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _place_quantized(lm: nn.Module, name: str, meta_linear: nn.Linear, tensors: dict, quant: Quantization,
                     dtype: torch.dtype, device) -> None:
    full = nn.Linear(meta_linear.in_features, meta_linear.out_features, bias="bias" in tensors, device="meta")
    full.weight = nn.Parameter(tensors["weight"].to(dtype), requires_grad=False)
    if "bias" in tensors:
        full.bias = nn.Parameter(tensors["bias"].to(dtype), requires_grad=False)
    parent_name, _, child = name.rpartition(".")
    setattr(lm.get_submodule(parent_name) if parent_name else lm, child,
            quantized_linear(full, quant.name, dtype, device, **quant.options()))


def load_quantized(model_dir: str | Path, quant, device: str | torch.device = "cpu"):
    """A saved reward model with its LM's linear layers quantised by `quant` (a `Quantization`, or
    "4bit" = nf4 + double quant, "8bit" = LLM.int8).

    Head, projectors and encoders stay in full precision; compute dtype is bf16 on GPU, fp32 on CPU
    unless the quantisation names one.
    """
    from omnireward.reward_model import RewardModel

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


def release_checkpoint_pages(model: nn.Module) -> None:
    """Copy the weights that stay in full precision out of the memory-mapped checkpoint.

    transformers maps the safetensors file; once a layer is quantised its fp32 pages are useless,
    but the mapping (and every page read while quantising) lives as long as any tensor from it.
    Owning copies of the rest lets it go: the process then holds about the quantised size.
    """
    import gc

    with torch.no_grad():
        for module in model.modules():
            for name, p in module._parameters.items():
                if p is not None and type(p).__name__ not in ("Params4bit", "Int8Params"):
                    p.data = p.data.clone()
            for name, b in module._buffers.items():
                if b is not None:
                    module._buffers[name] = b.clone()
    gc.collect()
    try:  # hand freed heap back to the OS (glibc); elsewhere a no-op
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def builder_quantizes(model_dir: str | Path) -> bool:
    """Whether the saved backbone's `_target_` builder accepts a `quantization` argument."""
    import inspect

    from hydra.utils import get_method
    from omegaconf import OmegaConf

    cfg_file = Path(model_dir) / "omnireward.yaml"
    if not cfg_file.exists():
        return False
    target = OmegaConf.load(cfg_file).get("backbone", {}).get("_target_")
    try:
        return "quantization" in inspect.signature(get_method(target)).parameters
    except Exception:  # noqa: BLE001 - an unknown target is RewardModel.from_pretrained's error to report
        return False


# ---- CPU scoring precisions: torch dynamic int8, bf16 ---------------------------------------------
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
            raise ConfigError(f"int8 is torch's dynamic int8 quantisation for CPU scoring; on {dev.type} use "
                              "--quant 8bit (LLM.int8) or --quant 4bit (bitsandbytes), or --device cpu",
                              field="--quant")
        if int8_engine() is None:
            raise ConfigError("int8 needs a quantised-kernel engine (fbgemm or qnnpack), and this torch build "
                              "has none", field="--quant")
    elif precision == "bf16":
        if dev.type == "cuda":
            if not torch.cuda.is_available() or not torch.cuda.is_bf16_supported():
                raise ConfigError("bf16 scoring needs a GPU with bf16 support (compute capability 8.0+); "
                                  "use --quant none or 4bit/8bit", field="--quant")
        elif dev.type == "cpu":
            if cpu_bf16_feature() is None:
                raise ConfigError("bf16 scoring needs a CPU with bf16 instructions (avx512_bf16 or amx_bf16; "
                                  "this one has neither, so bf16 would run slower than fp32); use --quant int8 "
                                  "or none", field="--quant")
        else:
            raise ConfigError(f"bf16 scoring runs on cpu or cuda, not {dev.type}", field="--quant")
    else:
        raise ConfigError(f"unknown scoring precision {precision!r}; expected {' or '.join(CPU_PRECISIONS)}",
                          field="--quant")


def precision_details(precision: str) -> str:
    """What `--quant int8|bf16` does, as recorded beside the scores."""
    if precision == "int8":
        return (f"torch.ao dynamic qint8 (per-channel weights, activations quantised per batch) on the LM "
                f"decoder's linear layers, {int8_engine()} engine; LM head, embeddings, encoders and head fp32")
    return "LM weights and activations in bfloat16; encoders, projectors and the reward head fp32"


def apply_int8(lm: nn.Module) -> int:
    """Replace the LM decoder's nn.Linear layers by torch's dynamic int8 ones (qint8 weights per output
    channel, activations quantised on the fly); returns how many. CPU only. The LM head, embeddings
    and anything outside the decoder keep their precision."""
    if is_quantized(lm):
        raise ConfigError("this model's LM is already bitsandbytes-quantised (trained with quant=4bit|8bit); "
                          "score it with --quant none", field="--quant")
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
        raise ConfigError("this model's LM is already bitsandbytes-quantised (trained with quant=4bit|8bit); "
                          "score it with --quant none", field="--quant")
    lm.to(torch.bfloat16)


def load_cpu_precision(model_dir: str | Path, precision: str, device: str | torch.device = "cpu"):
    """A saved reward model for scoring in `precision`: "int8" (dynamic int8 linears in the LM's
    decoder, CPU) or "bf16" (the LM in bfloat16)."""
    from omnireward.reward_model import RewardModel

    device = torch.device(device)
    check_cpu_precision(precision, device)
    model, _ = RewardModel.from_pretrained(model_dir)
    lm = model.backbone.language_model()
    if precision == "int8":
        apply_int8(lm)
    else:
        apply_bf16(lm)
    return model.to(device).eval()


# ---- agreement with full precision ----------------------------------------------------------
def agreement(full_lines: list[dict], quant_lines: list[dict]) -> dict:
    """Share of pairs whose margin has the same sign, and Kendall τ-b between all rewards."""
    if len(full_lines) != len(quant_lines):
        raise ValueError(f"{len(full_lines)} full-precision lines but {len(quant_lines)} quantised lines")
    full_r, quant_r, full_m, quant_m = [], [], [], []
    for a, b in zip(full_lines, quant_lines):
        if a.get("id") != b.get("id"):
            raise ValueError(f"lines out of order: {a.get('id')!r} vs {b.get('id')!r}")
        if "margin" in a:
            full_m.append(a["margin"])
            quant_m.append(b["margin"])
            full_r += [a["reward1"], a["reward2"]]
            quant_r += [b["reward1"], b["reward2"]]
        elif "rewards" in a:  # a group
            full_r += a["rewards"]
            quant_r += b["rewards"]
        else:
            full_r.append(a["reward"])
            quant_r.append(b["reward"])
    sign = (float(np.mean(np.sign(full_m) == np.sign(quant_m))) if full_m else None)
    return {"sign_agreement": sign, "kendall_tau": kendall_tau_b(full_r, quant_r), "n": len(full_lines),
            "n_pairs": len(full_m)}


def kendall_tau_b(x, y) -> float | None:
    """Kendall's τ-b (tie-corrected) in O(n log n): sort by (x, y), count y inversions (Knight 1966)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n != len(y):
        raise ValueError("x and y differ in length")
    if n < 2:
        return None
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    n0 = n * (n - 1) // 2
    ties_x = _tied_pairs(x)
    ties_xy = _tied_pairs_joint(x, y)
    swaps = _inversions(y)
    ties_y = _tied_pairs(np.sort(y))
    denom = (n0 - ties_x) * (n0 - ties_y)
    if denom == 0:
        return None
    concordant_minus_discordant = n0 - ties_x - ties_y + ties_xy - 2 * swaps
    return float(concordant_minus_discordant / np.sqrt(float(denom)))


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Σ t(t-1)/2 over runs of equal values in a sorted array."""
    if len(sorted_values) == 0:
        return 0
    _, counts = np.unique(sorted_values, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _tied_pairs_joint(x: np.ndarray, y: np.ndarray) -> int:
    _, counts = np.unique(np.stack([x, y], axis=1), axis=0, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j] (strictly), with a Fenwick tree over ranks."""
    ranks = np.searchsorted(np.unique(values), values) + 1
    size = int(ranks.max())
    tree = [0] * (size + 1)
    inversions = 0
    for seen, r in enumerate(ranks.tolist()):
        # count earlier values <= r, so the rest are strictly greater
        i, not_greater = r, 0
        while i > 0:
            not_greater += tree[i]
            i -= i & -i
        inversions += seen - not_greater
        i = r
        while i <= size:
            tree[i] += 1
            i += i & -i
    return inversions
