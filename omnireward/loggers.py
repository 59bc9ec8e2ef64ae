"""Training loggers from the `logger` config group: every entry of the group is a Lightning logger
given by `_target_` (conf/logger/<backend>.yaml, one file per backend).

    logger=tensorboard   metrics.csv + TensorBoard events in OUTPUT/tensorboard (default)
    logger=wandb         ... + a W&B run (offline with WANDB_MODE=offline), files in OUTPUT/wandb
    logger=mlflow        ... + an MLflow run, in OUTPUT/mlflow.db (SQLite) unless tracking_uri is set
    logger=csv           metrics.csv only (TensorBoard too when it happens to be installed)

Besides the logger's own options an entry may say `_requires_: PACKAGE` (when that package is
missing, the run stops before training with one line saying what to install) and `_optional_: true`
(left out instead when the package is missing). `logger.NAME=false` leaves entry NAME out; a
user's own file (`--config-dir DIR` with DIR/logger/NAME.yaml) adds any other logger the same way.
`${output_dir}` in an entry is the run's own folder.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from omnireward.config import build
from omnireward.errors import DependencyError


def require(package: str, what: str) -> None:
    """Raise DependencyError (one line) when `package` cannot be imported."""
    try:
        importlib.import_module(package)
    except ImportError:
        raise DependencyError(f"{what} needs the {package!r} package: pip install {package}", field="logger") from None


def _installed(package: str) -> bool:
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True


def _entries(cfg: DictConfig, out: Path) -> dict:
    """The group's entries, resolved, with `${output_dir}` read as `out`; other interpolations
    resolve against the config the group belongs to."""
    root = cfg._get_root()
    whole = OmegaConf.to_container(root, resolve=False) if root is not cfg else {}
    whole["output_dir"] = str(out)
    whole["_loggers_"] = OmegaConf.to_container(cfg, resolve=False)
    return OmegaConf.to_container(OmegaConf.create(whole)["_loggers_"], resolve=True)


def build_loggers(cfg: DictConfig, out: Path) -> list:
    """The Lightning loggers `cfg` (the composed `logger` group) lists, writing under `out`."""
    loggers = []
    for name, spec in _entries(cfg, out).items():
        if spec is None or spec is False:
            continue
        packages = spec.pop("_requires_", None) or []
        packages = [packages] if isinstance(packages, str) else list(packages)
        if spec.pop("_optional_", False) and not all(map(_installed, packages)):
            continue
        for package in packages:
            require(package, f"logger={name}")
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
