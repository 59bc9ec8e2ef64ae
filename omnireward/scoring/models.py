"""Find the model to score with: an explicit folder, or the newest trained run."""

from __future__ import annotations

from pathlib import Path

from omnireward.errors import ModelError

DEFAULT_RUNS = Path("runs")


def latest_model(runs: Path = DEFAULT_RUNS) -> Path:
    """The most recently trained model folder under `runs/`."""
    # deferred: resolving a model path loads no torch (the CLI imports this module)
    from omnireward.model_folder import CONFIG_NAME

    found = sorted((p.parent for p in runs.glob(f"*/{CONFIG_NAME}")), key=lambda p: (p / CONFIG_NAME).stat().st_mtime)
    if not found:
        raise ModelError(
            f"no trained model under {runs}/; train one with `omnireward train modality=text` or pass --model DIR"
        )
    return found[-1]


def resolve_model(model: str | None) -> Path | str:
    if model is None:
        return latest_model()
    p = Path(model)
    if p.exists():
        return p
    if model.count("/") == 1 and not model.startswith((".", "/")):
        return model  # a hub id; loaders decide whether it is cached locally
    raise ModelError(f"model folder {model} does not exist")
