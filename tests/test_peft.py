"""LoRA / QLoRA on the backbone's LM: what trains, what is saved, and that a reloaded model scores the same."""

from __future__ import annotations

import json

import pytest
import torch
from _deploy_utils import accuracy, fit_steps, score_lines, text_set, tiny_overrides, train_tiny
from safetensors import safe_open
from torch import nn

from omnireward.config import compose_config
from omnireward.errors import ConfigError
from omnireward.peft_setup import LoRA
from omnireward.reward_model import RewardModel


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return text_set(tmp_path_factory.mktemp("peft-data"), n_train=64, n_val=24, n_test=24)


def _module(data, out, *extra):
    from omnireward.data.datamodule import load_records
    from omnireward.train import build_module

    cfg = compose_config(tiny_overrides(data, out, *extra))
    return cfg, build_module(cfg), load_records(data["train"])


def _max_diff(a: list[dict], b: list[dict]) -> float:
    return max(max(abs(x["reward1"] - y["reward1"]), abs(x["reward2"] - y["reward2"])) for x, y in zip(a, b))


def test_default_targets_are_the_backbones_projections_unless_given():
    from omnireward.backbones.build import build_modular

    bb = build_modular(lm="tiny", feature_cache=False)
    assert bb.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    LoRA(r=4, target_modules=["q_proj", "v_proj"]).apply(bb)
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in bb.lm.named_parameters() if "lora_A" in n}
    assert wrapped == {"q_proj", "v_proj"}


def test_lora_trains_adapters_head_and_projectors_and_freezes_the_base(data, tmp_path):
    _, module, _ = _module(data, tmp_path / "m", "peft=lora", "peft.r=8", "modality=image")
    model = module.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "head.score.weight" in trainable
    assert any(n.startswith("backbone.projectors.image") for n in trainable)
    lm_trainable = [n for n in trainable if n.startswith("backbone.lm.")]
    assert lm_trainable and all("lora_" in n for n in lm_trainable)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "base_layer" in n or "embed_tokens" in n)


