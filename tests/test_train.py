"""Training runs end to end: what a run leaves on disk, learning, best epoch, resume, seeds."""

import json
import pickle

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from omnireward.config import compose_config
from omnireward.reward_model import RewardModel
from omnireward.scoring.bt import score_file
from omnireward.train import train


class StopAfterFirstEpoch(Callback):
    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == 0:
            trainer.should_stop = True


def _cfg(tmp_path, train_file, val_file, *extra):
    return compose_config(
        [
            "backbone=tiny",
            f"data.train={train_file}",
            f"data.val={val_file}",
            f"output_dir={tmp_path / 'run'}",
            "trainer.max_epochs=2",
            "model.lr=3e-3",
            "model.lm_lr=1e-3",
            "data.batch_size=8",
            *extra,
        ]
    )


def test_run_learns_and_leaves_a_complete_model_folder(tmp_path, text_pairs):
    train_file, val_file = text_pairs
    init = RewardModel.with_bt_head(
        __import__("omnireward.backbones.build", fromlist=["x"]).build_modular(
            lm="tiny", encoders=[], pretrained_encoders=False, feature_cache=False
        ),
        dropout=0.1,
    )
    out = train(_cfg(tmp_path, train_file, val_file))
    for name in (
        "omnireward.yaml",
        "modules.safetensors",
        "reward_stats.json",
        "metrics.csv",
        "train_summary.json",
        "lm/model.safetensors",
        "lm/tokenizer.json",
        "checkpoints/last.ckpt",
    ):
        assert (out / name).exists(), name
    assert not (out / "config.yaml").exists()  # one config file: omnireward.yaml, the resolved one
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["best_epoch"] in (0, 1) and summary["best_val_acc"] >= 0.9
    metrics = (out / "metrics.csv").read_text()
    assert "train/loss" in metrics and "val/acc" in metrics
    stats = json.loads((out / "reward_stats.json").read_text())
    assert stats["n"] == 96 and stats["std"] > 0
    # Parameters moved away from their (seeded) initial values.
    head = load_file(str(out / "modules.safetensors"))["head.score.weight"]
    assert not torch.allclose(head, init.head.score.weight)
    # Scores of the reloaded model: held-out accuracy well above chance.
    s = score_file(val_file, out, tmp_path / "scores.jsonl")
    assert s["accuracy_without_ties"] >= 0.9
    lines = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 16 and {"id", "task", "reward1", "reward2", "margin", "preference"} <= set(lines[0])
    assert lines[0]["margin"] == pytest.approx(lines[0]["reward1"] - lines[0]["reward2"])


def test_reloaded_model_gives_the_same_scores(tmp_path, text_pairs):
    train_file, val_file = text_pairs
    cfg = _cfg(tmp_path, train_file, val_file, "trainer.max_epochs=1")
    out = train(cfg)
    a = score_file(val_file, out, tmp_path / "a.jsonl")
    b = score_file(val_file, out, tmp_path / "b.jsonl", batch_size=1)
    la = [json.loads(x)["margin"] for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["margin"] for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert max(abs(x - y) for x, y in zip(la, lb)) < 1e-4
    assert a["accuracy_without_ties"] == b["accuracy_without_ties"]


def test_same_seed_same_model_and_resume_matches_uninterrupted(tmp_path, text_pairs):
    train_file, val_file = text_pairs
    common = [
        "backbone=tiny",
        f"data.train={train_file}",
        f"data.val={val_file}",
        "model.lr=3e-3",
        "model.lm_lr=1e-3",
        "data.batch_size=8",
    ]
    full = train(compose_config(common + [f"output_dir={tmp_path / 'full'}", "trainer.max_epochs=2"]))
    again = train(compose_config(common + [f"output_dir={tmp_path / 'again'}", "trainer.max_epochs=2"]))
    w_full = load_file(str(full / "checkpoints" / "best.safetensors"))
    w_again = load_file(str(again / "checkpoints" / "best.safetensors"))
    assert all(torch.equal(w_full[k], w_again[k]) for k in w_full)
    # Interrupt a 2-epoch run after its first epoch, then resume it from its checkpoint.
    part = train(
        compose_config(common + [f"output_dir={tmp_path / 'part'}", "trainer.max_epochs=2"]),
        callbacks=[StopAfterFirstEpoch()],
    )
    assert json.loads((part / "train_summary.json").read_text())["epochs"] == 1
    resumed = train(
        compose_config(
            common
            + [
                f"output_dir={tmp_path / 'part'}",
                "trainer.max_epochs=2",
                f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}",
            ]
        )
    )
    full_last = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    res_last = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for k in full_last:
        assert torch.allclose(full_last[k], res_last[k], atol=1e-6), k


