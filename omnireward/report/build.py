"""Write a report folder from a scores file: summary.json, plots/*.png, index.html, pairs.html, media/.

    write_report("test.scores.jsonl", "report/")           # `omnireward eval ... --report report/`
    write_pairs("test.scores.jsonl", "pairs/", data=...)   # `omnireward inspect`

The records behind the scores (prompts, responses, media) come from `data`, or from the input
file named in the scores' summary (SCORES.summary.json, written by `omnireward score`).
"""

from __future__ import annotations

import json
from pathlib import Path

from omnireward.data.prep import read_pairs
from omnireward.data.records import Pair
from omnireward.errors import DataFormatError
from omnireward.report import html, pairs, plots
from omnireward.report.benchmark import identify
from omnireward.report.bias import diagnostics as bias_diagnostics
from omnireward.report.headline import headline
from omnireward.report.media import MediaShelf
from omnireward.report.summary import report_summary

SUMMARY = "summary.json"
INDEX = "index.html"
PAIRS = "pairs.html"


def scores_summary(scores: Path) -> dict:
    """The summary `omnireward score` wrote beside a scores file ({} when there is none)."""
    # deferred: a report reads scores files without loading torch
    from omnireward.scoring.bt import summary_path

    p = summary_path(scores)
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataFormatError(f"not valid JSON ({e.msg})", file=p, line=e.lineno) from None


def records_path(scores: Path, data: str | Path | None) -> Path | None:
    """`data`, else the summary's `input` (as written, or relative to the scores file's folder)."""
    if data is not None:
        if not Path(data).exists():
            raise DataFormatError("no such file or folder", file=data, field="--data")
        return Path(data)
    given = scores_summary(scores).get("input")
    if not given:
        return None
    for candidate in (Path(given), scores.parent / given, scores.parent / Path(given).name):
        if candidate.exists():
            return candidate
    return None


def load_records(path: Path | None, media_root=None) -> dict:
    """Records by id ({} without a path)."""
    if path is None:
        return {}
    return {r.id: r for r in read_pairs(path, media_root=media_root, allow_outside_root=True)}


def _copy_media(shown: list[dict], records: dict, shelf: MediaShelf, show_progress: bool = True) -> None:
    """Copy (and render, for meshes) the media of the shown pairs, with a progress bar: meshes
    and large clips make this the slow part of a report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not show_progress,
    ) as bar:
        for line in bar.track(shown, description="report media"):
            rec = records.get(line.get("id"))
            if rec is not None:
                for m in [*rec.prompt_media, *rec.response1.media, *rec.response2.media]:
                    shelf.html(m)  # cached: the page reuses it


def _write_pairs(
    out: Path, lines: list[dict], records: dict, eps, *, n_wrong: int, n_right: int, seed: int, note: str
) -> None:
    wrong, right = pairs.pick(lines, eps, n_wrong=n_wrong, n_right=n_right, seed=seed)
    records = {k: v for k, v in records.items() if isinstance(v, Pair)}
    shelf = MediaShelf(out)
    _copy_media(wrong + right, records, shelf)
    (out / PAIRS).write_text(html.pairs_page(wrong, right, records, shelf, note=note))


def write_report(
    scores: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    benchmark: str | None = None,
    media_root=None,
    n_wrong: int = 24,
    n_right: int = 8,
    seed: int = 0,
    n_boot: int | None = None,
) -> Path:
    """The full report for a scores file; returns the path of index.html."""
    # deferred: a report reads scores files without loading torch
    from omnireward.scoring.evaluate import read_scores

    scores, out = Path(scores), Path(out)
    lines = read_scores(scores)
    meta = scores_summary(scores)
    src = records_path(scores, data)
    records = load_records(src, media_root)
    bench = identify(src, benchmark)
    extra = {"input": str(scores), "records": str(src) if src else None, "model": meta.get("model")}
    kwargs = {"n_boot": n_boot} if n_boot else {}
    summary = report_summary(lines, benchmark=bench, records=records, seed=seed, extra=extra, **kwargs)
    summary["bias"] = bias_diagnostics(lines, records, _train_stats(meta.get("model")))
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY).write_text(json.dumps(summary, indent=2))
    drawn = plots.draw_all(summary, out / "plots")
    note = "" if records else "The records behind these scores were not found: pass --data to show prompts and media."
    _write_pairs(
        out,
        lines,
        records,
        summary["accuracy"]["overall"]["tie_threshold"],
        n_wrong=n_wrong,
        n_right=n_right,
        seed=seed,
        note=note,
    )
    (out / INDEX).write_text(html.index_page(summary, drawn, PAIRS))
    return out / INDEX


def _train_stats(model) -> dict | None:
    """The training responses' reward statistics of the model folder the scores came from, if it is here."""
    # deferred: a report reads scores files without loading torch
    from omnireward.model_folder import reward_stats

    if not model or not Path(str(model)).is_dir():
        return None
    try:
        return reward_stats(model)
    except (OSError, ValueError):
        return None


def write_pairs(
    scores: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    media_root=None,
    n_wrong: int = 24,
    n_right: int = 8,
    seed: int = 0,
) -> Path:
    """Only the pairs page (with media) for any scores file; returns the path of pairs.html."""
    # deferred: a report reads scores files without loading torch
    from omnireward.scoring.bt import summary_of
    from omnireward.scoring.evaluate import read_scores

    scores, out = Path(scores), Path(out)
    lines = read_scores(scores)
    src = records_path(scores, data)
    if src is None:
        raise DataFormatError(
            "cannot find the records these scores belong to (the scores summary names no "
            "input that exists here); pass --data",
            file=scores,
        )
    out.mkdir(parents=True, exist_ok=True)
    eps = summary_of(lines).get("tie_threshold")
    _write_pairs(
        out,
        lines,
        load_records(src, media_root),
        eps,
        n_wrong=n_wrong,
        n_right=n_right,
        seed=seed,
        note=f"scores: {scores} · records: {src}",
    )
    return out / PAIRS


def benchmark_headline(
    scores: str | Path, *, data: str | Path | None = None, benchmark: str | None = None, media_root=None
) -> dict | None:
    """The benchmark's own headline figure for a scores file (None when it is not a known benchmark)."""
    # deferred: a report reads scores files without loading torch
    from omnireward.scoring.evaluate import read_scores

    scores = Path(scores)
    src = records_path(scores, data)
    bench = identify(src, benchmark)
    if bench is None:
        return None
    return headline(bench, read_scores(scores), load_records(src, media_root))
