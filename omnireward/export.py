"""`omnireward export`: a model folder other tools load.

Text backbones become a plain transformers `*ForSequenceClassification` folder (num_labels=1,
the BT head as `score`), whose tokenizer's chat template renders system = criteria, user =
prompt, assistant = response — what TRL's GRPO `reward_funcs`, reward-bench and similar scorers
feed it. Multimodal backbones become safetensors plus `load_exported`. Both get a model card
(`README.md`), `reward_stats.json` and `omnireward_export.json`.
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from pathlib import Path

import torch

from omnireward.backbones.base import conversation
from omnireward.backbones.modular import ModularBackbone
from omnireward.errors import ConfigError, ModelError
from omnireward.heads.bt import BTHead
from omnireward.heads.pooling import reading, reads_default
from omnireward.model_folder import require_reward_folder
from omnireward.quant.bnb import quiet_bnb_logs
from omnireward.reward_model import RewardModel
from omnireward.scoring.load import builder_quantizes

MANIFEST = "omnireward_export.json"
HF_FORMAT = "transformers-sequence-classification"
NATIVE_FORMAT = "omnireward"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ADAPTER_DIR = "adapter"
# Conversations the export checks itself on: with and without criteria, different lengths.
_CHECKS = [
    ("prefer the shorter correct answer", "What is two plus two?", "Four."),
    (None, "Name a colour of the sky at noon on a clear day.", "It is usually a bright blue colour."),
]


def reward_messages(prompt: str, response: str, criteria: str | None = None) -> list[dict]:
    """The chat messages an exported text reward model scores (criteria, when given, as the system turn)."""
    msgs = [{"role": "system", "content": criteria}] if criteria else []
    return msgs + [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def export(model_dir: str | Path, out: str | Path, *, merge_lora: bool = True, dtype: str = "float32") -> Path:
    """Write an exported copy of the model folder `model_dir` to `out`; returns `out`."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown --dtype {dtype!r}; expected {', '.join(DTYPES)}", field="dtype")
    model_dir, out = Path(model_dir), Path(out)
    if out.resolve() == model_dir.resolve():
        raise ConfigError("--out must differ from --model", field="out")
    require_reward_folder(model_dir, "omnireward export")
    # Export full-precision weights even when the backbone config loads its LM quantised.
    model, cfg = RewardModel.from_pretrained(
        model_dir, **({"quantization": None} if builder_quantizes(model_dir) else {})
    )
    adapter = _adapter_dir(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_text_backbone(model.backbone):
        _require_bt_head(model, model_dir)
        manifest = _export_text(model, out, DTYPES[dtype], adapter if not merge_lora else None)
    else:
        if not merge_lora and adapter is not None:
            raise ConfigError(
                "--no-merge-lora is available for text backbones only; multimodal exports "
                "keep the merged LM (the adapter is copied beside it)",
                field="merge_lora",
            )
        manifest = _export_native(model, cfg, model_dir, out, DTYPES[dtype], adapter)
    stats = model.reward_stats(model_dir)
    (out / "reward_stats.json").write_text(json.dumps(stats or {"mean": None, "std": None, "n": 0}, indent=2))
    summary = _read_json(model_dir / "train_summary.json")
    if summary is not None:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    manifest.update(source=str(model_dir), dtype=dtype, lora=_lora_info(adapter, merge_lora))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    (out / "README.md").write_text(model_card(cfg, model_dir, manifest, stats))
    return out


def _require_bt_head(model, model_dir: Path) -> None:
    """A transformers sequence classifier holds one linear `score` on the last token: exactly the bt
    head. Other heads would lose what they predict (σ, per-dimension rewards), so they are refused."""
    if type(model.head) is not BTHead:
        name = type(model.head).__name__
        raise ModelError(
            f"{model_dir} has a {name}: a transformers sequence classifier holds only the bt head's "
            "single score, so its export would lose what this head predicts; score or serve the "
            "folder itself (omnireward score / serve)"
        )
    if not reads_default(model.head):
        layer, pooling = reading(model.head)
        raise ModelError(
            f"{model_dir} has a bt head that reads head.layer={layer} with head.pooling={pooling}: a "
            "transformers sequence classifier reads the last layer at the last token only, so its "
            "export would score differently; score or serve the folder itself (omnireward score / serve)"
        )


def is_text_backbone(backbone) -> bool:
    """Text-only backbones with a causal LM export as plain transformers classifiers."""
    return not backbone.modalities


def load_exported(path: str | Path):
    """A RewardModel from an exported folder (either format); eval mode, on CPU."""
    path = Path(path)
    manifest = _read_json(path / MANIFEST)
    if manifest is None:
        raise ModelError(f"{path} is not an omnireward export (no {MANIFEST})")
    if manifest["format"] == NATIVE_FORMAT:
        return RewardModel.from_pretrained(path)[0]
    return _reward_model_from_classifier(path)


# ---- text: transformers sequence classifier ---------------------------------------------------
def _export_text(model, out: Path, dtype: torch.dtype, adapter: Path | None) -> dict:
    backbone = model.backbone
    tok = copy.deepcopy(backbone.tokenizer)
    pad_id = _pad_token_id(tok)
    tok.pad_token = tok.convert_ids_to_tokens(pad_id)
    tok.padding_side = "right"
    seq = sequence_classifier(backbone.language_model(), model.head.score.weight, pad_id)
    max_diff = _check_same_scores(model, seq, tok)
    if adapter is not None:
        seq = _unmerge(seq, adapter, out / ADAPTER_DIR)
    seq.to(dtype)
    seq.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return {
        "format": HF_FORMAT,
        "architecture": type(seq).__name__,
        "pad_token_id": pad_id,
        "pad_token": tok.pad_token,
        "self_check_max_abs_diff": max_diff,
    }


def sequence_classifier(lm, score_weight: torch.Tensor, pad_token_id: int):
    """A transformers `*ForSequenceClassification` (num_labels=1) holding `lm`'s decoder and `score_weight`."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(lm.config)
    config.num_labels = 1
    config.pad_token_id = pad_token_id
    config.architectures = None
    try:
        seq = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    except ValueError as e:
        raise ModelError(
            f"transformers has no sequence classifier for model_type {config.model_type!r}: {str(e).splitlines()[0]}"
        ) from None
    out_emb = lm.get_output_embeddings()
    head_names = {n for n, m in lm.named_modules() if out_emb is not None and m is out_emb}
    state = {k: v.detach().float() for k, v in lm.state_dict().items() if k.rsplit(".", 1)[0] not in head_names}
    missing, unexpected = seq.load_state_dict(state, strict=False)
    if unexpected or len(missing) != 1:
        raise ModelError(
            f"cannot map {type(lm).__name__} weights onto {type(seq).__name__}: missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}"
        )
    score = seq.get_submodule(missing[0].rsplit(".", 1)[0])
    if tuple(score.weight.shape) != tuple(score_weight.shape):
        raise ModelError(
            f"{missing[0]} has shape {tuple(score.weight.shape)}, the reward head {tuple(score_weight.shape)}"
        )
    with torch.no_grad():
        score.weight.copy_(score_weight.detach().float())
    return seq.eval()


def _pad_token_id(tok) -> int:
    """A special token that never ends a rendered conversation, so transformers' "last non-pad token"
    is the token omnireward reads (SmolLM2 pads with <|im_end|>, which its template follows by a newline)."""
    last = set()
    for criteria, prompt, response in _CHECKS:
        ids = _encode(tok, reward_messages(prompt, response, criteria))["input_ids"]
        last.add(int(ids[0, -1]))
    candidates = [tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.bos_token_id, *tok.all_special_ids]
    for c in candidates:
        if c is not None and int(c) not in last:
            return int(c)
    raise ModelError("every special token of this tokenizer ends some conversation; cannot pick a pad token")


def _encode(tok, messages, **kwargs):
    return tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt", **kwargs)


@torch.no_grad()
def _check_same_scores(model, seq, tok) -> float:
    """Score the check conversations both ways (one by one, and right-padded together); refuse to export
    a classifier that disagrees with omnireward."""
    convs = [conversation(c, [p], [r]) for c, p, r in _CHECKS]
    ours = model.eval()(model.backbone.processor(convs)).float()
    texts = [tok.apply_chat_template(reward_messages(p, r, c), tokenize=False) for c, p, r in _CHECKS]
    batch = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    single = torch.cat([seq(**_encode(tok, reward_messages(p, r, c))).logits[:, 0] for c, p, r in _CHECKS])
    padded = seq(**batch).logits[:, 0]
    diff = max(float((ours - single).abs().max()), float((ours - padded).abs().max()))
    if diff > 1e-3 * max(1.0, float(ours.abs().max())):
        raise ModelError(
            f"the exported classifier scores differ from omnireward's by {diff:.3g} "
            "(tokenisation or last-token pick differ); export with the native format instead"
        )
    return diff


def _unmerge(seq, adapter: Path, out_adapter: Path):
    """Split merged weights back into base weights + the LoRA adapter (saved for peft in `out_adapter`)."""
    quiet_bnb_logs()
    from peft import LoraConfig, PeftModel
    from peft.tuners.lora import LoraLayer

    config = LoraConfig.from_pretrained(str(adapter))
    # No task type: a SEQ_CLS adapter would also carry its own copy of `score`, which is in the base here.
    config.task_type = None
    config.inference_mode = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API renamed in v5
        peft_model = PeftModel.from_pretrained(seq, str(adapter), config=config)
    with torch.no_grad():
        for module in peft_model.modules():
            if isinstance(module, LoraLayer):
                for name in module.active_adapters:
                    module.get_base_layer().weight -= module.get_delta_weight(name)
    peft_model.save_pretrained(str(out_adapter))
    return peft_model.unload()


def _reward_model_from_classifier(path: Path):
    """Rebuild a text RewardModel from an exported classifier folder (its decoder and `score`)."""
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the classifier's `score` is unexpected in a causal LM: read below
    try:
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(level)
    tok = AutoTokenizer.from_pretrained(path)
    model = RewardModel(ModularBackbone(lm, tok, {}), BTHead(lm.config.hidden_size, dropout=0.0))
    score = None
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                if k.endswith("score.weight"):
                    score = st.get_tensor(k)
    if score is None:
        raise ModelError(f"{path} holds no score.weight")
    with torch.no_grad():
        model.head.score.weight.copy_(score.float())
    return model.eval()


# ---- multimodal: the omnireward folder ------------------------------------------------------
def _export_native(model, cfg, model_dir: Path, out: Path, dtype: torch.dtype, adapter: Path | None) -> dict:
    lm = model.backbone.language_model()
    lm.to(dtype)  # only the LM: encoders and projectors stay float32, their inputs are float32
    model.save_pretrained(out, cfg)
    if adapter is not None:
        target = out / adapter.parent.name / ADAPTER_DIR
        shutil.copytree(adapter, target, dirs_exist_ok=True)
    return {
        "format": NATIVE_FORMAT,
        "modalities": list(model.backbone.modalities),
        "loader": "omnireward.export.load_exported",
    }


# ---- model card -----------------------------------------------------------------------------
def _adapter_dir(model_dir: Path) -> Path | None:
    found = sorted(model_dir.glob(f"*/{ADAPTER_DIR}/adapter_config.json"))
    return found[0].parent if found else None


def _lora_info(adapter: Path | None, merge_lora: bool) -> dict | None:
    if adapter is None:
        return None
    cfg = _read_json(adapter / "adapter_config.json") or {}
    targets = cfg.get("target_modules")
    if isinstance(targets, list):  # per-layer names (HF backbones) read better as layer kinds
        targets = sorted({t.rsplit(".", 1)[-1] for t in targets})
    return {"merged": merge_lora, "r": cfg.get("r"), "alpha": cfg.get("lora_alpha"), "target_modules": targets}


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def base_model_name(cfg) -> str:
    b = cfg.get("backbone", {})
    name = b.get("lm") or b.get("name_or_path") or "unknown"
    return {"embedded": "HuggingFaceTB/SmolLM2-135M-Instruct", "tiny": "a tiny random Llama (tests only)"}.get(
        str(name), str(name)
    )


def model_card(cfg, model_dir: Path, manifest: dict, stats: dict | None) -> str:
    """README.md of an export: base model, data, metrics, usage, intended use and limits."""
    base = base_model_name(cfg)
    summary = _read_json(model_dir / "train_summary.json") or {}
    evals = {p.name: _read_json(p) for p in sorted(model_dir.glob("*.summary.json"))}
    data = cfg.get("data", {})
    modalities = manifest.get("modalities") or []
    lines = [
        "---",
        "library_name: " + ("transformers" if manifest["format"] == HF_FORMAT else "omnireward"),
        "tags: [reward-model, bradley-terry, omnireward]",
    ]
    if base.count("/") == 1 and not base.startswith((".", "/")):
        lines.append(f"base_model: {base}")
    loss = ((cfg.get("loss") or {}).get("_target_") or "bt").rsplit(".", 1)[-1]
    lines += [
        "---",
        "",
        f"# Reward model ({cfg.get('objective', 'reward')}, {loss}) on {base}",
        "",
        "A Bradley–Terry reward model trained with omnireward: a scalar head on the hidden state of the "
        "last token of the conversation (system = criteria when given, user = prompt, assistant = "
        "response). Higher is better; only differences between rewards of the same prompt are meaningful.",
        "",
        "## Model",
        "",
        f"- base model: {base}",
        f"- modalities: {', '.join(['text', *modalities])}",
        f"- format: {manifest['format']}"
        + (f" ({manifest['architecture']}, num_labels=1)" if "architecture" in manifest else ""),
        f"- dtype: {manifest.get('dtype', 'float32')}",
    ]
    lora = manifest.get("lora")
    if lora:
        lines.append(
            f"- LoRA r={lora['r']} alpha={lora['alpha']} on {lora['target_modules']}: "
            + ("merged into the weights" if lora["merged"] else "kept separate in `adapter/` (peft)")
        )
    peft = cfg.get("peft") or {}
    if peft.get("_target_"):
        lines.append(f"- trained with {peft['_target_'].rsplit('.', 1)[-1]} (r={peft.get('r')})")
    lines += [
        "",
        "## Data",
        "",
        f"- train: {data.get('train') or 'the omnireward demo set'}",
        f"- validation: {data.get('val') or 'none'}",
    ]
    if summary:
        lines.append(f"- {summary.get('train_pairs', '?')} training pairs, {summary.get('epochs', '?')} epochs")
    lines += ["", "## Metrics", ""]
    if summary and summary.get("best_val_acc") is not None:
        lines.append(f"- validation accuracy (best epoch {summary.get('best_epoch')}): {summary['best_val_acc']:.3f}")
    for name, s in evals.items():
        if s and s.get("accuracy_without_ties") is not None:
            with_ties = s.get("accuracy_with_ties")
            lines.append(
                f"- {name}: accuracy without ties {s['accuracy_without_ties']:.3f}"
                + (f", with ties {with_ties:.3f}" if with_ties is not None else "")
                + f" (n={s.get('n')})"
            )
    if len(lines) and lines[-1] == "":
        lines.append("- no evaluation summaries were found beside the model")
    if stats and stats.get("std"):
        lines += [
            "",
            f"Reward statistics over the training responses: mean {stats['mean']:.4f}, std "
            f"{stats['std']:.4f} (n={stats['n']}); `reward_stats.json` holds them for normalising "
            "rewards, e.g. (r - mean) / std.",
        ]
    lines += ["", "## Usage", ""]
    if manifest["format"] == HF_FORMAT:
        lines += [
            "```python",
            "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            'tok = AutoTokenizer.from_pretrained("PATH")',
            'model = AutoModelForSequenceClassification.from_pretrained("PATH")',
            'messages = [{"role": "system", "content": "CRITERIA (optional)"},',
            '            {"role": "user", "content": "PROMPT"},',
            '            {"role": "assistant", "content": "RESPONSE"}]',
            'inputs = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt")',
            "with torch.no_grad():",
            "    reward = model(**inputs).logits[0, 0].item()",
            "```",
            "",
            "It also works as a TRL GRPO `reward_funcs` entry (conversational prompts) and with "
            "reward-bench style scorers. Pad on the right (the tokenizer's default here): with left "
            "padding transformers numbers positions from the first pad, which changes the scores.",
        ]
        if lora and not lora["merged"]:
            lines += ["", 'With the separate adapter: `peft.PeftModel.from_pretrained(model, "PATH/adapter")`.']
    else:
        lines += [
            "```python",
            "from omnireward.export import load_exported",
            "",
            'model = load_exported("PATH")  # a RewardModel',
            "```",
            "",
            "or `omnireward score pairs.jsonl --model PATH`.",
        ]
    lines += [
        "",
        "## Intended use",
        "",
        "Ranking or scoring candidate responses to the same prompt: as the reward of an RL loop "
        "(GRPO, PPO, best-of-n), for reranking, and for evaluating generators on the tasks it was "
        "trained on.",
        "",
        "## Limits",
        "",
        "- Rewards are comparable only within one prompt (and criteria); their scale is arbitrary.",
        "- Trained on the data above only: expect lower accuracy on other tasks, modalities, languages "
        "and response styles, and on responses longer than those seen in training.",
        "- A reward model can be gamed: an RL policy optimised against it finds responses it scores "
        "high for the wrong reasons (length, style). Check samples and mix in other signals.",
        "- Ties: the BT head gives no tie probability; omnireward eval calibrates a tie threshold from data.",
    ]
    if base.startswith("a tiny"):
        lines.append("- This model's base is a tiny random network: it is a test artefact, not a usable reward model.")
    return "\n".join(lines) + "\n"
