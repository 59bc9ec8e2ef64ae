"""DPO on judge trajectories: the chosen trajectory's log-probability margin over the rejected one rises."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from _judge_utils import small_backbone, write_rows, yes_no_rows
from omegaconf import OmegaConf, open_dict

from omnireward.config import compose_config
from omnireward.data.records import record_from_dict
from omnireward.errors import ConfigError, DataFormatError
from omnireward.judge.dpo import dpo_loss
from omnireward.judge.templates import load_template
from omnireward.modules.judge_dpo import JudgeDPOModule
from omnireward.reward_model import JudgeModel
from omnireward.train import train


def _trajectories(n, seed):
    """Preferred: a critique that reads the pair and names the winner; rejected: a lazy non-answer."""
    rows = yes_no_rows(n, seed)
    for r in rows:
        w = "A" if r["preference"] == "response1" else "B"
        r["chosen_critique"] = f"Response {w} says yes, which answers the question. [[{w}]]"
        r["rejected_critique"] = "Both are fine, I cannot tell. [[C]]"
    return rows


def test_dpo_loss_matches_its_formula():
    c, r, rc, rr = torch.tensor([-3.0]), torch.tensor([-5.0]), torch.tensor([-4.0]), torch.tensor([-4.0])
    loss, stats = dpo_loss(c, r, rc, rr, beta=0.5)
    assert float(loss) == pytest.approx(-float(torch.nn.functional.logsigmoid(torch.tensor(0.5 * 2.0))), rel=1e-6)
    assert stats["reward_accuracy"] == 1.0 and stats["logp_margin"] == pytest.approx(2.0)


def test_records_must_carry_both_trajectories():
    with pytest.raises(DataFormatError, match="come together"):
        record_from_dict({"prompt": "p", "response1": "a", "response2": "b", "chosen_critique": "x"})


def test_dpo_raises_the_chosen_trajectorys_margin(tmp_path):
    rows = _trajectories(16, 0)
    train_f = write_rows(tmp_path / "train.jsonl", rows)
    val_f = write_rows(tmp_path / "val.jsonl", _trajectories(8, 1))
    words = [r["chosen_critique"] for r in rows] + [rows[0]["rejected_critique"], "Is the sky blue? yes no"]
    cfg = compose_config(
        [
            "model=judge_dpo",
            "judge=omni",
            f"data.train={train_f}",
            f"data.val={val_f}",
            f"output_dir={tmp_path / 'run'}",
            "trainer.max_epochs=4",
            "data.batch_size=8",
            "model.lm_lr=5e-3",
            "model.lr=5e-3",
            "model.beta=0.5",
            "model.val_max_new_tokens=0",
            "trainer.log_every_n_steps=1",
        ]
    )
    with open_dict(cfg):
        cfg.backbone = OmegaConf.create(
            {"_target_": "_judge_utils.small_backbone", "extra_texts": words, "hidden": 64, "seed": 0}
        )
    held_out = [record_from_dict(r) for r in _trajectories(8, 1)]
    before = JudgeDPOModule(JudgeModel(small_backbone(words, hidden=64, seed=0)), load_template("omni"))
    with torch.no_grad():
        m0 = (
            before.sequence_logprobs(before.backbone, held_out, "chosen_critique")
            - before.sequence_logprobs(before.backbone, held_out, "rejected_critique")
        ).mean()
    out = train(cfg)
    with open(out / "metrics.csv") as f:
        margins = [float(r["train/logp_margin_epoch"]) for r in csv.DictReader(f) if r.get("train/logp_margin_epoch")]
    assert len(margins) == 4 and margins[-1] > margins[0] + 1.0, margins
    from omnireward import model_folder

    model, cfg_saved = model_folder.load(out)
    after = JudgeDPOModule(model, load_template("omni"))
    with torch.no_grad():
        m1 = (
            after.sequence_logprobs(after.backbone, held_out, "chosen_critique")
            - after.sequence_logprobs(after.backbone, held_out, "rejected_critique")
        ).mean()
    assert float(m1) > float(m0) + 1.0, (float(m0), float(m1))
    assert cfg_saved.objective == "judge"
    assert json.loads((out / "train_summary.json").read_text())["global_steps"] == 8


def test_dpo_without_trajectories_is_a_config_error(tmp_path):
    train_f = write_rows(tmp_path / "train.jsonl", yes_no_rows(8, 0))
    cfg = compose_config(
        [
            "model=judge_dpo",
            "backbone=tiny",
            f"data.train={train_f}",
            "trainer.max_epochs=1",
            f"output_dir={tmp_path / 'run'}",
        ]
    )
    with pytest.raises(ConfigError, match="chosen_critique"):
        train(cfg)
