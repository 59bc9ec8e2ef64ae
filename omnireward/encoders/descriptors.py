"""Descriptor tokens: a few measured low-level properties of a media file, as one short line of words.

Frozen encoders trained for other things (ImageNet classes, English transcription) carry little of
how loud a clip is, how high a voice, how bright a picture or how tall an object. A criterion such
as "prefer the louder recording" can only be followed when the LM reads that property, so each
medium can be followed by a line the LM can compare with the criterion in its own words:

    [audio: loudness -18 dB, pitch 220 Hz (180-260), 3.1 syllables/s, 2.0 s, SNR 25 dB, silence 10%]
    [image: brightness 45%, contrast 22%, saturation 30%, colourfulness 40, sharpness 350, noise 2.1]
    [video: 1.5 s, brightness 45%, ..., motion 4.0%, frame consistency 93%]
    [3D, z up: height 2.1, width 1.2, depth 0.8, height/width 1.75, width/depth 1.50, roughness 12°, 2.4k vertices, ...]

Everything is measured with numpy, scipy, PIL and trimesh on what the loaders of
omnireward/data/media.py read. `describe(type, path)` gives the line; `backbones/features.py`
caches it per file under a key that holds VERSION.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnireward.data import media

# Bump when a measurement or the rendering changes, so cached lines are redone.
VERSION = "2"  # 2: frames under -60 dBFS have no pitch (silence read as 500 Hz)
AUDIO_RATE = 16000
AUDIO_SECONDS = 30.0  # the span measured (the encoders read at most Whisper's 30 s window)
VIDEO_FRAMES = 16  # frames sampled uniformly over a clip (each frame once when the clip has fewer)
VIDEO_SHORT_SIDE = 112
IMAGE_SIDE = 512  # images with a longer side are measured at this size
UP_AXIS = "z"  # meshes are read z up, as the renderer (data/render.py) and the 3D demo place them


# ---------------------------------------------------------------- audio


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    """[n, size] overlapping frames of `x` (zero-padded at the end so every sample is in one)."""
    n = 1 + max(0, int(np.ceil((len(x) - size) / hop)))
    x = np.pad(x, (0, max(0, (n - 1) * hop + size - len(x))))
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop][:n]


def _db(power, floor: float = 1e-10):
    return 10 * np.log10(np.maximum(power, floor))


def pitch_track(
    x: np.ndarray,
    sr: int = AUDIO_RATE,
    fmin: float = 60.0,
    fmax: float = 500.0,
    frame: float = 0.04,
    hop: float = 0.01,
    threshold: float = 0.15,
) -> np.ndarray:
    """Fundamental frequency (Hz) of the voiced frames, YIN (de Cheveigné & Kawahara 2002).

    The cumulative-mean-normalised difference function of each frame; the first lag whose value
    dips under `threshold` (refined to its local minimum and by a parabola) is the period. Frames
    whose best dip stays above 0.3, or that are 40 dB below the loudest or under -60 dBFS, are unvoiced.
    """
    w, h, tmax = int(frame * sr), int(hop * sr), int(np.ceil(sr / fmin))
    tmin = int(sr / fmax)
    if len(x) < w + tmax:
        return np.zeros(0)
    seg = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), w + tmax)[::h]
    power = (seg[:, :w] ** 2).mean(1)
    seg = seg[(_db(power) > _db(power.max()) - 40) & (_db(power) > -60)]
    if not len(seg):
        return np.zeros(0)
    nfft = 1 << int(np.ceil(np.log2(2 * (w + tmax))))
    spec_a = np.fft.rfft(seg[:, :w], nfft)
    spec_x = np.fft.rfft(seg, nfft)
    r = np.fft.irfft(np.conj(spec_a) * spec_x, nfft)[:, : tmax + 1]  # sum_j x_j x_{j+tau}, j < w
    sq = np.concatenate([np.zeros((len(seg), 1)), np.cumsum(seg**2, 1)], 1)
    e_tau = sq[:, w : w + tmax + 1] - sq[:, : tmax + 1]
    d = sq[:, w : w + 1] + e_tau - 2 * r
    d[:, 0] = 0
    cum = np.cumsum(d[:, 1:], 1) / np.arange(1, tmax + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    out = []
    for row in cmnd:
        band = row[tmin:tmax]
        below = np.nonzero(band < threshold)[0]
        if len(below):
            t = below[0]
            while t + 1 < len(band) and band[t + 1] < band[t]:
                t += 1
        else:
            t = int(band.argmin())
            if band[t] > 0.3:
                continue
        t += tmin
        if 0 < t < tmax:  # parabolic refinement of the dip
            a, b, c = row[t - 1], row[t], row[t + 1]
            den = a - 2 * b + c
            t = t + (0.5 * (a - c) / den if den > 0 else 0.0)
        out.append(sr / t)
    return np.asarray(out)


def audio_descriptors(x: np.ndarray, sr: int = AUDIO_RATE) -> dict:
    """Loudness, pitch, syllable rate, duration, SNR, silence and clipping of a mono waveform in [-1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    out = {"duration": len(x) / sr}
    fr = _frames(x, int(0.025 * sr), int(0.010 * sr))
    power = (fr**2).mean(1)
    level = _db(power)
    # Gated loudness (the two gates of ITU-R BS.1770, without its K-weighting): frames above -70 dBFS,
    # then those within 10 dB of their mean power; pauses and padding do not pull the figure down.
    gated = power[level > -70]
    if len(gated):
        gated = gated[_db(gated) > _db(gated.mean()) - 10]
    out["loudness"] = float(_db(gated.mean())) if len(gated) else -100.0
    peak = float(np.percentile(level, 95))
    # Silence: frames 35 dB under the loud frames, or under -60 dBFS.
    silent = (level < peak - 35) | (level < -60)
    out["silence"] = float(silent.mean())
    # SNR: the loud frames against the noise floor (the quietest tenth of the frames). A steady sound
    # with no quieter moments (a held tone, a hum) reads as 0 dB: nothing tells it from noise here.
    floor = float(np.percentile(level, 10))
    out["snr"] = float(np.clip(peak - floor, 0, 60))
    # Clipping: samples on a flat top at the clip's own extreme (a held value), not single peaks.
    top = np.abs(x).max() if len(x) else 0.0
    held = (np.abs(x[1:]) >= 0.99 * top) & (np.abs(np.diff(x)) < 1e-6) if top > 0 else np.zeros(0, bool)
    out["clipped"] = float(held.sum() / len(x)) if len(x) else 0.0
    f0 = pitch_track(x, sr)
    out["pitch"] = (
        (float(np.median(f0)), float(np.percentile(f0, 10)), float(np.percentile(f0, 90))) if len(f0) >= 3 else None
    )
    # Speaking rate: peaks of the smoothed loudness envelope (syllable nuclei) per second of sound.
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import find_peaks

    env = uniform_filter1d(level, 5)
    peaks, _ = find_peaks(env, prominence=4, distance=8, height=peak - 25)
    active = (~silent).sum() * 0.010
    out["rate"] = float(len(peaks) / active) if active > 0.1 else 0.0
    return out


def render_audio(d: dict) -> str:
    parts = [f"loudness {d['loudness']:.0f} dB"]
    if d["pitch"] is not None:
        med, lo, hi = d["pitch"]
        parts.append(f"pitch {med:.0f} Hz ({lo:.0f}-{hi:.0f})")
    else:
        parts.append("no pitch")
    parts += [
        f"{d['rate']:.1f} syllables/s",
        f"{d['duration']:.1f} s",
        f"SNR {d['snr']:.0f} dB",
        f"silence {100 * d['silence']:.0f}%",
    ]
    if d["clipped"] >= 0.01:
        parts.append(f"clipped {100 * d['clipped']:.0f}%")
    return "[audio: " + ", ".join(parts) + "]"


# ---------------------------------------------------------------- image and video frames

_LAPLACE = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def image_descriptors(rgb: np.ndarray) -> dict:
    """Brightness, contrast, saturation, colourfulness, sharpness and noise of an [H, W, 3] uint8 image."""
    from scipy.signal import convolve2d

    a = np.asarray(rgb, dtype=np.float64)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    hi, lo = a.max(-1), a.min(-1)
    rg, yb = r - g, 0.5 * (r + g) - b
    out = {
        "brightness": luma.mean() / 255,
        "contrast": luma.std() / 255,
        # HSV saturation: (max - min) / max per pixel, 0 where black
        "saturation": float(np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0).mean()),
        # Hasler & Süsstrunk (2003), on the 0-255 scale: 0 for grey, ~40 moderately, >100 very colourful
        "colourfulness": float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())),
    }
    if min(luma.shape) >= 3:
        out["sharpness"] = float(convolve2d(luma, _LAPLACE, mode="valid").var())
        # Immerkær (1996): the sigma of additive Gaussian noise from a mask that cancels smooth structure
        h, w = luma.shape
        out["noise"] = float(
            np.sqrt(np.pi / 2) * np.abs(convolve2d(luma, _NOISE_MASK, mode="valid")).sum() / (6 * (w - 2) * (h - 2))
        )
    else:
        out["sharpness"] = out["noise"] = 0.0
    return out


