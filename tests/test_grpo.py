"""R1 judge training: GRPO pieces against hand computations, and learning through `omnireward train`."""

from __future__ import annotations

import csv
import json
import random

import pytest
import torch
from _judge_utils import mini_judge_dir, small_backbone, write_rows, yes_no_rows
from omegaconf import OmegaConf, open_dict

from omnireward.config import compose_config
from omnireward.data.records import record_from_dict
from omnireward.errors import ConfigError, DataFormatError
from omnireward.judge.decoding import token_logprobs
from omnireward.judge.grpo import group_advantages, grpo_loss, verdict_reward
from omnireward.judge.templates import load_template
from omnireward.modules.judge import R1Module
from omnireward.reward_model import JudgeModel
from omnireward.scoring.judge import judge_file, trained_judge
from omnireward.train import train


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models: one thread is several times faster than two on a busy 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- pieces ------------------------------------------------------------------------------------
def test_group_advantages_normalise_within_each_group():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(r, 4)
    assert torch.allclose(adv[:4], torch.tensor([1.0, -1.0, 1.0, -1.0]), atol=1e-3)
    assert torch.equal(adv[4:], torch.zeros(4))  # a group that agrees teaches nothing
    assert torch.allclose(group_advantages(r, 4, scale=False)[:4], torch.tensor([0.5, -0.5, 0.5, -0.5]))


def test_grpo_loss_clips_the_ratio_and_adds_k3_kl():
    old = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = torch.tensor([1.0, -1.0])
    # Ratio e^0.5 ≈ 1.65 is beyond 1 + ε for the positive advantage: clipped, so no gradient.
    logp = torch.full((2, 3), 0.5, requires_grad=True)
    loss, stats = grpo_loss(logp, old, adv, mask, clip_eps=0.2)
    loss.backward()
    assert torch.equal(logp.grad[0], torch.zeros(3))
    assert (logp.grad[1, :] > 0).all()  # negative advantage: pushes the log-prob down
    assert stats["clip_frac"] == pytest.approx(1.0)
    # Sequence aggregation by hand: row 0 = -1.2 (clipped), row 1 = +e^0.5.
    assert float(loss) == pytest.approx((-1.2 + torch.exp(torch.tensor(0.5)).item()) / 2, rel=1e-5)
    # KL (k3) is zero when the policy equals the reference and positive otherwise.
    lp = torch.zeros(2, 3)
    _, s0 = grpo_loss(lp, lp, adv, mask, clip_eps=0.2, beta=0.1, ref_logp=lp)
    _, s1 = grpo_loss(lp, lp, adv, mask, clip_eps=0.2, beta=0.1, ref_logp=lp - 0.3)
    assert s0["kl"] == 0.0 and s1["kl"] == pytest.approx(float(torch.exp(torch.tensor(-0.3)) + 0.3 - 1), rel=1e-5)
    with pytest.raises(ConfigError, match="loss_agg"):
        grpo_loss(lp, lp, adv, mask, clip_eps=0.2, agg="nope")


def test_verdict_reward_handles_ties():
    assert verdict_reward("response1", "response1") == 1.0
    assert verdict_reward("response2", "response1") == 0.0
    assert verdict_reward(None, "tie") == 0.0
    assert verdict_reward("tie", "tie") == 1.0
    assert verdict_reward("tie", "response1", tie_credit=0.25) == 0.25
    assert verdict_reward("response2", "tie", tie_credit=0.25) == 0.25


def test_rollouts_have_g_samples_per_prompt_with_rewards_and_reference():
    recs = [record_from_dict(r) for r in yes_no_rows(3, seed=0)]
    bb = small_backbone([r.prompt for r in recs])
    module = R1Module(JudgeModel(bb), load_template("omni"), num_generations=4, max_new_tokens=6, beta=0.1)
    ro = module.rollouts(module.collate(recs))
    assert ro["ids"].shape[0] == 12 and ro["ids"].shape[1] <= 6 and len(ro["texts"]) == 12
    assert ro["rewards"].shape == (12,) and ro["ref_logp"].shape == ro["ids"].shape
    # The reference starts equal to the policy: log-probs agree, and the loss's KL is 0.
    loss, _ = grpo_loss(
        torch.zeros_like(ro["ref_logp"]), torch.zeros_like(ro["ref_logp"]), ro["adv"], ro["mask"], clip_eps=0.2
    )
    assert torch.isfinite(loss)
    assert torch.allclose(token_logprobs(bb, ro["batch"], ro["ids"], ro["mask"]), ro["ref_logp"], atol=1e-5)
    with pytest.raises(ConfigError, match="at least 2"):
        R1Module(JudgeModel(bb), load_template("omni"), num_generations=1)


# ---- learning through `omnireward train model=r1` ----------------------------------------------
def _r1_config(tmp_path, train_file, val_file, *extra):
    cfg = compose_config(
        [
            "model=r1",
            "backbone=tiny",
            f"data.train={train_file}",
            f"data.val={val_file}",
            f"output_dir={tmp_path / 'run'}",
            "data.batch_size=8",
            "data.eval_batch_size=16",
            "trainer.log_every_n_steps=1",
            "logger.tensorboard=false",
            *extra,
        ],
        config_dirs=[mini_judge_dir(tmp_path)],
    )
    with open_dict(cfg):
        cfg.backbone = OmegaConf.create(
            {
                "_target_": "_judge_utils.small_backbone",
                "extra_texts": ["Is the sky blue? yes no Verdict: [[A]] [[B]] Response says."],
                "hidden": 64,
                "seed": 0,
            }
        )
    return cfg


def _epoch_metric(out, key):
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [float(r[key]) for r in rows if r.get(key)]


