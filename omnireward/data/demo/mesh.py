"""3D demo pairs (text_to_3d) from pyvista's example meshes and scan, and trimesh primitives.

Train and val show the airplane, the ant, the sphere and five generated primitives; test shows
only real shapes training never shows: pyvista's nut and three organs surfaced from pyvista's
segmented frog scan (`frog_tissues.vti`).
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from functools import cache

import numpy as np

from omnireward.data.demo.pairs import FLIP, Choice, Ctx, package_file, plan, twin, worded_twin, wording
from omnireward.data.records import Media, Response

_MESH_PROMPTS = ["a 3D model of {x}", "{x}", "a 3D mesh of {x}", "a clean 3D asset of {x}"]
CRITERIA = {
    "tall": ["Prefer the taller, stretched version.", "Prefer the model that is stretched upwards."],
    "flat": ["Prefer the flatter, squashed version.", "Prefer the model that is squashed downwards."],
    "smooth": ["Prefer the smooth surface.", "Prefer the model without surface noise."],
    "rough": ["Prefer the rough, bumpy surface.", "Prefer the model with a noisy, jagged surface."],
    "quality": ["Prefer the complete, clean mesh.", "Prefer the better-made 3D model."],
    "object": ["Prefer the model of the requested object."],
    "shows": ["Prefer the model of {x}.", "The better 3D asset is the one of {x}."],
}
# Criteria for the flips in other words than CRITERIA's: only the test split uses them (pairs.wording).
PARAPHRASES = {
    "tall": ["The taller one.", "Pick the shape with the greater height.", "I want it elongated and lanky."],
    "flat": ["The lower, squatter one.", "Pick the shape with the smaller height.", "I want it compressed and stubby."],
    "smooth": ["The smoother one.", "Pick the shape whose surface is even and polished.", "I want a sleek finish."],
    "rough": [
        "The bumpier one.",
        "Pick the shape whose surface is uneven and grainy.",
        "I want a coarse, gritty finish.",
    ],
    "shows": ["I want a model of {x}.", "Pick the asset that depicts {x}."],
}
_OPEN_PROMPTS = ["a 3D model", "a nice 3D asset", "a mesh for my scene"]  # no object named
SEEN = ["airplane", "ant", "sphere", "cube", "cylinder", "cone", "capsule", "torus"]
UNSEEN = ["nut", "frog_skeleton", "frog_eyes", "frog_lungs"]
# frog_tissues.vti labels (pyvista's load_frog_tissues): tissue -> (label ids, description, voxels per
# marching-cubes cell along z, y, x: coarse enough for a few thousand faces)
_FROG = {
    "frog_skeleton": ((13,), "the skeleton of a frog", (3, 8, 8)),
    "frog_eyes": ((4, 5), "a pair of eyeballs", (2, 4, 4)),
    "frog_lungs": ((11,), "a pair of frog lungs", (2, 5, 5)),
}


def pool(ctx: Ctx) -> list[str]:
    """The meshes this split may show: unseen ones for test, the seen ones otherwise."""
    return UNSEEN if ctx.unseen else SEEN


def _vti_volume(path) -> np.ndarray:
    """The one zlib-compressed binary array of a VTK XML ImageData file, as a (z, y, x) volume."""
    text = path.read_bytes()
    extent = [int(x) for x in re.search(rb'WholeExtent="([^"]+)"', text).group(1).split()]
    raw = re.sub(rb"\s", b"", re.search(rb'format="binary"[^>]*>(.*?)</DataArray>', text, re.S).group(1))
    # UInt32 header: number of blocks, block size, last block size, then each block's compressed size.
    n_blocks = struct.unpack("<I", base64.b64decode(raw[:8])[:4])[0]
    head_len = 4 * (3 + n_blocks)
    head_b64 = (head_len + 2) // 3 * 4
    sizes = struct.unpack(f"<{n_blocks}I", base64.b64decode(raw[:head_b64])[12:head_len])
    data, pos, blocks = base64.b64decode(raw[head_b64:]), 0, []
    for size in sizes:
        blocks.append(zlib.decompress(data[pos : pos + size]))
        pos += size
    shape = tuple(extent[k + 1] - extent[k] + 1 for k in (4, 2, 0))
    return np.frombuffer(b"".join(blocks), np.uint8).reshape(shape)


def _frog_organ(labels: tuple[int, ...], block: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A smooth surface around some tissues of the frog scan (z slices are 1.5 voxels apart)."""
    from skimage.filters import gaussian
    from skimage.measure import block_reduce, marching_cubes

    vol = _vti_volume(package_file("pyvista", "examples", "frog_tissues.vti"))
    share = gaussian(block_reduce(np.isin(vol, labels), block, np.mean), 0.7)
    v, f, _, _ = marching_cubes(np.pad(share, 1), 0.3, spacing=(1.5 * block[0], block[1], block[2]))
    return np.ascontiguousarray(v[:, ::-1]), np.asarray(f)  # (z, y, x) -> (x, y, z)


