"""Multi-device training: Lightning strategies from `cfg.trainer`, gradient checkpointing, distributed gathers."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from omnireward.config import build
from omnireward.errors import ConfigError, DependencyError

# Class-name suffixes of the blocks FSDP shards one by one: every HF decoder layer is named
# `*DecoderLayer` (Llama, Qwen2, Qwen2.5-VL/Omni, Mistral, Gemma, ...); everything else
# (embeddings, encoders, projectors, reward head) stays in the root unit.
DECODER_LAYERS = ("DecoderLayer",)

# Lightning's launcher starts ranks > 0 by re-running the command line; they inherit this
# variable, so every rank writes into the folder the launching process chose.
RUN_DIR_ENV = "OMNIREWARD_RUN_DIR"


def build_strategy(cfg_trainer) -> dict:
    """Lightning Trainer keyword arguments from `cfg.trainer`; a `strategy` component becomes a Strategy.

    `strategy` is a Lightning name (`auto`, `ddp`, `fsdp`, `deepspeed_stage_2`, ...) or a mapping with a
    `_target_` (e.g. `omnireward.strategies.fsdp_strategy`) and its constructor's options.
    """
    kwargs = (
        OmegaConf.to_container(cfg_trainer, resolve=True) if isinstance(cfg_trainer, DictConfig) else dict(cfg_trainer)
    )
    strategy = kwargs.get("strategy", "auto")
    if isinstance(strategy, str):
        if "deepspeed" in strategy:
            require_deepspeed()
        return kwargs
    if not isinstance(strategy, dict) or "_target_" not in strategy:
        raise ConfigError(
            f"must be a strategy name or a mapping with a _target_, got {strategy!r}", field="trainer.strategy"
        )
    kwargs["strategy"] = build(strategy)
    return kwargs


def ddp_strategy(find_unused_parameters: bool = True, **options):
    """DDP; unused-parameter search stays on because a batch may lack a modality (its projector gets no grad)."""
    from lightning.pytorch.strategies import DDPStrategy
    from torch.nn.parallel import DistributedDataParallel

    _check_options("ddp", options, DDPStrategy, DistributedDataParallel)
    return DDPStrategy(find_unused_parameters=find_unused_parameters, **options)


def fsdp_strategy(wrap_layers: list[str] | tuple[str, ...] = DECODER_LAYERS, **options):
    """FSDP that shards each module whose class name ends with one of `wrap_layers` as its own unit."""
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel

    _check_options("fsdp", options, FSDPStrategy, FullyShardedDataParallel)
    return FSDPStrategy(auto_wrap_policy=wrap_policy(wrap_layers), **options)


def deepspeed_strategy(**options):
    """DeepSpeed (`stage`, `offload_optimizer`, `offload_parameters`, ... as Lightning's DeepSpeedStrategy)."""
    require_deepspeed()
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return DeepSpeedStrategy(**options)


def _check_options(name: str, options: dict, *classes) -> None:
    # Lightning hands unknown keywords on to the torch wrapper, which would fail only once fit starts.
    known = {p for c in classes for p in inspect.signature(c.__init__).parameters}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) for the {name} strategy: {', '.join(unknown)}", field="trainer.strategy")


def wrap_policy(suffixes: list[str] | tuple[str, ...]):
    """An FSDP auto-wrap policy by class-name suffix: works for any backbone without importing its classes."""
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    return functools.partial(lambda_auto_wrap_policy, lambda_fn=functools.partial(_name_ends_with, tuple(suffixes)))


def _name_ends_with(suffixes: tuple[str, ...], module: torch.nn.Module) -> bool:
    return type(module).__name__.endswith(suffixes)


def require_deepspeed() -> None:
    if importlib.util.find_spec("deepspeed") is None:
        raise DependencyError(
            "trainer=deepspeed needs the deepspeed package (pip install deepspeed, on a machine "
            "with CUDA); trainer=fsdp shards the model without it"
        )


def enable_gradient_checkpointing(backbone: torch.nn.Module) -> list[str]:
    """Recompute the activations of every HF model in `backbone` in the backward pass; returns their names.

    Non-reentrant checkpointing, so it composes with DDP's unused-parameter search, frozen
    embeddings (LoRA) and FSDP.
    """
    from transformers import PreTrainedModel

    done: list[str] = []
    for name, m in backbone.named_modules():
        if any(name.startswith(d + ".") or d == "" for d in done):
            continue  # inside a model already switched on
        if isinstance(m, PreTrainedModel) and m.supports_gradient_checkpointing:
            checkpoint_layers(m)
            done.append(name)
    if not done:
        raise ConfigError(
            f"{type(backbone).__name__} has no model that supports gradient checkpointing",
            field="backbone.gradient_checkpointing",
        )
    return done


def is_sharded(trainer) -> bool:
    """Whether the trainer's strategy holds the model in shards (FSDP, DeepSpeed)."""
    return type(trainer.strategy).__name__ in ("FSDPStrategy", "DeepSpeedStrategy")


def checkpoint_layers(model) -> None:
    """Non-reentrant gradient checkpointing of an HF model's layers. transformers also makes the
    token embeddings' output require grad (reentrant checkpointing needs it); non-reentrant does
    not, and that hook would build a graph through frozen layers (backbone.train_layers) — removed."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable({"use_reentrant": False})
    if hasattr(model, "disable_input_require_grads"):
        model.disable_input_require_grads()
    model.config.use_cache = False  # a KV cache is useless in training and conflicts with recomputation


def shared_output_dir(out: str | Path) -> Path:
    """The output folder of this run, the same on every rank that Lightning's launcher started.

    A default `output_dir` holds a timestamp that each re-run rank would compute anew; under
    torchrun or srun every process is started by the launcher, so pass `output_dir` explicitly.
    """
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and int(os.environ.get("LOCAL_RANK", "0")) > 0:
        return Path(inherited)
    os.environ[RUN_DIR_ENV] = str(out)
    return Path(out)


def gather_rows(rows: list) -> list:
    """Every rank's `rows` concatenated (rank 0's first), on every rank; a copy of `rows` in one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(rows)
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, rows)
    return [r for part in parts for r in part]


def file_checkpoint_io():
    """Lightning's checkpoint writer, straight to the file: Lightning's own serialises the whole
    checkpoint (weights and optimiser state) into memory and then copies it out, holding it twice —
    the run's peak memory. This one writes to `<path>.tmp` and renames it, so a killed save still
    leaves the previous checkpoint whole; remote paths keep Lightning's writer."""
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class FileCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            if storage_options is not None or "://" in str(path):
                return super().save_checkpoint(checkpoint, path, storage_options)
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            try:
                with open(tmp, "wb") as f:
                    torch.save(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    return FileCheckpointIO()
