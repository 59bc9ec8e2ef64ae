"""Weighted training mixtures: several preference files, each drawn at its own rate every epoch.

`data.train` is one path or a list of sources; a source is a path or a mapping
`{path, format, weight, max_pairs}`. A source keeps at most `max_pairs` of its labelled pairs (a
subset chosen once by `seed`, the same every epoch); its weight `w` then means `round(w × n)` of
its `n` kept pairs per epoch: `w = 1` each pair once, `w = 0.5` a fresh half each epoch, `w = 2`
each pair twice, `w = 2.5` each pair twice plus a fresh half once more. The epoch's length is the
sum over sources and is the same every epoch. Which pairs are drawn and their order depend only on
`(seed, epoch)`, so a resumed run sees the order an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler

from omnireward.data.formats import resolve_format
from omnireward.errors import ConfigError, DataFormatError

SOURCE_KEYS = ("path", "format", "weight", "max_pairs")


@dataclass(frozen=True)
class Source:
    """One file of a training mixture."""

    path: str
    format: str = "auto"
    weight: float = 1.0
    max_pairs: int | None = None


def parse_sources(train, field: str = "data.train") -> list[Source]:
    """The sources of `data.train` (a path, a mapping or a list of either), checked; [] for None.

    A bad entry raises ConfigError naming the field, e.g. `data.train[1].weight`."""
    if train is None or train == "":
        return []
    if isinstance(train, (str, Path)):
        entries, single = [train], True
    elif isinstance(train, Mapping):
        entries, single = [train], True
    elif isinstance(train, Sequence):
        entries, single = list(train), False
    else:
        raise ConfigError(f"expected a path or a list of sources, got {train!r}", field=field)
    if not entries:
        raise ConfigError("an empty list: give at least one source", field=field)
    return [_source(e, field if single else f"{field}[{i}]") for i, e in enumerate(entries)]


def _source(entry, where: str) -> Source:
    if isinstance(entry, (str, Path)):
        entry = {"path": str(entry)}
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"a source is a path or a mapping with keys {', '.join(SOURCE_KEYS)}; got {entry!r}", field=where
        )
    for key in entry:
        if key not in SOURCE_KEYS:
            raise ConfigError(f"unknown key (a source takes {', '.join(SOURCE_KEYS)})", field=f"{where}.{key}")
    path = entry.get("path")
    if path is None or str(path).strip() == "":
        raise ConfigError("missing path: every source names the file (or folder) to read", field=f"{where}.path")
    if not Path(str(path)).exists():
        raise ConfigError(f"no such file or folder: {path}", field=f"{where}.path")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise ConfigError(
            f"weight must be a number > 0, got {weight!r} (leave a source out to drop it)", field=f"{where}.weight"
        )
    max_pairs = entry.get("max_pairs")
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1):
        raise ConfigError(
            f"max_pairs must be a whole number >= 1 (or null for all), got {max_pairs!r}", field=f"{where}.max_pairs"
        )
    fmt = entry.get("format") or "auto"
    if not isinstance(fmt, str):
        raise ConfigError(f"format must be a format name, got {fmt!r}", field=f"{where}.format")
    if fmt.lower() != "auto":
        try:
            fmt = resolve_format(str(path), fmt)
        except DataFormatError as e:
            raise ConfigError(e.reason, field=f"{where}.format") from None
    return Source(path=str(path), format=fmt, weight=float(weight), max_pairs=max_pairs)


def pairs_per_epoch(weight: float, n: int) -> int:
    """round(weight × n), halves rounded up."""
    return int(math.floor(weight * n + 0.5))


def capped(n: int, max_pairs: int | None, seed: int, index: int) -> list[int]:
    """Positions (in file order) of the pairs a source keeps: all of them, or `max_pairs` chosen by
    (seed, source index), the same in every epoch and every process."""
    if max_pairs is None or max_pairs >= n:
        return list(range(n))
    g = torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * (index + 1))
    return sorted(torch.randperm(n, generator=g)[:max_pairs].tolist())


def mixture_order(sizes: Sequence[int], weights: Sequence[float], seed: int, epoch: int) -> list[int]:
    """One epoch of indices into the concatenated sources: round(w × n) draws of each source (whole
    copies, then a random subset without replacement for the fraction), shuffled together.

    With every weight 1 this is exactly `randperm(sum(sizes))` of the epoch's generator."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    chosen: list[int] = []
    offset = 0
    for n, w in zip(sizes, weights):
        full, rest = divmod(pairs_per_epoch(w, n), n) if n else (0, 0)
        chosen.extend(list(range(offset, offset + n)) * full)
        if rest:
            chosen.extend((offset + torch.randperm(n, generator=g)[:rest]).tolist())
        offset += n
    perm = torch.randperm(len(chosen), generator=g).tolist()
    return [chosen[i] for i in perm]