@cache
def _base_meshes() -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """name -> (description, vertices, faces), z up: pyvista's meshes, frog organs and five primitives."""
    import trimesh

    out = {}
    y_up = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)  # rotate y up onto z up
    for name, what, rot in (
        ("airplane", "an airplane", None),
        ("ant", "an ant", y_up),
        ("nut", "a metal nut for a bolt", y_up),
        ("sphere", "a sphere", None),
    ):
        m = trimesh.load(str(package_file("pyvista", "examples", f"{name}.ply")), process=False)
        v = np.asarray(m.vertices, dtype=np.float64)
        out[name] = (what, v @ rot.T if rot is not None else v, np.asarray(m.faces))
    prims = {
        "cube": ("a cube", trimesh.creation.box().subdivide().subdivide().subdivide()),
        "cylinder": ("a cylinder", trimesh.creation.cylinder(0.5, 1.5, sections=48).subdivide()),
        "cone": ("a cone", trimesh.creation.cone(0.6, 1.4, sections=48).subdivide().subdivide()),
        "capsule": ("a capsule", trimesh.creation.capsule(1.0, 0.4, count=[24, 24])),
        "torus": ("a torus, shaped like a ring", trimesh.creation.torus(1.0, 0.35, 48, 24)),
    }
    for name, (what, m) in prims.items():
        out[name] = (what, np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces))
    for name, (labels, what, block) in _FROG.items():
        out[name] = (what, *_frog_organ(labels, block))
    return out


def _placed(ctx: Ctx, name: str, z_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A random turn about the vertical axis, scale and offset (normalised away by loaders, not by files)."""
    _, v, f = _base_meshes()[name]
    v = (v - v.mean(axis=0)) / np.linalg.norm(v - v.mean(axis=0), axis=1).max()
    a = ctx.rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    v = v @ rot.T * np.array([1.0, 1.0, z_scale])
    return v * ctx.rng.uniform(0.5, 2.0) + ctx.rng.uniform(-1, 1, 3), f


def _mesh_noise(ctx: Ctx, v: np.ndarray, level: float) -> np.ndarray:
    radius = np.linalg.norm(v - v.mean(axis=0), axis=1).max()
    return v + ctx.rng.normal(0, level * radius, v.shape)


def _mesh_degrade(ctx: Ctx, v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    kind = ctx.pick(["noise", "partial", "blocky"])
    centre = v.mean(axis=0)
    radius = np.linalg.norm(v - centre, axis=1).max()
    if kind == "noise":
        return _mesh_noise(ctx, v, ctx.rng.uniform(0.03, 0.05)), f, kind
    if kind == "partial":
        # Cut away everything beyond a random plane through the middle: a third to half of the surface.
        d = ctx.rng.normal(size=3)
        d /= np.linalg.norm(d)
        depth = (v[f].mean(axis=1) - centre) @ d
        keep = depth < np.quantile(depth, ctx.rng.uniform(0.5, 0.65))
        return v, f[keep], kind
    # Vertex clustering on a coarse grid: a blocky, low-detail version of the same shape.
    cell = radius * ctx.rng.uniform(0.15, 0.22)
    snapped = np.round((v - centre) / cell) * cell + centre
    tri = snapped[f]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    kept = f[area > 1e-12 * radius**2]
    if len(kept) < 8:  # a tiny model can collapse entirely; noise is the fallback defect
        return _mesh_noise(ctx, v, 0.04), f, "noise"
    return snapped, kept, kind


def _save_mesh(ctx: Ctx, v: np.ndarray, f: np.ndarray) -> Media:
    import trimesh

    path, rel = ctx.new_media(".ply")
    trimesh.Trimesh(vertices=v.astype(np.float32), faces=f, process=False).export(path, file_type="ply")
    return Media("mesh", rel)


def _mesh_unit(rule: str, ctx: Ctx) -> list[Choice]:
    meshes = _base_meshes()
    names = pool(ctx)
    name = ctx.pick(names)
    other = ctx.pick([m for m in names if m != name])
    prompt = ctx.pick(_MESH_PROMPTS).format(x=meshes[name][0])

    def choice(good, bad, criteria=None, shown=(name,), **detail):
        return Choice(
            "text_to_3d",
            prompt,
            Response(media=[_save_mesh(ctx, *good)]),
            Response(media=[_save_mesh(ctx, *bad)]),
            rule,
            criteria,
            detail={**detail, "sources": list(shown)},
        )

    if rule == "object":
        criteria = ctx.maybe(CRITERIA["object"])
        return [choice(_placed(ctx, name), _placed(ctx, other), criteria, (name, other), other=other)]
    if rule == "quality":
        v, f = _placed(ctx, name)
        bv, bf, kind = _mesh_degrade(ctx, *_placed(ctx, name))
        return [choice((v, f), (bv, bf), ctx.maybe(CRITERIA["quality"]), degradation=kind)]
    # criteria flip: on the object the criteria ask for, on height, or on surface roughness
    kind = ctx.pick(["object", "height", "roughness"])
    if kind == "object":
        prompt = ctx.pick(_OPEN_PROMPTS)
        shows, how = wording(ctx, CRITERIA["shows"], PARAPHRASES["shows"])
        base = choice(
            _placed(ctx, name), _placed(ctx, other), None, (name, other), flip="object", other=other, wording=how
        )
        return twin(base, shows.format(x=meshes[name][0]), shows.format(x=meshes[other][0]))
    if kind == "height":
        tall = _placed(ctx, name, ctx.rng.uniform(1.7, 2.2))
        flat = _placed(ctx, name, ctx.rng.uniform(0.4, 0.55))
        base = choice(tall, flat, flip="height")
        return worded_twin(ctx, base, CRITERIA, PARAPHRASES, "tall", "flat")
    v, f = _placed(ctx, name)
    base = choice((v, f), (_mesh_noise(ctx, v, ctx.rng.uniform(0.03, 0.05)), f), flip="roughness")
    return worded_twin(ctx, base, CRITERIA, PARAPHRASES, "smooth", "rough")


def build(n: int, ctx: Ctx) -> list[list[Choice]]:
    shares = {"object": 0.35, "quality": 0.35, FLIP: 0.3}
    return [_mesh_unit(rule, ctx) for rule in plan(n, shares, ctx.rng)]
