"""LightningDataModule over preference files; batches are collated by the model being trained."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler

from omnireward.data.records import Pair, Record
from omnireward.errors import DataFormatError


def load_records(path: str | Path, *, media_root: str | Path | None = None,
                 allow_outside_root: bool = False) -> list[Record]:
    """Read any supported format; media paths become absolute (relative ones against the file's folder)."""
    from omnireward.data.prep import read_pairs

    return read_pairs(path, media_root=media_root, allow_outside_root=allow_outside_root)


def labelled_pairs(records: list[Record], path) -> list[Pair]:
    pairs = [r for r in records if isinstance(r, Pair) and r.preference is not None]
    if not pairs:
        raise DataFormatError("no labelled preference pairs to train on", file=path)
    return pairs


class EpochShuffleSampler(DistributedSampler):
    """A permutation that depends only on (seed, epoch), so a resumed run sees the same order
    as an uninterrupted one (Lightning calls `set_epoch` each epoch). Under DDP rank r takes
    positions r, r+W, ... of that one permutation, so a step's global batch is the batch one
    process would take; being a DistributedSampler, Lightning uses it as it is."""

    def __init__(self, n: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.n = n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[:self.total_size - self.n]  # every rank takes the same number of steps
        return iter(order[self.rank:self.total_size:self.num_replicas])


class PreferenceDataModule(L.LightningDataModule):
    def __init__(self, train: str | None = None, val: str | None = None, test: str | None = None,
                 media_root: str | None = None, allow_outside_root: bool = False, batch_size: int = 8,
                 eval_batch_size: int = 16, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.paths = {"train": train, "val": val, "test": test}
        self.media_root = media_root
        self.allow_outside_root = allow_outside_root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.collate_fn: Callable | None = None
        self.splits: dict[str, list[Pair]] = {}
        self.origins: dict[str, list[tuple[str, int | None]]] = {}  # (file, line) of each pair, per split

    def setup(self, stage: str | None = None):
        from omnireward.data.formats import load

        for split, path in self.paths.items():
            if path and split not in self.splits:
                pairs, origins = [], []
                for res in load(path, media_root=self.media_root, allow_outside_root=self.allow_outside_root):
                    if not res.ok:
                        raise res.error
                    if isinstance(res.record, Pair) and res.record.preference is not None:
                        pairs.append(res.record)
                        origins.append((res.file, res.line))
                self.splits[split] = labelled_pairs(pairs, path)
                self.origins[split] = origins

    def require_margins(self, why: str) -> None:
        """Refuse, naming the file and line, any training or validation pair without a `margin`."""
        for split in ("train", "val"):
            for pair, (file, line) in zip(self.splits.get(split, []), self.origins.get(split, [])):
                if pair.margin is None:
                    raise DataFormatError(f"missing margin: {why}; give every record a margin or use loss=bt",
                                          file=file, line=line, field="margin")

    def _loader(self, split: str, shuffle: bool, bs: int):
        if self.collate_fn is None:
            raise RuntimeError("set datamodule.collate_fn to the model's collate before fitting")
        data = self.splits[split]
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        if shuffle:
            sampler = EpochShuffleSampler(len(data), self.seed, world, rank)
        else:  # each pair evaluated once across ranks (Lightning's default sampler repeats some)
            sampler = UnrepeatedDistributedSampler(data, world, rank, shuffle=False) if world > 1 else None
        return DataLoader(data, batch_size=bs, sampler=sampler, collate_fn=self.collate_fn,
                          num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self):
        return self._loader("val", False, self.eval_batch_size) if "val" in self.splits else []

    def test_dataloader(self):
        return self._loader("test", False, self.eval_batch_size) if "test" in self.splits else []