def length_grouped(
    order: list[int], lengths: Sequence[int], batch: int, window: int, seed: int, epoch: int
) -> list[int]:
    """`order` with the pairs of each window of `window` batches sorted by length and cut into
    batches, whose order within the window is then shuffled: batches of similar lengths (little
    padding), still drawn in random order. Depends only on (order, seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_919)
    out: list[int] = []
    span = batch * window
    for s in range(0, len(order), span):
        chunk = sorted(order[s : s + span], key=lambda i: lengths[i])  # stable: ties keep the shuffled order
        batches = [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
        full = len(chunk) // batch  # a short last batch stays last, so later batches keep their bounds
        for k in torch.randperm(full, generator=g).tolist() + list(range(full, len(batches))):
            out += batches[k]
    return out


class MixtureSampler(DistributedSampler):
    """An epoch of `mixture_order`, the same in every process; under DDP rank r takes positions
    r, r+W, ... of it, so a step's global batch is the batch one process would take. Being a
    DistributedSampler, Lightning uses it as it is and calls `set_epoch` each epoch.

    With `lengths` (one per pair of the concatenated sources) and `group_by_length` > 1, each
    window of that many global batches (`batch_size` × W pairs) is grouped by length
    (`length_grouped`)."""

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        *,
        lengths: Sequence[int] | None = None,
        batch_size: int = 1,
        group_by_length: int = 0,
    ):
        self.sizes, self.weights = list(sizes), list(weights)
        length = sum(pairs_per_epoch(w, n) for n, w in zip(self.sizes, self.weights))
        if length == 0:
            raise ConfigError(
                "the mixture draws no pair per epoch (every round(weight × pairs) is 0)", field="data.train"
            )
        if lengths is not None and len(lengths) != sum(self.sizes):
            raise ValueError(f"{len(lengths)} lengths for {sum(self.sizes)} pairs")
        self.lengths, self.batch_size, self.group_by_length = lengths, batch_size, group_by_length
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self):
        order = mixture_order(self.sizes, self.weights, self.seed, self.epoch)
        if self.lengths is not None and self.group_by_length > 1:
            order = length_grouped(
                order, self.lengths, self.batch_size * self.num_replicas, self.group_by_length, self.seed, self.epoch
            )
        order += order[: self.total_size - len(order)]  # every rank takes the same number of steps
        return iter(order[self.rank : self.total_size : self.num_replicas])


def source_report(source: Source, read: int, kept: int) -> dict:
    """What the run folder records about one source."""
    return {
        **asdict(source),
        "pairs_read": read,
        "pairs_kept": kept,
        "pairs_per_epoch": pairs_per_epoch(source.weight, kept),
    }


def describe(report: list[dict]) -> str:
    """One log line: pairs per source per epoch."""
    total = sum(r["pairs_per_epoch"] for r in report)
    parts = [
        f"{Path(r['path']).name} {r['pairs_per_epoch']} ({r['pairs_kept']} kept × weight {r['weight']:g})"
        for r in report
    ]
    return f"training pairs per epoch: {total} = " + " + ".join(parts)