def _image_parts(d: dict) -> list[str]:
    return [
        f"brightness {100 * d['brightness']:.0f}%",
        f"contrast {100 * d['contrast']:.0f}%",
        f"saturation {100 * d['saturation']:.0f}%",
        f"colourfulness {d['colourfulness']:.0f}",
        f"sharpness {_sig(d['sharpness'])}",
        f"noise {d['noise']:.1f}",
    ]


def render_image(d: dict) -> str:
    return "[image: " + ", ".join(_image_parts(d)) + "]"


def _sig(x: float) -> str:
    """Two significant figures, no exponent: 0.41, 3.2, 45, 350, 12000."""
    if not x > 0:
        return "0"
    e = int(np.floor(np.log10(x)))
    return f"{round(x, 1 - e):.{max(0, 1 - e)}f}"


def video_descriptors(frames: np.ndarray, duration: float) -> dict:
    """The frames' mean image descriptors, motion (mean absolute grey-level change between consecutive
    sampled frames, as a share of full scale) and frame consistency (mean correlation of consecutive
    frames' grey levels) of [T, H, W, 3] uint8 frames."""
    per = [image_descriptors(f) for f in frames]
    out = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
    out["duration"] = float(duration)
    grey = np.asarray(frames, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    if len(grey) > 1:
        a, b = grey[:-1].reshape(len(grey) - 1, -1), grey[1:].reshape(len(grey) - 1, -1)
        out["motion"] = float(np.abs(b - a).mean() / 255)
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        den = np.sqrt((a**2).sum(1) * (b**2).sum(1))
        corr = np.where(den > 0, (a * b).sum(1) / np.maximum(den, 1e-12), 1.0)
        out["consistency"] = float(corr.mean())
    else:
        out["motion"], out["consistency"] = 0.0, 1.0
    return out


def render_video(d: dict) -> str:
    parts = [
        f"{d['duration']:.1f} s",
        *_image_parts(d),
        f"motion {100 * d['motion']:.1f}%",
        f"frame consistency {100 * d['consistency']:.0f}%",
    ]
    return "[video: " + ", ".join(parts) + "]"


# ---------------------------------------------------------------- 3D


def mesh_descriptors(geom) -> dict:
    """Bounding-box extents (z up), aspect, roughness, counts and watertightness of a trimesh geometry.

    Height is the extent along z; width and depth are the longer and the shorter of the two
    horizontal extents (so a turn about the vertical axis by a right angle changes neither). Roughness is the mean angle between the normals of adjacent faces: near 0° on smooth, finely
    tessellated surfaces, tens of degrees on a noisy, jagged one.
    """
    import trimesh

    v = np.asarray(geom.vertices, dtype=np.float64)
    ext = v.max(0) - v.min(0)
    width, depth = max(ext[0], ext[1]), min(ext[0], ext[1])
    out = {"width": float(width), "depth": float(depth), "height": float(ext[2]), "vertices": len(v)}
    out["height_width"] = float(ext[2] / width) if width > 0 else None
    out["width_depth"] = float(width / depth) if depth > 0 else None
    faces = np.asarray(getattr(geom, "faces", np.zeros((0, 3))), dtype=np.int64)
    out["faces"] = len(faces)
    if len(faces):
        m = trimesh.Trimesh(vertices=v, faces=faces, process=True)  # merged vertices: shared edges are found
        angles = m.face_adjacency_angles
        out["roughness"] = float(np.degrees(angles.mean())) if len(angles) else 0.0
        out["watertight"] = bool(m.is_watertight)
    else:
        out["roughness"], out["watertight"] = None, False
    return out


def _count(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def render_mesh(d: dict) -> str:
    scale = max(d["height"], d["width"], d["depth"])
    parts = (
        [f"height {_sig(d['height'])}", f"width {_sig(d['width'])}", f"depth {_sig(d['depth'])}"]
        if scale
        else ["a single point"]
    )
    if d["height_width"] is not None:
        parts.append(f"height/width {d['height_width']:.2f}")
    if d["width_depth"] is not None:
        parts.append(f"width/depth {d['width_depth']:.2f}")
    if d["faces"]:
        parts += [
            f"roughness {d['roughness']:.0f}°",
            f"{_count(d['vertices'])} vertices",
            f"{_count(d['faces'])} faces",
            "watertight" if d["watertight"] else "not watertight",
        ]
    else:
        parts.append(f"point cloud of {_count(d['vertices'])} points")
    return f"[3D, {UP_AXIS} up: " + ", ".join(parts) + "]"


# ---------------------------------------------------------------- files


def describe(media_type: str, path: str | Path) -> str:
    """The descriptor line of one media file (image | video | audio | mesh); MediaError if it cannot be read."""
    if media_type == "audio":
        return render_audio(audio_descriptors(media.load_audio(path, AUDIO_RATE, AUDIO_SECONDS), AUDIO_RATE))
    if media_type == "image":
        im = media.load_image(path)
        if max(im.size) > IMAGE_SIDE:
            from PIL import Image

            im.thumbnail((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)
        return render_image(image_descriptors(np.asarray(im)))
    if media_type == "video":
        clip = media.load_video(path, num_frames=VIDEO_FRAMES, size=VIDEO_SHORT_SIDE)
        # A clip of fewer frames repeats some; repeated frames would read as no motion.
        keep = np.concatenate([[True], np.diff(clip.timestamps) > 0])
        return render_video(video_descriptors(clip.frames[keep], clip.duration))
    if media_type == "mesh":
        p = media._checked(path, "mesh", media.MESH_EXTENSIONS)
        return render_mesh(mesh_descriptors(media._load_geometry(p)))
    raise ValueError(f"no descriptors for media type {media_type!r}")
