"""Resolve media paths against a root, refusing paths that escape it."""

from __future__ import annotations

import os
from pathlib import Path

from omnireward.errors import MediaPathError


def resolve_media_path(path: str, root: str | Path, *, allow_outside: bool = False) -> Path:
    """Absolute path of `path` (relative paths resolve against `root`).

    A path that lands outside `root` (by `..` or an absolute path elsewhere) is refused unless
    `allow_outside`: a dataset file should not be able to make us read arbitrary files.
    """
    root = Path(root).resolve()
    p = Path(os.path.expanduser(path))
    full = (p if p.is_absolute() else root / p).resolve()
    if not allow_outside and root not in full.parents and full != root:
        raise MediaPathError(
            f"path {path!r} escapes the media root {str(root)!r} (pass --allow-outside-root to permit it)"
        )
    return full
