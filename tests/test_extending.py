"""docs/extending.md keeps true: a loss is a function plus a YAML file in a folder of the user's."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from omnireward.config import build, compose_config
from omnireward.errors import ConfigError

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.fixture
def user_conf(tmp_path, monkeypatch):
    """The doc's my_conf/ folder, written from the doc's own code blocks."""
    conf = tmp_path / "my_conf"
    (conf / "loss").mkdir(parents=True)
    python = next(b for b in _blocks("python") if "def focal_bt" in b)
    yaml = next(b for b in _blocks("yaml") if "my_losses.focal_bt" in b)
    (conf / "my_losses.py").write_text(python)
    (conf / "loss" / "focal_bt.yaml").write_text(yaml)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield conf
    sys.modules.pop("my_losses", None)


def test_a_user_loss_composes_builds_and_trains(user_conf, tmp_path, text_pairs):
    import torch

    from omnireward.train import train

    cfg = compose_config(["loss=focal_bt", "loss.gamma=1.0"], config_dirs=[user_conf])
    loss = build(cfg.model.loss)
    d, y = torch.tensor([2.0, -1.0]), torch.tensor([1, 1])
    assert loss(d, y, None) > 0 and loss.keywords["gamma"] == 1.0
    train_f, val_f = text_pairs
    out = train(
        compose_config(
            [
                "loss=focal_bt",
                "backbone=tiny",
                "trainer.max_epochs=1",
                f"data.train={train_f}",
                f"data.val={val_f}",
                f"output_dir={tmp_path / 'run'}",
            ],
            config_dirs=[user_conf],
        )
    )
    saved = (out / "omnireward.yaml").read_text()
    assert "my_losses.focal_bt" in saved
    assert json.loads((out / "train_summary.json").read_text())["global_steps"] > 0


def test_the_documented_command_line_runs(user_conf, tmp_path, text_pairs):
    from typer.testing import CliRunner

    from omnireward.cli.app import app

    command = next(line for line in _blocks("bash")[0].splitlines() if line.startswith("omnireward train"))
    train_f, val_f = text_pairs
    args = command.split()[2:] + [f"data.train={train_f}", f"data.val={val_f}", f"output_dir={tmp_path / 'cli'}"]
    args = [a.replace("my_conf", str(user_conf)) for a in args]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "modules.safetensors").exists()


def test_a_bad_user_option_fails_at_compose_time(user_conf):
    with pytest.raises(ConfigError, match="takes no option"):
        compose_config(["loss=focal_bt", "+loss.gama=1"], config_dirs=[user_conf])
