"""CPU scoring beyond fp32: `--quant int8` (torch's dynamic int8 on the LM decoder's linear layers)
and `--quant bf16`, on the modular (embedded-style) and HF backbone families, their agreement with
fp32, what the scores record, and the combinations that are refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _deploy_utils import accuracy, fit_steps, score_lines, text_set, tiny_overrides
from torch import nn

from omnireward.errors import ConfigError
from omnireward.quant import agreement


@pytest.fixture(scope="module", params=["modular", "hf"])
def trained(request, tmp_path_factory):
    """A tiny text reward model of each backbone family, trained to clear margins on the test pairs."""
    from omnireward.config import compose_config
    from omnireward.data.datamodule import load_records
    from omnireward.train import build_module

    root = tmp_path_factory.mktemp(f"cpu-{request.param}")
    data = text_set(root / "data", n_train=64, n_val=16, n_test=48)
    overrides = tiny_overrides(data, root / "model", "head.dropout=0")
    if request.param == "hf":
        tiny_hf = pytest.importorskip("_tiny_hf")
        src = tiny_hf.save_text_lm(root / "src", hidden=64)
        overrides = [o for o in overrides if not o.startswith("backbone")] + [
            "backbone=hf",
            f"backbone.name_or_path={src}",
            "backbone.dtype=float32",
        ]
    cfg = compose_config(overrides)
    module = build_module(cfg)
    fit_steps(module, load_records(data["train"]), steps=12, lr=2e-3)
    out = module.model.save_pretrained(root / "model", cfg)
    return out, data, request.param


def _full(model_dir, data):
    from omnireward.scoring.load import load_for_scoring

    full = score_lines(load_for_scoring(model_dir, device="cpu"), data["test"])
    assert accuracy(full) >= 0.9
    return full


def test_int8_margins_agree_with_fp32(trained):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from omnireward.scoring.load import load_for_scoring

    model_dir, data, family = trained
    full = _full(model_dir, data)
    q = load_for_scoring(model_dir, quant="int8", device="cpu")
    lm = q.backbone.language_model()
    decoder = lm.get_decoder()
    layer = decoder.layers[0]
    assert isinstance(layer.mlp.down_proj, DynamicLinear) and isinstance(layer.self_attn.q_proj, DynamicLinear)
    assert not any(type(m) is nn.Linear for m in decoder.modules())  # every decoder linear is int8
    assert type(lm.get_output_embeddings()) is nn.Linear  # the LM head is not
    assert q.head.score.weight.dtype == torch.float32
    quant = score_lines(q, data["test"])
    assert any(abs(a["reward1"] - b["reward1"]) > 1e-5 for a, b in zip(full, quant))  # it did quantise
    a = agreement(full, quant)
    assert a["sign_agreement"] >= 0.95, (family, a)
    assert a["kendall_tau"] > 0.9, (family, a)


def test_bf16_margins_agree_with_fp32(trained, monkeypatch):
    """bf16 where the CPU has the instructions; here the check is told it has them (torch emulates bf16
    on any CPU, only slower), so the same code path runs on every machine."""
    import omnireward.quant.cpu as quant
    from omnireward.scoring.load import load_for_scoring

    monkeypatch.setattr(quant, "cpu_bf16_feature", lambda: "avx512_bf16")
    model_dir, data, family = trained
    full = _full(model_dir, data)
    q = load_for_scoring(model_dir, quant="bf16", device="cpu")
    lm = q.backbone.language_model()
    assert lm.get_decoder().layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert q.head.score.weight.dtype == torch.float32
    bf16 = score_lines(q, data["test"])
    assert any(abs(a["reward1"] - b["reward1"]) > 1e-5 for a, b in zip(full, bf16))
    a = agreement(full, bf16)
    assert a["sign_agreement"] >= 0.95, (family, a)


def test_int8_is_recorded_in_the_state_and_summary_and_a_resume_with_another_precision_is_refused(trained, tmp_path):
    from omnireward.errors import ResumeError
    from omnireward.scoring.bt import score_file

    model_dir, data, family = trained
    if family == "hf":
        pytest.skip("the recording does not depend on the backbone family")
    out = tmp_path / "scores.jsonl"
    summary = score_file(
        data["test"], model_dir, out, quant="int8", compare_full=True, device="cpu", show_progress=False
    )
    a = summary["agreement_with_full_precision"]
    assert a["n_pairs"] == 48 and a["sign_agreement"] >= 0.95
    saved = json.loads((tmp_path / "scores.summary.json").read_text())
    assert saved["quant"] == "int8" and "qint8" in saved["quant_details"]
    assert saved["agreement_with_full_precision"] == a
    state = json.loads((tmp_path / "scores.jsonl.state.json").read_text())
    assert state["identity"]["options"]["quant"] == "int8"
    with pytest.raises(ResumeError, match="options.quant"):
        score_file(data["test"], model_dir, out, quant="none", device="cpu", show_progress=False)
    # int8 quantises activations per batch, so its rewards depend on the batching: part of what is resumed
    with pytest.raises(ResumeError, match="options.batch_size"):
        score_file(data["test"], model_dir, out, quant="int8", batch_size=8, device="cpu", show_progress=False)


@pytest.mark.parametrize(
    "quant,device,needle",
    [
        ("int8", "cuda", "--quant 8bit"),
        ("int4", "cpu", "expected one of none, 4bit, 8bit, int8, bf16"),
    ],
)
def test_bad_combinations_are_refused_before_anything_is_written(quant, device, needle, tmp_path):
    from omnireward.scoring.bt import score_file

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("")
    with pytest.raises(ConfigError, match=needle.replace("-", r"\-")) as e:
        score_file(pairs, tmp_path / "no-model", tmp_path / "s.jsonl", quant=quant, device=device)
    assert "\n" not in str(e.value) and e.value.field == "--quant"
    assert list(tmp_path.iterdir()) == [pairs]


def test_bf16_is_refused_on_a_cpu_without_bf16_instructions(monkeypatch):
    import omnireward.quant.cpu as quant

    monkeypatch.setattr(quant, "cpu_bf16_feature", lambda: None)
    with pytest.raises(ConfigError, match="avx512_bf16 or amx_bf16") as e:
        quant.check_cpu_precision("bf16", "cpu")
    assert "\n" not in str(e.value)
    monkeypatch.setattr(quant, "cpu_bf16_feature", lambda: "amx_bf16")
    quant.check_cpu_precision("bf16", "cpu")


def test_int8_over_a_bitsandbytes_lm_is_refused():
    pytest.importorskip("bitsandbytes")
    from transformers import LlamaForCausalLM

    from omnireward.backbones.lm import tiny_lm_config
    from omnireward.quant import apply_int8, quantize_lm

    lm = LlamaForCausalLM(tiny_lm_config(64, 32, 1))
    quantize_lm(lm, "8bit")
    with pytest.raises(ConfigError, match="already bitsandbytes-quantised"):
        apply_int8(lm)


def _cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "omnireward.cli.app", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_cli_refuses_bad_combinations_in_one_line(trained, tmp_path):
    model_dir, data, family = trained
    if family == "hf":
        pytest.skip("the refusals do not depend on the backbone family")
    cases = [(["--quant", "int8", "--device", "cuda"], "--quant 8bit")]
    from omnireward.quant import cpu_bf16_feature

    if cpu_bf16_feature() is None:
        cases.append((["--quant", "bf16"], "bf16 instructions"))
    for extra, needle in cases:
        r = _cli("score", data["test"], "--model", model_dir, "--out", tmp_path / "s.jsonl", *extra)
        assert r.returncode != 0, extra
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and needle in lines[0], (extra, r.stderr)
        assert not (tmp_path / "s.jsonl").exists()
