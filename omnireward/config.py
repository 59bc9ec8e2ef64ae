"""Compose the packaged Hydra configs (compose API) with the user's overrides."""

from __future__ import annotations

from importlib import resources

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from omnireward.errors import ConfigError

GROUPS = ("model", "modality", "backbone", "data", "trainer", "peft", "logger")


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The composed and resolved-on-access config; bad overrides raise ConfigError."""
    try:
        with initialize_config_module(config_module="omnireward.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        OmegaConf.resolve(cfg)
        return cfg
    except (HydraException, OmegaConfBaseException) as e:
        msg = str(e).strip().splitlines()[0]
        raise ConfigError(f"bad config override: {msg}") from None


def build(cfg, **kwargs):
    """`hydra.utils.instantiate`, but a user error raised inside comes out as itself (one line)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from omnireward.errors import OmniRewardError

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
    return {g: sorted(p.name[:-5] for p in root.joinpath(g).iterdir() if p.name.endswith(".yaml"))
            for g in GROUPS}
