"""Pretrained weights converted once into safetensors under the cache, never downloaded."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from omnireward.cache import cache_dir


def cached_weights(name: str, convert: Callable[[], dict[str, torch.Tensor]], version: str) -> Path:
    """Path of `<cache>/weights/<name>.safetensors`, written by `convert()` unless an up-to-date copy exists."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = cache_dir("weights") / f"{name}.safetensors"
    if path.exists():
        try:
            with safe_open(str(path), "pt") as f:
                if (f.metadata() or {}).get("version") == version:
                    return path
        except Exception:  # a corrupt file (e.g. disk filled up) is simply rebuilt
            pass
    tensors = {k: v.detach().contiguous() for k, v in convert().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"version": version})
    os.replace(tmp, path)  # atomic: concurrent processes never read a half-written file
    return path


def load_weights(path: Path, prefix: str = "", dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file whose names start with `prefix` (stripped), floats cast to `dtype`."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            if k.startswith(prefix):
                t = f.get_tensor(k)
                out[k[len(prefix) :]] = t.to(dtype) if t.is_floating_point() else t
    return out
