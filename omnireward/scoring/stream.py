"""Streaming, resumable scoring of a file: read lazily, score batch by batch, append, resume after a kill.

    summary = score_stream("pairs.jsonl", "scores.jsonl", BTModel(model_dir), identity, batch_size=16)

Records are read one at a time (JSONL line by line, parquet by row batches; a JSON document is
parsed whole), sorted by length within windows of `plan.WINDOW` records, scored by a scorer
(`pipeline.Scorer`) on this machine or on Ray, and each finished batch is appended to the
output and fsynced. Rerunning the same command continues where the last run stopped;
a different model, input or option under the same output is refused in one line.
Records that cannot be read go to OUT.rejects.jsonl (`on_bad_record="reject"`, the default)
or stop the run with FILE:LINE: field (`"stop"`); nothing is dropped silently.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnireward.data.prep import reject_line
from omnireward.data.records import Group, Item, Pair
from omnireward.errors import ConfigError
from omnireward.scoring import ray_engine
from omnireward.scoring.output import Rejects, ScoresFile
from omnireward.scoring.plan import pending, plan, read_records
from omnireward.scoring.progress import progress
from omnireward.scoring.source import InputSource

ENGINES = ("local", "ray")
ON_BAD = ("reject", "stop")
_UNITS = {Pair: "pairs", Item: "items", Group: "groups"}


@dataclass
class RayOptions:
    """Where and how wide `--engine ray` runs."""

    address: str | None = None  # None: join RAY_ADDRESS or start a local cluster
    num_workers: int = 2  # scoring actors, each loading the model once
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0


def score_stream(
    path: InputSource | str | Path,
    out: str | Path,
    factory: Callable,
    identity: dict,
    *,
    batch_size: int = 16,
    fmt: str = "auto",
    media_root=None,
    allow_outside_root: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    on_bad_record: str = "reject",
    engine: str = "local",
    ray: RayOptions | None = None,
    show_progress: bool = True,
    description: str = "scoring",
    extra_summary: dict | None = None,
) -> dict:
    """Score `path` (an `InputSource`, or a path opened into one with `fmt`) into `out` and return
    the summary (also written beside `out`).

    `factory()` builds the scorer (it loads the model: once here, or once per Ray actor).
    `workers`: DataLoader processes preparing batches on this machine (0: in this process).
    """
    # deferred: numpy loads only when a run scores
    from omnireward.scoring.summary import summarize_lines

    _check_options(batch_size, workers, on_bad_record, engine)
    source = InputSource.of(path, fmt)  # fails before anything is written beside the output
    sf = ScoresFile(out)
    done = sf.open(identity, overwrite=overwrite)
    if sf.was_complete:
        return json.loads(sf.summary_path.read_text())
    rejects = Rejects(sf.rejects_path)
    total = source.count
    with progress() as bar:
        task = bar.add_task(description, total=total, completed=done, visible=show_progress, unit="records")

        def on_reject(res):
            if on_bad_record == "stop":
                raise res.error.at(file=res.file, line=res.line)
            rejects.add(reject_line(res))
            bar.advance(task, 1)

        kinds: Counter = Counter()

        def unit(batches):  # the bar speaks of the kind of record seen most so far
            for b in batches:
                kinds.update(type(r) for r in b.records)
                bar.update(task, unit=_UNITS.get(kinds.most_common(1)[0][0], "records"))
                yield b

        records = read_records(
            source.path,
            source.format,
            media_root=media_root,
            allow_outside_root=allow_outside_root,
            on_reject=on_reject,
        )
        written = itertools.islice(sf.ids(), done)  # only what was there before this run
        batches = unit(iter(pending(plan(records, batch_size), done, written, sf.path)))
        try:
            if engine == "ray":
                results = ray_engine.run_ray(
                    factory, batches, spool=sf.path.with_name(sf.path.name + ".ray"), options=ray or RayOptions()
                )
            else:
                results = _local(factory(), batches, workers, source.path)
            for n, lines in results:
                sf.append(lines)
                bar.advance(task, n)
        finally:
            sf.close()
            rejects.close()
    sf.write_in_input_order()
    summary = summarize_lines(sf.lines())
    summary["n_rejected"] = rejects.count
    if rejects.count:
        summary["rejects"] = str(sf.rejects_path)
    summary.update(extra_summary or {})
    sf.finish(summary)
    return summary


def _local(scorer, batches, workers: int, path):
    """(records newly written, their lines) per batch, scored in this process."""
    # deferred: torch loads only when records are scored in this process
    from omnireward.scoring.pipeline import run_local

    for planned, lines in run_local(scorer, batches, workers=workers, input_path=path):
        yield len(planned.records) - planned.skip, planned.tag(lines)


def _check_options(batch_size: int, workers: int, on_bad_record: str, engine: str) -> None:
    if batch_size < 1:
        raise ConfigError(f"must be at least 1, got {batch_size}", field="--batch-size")
    if workers < 0:
        raise ConfigError(f"must be 0 or more, got {workers}", field="--workers")
    if on_bad_record not in ON_BAD:
        raise ConfigError(f"expected one of {', '.join(ON_BAD)}, got {on_bad_record!r}", field="--on-bad-record")
    if engine not in ENGINES:
        raise ConfigError(f"expected one of {', '.join(ENGINES)}, got {engine!r}", field="--engine")