def test_lora_model_reloads_with_the_same_scores(data, tmp_path):
    cfg, module, pairs = _module(data, tmp_path / "m", "peft=lora", "peft.r=8", "head.dropout=0")
    model = module.model
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    head = model.head.score.weight.detach().clone()
    fit_steps(module, pairs, steps=4)
    # the adapters and the head moved, the base did not
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)
    assert not torch.equal(model.head.score.weight, head)
    assert max(float(p.abs().max()) for n, p in model.named_parameters() if "lora_B" in n) > 1e-4
    before = score_lines(model, data["test"])

    out = model.save_pretrained(tmp_path / "saved", cfg)
    with safe_open(str(out / "modules.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert "head.score.weight" in keys and not any("lora" in k for k in keys)
    assert (out / "lm" / "adapter" / "adapter_config.json").exists()
    with safe_open(str(out / "lm" / "model.safetensors"), "pt") as f:
        lm_keys = list(f.keys())
    assert "model.layers.0.self_attn.q_proj.weight" in lm_keys and not any(
        "lora" in k or "base_layer" in k for k in lm_keys
    )

    reloaded, _ = RewardModel.from_pretrained(out)
    assert not any("lora" in n for n, _ in reloaded.named_parameters())
    after = score_lines(reloaded, data["test"])
    assert _max_diff(before, after) < 1e-5
    # the reward is not the untrained head's: the reloaded head is the trained one
    assert torch.equal(reloaded.head.score.weight, model.head.score.weight)


def test_qlora_quantises_the_lm_and_reloads_with_the_same_scores(data, tmp_path):
    cfg, module, pairs = _module(data, tmp_path / "m", "peft=qlora", "peft.r=8", "head.dropout=0")
    model = module.model
    q_proj = model.backbone.lm.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    assert type(q_proj.weight).__name__ == "Params4bit" and q_proj.weight.dtype == torch.uint8
    fit_steps(module, pairs, steps=4)
    before = score_lines(model, data["test"])

    # the state dict (packed weights + quant state) loads back: best-epoch weights and resumed runs
    state = {k: v.clone() for k, v in model.state_dict().items()}
    _, other, _ = _module(data, tmp_path / "o", "peft=qlora", "peft.r=8", "head.dropout=0", "seed=3")
    other.model.load_state_dict(state)
    assert _max_diff(before, score_lines(other.model.eval(), data["test"])) < 1e-6

    out = model.save_pretrained(tmp_path / "saved", cfg)
    reloaded, _ = RewardModel.from_pretrained(out)
    # the merged LM is plain (dequantised base + adapters): no bitsandbytes needed to score
    assert type(reloaded.backbone.lm.model.layers[0].self_attn.q_proj) is nn.Linear
    assert _max_diff(before, score_lines(reloaded, data["test"])) < 1e-4


def test_train_with_qlora_end_to_end(data, tmp_path):
    out = train_tiny(data, tmp_path / "run", "peft=qlora", "peft.r=8", "trainer.max_epochs=2", "model.lm_lr=3e-3")
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["best_val_acc"] >= 0.9
    reloaded, cfg = RewardModel.from_pretrained(out)
    assert cfg.peft._target_.endswith("QLoRA")
    assert accuracy(score_lines(reloaded, data["test"])) >= 0.9


def test_unknown_method_or_bad_rank_is_a_config_error():
    with pytest.raises(ConfigError, match="peft"):
        compose_config(["peft=prefix"])
    with pytest.raises(ConfigError, match="peft.r"):
        LoRA(r=0)


def test_lora_over_a_transformers_4bit_hf_backbone_saves_a_loadable_dense_lm(data, tmp_path):
    """backbone=hf quant=4bit + peft=lora (QLoRA the transformers way)."""
    tiny_hf = pytest.importorskip("_tiny_hf")
    overrides = [
        o
        for o in tiny_overrides(data, tmp_path / "m", "peft=lora", "peft.r=4", "head.dropout=0")
        if not o.startswith("backbone")
    ]
    cfg = compose_config(
        overrides
        + [
            "backbone=hf",
            f"backbone.name_or_path={tiny_hf.save_text_lm(tmp_path / 'src')}",
            "backbone.dtype=float32",
            "quant=4bit",
        ]
    )
    from omnireward.data.datamodule import load_records
    from omnireward.train import build_module

    module = build_module(cfg)
    fit_steps(module, load_records(data["train"]), steps=2, lr=5e-3)
    before = score_lines(module.model, data["test"])
    out = module.model.save_pretrained(tmp_path / "saved", cfg)
    assert "quantization_config" not in json.loads((out / "hf" / "config.json").read_text())
    reloaded, _ = RewardModel.from_pretrained(out, quantization=None)
    assert type(reloaded.backbone.model.model.layers[0].self_attn.q_proj) is nn.Linear
    assert _max_diff(before, score_lines(reloaded, data["test"])) < 1e-4


def test_a_lora_checkpoint_holds_what_trains_and_resumes(data, tmp_path):
    """last.ckpt of a LoRA run leaves the frozen base out (adapters, head and optimiser state only)
    and a run resumed from it ends where the uninterrupted one does."""
    common = ("peft=lora", "peft.r=8", "head.dropout=0", "trainer.max_epochs=2")
    from lightning.pytorch.callbacks import Callback

    from omnireward.train import train

    class StopAfterFirstEpoch(Callback):
        def on_train_epoch_end(self, trainer, module):
            trainer.should_stop = trainer.current_epoch == 0

    full = train_tiny(data, tmp_path / "full", *common)
    part = train(compose_config(tiny_overrides(data, tmp_path / "part", *common)), callbacks=[StopAfterFirstEpoch()])
    ckpt = torch.load(part / "checkpoints" / "last.ckpt", weights_only=False)
    keys = set(ckpt["state_dict"])
    assert any("lora_A" in k for k in keys) and "model.head.score.weight" in keys
    assert not any("base_layer" in k or "embed_tokens" in k for k in keys), sorted(keys)[:5]
    assert any("base_layer" in k for k in ckpt["omnireward_frozen"])
    resumed = train_tiny(data, tmp_path / "part", *common, f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}")
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