def _noisy_rows(n, seed, right=0.75):
    """Balanced sides: the "yes" answer wins wherever it stands (a constant verdict scores 0.5).
    The critiques' verdicts are right only `right` of the time, so SFT teaches the format and a
    noisy rule; GRPO's accuracy reward has to sharpen it."""
    rng = random.Random(seed)
    rows = yes_no_rows(n, seed)
    for r in rows:
        w = "A" if r["preference"] == "response1" else "B"
        r["critique"] = f"Verdict: [[{w if rng.random() < right else 'AB'.replace(w, '')}]]"
    return rows


@pytest.mark.slow
def test_grpo_ties_the_verdict_to_the_evidence_on_held_out_pairs(tmp_path):
    rows = _noisy_rows(32, 1)
    assert sum(r["preference"] == "response1" for r in rows) == 16
    train_file = write_rows(tmp_path / "train.jsonl", rows)
    held_out = yes_no_rows(16, 7)
    assert sum(r["preference"] == "response1" for r in held_out) == 8
    val_file = write_rows(tmp_path / "val.jsonl", held_out)
    cfg = _r1_config(
        tmp_path,
        train_file,
        val_file,
        "judge=mini",
        "model.sft_epochs=20",
        "trainer.max_epochs=30",
        "model.num_generations=8",
        "model.max_new_tokens=8",
        "model.val_max_new_tokens=8",
        "model.swap_prob=0",
        "model.lm_lr=3e-3",
        "model.lr=3e-3",
        "model.beta=0.01",
    )
    out = train(cfg)
    sft = _epoch_metric(out, "train/sft_loss")
    assert sft[-1] < 0.5 * sft[0]
    accuracy = _epoch_metric(out, "train/reward_accuracy_epoch")
    # Sampled verdicts (temperature 1): near a coin flip after SFT on noisy critiques, then GRPO's
    # accuracy reward sharpens them (one run here went 0.45 -> 0.79 over the 10 GRPO epochs).
    assert len(accuracy) == 10  # one value per GRPO epoch
    assert accuracy[0] < 0.65 and max(accuracy[-3:]) >= accuracy[0] + 0.2, accuracy
    # The saved judge (best epoch by val/acc) on held-out pairs, through the scoring path.
    s = judge_file(val_file, out, tmp_path / "judged.jsonl", max_new_tokens=8, batch_size=8, device="cpu")
    lines = [json.loads(x) for x in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert s["n"] == 16 and s["accuracy_without_ties"] >= 0.9, [x["critique"] for x in lines[:4]]
    assert trained_judge(out).name == "mini" and s["trained_judge"] == "mini"
    assert {x["verdict"] for x in lines} == {"response1", "response2"}  # not a constant verdict


def test_sft_epochs_without_critiques_warn_or_refuse(tmp_path):
    """No record has a critique: a run with GRPO epochs after SFT says SFT is skipped; an SFT-only
    run (sft_epochs >= max_epochs, as the *_sft recipes) stops with one line instead of running GRPO."""
    rows = yes_no_rows(8, 3)
    assert not any("critique" in r for r in rows)
    train_file = write_rows(tmp_path / "train.jsonl", rows)
    val_file = write_rows(tmp_path / "val.jsonl", yes_no_rows(4, 4))
    common = ["judge=mini", "model.num_generations=2", "model.max_new_tokens=2", "model.val_max_new_tokens=2"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataFormatError, match="SFT only") as e:
        train(_r1_config(tmp_path / "a", train_file, val_file, *common, "model.sft_epochs=2", "trainer.max_epochs=2"))
    assert e.value.field == "critique" and "\n" not in str(e.value)
    with pytest.warns(UserWarning, match="SFT epoch\\(s\\) are skipped"):
        train(
            _r1_config(
                tmp_path / "b",
                train_file,
                val_file,
                *common,
                "model.sft_epochs=1",
                "trainer.max_epochs=2",
                "++trainer.limit_train_batches=1",
                "++trainer.limit_val_batches=1",
            )
        )


def test_an_r1_run_resumed_during_grpo_keeps_its_reference(tmp_path):
    """The KL reference is frozen but set to the policy when GRPO starts, so last.ckpt keeps it (the
    frozen LM embeddings it leaves out); a run resumed in the middle of GRPO ends with the
    weights of the uninterrupted run."""
    from lightning.pytorch.callbacks import Callback

    class StopAfterSecondEpoch(Callback):
        def on_train_epoch_end(self, trainer, module):
            trainer.should_stop = trainer.current_epoch == 1

    train_file = write_rows(tmp_path / "train.jsonl", _noisy_rows(8, 1))
    val_file = write_rows(tmp_path / "val.jsonl", yes_no_rows(4, 7))
    common = [
        "judge=mini",
        "model.sft_epochs=1",
        "trainer.max_epochs=3",
        "model.num_generations=2",
        "model.max_new_tokens=3",
        "model.val_max_new_tokens=3",
        "model.beta=0.1",
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = train(_r1_config(tmp_path / "a", train_file, val_file, *common))
    part = train(_r1_config(tmp_path / "b", train_file, val_file, *common), callbacks=[StopAfterSecondEpoch()])
    ckpt = torch.load(part / "checkpoints" / "last.ckpt", weights_only=False)
    assert bool(ckpt["state_dict"]["ref_synced"]) and any(k.startswith("ref.") for k in ckpt["state_dict"])
    assert not any(k.startswith("ref.") for k in ckpt["omnireward_frozen"])
    resumed = train(
        _r1_config(tmp_path / "b", train_file, val_file, *common, f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}")
    )
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
