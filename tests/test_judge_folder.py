"""A judge folder (objective: judge) is never scored as a reward model: every command that loads a
folder judges with its template or stops with one line saying what the folder is."""

from __future__ import annotations

import json

import pytest
from _judge_utils import write_rows, yes_no_rows

from omnireward.config import compose_config
from omnireward.errors import ModelError
from omnireward.model_folder import folder_objective
from omnireward.train import train


@pytest.fixture(scope="module")
def judge_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("judge_run")
    rows = yes_no_rows(8, 0)
    for r in rows:
        w = "A" if r["preference"] == "response1" else "B"
        r["critique"] = f"Verdict: [[{w}]]"
    train_f = write_rows(d / "train.jsonl", rows)
    val_f = write_rows(d / "val.jsonl", yes_no_rows(4, 1))
    out = train(
        compose_config(
            [
                "model=r1",
                "backbone=tiny",
                f"data.train={train_f}",
                f"data.val={val_f}",
                "trainer.max_epochs=1",
                "model.sft_epochs=1",
                "model.val_max_new_tokens=0",
                "data.batch_size=4",
                f"output_dir={d / 'run'}",
            ]
        )
    )
    return out, val_f


def _cli(*args):
    """Run the console entry point; returns (exit code, stderr text)."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "omnireward.cli.app", *map(str, args)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    return r.returncode, r.stdout, r.stderr


def test_the_folder_says_it_is_a_judge_and_has_no_reward_head(judge_run):
    out, _ = judge_run
    assert folder_objective(out) == "judge"
    assert not (out / "reward_stats.json").exists()
    from safetensors.torch import load_file

    assert not any(k.startswith("head.") for k in load_file(str(out / "modules.safetensors")))


def test_score_judges_with_the_folders_template(judge_run, tmp_path):
    out, val_f = judge_run
    code, stdout, stderr = _cli("score", val_f, "--model", out, "--out", tmp_path / "s.jsonl", "--max-new-tokens", 2)
    assert code == 0, stderr
    lines = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all("verdict" in x and "critique" in x and "reward1" not in x for x in lines)
    assert json.loads((tmp_path / "s.summary.json").read_text())["trained_judge"] == "omni"


def test_eval_with_a_judge_folder_judges(judge_run, tmp_path):
    out, val_f = judge_run
    code, stdout, stderr = _cli("eval", val_f, "--model", out, "--out", tmp_path / "e.json")
    assert code == 0, stderr
    assert json.loads((tmp_path / "e.json").read_text())["judge"] == "omni"


@pytest.mark.parametrize(
    "command",
    [["export", "--out", "EXPORT"], ["serve", "--port", "0", "--quant", "4bit"], ["score", "VAL", "--quant", "4bit"]],
)
def test_reward_only_commands_stop_in_one_line(judge_run, tmp_path, command):
    out, val_f = judge_run
    args = [str(tmp_path / "x") if a == "EXPORT" else str(val_f) if a == "VAL" else a for a in command]
    code, stdout, stderr = _cli(*args[:1], *args[1:], "--model", out)
    assert code == 2 and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert ("generative judge" in stderr) or ("--quant" in stderr)


def test_loading_a_judge_folder_as_a_reward_model_is_refused(judge_run):
    from omnireward.reward_model import RewardModel
    from omnireward.scoring.load import load_for_scoring

    out, _ = judge_run
    with pytest.raises(ModelError, match="generative judge"):
        RewardModel.from_pretrained(out)
    with pytest.raises(ModelError, match="generative judge"):
        load_for_scoring(out)
