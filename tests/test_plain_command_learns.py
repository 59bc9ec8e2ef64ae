"""The plain command's defaults per modality: each modality's config group carries the training
defaults that benchmarks/defaults.py measured (docs/defaults.md)."""

from __future__ import annotations

import pytest


def test_each_modality_sets_its_own_measured_training_defaults():
    """conf/modality/*.yaml carries the defaults docs/defaults.md measured; an override still wins."""
    from omnireward.config import compose_config

    grouped = {
        m: compose_config([f"modality={m}"]).data.group_by_length
        for m in ("text", "image", "video", "audio", "3d", "omni")
    }
    assert grouped == {"text": 16, "image": 16, "video": 16, "audio": 0, "3d": 16, "omni": 16}
    assert compose_config(["modality=audio", "data.group_by_length=8"]).data.group_by_length == 8
    layers = {
        m: compose_config([f"modality={m}"]).backbone.train_layers
        for m in ("text", "image", "video", "audio", "3d", "omni")
    }
    assert layers == {"text": 20, "image": 10, "video": 10, "audio": None, "3d": 10, "omni": 10}
    assert compose_config(["modality=text", "backbone.train_layers=null"]).backbone.train_layers is None
    assert compose_config(["modality=text", "peft=lora"]).backbone.train_layers is None


def _plain_train(modality: str, data, out, epochs: int, seed: int = 0):
    """`omnireward train model=bt modality=M` with only the data, output folder, epochs and seed."""
    from omnireward.config import compose_config
    from omnireward.train import train

    overrides = [
        "model=bt",
        f"modality={modality}",
        f"data.train={data / 'train.jsonl'}",
        f"data.val={data / 'val.jsonl'}",
        f"output_dir={out}",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
    ]
    return train(compose_config(overrides))


# The plain text command's worst seed on the non-flip records of the fresh unseen-source sample
# (benchmarks/defaults.py, tags text-l20-s0/1/2, measured before it became the text default).
WORST_TEXT_SEED_NONFLIP = 0.934


@pytest.mark.slow
def test_plain_text_command_learns_the_demo_rules_on_unseen_sources(tmp_path):
    """`omnireward train model=bt modality=text` with only the data and 2 epochs (what `make demo`
    runs), scored on the fresh unseen-source sample benchmarks/defaults.py scores (150 pairs, seed
    1000). The bar is the worst measured seed on the records whose rules live in the answers
    (criteria flips excluded: their test wording changed since), one pair of slack below it, so a
    later default that hurts text learning fails here."""
    import sys
    from pathlib import Path

    from omnireward.data.demo import build_demo, build_split
    from omnireward.scoring.bt import score_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from demo_runs import accuracy_by_rule

    data = build_demo("text", tmp_path / "data", n_pairs=128, seed=0)
    out = _plain_train("text", data, tmp_path / "run", epochs=2)
    fresh = build_split("text", tmp_path / "fresh", "test", 150, seed=1000)
    score_file(fresh, out, tmp_path / "fresh.scores.jsonl")
    rules = accuracy_by_rule(fresh, tmp_path / "fresh.scores.jsonl")["per_rule"]
    kept = {k: v for k, v in rules.items() if not k.startswith("criteria_flip")}
    n = sum(v["n"] for v in kept.values())
    acc = sum(v["accuracy"] * v["n"] for v in kept.values()) / n
    assert n >= 90
    assert acc >= WORST_TEXT_SEED_NONFLIP - 1 / n, rules


# The plain audio command (every layer training, the audio default since it was measured) on the
# tones set's unseen tones under training's phrasings (benchmarks/defaults.py, `test_sources` of
# tones-all-s0/s1/s2: 0.867, 0.867, 1.000; docs/defaults.md). The test trains seed 0 (training on a
# CPU is deterministic) and holds it to its own measured figure, which is also the worst seed's.
TONES_SEED0 = 0.867


