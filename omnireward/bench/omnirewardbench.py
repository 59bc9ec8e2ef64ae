"""Omni-RewardBench at full size: from the published layout (nine `{task}_preferences.json` files and
`media_data.zip`) to the paper's table, this run beside the published rows.

    prepare(folder)                 -> extracts media_data.zip when needed, writes folder/pairs.jsonl
    run(folder, model, out, quant)  -> prepare, score (4-bit on one GPU by default), table files
    paper_table(summary)            -> rows of the paper's table (9 tasks + Overall, w/ and w/o ties)

The Overall column is the mean of the task figures, as the paper defines it (Appendix G: the
average over the modalities a model supports), not the pooled accuracy.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from omnireward.data.formats import omnirewardbench as reader
from omnireward.data.prep import prep
from omnireward.data.records import TASKS
from omnireward.errors import DataFormatError
from omnireward.report.published import load as load_published
from omnireward.scoring.bt import score_file
from omnireward.scoring.models import resolve_model

MEDIA_DIR = "media_data"
ZIP_NAME = "media_data.zip"
# The paper's column order and headers (Table 1).
COLUMNS = [
    ("text_to_text", "T2T"),
    ("text_image_to_text", "TI2T"),
    ("text_video_to_text", "TV2T"),
    ("text_audio_to_text", "TA2T"),
    ("text_to_image", "T2I"),
    ("text_to_video", "T2V"),
    ("text_to_audio", "T2A"),
    ("text_to_3d", "T23D"),
    ("text_image_to_image", "TI2I"),
]
assert {c for c, _ in COLUMNS} == set(TASKS)
METRICS = {"accuracy_without_ties": "w/o Ties", "accuracy_with_ties": "w/ Ties"}
OTHER_METRICS = {"lightrft_accuracy": "acc. (ties not stated)"}


def extract_media(folder: Path) -> Path:
    """`folder/media_data/`, extracting `folder/media_data.zip` first when the folder is missing.

    Members that would land outside `media_data/` are refused (one line naming the member).
    """
    target = folder / MEDIA_DIR
    if target.is_dir():
        return target
    archive = folder / ZIP_NAME
    if not archive.is_file():
        raise DataFormatError(
            f"neither {MEDIA_DIR}/ nor {ZIP_NAME} here (download the benchmark's media zip "
            f"beside the preference files)",
            file=folder,
        )
    tmp = folder / f".{MEDIA_DIR}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            for n in names:
                p = PurePosixPath(n)
                if p.is_absolute() or ".." in p.parts:
                    raise DataFormatError(f"archive member {n!r} would land outside {MEDIA_DIR}/", file=archive)
            z.extractall(tmp)
    except zipfile.BadZipFile as e:
        raise DataFormatError(f"not a readable zip archive ({e})", file=archive) from None
    # The archive may hold media_data/... or the media folders themselves.
    nested = bool(names) and all(PurePosixPath(n).parts[:1] == (MEDIA_DIR,) for n in names)
    (tmp / MEDIA_DIR if nested else tmp).rename(target)
    if tmp.exists():
        shutil.rmtree(tmp)
    return target


def prepare(folder: str | Path, out: str | Path | None = None) -> tuple[Path, object]:
    """Extract the media and convert the nine preference files to native JSONL (`folder/pairs.jsonl`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError("no such folder", file=folder)
    if not reader.bench_files(folder):
        raise DataFormatError("no {task}_preferences.json files in this folder", file=folder)
    extract_media(folder)
    out = Path(out) if out else folder / "pairs.jsonl"
    report = prep(folder, "omnirewardbench", out, check_media=True)
    return out, report


def paper_table(summary: dict) -> list[dict]:
    """This run's rows in the paper's terms: per task and Overall (mean of the tasks present), w/o and w/ ties."""
    per_task = summary.get("per_task") or {}
    rows = []
    for metric, label in METRICS.items():
        values = {t: per_task[t][metric] for t, _ in COLUMNS if t in per_task and per_task[t].get(metric) is not None}
        if values:
            values["overall"] = sum(values.values()) / len(values)
        rows.append(
            {
                "model": "this run",
                "metric": metric,
                "label": label,
                "values": values,
                "source": summary.get("input", ""),
            }
        )
    return rows


def published_rows(models: tuple[str, ...] | None = None) -> list[dict]:
    """The published rows of Omni-RewardBench (fractions), each with its source."""
    doc = load_published("omnirewardbench") or {"rows": []}
    scale = 0.01 if doc.get("unit") == "percent" else 1.0
    out = []
    for row in doc["rows"]:
        if models and row["model"] not in models:
            continue
        out.append(
            {
                "model": row["model"],
                "metric": row["metric"],
                "label": METRICS.get(row["metric"]) or OTHER_METRICS.get(row["metric"], row["metric"]),
                "values": {k: v * scale for k, v in row["values"].items()},
                "source": row["source"],
            }
        )
    return out


def markdown(rows: list[dict]) -> str:
    """The table as Markdown: one row per model and metric, the paper's columns, sources below."""
    head = ["model", "metric"] + [h for _, h in COLUMNS] + ["Overall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sources = []
    for r in rows:
        cells = [r["model"], r["label"]]
        for key in [c for c, _ in COLUMNS] + ["overall"]:
            v = r["values"].get(key)
            cells.append("—" if v is None else f"{100 * v:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
        if r["model"] != "this run":
            sources.append(f"- {r['model']} ({r['label']}): {r['source']}")
    return "\n".join(lines) + ("\n\nSources:\n" + "\n".join(sources) if sources else "") + "\n"


def run(
    folder: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    quant: str = "4bit",
    batch_size: int = 8,
    device: str = "auto",
    overwrite: bool = False,
) -> dict:
    """Prepare the benchmark, score it with `model` (resumable), and write `out/table.md`,
    `out/table.json` and the scores; returns {"rows", "summary", "scores", "prep"}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs, report = prepare(folder)
    scores = out / "omnirewardbench.scores.jsonl"
    summary = score_file(
        pairs, resolve_model(str(model)), scores, batch_size=batch_size, quant=quant, device=device, overwrite=overwrite
    )
    rows = paper_table(summary) + published_rows()
    (out / "table.md").write_text(markdown(rows))
    (out / "table.json").write_text(
        json.dumps({"rows": rows, "quant": quant, "model": str(model), "n_pairs": summary.get("n")}, indent=2)
    )
    return {"rows": rows, "summary": summary, "scores": scores, "prep": report}
