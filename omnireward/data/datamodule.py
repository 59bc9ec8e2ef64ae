"""LightningDataModule over preference files; batches are collated by the model being trained."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from omnireward.data.formats import load
from omnireward.data.mixture import MixtureSampler, Source, capped, describe, parse_sources, source_report
from omnireward.data.needs import DataNeeds, is_labelled_pair
from omnireward.data.prep import read_pairs
from omnireward.data.records import Pair, Record, length_hint
from omnireward.errors import ConfigError, DataFormatError


def load_records(
    path: str | Path, *, media_root: str | Path | None = None, allow_outside_root: bool = False
) -> list[Record]:
    """Read any supported format; media paths become absolute (relative ones against the file's folder)."""
    return read_pairs(path, media_root=media_root, allow_outside_root=allow_outside_root)


def labelled_pairs(records: list[Record], path) -> list[Pair]:
    pairs = [r for r in records if is_labelled_pair(r)]
    if not pairs:
        raise DataFormatError("no labelled preference pairs to train on", file=path)
    return pairs


class EpochShuffleSampler(MixtureSampler):
    """A permutation of n pairs that depends only on (seed, epoch), so a resumed run sees the same
    order as an uninterrupted one (Lightning calls `set_epoch` each epoch): a mixture of one source
    at weight 1. Under DDP rank r takes positions r, r+W, ... of that one permutation."""

    def __init__(self, n: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        super().__init__([n], [1.0], seed=seed, num_replicas=num_replicas, rank=rank)
        self.n = n


class PreferenceDataModule(L.LightningDataModule):
    """Train, validation and test pairs. `train` is one path or a weighted mixture of sources
    (`omnireward.data.mixture`: a list of paths or `{path, format, weight, max_pairs}`); `val` and
    `test` are one path each."""

    def __init__(
        self,
        train: str | list | None = None,
        val: str | None = None,
        test: str | None = None,
        media_root: str | None = None,
        allow_outside_root: bool = False,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        group_by_length: int = 16,
    ):
        super().__init__()
        for split, path in (("val", val), ("test", test)):
            if path is not None and not isinstance(path, (str, Path)):
                raise ConfigError(
                    f"takes one path, got {path!r} (weighted mixtures are for data.train)", field=f"data.{split}"
                )
        self.sources: list[Source] = parse_sources(train)  # bad entries fail here, before any model loads
        self.paths = {"train": train, "val": val, "test": test}
        self.media_root = media_root
        self.allow_outside_root = allow_outside_root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        if isinstance(group_by_length, bool) or not isinstance(group_by_length, int) or group_by_length < 0:
            raise ConfigError(
                f"must be 0 (off) or a number of batches, got {group_by_length!r}", field="data.group_by_length"
            )
        self.group_by_length = int(group_by_length)
        # What the model being trained needs from the data (its collate, which records it trains
        # on, what each must carry): handed over by `omnireward.train` before `setup`. Without it
        # the splits hold labelled pairs and nothing is loaded.
        self.needs: DataNeeds | None = None
        self.splits: dict[str, list[Record]] = {}
        self.origins: dict[str, list[tuple[str, int | None]]] = {}  # (file, line) of each pair, per split
        self.mixture: list[dict] = []  # per training source: path, weight, pairs read / kept / per epoch
        self._source_sizes: list[int] = []

    def _read(self, path, fmt: str = "auto") -> tuple[list[Pair], list[tuple[str, int | None]]]:
        pairs, origins = [], []
        for res in load(path, fmt, media_root=self.media_root, allow_outside_root=self.allow_outside_root):
            if not res.ok:
                raise res.error
            if (self.needs.trains_on if self.needs else is_labelled_pair)(res.record):
                pairs.append(res.record)
                origins.append((res.file, res.line))
        if not pairs:
            raise DataFormatError("no labelled preference pairs (or rankings) to train on", file=path)
        return pairs, origins

    def _needs(self) -> DataNeeds:
        if self.needs is None:
            raise RuntimeError("set datamodule.needs to the model's DataNeeds (module.data_needs()) first")
        return self.needs

    def setup(self, stage: str | None = None):
        if self.sources and "train" not in self.splits:
            pairs, origins = [], []
            for i, src in enumerate(self.sources):
                p, o = self._read(src.path, src.format)
                keep = capped(len(p), src.max_pairs, self.seed, i)
                pairs += [p[k] for k in keep]
                origins += [o[k] for k in keep]
                self.mixture.append(source_report(src, len(p), len(keep)))
                self._source_sizes.append(len(keep))
            self.splits["train"], self.origins["train"] = pairs, origins
            rank_zero_info(describe(self.mixture))
        for split in ("val", "test"):
            path = self.paths[split]
            if path and split not in self.splits:
                self.splits[split], self.origins[split] = self._read(path)
        if self.needs and self.needs.margins:
            self.require_margins(self.needs.margins)
        if self.needs and self.needs.dimensions:
            self.require_dimensions(self.needs.dimensions)

    @property
    def train_pairs_per_epoch(self) -> int:
        return sum(r["pairs_per_epoch"] for r in self.mixture)

    def require_margins(self, why: str) -> None:
        """Refuse, naming the file and line, any training or validation pair without a `margin`."""
        for split in ("train", "val"):
            for pair, (file, line) in zip(self.splits.get(split, []), self.origins.get(split, [])):
                if not isinstance(pair, Pair):
                    raise DataFormatError(
                        f"a ranking has no margin: {why}; use loss=bt or loss=plackett_luce",
                        file=file,
                        line=line,
                        field="ranking",
                    )
                if pair.margin is None:
                    raise DataFormatError(
                        f"missing margin: {why}; give every record a margin or use loss=bt",
                        file=file,
                        line=line,
                        field="margin",
                    )

    def require_dimensions(self, dimensions: tuple[str, ...]) -> None:
        """Refuse, naming the file and line, a per-dimension label the head has no dimension for."""
        for split in ("train", "val"):
            for rec, (file, line) in zip(self.splits.get(split, []), self.origins.get(split, [])):
                for name in rec.dimension_preferences if isinstance(rec, Pair) else {}:
                    if name not in dimensions:
                        raise DataFormatError(
                            f"dimension {name!r} is not one of the head's ({', '.join(dimensions)}); "
                            "set head.dimensions to the data's dimensions",
                            file=file,
                            line=line,
                            field=f"preference.{name}",
                        )

    def _loader(self, split: str, shuffle: bool, bs: int):
        data = self.splits[split]
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        if shuffle:
            lengths = [length_hint(r) for r in data] if self.group_by_length > 1 else None
            sampler = MixtureSampler(
                self._source_sizes,
                [s.weight for s in self.sources],
                self.seed,
                world,
                rank,
                lengths=lengths,
                batch_size=bs,
                group_by_length=self.group_by_length,
            )
        else:  # each pair evaluated once across ranks (Lightning's default sampler repeats some)
            sampler = UnrepeatedDistributedSampler(data, world, rank, shuffle=False) if world > 1 else None
        return DataLoader(
            data, batch_size=bs, sampler=sampler, collate_fn=self._needs().collate, num_workers=self.num_workers
        )

    def train_dataloader(self):
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self):
        return self._loader("val", False, self.eval_batch_size) if "val" in self.splits else []

    def test_dataloader(self):
        return self._loader("test", False, self.eval_batch_size) if "test" in self.splits else []
