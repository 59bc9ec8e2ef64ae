"""`omnireward export`: plain transformers classifiers for text models, load_exported for multimodal ones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from _deploy_utils import fit_steps, score_lines, text_set, tiny_overrides, write_jsonl
from typer.testing import CliRunner

from omnireward.errors import ConfigError
from omnireward.export import export, load_exported, reward_messages


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A tiny text reward model trained with LoRA for a few steps, with a train summary beside it."""
    from omnireward.config import compose_config
    from omnireward.data.datamodule import load_records
    from omnireward.train import build_module

    root = tmp_path_factory.mktemp("export")
    data = text_set(root / "data", n_train=32, n_val=8, n_test=24)
    cfg = compose_config(tiny_overrides(data, root / "model", "head.dropout=0", "peft=lora", "peft.r=4"))
    module = build_module(cfg)
    fit_steps(module, load_records(data["train"]), steps=4, lr=3e-3)
    out = module.model.save_pretrained(root / "model", cfg, {"mean": 0.25, "std": 1.5, "n": 64})
    (out / "train_summary.json").write_text(
        json.dumps({"epochs": 3, "train_pairs": 32, "best_epoch": 2, "best_val_acc": 0.875})
    )
    return out, data


def _omnireward_scores(model_dir, path, tmp_path) -> list[float]:
    """What `omnireward score` writes: reward1, reward2 of every pair."""
    from omnireward.scoring.bt import score_file

    out = tmp_path / "scores.jsonl"
    score_file(path, model_dir, out, device="cpu")
    return [
        r for line in out.read_text().splitlines() for r in (json.loads(line)["reward1"], json.loads(line)["reward2"])
    ]


def _messages(path) -> list[list[dict]]:
    from omnireward.data.datamodule import load_records

    return [
        reward_messages(rec.prompt, resp.text, rec.criteria)
        for rec in load_records(path)
        for resp in (rec.response1, rec.response2)
    ]


@torch.no_grad()
def _hf_scores(model, tok, messages: list[list[dict]]) -> list[float]:
    return [
        float(model(**tok.apply_chat_template(m, tokenize=True, return_dict=True, return_tensors="pt")).logits[0, 0])
        for m in messages
    ]


