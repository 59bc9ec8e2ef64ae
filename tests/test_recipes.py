"""Every paper recipe (conf/recipe/) composes with the paper's settings and trains one step on a tiny
random checkpoint of its backbone's architecture, with tiny data in place of the paper's."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl
from test_cli import run
from test_hf_backbones import FAST, _rows, media, tiny  # noqa: F401 (fixtures)

from omnireward.config import compose_config, group_options
from omnireward.model_folder import folder_objective
from omnireward.train import MIXTURE_NAME, train

RECIPES = [
    "omni_reward_bt",
    "omni_reward_r1_sft",
    "omni_reward_r1_grpo",
    "unifiedreward_think_sft",
    "unifiedreward_think_grpo",
    "unifiedreward_flex_sft",
    "unifiedreward_flex_dpo",
    "jrm",
]
# recipe -> (tiny family of its backbone, objective of the folder, a metric only its stage logs)
SMOKE = {
    "omni_reward_bt": ("qwen2_5_omni", "reward", "train/acc"),
    "omni_reward_r1_sft": ("qwen2_5_vl", "judge", "train/sft_loss"),
    "omni_reward_r1_grpo": ("qwen2_5_vl", "judge", "train/reward"),
    "unifiedreward_think_sft": ("qwen2_5_vl", "judge", "train/sft_loss"),
    "unifiedreward_think_grpo": ("qwen2_5_vl", "judge", "train/reward"),
    "unifiedreward_flex_sft": ("qwen3_vl", "judge", "train/sft_loss"),
    "unifiedreward_flex_dpo": ("qwen3_vl", "judge", "train/reward_margin"),
    "jrm": ("qwen2_5_vl", "joint", "train/lm_loss"),
}
# Shrink the paper's scale to one CPU step: the recipe's own settings stay, except these.
ONE_STEP = [
    "trainer=default",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "+trainer.max_steps=1",
    "trainer.accumulate_grad_batches=1",
    "trainer.log_every_n_steps=1",
    "logger=csv",
    "backbone.trust_remote_code=false",
    "backbone.gradient_checkpointing=false",
    "data.batch_size=2",
    "data.val=null",
    *[f"backbone.{k}={v}" for k, v in FAST.items()],
]
GRPO_SMALL = ["model.num_generations=2", "model.max_new_tokens=4"]


def test_every_recipe_is_a_choice_of_the_recipe_group():
    assert sorted(group_options()["recipe"]) == sorted(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_composes_and_names_its_source(recipe):
    cfg = compose_config([f"recipe={recipe}"])
    assert cfg.backbone._target_.endswith("build_hf") and cfg.backbone.name_or_path
    assert cfg.trainer.precision == "bf16-mixed"  # one GPU by default; trainer=ddp|fsdp|deepspeed for more
    from importlib import resources

    header = resources.files("omnireward.conf").joinpath("recipe", f"{recipe}.yaml").read_text()
    assert "arXiv" in header and "our choice" in header


def test_paper_settings_reach_the_composed_config():
    bt = compose_config(["recipe=omni_reward_bt"])
    # HongbangYuan/OmniReward OmniReward-Factory/scripts/train.sh
    assert (bt.model.lm_lr, bt.model.weight_decay, bt.model.warmup_ratio) == (2e-6, 1e-3, 0.05)
    assert (bt.backbone.max_length, bt.backbone.video_frames, bt.trainer.max_epochs) == (18000, 4, 2)
    assert (bt.data.batch_size, bt.trainer.accumulate_grad_batches) == (1, 16)
    assert [s.weight for s in bt.data.train] == [1.0, 1.0]
    think = compose_config(["recipe=unifiedreward_think_grpo"])
    assert think.judge.name == "think" and think.model.format_weight == think.model.accuracy_weight == 1.0
    assert compose_config(["recipe=unifiedreward_flex_dpo"]).model._target_.endswith("JudgeDPOModule")
    # A command-line choice still wins over the recipe's: adapters on one GPU.
    qlora = compose_config(["recipe=omni_reward_bt", "peft=qlora"])
    assert qlora.peft._target_.endswith("QLoRA") and qlora.model.lm_lr == 2e-4


def test_cli_prints_the_composed_recipe():
    r = run("train", "--cfg", "recipe=omni_reward_bt")
    assert r.returncode == 0, r.stderr
    assert "max_length: 18000" in r.stdout and "openbmb/MiniCPM-o-2_6" in r.stdout
    assert "recipe=" in run("train", "--help").stdout


def _data(recipe, family, media, tmp_path):
    """Tiny records of the kind each recipe trains on, written beside the media."""
    d = media["dir"]
    rows = _rows(family, media, 4)
    if recipe == "jrm":  # image editing: source image in the prompt, edited images as the responses
        rows = [
            {
                "id": f"edit-{i}",
                "task": "text_image_to_image",
                "prompt": "make the sky purple",
                "prompt_media": [{"type": "image", "path": media["coffee"]}],
                "response1": {"media": [{"type": "image", "path": media["chelsea" if i % 2 else "astronaut"]}]},
                "response2": {"media": [{"type": "image", "path": media["astronaut" if i % 2 else "chelsea"]}]},
                "preference": "response1" if i % 2 == 0 else "response2",
            }
            for i in range(4)
        ]
    for r in rows:
        w = "A" if r["preference"] == "response1" else "B"
        if recipe.endswith("_sft") or recipe == "jrm":
            r["critique"] = f"Response {w} is better. [[{w}]]"
        if recipe.endswith("_dpo"):
            r["chosen_critique"] = f'{{"overall_winner": "{w}"}}'
            r["rejected_critique"] = f'{{"overall_winner": "{"B" if w == "A" else "A"}"}}'
    if recipe == "omni_reward_bt":  # the recipe's mixture: general pairs + instruction pairs with criteria
        general = write_jsonl(d / f"{recipe}-general.jsonl", rows)
        instruction = write_jsonl(
            d / f"{recipe}-instruction.jsonl",
            [{**r, "id": r["id"] + "-c", "criteria": "Prefer the answer that matches the prompt."} for r in rows[:2]],
        )
        return [f"data.train=[{{path:'{general}',weight:1.0}},{{path:'{instruction}',weight:1.0}}]"]
    return [f"data.train={write_jsonl(d / f'{recipe}-train.jsonl', rows)}"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_trains_one_step_on_a_tiny_checkpoint(recipe, tiny, media, tmp_path):
    family, objective, metric = SMOKE[recipe]
    out = tmp_path / "run"
    overrides = [
        f"recipe={recipe}",
        f"backbone.name_or_path={tiny(family)}",
        *ONE_STEP,
        f"output_dir={out}",
        *_data(recipe, family, media, tmp_path),
    ]
    if recipe.endswith("_grpo"):
        overrides += GRPO_SMALL
    train(compose_config(overrides))
    assert folder_objective(out) == objective
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_steps"] == 1
    metrics = (out / "metrics.csv").read_text()
    assert metric in metrics, metrics.splitlines()[0]
    if recipe.endswith("_sft"):
        assert "train/reward" not in metrics  # SFT only: GRPO is the next recipe
    if recipe == "omni_reward_bt":
        sources = json.loads((out / MIXTURE_NAME).read_text())["sources"]
        assert [s["pairs_per_epoch"] for s in sources] == [4, 2]
