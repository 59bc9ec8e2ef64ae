"""Training loggers from the `logger` config group: metrics.csv, TensorBoard (the default), and
any backend the group names by `_target_` (Weights & Biases, MLflow).

    logger=tensorboard   metrics.csv + TensorBoard events in OUTPUT/tensorboard (default)
    logger=wandb         ... + a W&B run (offline with WANDB_MODE=offline), files in OUTPUT/wandb
    logger=mlflow        ... + an MLflow run, in OUTPUT/mlflow.db (SQLite) unless tracking_uri is set
    logger=csv           metrics.csv only (TensorBoard too when it happens to be installed)

A backend's key under `backends` is the package it needs; when that package is missing, the run
stops before training with one line saying what to install.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

from omnireward.config import build
from omnireward.errors import DependencyError


def require(package: str, what: str) -> None:
    """Raise DependencyError (one line) when `package` cannot be imported."""
    try:
        importlib.import_module(package)
    except ImportError:
        raise DependencyError(f"{what} needs the {package!r} package: pip install {package}", field="logger") from None


def build_loggers(cfg: DictConfig, out: Path) -> list:
    """The Lightning loggers `cfg` (the composed `logger` group) asks for, writing under `out`."""
    loggers = []
    if cfg.get("csv", True):
        loggers.append(CSVLogger(out, name="", version=""))
    tb = cfg.get("tensorboard", "auto")
    if tb:
        try:
            importlib.import_module("tensorboard")
        except ImportError:
            if tb is True:
                require("tensorboard", "logger.tensorboard=true")
        else:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    for package, spec in (cfg.get("backends") or {}).items():
        require(package, f"logger={package}")
        loggers.append(build(spec))
    return loggers


class _DropMessages(logging.Filter):
    """Drops log records whose message contains one of `needles`."""

    def __init__(self, *needles: str):
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.needles)


_ADVERT = _DropMessages("try installing [litlogger]")


def quiet_third_party(out: Path) -> None:
    """Keep what a training log shows to what concerns the run. Each filter names one message at the
    place it is raised; every other warning and message passes.

    - Lightning's logger connector advertises its cloud logger on every run (an info record of
      `lightning.pytorch.utilities.rank_zero`).
    - Lightning's CSV logger warns that the output folder "exists and is not empty": the folder
      holds this run's own files (its config, the mixture). The warning stays when a previous
      run's metrics.csv is there, since that file is overwritten.
    - Lightning's pytree helper uses `LeafSpec`, which torch deprecated (a warning about
      Lightning's code, not the user's).
    """
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _ADVERT not in rank_zero.filters:
        rank_zero.addFilter(_ADVERT)
    if not (Path(out) / "metrics.csv").exists():
        warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
