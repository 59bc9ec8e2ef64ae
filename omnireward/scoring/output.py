"""A scores file that grows batch by batch and survives a kill.

While a run goes, each finished batch is appended to OUT.partial (scoring order, each line with
its input position `_pos`) with one write and fsynced, so after `kill -9` it holds whole
batches, at most followed by a torn last line, which the next run cuts off. Progress is that file
itself (its complete lines). When every record is scored, OUT is written from it in input order
(scoring order differs only within a window, so this holds one window at a time), then the
summary, then OUT.state.json is marked complete and OUT.partial removed. OUT.state.json holds
what the file was made from (`identity.run_identity`); OUT.rejects.jsonl the unreadable records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from omnireward.errors import ResumeError
from omnireward.scoring.identity import differences


def sidecar(out: Path, suffix: str) -> Path:
    return out.with_name(out.name + suffix)


def summary_path(out: str | Path) -> Path:
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    return out.with_name(stem + ".summary.json")


class ScoresFile:
    """The output of one scoring run and its sidecar files."""

    def __init__(self, out: str | Path):
        self.path = Path(out)
        self.state_path = sidecar(self.path, ".state.json")
        self.partial_path = sidecar(self.path, ".partial")
        self.rejects_path = sidecar(self.path, ".rejects.jsonl")
        self.summary_path = summary_path(self.path)
        self._fd: int | None = None
        self.was_complete = False

    # ---- starting and resuming --------------------------------------------------------------
    def open(self, identity: dict, *, overwrite: bool = False) -> int:
        """Claim the output for this run; returns how many lines it already holds (0 when new).

        Refuses (ResumeError, one line) a file made from another model, input or options, and a
        file that no resumable run wrote; `overwrite` removes the old output first.
        """
        if overwrite:
            for p in (self.path, self.state_path, self.rejects_path, self.summary_path, self.partial_path):
                p.unlink(missing_ok=True)
        if self.state_path.exists():
            try:
                stored = json.loads(self.state_path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ResumeError(f"unreadable ({e}); pass --overwrite to start over", file=self.state_path) from None
            diff = differences(stored.get("identity", {}), identity)
            if diff:
                raise ResumeError(
                    f"was scored with a different {', '.join(diff)}; pass --overwrite to start "
                    "over or choose another --out",
                    file=self.path,
                )
            self.was_complete = bool(stored.get("complete")) and self.summary_path.exists()
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise ResumeError(
                f"exists but has no {self.state_path.name}, so no resumable run wrote it; pass "
                "--overwrite to replace it or choose another --out",
                file=self.path,
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.was_complete:
            self.partial_path.unlink(missing_ok=True)
            return 0
        self._write_state({"identity": identity, "complete": False})
        done = self._cut_torn_line()
        self._fd = os.open(self.partial_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return done

    def _cut_torn_line(self) -> int:
        """Drop an incomplete last line (a write cut by a kill); the number of complete lines."""
        if not self.partial_path.exists():
            return 0
        n, size, last_newline = 0, 0, 0
        with self.partial_path.open("rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
                pos = chunk.rfind(b"\n")
                if pos >= 0:
                    last_newline = size + pos + 1
                size += len(chunk)
        if last_newline < size:
            os.truncate(self.partial_path, last_newline)
        return n

    def ids(self) -> Iterator[str]:
        """The ids of the lines already written, in order (to check that a resumed run lines up)."""
        if not self.partial_path.exists():
            return
        with self.partial_path.open("rb") as f:
            for raw in f:
                yield json.loads(raw)["id"]

    # ---- writing ------------------------------------------------------------------------------
    def append(self, lines: list[dict]) -> None:
        """Append one batch's lines with a single write, then fsync."""
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def lines(self) -> Iterator[dict]:
        """Every line of the output, read one at a time."""
        with self.path.open("rb") as f:
            for raw in f:
                yield json.loads(raw)

    def write_in_input_order(self) -> None:
        """OUT from OUT.partial, lines in input order and without `_pos` (atomically replaced)."""
        self.close()
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        held: dict[int, bytes] = {}
        nxt = 0
        with self.partial_path.open("rb") as src, tmp.open("wb") as dst:
            for raw in src:
                line = json.loads(raw)
                pos = line.pop("_pos")
                held[pos] = (json.dumps(line, ensure_ascii=False) + "\n").encode()
                while nxt in held:
                    dst.write(held.pop(nxt))
                    nxt += 1
            if held:
                raise ResumeError(
                    f"positions {sorted(held)[:5]} are missing; pass --overwrite to start over", file=self.partial_path
                )
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)

    def finish(self, summary: dict) -> None:
        """Write the summary, mark the run complete, drop OUT.partial."""
        self.close()
        _atomic_write(self.summary_path, json.dumps(summary, indent=2))
        state = json.loads(self.state_path.read_text())
        self._write_state({**state, "complete": True})
        self.partial_path.unlink(missing_ok=True)

    def is_complete(self) -> bool:
        try:
            return bool(json.loads(self.state_path.read_text()).get("complete"))
        except (OSError, json.JSONDecodeError):
            return False

    def _write_state(self, state: dict) -> None:
        _atomic_write(self.state_path, json.dumps(state, indent=2))


class Rejects:
    """OUT.rejects.jsonl, rewritten by every run: reading starts at the top each time, so the
    records refused before a kill are met (and written) again."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self._f = None

    def add(self, entry: dict) -> None:
        if self._f is None:
            self._f = self.path.open("w", encoding="utf-8")
        self._f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._f.flush()
        self.count += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        elif self.path.exists():
            self.path.unlink()  # none this time: a stale file from an earlier run would mislead


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
