"""The cross-request batcher: merging, fairness, failure isolation, cancellation, back-pressure.

A gate holds the worker inside a batch so that what waits behind it is known exactly; no test
depends on timing.
"""

from __future__ import annotations

import threading

import pytest

from omnireward.errors import MediaError
from omnireward.serving.batcher import Batcher, ItemError, QueueFull


class GatedRunner:
    """Doubles its inputs; blocks in the first batch until `release()`, and records every batch."""

    def __init__(self, fail_on=()):
        self.batches: list[list] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.fail_on = set(fail_on)

    def __call__(self, items):
        self.batches.append(list(items))
        self.entered.set()
        assert self.gate.wait(30)
        bad = [x for x in items if x in self.fail_on]
        if bad:
            raise MediaError("corrupt image", field=str(bad[0]))
        return [2 * x for x in items]

    def release(self):
        self.gate.set()


def _held(runner: GatedRunner, batcher: Batcher):
    """Submit a first job and wait until the worker is busy with it."""
    first = batcher.submit([0])
    assert runner.entered.wait(30)
    return first


def test_jobs_waiting_behind_a_busy_worker_share_one_batch():
    runner = GatedRunner()
    b = Batcher([runner], max_batch_size=32, batch_timeout=0)
    try:
        first = _held(runner, b)
        futures = [b.submit([i]) for i in range(1, 9)]
        runner.release()
        assert first.result(30) == [0]
        assert [f.result(30) for f in futures] == [[2 * i] for i in range(1, 9)]
        assert runner.batches == [[0], list(range(1, 9))]
        snap = b.stats.snapshot()
        assert snap["requests_per_batch"] == {"1": 1, "8": 1} and snap["max_sequences"] == 8
    finally:
        b.close()


def test_a_large_job_is_split_and_small_jobs_ride_in_its_first_slice():
    runner = GatedRunner()
    b = Batcher([runner], max_batch_size=4, batch_timeout=0)
    try:
        _held(runner, b)
        big = b.submit(list(range(100, 110)))
        small = [b.submit([i]) for i in (1, 2)]
        runner.release()
        assert big.result(30) == [2 * x for x in range(100, 110)]
        assert [s.result(30) for s in small] == [[2], [4]]
        # round-robin: the big job's first item, then one from each small job, then the big job alone
        assert runner.batches[1] == [100, 1, 2, 101]
        assert runner.batches[2:] == [[102, 103, 104, 105], [106, 107, 108, 109]]
        assert all(len(x) <= 4 for x in runner.batches)
    finally:
        b.close()


def test_costs_count_sequences_not_items():
    runner = GatedRunner()
    b = Batcher([runner], max_batch_size=4, batch_timeout=0, cost=lambda x: 2)
    try:
        _held(runner, b)
        futures = [b.submit([i]) for i in range(1, 4)]
        runner.release()
        [f.result(30) for f in futures]
        assert runner.batches[1:] == [[1, 2], [3]]
    finally:
        b.close()


def test_a_bad_item_fails_only_its_own_job():
    runner = GatedRunner(fail_on={5})
    b = Batcher([runner], max_batch_size=32, batch_timeout=0)
    try:
        _held(runner, b)
        good = [b.submit([1, 2]), b.submit([3])]
        bad = b.submit([4, 5, 6])
        runner.release()
        assert [f.result(30) for f in good] == [[2, 4], [6]]
        with pytest.raises(ItemError) as e:
            bad.result(30)
        assert e.value.index == 1 and "corrupt image" in str(e.value.error)
    finally:
        b.close()