def test_text_export_is_a_plain_transformers_reward_model(text_model, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir, data = text_model
    out = export(model_dir, tmp_path / "hf")
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.config.num_labels == 1
    ours = _omnireward_scores(model_dir, data["test"], tmp_path)
    messages = _messages(data["test"])
    theirs = _hf_scores(model, tok, messages)
    assert np.abs(np.array(ours) - np.array(theirs)).max() < 1e-4
    assert np.std(ours) > 1e-3  # a trained head, not a constant

    # right-padded batches: transformers' last-non-pad-token pick reads the token omnireward reads
    texts = [tok.apply_chat_template(m, tokenize=False) for m in messages[:8]]
    batch = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # the batch really is padded
    last = batch["attention_mask"].sum(-1) - 1
    assert all(int(batch["input_ids"][i, last[i]]) != model.config.pad_token_id for i in range(len(texts)))
    with torch.no_grad():
        padded = model(**batch).logits[:, 0].numpy()
    assert np.abs(padded - np.array(ours[:8])).max() < 1e-4

    # SmolLM2 pads with <|im_end|>; its template ends each turn with <|im_end|> and a newline
    assert tok.pad_token == "<|im_end|>" and texts[0].endswith("<|im_end|>\n")
    manifest = json.loads((out / "omnireward_export.json").read_text())
    assert manifest["lora"]["merged"] is True and manifest["self_check_max_abs_diff"] < 1e-4
    assert json.loads((out / "reward_stats.json").read_text()) == {"mean": 0.25, "std": 1.5, "n": 64}


def test_pad_token_is_moved_off_a_template_that_ends_with_it(text_model, tmp_path):
    """A chat template ending in the pad token would make transformers read an earlier token."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir, data = text_model
    changed = tmp_path / "model"
    shutil.copytree(model_dir, changed)
    template = changed / "lm" / "chat_template.jinja"
    template.write_text(template.read_text().replace("'<|im_end|>' + '\n'", "'<|im_end|>'"))
    assert template.read_text() != (model_dir / "lm" / "chat_template.jinja").read_text()
    out = export(changed, tmp_path / "hf")
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.apply_chat_template(_messages(data["test"])[0], tokenize=False).endswith("<|im_end|>")
    assert tok.pad_token != "<|im_end|>"
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.pad_token_id == tok.pad_token_id
    ours = _omnireward_scores(changed, data["test"], tmp_path)
    assert np.abs(np.array(ours[:10]) - np.array(_hf_scores(model, tok, _messages(data["test"])[:10]))).max() < 1e-4


def test_no_merge_lora_keeps_base_weights_and_a_peft_adapter(text_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir, data = text_model
    out = export(model_dir, tmp_path / "hf", merge_lora=False)
    assert (out / "adapter" / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(out)
    messages = _messages(data["test"])[:12]
    base = AutoModelForSequenceClassification.from_pretrained(out).eval()
    base_scores = _hf_scores(base, tok, messages)
    with_adapter = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    ours = _omnireward_scores(model_dir, data["test"], tmp_path)[:12]
    assert np.abs(np.array(ours) - np.array(_hf_scores(with_adapter, tok, messages))).max() < 1e-4
    assert np.abs(np.array(ours) - np.array(base_scores)).max() > 1e-3  # the adapter carries training


def test_bfloat16_export_and_load_exported(text_model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model_dir, data = text_model
    out = export(model_dir, tmp_path / "hf", dtype="bfloat16")
    assert AutoModelForSequenceClassification.from_pretrained(out).dtype == torch.bfloat16
    back = load_exported(out)  # a RewardModel again (float32 compute over the bf16 weights)
    lines = score_lines(back, data["test"])
    ours = _omnireward_scores(model_dir, data["test"], tmp_path)
    theirs = [r for x in lines for r in (x["reward1"], x["reward2"])]
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99


def test_model_card_names_base_data_metrics_and_limits(text_model, tmp_path):
    model_dir, data = text_model
    card = (export(model_dir, tmp_path / "hf") / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    for needle in (
        "tiny random Llama",
        str(data["train"]),
        "0.875",
        "32 training pairs",
        "mean 0.2500",
        "AutoModelForSequenceClassification",
        "## Intended use",
        "## Limits",
        "LoRA r=4",
    ):
        assert needle in card, needle


def test_multimodal_export_round_trips_with_identical_scores(tmp_path):
    from PIL import Image

    from omnireward.config import compose_config
    from omnireward.reward_model import RewardModel
    from omnireward.train import build_module

    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        img = tmp_path / "data" / f"img{i}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(img)
        records.append(
            {
                "id": f"m{i}",
                "prompt": "What is in the picture?",
                "prompt_media": [{"type": "image", "path": img.name}],
                "response1": "noise",
                "response2": f"a cat number {i}",
                "preference": "response1",
            }
        )
    pairs = write_jsonl(tmp_path / "data" / "pairs.jsonl", records)
    cfg = compose_config(
        [
            "backbone=tiny",
            "modality=image",
            "backbone.feature_cache=false",
            "head.dropout=0",
            f"output_dir={tmp_path / 'model'}",
        ]
    )
    model = build_module(cfg).model.eval()
    torch.nn.init.normal_(model.head.score.weight)
    model_dir = model.save_pretrained(tmp_path / "model", cfg, {"mean": 0.0, "std": 1.0, "n": 8})
    out = export(model_dir, tmp_path / "exported")
    manifest = json.loads((out / "omnireward_export.json").read_text())
    assert manifest["format"] == "omnireward" and manifest["modalities"] == ["image"]
    assert (out / "README.md").exists() and (out / "reward_stats.json").exists()
    before = score_lines(RewardModel.from_pretrained(model_dir)[0], pairs)
    after = score_lines(load_exported(out), pairs)
    assert [x["margin"] for x in before] == [x["margin"] for x in after]
    assert len({round(x["margin"], 6) for x in before}) > 1  # the image changes the score
    with pytest.raises(ConfigError, match="text backbones only"):
        # a multimodal model has nothing to un-merge into a transformers classifier
        (model_dir / "lm" / "adapter").mkdir()
        (model_dir / "lm" / "adapter" / "adapter_config.json").write_text("{}")
        export(model_dir, tmp_path / "again", merge_lora=False)


def test_cli_export_prints_one_line_per_result(text_model, tmp_path):
    import typer

    from omnireward.cli.export_cmd import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root():
        pass

    model_dir, _ = text_model
    res = CliRunner().invoke(app, ["export", "--model", str(model_dir), "--out", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("exported LlamaForSequenceClassification") and len(lines) == 3
    bad = CliRunner().invoke(
        app, ["export", "--model", str(model_dir), "--out", str(tmp_path / "y"), "--dtype", "int3"]
    )
    assert isinstance(bad.exception, ConfigError) and "dtype" in str(bad.exception)


def test_hf_causal_lm_backbone_exports_too(tmp_path):
    """An HF-native text backbone (a tiny Qwen2 with its own ChatML template), trained with LoRA."""
    tiny_hf = pytest.importorskip("_tiny_hf")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from omnireward.config import compose_config
    from omnireward.data.datamodule import load_records
    from omnireward.train import build_module

    data = text_set(tmp_path / "data", n_train=16, n_val=4, n_test=8)
    overrides = [
        o
        for o in tiny_overrides(data, tmp_path / "model", "head.dropout=0", "peft=lora", "peft.r=4")
        if not o.startswith("backbone")
    ]
    cfg = compose_config(
        overrides
        + ["backbone=hf", f"backbone.name_or_path={tiny_hf.save_text_lm(tmp_path / 'src')}", "backbone.dtype=float32"]
    )
    module = build_module(cfg)
    fit_steps(module, load_records(data["train"]), steps=2, lr=5e-3)
    model_dir = module.model.save_pretrained(tmp_path / "model", cfg)
    out = export(model_dir, tmp_path / "hf")
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert type(model).__name__ == "Qwen2ForSequenceClassification"
    tok = AutoTokenizer.from_pretrained(out)
    ours = _omnireward_scores(model_dir, data["test"], tmp_path)
    assert np.abs(np.array(ours) - np.array(_hf_scores(model, tok, _messages(data["test"])))).max() < 1e-4
