"""`data prep`: convert any supported source to native JSONL, keeping every refused record aside.

Media paths in the output: relative to the output file's folder when the media sit under it
(so the folder can be moved as a whole), absolute otherwise. Absolute paths outside the output
folder need `--media-root` (a folder holding them) or `--allow-outside-root` downstream; the
report counts them and names their common folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from omnireward.data.formats import Result, load, media_fields, resolve_format
from omnireward.data.io import write_jsonl
from omnireward.data.records import Media, Pair, Record, responses_of
from omnireward.errors import DataFormatError, OmniRewardError

_SWAP_LABEL = {"response1": "response2", "response2": "response1", "tie": "tie", None: None}


@dataclass
class PrepReport:
    """What a conversion did: counts per task and per label, where the rejects went."""

    src: str
    format: str
    out: str
    n_read: int = 0
    n_written: int = 0
    n_rejected: int = 0
    n_swapped: int = 0
    n_renamed_ids: int = 0
    rejects_path: str | None = None
    per_task: dict[str, int] = field(default_factory=dict)
    per_label: dict[str, int] = field(default_factory=dict)
    n_absolute_media: int = 0
    absolute_media_root: str | None = None

    def summary(self) -> str:
        """A few human-readable lines for the CLI."""
        lines = [f"{self.n_written} of {self.n_read} records from {self.src} ({self.format}) -> {self.out}"]
        if self.per_task:
            lines.append("tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(self.per_task.items())))
        if self.per_label:
            lines.append("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(self.per_label.items())))
        if self.n_swapped:
            lines.append(f"sides swapped in {self.n_swapped} pairs")
        if self.n_renamed_ids:
            lines.append(
                f"{self.n_renamed_ids} repeated ids made unique as ID#2, ID#3, ... (original in meta.source_id)"
            )
        if self.n_rejected:
            lines.append(f"{self.n_rejected} refused, with reasons, in {self.rejects_path}")
        if self.n_absolute_media:
            lines.append(
                f"{self.n_absolute_media} media paths lie outside the output folder and were written "
                f"absolute; read them with --media-root {self.absolute_media_root}"
            )
        return "\n".join(lines)


def prep(
    src: str | Path,
    fmt: str = "auto",
    out: str | Path = "pairs.jsonl",
    *,
    media_root: str | Path | None = None,
    shuffle_sides: bool = False,
    seed: int = 0,
    check_media: bool = True,
    allow_outside_root: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PrepReport:
    """Convert `src` (read as `fmt`) to native JSONL at `out`; refused records go to `out.rejects.jsonl`.

    `shuffle_sides` swaps response1/response2 (and the label) in about half the pairs, chosen by
    a hash of `seed` and the record id, so formats whose chosen side always comes first do not
    teach a position bias (pairs carrying critiques keep their order: critiques name sides by letter). `check_media` refuses records whose media files are missing.
    Repeated ids are numbered (`ID#2`, ...) so every output id is unique.
    `progress(n)` is called after each source record (for a progress bar).
    Raises DataFormatError when the source holds no records or every record was refused.
    """
    src, out = Path(src), Path(out)
    name = resolve_format(src, fmt)
    report = PrepReport(src=str(src), format=name, out=str(out))
    rejects_path = out.with_name(out.name + ".rejects.jsonl")
    out_dir = out.resolve().parent
    rejects: list[dict] = []
    tasks, labels, outside = Counter(), Counter(), []
    seen: set[str] = set()

    def records() -> Iterator[dict]:
        for res in load(
            src, name, media_root=media_root, allow_outside_root=allow_outside_root, check_media=check_media
        ):
            report.n_read += 1
            if progress:
                progress(report.n_read)
            if not res.ok:
                rejects.append(reject_line(res))
                continue
            record = res.record
            if record.id in seen:
                _rename_duplicate(record, seen)
                report.n_renamed_ids += 1
            seen.add(record.id)
            # Critiques name the sides by letter ("Response A ..."): pairs that carry one keep their order.
            has_critique = isinstance(record, Pair) and (record.critique or record.chosen_critique)
            if shuffle_sides and isinstance(record, Pair) and not has_critique and _coin(seed, record.id):
                record = swap_sides(record)
                report.n_swapped += 1
            outside.extend(_relativize(record, out_dir))
            tasks[record.task] += 1
            if isinstance(record, Pair):
                labels[record.preference or "unlabeled"] += 1
            report.n_written += 1
            yield record.to_dict()
        report.n_rejected = len(rejects)
        _write_rejects(rejects_path, rejects, report)
        if report.n_read == 0:
            raise DataFormatError("the source holds no records", file=src)
        if report.n_written == 0:
            first = rejects[0]
            where = ":".join(str(x) for x in (first["file"], first["line"]) if x is not None)
            hint = " (are the media elsewhere? pass --media-root)" if "not found" in first["reason"] else ""
            raise DataFormatError(
                f"all {report.n_rejected} records were refused; the first: {where}: "
                f"{first['field'] + ': ' if first['field'] else ''}{first['reason']}{hint} "
                f"(every reason is in {rejects_path})"
            )

    write_jsonl(out, records())
    report.per_task, report.per_label = dict(tasks), dict(labels)
    report.n_absolute_media = len(outside)
    if outside:
        report.absolute_media_root = os.path.commonpath([os.path.dirname(p) for p in outside])
    return report


def read_pairs(
    path: str | Path, media_root: str | Path | None = None, *, fmt: str = "auto", allow_outside_root: bool = False
) -> list[Record]:
    """All records of `path` (native or any format) with absolute media paths; raises on the first error."""
    out = []
    for res in load(path, fmt, media_root=media_root, allow_outside_root=allow_outside_root):
        if not res.ok:
            raise res.error
        out.append(res.record)
    if not out:
        raise DataFormatError("the file holds no records", file=path)
    return out


def swap_sides(pair: Pair) -> Pair:
    """The same pair with response1 and response2 (and label, models) exchanged."""
    meta = dict(pair.meta)
    if "model1" in meta or "model2" in meta:
        meta["model1"], meta["model2"] = pair.meta.get("model2"), pair.meta.get("model1")
        meta = {k: v for k, v in meta.items() if v is not None}
    meta["sides_swapped"] = not meta.get("sides_swapped", False)
    return Pair(
        id=pair.id,
        task=pair.task,
        prompt=pair.prompt,
        response1=pair.response2,
        response2=pair.response1,
        preference=_SWAP_LABEL.get(pair.preference),
        criteria=pair.criteria,
        prompt_media=pair.prompt_media,
        margin=pair.margin,
        meta=meta,
        dimension_preferences={k: _SWAP_LABEL[v] for k, v in pair.dimension_preferences.items()},
    )


def reject_line(res: Result) -> dict:
    """One line of the rejects file: where, which field, why, and the raw record."""
    err: OmniRewardError = res.error
    return {
        "line": res.line if res.line is not None else err.line,
        "file": err.file or res.file,
        "field": err.field,
        "reason": err.reason,
        "record": _jsonable(res.raw),
    }


def _rename_duplicate(record: Record, seen: set[str]) -> None:
    """Sources reuse ids for distinct items (VL-RewardBench does): number the repeats, keep the original."""
    k = 2
    while f"{record.id}#{k}" in seen:
        k += 1
    record.meta = {**record.meta, "source_id": record.id}
    record.id = f"{record.id}#{k}"


def _coin(seed: int, rid: str) -> bool:
    return hashlib.sha256(f"{seed}:{rid}".encode()).digest()[0] & 1 == 1


def _relativize(record: Record, out_dir: Path) -> list[str]:
    """Rewrite media paths relative to `out_dir` where possible; returns the ones left absolute."""
    outside = []
    replaced: dict[int, Media] = {}
    for _, m in media_fields(record):
        p = Path(m.path)
        if out_dir in p.parents:
            replaced[id(m)] = Media(m.type, p.relative_to(out_dir).as_posix())
        else:
            outside.append(str(p))
    if replaced:
        record.prompt_media = [replaced.get(id(m), m) for m in record.prompt_media]
        for resp in responses_of(record):
            resp.media = [replaced.get(id(m), m) for m in resp.media]
    return outside


def _write_rejects(path: Path, rejects: list[dict], report: PrepReport) -> None:
    if rejects:
        write_jsonl(path, rejects)
        report.rejects_path = str(path)
    else:
        path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead


def _jsonable(raw):
    return json.loads(json.dumps(raw, ensure_ascii=False, default=repr))
