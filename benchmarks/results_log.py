"""One results line per benchmark run: command, commit, machine, date and figures.

Every benchmark script ends with `append(name, figures)`, which writes one JSON line to
`benchmarks/results/<name>.jsonl`. Lines are never edited: a figure that changes is measured
again and a new line appended. `report.py` renders the docs' tables from the newest lines.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    """HEAD's short hash, with `+dirty` when tracked files differ from it ("unknown" outside git).

    The results files themselves do not count: a benchmark that appended a line leaves the code as it
    was, and the next run of the same tree measures the same commit."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=RESULTS.parent, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short=10", "HEAD")
    if not head:
        return "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ":/", f":(exclude){RESULTS.name}")
    return head + ("+dirty" if changed else "")


START_COMMIT = commit()  # read when a benchmark script imports this module, i.e. when it starts


def machine() -> dict:
    """Cores, memory, CPU model, GPU (or none) and the library versions that move figures."""
    info: dict = {"arch": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(x for x in f if x.startswith("MemTotal")).split()[1])
        info["ram_gib"] = round(kb / 1024**2, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(x for x in f if x.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        info["gpu"] = "unknown"
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    try:  # other processes on the cores make timings rough: say how busy the machine was
        info["load_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def command() -> str:
    """The command line that ran, as a user would type it from the repository root."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(RESULTS.parent.parent)
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def append(name: str, figures: dict, *, results_dir: str | Path | None = None, **fields) -> dict:
    """Append one results line to results/<name>.jsonl and return it (the commit is the one the
    script started from, so a commit made while it ran does not claim its figures). `results_dir`
    writes to another folder instead (a smoke run that must not touch the repository's files)."""
    line = {
        "bench": name,
        "command": command(),
        "commit": START_COMMIT,
        "machine": machine(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **fields,
        "figures": figures,
    }
    folder = RESULTS if results_dir is None else Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    return line


def lines(name: str) -> list[dict]:
    """Every results line of results/<name>.jsonl, oldest first."""
    path = RESULTS / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


class ReportError(Exception):
    """A marked figure whose results line is missing or incomplete."""


def dig(obj, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


_READING: list[list[dict]] = []  # open `reading()` blocks, innermost last


@contextlib.contextmanager
def reading():
    """Collect every results line `newest` returns inside the block (report.py checks their commits)."""
    rows: list[dict] = []
    _READING.append(rows)
    try:
        yield rows
    finally:
        _READING.pop()


def newest(file: str, where: list[str]) -> dict:
    """The newest line of results/<file>.jsonl matching every key:value filter."""
    rows = lines(file)
    if not rows:
        raise ReportError(f"no results file benchmarks/results/{file}.jsonl")
    for row in reversed(rows):
        if all(str(dig(row, k)) == v for k, v in (w.split(":", 1) for w in where)):
            if row.get("commit", "unknown") == "unknown":
                raise ReportError(f"{file}: the newest line matching {where} has no commit")
            for rows in _READING:
                rows.append(row)
            return row
    raise ReportError(f"{file}: no line matches {' '.join(where)}")


def fmt(value, spec: str | None) -> str:
    if value is None:
        return "—"
    if spec is None:
        return str(value)
    if spec == "pct":
        return f"{100 * value:.1f} %"
    if spec == "x":
        return f"{value:.1f}×"
    if spec == "int":
        return f"{round(value):d}"
    if spec == "s":
        return f"{value:.0f} s"
    if spec == "min":
        return f"{value / 60:.1f} min"
    return format(value, spec)
