"""benchmarks/demo_runs.py names each results line by every setting that changes it, so a rerun
with other settings never renders under another run's row."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import demo_runs  # noqa: E402

from omnireward.config import compose_config  # noqa: E402

TEXT = ["--modality", "text", "--seed", "0", "--epochs", "2", "--n-pairs", "128"]


def tag(argv: list[str]) -> str:
    a = demo_runs.parser().parse_args(argv)
    return demo_runs.run_tag(a, demo_runs.effective_settings(compose_config(demo_runs.base_overrides(a))))


def test_the_tag_reads_the_effective_settings_from_the_composed_config():
    a = demo_runs.parser().parse_args(TEXT)
    settings = demo_runs.effective_settings(compose_config(demo_runs.base_overrides(a)))
    cfg = compose_config([])
    assert settings == {"train_layers": cfg.backbone.train_layers, "group_by_length": cfg.data.group_by_length,
                        "lr": cfg.model.lr, "lm_lr": cfg.model.lm_lr, "batch_size": cfg.data.batch_size}
    t = tag(TEXT)
    assert re.fullmatch(rf"text-Lall-e2-n128-s0-t{cfg.backbone.train_layers}-[0-9a-f]{{8}}", t), t
    assert tag(TEXT) == t  # deterministic


def test_every_setting_that_changes_the_result_changes_the_tag():
    plain = tag(TEXT)
    variants = {
        "train_layers": tag([*TEXT, "backbone.train_layers=null"]),
        "group_by_length": tag([*TEXT, "data.group_by_length=0"]),
        "lr": tag([*TEXT, "model.lr=1e-3"]),
        "lm_lr": tag([*TEXT, "model.lm_lr=1e-4"]),
        "batch_size": tag([*TEXT, "data.batch_size=4"]),
        "other override": tag([*TEXT, "backbone.label_tokens=false"]),
        "fresh pairs": tag([*TEXT, "--fresh-pairs", "60"]),
        "label": tag([*TEXT, "--label", "nolabel"]),
        "seed": tag([*TEXT[:2], "--seed", "1", *TEXT[4:]]),
    }
    assert len({plain, *variants.values()}) == len(variants) + 1, variants
    assert variants["train_layers"].startswith("text-Lall-e2-n128-s0-tall-")


def test_a_changed_default_changes_the_tag_and_override_order_does_not():
    a = demo_runs.parser().parse_args([*TEXT, "model.lr=1e-3", "model.lm_lr=1e-4"])
    b = demo_runs.parser().parse_args([*TEXT, "model.lm_lr=1e-4", "model.lr=1e-3"])
    settings = demo_runs.effective_settings(compose_config(demo_runs.base_overrides(a)))
    assert demo_runs.run_tag(a, settings) == demo_runs.run_tag(b, settings)
    # The same command after a default moved (read from the composed config) is another row.
    assert demo_runs.run_tag(a, settings) != demo_runs.run_tag(a, {**settings, "group_by_length": 0})


def test_new_tags_never_take_an_old_row():
    old = {line.get("tag") for line in demo_runs_lines()}
    assert "text-Lall-e2-n128-s0-t10" in old
    for argv in (TEXT, [*TEXT, "--label", "t10", "model.lr=1e-3", "model.lm_lr=1e-4", "data.batch_size=8"]):
        assert tag(argv) not in old


def demo_runs_lines() -> list[dict]:
    from results_log import lines

    return lines("demo_runs")
