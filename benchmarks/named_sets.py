"""Two small held-out sets where the prompt names what the medium is, beside the demo sets.

- `tones`: the prompt asks for a high-pitched whistle or a low, deep hum; the answers are a high and
  a low tone. Train and val: pure sine tones (high 1.2-2.5 kHz, low 70-160 Hz); test: tones training
  never has (high 2.8-4 kHz, low 180-260 Hz) with harmonics (another timbre) and other phrasings.
  A clip here has no speech in it, so a transcript of it is invented words.
- `shapes`: the prompt names a primitive (sphere, cube, cylinder, cone, torus); the answers are the
  named one and another. Train and val: one set of proportions and resolutions, turned about the
  vertical axis; test: other proportions, other tessellations and tilted poses.

    python benchmarks/named_sets.py tones /tmp/sets/tones --n-pairs 120

Both write native JSONL (`train`, `val`, `test`) with media beside it, like `omnireward data demo`.
`test` is the unseen-sources split with unseen phrasings as well; `test_sources` holds unseen tones
or shapes under the training phrasings, so a model that learned the media but not new words still
scores there. `benchmarks/defaults.py` trains on these sets and scores both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from omnireward.data.demo.pairs import Choice, Ctx, assemble, split_sizes
from omnireward.data.records import Media, Response

RATE = 16000
_TONE_PROMPTS = {
    "seen": {
        "high": ["a high-pitched whistle", "the sound of a high whistle"],
        "low": ["a low, deep hum", "the sound of a deep, low hum"],
    },
    "unseen": {
        "high": ["a shrill, high beep", "a piercing high tone"],
        "low": ["a rumbling bass drone", "a low droning sound"],
    },
}
_SHAPES = ("sphere", "cube", "cylinder", "cone", "torus")
_SHAPE_PROMPTS = {"seen": ["a 3D model of a {x}", "a {x}"], "unseen": ["a mesh of a {x}", "a simple {x}"]}


def _tone(ctx: Ctx, kind: str) -> np.ndarray:
    seen = not ctx.unseen
    lo_hi = {
        ("high", True): (1200, 2500),
        ("low", True): (70, 160),
        ("high", False): (2800, 4000),
        ("low", False): (180, 260),
    }[(kind, seen)]
    f = ctx.rng.uniform(*lo_hi)
    t = np.arange(int(ctx.rng.uniform(1.0, 2.5) * RATE)) / RATE
    if seen:
        w = np.sin(2 * np.pi * f * t)
    else:  # harmonics: another timbre than training's pure sines
        w = sum(np.sin(2 * np.pi * f * k * t + ctx.rng.uniform(0, 6.3)) / k for k in (1, 2, 3))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    return (w / np.abs(w).max() * ctx.rng.uniform(0.3, 0.8) * fade).astype(np.float32)


def _save_audio(ctx: Ctx, wav: np.ndarray) -> Media:
    import soundfile as sf

    path, rel = ctx.new_media(".flac")
    sf.write(path, wav, RATE, format="FLAC", subtype="PCM_16")
    return Media("audio", rel)


def tones(n: int, ctx: Ctx) -> list[list[Choice]]:
    units = []
    phr = _TONE_PROMPTS["unseen" if ctx.split == "test" else "seen"]
    for _ in range(n):
        want = ctx.pick(["high", "low"])
        other = "low" if want == "high" else "high"
        units.append(
            [
                Choice(
                    "text_to_audio",
                    ctx.pick(phr[want]),
                    Response(media=[_save_audio(ctx, _tone(ctx, want))]),
                    Response(media=[_save_audio(ctx, _tone(ctx, other))]),
                    "named_tone",
                    detail={"want": want},
                )
            ]
        )
    return units


def _shape(ctx: Ctx, name: str):
    import trimesh

    c = trimesh.creation
    if ctx.unseen:  # other proportions and tessellations than training's
        m = {
            "sphere": lambda: c.icosphere(subdivisions=3, radius=1.0),
            "cube": lambda: c.box(extents=ctx.rng.uniform(0.7, 1.3, 3)).subdivide().subdivide(),
            "cylinder": lambda: c.cylinder(ctx.rng.uniform(0.25, 0.4), ctx.rng.uniform(1.8, 2.4), sections=24),
            "cone": lambda: c.cone(ctx.rng.uniform(0.8, 1.0), ctx.rng.uniform(0.9, 1.2), sections=24).subdivide(),
            "torus": lambda: c.torus(1.0, ctx.rng.uniform(0.15, 0.25), 36, 18),
        }[name]()
    else:
        m = {
            "sphere": lambda: c.uv_sphere(radius=1.0, count=[24, 24]),
            "cube": lambda: c.box().subdivide().subdivide(),
            "cylinder": lambda: c.cylinder(ctx.rng.uniform(0.45, 0.6), ctx.rng.uniform(1.2, 1.6), sections=48),
            "cone": lambda: c.cone(ctx.rng.uniform(0.5, 0.7), ctx.rng.uniform(1.3, 1.6), sections=48).subdivide(),
            "torus": lambda: c.torus(1.0, ctx.rng.uniform(0.3, 0.4), 48, 24),
        }[name]()
    v = np.asarray(m.vertices, dtype=np.float64)
    v = v - v.mean(axis=0)
    a = ctx.rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    if ctx.unseen:  # tilted up to 35 degrees about x
        b = ctx.rng.uniform(-0.6, 0.6)
        rot = rot @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    v = v @ rot.T * ctx.rng.uniform(0.5, 2.0) + ctx.rng.uniform(-1, 1, 3)
    path, rel = ctx.new_media(".ply")
    trimesh.Trimesh(vertices=v.astype(np.float32), faces=np.asarray(m.faces), process=False).export(
        path, file_type="ply"
    )
    return Media("mesh", rel)


def shapes(n: int, ctx: Ctx) -> list[list[Choice]]:
    units = []
    prompts = _SHAPE_PROMPTS["unseen" if ctx.split == "test" else "seen"]
    for _ in range(n):
        name = ctx.pick(_SHAPES)
        other = ctx.pick([s for s in _SHAPES if s != name])
        units.append(
            [
                Choice(
                    "text_to_3d",
                    ctx.pick(prompts).format(x=name),
                    Response(media=[_shape(ctx, name)]),
                    Response(media=[_shape(ctx, other)]),
                    "named_shape",
                    detail={"shape": name, "other": other},
                )
            ]
        )
    return units


class _SourcesCtx(Ctx):
    """The unseen source pool under another split name."""

    @property
    def unseen(self) -> bool:
        return True


TEST_PAIRS = 60  # unseen-source pairs: enough that one pair moves accuracy by under 2 points
SETS = {"tones": ("audio", tones), "shapes": ("3d", shapes)}


def build_set(
    name: str,
    out: Path,
    *,
    n_pairs: int,
    seed: int = 0,
    splits=("train", "val", "test", "test_sources"),
    sizes: dict | None = None,
) -> Path:
    """Write `out/<split>.jsonl` (+ media) of set `name`; `test` and `test_sources` hold unseen tones
    or shapes (`test` under unseen phrasings too)."""
    modality, builder = SETS[name]
    sizes = sizes or {**split_sizes(n_pairs), "test": TEST_PAIRS, "test_sources": TEST_PAIRS}
    out = Path(out)
    for s, split in enumerate(("train", "val", "test", "test_sources")):
        if split not in splits:
            continue
        rng = np.random.default_rng([seed, s, 77])
        # test_sources draws from the unseen pool (media/<modality>/test_sources/) with training's phrasings.
        ctx = Ctx(out, modality, split, rng)
        if split == "test_sources":
            ctx = _SourcesCtx(out, modality, split, rng)
        pairs = assemble(builder(sizes[split], ctx), rng, f"{name}-{split}")
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for p in pairs:
                fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=sorted(SETS))
    ap.add_argument("out")
    ap.add_argument("--n-pairs", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(build_set(a.name, Path(a.out), n_pairs=a.n_pairs, seed=a.seed))


if __name__ == "__main__":
    main()
