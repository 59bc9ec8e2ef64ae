"""Loading what judges: the backbone (a model folder, an HF checkpoint or the embedded LM) and the
template (named, from a YAML file, or the one a judge folder was trained with)."""

from __future__ import annotations

from pathlib import Path

from omnireward.errors import ConfigError, ModelError
from omnireward.judge.templates import JudgeTemplate, load_template
from omnireward.objectives import JUDGE

JUDGES = ("omni", "think", "flex")


def load_judge_backbone(model_dir: str | Path | None, *, device: str = "auto", encoders=()):
    """The backbone that judges: a trained model folder (any objective), an HF checkpoint (folder or
    hub id: causal LMs and the multimodal families of backbone=hf), or, with no model, the embedded
    instruct LM (text only unless `encoders` are given)."""
    # Deferred: the model-loading stack (config building, safetensors, quantisation) loads only when
    # a judge is built, not for callers that only need the templates or the sampling settings.
    from omnireward import model_folder
    from omnireward.backbones.build import build_modular
    from omnireward.scoring.load import pick_device

    if model_dir is None:
        bb = build_modular(lm="embedded", encoders=list(encoders))
    elif model_folder.is_model_folder(model_dir):
        bb = model_folder.load(model_dir)[0].backbone
    elif Path(model_dir).exists() and not (Path(model_dir) / "config.json").exists():
        raise ModelError(f"{model_dir} is neither an omnireward model folder nor a Hugging Face model folder")
    elif encoders:  # a causal LM with the embedded encoders in front of it
        bb = build_modular(lm=str(model_dir), encoders=list(encoders))
    else:
        from omnireward.backbones.hf import build_hf  # deferred: transformers loads only for an HF checkpoint

        bb = build_hf(str(model_dir))
    return bb.to(pick_device(device)).eval()


def trained_judge(model_dir: str | Path | None) -> JudgeTemplate | None:
    """The judge template a judge folder (objective: judge) was trained with; None for other folders and LMs."""
    from omnireward import model_folder  # deferred: config building and safetensors load only for a folder

    if model_dir is None or not model_folder.is_model_folder(model_dir):
        return None
    folder = model_folder.open_folder(model_dir)
    if folder.objective is not JUDGE:
        return None
    cfg = folder.cfg
    return model_folder.judge_template_of(cfg) or load_template(cfg.get("model", {}).get("judge", "omni"))


def template_for(judge, model_dir) -> JudgeTemplate:
    """The template to judge with: a JudgeTemplate as given, a name or YAML path loaded, or (None) a
    judge folder's own template, else omni."""
    if isinstance(judge, JudgeTemplate):
        return judge
    if judge is None:
        own = trained_judge(model_dir)
        return own if own is not None else load_template("omni")
    if judge not in JUDGES and not str(judge).endswith((".yaml", ".yml")):
        raise ConfigError(f"unknown judge {judge!r} (expected one of {', '.join(JUDGES)})", field="--judge")
    return load_template(judge)
