"""Score pairs, pointwise items and groups with a BT reward model; write scores.jsonl and a summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omnireward.config import group_options
from omnireward.data.io import write_jsonl
from omnireward.data.records import Record, length_hint
from omnireward.errors import ConfigError
from omnireward.metrics import agreement
from omnireward.quant.cpu import check_cpu_precision, precision_details
from omnireward.quant.options import CPU_PRECISIONS, SCORING_QUANTS
from omnireward.scoring.batch import score_batch
from omnireward.scoring.identity import run_identity
from omnireward.scoring.load import load_for_scoring, pick_device
from omnireward.scoring.output import ScoresFile, summary_path
from omnireward.scoring.pipeline import BTScorer
from omnireward.scoring.progress import progress
from omnireward.scoring.source import InputSource
from omnireward.scoring.stream import score_stream
from omnireward.scoring.summary import summarize_lines

__all__ = ["BTModel", "progress", "reward_records", "score_file", "summary_of", "summary_path", "write_scores"]


def reward_records(
    model, records: list[Record], batch_size: int = 16, *, show_progress: bool = True, description: str = "scoring"
) -> list[dict]:
    """One line per record, in input order: reward1/reward2/margin for pairs, reward for items,
    rewards/ranking/best for groups (see `batch.line_for`).

    `batch_size` records per forward pass (a pair is 2 sequences, a group of N is N); batches are
    sorted by length so padding stays small; rewards do not depend on batching.
    """
    model.eval()
    order = sorted(range(len(records)), key=lambda i: length_hint(records[i]))
    results: dict[int, dict] = {}
    with progress() as bar:
        task = bar.add_task(description, total=len(records), visible=show_progress, unit="records")
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            for i, line in zip(idx, score_batch(model, [records[i] for i in idx])):
                results[i] = line
            bar.advance(task, len(idx))
    return [results[i] for i in range(len(records))]


def summary_of(lines) -> dict:
    """The summary over the lines of a scores file (pair accuracy, group best-of-N; see summary.py)."""
    return summarize_lines(lines)


def write_scores(lines: list[dict], out: str | Path, extra: dict | None = None) -> dict:
    """Write scores.jsonl and scores.summary.json beside it at once; returns the summary."""
    write_jsonl(out, lines)
    summary = summary_of(lines)
    if extra:
        summary.update(extra)
    summary_path(out).write_text(json.dumps(summary, indent=2))
    return summary


@dataclass
class BTModel:
    """Builds the BT scorer: loads the model folder (in this process, or once per Ray actor)."""

    model_dir: str | Path  # a path, or a model_folder.Folder with its config read
    quant: str = "none"
    device: str = "auto"
    prefix_sharing: bool = True  # a record's responses share its prompt's computation (same rewards)

    def __call__(self):
        model = load_for_scoring(self.model_dir, quant=self.quant, device=self.device)
        model.prefix_sharing = self.prefix_sharing
        return BTScorer(model)


def check_quant(quant, device: str = "auto", engine: str = "local", ray=None) -> None:
    """Refuse, in one line and before anything is written, a `--quant` that cannot score here: an
    unknown name, int8 on a GPU (its kernels are CPU kernels), bf16 without bf16 instructions."""
    import torch

    if not isinstance(quant, str):
        return  # a `Quantization`: checked where it was built
    if quant not in CPU_PRECISIONS:
        if quant not in SCORING_QUANTS and quant not in group_options()["quant"]:
            raise ConfigError(
                f"unknown quantisation {quant!r}; expected one of {', '.join(SCORING_QUANTS)}", field="--quant"
            )
        return
    if engine == "ray" and device == "auto":  # each actor takes a GPU when it is given one
        dev = torch.device("cuda" if ray is not None and ray.gpus_per_worker > 0 else "cpu")
    else:
        dev = pick_device(device)
    check_cpu_precision(quant, dev)


def score_file(
    path: str | Path,
    model_dir: str | Path,
    out: str | Path,
    *,
    batch_size: int = 16,
    media_root: str | None = None,
    allow_outside_root: bool = False,
    quant: str = "none",
    compare_full: bool = False,
    device: str = "auto",
    fmt: str = "auto",
    overwrite: bool = False,
    workers: int = 1,
    on_bad_record: str = "reject",
    engine: str = "local",
    ray=None,
    show_progress: bool = True,
    prefix_sharing: bool = True,
) -> dict:
    """`omnireward score`: rewards for every record of `path`, streamed into `out`, plus the summary.

    Resumable: rerun with the same arguments to continue after a kill (see scoring/stream.py).
    `prefix_sharing` computes each record's prompt once for all its responses (same rewards).
    With `compare_full` (and a quantised model) the same records are also scored in full
    precision into OUT.full.jsonl, and the summary reports the agreement.
    """
    check_quant(quant, device, engine, ray)
    source = InputSource.open(path, fmt)  # checked, detected, counted and digested once
    options = {
        "quant": quant,
        "format": fmt,
        "media_root": str(Path(media_root).resolve()) if media_root else None,
        "allow_outside_root": allow_outside_root,
        "on_bad_record": on_bad_record,
    }
    if quant == "int8":  # activations are quantised per batch: the rewards depend on how records are batched
        options.update(batch_size=batch_size, prefix_sharing=prefix_sharing)
    common = dict(
        batch_size=batch_size,
        fmt=fmt,
        media_root=media_root,
        allow_outside_root=allow_outside_root,
        overwrite=overwrite,
        workers=workers,
        on_bad_record=on_bad_record,
        engine=engine,
        ray=ray,
        show_progress=show_progress,
    )
    extra = {"model": str(model_dir), "input": str(path), "quant": quant}
    if quant in CPU_PRECISIONS:
        extra["quant_details"] = precision_details(quant)
    if compare_full and quant != "none":
        out_full = Path(out).with_name(Path(out).name.removesuffix(".jsonl") + ".full.jsonl")
        score_stream(
            source,
            out_full,
            BTModel(model_dir, "none", device, prefix_sharing),
            run_identity(model_dir, source, {**options, "quant": "none"}),
            description="full precision",
            **common,
        )
        summary = score_stream(
            source,
            out,
            BTModel(model_dir, quant, device, prefix_sharing),
            run_identity(model_dir, source, options),
            extra_summary=extra,
            **common,
        )
        quant_file, full_file = ScoresFile(out), ScoresFile(out_full)
        summary["agreement_with_full_precision"] = agreement(list(full_file.lines()), list(quant_file.lines()))
        quant_file.summary_path.write_text(json.dumps(summary, indent=2))
        return summary
    return score_stream(
        source,
        out,
        BTModel(model_dir, quant, device, prefix_sharing),
        run_identity(model_dir, source, options),
        extra_summary=extra,
        **common,
    )
