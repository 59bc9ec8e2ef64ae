"""Compose the packaged Hydra configs (compose API) with the user's overrides."""

from __future__ import annotations

import importlib
import inspect
import sys
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from omnireward.errors import ConfigError, OmniRewardError

GROUPS = (
    "model",
    "modality",
    "backbone",
    "head",
    "loss",
    "judge",
    "data",
    "trainer",
    "recipe",
    "peft",
    "quant",
    "logger",
)
# Keys whose value must stay a component (a mapping with `_target_`), chosen through their group.
_COMPONENT_KEYS = {"model.loss": "loss", "model.template": "judge", "head": "head", "loss": "loss"}


def compose_config(overrides: list[str] | tuple[str, ...] = (), config_dirs: list[str | Path] = ()) -> DictConfig:
    """The composed, resolved and checked config; bad overrides or components raise ConfigError.

    `config_dirs` are folders of the user's own config groups (e.g. DIR/loss/my_loss.yaml), searched
    before the packaged ones; each folder is also put on `sys.path`, so a `_target_` in it may name a
    module that sits beside its YAML files. The folders are kept in the config as `config_dirs`, so
    a model folder trained with them finds the same modules when it is loaded (`user_modules`).
    """
    extra, dirs = [], []
    for d in config_dirs:
        d = Path(d).expanduser().resolve()
        if not d.is_dir():
            raise ConfigError(f"config folder {d} does not exist", field="--config-dir")
        user_modules([d])
        dirs.append(str(d))
        extra.append(f"file://{d}")
    if extra:
        overrides = [f"hydra.searchpath=[{','.join(extra)}]", *overrides]
    try:
        with initialize_config_module(config_module="omnireward.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        # The logger group is resolved when its loggers are built: its `${output_dir}` is the run's
        # own folder, which training may still change (an ensemble member's output_dir/member-k).
        late = OmegaConf.to_container(cfg.logger, resolve=False) if "logger" in cfg else None
        OmegaConf.resolve(cfg)
        if late is not None:
            cfg.logger = late
        if dirs:
            with open_dict(cfg):
                cfg.config_dirs = dirs
    except (HydraException, OmegaConfBaseException) as e:
        msg = str(e).strip().splitlines()[0]
        raise ConfigError(f"bad config override: {msg}") from None
    check_components(cfg)
    return cfg


def user_modules(dirs) -> None:
    """Put folders of the user's own components (`--config-dir`) first on `sys.path`, once each, so a
    `_target_` may name a module beside their YAML files."""
    for d in dirs:
        if str(d) not in sys.path:
            sys.path.insert(0, str(d))


def check_components(cfg: DictConfig) -> None:
    """Every `_target_` imports and takes the keys given to it: a bad choice fails here, in one line,
    not at the first training step."""
    for key, group in _COMPONENT_KEYS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not (isinstance(value, DictConfig) and "_target_" in value):
            options = "|".join(group_options().get(group, []))
            raise ConfigError(
                f"{key}={value!r} is not a component; choose one with {group}={options or 'NAME'}", field=key
            )
    check_targets(cfg)


def check_targets(cfg: DictConfig) -> None:
    """Every `_target_` in `cfg` imports and takes the keys given to it (ConfigError otherwise)."""
    _check_node(cfg, "", _check_target)


def import_targets(cfg: DictConfig) -> None:
    """Import every `_target_` in `cfg` (a user's encoder registers its media kind on import);
    ConfigError naming the first that does not import."""
    _check_node(cfg, "", lambda node, path: _import_target(node, path))


def _check_node(node, path: str, visit) -> None:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            visit(node, path)
        for k in node.keys():
            if str(k).startswith("_"):
                continue
            _check_node(node.get(k), f"{path}.{k}" if path else str(k), visit)
    elif isinstance(node, ListConfig):
        for i, v in enumerate(node):
            _check_node(v, f"{path}[{i}]", visit)


def _import_target(node: DictConfig, path: str):
    target = str(node["_target_"])
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            f"cannot import {target!r} ({type(e).__name__}: {str(e).strip().splitlines()[0]})",
            field=f"{path}._target_" if path else "_target_",
        ) from None


def _check_target(node: DictConfig, path: str) -> None:
    obj = _import_target(node, path)
    target = str(node["_target_"])
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in node.keys() if not str(k).startswith("_") and k not in params]
    if unknown:
        raise ConfigError(
            f"{target} takes no option {', '.join(map(str, unknown))} (it takes: {', '.join(params) or 'nothing'})",
            field=path or "config",
        )


def build(cfg, **kwargs):
    """`hydra.utils.instantiate`, but a user error raised inside comes out as itself (one line)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(cfg, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, OmniRewardError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise ConfigError(str(e).strip().splitlines()[0]) from e


def group_options() -> dict[str, list[str]]:
    """Every option of every config group, e.g. {"model": ["bt", "joint", "r1"], ...}."""
    root = resources.files("omnireward.conf")
    return {g: sorted(p.name[:-5] for p in root.joinpath(g).iterdir() if p.name.endswith(".yaml")) for g in GROUPS}
