"""Every judge path on every backbone family, on tiny random checkpoints of the real architectures:
zero-shot `score --judge`, `model=r1` (SFT then GRPO) and `model=joint` trained, saved, reloaded and
scored, with media in the prompt and in the responses. Heavier families are marked slow; each family
has at least one default-suite judge test."""

from __future__ import annotations

import json

import pytest
from test_hf_backbones import FAST, _rows, _write, media, tiny  # noqa: F401 (fixtures)

from omnireward.config import compose_config
from omnireward.errors import ModelError
from omnireward.judge import grammar
from omnireward.model_folder import folder_objective
from omnireward.scoring.bt import score_file
from omnireward.scoring.judge import judge_file, trained_judge
from omnireward.train import train

HF_FAMILIES = ["text", "qwen2_5_vl", "qwen3_vl", "qwen2_audio", "qwen2_5_omni"]
HEAVY = {"qwen3_vl", "qwen2_5_omni"}  # their tiny towers make training steps slow on CPU
LABELS = {"response1", "response2", "tie"}


@pytest.fixture(autouse=True)
def small_flex(monkeypatch):
    """Short Flex strings keep a random tiny model's constrained answers short."""
    monkeypatch.setattr(grammar, "NAME_CHARS", 6)
    monkeypatch.setattr(grammar, "REASON_CHARS", 8)
    monkeypatch.setattr(grammar, "INTENT_CHARS", 8)
    monkeypatch.setattr(grammar, "DIMS", 1)


def _critiques(rows):
    for r in rows:
        w = "A" if r["preference"] == "response1" else "B"
        r["critique"] = f"Response {w} is better. [[{w}]]"
    return rows


def _backbone_overrides(family, tiny):
    if family == "modular":  # the modular family: tiny random Llama + random encoders for every medium
        return ["backbone=tiny", "modality=omni"]
    return ["backbone=hf", f"backbone.name_or_path={tiny(family)}", *[f"backbone.{k}={v}" for k, v in FAST.items()]]


def _rows_for(family, media, n, start=0):
    return _rows("qwen2_5_omni" if family == "modular" else family, media, n, start)


def _check_judge_lines(path, n):
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == n
    for x in lines:
        assert x["verdict"] in LABELS and 0.0 <= x["p_response1"] <= 1.0
        assert x["p_response1"] + x["p_response2"] + x["p_tie"] == pytest.approx(1.0, abs=1e-4)
    return lines


# ---- zero-shot judging ------------------------------------------------------------------------
@pytest.mark.parametrize("family", HF_FAMILIES)
def test_zero_shot_judge_reads_media_on_every_family(tiny, media, family, tmp_path):
    src = _write(media["dir"] / f"{family}-zs.jsonl", _rows(family, media, 4))
    judge_file(src, tiny(family), tmp_path / "omni.jsonl", judge="omni", max_new_tokens=3, device="cpu")
    _check_judge_lines(tmp_path / "omni.jsonl", 4)


@pytest.mark.parametrize("family", ["text", "qwen2_5_vl"])
def test_zero_shot_think_and_flex_templates(tiny, media, family, tmp_path):
    src = _write(media["dir"] / f"{family}-tf.jsonl", _rows(family, media, 2)[1:])  # one pair, with media
    judge_file(src, tiny(family), tmp_path / "think.jsonl", judge="think", max_new_tokens=3, device="cpu")
    _check_judge_lines(tmp_path / "think.jsonl", 1)
    s = judge_file(src, tiny(family), tmp_path / "flex.jsonl", judge="flex", max_new_tokens=3, device="cpu")
    lines = _check_judge_lines(tmp_path / "flex.jsonl", 1)
    # Constrained decoding: even a random model's answer is valid Flex JSON.
    assert s["flex_valid_share"] == 1.0 and all(x["dimension_scores"] for x in lines)


def test_audio_on_a_vision_only_checkpoint_is_one_line(tiny, media, tmp_path):
    src = _write(media["dir"] / "audio-on-vl.jsonl", _rows("qwen2_audio", media, 4))
    with pytest.raises(ModelError, match="qwen2_5_vl backbone does not read audio"):
        judge_file(src, tiny("qwen2_5_vl"), tmp_path / "x.jsonl", max_new_tokens=2, device="cpu")


