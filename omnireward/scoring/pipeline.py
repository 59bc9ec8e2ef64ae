"""Run planned batches through a scorer on one machine: a DataLoader prepares batches in worker
processes (chat template, tokens, media decoding and features) while the model scores the last.

A scorer has two methods:

    prepare(planned) -> prepared     # CPU only; runs in a DataLoader worker
    score(planned, prepared) -> [one scores line per record of planned.records]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import DataLoader, Dataset

from omnireward.errors import OmniRewardError
from omnireward.scoring.batch import lines_for, prepare_batch, run_batch
from omnireward.scoring.plan import Planned


class Scorer(Protocol):
    def prepare(self, planned: Planned) -> Any: ...

    def score(self, planned: Planned, prepared: Any) -> list[dict]: ...


class BTScorer:
    """A BT reward model: `prepare_batch` in the workers, `run_batch` (one forward) here."""

    def __init__(self, model):
        self.model = model.eval()

    def prepare(self, planned: Planned):
        return prepare_batch(self.model, planned.records)

    def score(self, planned: Planned, prepared) -> list[dict]:
        return lines_for(planned.records, run_batch(self.model, prepared, planned.records))


def locate(error: OmniRewardError, planned: Planned, prepare_one, input_path) -> OmniRewardError:
    """Name the input line of the record that made a batch fail (e.g. a media file that does not decode)."""
    for rec, line in zip(planned.records, planned.lines):
        try:
            prepare_one(rec)
        except OmniRewardError as err:  # e.g. "bad.png: corrupt ..." becomes "pairs.jsonl:12: ... bad.png"
            return type(err)(
                err.reason if err.file is None else f"{err.reason} ({err.file})",
                file=input_path,
                line=line,
                field=err.field,
            )
    return error


class _Prepare(Dataset):
    """`dataset[planned]`: the sampler hands over planned batches; workers prepare them."""

    def __init__(self, scorer: Scorer, input_path):
        self.scorer = scorer
        self.input_path = input_path

    def __getitem__(self, planned: Planned):
        try:
            return planned, self.scorer.prepare(planned), None
        except OmniRewardError as err:  # sent back whole: a worker's traceback is not a user's error line
            one = lambda rec: self.scorer.prepare(Planned(planned.index, 0, [rec]))  # noqa: E731
            return planned, None, locate(err, planned, one, self.input_path)

    def __len__(self):  # never asked for: the sampler drives
        raise TypeError("planned batches are streamed")


class _Stream:
    """A sampler over a one-shot iterator of planned batches."""

    def __init__(self, batches: Iterable[Planned]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def _as_is(x):
    return x


def run_local(
    scorer: Scorer, batches: Iterable[Planned], *, workers: int = 1, input_path: str | Path | None = None
) -> Iterator[tuple[Planned, list[dict]]]:
    """(batch, lines) in plan order; `workers` > 0 prepares batches in that many processes."""
    loader = DataLoader(
        _Prepare(scorer, input_path),
        sampler=_Stream(batches),
        batch_size=None,
        collate_fn=_as_is,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
        multiprocessing_context="fork" if workers else None,
    )
    for planned, prepared, error in loader:
        if error is not None:
            raise error
        yield planned, scorer.score(planned, prepared)
