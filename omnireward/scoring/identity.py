"""What a scores file was made from: content digests of the model folder and the input, and the options.

A resumed run continues a scores file only when all three are the same; digests are of file
contents (a retrained model saved over the old one, or an edited input, is a different run), and
are remembered per (path, size, mtime) so a large model folder is read once, not at every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from omnireward.cache import cache_dir

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, cached by its resolved path, size and modification time."""
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    memo = cache_dir("digests") / key
    if memo.exists():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    tmp = memo.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(digest)
    tmp.replace(memo)
    return digest


# Training leaves these beside a saved model; they do not change its rewards.
_NOT_MODEL = ("checkpoints", "lightning_logs", "logs", "tensorboard", "csv", "report")
# Checkpoints and logs, and what scoring and eval write into a model folder (`make demo` scores into
# RUN/test.scores.jsonl and renders RUN/report): none of it loads, so none of it changes the model.
_NOT_MODEL_SUFFIXES = (".ckpt", ".log", ".csv", ".jsonl", ".scores.summary.json", ".jsonl.state.json")
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".parquet", ".pq")


def tree_digest(path: str | Path, *, keep=lambda rel: True) -> str:
    """Digest of a file, or of the files of a folder that `keep(relative name)` selects (names and contents)."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or not keep(rel):
            continue
        h.update(f"{rel}\0{file_digest(f)}\n".encode())
    return h.hexdigest()


def _model_file(rel: str) -> bool:
    return rel.split("/")[0] not in _NOT_MODEL and not rel.endswith(_NOT_MODEL_SUFFIXES) and "tfevents" not in rel


def _data_file(rel: str) -> bool:
    return rel.lower().endswith(DATA_SUFFIXES)


def source_identity(source: str | Path | None, *, model: bool = False) -> dict:
    """A local file or folder by content; anything else (a hub id, the embedded default) by name.

    A model folder counts the files that load (not checkpoints or logs); an input folder its
    data files (not the media beside them).
    """
    if source is None:
        return {"name": "embedded"}
    p = Path(source)
    if p.exists():
        return {"path": str(p.resolve()), "sha256": tree_digest(p, keep=_model_file if model else _data_file)}
    return {"name": str(source)}


def run_identity(model: str | Path | None, source, options: dict) -> dict:
    """The identity stored beside a scores file: {"model", "input", "options"}. `source` is the
    input's `InputSource` (its digest taken once) or a path."""
    return {
        "model": source_identity(model, model=True),
        "input": source.identity if hasattr(source, "identity") else source_identity(source),
        "options": json.loads(json.dumps(options, default=str)),
    }


def differences(stored: dict, current: dict) -> list[str]:
    """Which parts differ: "model", "input" or "options.<name>" (paths alone may move)."""
    out = []
    for part in ("model", "input"):
        a, b = stored.get(part, {}), current.get(part, {})
        if a.get("sha256", a.get("name")) != b.get("sha256", b.get("name")):
            out.append(part)
    so, co = stored.get("options", {}), current.get("options", {})
    out += [f"options.{k}" for k in sorted(set(so) | set(co)) if so.get(k) != co.get(k)]
    return out
