"""Joint reward modelling: α=0 is BT, the LM loss on critiques falls, the saved scorer never generates."""

from __future__ import annotations

import csv
import itertools
import json

import pytest
import torch
from _judge_utils import write_rows, yes_no_rows
from omegaconf import OmegaConf, open_dict

from omnireward.backbones.build import build_modular
from omnireward.config import compose_config
from omnireward.data.records import record_from_dict
from omnireward.errors import ConfigError
from omnireward.heads.losses import bt_loss
from omnireward.judge.decoding import lm_loss
from omnireward.judge.templates import judge_conversation, load_template, sft_target
from omnireward.modules.bt import BTModule
from omnireward.modules.joint import JointModule
from omnireward.reward_model import RewardModel
from omnireward.scoring.bt import score_file
from omnireward.train import train


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _pairs(n=6):
    rows = yes_no_rows(n, seed=3)
    for r in rows:
        winner = "A" if r["preference"] == "response1" else "B"
        r["critique"] = f"Response {winner} says yes, which answers the question. [[{winner}]]"
    return [record_from_dict(r) for r in rows]


def _model(seed=0):
    torch.manual_seed(seed)
    return RewardModel.with_bt_head(
        build_modular(lm="tiny", encoders=[], pretrained_encoders=False, feature_cache=False, seed=seed), dropout=0.1
    )


def _step(module, batch, seed):
    module.train()
    module.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks in both modules
    loss = module.training_step(batch, 0)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in module.model.named_parameters() if p.grad is not None}


def test_alpha_zero_is_exactly_bt():
    pairs = _pairs()
    bt, joint = (
        BTModule(_model(), loss=bt_loss),
        JointModule(_model(), loss=bt_loss, template=load_template("omni"), alpha=0.0),
    )
    lb, gb = _step(bt, bt.collate(pairs), seed=7)
    lj, gj = _step(joint, joint.collate(pairs), seed=7)
    assert "lm" not in joint.collate(pairs)  # α=0 does not even build the LM batch
    assert torch.equal(lb, lj)
    assert gb.keys() == gj.keys() and len(gb) > 3
    for k in gb:
        assert torch.equal(gb[k], gj[k]), k


def test_joint_loss_mixes_bt_and_lm_with_alpha():
    pairs = _pairs()
    joint = JointModule(_model(), loss=bt_loss, template=load_template("omni"), alpha=0.7)
    batch = joint.collate(pairs)
    assert batch["lm"].tensors["labels"].ne(-100).any()
    joint.eval()  # no dropout: the parts can be recomputed exactly
    with torch.no_grad():
        total = joint.training_step(batch, 0)
        r1, r2 = joint.rewards(batch)
        bt = joint._loss(r1, r2, batch)
        t = load_template("omni")
        convs = [judge_conversation(t, p, answer=sft_target(t, p.critique, p.preference)) for p in pairs]
        lm = lm_loss(joint.model.backbone, joint.model.backbone.processor(convs, lm_target=True))
    assert float(total) == pytest.approx(0.3 * float(bt) + 0.7 * float(lm), rel=1e-5)
    assert float(lm) > 5  # a random LM over a 49k vocabulary: the critique is far from learnt
    with pytest.raises(ConfigError, match="alpha"):
        JointModule(_model(), loss=bt_loss, template=load_template("omni"), alpha=1.5)


def _epoch_metric(out, key):
    with open(out / "metrics.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def test_joint_training_learns_critiques_and_scores_without_generating(tmp_path, monkeypatch):
    rows = []
    for r in yes_no_rows(32, seed=1):
        w = "A" if r["preference"] == "response1" else "B"
        rows.append(dict(r, critique=f"Response {w} says yes, which answers the question. [[{w}]]"))
    train_file = write_rows(tmp_path / "train.jsonl", rows)
    val_file = write_rows(tmp_path / "val.jsonl", yes_no_rows(8, seed=2))
    cfg = compose_config(
        [
            "model=joint",
            "backbone=tiny",
            f"data.train={train_file}",
            f"data.val={val_file}",
            f"output_dir={tmp_path / 'run'}",
            "trainer.max_epochs=6",
            "data.batch_size=8",
            "model.lr=1e-2",
            "model.lm_lr=1e-2",
            "trainer.log_every_n_steps=1",
            "logger.tensorboard=false",
        ]
    )
    with open_dict(cfg):
        words = "Is the sky blue? yes no Response says which answers the question. [[A]] [[B]]"
        cfg.backbone = OmegaConf.create(
            {"_target_": "_judge_utils.small_backbone", "hidden": 64, "extra_texts": [words]}
        )
    out = train(cfg)
    lm = _epoch_metric(out, "train/lm_loss_epoch")
    assert len(lm) == 6 and all(b < a for a, b in itertools.pairwise(lm)) and lm[-1] < 0.5 * lm[0], lm
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["best_val_acc"] == 1.0
    # A normal BT folder: scoring runs the head only; any generation would raise.

    def no_generation(*a, **k):
        raise AssertionError("the joint model's scorer generated text")

    from transformers import GenerationMixin

    from omnireward.backbones.modular import ModularBackbone

    monkeypatch.setattr(GenerationMixin, "generate", no_generation)
    monkeypatch.setattr(ModularBackbone, "sample", no_generation)
    s = score_file(val_file, out, tmp_path / "scores.jsonl", device="cpu")
    assert s["accuracy_without_ties"] == 1.0
    lines = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert {"reward1", "reward2", "margin"} <= set(lines[0]) and "critique" not in lines[0]
