"""Tell a source's format from its folder layout or its first record's keys (`--format auto`)."""

from __future__ import annotations

from pathlib import Path

from omnireward.data.formats import (
    editrewardbench,
    hpdv3,
    imagerewarddb,
    mjbench,
    mmrb2,
    mmrewardbench,
    omnirewardbench,
    rewardbench2,
    sharegpt,
    videogenrewardbench,
)
from omnireward.data.io import first_raw
from omnireward.errors import DataFormatError

FORMATS = (
    "native",
    "omnirewardbench",
    "sharegpt",
    "trl",
    "vlrewardbench",
    "genaibench",
    "rewardbench",
    "videogenrewardbench",
    "rewardbench2",
    "mmrb2",
    "mmrewardbench",
    "editrewardbench",
    "hpdv3",
    "imagerewarddb",
    "mjbench",
)


def detect_format(path: str | Path) -> str:
    """One of FORMATS; raises DataFormatError naming what was found when none fits."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError("no such file or folder", file=path)
    if path.is_dir():
        if omnirewardbench.bench_files(path):
            return "omnirewardbench"
        if sharegpt.is_registry(path):
            return "sharegpt"
        if mmrb2.bench_files(path):
            return "mmrb2"
        if mjbench.bench_files(path) and is_mjbench_file(mjbench.bench_files(path)[0]):
            return "mjbench"
        raise DataFormatError(
            "cannot tell the format of this folder (expected Omni-RewardBench "
            "{task}_preferences.json files, MMRB2 task files, MJ-Bench subset files or a dataset_info.json registry)",
            file=path,
        )
    if omnirewardbench.task_of(path):
        return "omnirewardbench"
    if sharegpt.is_registry(path):
        return "sharegpt"
    if path.suffix.lower() == ".csv":
        if videogenrewardbench.is_videogen_csv(path):
            return "videogenrewardbench"
        raise DataFormatError(
            "a CSV file is read only as VideoGen-RewardBench (columns path_A, path_B, prompt)", file=path, line=1
        )
    return format_of_record(first_raw(path), path)


def is_mjbench_file(path: Path) -> bool:
    try:
        raw = first_raw(path)
    except DataFormatError:
        return False
    return isinstance(raw, dict) and mjbench.is_mjbench(raw)


def format_of_record(raw: object, path: str | Path | None = None) -> str:
    """The format a single raw record belongs to, by its keys."""
    if not isinstance(raw, dict):
        raise DataFormatError(f"expected records to be JSON objects, got {type(raw).__name__}", file=path, line=1)
    keys = raw.keys()
    if "criteria_preference" in keys:
        return "omnirewardbench"
    if "response1" in keys or "responses" in keys or ("response" in keys and "query" not in keys):
        return "native"
    if rewardbench2.is_rewardbench2(raw):
        return "rewardbench2"
    if mmrb2.is_mmrb2(raw):
        return "mmrb2"
    if mmrewardbench.is_mmrewardbench(raw):
        return "mmrewardbench"
    if editrewardbench.is_editrewardbench(raw):
        return "editrewardbench"
    if hpdv3.is_hpdv3(raw):
        return "hpdv3"
    if imagerewarddb.is_imagerewarddb(raw):
        return "imagerewarddb"
    if mjbench.is_mjbench(raw):
        return "mjbench"
    if "chosen" in keys and "rejected" in keys:
        if "subset" in keys and isinstance(raw.get("chosen"), str):
            return "rewardbench"
        if "conversations" in keys or isinstance(raw.get("chosen"), dict):
            return "sharegpt"
        return "trl"
    if "query" in keys and "human_ranking" in keys:
        return "vlrewardbench"
    if "video_left" in keys and "vote_type" in keys:
        return "genaibench"
    shown = ", ".join(sorted(map(str, keys))[:12]) or "none"
    raise DataFormatError(
        f"cannot tell the format from the first record's keys ({shown}); pass --format (one of {', '.join(FORMATS)})",
        file=path,
    )