def test_other_exceptions_reach_every_job_of_the_batch_and_the_worker_survives():
    calls = []

    def runner(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [x + 1 for x in items]

    b = Batcher([runner], max_batch_size=8, batch_timeout=0)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            b.submit([1]).result(30)
        assert b.submit([1]).result(30) == [2]
    finally:
        b.close()


def test_cancelled_jobs_are_not_computed():
    runner = GatedRunner()
    b = Batcher([runner], max_batch_size=32, batch_timeout=0)
    try:
        _held(runner, b)
        dropped = b.submit([7, 8])
        kept = b.submit([9])
        assert dropped.cancel()
        runner.release()
        assert kept.result(30) == [18]
        assert runner.batches[1] == [9]
    finally:
        b.close()


def test_a_full_queue_refuses_new_jobs():
    runner = GatedRunner()
    b = Batcher([runner], max_batch_size=2, batch_timeout=0, max_queue=4)
    try:
        _held(runner, b)
        b.submit([1, 2, 3, 4])
        with pytest.raises(QueueFull):
            b.submit([5])
        runner.release()
    finally:
        b.close()


def test_the_timeout_waits_for_company_when_the_worker_is_idle():
    seen = []
    b = Batcher([lambda items: seen.append(list(items)) or items], max_batch_size=3, batch_timeout=30)
    try:
        futures = [b.submit([i]) for i in range(3)]  # the third fills the batch: no 30 s wait
        assert [f.result(30) for f in futures] == [[0], [1], [2]]
        assert seen == [[0, 1, 2]]
    finally:
        b.close()


def test_two_replicas_share_the_queue():
    runners = [GatedRunner(), GatedRunner()]
    b = Batcher(runners, max_batch_size=1, batch_timeout=0)
    try:
        f1 = b.submit([1])
        f2 = b.submit([2])
        assert runners[0].entered.wait(30) and runners[1].entered.wait(30)  # both busy at once
        for r in runners:
            r.release()
        assert (f1.result(30), f2.result(30)) == ([2], [4])
    finally:
        b.close()


# ---- waves: requests that arrive during a forward pass wait for the rest of their wave ----------
class Clock:
    """Seconds that move only when a test (or its slow model) moves them."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class SlowModel:
    """Doubles its inputs; every forward pass takes `pass_seconds` on `clock`. The first pass also
    blocks until `release()`, so that what arrives during it is known exactly."""

    def __init__(self, clock: Clock, pass_seconds: float):
        self.clock, self.pass_seconds = clock, pass_seconds
        self.batches: list[list] = []
        self.started_at: list[float] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        self.started_at.append(self.clock())
        self.entered.set()
        assert self.gate.wait(30)
        self.clock.now += self.pass_seconds
        return [2 * x for x in items]

    def release(self):
        self.gate.set()


def test_a_wave_arriving_while_the_model_is_busy_is_scored_in_full_batches():
    # 32 clients at max_batch_size 32 measured batches of 2, 30, 2, 30: the two requests that
    # arrived during a long forward pass had waited past the timeout and ran alone. Here: a
    # forward pass (100 s) much longer than the timeout (1 s); 2 of a wave of 8 one-record
    # requests arrive during it, the other 6 after it ends.
    clock = Clock()
    model = SlowModel(clock, pass_seconds=100.0)
    b = Batcher([model], max_batch_size=4, batch_timeout=1.0, clock=clock)
    try:
        first = b.submit([100, 101, 102, 103])  # a full batch: runs at once
        assert model.entered.wait(30)
        early = [b.submit([i]) for i in (1, 2)]  # arrive while the model is busy
        model.release()
        assert first.result(30) == [200, 202, 204, 206]
        late = [b.submit([i]) for i in range(3, 9)]  # the rest of the wave, once the pass has ended
        assert [f.result(30) for f in early + late] == [[2 * i] for i in range(1, 9)]
        assert model.batches == [[100, 101, 102, 103], [1, 2, 3, 4], [5, 6, 7, 8]]
        assert b.stats.snapshot()["sequences_per_batch"] == {"4": 3}
    finally:
        b.close()


def test_the_wait_for_the_rest_of_a_wave_is_bounded_by_the_timeout():
    clock = Clock()
    model = SlowModel(clock, pass_seconds=100.0)
    b = Batcher([model], max_batch_size=4, batch_timeout=0.05, clock=clock)
    try:
        first = b.submit([100, 101, 102, 103])
        assert model.entered.wait(30)
        early = [b.submit([i]) for i in (1, 2)]
        model.release()
        assert first.result(30) == [200, 202, 204, 206]
        free = clock.now  # 100: the pass has ended; no one else comes
        clock.now = free + 0.06  # past the timeout, counted from when the model became free
        assert [f.result(30) for f in early] == [[2], [4]]
        assert model.batches[1] == [1, 2]
        # not taken before the timeout had passed since the model was free, however long they had waited
        assert model.started_at[1] == free + 0.06
    finally:
        b.close()


def test_an_idle_replica_does_not_wait_for_a_busy_replicas_wave():
    # One replica is busy with a long pass; a request that arrives meanwhile waits only its own
    # timeout, then the other, idle replica takes it: the wait for the rest of a wave belongs to
    # the replica that just became free, and the replicas still share one queue.
    clock = Clock()
    gate, entered = threading.Event(), threading.Event()
    batches: dict[int, list] = {0: [], 1: []}

    def replica(k):
        def run(items):
            batches[k].append(list(items))
            if items[0] >= 100:  # the long pass
                entered.set()
                assert gate.wait(30)
                clock.now += 100.0
            return [2 * x for x in items]

        return run

    b = Batcher([replica(0), replica(1)], max_batch_size=4, batch_timeout=1.0, clock=clock)
    try:
        first = b.submit([100, 101, 102, 103])
        assert entered.wait(30)
        busy = 0 if batches[0] else 1
        late = b.submit([7])
        clock.now = 1.5  # the request's own timeout has passed; the busy replica is still in its pass
        assert late.result(30) == [14]
        assert batches[1 - busy] == [[7]] and batches[busy] == [[100, 101, 102, 103]]
        gate.set()
        assert first.result(30) == [200, 202, 204, 206]
    finally:
        gate.set()
        b.close()
