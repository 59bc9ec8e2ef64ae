"""Where converted weights and cached features live (never downloaded; converted once)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """`$OMNIREWARD_CACHE` or `$XDG_CACHE_HOME/omnireward` (default `~/.cache/omnireward`)."""
    base = os.environ.get("OMNIREWARD_CACHE")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "omnireward")
    p = Path(base, *parts)
    p.mkdir(parents=True, exist_ok=True)
    return p
