"""Training's progress bar: Lightning's rich bar (elapsed • time left) plus pairs per second."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import RichProgressBar
from rich.progress import ProgressColumn
from rich.text import Text


def pairs_in(batch) -> int | None:
    """Preference pairs in a collated batch: `len(batch["y"])` for the dict batches of the BT and
    joint modules, `len(batch)` for batches that know their length (the judge's PairBatch)."""
    if isinstance(batch, dict) and "y" in batch:
        return len(batch["y"])
    try:
        return len(batch)
    except TypeError:
        return None


class PairsPerSecond(ProgressColumn):
    """Pairs per second since the bar (re)started, from the counts the callback keeps."""

    def __init__(self, counts: dict, style: str = "grey70"):
        self.counts = counts
        self.style = style
        super().__init__()

    def render(self, task) -> Text:
        n, since = self.counts.get(task.id, (0, None))
        if not n or since is None:
            return Text("-- pairs/s", style=self.style)
        rate = n / max(time.monotonic() - since, 1e-9)
        return Text(f"{rate:,.1f} pairs/s", style=self.style)


class PairsProgressBar(RichProgressBar):
    """RichProgressBar (batches, elapsed • remaining, it/s) with a pairs/s column for training and
    validation; the count restarts whenever Lightning resets a bar (each epoch)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("leave", True)
        super().__init__(**kwargs)
        self._counts: dict = {}
        self._started: dict = {}
        self._batch_start = time.monotonic()

    def configure_columns(self, trainer) -> list:
        return [*super().configure_columns(trainer), PairsPerSecond(self._counts)]

    def _count(self, task_id, batch) -> None:
        if self.progress is None or task_id is None:
            return
        n = pairs_in(batch)
        if n is None:
            return
        if self._started.get(task_id) is None:  # first batch of an epoch: the bar restarts, so does the rate
            self._started[task_id] = self._batch_start
            self._counts[task_id] = (0, self._batch_start)
        done, since = self._counts[task_id]
        self._counts[task_id] = (done + n, since)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        self._batch_start = time.monotonic()
        if batch_idx == 0:
            self._started[self.train_progress_bar_id] = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._count(self.train_progress_bar_id, batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        super().on_validation_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        self._batch_start = time.monotonic()
        if batch_idx == 0:
            self._started[self.val_progress_bar_id] = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        self._count(self.val_progress_bar_id, batch)

    @property
    def pairs_seen(self) -> dict:
        """Pairs counted per bar since its last reset (for tests and logs)."""
        return {k: v[0] for k, v in self._counts.items()}
