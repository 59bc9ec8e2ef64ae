"""`--engine ray`: the planned batches scored by Ray Data, an actor pool that loads the model once per worker.

The driver reads the input and plans batches exactly as on one machine (same order, same
rejects, same resume point), spools the batches still to score to `OUT.ray/pending.jsonl`, and
hands that file to Ray Data: `read_text` → `map_batches(actor class, ActorPoolStrategy(size=N))`
with one planned batch per call. Results come back in plan order (`preserve_order`) and the
driver appends them to OUT.partial as they arrive, so the output, its resume and its summary are
the ones of a local run. The input's media, the model folder and OUT must be on storage every node reads.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from omnireward.data.records import record_from_dict
from omnireward.errors import DependencyError
from omnireward.scoring.plan import Planned


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships as the ray[data] extra
    except ImportError as e:
        raise DependencyError(f"--engine ray needs Ray Data: pip install 'omnireward[ray]' ({e})") from None
    return ray


class ScoreActor:
    """A Ray Data actor: builds the scorer once (loads the model), then scores one planned batch per call."""

    def __init__(self, factory: Callable):
        self.scorer = factory()

    def __call__(self, batch: dict) -> dict:
        lines_out, counts, indexes = [], [], []
        for text in batch["text"]:
            spec = json.loads(text)
            records = [record_from_dict(r) for r in spec["records"]]  # media paths are already absolute
            planned = Planned(spec["index"], spec["start"], records, spec["lines"], spec["skip"], spec["positions"])
            prepared = self.scorer.prepare(planned)
            lines = planned.tag(self.scorer.score(planned, prepared))
            lines_out.append(json.dumps(lines, ensure_ascii=False))
            counts.append(len(lines))
            indexes.append(planned.index)
        return {"index": indexes, "n": counts, "lines": lines_out, "pid": [os.getpid()] * len(counts)}


def spool(batches: Iterable[Planned], path: Path) -> int:
    """Write the batches still to score, one JSON line each; returns how many."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for b in batches:
            f.write(
                json.dumps(
                    {
                        "index": b.index,
                        "start": b.start,
                        "skip": b.skip,
                        "lines": b.lines,
                        "positions": b.positions,
                        "records": [r.to_dict() for r in b.records],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            n += 1
    return n


def run_ray(
    factory: Callable, batches: Iterable[Planned], *, spool: Path, options, workers: set | None = None
) -> Iterator[tuple[int, list[dict]]]:
    """(records newly written, their lines) per batch, in plan order, scored by Ray actors.

    `workers` collects the process ids of the actors that scored (to see the work was spread).
    """
    workers = set() if workers is None else workers
    ray = import_ray()
    spool_dir = Path(spool)
    spool_dir.mkdir(parents=True, exist_ok=True)
    pending_file = spool_dir / "pending.jsonl"
    n_batches = globals()["spool"](batches, pending_file)
    if n_batches == 0:
        shutil.rmtree(spool_dir, ignore_errors=True)
        return
    if not ray.is_initialized():
        ray.init(
            address=options.address,
            ignore_reinit_error=True,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    # Reading the spool is light; with no CPU of its own it cannot wait behind the actors' CPUs.
    # Several blocks per actor, so that every actor gets work (one block goes to one actor).
    ds = ray.data.read_text(
        str(pending_file.resolve()), num_cpus=0, override_num_blocks=min(n_batches, 4 * options.num_workers)
    )
    ds = ds.map_batches(
        ScoreActor,
        fn_constructor_kwargs={"factory": factory},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=options.num_workers),
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker or None,
        batch_format="numpy",
    )
    for row in ds.iter_rows():
        workers.add(int(row["pid"]))
        yield int(row["n"]), json.loads(row["lines"])
    shutil.rmtree(spool_dir, ignore_errors=True)
