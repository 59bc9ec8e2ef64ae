"""Small learnable demo preference sets for every modality, built from real media shipped in packages.

Each set is native JSONL (`train`, `val`, `test`) with media under `out/media/<modality>/<split>/`.
Every pair is made by a rule recorded in `meta.rule` (a wrong subject, a degradation, an unsafe
compliance...). Criteria-flip twins (`meta.rule == "criteria_flip"`) hold the same two responses under
two opposite criteria with opposite labels, so a model can only get both right by reading the criterion.
Every record names the sources its media or topic came from in `meta.sources`; `test` shares none
with `train` (see `pairs.unseen`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from omnireward.data.demo import audio, image, mesh, text, video
from omnireward.data.demo.pairs import FLIP, Choice, Ctx, assemble, split_sizes, unseen
from omnireward.data.records import Pair
from omnireward.errors import ConfigError

MODALITIES = ("text", "image", "video", "audio", "3d", "omni")
SPLITS = ("train", "val", "test")
BUILDERS: dict[str, Callable[[int, Ctx], list[list[Choice]]]] = {
    "text": text.build,
    "image": image.build,
    "video": video.build,
    "audio": audio.build,
    "3d": mesh.build,
}

__all__ = ["BUILDERS", "FLIP", "MODALITIES", "SPLITS", "build_demo", "build_split", "unseen"]


def _omni_counts(n: int) -> dict[str, int]:
    """Task-balanced: the same number of pairs from every modality (the first ones take the remainder)."""
    return {m: n // len(BUILDERS) + (k < n % len(BUILDERS)) for k, m in enumerate(BUILDERS)}


def build_demo(modality: str, out: Path, *, n_pairs: int | None = None, seed: int = 0) -> Path:
    """Write `out/{train,val,test}.jsonl` and `out/media/` for text|image|video|audio|3d|omni; returns `out`.

    `n_pairs` is the number of train pairs (default 300); val and test get a fifth of it each (at least
    10). `test` comes from sources train never shows; `val` from new draws of the training sources.
    The same seed gives the same files.
    """
    sizes = split_sizes(n_pairs)
    for split, n in sizes.items():
        build_split(modality, out, split, n, seed=seed)
    return Path(out)


def build_split(modality: str, out: Path, split: str, n: int, *, seed: int = 0) -> Path:
    """Write one split, `out/<split>.jsonl` with its media, of `n` pairs; returns the JSONL path.

    Another seed gives other pairs from the same source pool: e.g. `build_split(m, d, "test", 200,
    seed=1000)` is a larger sample of unseen-source pairs, `"val"` one of new draws of seen sources.
    """
    if modality not in MODALITIES:
        raise ConfigError(
            f"unknown demo modality {modality!r} (expected one of {', '.join(MODALITIES)})", field="modality"
        )
    if split not in SPLITS:
        raise ConfigError(f"unknown demo split {split!r} (expected one of {', '.join(SPLITS)})", field="split")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = SPLITS.index(split)
    counts = _omni_counts(n) if modality == "omni" else {modality: n}
    pairs: list[Pair] = []
    for m, count in counts.items():
        # Media of an earlier build would linger beside the new files and confuse a reader.
        shutil.rmtree(out / "media" / m / split, ignore_errors=True)
        if count == 0:
            continue
        rng = np.random.default_rng([seed, s, MODALITIES.index(m)])
        pairs += assemble(BUILDERS[m](count, Ctx(out, m, split, rng)), rng, f"{m}-{split}")
    if modality == "omni":
        order = np.random.default_rng([seed, s, len(MODALITIES)]).permutation(len(pairs))
        pairs = [pairs[i] for i in order]
    path = out / f"{split}.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    return path
