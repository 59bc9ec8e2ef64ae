"""benchmarks/vs_trl.py: its sets and the settings both sides get (fast), and `--smoke`, every row end
to end at tiny sizes with the results line kept out of benchmarks/results (slow)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import tables  # noqa: E402
import vs_trl  # noqa: E402

REPO_RESULTS = ROOT / "benchmarks" / "results" / "vs_trl.jsonl"


def _topics(rows):
    return {re.match(r"Question \d+ about (\w+):", r["prompt"]).group(1) for r in rows}


def test_prompt_heavy_answers_vary_and_held_out_pairs_ask_about_unseen_topics():
    train = vs_trl.prompt_heavy(64, 0, held_out=False)
    test = vs_trl.prompt_heavy(64, 1, held_out=True)
    answers = {r[k] for r in train for k in ("response1", "response2")}
    assert len(answers) > 20  # not two fixed strings
    assert not _topics(train) & _topics(test) and _topics(test) <= vs_trl.PH_HELD_OUT
    assert {r["preference"] for r in train} == {"response1", "response2"}
    for r in train:  # the helpful answer is the preferred one, on either side
        good = r[r["preference"]]
        assert any(good.startswith(x) for x in vs_trl.GOOD_OPEN)


@pytest.mark.parametrize("top", [None, 3])
def test_rows_a_and_b_give_both_sides_the_same_settings(top):
    from omnireward.config import compose_config

    a = argparse.Namespace(recompute="on", lr=3e-4, batch=4, epochs=2)
    omni, trl = vs_trl.same_work(a, top)
    cfg = compose_config(omni)  # every override names a real key
    assert cfg.model.lr == cfg.model.lm_lr == trl["learning_rate"] == 3e-4
    assert cfg.backbone.gradient_checkpointing is True and trl["gradient_checkpointing"] is True
    assert trl["gradient_checkpointing_kwargs"] == {"use_reentrant": False}  # omnireward's recomputation
    assert cfg.data.batch_size == trl["per_device_train_batch_size"] == 4
    assert cfg.trainer.max_epochs == trl["num_train_epochs"] == 2
    assert trl["bf16"] is False and trl["fp16"] is False and cfg.trainer.precision == "32-true"
    assert cfg.model.weight_decay == trl["weight_decay"] == 0 and cfg.trainer.gradient_clip_val == trl["max_grad_norm"]
    assert cfg.model.warmup_ratio == trl["warmup_steps"] == 0.1 and trl["lr_scheduler_kwargs"]["min_lr_rate"] == 0.1
    assert cfg.head.dropout == 0 and trl["disable_dropout"] is True
    assert cfg.backbone.max_length == trl["max_length"]
    assert cfg.backbone.train_layers == top and cfg.backbone.freeze_embeddings is (top is not None)


def test_row_c_uses_trl_defaults_that_match_the_installed_trl():
    pytest.importorskip("trl")
    vs_trl.check_trl_defaults()
    omni, trl = vs_trl.defaults(argparse.Namespace(default_epochs=None))
    assert omni == [] and trl["bf16"] is False and trl["num_train_epochs"] == vs_trl.TRL_DEFAULTS["num_train_epochs"]


def _figures(smoke_line: dict | None = None) -> dict:
    train = {"pairs_per_s": 2.0, "test_accuracy": 0.9, "peak_rss_mib": 1000, "trainable_params": 10_000_000}
    row = {"omnireward": train, "trl": {**train, "pairs_per_s": 1.0}, "ratio": 2.0}
    mean = {"pairs_per_s": 2.0, "test_accuracy": 0.9, "test_accuracy_range": [0.88, 0.92], "peak_rss_mib": 1000}
    defaults = {
        "seeds": [0, 1, 2],
        "omnireward": [train] * 3,
        "trl": [train] * 3,
        "ratio": 2.0,
        "mean": {"omnireward": mean, "trl": {**mean, "pairs_per_s": 1.0}},
    }
    score = {"pairs_per_s": 4.0, "ratio": 2.0}
    pairs = {
        "hf_two_pass": {"pairs_per_s": 2.0},
        "omnireward": score,
        "omnireward_no_prefix_sharing": score,
        "omnireward_int8": {**score, "agreement_with_hf_fp32": {"sign_agreement": 0.97}},
        "omnireward_bf16": {"skipped": "bf16 scoring needs a CPU with bf16 instructions; use int8"},
    }
    groups = {"group_size": 8, "omnireward": {"groups_per_s": 3.0}, "hf": {"groups_per_s": 1.0}, "ratio": 3.0}
    settings = {
        "pairs": 128,
        "batch": 8,
        "precision": "fp32",
        "lm": "embedded SmolLM2-135M-Instruct",
        "lm_layers": "all",
        "trl": "1.16.0",
        "epochs": 1,
        "lr": 1e-4,
        "recompute": "off",
        "seeds": "0,1,2",
        "heldout_pairs": 200,
        "margin_agreement_tolerance": 1e-3,
        "top_layers": 10,
    }
    return {
        "settings": settings,
        "sets": {
            "text": {
                "train": {"all_layers": row, "top_layers": row, "defaults": defaults},
                "score": {"pairs": pairs, "groups": groups},
            }
        },
    }


def test_a_results_line_with_the_rows_renders_as_the_readme_table():
    out = tables.vs_trl_rows(_figures())
    assert "| text | (a) every layer + embeddings | 2.00 / 1.00 (2.00×) | 10.0 M / 10.0 M |" in out
    assert "| text | (b) top 10 layers |" in out and "(c) defaults, 3 seeds" in out
    assert "0.900 (0.880–0.920)" in out
    assert "4.00 (2.00×), 0.970" in out and "not run: bf16 scoring needs a CPU with bf16 instructions" in out
    assert "N=8: 3.00 / 1.00 (3.00×)" in out


@pytest.mark.slow
def test_smoke_runs_every_row_and_keeps_its_line_out_of_the_repository(tmp_path):
    pytest.importorskip("trl")
    before = REPO_RESULTS.read_bytes() if REPO_RESULTS.exists() else None
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "vs_trl.py"),
            "--smoke",
            "--sets",
            "text",
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=3000,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (REPO_RESULTS.read_bytes() if REPO_RESULTS.exists() else None) == before
    line = json.loads((tmp_path / "work" / "results" / "vs_trl.jsonl").read_text().splitlines()[-1])
    f = line["figures"]
    assert f["settings"]["smoke"] is True and f["settings"]["trl"]
    t = f["sets"]["text"]["train"]
    for row in ("all_layers", "top_layers"):
        assert t[row]["same_trainable_params"], t[row]
        assert t[row]["trl"]["settings"]["bf16"] is False
        assert (
            t[row]["trl"]["settings"]["gradient_checkpointing"]
            == t[row]["omnireward"]["settings"]["gradient_checkpointing"]
        )
    assert t["top_layers"]["omnireward"]["trainable_params"] < t["all_layers"]["omnireward"]["trainable_params"]
    p = f["sets"]["text"]["score"]["pairs"]
    assert p["omnireward"]["max_margin_diff_vs_hf"] <= 1e-3
    assert 0 <= p["omnireward_int8"]["agreement_with_hf_fp32"]["sign_agreement"] <= 1
    assert "skipped" in p["omnireward_bf16"] or "agreement_with_hf_fp32" in p["omnireward_bf16"]
    assert f["sets"]["text"]["score"]["groups"]["max_reward_diff_vs_hf"] <= 1e-3
    assert "(a) every layer + embeddings" in tables.vs_trl_rows(f)