@pytest.mark.slow
def test_plain_audio_command_learns_unseen_tones(tmp_path):
    """`omnireward train model=bt modality=audio` with only the data and 4 epochs on the tones set
    (120 training pairs: a high whistle or a low hum named by the prompt), scored on tones of other
    pitches and timbres under training's phrasings, held to seed 0's measured figure less one pair.
    Seeds 1 and 2 scored 0.867 and 1.000; with the top 10 layers training (the audio default before
    it was measured) seeds 0, 1, 2 scored 0.683, 0.950 and 0.500 (docs/defaults.md), so the old
    default fails here."""
    import sys
    from pathlib import Path

    from omnireward.scoring.bt import score_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from demo_runs import accuracy_by_rule
    from named_sets import build_set

    data = build_set("tones", tmp_path / "data", n_pairs=120, seed=0)
    out = _plain_train("audio", data, tmp_path / "run", epochs=4)
    score_file(data / "test_sources.jsonl", out, tmp_path / "sources.scores.jsonl")
    got = accuracy_by_rule(data / "test_sources.jsonl", tmp_path / "sources.scores.jsonl")
    assert got["n"] >= 50
    assert got["accuracy"] >= TONES_SEED0 - 1 / got["n"], got


# The plain audio command's worst seed on the fresh unseen-source sample of the audio demo set
# (benchmarks/defaults.py, tags audio-all-s0/s1/s2: 0.793, 0.820, 0.787, measured before every layer
# became the audio default; the top 10 layers scored 0.773, 0.780 and 0.607).
WORST_AUDIO_SEED = 0.787


@pytest.mark.slow
def test_plain_audio_command_learns_the_demo_rules_on_unseen_sources(tmp_path):
    """`omnireward train model=bt modality=audio` with only the data and 4 epochs on the audio demo
    set (300 pairs, what `make demo MODALITY=audio` runs), scored on the fresh unseen-source sample
    benchmarks/defaults.py scores (150 pairs of voices and sentences training never heard, seed
    1000), held to the worst measured seed less one pair."""
    got = _demo_unseen_accuracy("audio", tmp_path, n_pairs=300, epochs=4)
    assert got["n"] >= 140
    assert got["accuracy"] >= WORST_AUDIO_SEED - 1 / got["n"], got


def _demo_unseen_accuracy(modality: str, tmp_path, n_pairs: int, epochs: int) -> dict:
    """The plain command trained on a modality's demo set (seed 0), scored on the fresh
    unseen-source sample benchmarks/defaults.py scores (150 pairs, seed 1000): accuracy by rule."""
    import sys
    from pathlib import Path

    from omnireward.data.demo import build_demo, build_split
    from omnireward.scoring.bt import score_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from demo_runs import accuracy_by_rule

    data = build_demo(modality, tmp_path / "data", n_pairs=n_pairs, seed=0)
    out = _plain_train(modality, data, tmp_path / "run", epochs=epochs)
    fresh = build_split(modality, tmp_path / "fresh", "test", 150, seed=1000)
    score_file(fresh, out, tmp_path / "fresh.scores.jsonl")
    return accuracy_by_rule(fresh, tmp_path / "fresh.scores.jsonl")


# The plain video and 3D commands' worst seed on their demo sets' fresh unseen-source samples
# (benchmarks/defaults.py, the configuration's defaults: top 10 layers, its learning rates;
# docs/defaults.md): video-base-s0/s1/s2 0.600, 0.587, 0.607; 3d-base-s0/s1/s2 0.607, 0.640, 0.513.
# The test trains seed 0. What `make demo` passed for them before (every layer, model.lm_lr=5e-5:
# tags *-demo-s*) scored lower on average and trained slower.
WORST_SEED = {"video": 0.587, "3d": 0.513}


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["video", "3d"])
def test_plain_media_command_learns_the_demo_rules_on_unseen_sources(modality, tmp_path):
    """`omnireward train model=bt modality=M` with only the data and 4 epochs on the demo set (300
    pairs, what `make demo MODALITY=M` runs), held to the worst measured seed on the fresh unseen
    sample less one pair, so a later default that makes video or 3D learn worse fails here."""
    got = _demo_unseen_accuracy(modality, tmp_path, n_pairs=300, epochs=4)
    assert got["n"] >= 140
    assert got["accuracy"] >= WORST_SEED[modality] - 1 / got["n"], got
