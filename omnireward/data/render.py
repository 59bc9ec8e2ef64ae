"""Headless mesh rendering: a numpy z-buffer rasteriser (no GPU, no OpenGL), flat Lambert shading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from omnireward.data.media import load_mesh_trimesh

BACKGROUND = 1.0  # white
ALBEDO = 0.82  # light grey object
AMBIENT = 0.30
FILL = 0.88  # the unit sphere covers this fraction of the image width
SUPERSAMPLE = 2  # render at 2x and box-filter down: smooth edges at ~4x the raster work
_MAX_CANDIDATES = 3_000_000  # (face, pixel) tests per chunk, bounds peak memory to ~200 MB


def _normalised(mesh_or_path) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh_or_path, (str, Path)):
        mesh = load_mesh_trimesh(mesh_or_path)
        return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    verts = np.asarray(mesh_or_path.vertices, dtype=np.float64)
    faces = np.asarray(mesh_or_path.faces, dtype=np.int64)
    verts = verts - (verts.min(axis=0) + verts.max(axis=0)) / 2
    radius = np.linalg.norm(verts, axis=1).max()
    return (verts / radius if radius > 0 else verts), faces


def _camera(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right, up and towards-viewer unit vectors for an orbit camera around a z-up object."""
    az, el = np.radians(azimuth), np.radians(elevation)
    back = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    right = np.cross(-back, [0.0, 0.0, 1.0])
    norm = np.linalg.norm(right)
    right = right / norm if norm > 1e-9 else np.array([0.0, 1.0, 0.0])  # looking straight down
    up = np.cross(right, -back)
    return right, up, back


def _rasterise(xy: np.ndarray, depth: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """Index of the nearest face per pixel ([size*size], -1 for background)."""
    tri = xy[faces]  # [F,3,2] pixel coordinates
    z = depth[faces]  # [F,3]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    denom = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    # Pixel centres sit at i + 0.5: the bounding box covers the centres inside the triangle's extent.
    lo = np.clip(np.ceil(tri.min(axis=1) - 0.5), 0, size).astype(np.int64)
    hi = np.clip(np.floor(tri.max(axis=1) - 0.5), -1, size - 1).astype(np.int64)
    w, h = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    keep = (w > 0) & (h > 0) & (np.abs(denom) > 1e-12)  # off-screen, pixel-less or edge-on faces
    ids = np.nonzero(keep)[0]
    counts = (w * h)[ids]

    zbuf = np.full(size * size, -np.inf)
    fbuf = np.full(size * size, -1, dtype=np.int64)
    cum = np.cumsum(counts)
    edges = np.searchsorted(cum, np.arange(_MAX_CANDIDATES, cum[-1], _MAX_CANDIDATES), side="right") if len(cum) else []
    for chunk in np.split(np.arange(len(ids)), edges):
        if len(chunk) == 0:
            continue
        f_ids, cnt = ids[chunk], counts[chunk]
        f = np.repeat(f_ids, cnt)
        local = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        px = lo[f, 0] + local % w[f]
        py = lo[f, 1] + local // w[f]
        cx, cy = px + 0.5 - c[f, 0], py + 0.5 - c[f, 1]
        l0 = ((b[f, 1] - c[f, 1]) * cx + (c[f, 0] - b[f, 0]) * cy) / denom[f]
        l1 = ((c[f, 1] - a[f, 1]) * cx + (a[f, 0] - c[f, 0]) * cy) / denom[f]
        l2 = 1.0 - l0 - l1
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        f, pix = f[inside], (py * size + px)[inside]
        zz = l0[inside] * z[f, 0] + l1[inside] * z[f, 1] + l2[inside] * z[f, 2]
        # Nearest fragment per pixel: sort by pixel, then by depth (nearest first), keep group heads.
        order = np.lexsort((-zz, pix))
        pix, zz, f = pix[order], zz[order], f[order]
        head = np.ones(len(pix), dtype=bool)
        head[1:] = pix[1:] != pix[:-1]
        pix, zz, f = pix[head], zz[head], f[head]
        closer = zz > zbuf[pix]
        zbuf[pix[closer]] = zz[closer]
        fbuf[pix[closer]] = f[closer]
    return fbuf


def render_view(verts: np.ndarray, faces: np.ndarray, azimuth: float, elevation: float, size: int) -> Image.Image:
    """One orthographic view of a mesh already inside the unit sphere."""
    res = size * SUPERSAMPLE
    right, up, back = _camera(azimuth, elevation)
    half = res / 2
    xy = np.stack([half + FILL * half * (verts @ right), half - FILL * half * (verts @ up)], axis=1)
    fbuf = _rasterise(xy, verts @ back, faces, res)

    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    # Two-sided lighting: winding is often inconsistent in the wild, so face every normal to the viewer.
    normal *= np.where(normal @ back < 0, -1.0, 1.0)[:, None]
    light = back + 0.6 * up - 0.4 * right  # key light above and to the left of the camera
    light /= np.linalg.norm(light)
    shade = ALBEDO * (AMBIENT + (1 - AMBIENT) * np.clip(normal @ light, 0.0, 1.0))

    img = np.full(res * res, BACKGROUND)
    hit = fbuf >= 0
    img[hit] = shade[fbuf[hit]]
    img = img.reshape(res, res)
    if SUPERSAMPLE > 1:
        img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    grey = np.round(img * 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), mode="RGB")


def render_views(mesh_or_path, n_views: int = 4, size: int = 224, elevation: float = 20.0) -> list[Image.Image]:
    """`n_views` renders evenly spaced in azimuth (z is up), light grey object on white."""
    verts, faces = _normalised(mesh_or_path)
    # Start at a three-quarter view: a straight side view of many objects hides their depth.
    return [render_view(verts, faces, 45.0 + k * 360.0 / n_views, elevation, size) for k in range(n_views)]