@pytest.mark.parametrize("loss", ["bt_margin", "rao_kupper", "davidson"])
def test_other_losses_train_with_ties(tmp_path, text_pairs, loss):
    train_file, val_file = text_pairs
    rows = [json.loads(x) for x in train_file.read_text().splitlines()]
    for r in rows[:6]:
        r["preference"] = "tie"
        r["response2"] = r["response1"]
    for r in rows:
        r["margin"] = 1.0
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    val_rows = [{**json.loads(x), "margin": 1.0} for x in val_file.read_text().splitlines()]
    val_file.write_text("".join(json.dumps(r) + "\n" for r in val_rows))
    out = train(
        _cfg(tmp_path, train_file, val_file, f"loss={loss}", "trainer.max_epochs=1", "model.center_weight=0.01")
    )
    assert json.loads((out / "train_summary.json").read_text())["best_val_acc"] >= 0.8


def test_bt_margin_refuses_a_record_without_margin_naming_file_and_line(tmp_path, text_pairs):
    from omnireward.errors import DataFormatError

    train_file, val_file = text_pairs
    rows = [{**json.loads(x), "margin": 0.5} for x in train_file.read_text().splitlines()]
    del rows[6]["margin"]
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFormatError, match=rf"{train_file.name}:7: margin: missing margin"):
        train(_cfg(tmp_path, train_file, val_file, "loss=bt_margin", "trainer.max_epochs=1"))


def test_reload_without_reload_overrides_fails_loudly(tmp_path, text_pairs, monkeypatch):
    """A custom backbone builder without `reload_overrides` beside it would rebuild its original LM
    instead of the trained lm/: loading refuses instead."""
    from omegaconf import OmegaConf

    from omnireward import model_folder
    from omnireward.errors import ModelError

    train_file, val_file = text_pairs
    out = train(_cfg(tmp_path, train_file, val_file, "trainer.max_epochs=1"))
    cfg = OmegaConf.load(out / "omnireward.yaml")
    cfg.backbone._target_ = "_judge_utils.yes_no_rows"  # importable, but its module has no reload_overrides
    OmegaConf.save(cfg, out / "omnireward.yaml")
    monkeypatch.delattr("_judge_utils.reload_overrides", raising=False)
    with pytest.raises(ModelError, match="no `reload_overrides"):
        model_folder.load(out)


def test_head_dropout_has_one_source_the_head_config(tmp_path, text_pairs):
    from omnireward.config import build, compose_config
    from omnireward.reward_model import RewardModel

    cfg = compose_config(["backbone=tiny", "head.dropout=0.3"])
    assert build(cfg.head)(8).dropout.p == 0.3
    train_file, val_file = text_pairs
    out = train(_cfg(tmp_path, train_file, val_file, "trainer.max_epochs=1", "head.dropout=0.25"))
    model, saved = RewardModel.from_pretrained(out)
    assert saved.head.dropout == 0.25 and model.head.dropout.p == 0.25
    assert "dropout" not in saved.model  # the module takes no dropout of its own


def test_keep_best_prefers_the_later_epoch_on_a_tie(tmp_path):
    """A flat val/acc keeps the last of the equal epochs, not the barely trained first one."""
    from types import SimpleNamespace

    import torch

    from omnireward.train import KeepBest

    keep = KeepBest(tmp_path / "best.safetensors")
    weights = {}

    def epoch(n, acc):
        state = {"model.w": torch.full((2,), float(n))}
        trainer = SimpleNamespace(
            sanity_checking=False,
            callback_metrics={"val/acc": torch.tensor(acc)},
            current_epoch=n,
            is_global_zero=True,
            strategy=SimpleNamespace(lightning_module_state_dict=lambda: state),
        )
        keep.on_validation_end(trainer, None)
        from safetensors.torch import load_file

        weights.update(load_file(str(tmp_path / "best.safetensors")))

    epoch(0, 0.5)
    epoch(1, 0.5)
    assert keep.best_epoch == 1 and weights["w"].tolist() == [1.0, 1.0]
    epoch(2, 0.75)
    epoch(3, 0.5)
    assert keep.best_epoch == 2 and keep.best == 0.75 and weights["w"].tolist() == [2.0, 2.0]


