"""The command line as a user meets it: help, one-line errors with exit codes, train → score → eval."""

import json
import os
import subprocess
import sys

import pytest
from conftest import helpful_vs_rude, write_jsonl

EXE = [sys.executable, "-m", "omnireward.cli.app"]


def run(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_help_lists_every_command_and_the_config_groups():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("data", "train", "score", "eval"):
        assert cmd in r.stdout
    r = run("train", "--help")
    assert "modality=" in r.stdout and "backbone=" in r.stdout and "trainer=" in r.stdout


def test_train_cfg_prints_the_composed_config_without_running():
    r = run("train", "--cfg", "modality=audio", "trainer.max_epochs=7")
    assert r.returncode == 0
    assert "max_epochs: 7" in r.stdout and "- audio" in r.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "nope=1"], "bad config override"),
        (["score", "missing.jsonl", "--model", "."], "missing.jsonl"),
        (["data", "validate", "missing.jsonl"], "missing.jsonl"),
        (["eval", "missing.jsonl"], "missing.jsonl"),
    ],
)
def test_user_errors_are_one_line_and_exit_non_zero(tmp_path, args, needle):
    r = run(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert needle in r.stderr + r.stdout
    assert "Traceback" not in r.stderr
    assert len([x for x in r.stderr.strip().splitlines() if x.strip()]) == 1


def test_score_without_model_and_no_runs_says_how_to_get_one(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", helpful_vs_rude(2))
    r = run("score", "p.jsonl", cwd=tmp_path)
    assert r.returncode == 2 and "omnireward train" in r.stderr and "Traceback" not in r.stderr


def test_bad_record_names_file_line_and_field(tmp_path):
    rows = helpful_vs_rude(3)
    rows[1]["preference"] = "bogus"
    write_jsonl(tmp_path / "p.jsonl", rows)
    r = run("data", "validate", "p.jsonl", cwd=tmp_path)
    assert r.returncode == 1
    assert "p.jsonl:2: preference:" in r.stdout


def test_train_then_score_latest_then_eval(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", helpful_vs_rude(32, seed=3))
    write_jsonl(tmp_path / "val.jsonl", helpful_vs_rude(12, seed=4, start=500))
    r = run(
        "train",
        "backbone=tiny",
        "data.train=train.jsonl",
        "data.val=val.jsonl",
        "trainer.max_epochs=2",
        "model.lr=3e-3",
        "model.lm_lr=1e-3",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("reward-text-")
    # No --model: the newest run under runs/ is used.
    r = run("score", "val.jsonl", "--out", "s.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((tmp_path / "s.summary.json").read_text())
    assert summary["n"] == 12 and summary["accuracy_without_ties"] >= 0.9
    assert "per_task" in summary and "accuracy_with_ties" in summary
    r = run("eval", "s.jsonl", "--out", "e.json", cwd=tmp_path)
    assert r.returncode == 0
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["accuracy_without_ties"] == summary["accuracy_without_ties"]
    assert again["per_task"] == summary["per_task"]


def test_format_help_names_every_reader():
    """`--format`'s help lists every registered reader, so a new one cannot go missing from it."""
    from omnireward.cli.app import FORMATS as HELP
    from omnireward.data.formats import FORMATS

    assert set(HELP.split("|")) == {"auto", *FORMATS}
