"""Learning on every modality's demo set: real pretrained encoders (frozen), a tiny LM for speed.

Held-out accuracy on each set's intrinsic-quality rule, on sources training never showed, must rise
well above chance, the weights must move, and the reloaded model must give the scores the trained
one gave. The full embedded LM must follow criteria on enough criteria-flip twins to mean something.
"""

import json
from collections import defaultdict

import pytest
import torch
from safetensors.torch import load_file

from omnireward.config import compose_config
from omnireward.data.demo import FLIP, build_demo, build_split
from omnireward.data.prep import read_pairs
from omnireward.reward_model import RewardModel
from omnireward.scoring.bt import reward_records, score_file
from omnireward.train import train

# modality -> (train pairs, the rule whose preference lives in the response media alone)
CASES = {"image": (200, "degradation"), "video": (80, "degradation"), "audio": (120, "noise"), "3d": (120, "quality")}
# Held-out accuracy on that rule is asserted at these values, set from seeds 0, 1 and 2
# (benchmarks/learning_seeds.py, results/learning_seeds.jsonl: the worst seed scored image 0.77,
# video 0.77, audio 1.00 on 30-42 pairs each, and 3D 0.74 of 42 in its newest line, measured after
# training batches were grouped by length): two to three pairs under the worst seed.
THRESHOLD = {"image": 0.7, "video": 0.7, "audio": 0.9, "3d": 0.68}

HELD_OUT_PAIRS = 120


def run_case(modality: str, work, seed: int = 0):
    """Train the tiny-LM recipe on `modality`'s demo set (data and training seed `seed`) and score
    HELD_OUT_PAIRS pairs of unseen sources (seed + 1000). Returns (config, model folder, demo data
    folder, {rule: [ranked right?]}). benchmarks/learning_seeds.py runs it for several seeds to set
    the thresholds below."""
    n_pairs, _ = CASES[modality]
    data = build_demo(modality, work / "data", n_pairs=n_pairs, seed=seed)
    cfg = compose_config(
        [
            "backbone=tiny",
            "backbone.pretrained_encoders=true",
            "backbone.tiny_hidden=128",
            f"modality={modality}",
            f"data.train={data / 'train.jsonl'}",
            f"data.val={data / 'val.jsonl'}",
            f"output_dir={work / 'run'}",
            "trainer.max_epochs=12",
            "model.lr=1e-2",
            "model.lm_lr=1e-3",
            "data.batch_size=16",
            "head.dropout=0.0",
            f"seed={seed}",
            # 4 frames per clip keeps the one-off video feature pass short
            "++backbone.encoder_options={video: {num_frames: 4}}",
        ]
    )
    out = train(cfg)

    # The test split's few pairs of one rule make a noisy estimate; a larger sample of pairs from the
    # same unseen sources (another seed) gives each rule a few dozen.
    test_file = build_split(modality, work / "held", "test", HELD_OUT_PAIRS, seed=seed + 1000)
    score_file(test_file, out, work / "scores.jsonl")
    rules = {json.loads(x)["id"]: json.loads(x)["meta"]["rule"] for x in test_file.read_text().splitlines()}
    per_rule = defaultdict(list)
    for x in (work / "scores.jsonl").read_text().splitlines():
        s = json.loads(x)
        per_rule[rules[s["id"]]].append((s["margin"] > 0) == (s["preference"] == "response1"))
    return cfg, out, data, dict(per_rule)


# Video and 3D spend most of their time on the one-off feature pass (frames, rendered views):
# they run with `-m slow`.
@pytest.mark.parametrize(
    "modality", [pytest.param(m, marks=pytest.mark.slow) if m in ("video", "3d") else m for m in CASES]
)
def test_modality_learns_from_its_demo_set(tmp_path, modality):
    rule = CASES[modality][1]
    cfg, out, data, per_rule = run_case(modality, tmp_path)
    acc = sum(per_rule[rule]) / len(per_rule[rule])
    assert len(per_rule[rule]) >= 20
    assert acc >= THRESHOLD[modality], {k: (sum(v) / len(v), len(v)) for k, v in per_rule.items()}

    # The projector moved from its initial (seeded) values.
    trained = load_file(str(out / "modules.safetensors"))
    enc = "mesh" if modality == "3d" else modality
    key = f"backbone.projectors.{enc}.net.1.weight"
    torch.manual_seed(0)
    from omnireward.config import build

    fresh = build(cfg.backbone).state_dict()
    assert not torch.allclose(trained[key], fresh[key.removeprefix("backbone.")])

    # A reloaded model reproduces the rewards the trained model gave before saving.
    model, _ = RewardModel.from_pretrained(out)
    train_pairs = read_pairs(data / "train.jsonl")
    r = torch.tensor(
        [x["reward1"] for x in reward_records(model, train_pairs, show_progress=False)]
        + [x["reward2"] for x in reward_records(model, train_pairs, show_progress=False)]
    )
    stats = json.loads((out / "reward_stats.json").read_text())
    assert r.mean().item() == pytest.approx(stats["mean"], abs=1e-4)
    assert r.std().item() == pytest.approx(stats["std"], abs=1e-4)


