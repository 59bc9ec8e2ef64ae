"""4-bit scoring quantises while loading: same weights as quantising afterwards, and the
full-precision model is never held."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("bitsandbytes")


def _save_lm(folder, *, bias: bool, hidden: int, layers: int, inter: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=512,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=4,
        tie_word_embeddings=True,
    )
    lm = Qwen2ForCausalLM(cfg)  # Qwen2: q/k/v projections carry biases
    assert lm.model.layers[0].self_attn.q_proj.bias is not None or not bias
    lm.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.mark.parametrize("quant", ["4bit", "8bit"])
def test_layer_by_layer_loading_equals_quantising_after_loading(tmp_path, quant):
    from transformers import AutoModelForCausalLM

    from omnireward.quant import load_lm_quantized, quantize_lm

    folder = _save_lm(tmp_path / "lm", bias=True, hidden=64, layers=2, inter=128)
    streamed = load_lm_quantized(folder, quant)
    after = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    quantize_lm(after, quant)
    after.eval()  # new quantised layers start in training mode, where 8-bit layers compute differently
    layer = streamed.model.layers[0]
    kind = {"4bit": "Params4bit", "8bit": "Int8Params"}[quant]
    assert type(layer.mlp.down_proj.weight).__name__ == kind
    assert type(layer.self_attn.q_proj.weight).__name__ == kind and layer.self_attn.q_proj.bias is not None
    assert streamed.lm_head.weight is streamed.model.embed_tokens.weight  # still tied
    assert not any(p.device.type == "meta" for p in streamed.parameters())
    ids = torch.tensor([[1, 5, 9, 200, 7, 3]])
    with torch.no_grad():
        a = streamed.model(ids).last_hidden_state
        b = after.model(ids).last_hidden_state
    assert torch.equal(a, b)


def test_a_checkpoint_with_other_names_falls_back_to_transformers(tmp_path):
    from safetensors.torch import load_file, save_file

    from omnireward.quant import load_lm_quantized

    folder = _save_lm(tmp_path / "lm", bias=True, hidden=64, layers=1, inter=128)
    state = load_file(str(folder / "model.safetensors"))
    save_file({"renamed." + k: v for k, v in state.items()}, str(folder / "model.safetensors"))
    assert load_lm_quantized(folder, "4bit") is None


_PROBE = """
import json, sys, torch
def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
import accelerate, transformers, bitsandbytes
from transformers import AutoConfig, AutoModelForCausalLM
import transformers.models.qwen2.modeling_qwen2
from omnireward.quant import load_lm_quantized, quantized_linear
quantized_linear(torch.nn.Linear(64, 64), "4bit", torch.float32, "cpu")  # libraries and kernels loaded
before = kb("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")
lm = load_lm_quantized(sys.argv[1], "4bit")
print(json.dumps({"before": before, "peak": kb("VmHWM:"), "after": kb("VmRSS:")}))
"""


def test_4bit_loading_never_holds_the_full_precision_model(tmp_path):
    """Peak resident memory added by loading stays under half the checkpoint's fp32 size."""
    folder = _save_lm(tmp_path / "lm", bias=False, hidden=768, layers=4, inter=3072)
    fp32_bytes = (folder / "model.safetensors").stat().st_size
    assert fp32_bytes > 120 * 2**20
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    added = m["peak"] - m["before"]
    assert added < 0.5 * fp32_bytes, (added / 2**20, fp32_bytes / 2**20)
