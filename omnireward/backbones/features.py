"""Per-file cache of encoder inputs/features (and transcripts, descriptor lines), so frozen encoders run once per file, not per epoch."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import torch

from omnireward.encoders import descriptors


def _fingerprint(path: Path) -> str:
    st = os.stat(path)
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


class FeatureCache:
    """Memory LRU in front of an optional disk folder; keys are encoder options + file identity."""

    def __init__(self, folder: str | Path | None = None, max_items: int = 4096):
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self._mem: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._texts: OrderedDict[str, str] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def text(self, encoder, path: Path) -> str:
        """`encoder.transcribe(path)`, computed once per file and options like features."""
        return self._text(f"{encoder.transcript_key()}|{_fingerprint(path)}", lambda: encoder.transcribe(path))

    def descriptor(self, media_type: str, path: Path) -> str:
        """The descriptor line of a media file (encoders/descriptors.py), computed once per file and version."""
        return self._text(
            f"descriptors-v{descriptors.VERSION}|{media_type}|{_fingerprint(path)}",
            lambda: descriptors.describe(media_type, path),
        )

    def _text(self, ident: str, compute) -> str:
        key = "t" + hashlib.sha1(ident.encode()).hexdigest()
        if key in self._texts:
            self._texts.move_to_end(key)
            self.hits += 1
            return self._texts[key]
        disk = self.folder / f"{key}.txt" if self.folder else None
        if disk is not None and disk.exists():
            value = disk.read_text(encoding="utf-8")
            self.hits += 1
        else:
            value = compute()
            self.misses += 1
            if disk is not None:
                tmp = disk.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(value, encoding="utf-8")
                tmp.replace(disk)
        self._texts[key] = value
        if len(self._texts) > self.max_items:
            self._texts.popitem(last=False)
        return value

    def get(self, encoder, path: Path) -> torch.Tensor:
        key = hashlib.sha1(f"{encoder.cache_key()}|{_fingerprint(path)}".encode()).hexdigest()
        if key in self._mem:
            self._mem.move_to_end(key)
            self.hits += 1
            return self._mem[key]
        disk = self.folder / f"{key}.pt" if self.folder else None
        if disk is not None and disk.exists():
            value = torch.load(disk, map_location="cpu", weights_only=True)
            self.hits += 1
        else:
            value = encoder.prepare(path).detach().cpu().contiguous()
            self.misses += 1
            if disk is not None:
                tmp = disk.with_suffix(f".tmp{os.getpid()}")
                torch.save(value, tmp)
                tmp.replace(disk)
        self._mem[key] = value
        if len(self._mem) > self.max_items:
            self._mem.popitem(last=False)
        return value