# ---- trained judges ---------------------------------------------------------------------------
def _train_r1(family, tiny, media, tmp_path):
    d = media["dir"]
    train_f = _write(d / f"{family}-r1-train.jsonl", _critiques(_rows_for(family, media, 8)))
    val_f = _write(d / f"{family}-r1-val.jsonl", _rows_for(family, media, 4, start=100))
    out = tmp_path / "r1"
    cfg = compose_config(
        [
            "model=r1",
            *_backbone_overrides(family, tiny),
            f"data.train={train_f}",
            f"data.val={val_f}",
            "data.batch_size=4",
            "data.eval_batch_size=4",
            "trainer.max_epochs=2",
            "model.sft_epochs=1",
            "model.num_generations=2",
            "model.max_new_tokens=4",
            "model.val_max_new_tokens=2",
            "model.lr=1e-3",
            "model.lm_lr=1e-3",
            "trainer.log_every_n_steps=1",
            f"output_dir={out}",
        ]
    )
    train(cfg)
    return out, val_f


def _r1_and_joint(family, tiny, media, tmp_path):
    out, val_f = _train_r1(family, tiny, media, tmp_path)
    assert folder_objective(out) == "judge" and trained_judge(out).name == "omni"
    metrics = (out / "metrics.csv").read_text()
    assert "train/sft_loss" in metrics and "train/reward" in metrics  # both stages ran
    s = judge_file(val_f, out, tmp_path / "judged.jsonl", judge=None, max_new_tokens=3, device="cpu")
    _check_judge_lines(tmp_path / "judged.jsonl", 4)
    assert s["trained_judge"] == "omni"

    d = media["dir"]
    train_f = _write(d / f"{family}-joint-train.jsonl", _critiques(_rows_for(family, media, 8)))
    joint = tmp_path / "joint"
    train(
        compose_config(
            [
                "model=joint",
                *_backbone_overrides(family, tiny),
                f"data.train={train_f}",
                f"data.val={val_f}",
                "data.batch_size=4",
                "trainer.max_epochs=1",
                "model.lr=1e-3",
                "model.lm_lr=1e-3",
                f"output_dir={joint}",
            ]
        )
    )
    assert folder_objective(joint) == "joint"
    summary = score_file(val_f, joint, tmp_path / "joint.scores.jsonl")
    assert summary["n"] == 4
    # A joint folder's backbone also judges zero-shot (its LM learnt the critiques).
    judge_file(val_f, joint, tmp_path / "joint.judged.jsonl", judge="omni", max_new_tokens=2, device="cpu")
    _check_judge_lines(tmp_path / "joint.judged.jsonl", 4)


@pytest.mark.parametrize("family", ["modular", "text", "qwen2_5_vl", "qwen2_audio"])
def test_r1_and_joint_train_save_reload_and_judge(tiny, media, family, tmp_path):
    _r1_and_joint(family, tiny, media, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(HEAVY))
def test_r1_and_joint_train_save_reload_and_judge_heavy(tiny, media, family, tmp_path):
    _r1_and_joint(family, tiny, media, tmp_path)


# ---- an SFT'd judge follows a rule it was taught ------------------------------------------------
def _rule_rows(n, start=0):
    """Balanced sides: the helpful answer wins wherever it stands; critiques name the winner."""
    rows = []
    for i in range(start, start + n):
        good, bad = "Sure! Start with the basics, step by step.", "No. Figure it out yourself."
        first = i % 2 == 0
        rows.append(
            {
                "id": f"r{i}",
                "prompt": f"How do I boil egg number {i}?",
                "response1": good if first else bad,
                "response2": bad if first else good,
                "preference": "response1" if first else "response2",
            }
        )
    return _critiques(rows)


