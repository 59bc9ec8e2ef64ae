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
    assert settings == {
        "train_layers": cfg.backbone.train_layers,
        "group_by_length": cfg.data.group_by_length,
        "lr": cfg.model.lr,
        "lm_lr": cfg.model.lm_lr,
        "batch_size": cfg.data.batch_size,
    }
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


def test_flips_are_also_counted_per_wording_of_their_criteria(tmp_path):
    """A results line reads the test pool's paraphrased criteria apart from the rule's own phrasings."""
    import json

    from omnireward.data.demo import build_split

    pairs = build_split("image", tmp_path, "test", 40, seed=0)
    records = [json.loads(x) for x in pairs.read_text().splitlines()]
    # a scorer right on every trained-wording flip and wrong on every paraphrased one, right elsewhere
    lines = []
    for r in records:
        good = 1.0 if r["preference"] == "response1" else -1.0
        margin = -good if r["meta"].get("wording") == "paraphrase" else good
        lines.append(json.dumps({"id": r["id"], "margin": margin, "preference": r["preference"]}))
    scores = tmp_path / "scores.jsonl"
    scores.write_text("\n".join(lines) + "\n")
    figures = demo_runs.accuracy_by_rule(pairs, scores)
    by = figures["flips_by_wording"]
    n_para = sum(r["meta"].get("wording") == "paraphrase" for r in records)
    n_flips = sum(r["meta"]["rule"] == "criteria_flip" for r in records)
    assert by["paraphrase"]["n"] == n_para > 0 and by["trained"]["n"] == n_flips - n_para > 0
    assert by["paraphrase"]["accuracy"] == 0 and by["trained"]["accuracy"] == 1
    assert figures["flips"] == {"accuracy": round((n_flips - n_para) / n_flips, 4), "n": n_flips}
    rules = {k for k in figures["per_rule"] if k.startswith("criteria_flip")}
    assert set(by["paraphrase"]["per_rule"]) | set(by["trained"]["per_rule"]) == rules
    assert figures["per_rule"]["subject"]["accuracy"] == 1
