"""`omnireward train`: compose config → build model and data → Lightning fit → save a model folder."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, open_dict
from safetensors.torch import load_file, save_file

from omnireward.cache import cache_dir
from omnireward.config import build
from omnireward.data.demo import build_demo
from omnireward.errors import ConfigError
from omnireward.loggers import build_loggers, quiet_third_party
from omnireward.objectives import objective
from omnireward.progress import PairsProgressBar
from omnireward.scoring.bt import reward_records
from omnireward.strategies import RUN_DIR_ENV, build_strategy, file_checkpoint_io, is_sharded, shared_output_dir

SUMMARY_NAME = "train_summary.json"
MIXTURE_NAME = "data_mixture.json"
ENSEMBLE_DIR_ENV = "OMNIREWARD_ENSEMBLE_DIR"


def write_mixture(out: Path, dm, seed: int) -> None:
    """The training sources as read: per source its weight, cap and pairs read, kept and drawn per epoch."""
    record = {"seed": seed, "pairs_per_epoch": dm.train_pairs_per_epoch, "sources": dm.mixture}
    (out / MIXTURE_NAME).write_text(json.dumps(record, indent=2))


def demo_data(modality: str, seed: int) -> dict[str, str]:
    """Paths of the demo set of `modality`, built once into the cache."""
    folder = cache_dir("demo", f"{modality}-seed{seed}")
    if not (folder / "test.jsonl").exists():
        build_demo(modality, folder, seed=seed)
    return {s: str(folder / f"{s}.jsonl") for s in ("train", "val", "test")}


class KeepBest(Callback):
    """Keeps the weights of the best epoch by `val/acc` on disk; resumable with the run. On a tie the
    later epoch wins: equal held-out accuracy after more training (a flat val/acc, as a judge's at
    chance, would otherwise keep the barely trained first epoch)."""

    def __init__(self, path: Path):
        self.path = path
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        acc = trainer.callback_metrics.get("val/acc")
        if acc is None:
            return
        acc = float(acc)
        if self.best is None or acc >= self.best:
            self.best, self.best_epoch = acc, trainer.current_epoch
            state = full_state(trainer)  # a collective under FSDP/DeepSpeed: every rank calls it
            if trainer.is_global_zero:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                save_file(state, str(self.path))

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


def full_state(trainer) -> dict:
    """The reward model's full weights on rank 0 (gathered from shards under FSDP/DeepSpeed)."""
    state = trainer.strategy.lightning_module_state_dict()
    # clone(): tied tensors (embeddings / LM head) must not share storage in a safetensors file
    return {k[len("model.") :]: v.detach().cpu().clone() for k, v in state.items() if k.startswith("model.")}


def quant_kwargs(cfg: DictConfig) -> dict:
    """The backbone builder's `quantization` argument from the `quant` component (conf/quant/)."""
    if not cfg.get("quant"):
        return {}
    if cfg.get("peft") and "QLoRA" in str(cfg.peft.get("_target_", "")):
        raise ConfigError(
            "peft=qlora quantises the LM itself; use it with quant=none, or quant=4bit with peft=lora", field="quant"
        )
    return {"quantization": build(cfg.quant)}


def build_module(cfg: DictConfig):
    """Backbone (+ PEFT) → reward model (backbone + head) or judge (backbone) → LightningModule,
    each built from its config component."""
    if cfg.get("peft") and cfg.backbone.get("train_layers") is not None:
        raise ConfigError(
            "choose one way to train part of the LM: peft adapts every layer, train_layers trains "
            "the top layers in full",
            field="backbone.train_layers",
        )
    backbone = build(cfg.backbone, **quant_kwargs(cfg))
    if cfg.get("peft"):
        build(cfg.peft).apply(backbone)
    model = objective(cfg).build(backbone, cfg)
    model.train()  # HF loaders return eval-mode LMs; frozen encoders keep eval mode themselves
    return build(cfg.model, model=model)


def ensemble_size(cfg: DictConfig) -> int:
    """`ensemble.members` (1 when unset)."""
    k = (cfg.get("ensemble") or {}).get("members", 1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"must be a whole number of 1 or more, got {k!r}", field="ensemble.members")
    return k


def member_config(cfg: DictConfig, k: int, out: Path) -> DictConfig:
    """Member k's config: seed + k (and the backbone's seed, which seeds a random LM), its own
    folder out/member-k, and with ensemble.shuffle_data its own data order (data.seed + k)."""
    member = copy.deepcopy(cfg)
    with open_dict(member):
        member.seed = int(cfg.seed) + k
        if member.backbone.get("seed") is not None:
            member.backbone.seed = int(cfg.backbone.seed) + k
        if cfg.ensemble.get("shuffle_data") and member.data.get("seed") is not None:
            member.data.seed = int(cfg.data.seed) + k
        member.output_dir = str(out / f"member-{k}")
        member.ensemble.member = k
    return member


