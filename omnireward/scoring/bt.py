"""Score pairs and pointwise items with a BT reward model; write scores.jsonl and a summary."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from omnireward.data.io import write_jsonl
from omnireward.data.records import Item, Pair, Record
from omnireward.metrics import summarize
from omnireward.prompts import length_hint


def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=False)


@torch.no_grad()
def reward_records(model, records: list[Record], batch_size: int = 16, *, show_progress: bool = True,
                   description: str = "scoring") -> list[dict]:
    """One dict per record, in input order: reward1/reward2/margin for pairs, reward for items.

    Batches are sorted by length so padding stays small; rewards do not depend on batching.
    """
    model.eval()
    order = sorted(range(len(records)), key=lambda i: length_hint(records[i]))
    pairs = [i for i in order if isinstance(records[i], Pair)]
    items = [i for i in order if isinstance(records[i], Item)]
    results: dict[int, dict] = {}
    with progress() as bar:
        task = bar.add_task(description, total=len(records), visible=show_progress)
        for i in range(0, len(pairs), batch_size):
            idx = pairs[i:i + batch_size]
            chunk = [records[j] for j in idx]
            r = model(_to_model(model, model.collate_pairs(chunk))).cpu()
            n = len(chunk)
            for k, j in enumerate(idx):
                results[j] = _pair_line(records[j], float(r[k]), float(r[n + k]))
            bar.advance(task, n)
        for i in range(0, len(items), batch_size):
            idx = items[i:i + batch_size]
            chunk = [records[j] for j in idx]
            r = model(_to_model(model, model.collate(chunk, [c.response for c in chunk]))).cpu()
            for k, j in enumerate(idx):
                results[j] = {"id": records[j].id, "task": records[j].task, "reward": float(r[k])}
            bar.advance(task, len(idx))
    return [results[i] for i in range(len(records))]


def _to_model(model, batch):
    device = next(model.parameters()).device
    return batch.to(device) if device.type != "cpu" else batch


def _pair_line(rec: Pair, r1: float, r2: float) -> dict:
    line = {"id": rec.id, "task": rec.task, "reward1": r1, "reward2": r2, "margin": r1 - r2}
    if rec.preference is not None:
        line["preference"] = rec.preference
    return line


def summary_of(lines: list[dict]) -> dict:
    """The accuracy summary over the labelled pair lines of a scores file."""
    labelled = [x for x in lines if x.get("preference") is not None and "margin" in x]
    s = summarize([x["margin"] for x in labelled], [x["preference"] for x in labelled],
                  [x.get("task") for x in labelled])
    s["n_scored"] = len(lines)
    return s


def summary_path(out: str | Path) -> Path:
    out = Path(out)
    stem = out.name[:-len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    return out.with_name(stem + ".summary.json")


def write_scores(lines: list[dict], out: str | Path, extra: dict | None = None) -> dict:
    """Write scores.jsonl and scores.summary.json beside it; returns the summary."""
    write_jsonl(out, lines)
    summary = summary_of(lines)
    if extra:
        summary.update(extra)
    summary_path(out).write_text(json.dumps(summary, indent=2))
    return summary


def score_file(path: str | Path, model_dir: str | Path, out: str | Path, *, batch_size: int = 16,
               media_root: str | None = None, allow_outside_root: bool = False, quant: str = "none",
               compare_full: bool = False, device: str = "auto", prefix_sharing: bool = True) -> dict:
    """`omnireward score`: rewards for every record of `path`, plus the accuracy summary.

    `prefix_sharing` computes each pair's prompt once (the rewards are the same either way)."""
    from omnireward.data.datamodule import load_records
    from omnireward.scoring.load import load_for_scoring

    records = load_records(path, media_root=media_root, allow_outside_root=allow_outside_root)
    model = load_for_scoring(model_dir, quant=quant, device=device)
    model.prefix_sharing = prefix_sharing
    lines = reward_records(model, records, batch_size)
    extra = {"model": str(model_dir), "input": str(path), "quant": quant}
    if compare_full and quant != "none":
        from omnireward.quant import agreement

        full = reward_records(load_for_scoring(model_dir, quant="none", device=device), records, batch_size,
                              description="full precision")
        extra["agreement_with_full_precision"] = agreement(full, lines)
    return write_scores(lines, out, extra)
