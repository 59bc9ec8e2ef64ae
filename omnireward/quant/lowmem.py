"""Low-memory loading: a causal LM quantised layer by layer as its checkpoint is read, and the
full-precision pages a quantised model no longer needs handed back to the OS."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import struct
from pathlib import Path

import torch
from torch import nn

from omnireward.quant.bnb import import_bnb, quantized_linear
from omnireward.quant.options import Quantization, as_quantization


def read_safetensors(path: str | Path):
    """(name, tensor) for every tensor of a safetensors file, in file order, read with plain reads.

    Not memory-mapped: a mapped checkpoint keeps every page it has touched in the process's
    resident memory while it is open, which is the whole full-precision model once each layer
    has been read to be quantised. Each tensor here is its own buffer, freed once dropped.
    """
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        entries = sorted(
            ((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]
        )
        for name, meta in entries:
            begin, end = meta["data_offsets"]
            buf = torch.empty(end - begin, dtype=torch.uint8)
            f.seek(base + begin)
            f.readinto(buf.numpy())
            if hasattr(os, "posix_fadvise"):  # nor keep it in the page cache: it is read once
                os.posix_fadvise(f.fileno(), base + begin, end - begin, os.POSIX_FADV_DONTNEED)
            yield name, buf.view(_SAFETENSORS_DTYPES[meta["dtype"]]).reshape(meta["shape"])


_SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def load_lm_quantized(lm_dir: str | Path, quant, device: str | torch.device = "cpu") -> nn.Module:
    """A causal LM whose decoder linear layers are quantised as the checkpoint is read, one at a time.

    The model is built with its parameters on the meta device (no memory); each tensor is read,
    quantised when it is a decoder linear weight (nf4 + double quant for 4bit, int8 for 8bit) or
    kept in the compute dtype otherwise, and put in place, so the process never holds more than
    the quantised model plus one full-precision layer. Returns None when the checkpoint's names
    do not match the model's (a conversion transformers would apply): load it through
    transformers then.
    """
    # deferred: transformers and accelerate are heavy to import
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
    linears = {
        name: m
        for name, m in lm.named_modules()
        if type(m) is nn.Linear and m is not out_emb and any(m is d for d in decoder.modules())
    }
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
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _place_quantized(
    lm: nn.Module, name: str, meta_linear: nn.Linear, tensors: dict, quant: Quantization, dtype: torch.dtype, device
) -> None:
    full = nn.Linear(meta_linear.in_features, meta_linear.out_features, bias="bias" in tensors, device="meta")
    full.weight = nn.Parameter(tensors["weight"].to(dtype), requires_grad=False)
    if "bias" in tensors:
        full.bias = nn.Parameter(tensors["bias"].to(dtype), requires_grad=False)
    parent_name, _, child = name.rpartition(".")
    setattr(
        lm.get_submodule(parent_name) if parent_name else lm,
        child,
        quantized_linear(full, quant.name, dtype, device, **quant.options()),
    )


def release_checkpoint_pages(model: nn.Module) -> None:
    """Copy the weights that stay in full precision out of the memory-mapped checkpoint.

    transformers maps the safetensors file; once a layer is quantised its fp32 pages are useless,
    but the mapping (and every page read while quantising) lives as long as any tensor from it.
    Owning copies of the rest lets it go: the process then holds about the quantised size.
    """
    with torch.no_grad():
        for module in model.modules():
            for p in module._parameters.values():
                if p is not None and type(p).__name__ not in ("Params4bit", "Int8Params"):
                    p.data = p.data.clone()
            for name, b in module._buffers.items():
                if b is not None:
                    module._buffers[name] = b.clone()
    gc.collect()
    try:  # hand freed heap back to the OS (glibc); elsewhere a no-op
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
