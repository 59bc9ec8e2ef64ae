"""A trained model folder: what it is, how it is written and how it is loaded back.

    omnireward.yaml        the resolved training config; `objective` says what the folder is
    lm/ or hf/             the backbone's language model as a plain transformers folder
    modules.safetensors    everything else (head, projectors, trainable encoder parts)
    reward_stats.json      reward mean/std on the training responses (reward and joint folders)

`objective` is `reward` (a BT head: score, serve, export), `joint` (BT head trained beside an LM
loss on critiques: scored like `reward`) or `judge` (a generative judge: `score` judges with the
folder's template; `serve` and `export` refuse it in one line).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch import nn

from omnireward.config import build, import_targets, user_modules
from omnireward.errors import ConfigError, ModelError
from omnireward.objectives import CONFIG_NAME, Objective, objective

MODULES_NAME = "modules.safetensors"
STATS_NAME = "reward_stats.json"


@dataclass(frozen=True)
class Folder(os.PathLike):
    """A model folder with its config read once: a command opens it and hands it down, and every
    step that takes a folder path takes it too (it is a path-like)."""

    path: Path
    cfg: DictConfig

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def objective(self) -> Objective:
        return objective(self.cfg)


def is_model_folder(path: str | Path | Folder) -> bool:
    return isinstance(path, Folder) or (Path(path) / CONFIG_NAME).is_file()


def open_folder(path: str | Path | Folder) -> Folder:
    """The folder at `path` with its config read (a `Folder` is returned as it is)."""
    if isinstance(path, Folder):
        return path
    path = Path(path)
    if not is_model_folder(path):
        raise ModelError(
            f"{path} is not an omnireward model folder (no {CONFIG_NAME}); "
            "train one with `omnireward train` or pass an exported folder"
        )
    cfg = OmegaConf.load(path / CONFIG_NAME)
    _import_user_components(path, cfg)
    return Folder(path, cfg)


def _import_user_components(path: Path, cfg: DictConfig) -> None:
    """Import every component the folder names, before anything is read or built: a component of the
    user's (trained with `--config-dir DIR`) is found in DIR when DIR is still there, or on
    PYTHONPATH; an encoder's import also registers its media kind, so records of that kind read.
    A component that cannot be imported stops here in one line that says where it was."""
    dirs = [d for d in cfg.get("config_dirs") or [] if Path(d).is_dir()]
    user_modules(dirs)
    try:
        import_targets(cfg)
    except ConfigError as e:
        trained = list(cfg.get("config_dirs") or [])
        where = (
            f"; it was trained with --config-dir {' '.join(trained)}: put that folder (or the module's) on PYTHONPATH"
            if trained
            else "; put the module that defines it on PYTHONPATH"
        )
        raise ModelError(f"{path}: a component of this model folder does not import: {e.reason}{where}") from None


def read_config(path: str | Path | Folder) -> DictConfig:
    return open_folder(path).cfg


def objective_of(cfg: DictConfig | dict) -> str:
    """What a folder's config says it is: reward | joint | judge."""
    return objective(cfg).name


def folder_objective(path: str | Path | Folder) -> str:
    return open_folder(path).objective.name


def judge_template_of(cfg: DictConfig | dict):
    """The judge template a judge (or joint) folder was trained with, or None."""
    node = cfg.get("judge")
    return build(node) if node is not None else None


def require_reward_folder(path: str | Path | Folder, command: str) -> None:
    """Stop with one line when `path` is a judge folder, which has no reward head for `command`."""
    if is_model_folder(path) and not open_folder(path).objective.reward_head:
        raise ModelError(
            f"{path} is a generative judge (objective: judge, trained with model=r1): it writes "
            f"critiques and verdicts and has no reward head for `{command}`; score it with "
            f"`omnireward score PAIRS.jsonl --model {path}` (it judges with its own template)"
        )


def save(model: nn.Module, out: str | Path, cfg: DictConfig | dict, stats: dict | None = None) -> Path:
    """Write `model` (a RewardModel or JudgeModel) and its config into the folder `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.backbone.save(out)
    elsewhere = "backbone." + model.backbone.lm_prefix
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith(elsewhere)}
    save_file(state, str(out / MODULES_NAME))
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg)
    objective(cfg)  # a config that does not say what it trains is a bug, not a folder to write
    OmegaConf.save(cfg, out / CONFIG_NAME)
    if stats is not None:
        (out / STATS_NAME).write_text(json.dumps(stats, indent=2))
    return out


def build_backbone(cfg: DictConfig, path: Path, **overrides):
    """The saved backbone, rebuilt by its builder from `path` (never from where it was first loaded)."""
    bcfg = OmegaConf.to_container(cfg.backbone, resolve=True)
    target = bcfg["_target_"]
    module = target.rsplit(".", 1)[0]
    try:
        reload = get_method(module + ".reload_overrides")
    except Exception as e:  # noqa: BLE001 - hydra wraps ImportError/AttributeError in its own types
        raise ModelError(
            f"the backbone builder {target} has no `reload_overrides(path)` beside it in {module} "
            f"({str(e).splitlines()[0]}); without it the saved weights in {path} cannot be "
            "found, so the model is not rebuilt"
        ) from None
    bcfg.update(reload(path))
    bcfg.update(overrides)
    return build(bcfg)


def load(path: str | Path | Folder, **backbone_overrides) -> tuple[nn.Module, DictConfig]:
    """The folder's network as its objective says (RewardModel for reward and joint, JudgeModel for
    judge), eval mode, and its config."""
    folder = open_folder(path)
    path, cfg = folder.path, folder.cfg
    if cfg.get("quant") and "quantization" not in backbone_overrides:  # trained over a quantised LM: reload it so
        backbone_overrides["quantization"] = build(cfg.quant)
    backbone = build_backbone(cfg, path, **backbone_overrides)
    model = folder.objective.build(backbone, cfg)
    state = load_file(str(path / MODULES_NAME))
    missing, unexpected = model.load_state_dict(state, strict=False)
    elsewhere = "backbone." + backbone.lm_prefix
    missing = [k for k in missing if not k.startswith(elsewhere)]
    if missing or unexpected:
        raise ModelError(
            f"{path / MODULES_NAME} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.eval(), cfg


def reward_stats(path: str | Path | Folder) -> dict | None:
    f = Path(path) / STATS_NAME
    return json.loads(f.read_text()) if f.exists() else None