def train_ensemble(cfg: DictConfig, callbacks: list[Callback] | None = None) -> Path:
    """`ensemble.members=K`: K members trained one after the other with seeds seed + k (each run is
    an ordinary `train`, so the trainer's strategy spreads it over the devices), in
    output_dir/member-k, and output_dir/ensemble.json naming them; returns output_dir."""
    k = ensemble_size(cfg)
    if cfg.get("ckpt_path"):
        raise ConfigError(
            "resumes one run; an ensemble's members are separate runs (resume one member with its own "
            "output_dir and ckpt_path)",
            field="ckpt_path",
        )
    # Ranks a launcher re-ran inherit the folder (a default output_dir holds a timestamp), and each
    # member's folder is named to every rank before its run, so `shared_output_dir` agrees there.
    inherited = os.environ.get(ENSEMBLE_DIR_ENV)
    if inherited and int(os.environ.get("LOCAL_RANK", "0")) > 0:
        out = Path(inherited)
    else:
        out = Path(cfg.output_dir)
        os.environ[ENSEMBLE_DIR_ENV] = str(out)
    members = []
    for i in range(k):
        member = member_config(cfg, i, out)
        os.environ[RUN_DIR_ENV] = member.output_dir
        train_one(member, callbacks)
        members.append(
            {"folder": f"member-{i}", "seed": int(member.seed), "data_seed": int(member.data.get("seed", member.seed))}
        )
    if rank_zero_only.rank == 0:
        manifest = {
            "members": [m["folder"] for m in members],
            "seeds": [m["seed"] for m in members],
            "data_seeds": [m["data_seed"] for m in members],
            "shuffle_data": bool(cfg.ensemble.get("shuffle_data")),
        }
        (out / "ensemble.json").write_text(json.dumps(manifest, indent=2))
    return out


def train(cfg: DictConfig, callbacks: list[Callback] | None = None) -> Path:
    """Run one training job; returns the output folder (a model folder `omnireward score` reads).
    With `ensemble.members=K` > 1, K of them (`train_ensemble`); returns the folder holding them.

    `callbacks` are extra Lightning callbacks (after the built-in ones)."""
    if ensemble_size(cfg) > 1:
        return train_ensemble(cfg, callbacks)
    return train_one(cfg, callbacks)


def train_one(cfg: DictConfig, callbacks: list[Callback] | None = None) -> Path:
    """One model: the body of `train`."""
    trainer_kwargs = build_strategy(cfg.trainer)  # bad strategy options fail before anything loads
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # Ranks started by Lightning's launcher share rank 0's folder (the default name has a timestamp).
    out = shared_output_dir(cfg.output_dir)
    with open_dict(cfg):
        cfg.output_dir = str(out)
    out.mkdir(parents=True, exist_ok=True)
    loggers = build_loggers(cfg.logger, out)  # a missing logger package fails before the model loads
    if not cfg.data.train:
        with open_dict(cfg):
            for k, v in demo_data(cfg.modality.name, cfg.seed).items():
                if not cfg.data.get(k):
                    cfg.data[k] = v
    dm = build(cfg.data)  # a bad data.train mixture entry fails here, before the model loads
    module = build_module(cfg)
    dm.needs = module.data_needs()  # its collate, the records it trains on, what each must carry
    dm.setup("fit")  # reads the data and checks it against those needs (file and line of a failure)
    if rank_zero_only.rank == 0:
        write_mixture(out, dm, cfg.seed)

    best_path = out / "checkpoints" / "best.safetensors"
    keep_best = KeepBest(best_path)
    callbacks = [
        ModelCheckpoint(
            dirpath=out / "checkpoints", filename="last", save_top_k=1, monitor=None, enable_version_counter=False
        ),
        keep_best,
        PairsProgressBar(),
        *(callbacks or []),
    ]
    strategy = trainer_kwargs.get("strategy", "auto")
    if isinstance(strategy, str) and "deepspeed" not in strategy and not trainer_kwargs.get("plugins"):
        # DeepSpeed writes its own; a strategy built from a mapping (conf/trainer/fsdp.yaml) keeps Lightning's
        trainer_kwargs["plugins"] = [file_checkpoint_io()]
    quiet_third_party(out)
    trainer = L.Trainer(
        default_root_dir=str(out), callbacks=callbacks, logger=loggers, enable_model_summary=False, **trainer_kwargs
    )
    t0 = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
    seconds = time.time() - t0

    summary = {
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "train_seconds": seconds,
        "train_pairs": len(dm.splits["train"]),
        "train_pairs_per_epoch": dm.train_pairs_per_epoch,
        "val_pairs": len(dm.splits.get("val", [])),
    }
    sharded = is_sharded(trainer)
    final = full_state(trainer) if sharded and keep_best.best is None else None  # collective
    if keep_best.best is not None:
        summary.update(best_epoch=keep_best.best_epoch, best_val_acc=keep_best.best)
        rank_zero_info(f"keeping epoch {keep_best.best_epoch} for scoring: best val/acc {keep_best.best:.4f}")
    if trainer.is_global_zero:
        # Under sharding the trained module holds shards only: rebuild a whole one to save.
        model = build_module(cfg).model if sharded else module.model
        if keep_best.best is not None and best_path.exists():
            model.load_state_dict(load_file(str(best_path)))
        elif final is not None:
            model.load_state_dict(final)
        model = model.eval()
        # A generative judge has no scalar head: no reward statistics for it.
        stats = (
            reward_stats(model, dm.splits["train"], batch_size=cfg.data.eval_batch_size)
            if objective(cfg).reward_head
            else None
        )
        model.save_pretrained(out, cfg, stats)
        (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
    trainer.strategy.barrier()
    return out


def reward_stats(model, pairs, batch_size: int = 16) -> dict:
    """Mean and std of rewards over the training responses (for normalising rewards downstream)."""
    lines = reward_records(model, pairs, batch_size, show_progress=False)
    r = torch.tensor([v for x in lines for v in (x["rewards"] if "rewards" in x else (x["reward1"], x["reward2"]))])
    return {"mean": float(r.mean()), "std": float(r.std()), "n": int(r.numel())}