@pytest.mark.parametrize("family", ["modular", "hf_text", "hf_qwen2_5_vl"])
def test_train_layers_trains_only_the_top_layers(tmp_path, text_pairs, family):
    """backbone.train_layers=1: the top decoder layer (and the final norm, the head) move; the
    embeddings, the layer below and a multimodal checkpoint's vision tower keep their weights, and
    the optimiser holds state for the trained parameters only."""
    import _tiny_hf

    from omnireward.train import build_module

    train_file, val_file = text_pairs
    extra = ["backbone.train_layers=1", "trainer.max_epochs=1"]
    if family == "hf_text":
        extra += ["backbone=hf", f"backbone.name_or_path={_tiny_hf.save_text_lm(tmp_path / 'src')}"]
    elif family == "hf_qwen2_5_vl":
        extra += [
            "backbone=hf",
            f"backbone.name_or_path={_tiny_hf.save_qwen2_5_vl(tmp_path / 'src')}",
            "backbone.dtype=float32",
        ]
    cfg = _cfg(tmp_path, train_file, val_file, *extra)
    init = {k: v.detach().clone() for k, v in build_module(cfg).state_dict().items()}
    trainable = [k for k, p in build_module(cfg).named_parameters() if p.requires_grad]
    out = train(cfg)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    state = ckpt["state_dict"]
    moved = {k for k in init if k in state and not torch.equal(init[k], state[k])}
    assert moved and moved <= set(trainable)
    assert any(".layers.1." in k for k in moved)  # the top layer trained
    assert not any(".layers.0." in k for k in trainable)  # the one below did not
    assert not any("embed_tokens" in k for k in trainable)
    assert "model.head.score.weight" in moved
    if family == "hf_qwen2_5_vl":
        assert not any(".visual." in k for k in trainable)
    n_opt = sum(len(g["params"]) for g in ckpt["optimizer_states"][0]["param_groups"])
    assert n_opt == len(trainable)
    # The checkpoint leaves the frozen weights out; the config rebuilds them.
    assert not any(".layers.0." in k or "embed_tokens" in k for k in state)
    assert any("embed_tokens" in k for k in ckpt["omnireward_frozen"])


def test_train_layers_below_zero_fails_in_one_line(tmp_path, text_pairs):
    from test_cli import run

    train_file, val_file = text_pairs
    r = run(
        "train",
        "backbone=tiny",
        "backbone.train_layers=-1",
        f"data.train={train_file}",
        f"output_dir={tmp_path / 'run'}",
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "backbone.train_layers" in lines[0] and "got -1" in lines[0], r.stderr


def test_training_writes_checkpoints_straight_to_the_file(tmp_path, text_pairs):
    """The run's checkpoint writer is the one that streams to `<path>.tmp` and renames; a save that
    fails half-way leaves the previous checkpoint whole and no temporary file."""
    from omnireward.strategies import file_checkpoint_io

    seen = {}

    class Look(Callback):
        def on_train_start(self, trainer, module):
            seen["io"] = type(trainer.strategy.checkpoint_io).__name__

    train_file, val_file = text_pairs
    train(_cfg(tmp_path, train_file, val_file, "trainer.max_epochs=1"), callbacks=[Look()])
    assert seen["io"] == "FileCheckpointIO"

    io, path = file_checkpoint_io(), tmp_path / "ck" / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(3)}, path)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        io.save_checkpoint({"w": torch.zeros(3), "bad": lambda: None}, path)  # a lambda does not pickle
    assert torch.equal(torch.load(path)["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_checkpointing_frozen_lower_layers_builds_no_graph_through_them():
    """transformers' checkpointing hooks the embeddings to require grad; without that hook removed,
    a text batch would build a graph (and a backward) through every frozen layer below."""
    from omnireward.backbones.build import build_modular

    bb = build_modular(
        "tiny",
        lm_layers=2,
        encoders=[],
        pretrained_encoders=False,
        feature_cache=False,
        gradient_checkpointing=True,
        train_layers=1,
    )
    ids = torch.tensor([[1, 2, 3]])
    assert not bb.lm.get_input_embeddings()(ids).requires_grad
    hidden = bb.lm.get_decoder().layers[0](
        bb.lm.get_input_embeddings()(ids),
        position_embeddings=bb.lm.get_decoder().rotary_emb(bb.lm.get_input_embeddings()(ids), torch.arange(3)[None]),
    )
    hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    assert not hidden.requires_grad


def test_peft_and_train_layers_together_are_refused(tmp_path, text_pairs):
    from omnireward.errors import ConfigError
    from omnireward.train import build_module

    train_file, val_file = text_pairs
    with pytest.raises(ConfigError) as e:
        build_module(_cfg(tmp_path, train_file, val_file, "peft=lora", "backbone.train_layers=1"))
    assert e.value.field == "backbone.train_layers" and "\n" not in str(e.value)


def test_a_checkpoint_that_does_not_fit_the_model_is_refused_in_one_line():
    from omnireward.errors import ResumeError
    from omnireward.modules.optim import unpack_checkpoint

    module = torch.nn.Linear(2, 2)
    with pytest.raises(ResumeError) as e:
        unpack_checkpoint({"state_dict": {"bias": torch.zeros(2)}, "omnireward_frozen": ["encoder.weight"]}, module)
    assert "encoder.weight" in str(e.value) and "\n" not in str(e.value)
