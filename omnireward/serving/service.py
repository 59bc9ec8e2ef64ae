"""A loaded reward model behind a batcher: what the server's routes and the in-process hooks call.

`RewardService.load(model_dir)` loads one replica per (device, worker) with
`omnireward.scoring.load.load_for_scoring`; every replica scores through
`omnireward.scoring.bt.reward_records`, so a record gets the reward that `omnireward score`
writes for it, whichever route or hook it came through.
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from pathlib import Path

from omnireward.data.records import Pair, Record
from omnireward.errors import ConfigError, RequestError
from omnireward.serving.batcher import Batcher, ItemError
from omnireward.serving.chat import parse_chat
from omnireward.serving.media import MediaStore
from omnireward.serving.scale import RewardScale


@dataclass
class BatchSettings:
    """How concurrent requests are merged (see omnireward.serving.batcher)."""

    max_batch_size: int = 32  # sequences per forward pass (a pair is two)
    batch_timeout: float = 0.01  # seconds a waiting record waits for company once a replica is free
    workers_per_device: int = 1  # model replicas (worker threads) per device
    max_queue: int = 16384  # sequences waiting before requests get 503

    def check(self) -> BatchSettings:
        if self.max_batch_size < 1:
            raise ConfigError(f"must be at least 1, got {self.max_batch_size}", field="max-batch-size")
        if self.batch_timeout < 0:
            raise ConfigError(f"must be 0 or more seconds, got {self.batch_timeout}", field="batch-timeout")
        if self.workers_per_device < 1:
            raise ConfigError(f"must be at least 1, got {self.workers_per_device}", field="workers-per-device")
        if self.max_queue < self.max_batch_size:
            raise ConfigError(
                f"must be at least --max-batch-size ({self.max_batch_size}), got {self.max_queue}", field="max-queue"
            )
        return self


class RequestTimeout(Exception):
    """A request was not answered within its time limit."""


def _sequences(record: Record) -> int:
    """Sequences a record puts through the model: one per response (a pair: two)."""
    return 2 if isinstance(record, Pair) else max(1, len(getattr(record, "responses", ())))


class RewardService:
    """Reward model replicas, a shared batcher, the media store, and what /info reports."""

    def __init__(
        self,
        models: list,
        *,
        batching: BatchSettings,
        stats: dict | None = None,
        media: MediaStore | None = None,
        info: dict | None = None,
    ):
        # deferred: torch loads only when a service is built (importing omnireward.serving needs none)
        from omnireward.scoring.bt import reward_records
        from omnireward.scoring.ensemble import EnsembleReplica

        self.models = models
        self.batching = batching.check()
        self.stats = stats
        self.scale = RewardScale.from_stats(stats)
        self.media = media or MediaStore(allow_outside_root=True)
        self.info_fields = info or {}
        self.default_system = default_system_prompt(models[0])

        def runner(model):
            if isinstance(model, EnsembleReplica):  # every member scores the batch, then they are combined
                return lambda records: model.reward_records(records, batching.max_batch_size)
            return lambda records: reward_records(model, records, batching.max_batch_size, show_progress=False)

        self.batcher = Batcher(
            [runner(m) for m in models],
            max_batch_size=batching.max_batch_size,
            batch_timeout=batching.batch_timeout,
            max_queue=batching.max_queue,
            cost=_sequences,
        )

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        quant: str = "none",
        devices: str = "auto",
        batching: BatchSettings | None = None,
        media: MediaStore | None = None,
    ) -> RewardService:
        """Load `workers_per_device` replicas on each of the comma-separated `devices`."""
        # deferred: torch loads only when a service is built (importing omnireward.serving needs none)
        from omnireward import model_folder
        from omnireward.scoring.load import load_for_scoring, pick_device

        batching = (batching or BatchSettings()).check()
        if model_folder.is_model_folder(model_dir):
            model_dir = model_folder.open_folder(model_dir)  # its config read once, for every replica
        names = [d.strip() for d in devices.split(",") if d.strip()] or ["auto"]
        models, where = [], []
        for d in names:
            for _ in range(batching.workers_per_device):
                models.append(load_for_scoring(model_dir, quant=quant, device=d))
                where.append(str(pick_device(d)))
        cfg = model_dir.cfg if model_folder.is_model_folder(model_dir) else {}
        target = lambda key: ((cfg.get(key) or {}).get("_target_") or "").rsplit(".", 1)[-1] or None  # noqa: E731
        objective = {
            "objective": model_folder.objective_of(cfg) if cfg else "reward",
            "head": target("head"),
            "loss": target("loss"),
        }
        stats = models[0].reward_stats(model_dir)
        info = {"model": str(model_dir), "objective": objective, "quant": quant, "devices": where}
        return cls(models, batching=batching, stats=stats, media=media, info=info)

    @classmethod
    def load_ensemble(
        cls,
        members,
        *,
        rule: str = "mean",
        lam: float = 1.0,
        quant: str = "none",
        devices: str = "auto",
        batching: BatchSettings | None = None,
        media: MediaStore | None = None,
    ) -> RewardService:
        """An ensemble (several model folders, or a folder of them; see scoring/ensemble.py): each
        replica holds every member, which all score the batch the batcher formed; the lines carry
        the combined reward (already on the members' normalised scale) and the `ensemble` field."""
        # deferred: torch loads only when a service is built (importing omnireward.serving needs none)
        from omnireward.scoring.ensemble import EnsembleReplica, check_rule, member_folders, member_scale
        from omnireward.scoring.load import load_for_scoring, pick_device

        check_rule(rule, lam)
        batching = (batching or BatchSettings()).check()
        folders = member_folders(members)
        scales = [member_scale(f) for f in folders]
        names = [d.strip() for d in devices.split(",") if d.strip()] or ["auto"]
        replicas, where = [], []
        for d in names:
            for _ in range(batching.workers_per_device):
                models = [load_for_scoring(f, quant=quant, device=d) for f in folders]
                replicas.append(EnsembleReplica(models, scales, rule, lam))
                where.append(str(pick_device(d)))
        # The combined reward is in the members' normalised units: its scale is the identity, known.
        stats = {"mean": 0.0, "std": 1.0, "n": None, "ensemble": True}
        info = {
            "model": ",".join(str(f) for f in folders),
            "objective": {"objective": "reward", "ensemble": rule},
            "ensemble": {
                "members": [str(f) for f in folders],
                "rule": rule,
                "lambda": lam,
                "member_reward_stats": [{"mean": s.mean, "std": s.std} for s in scales],
            },
            "quant": quant,
            "devices": where,
        }
        return cls(replicas, batching=batching, stats=stats, media=media, info=info)

    # ---- scoring ------------------------------------------------------------------------------------
    def submit(self, records: list[Record]) -> Future:
        """A future of one `omnireward score` line per record (QueueFull when the queue is full)."""
        return self.batcher.submit(records)

    def score(
        self, records: list[Record], *, where: list[str] | None = None, timeout: float | None = None
    ) -> list[dict]:
        """Score in the shared batches and wait; a refused record raises RequestError naming it."""
        future = self.submit(records)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise RequestTimeout(f"not answered within {timeout:g} s") from None
        except ItemError as e:
            raise located(e, where) from None

    def info(self) -> dict:
        """What GET /info reports: model, objective, modalities, reward statistics, batching."""
        modalities = list(self.models[0].backbone.modalities)
        return {
            **self.info_fields,
            "modalities": ["text", *modalities],
            "reward_stats": self.stats,
            "default_system": self.default_system,
            "scale": {
                "normalized": "(reward - mean) / std",
                "unit": "sigmoid(normalized)",
                "mean": self.scale.mean,
                "std": self.scale.std,
                "from_reward_stats": self.scale.known,
            },
            "batching": {**asdict(self.batching), "replicas": len(self.models)},
            "batches": self.batcher.stats.snapshot(),
        }

    def close(self) -> None:
        self.batcher.close()
        self.media.close()


def located(e: ItemError, where: list[str] | None) -> RequestError:
    """The user error of item `e.index`, as a RequestError that names the record it came from."""
    err = e.error
    prefix = where[e.index] if where and e.index < len(where) else f"records[{e.index}]"
    reason = err.format() if hasattr(err, "format") else str(err)
    return RequestError(reason, field=prefix)


def default_system_prompt(model) -> str | None:
    """The system turn the model's chat template inserts when a conversation has none (SmolLM2 and
    Qwen templates do), so that a templated request's copy of it is not taken for criteria."""
    # deferred: torch loads only when a model is loaded
    from omnireward.backbones.base import Turn

    try:
        text = model.backbone.processor.render([Turn("user", ["x"])])[0]
    except Exception:  # noqa: BLE001 - a backbone without a chat template has no default system turn
        return None
    messages = parse_chat(text) or []
    systems = [m["content"] for m in messages if m["role"] == "system"]
    return systems[0].strip() if systems else None
