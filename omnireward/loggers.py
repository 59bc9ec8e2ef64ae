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
        raise DependencyError(f"{what} needs the {package!r} package: pip install {package}",
                              field="logger") from None


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