def _sft_judge_learns(family, tiny, tmp_path):
    train_f = _write(tmp_path / "train.jsonl", _rule_rows(48))
    test_rows = _rule_rows(40, start=1000)
    test_f = _write(tmp_path / "test.jsonl", test_rows)
    out = tmp_path / "sft"
    # The tiny modular LM's random embeddings (and tied LM head) learn too: frozen, they would leave
    # two random 64-wide layers to map the answer onto fixed random output words.
    extra = ["backbone.freeze_embeddings=false"] if family == "modular" else []
    backbone = _backbone_overrides(family, tiny)
    if family == "text":
        # Untied input and output embeddings (as Qwen2.5-7B has): 32 wide and tied, the same
        # matrix cannot both read the answers and write the verdict letters this quickly.
        import _tiny_hf

        backbone[1] = f"backbone.name_or_path={_tiny_hf.save_text_lm(tmp_path / 'untied', tie_word_embeddings=False)}"
    train(
        compose_config(
            [
                "model=r1",
                *backbone,
                *extra,
                f"data.train={train_f}",
                f"data.val={test_f}",
                "data.batch_size=8",
                "trainer.max_epochs=40",
                "model.sft_epochs=40",
                "model.val_max_new_tokens=0",
                "model.lr=3e-3",
                "model.lm_lr=3e-3",
                "model.beta=0",
                "trainer.num_sanity_val_steps=0",
                f"output_dir={out}",
            ]
        )
    )
    # 16 new tokens: a byte-level tiny tokenizer spells "Response B is better. [[B]]" in 11
    s = judge_file(test_f, out, tmp_path / "judged.jsonl", judge=None, max_new_tokens=16, device="cpu")
    lines = _check_judge_lines(tmp_path / "judged.jsonl", 40)
    assert sum(r["preference"] == "response1" for r in test_rows) == 20  # a constant verdict scores 0.5
    assert s["accuracy_without_ties"] >= 0.75, [x["critique"] for x in lines[:3]]


# Deterministic (seed 0). 40 epochs of 6 steps: at 20, a 32-wide random model broke the A/B symmetry
# at some seeds only (the text checkpoint at 3 of seeds 0-3, Qwen2.5-VL at 1 of 4, Qwen2-Audio and
# Qwen2.5-Omni not at seed 0); at 40, the text, Qwen2.5-VL and Qwen2-Audio checkpoints learn the rule
# fully (1.0) at every seed 0-3, and Qwen3-VL and Qwen2.5-Omni at seed 0.
@pytest.mark.parametrize("family", ["modular", "text", "qwen2_5_vl", "qwen2_audio"])
def test_sft_judge_follows_the_rule_on_held_out_pairs(tiny, family, tmp_path):
    _sft_judge_learns(family, tiny, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(HEAVY))
def test_sft_judge_follows_the_rule_on_held_out_pairs_heavy(tiny, family, tmp_path):
    _sft_judge_learns(family, tiny, tmp_path)


def test_grammar_bound_covers_the_longest_answer():
    """The longest string the Flex grammar accepts fits the token budget it asks for."""
    from omnireward.judge.templates import load_template

    t = load_template("flex")
    text, bound = grammar.flex_grammar(t, personalised=True, dims=2)
    longest = {
        "intent": "x" * grammar.INTENT_CHARS,
        "categories": [
            {
                "name": c,
                "dimensions": [
                    {
                        "name": "n" * grammar.NAME_CHARS,
                        "reason": "r" * grammar.REASON_CHARS,
                        "score_a": 10,
                        "score_b": 0,
                    }
                ]
                * 2,
                "winner": "tie",
            }
            for c in [*t.categories, t.personalised_category]
        ],
        "overall_winner": "tie",
    }
    assert len(json.dumps(longest)) <= bound
    assert "personalised" in text and "overall_winner" in text


def test_embedded_lm_zero_shot_flex_is_valid_on_every_pair(tmp_path, monkeypatch):
    """The real embedded SmolLM2-135M-Instruct, zero-shot: every Flex line parses, with per-dimension
    scores that sum to 10 and winners, because decoding stays inside the Flex grammar."""
    from omnireward.data.demo import build_demo

    monkeypatch.undo()  # the packaged string lengths, not the tiny models' short ones
    test = build_demo("text", tmp_path / "demo", n_pairs=40, seed=0) / "test.jsonl"
    rows = test.read_text().splitlines()[:8]
    assert any('"criteria"' in r for r in rows)  # a personalised category appears too
    src = tmp_path / "eight.jsonl"
    src.write_text("".join(r + "\n" for r in rows))
    s = judge_file(src, None, tmp_path / "flex.jsonl", judge="flex", batch_size=8, device="cpu")
    lines = [json.loads(x) for x in (tmp_path / "flex.jsonl").read_text().splitlines()]
    assert s["flex_valid_share"] == 1.0 and len(lines) == 8
    for x in lines:
        assert x["flex"]["overall_winner"] in LABELS and len(x["flex"]["categories"]) >= 3
        for s1, s2 in x["dimension_scores"].values():
            assert s1 + s2 == pytest.approx(10.0)