def _right_by_rule(pairs_file, scores_file) -> dict[str, list[bool]]:
    """Per rule (criteria flips by what they flip, e.g. `flip:length`), whether each pair was ranked right."""
    meta = {json.loads(x)["id"]: json.loads(x)["meta"] for x in pairs_file.read_text().splitlines()}
    right = defaultdict(list)
    for x in scores_file.read_text().splitlines():
        s = json.loads(x)
        m = meta[s["id"]]
        right[f"flip:{m['flip']}" if m["rule"] == FLIP else m["rule"]].append(
            (s["margin"] > 0) == (s["preference"] == "response1")
        )
    return right


@pytest.mark.slow  # the full SmolLM2 trained for minutes
def test_full_embedded_lm_learns_the_text_rules_on_unseen_topics(tmp_path):
    """The embedded SmolLM2 (its default top 10 of 30 layers training) trained as `make demo` trains
    it ranks answers to questions of topic families it never saw: relevance, politeness, safety and
    over-refusal on a fresh unseen-source sample (the one benchmarks/demo_runs.py scores), and the
    test split.

    Measured with benchmarks/demo_runs.py, these settings (results/demo_runs.jsonl, tag
    text-Lall-e2-n128-s0-t10; seed 0 only): fresh unseen non-flip records 0.91 (96 of 106), test
    split 0.88 (n 25); with all 30 layers training (tag text-Lall-e2-n128-s0) 0.96 and 0.84.
    Thresholds sit below (0.85, 0.7) until other seeds give a range. Criteria flips are scored but
    not asserted: on 44 flip records of unseen topics the t10 run got 0.48 (seen topics 0.77).
    """
    data = build_demo("text", tmp_path / "data", n_pairs=128, seed=0)
    out = train(
        compose_config(
            [
                f"data.train={data / 'train.jsonl'}",
                f"data.val={data / 'val.jsonl'}",
                f"output_dir={tmp_path / 'run'}",
                "trainer.max_epochs=2",
                "model.lr=1e-3",
                "model.lm_lr=1e-4",
                "data.batch_size=8",
                "seed=0",
            ]
        )
    )
    summary = score_file(data / "test.jsonl", out, tmp_path / "scores.jsonl")
    assert summary["accuracy_without_ties"] >= 0.7
    fresh = build_split("text", tmp_path / "fresh", "test", 150, seed=1000)
    score_file(fresh, out, tmp_path / "fresh.scores.jsonl")
    right = _right_by_rule(fresh, tmp_path / "fresh.scores.jsonl")
    rules = [ok for rule, v in right.items() if not rule.startswith("flip:") for ok in v]
    assert len(rules) >= 30
    assert sum(rules) / len(rules) >= 0.85, {k: sum(v) / len(v) for k, v in right.items()}


@pytest.mark.slow
def test_full_embedded_lm_follows_subject_criteria_on_images(tmp_path):
    """Image twins whose open prompt names nothing and whose criteria name the wanted subject ("Prefer
    the image that shows a tabby cat."): a criteria-blind model gets exactly half of each twin. The
    full SmolLM2 with label tokens, trained as `make demo MODALITY=image` trains it, must follow
    them on new crops of the training photos, scored on a fresh sample large enough for 30 or more
    subject-flip records; the same flips on unseen photos are scored (in the assertion message) but
    not asserted.

    The threshold is not yet set from measured seeds: benchmarks/demo_runs.py --modality image with
    these settings (tag image-Lall-e4-n300-s0, then --seed 1 and 2) gives the range; until then it
    sits at 0.65, between chance (0.5) and the level earlier seen-source runs reported.
    """
    data = build_demo("image", tmp_path / "data", n_pairs=300, seed=0)
    out = train(
        compose_config(
            [
                "modality=image",
                f"data.train={data / 'train.jsonl'}",
                f"data.val={data / 'val.jsonl'}",
                f"output_dir={tmp_path / 'run'}",
                "trainer.max_epochs=4",
                "model.lr=5e-4",
                "model.lm_lr=5e-5",
                "backbone.train_layers=null",
                "data.batch_size=8",
                "seed=0",
            ]
        )
    )
    right = {}
    for pool, split in (("unseen", "test"), ("seen", "val")):
        pairs = build_split("image", tmp_path / "fresh", split, 300, seed=1000)
        score_file(pairs, out, tmp_path / f"{pool}.scores.jsonl")
        right[pool] = _right_by_rule(pairs, tmp_path / f"{pool}.scores.jsonl")
    acc = {pool: {k: (round(sum(v) / len(v), 3), len(v)) for k, v in r.items()} for pool, r in right.items()}
    twins = right["seen"]["flip:subject"]
    assert len(twins) >= 30, acc
    assert sum(twins) / len(twins) >= 0.65, acc
