"""Media loaders: pure functions from a file path to arrays; every failure is a MediaError naming the file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from PIL import Image

from omnireward.data.suffixes import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, MESH_EXTENSIONS, VIDEO_EXTENSIONS
from omnireward.data.video_io import VideoFile, backend, frame_size
from omnireward.errors import MediaError


def _checked(path: str | Path, kind: str, extensions: tuple[str, ...]) -> Path:
    """The path as a Path after checking that it exists, is a file, and has a supported extension."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{kind} file not found", file=p)
    if not p.is_file():
        raise MediaError(f"{kind} path is not a file", file=p)
    if p.suffix.lower() not in extensions:
        raise MediaError(
            f"unsupported {kind} extension {p.suffix or '(none)'!r} (expected one of {', '.join(extensions)})", file=p
        )
    if p.stat().st_size == 0:
        raise MediaError(f"{kind} file is empty", file=p)
    return p


def media_fingerprint(path: str | Path) -> str:
    """A short hash of (absolute path, size, mtime_ns): changes whenever the file is replaced or edited."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise MediaError(f"cannot stat media file: {e.strerror or e}", file=p) from None
    key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


# ---------------------------------------------------------------- image


def load_image(path: str | Path) -> Image.Image:
    """An RGB PIL image; the file is verified first so truncated or corrupt files fail here."""
    p = _checked(path, "image", IMAGE_EXTENSIONS)
    try:
        with Image.open(p) as im:
            im.verify()
        # verify() leaves the image unusable, so decode from a fresh handle.
        with Image.open(p) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise MediaError(f"corrupt or undecodable image: {e}", file=p) from None


# ---------------------------------------------------------------- video


@dataclass
class VideoClip:
    frames: np.ndarray  # [T,H,W,3] uint8
    timestamps: np.ndarray  # [T] seconds
    fps: float
    duration: float


def uniform_indices(total: int, num: int) -> np.ndarray:
    """Centres of `num` equal segments over `total` frames (repeats frames when the clip is short)."""
    return np.minimum(((np.arange(num) + 0.5) * total / num).astype(np.int64), total - 1)


def load_video(path: str | Path, num_frames: int = 8, size: int | None = None) -> VideoClip:
    """`num_frames` frames sampled uniformly over the whole clip; `size` resizes the short side on decode."""
    p = _checked(path, "video", VIDEO_EXTENSIONS)
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    backend()  # a bad OMNIREWARD_VIDEO_BACKEND is a setting to fix, not a corrupt video
    try:
        if size is not None:
            h, w = frame_size(str(p))
            scale = size / min(h, w)
            # resized during decode, far cheaper than decoding full frames and shrinking.
            vr = VideoFile(str(p), width=max(1, round(w * scale)), height=max(1, round(h * scale)))
        else:
            vr = VideoFile(str(p))
        total = len(vr)
        if total == 0:
            raise MediaError("video has no frames", file=p)
        idx = uniform_indices(total, num_frames)
        frames = vr.frames(idx.tolist())
        stamps = vr.timestamps(idx.tolist())
        fps = vr.fps
        end = float(vr.timestamps([total - 1])[0, 1])
    except MediaError:
        raise
    except Exception as e:  # decord raises bare RuntimeError/DECORDError, PyAV its own errors, for a bad file
        raise MediaError(f"corrupt or undecodable video: {str(e).splitlines()[0] if str(e) else e!r}", file=p) from None
    duration = end if end > 0 else total / fps if fps > 0 else 0.0
    return VideoClip(
        frames=np.ascontiguousarray(frames, dtype=np.uint8),
        timestamps=np.asarray(stamps[:, 0], dtype=np.float64),
        fps=fps,
        duration=duration,
    )


# ---------------------------------------------------------------- audio


def resample(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis (Kaiser-windowed FIR from scipy)."""
    if orig_rate == target_rate:
        return x
    from scipy.signal import resample_poly

    g = gcd(int(orig_rate), int(target_rate))
    return resample_poly(x, target_rate // g, orig_rate // g, axis=-1).astype(np.float32)


def load_audio(path: str | Path, sample_rate: int = 16000, max_seconds: float | None = 30.0) -> np.ndarray:
    """Float32 mono waveform in [-1, 1] at `sample_rate`, cut to the first `max_seconds`."""
    p = _checked(path, "audio", AUDIO_EXTENSIONS)
    import soundfile as sf

    try:
        info = sf.info(str(p))
        frames = -1 if max_seconds is None else int(np.ceil(max_seconds * info.samplerate))
        data, sr = sf.read(str(p), frames=frames, dtype="float32", always_2d=True)
    except Exception as e:  # LibsndfileError and friends: unknown container, truncated header
        raise MediaError(f"corrupt or undecodable audio: {e}", file=p) from None
    if data.shape[0] == 0:
        raise MediaError("audio file has no samples", file=p)
    mono = data.mean(axis=1)
    mono = resample(mono, sr, sample_rate)
    if max_seconds is not None:
        mono = mono[: int(round(max_seconds * sample_rate))]
    if not np.all(np.isfinite(mono)):
        raise MediaError("audio contains NaN or infinite samples", file=p)
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------- 3D


def _load_geometry(p: Path):
    """Trimesh or PointCloud with at least one vertex; scenes are flattened into one geometry."""
    import trimesh

    try:
        geom = trimesh.load(str(p), force=None, process=False)
    except Exception as e:  # trimesh raises many kinds (ValueError, KeyError, struct.error...)
        raise MediaError(f"corrupt or undecodable mesh: {e}", file=p) from None
    if isinstance(geom, trimesh.Scene):
        if not geom.geometry:
            raise MediaError("mesh file holds an empty scene", file=p)
        parts = geom.dump()  # copies moved to their instance positions
        meshes = [g for g in parts if isinstance(g, trimesh.Trimesh) and len(g.faces)]
        if meshes:
            geom = trimesh.util.concatenate(meshes)
        else:
            pts = [np.asarray(g.vertices) for g in parts if hasattr(g, "vertices")]
            geom = trimesh.PointCloud(np.concatenate(pts) if pts else np.zeros((0, 3)))
    if not isinstance(geom, (trimesh.Trimesh, trimesh.PointCloud)):
        raise MediaError(f"unsupported geometry type {type(geom).__name__}", file=p)
    verts = np.asarray(geom.vertices, dtype=np.float64)
    if len(verts) == 0:
        raise MediaError("mesh has no vertices", file=p)
    if not np.all(np.isfinite(verts)):
        raise MediaError("mesh has NaN or infinite vertices", file=p)
    return geom


def _normalise(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Shift by `centre` and scale so the farthest point lies on the unit sphere."""
    out = points - centre
    radius = np.linalg.norm(out, axis=1).max()
    return out / radius if radius > 0 else out


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` points uniform over the surface area (area-weighted face choice + uniform barycentrics)."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = area.sum()
    if not total > 0:
        # Degenerate surface (all faces zero-area): fall back to the vertices themselves.
        return vertices[rng.integers(0, len(vertices), n)]
    face = rng.choice(len(faces), size=n, p=area / total)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1  # reflect points of the unit square into the triangle
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[face]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def load_mesh(path: str | Path, num_points: int = 1024, seed: int = 0) -> np.ndarray:
    """[num_points, 3] float32 surface samples, centred on their mean and scaled into the unit sphere."""
    p = _checked(path, "mesh", MESH_EXTENSIONS)
    geom = _load_geometry(p)
    verts = np.asarray(geom.vertices, dtype=np.float64)
    faces = np.asarray(getattr(geom, "faces", np.zeros((0, 3))), dtype=np.int64)
    if len(faces):
        pts = sample_surface(verts, faces, num_points, seed)
    else:
        # A point cloud: subsample its points (with replacement only when there are too few).
        rng = np.random.default_rng(seed)
        pts = verts[rng.choice(len(verts), num_points, replace=len(verts) < num_points)]
    return _normalise(pts, pts.mean(axis=0)).astype(np.float32)


def load_mesh_trimesh(path: str | Path):
    """A validated triangle mesh, centred on its bounding box and scaled into the unit sphere."""
    import trimesh

    p = _checked(path, "mesh", MESH_EXTENSIONS)
    geom = _load_geometry(p)
    if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
        raise MediaError("file holds a point cloud without faces; a triangle mesh is needed", file=p)
    verts = np.asarray(geom.vertices, dtype=np.float64)
    faces = np.asarray(geom.faces, dtype=np.int64)
    if faces.min() < 0 or faces.max() >= len(verts):
        raise MediaError("mesh faces index missing vertices", file=p)
    centre = (verts.min(axis=0) + verts.max(axis=0)) / 2
    return trimesh.Trimesh(vertices=_normalise(verts, centre), faces=faces, process=False)
