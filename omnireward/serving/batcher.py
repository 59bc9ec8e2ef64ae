"""Cross-request batching: records from concurrent callers share one forward pass.

Each caller submits a job (a list of items) and gets a `concurrent.futures.Future`. Worker
threads, one per model replica, all take from the one queue and form batches of at most
`max_batch_size` sequences (a pair costs two). A free worker takes a batch as soon as a full one
is waiting, or else `batch_timeout` seconds after the later of two moments: when the oldest
waiting item arrived, and when the worker itself became free (delivered its last batch). Time
spent waiting while the worker was busy therefore does not count: the few requests that arrive
during a forward pass wait, once it ends, up to `batch_timeout` for the callers just answered to
send their next requests, and ride in the same batch with them, instead of running alone in a
small batch that the rest of the wave then waits behind (batches of 2, 30, 2, 30 at 32 clients).
No item waits more than `batch_timeout` beyond the moment a worker was free to take it.

Items are taken round-robin over the waiting jobs, one item per job per round. A job of a
thousand records therefore never holds the model while a one-record job waits: the small job's
item rides in the next batch beside the big job's next slice.

A batch that fails with a user error (say, a corrupt image) is run again item by item, so the
error reaches only the job that sent the bad item; every other job gets its results.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from omnireward.errors import OmniRewardError


class QueueFull(Exception):
    """More items are waiting than the batcher accepts; the caller should retry later."""


class ItemError(Exception):
    """Item `index` of a job failed with `error` (a user error such as an unreadable file)."""

    def __init__(self, index: int, error: OmniRewardError):
        self.index = index
        self.error = error
        super().__init__(f"item {index}: {error}")


@dataclass(eq=False)
class _Job:
    items: Sequence
    costs: list[int]
    future: Future
    enqueued: float
    results: list = field(default_factory=list)
    next: int = 0  # first item not yet taken by a worker
    finished: int = 0  # items with a result

    def waiting_cost(self) -> int:
        return sum(self.costs[self.next :])


@dataclass
class BatchStats:
    """What the workers did: batch sizes (sequences) and how many jobs each batch merged."""

    batches: int = 0
    sequences: int = 0
    items: int = 0
    max_sequences: int = 0
    sizes: Counter = field(default_factory=Counter)  # sequences per batch -> count
    merged: Counter = field(default_factory=Counter)  # jobs per batch -> count

    def add(self, sequences: int, items: int, jobs: int) -> None:
        self.batches += 1
        self.sequences += sequences
        self.items += items
        self.max_sequences = max(self.max_sequences, sequences)
        self.sizes[sequences] += 1
        self.merged[jobs] += 1

    def snapshot(self) -> dict:
        return {
            "batches": self.batches,
            "sequences": self.sequences,
            "items": self.items,
            "mean_sequences": self.sequences / self.batches if self.batches else None,
            "max_sequences": self.max_sequences,
            "sequences_per_batch": {str(k): v for k, v in sorted(self.sizes.items())},
            "requests_per_batch": {str(k): v for k, v in sorted(self.merged.items())},
        }


class Batcher:
    """Merges concurrent jobs into batches run by one worker thread per runner (model replica)."""

    def __init__(
        self,
        runners: Sequence[Callable[[list], list]],
        *,
        max_batch_size: int = 32,
        batch_timeout: float = 0.01,
        max_queue: int = 16384,
        cost: Callable[[object], int] = lambda _: 1,
        name: str = "batcher",
        clock: Callable[[], float] = time.monotonic,
    ):
        if not runners:
            raise ValueError("at least one runner is needed")
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout
        self.max_queue = max_queue
        self.cost = cost
        self.clock = clock  # seconds; tests pass a clock they move themselves
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._loop, args=(r,), name=f"{name}-{i}", daemon=True)
            for i, r in enumerate(runners)
        ]
        for t in self._threads:
            t.start()

    # ---- callers ----------------------------------------------------------------------------------
    def submit(self, items: Sequence) -> Future:
        """A future of the items' results, in order (ItemError when one of them is refused)."""
        future: Future = Future()
        if not items:
            future.set_result([])
            return future
        costs = [self.cost(x) for x in items]
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            waiting = self._waiting_cost()
            if waiting and waiting + sum(costs) > self.max_queue:
                raise QueueFull(f"{waiting} sequences are waiting (limit {self.max_queue})")
            self._jobs.append(_Job(items, costs, future, self.clock(), [None] * len(items)))
            self._cond.notify_all()
        return future

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            for job in self._jobs:
                if not job.future.done():
                    job.future.cancel()
            self._jobs.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    # ---- workers ----------------------------------------------------------------------------------
    def _waiting_cost(self) -> int:
        return sum(j.waiting_cost() for j in self._jobs if not j.future.done())

    def _prune(self) -> None:
        """Forget jobs that are fully taken or were cancelled (their results are no longer wanted)."""
        self._jobs = deque(j for j in self._jobs if j.next < len(j.items) and not j.future.done())

    def _take(self) -> list[tuple[_Job, int]]:
        """Up to max_batch_size sequences, one item per job per round, oldest job first."""
        batch, size = [], 0
        progress = True
        while progress:
            progress = False
            for job in self._jobs:
                if job.next >= len(job.items):
                    continue
                c = job.costs[job.next]
                if batch and size + c > self.max_batch_size:
                    return batch
                batch.append((job, job.next))
                job.next += 1
                size += c
                progress = True
                if size >= self.max_batch_size:
                    return batch
        return batch

    def _next_batch(self, free_since: float) -> list[tuple[_Job, int]] | None:
        """The next batch for a worker free since `free_since` (None once closed)."""
        with self._cond:
            while True:
                self._prune()
                if self._closed:
                    return None
                if not self._jobs:
                    self._cond.wait()
                    continue
                deadline = max(min(j.enqueued for j in self._jobs), free_since) + self.batch_timeout
                remaining = deadline - self.clock()
                if self._waiting_cost() >= self.max_batch_size or remaining <= 0:
                    batch = self._take()
                    self._prune()
                    return batch
                self._cond.wait(remaining)

    def _loop(self, runner: Callable[[list], list]) -> None:
        free_since = float("-inf")  # never busy yet: only the items' own waiting counts
        while True:
            batch = self._next_batch(free_since)
            if batch is None:
                return
            items = [job.items[i] for job, i in batch]
            try:
                outputs = runner(items)
                errors: list = [None] * len(items)
            except OmniRewardError:
                outputs, errors = self._one_by_one(runner, items)
            except BaseException as e:  # noqa: BLE001 - a bug or OOM fails the batch's jobs, not the worker
                outputs, errors = [None] * len(items), [e] * len(items)
            with self._cond:
                self.stats.add(sum(job.costs[i] for job, i in batch), len(batch), len({id(j) for j, _ in batch}))
            for (job, i), out, err in zip(batch, outputs, errors):
                self._deliver(job, i, out, err)
            free_since = self.clock()

    @staticmethod
    def _one_by_one(runner, items) -> tuple[list, list]:
        outputs, errors = [], []
        for item in items:
            try:
                outputs.append(runner([item])[0])
                errors.append(None)
            except BaseException as e:  # noqa: BLE001
                outputs.append(None)
                errors.append(e)
        return outputs, errors

    def _deliver(self, job: _Job, index: int, output, error) -> None:
        with self._cond:
            if job.future.done():
                return
            if error is not None:
                job.future.set_exception(ItemError(index, error) if isinstance(error, OmniRewardError) else error)
                job.next = len(job.items)  # its other items are not worth computing
                return
            job.results[index] = output
            job.finished += 1
            if job.finished == len(job.items):
                job.future.set_result(job.results)
