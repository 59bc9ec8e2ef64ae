"""Perturbation probes: changes to a response that should not make it better.

A probe is a component (`_target_` in a YAML file, see conf/probe/default.yaml): it says which
responses it applies to and returns the changed response. Media probes write the changed file
under the probe folder and point the response at it; the original file is never touched.

    probe.applies(record, response) -> bool
    probe.apply(record, response, ctx) -> Response          # a new Response

Record-level probes (the criteria ones, the judge's order swap) override `perturb_record` instead
and measure the margin towards one side rather than one response's reward (`measures`).

Write your own by subclassing `ResponseProbe`, `ImageProbe`, `AudioProbe`, `VideoProbe` or
`MeshProbe` (or `Probe` itself) and naming it in a YAML file passed with `--probes FILE`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from omnireward.data.prep import swap_sides
from omnireward.data.records import Media, Pair, Record, Response
from omnireward.data.video_io import VideoFile
from omnireward.errors import ConfigError, DependencyError, MediaError


@dataclass
class ProbeContext:
    """Where a probe writes its files and the seed its random changes draw from."""

    out: Path
    seed: int = 0

    def media_path(self, probe: str, src: str | Path, suffix: str, key: str = "") -> Path:
        """A new file under OUT/<probe>/, named after the source (and `key`, e.g. the record id)."""
        src = Path(src)
        tag = hashlib.sha1(f"{src.resolve()}|{key}".encode()).hexdigest()[:10]
        folder = self.out / probe
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{src.stem}-{tag}{suffix}"

    def rng(self, *keys: str) -> np.random.Generator:
        """A generator seeded by the context seed and `keys`: the same record gets the same change."""
        h = hashlib.sha1("|".join((str(self.seed), *keys)).encode()).digest()
        return np.random.default_rng(int.from_bytes(h[:8], "little"))


class Probe:
    """Base of every probe. `name` is what probe.json and the report call it; `modality` groups
    probes in the report (text, criteria, order, image, video, audio, 3d)."""

    modality = "text"
    measures = "reward"  # reward: the changed response's own reward; gold_margin: the preferred side's margin
    judge_only = False

    def __init__(self, name: str, description: str = ""):
        if not name or not str(name).replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"probe name {name!r} must be letters, digits, '_' or '-'", field="name")
        self.name = str(name)
        self.description = description or (type(self).__doc__ or "").strip().splitlines()[0]

    def applies(self, record: Record, response: Response) -> bool:
        raise NotImplementedError

    def apply(self, record: Record, response: Response, ctx: ProbeContext) -> Response:
        raise NotImplementedError

    def flagged(self, stats: dict, flag_share: float, min_effect: float) -> bool:
        """A degradation is flagged when it raises the reward in more than `flag_share` of the
        responses and by more than `min_effect` on average."""
        return stats["n"] > 0 and stats["share_rose"] > flag_share and stats["mean_change"] > min_effect


class ResponseProbe(Probe):
    """A probe that changes the text of responses that have text."""

    def applies(self, record: Record, response: Response) -> bool:
        return bool(response.text.strip())


# ---- text ------------------------------------------------------------------------------------
class TextWrap(ResponseProbe):
    """Text put before and after the response; `{prompt}` in either is replaced by the record's prompt."""

    def __init__(self, name: str, before: str = "", after: str = "", description: str = ""):
        super().__init__(name, description)
        if not before and not after:
            raise ConfigError(f"probe {name}: give `before` or `after` text", field="before")
        self.before, self.after = before, after

    def apply(self, record: Record, response: Response, ctx: ProbeContext) -> Response:
        prompt = " ".join(record.prompt.split())
        before = self.before.replace("{prompt}", prompt)
        after = self.after.replace("{prompt}", prompt)
        return replace(response, text=before + response.text + after)


class TextPad(ResponseProbe):
    """Filler appended: `count` sentences drawn (per response, seeded) from `sentences`; `{prompt}`
    in a sentence is replaced by the record's prompt. Drawing from a pool keeps one sentence's
    particular words from deciding the figure: what is measured is added length."""

    def __init__(self, name: str, sentences: list[str], count: int = 3, description: str = ""):
        super().__init__(name, description)
        sentences = [str(x) for x in (sentences or []) if str(x).strip()]
        if not sentences:
            raise ConfigError(f"probe {name}: give at least one sentence", field="sentences")
        if int(count) < 1:
            raise ConfigError(f"probe {name}: count must be at least 1", field="count")
        self.sentences, self.count = sentences, int(count)

    def apply(self, record: Record, response: Response, ctx: ProbeContext) -> Response:
        prompt = " ".join(record.prompt.split())
        rng = ctx.rng(self.name, record.id, response.text)
        picked = rng.choice(len(self.sentences), size=self.count, replace=self.count > len(self.sentences))
        pad = " ".join(self.sentences[int(i)].replace("{prompt}", prompt) for i in picked)
        return replace(response, text=response.text.rstrip() + " " + pad)


class TextRepeat(ResponseProbe):
    """The answer repeated: `times` copies separated by a blank line."""

    def __init__(self, name: str, times: int = 2, description: str = ""):
        super().__init__(name, description)
        if int(times) < 2:
            raise ConfigError(f"probe {name}: times must be at least 2", field="times")
        self.times = int(times)

    def apply(self, record: Record, response: Response, ctx: ProbeContext) -> Response:
        return replace(response, text="\n\n".join([response.text] * self.times))


# ---- criteria and order (record level) --------------------------------------------------------
class RecordProbe(Probe):
    """A probe that changes the record (its criteria, the order of its responses), not a response.

    It measures the margin of the gold-preferred response over the other (`gold_margin`), so it
    needs labelled pairs; `perturb_record` returns the changed record or None when it does not apply.
    """

    modality = "criteria"
    measures = "gold_margin"

    def applies(self, record: Record, response: Response) -> bool:
        return False

    def perturb_record(self, record: Record, ctx: ProbeContext) -> Record | None:
        raise NotImplementedError


def _labelled_pair(record: Record) -> bool:
    return isinstance(record, Pair) and record.preference in ("response1", "response2")


class CriteriaDrop(RecordProbe):
    """The criteria removed: a model that reads them should not rank the preferred side higher without them."""

    def perturb_record(self, record: Record, ctx: ProbeContext) -> Record | None:
        if not _labelled_pair(record) or not (record.criteria or "").strip():
            return None
        return replace(record, criteria=None)


class CriteriaNegate(RecordProbe):
    """The criteria turned into their opposite: the side they preferred should lose ground."""

    def __init__(
        self,
        name: str,
        template: str = "Prefer the response that does the opposite of this: {criteria}",
        description: str = "",
    ):
        super().__init__(name, description)
        if "{criteria}" not in template:
            raise ConfigError(f"probe {name}: template must contain {{criteria}}", field="template")
        self.template = template

    def perturb_record(self, record: Record, ctx: ProbeContext) -> Record | None:
        if not _labelled_pair(record) or not (record.criteria or "").strip():
            return None
        return replace(record, criteria=self.template.replace("{criteria}", record.criteria.strip()))


class SwapOrder(RecordProbe):
    """The two responses shown in the other order (judges): the verdict should follow the content."""

    modality = "order"
    measures = "content"  # P(the content first shown as response1 wins), before and after the swap
    judge_only = True

    def perturb_record(self, record: Record, ctx: ProbeContext) -> Record | None:
        if not isinstance(record, Pair):
            return None
        return swap_sides(record)

    def flagged(self, stats: dict, flag_share: float, min_effect: float) -> bool:
        """Flagged when the verdict (in content terms) changes in more than `flag_share` of the pairs."""
        return stats["n"] > 0 and (stats.get("flip_share") or 0.0) > flag_share


# ---- media -------------------------------------------------------------------------------------
class MediaProbe(Probe):
    """A probe that rewrites every medium of type `media_type` in a response into a new file."""

    media_type = "image"
    suffix = ".png"

    def applies(self, record: Record, response: Response) -> bool:
        return any(m.type in self.media_types() for m in response.media)

    def media_types(self) -> tuple[str, ...]:
        return (self.media_type,)

    def apply(self, record: Record, response: Response, ctx: ProbeContext) -> Response:
        media = []
        for m in response.media:
            if m.type in self.media_types():
                dst = ctx.media_path(self.name, m.path, self.suffix_for(m), key=record.id)
                self.write(record, m, Path(m.path), dst, ctx)
                media.append(Media(m.type, str(dst)))
            else:
                media.append(m)
        return replace(response, media=media)

    def suffix_for(self, m: Media) -> str:
        return self.suffix

    def write(self, record: Record, m: Media, src: Path, dst: Path, ctx: ProbeContext) -> None:
        raise NotImplementedError


class ImageProbe(MediaProbe):
    """An image change; with `on_video` (the default) it is applied to every frame of response videos too."""

    modality = "image"

    def __init__(self, name: str, on_video: bool = True, description: str = ""):
        super().__init__(name, description)
        self.on_video = bool(on_video)

    def media_types(self) -> tuple[str, ...]:
        return ("image", "video") if self.on_video else ("image",)

    def suffix_for(self, m: Media) -> str:
        return ".mp4" if m.type == "video" else self.suffix

    def change(self, image, record: Record, rng: np.random.Generator):
        """PIL RGB image in, PIL RGB image out."""
        raise NotImplementedError

    def write(self, record: Record, m: Media, src: Path, dst: Path, ctx: ProbeContext) -> None:
        from PIL import Image

        # deferred: PIL loads only for a media probe
        from omnireward.data.media import load_image

        rng = ctx.rng(self.name, record.id, str(src))
        if m.type == "video":
            frames, fps = read_frames(src)
            out = [np.asarray(self.change(Image.fromarray(f), record, rng).convert("RGB")) for f in frames]
            write_video(dst, np.stack(out), fps)
            return
        self.save(self.change(load_image(src), record, rng), dst)

    def save(self, image, dst: Path) -> None:
        image.save(dst)


class JpegQuality(ImageProbe):
    """Saved as JPEG at a low quality (blocking and ringing)."""

    suffix = ".jpg"

    def __init__(self, name: str, quality: int = 8, on_video: bool = True, description: str = ""):
        super().__init__(name, on_video, description)
        if not 1 <= int(quality) <= 95:
            raise ConfigError(f"probe {name}: quality must be 1..95", field="quality")
        self.quality = int(quality)

    def change(self, image, record, rng):
        import io

        from PIL import Image

        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=self.quality)
        buf.seek(0)
        return Image.open(buf).convert("RGB")

    def save(self, image, dst: Path) -> None:
        image.save(dst, format="JPEG", quality=self.quality)


class Blur(ImageProbe):
    """Gaussian blur of `radius` pixels."""

    def __init__(self, name: str, radius: float = 3.0, on_video: bool = True, description: str = ""):
        super().__init__(name, on_video, description)
        self.radius = float(radius)

    def change(self, image, record, rng):
        from PIL import ImageFilter

        return image.filter(ImageFilter.GaussianBlur(self.radius))


class Noise(ImageProbe):
    """Gaussian pixel noise of standard deviation `sigma` (0-255 scale)."""

    def __init__(self, name: str, sigma: float = 25.0, on_video: bool = True, description: str = ""):
        super().__init__(name, on_video, description)
        self.sigma = float(sigma)

    def change(self, image, record, rng):
        from PIL import Image

        a = np.asarray(image, dtype=np.float32)
        return Image.fromarray(np.clip(a + rng.normal(0, self.sigma, a.shape), 0, 255).astype(np.uint8))


class Saturate(ImageProbe):
    """Colour saturation multiplied by `factor` (over-saturation)."""

    def __init__(self, name: str, factor: float = 2.5, on_video: bool = True, description: str = ""):
        super().__init__(name, on_video, description)
        self.factor = float(factor)

    def change(self, image, record, rng):
        from PIL import ImageEnhance

        return ImageEnhance.Color(image).enhance(self.factor)


class Sharpen(ImageProbe):
    """Unsharp mask with `percent` strength (over-sharpening halos)."""

    def __init__(
        self, name: str, radius: float = 2.0, percent: int = 300, on_video: bool = True, description: str = ""
    ):
        super().__init__(name, on_video, description)
        self.radius, self.percent = float(radius), int(percent)

    def change(self, image, record, rng):
        from PIL import ImageFilter

        return image.filter(ImageFilter.UnsharpMask(radius=self.radius, percent=self.percent, threshold=0))


class Caption(ImageProbe):
    """A caption that copies the prompt, rendered in a white band over the bottom of the image."""

    def __init__(
        self, name: str, text: str = "{prompt}", band: float = 0.22, on_video: bool = True, description: str = ""
    ):
        super().__init__(name, on_video, description)
        self.text, self.band = text, float(band)

    def caption(self, record: Record) -> str:
        return " ".join(self.text.replace("{prompt}", record.prompt).split())

    def change(self, image, record, rng):
        from PIL import ImageDraw, ImageFont

        image = image.copy()
        w, h = image.size
        band = max(12, int(h * self.band))
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, h - band, w, h], fill=(255, 255, 255))
        size = max(8, band // 3)
        try:
            font = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: one bitmap size
            font = ImageFont.load_default()
        words, lines, line = self.caption(record).split(), [], ""
        for word in words:  # wrap to the image width
            trial = (line + " " + word).strip()
            if draw.textlength(trial, font=font) > w - 8 and line:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
        y = h - band + 2
        for text in lines:
            if y + size > h:
                break
            draw.text((4, y), text, fill=(0, 0, 0), font=font)
            y += size + 2
        return image


# ---- audio -------------------------------------------------------------------------------------
def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """[samples, channels] float32 and the sample rate, as stored."""
    import soundfile as sf

    # deferred: PIL loads only for a media probe
    from omnireward.data.media import AUDIO_EXTENSIONS, _checked

    p = _checked(path, "audio", AUDIO_EXTENSIONS)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile's own errors
        raise MediaError(f"corrupt or undecodable audio: {e}", file=p) from None
    if not len(data):
        raise MediaError("audio file has no samples", file=p)
    return data, int(sr)


class AudioProbe(MediaProbe):
    """An audio change on the stored waveform; written as 16-bit WAV at the source's sample rate."""

    modality = "audio"
    media_type = "audio"
    suffix = ".wav"

    def change(self, wav: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def write(self, record: Record, m: Media, src: Path, dst: Path, ctx: ProbeContext) -> None:
        import soundfile as sf

        wav, sr = read_audio(src)
        out = self.change(wav, sr, ctx.rng(self.name, record.id, str(src)))
        sf.write(str(dst), np.clip(out, -1.0, 1.0), sr, subtype="PCM_16")


class AudioNoise(AudioProbe):
    """White noise at `snr_db` below the clip's own power."""

    def __init__(self, name: str, snr_db: float = 10.0, description: str = ""):
        super().__init__(name, description)
        self.snr_db = float(snr_db)

    def change(self, wav, sr, rng):
        power = float(np.mean(wav**2)) or 1e-8
        sigma = np.sqrt(power / 10 ** (self.snr_db / 10))
        return wav + rng.normal(0, sigma, wav.shape).astype(np.float32)


class AudioSilence(AudioProbe):
    """`lead` seconds of silence before the clip and `trail` seconds after it."""

    def __init__(self, name: str, lead: float = 1.0, trail: float = 1.0, description: str = ""):
        super().__init__(name, description)
        if lead < 0 or trail < 0 or lead + trail <= 0:
            raise ConfigError(f"probe {name}: lead and trail must be >= 0 and not both 0", field="lead")
        self.lead, self.trail = float(lead), float(trail)

    def change(self, wav, sr, rng):
        ch = wav.shape[1]
        return np.concatenate(
            [
                np.zeros((int(round(self.lead * sr)), ch), np.float32),
                wav,
                np.zeros((int(round(self.trail * sr)), ch), np.float32),
            ]
        )


class AudioGain(AudioProbe):
    """Gain of `db` decibels (louder), clipped at full scale."""

    def __init__(self, name: str, db: float = 6.0, description: str = ""):
        super().__init__(name, description)
        self.db = float(db)

    def change(self, wav, sr, rng):
        return wav * np.float32(10 ** (self.db / 20))


# ---- video -------------------------------------------------------------------------------------
def read_frames(path: Path) -> tuple[np.ndarray, float]:
    """Every frame ([T, H, W, 3] uint8) and the fps, read with omnireward's video reader."""
    # deferred: PIL loads only for a media probe
    from omnireward.data.media import VIDEO_EXTENSIONS, _checked

    p = _checked(path, "video", VIDEO_EXTENSIONS)
    try:
        vf = VideoFile(str(p))
        n = len(vf)
        if n == 0:
            raise MediaError("video has no frames", file=p)
        return vf.frames(list(range(n))), (vf.fps or 8.0)
    except MediaError:
        raise
    except Exception as e:  # noqa: BLE001 - decord / PyAV errors for a bad file
        raise MediaError(f"corrupt or undecodable video: {str(e).splitlines()[0] if str(e) else e!r}", file=p) from None


def write_video(dst: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 mp4 (PyAV) at `fps`; odd frame sizes lose their last row or column (yuv420p needs even ones)."""
    try:
        import av
    except ImportError:
        raise DependencyError("video probes write mp4 files with PyAV: pip install av") from None
    from fractions import Fraction

    t, h, w = frames.shape[:3]
    h2, w2 = max(2, h - h % 2), max(2, w - w % 2)
    with av.open(str(dst), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h2, :w2]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class VideoProbe(MediaProbe):
    """A change to a video's frame sequence (same fps, same frame count)."""

    modality = "video"
    media_type = "video"
    suffix = ".mp4"

    def order(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def write(self, record: Record, m: Media, src: Path, dst: Path, ctx: ProbeContext) -> None:
        frames, fps = read_frames(src)
        write_video(dst, frames[self.order(len(frames), ctx.rng(self.name, record.id, str(src)))], fps)


class FrameShuffle(VideoProbe):
    """Frames in a random order (never the original one when there are two or more)."""

    def order(self, n, rng):
        idx = rng.permutation(n)
        if n > 1 and np.array_equal(idx, np.arange(n)):
            idx = np.roll(idx, 1)
        return idx


class FrameFreeze(VideoProbe):
    """The frame at `at` (share of the clip) held for the whole clip."""

    def __init__(self, name: str, at: float = 0.0, description: str = ""):
        super().__init__(name, description)
        if not 0 <= at <= 1:
            raise ConfigError(f"probe {name}: at must be in [0, 1]", field="at")
        self.at = float(at)

    def order(self, n, rng):
        return np.full(n, min(n - 1, int(self.at * n)))


class FrameReverse(VideoProbe):
    """The clip played backwards."""

    def order(self, n, rng):
        return np.arange(n)[::-1].copy()


# ---- 3D ----------------------------------------------------------------------------------------
def cluster_decimate(vertices: np.ndarray, faces: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: vertices snapped to a grid and merged per cell (mean position); faces that
    collapse are dropped. The grid is the coarsest whose face count stays at or above `ratio` of the
    original (bisection on the cell size), so the shape keeps its outline at lower detail."""
    lo_v, hi_v = vertices.min(0), vertices.max(0)
    diag = float(np.linalg.norm(hi_v - lo_v)) or 1.0
    target = max(4, int(ratio * len(faces)))

    def at(cell: float):
        key = np.floor((vertices - lo_v) / cell).astype(np.int64)
        _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        pos = np.zeros((len(counts), 3))
        np.add.at(pos, inverse, vertices)
        pos /= counts[:, None]
        f = inverse[faces]
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
        first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)[1]  # one copy of each merged face
        return pos, f[np.sort(first)]

    lo, hi = diag * 1e-4, diag / 2
    best = at(lo)
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        pos, f = at(mid)
        if len(f) >= target:
            best, lo = (pos, f), mid
        else:
            hi = mid
    pos, f = best
    used = np.unique(f)
    remap = np.full(len(pos), -1)
    remap[used] = np.arange(len(used))
    return pos[used], remap[f]


class MeshProbe(MediaProbe):
    """A change to a triangle mesh, written as PLY."""

    modality = "3d"
    media_type = "mesh"
    suffix = ".ply"

    def change(self, vertices: np.ndarray, faces: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def write(self, record: Record, m: Media, src: Path, dst: Path, ctx: ProbeContext) -> None:
        import trimesh

        # deferred: PIL loads only for a media probe
        from omnireward.data.media import MESH_EXTENSIONS, _checked, _load_geometry

        geom = _load_geometry(_checked(src, "mesh", MESH_EXTENSIONS))
        if not isinstance(geom, trimesh.Trimesh) or not len(geom.faces):
            raise MediaError("file holds a point cloud without faces; mesh probes need a triangle mesh", file=src)
        v, f = self.change(
            np.asarray(geom.vertices, np.float64),
            np.asarray(geom.faces, np.int64),
            ctx.rng(self.name, record.id, str(src)),
        )
        trimesh.Trimesh(vertices=v, faces=f, process=False).export(str(dst))


class MeshDecimate(MeshProbe):
    """The mesh decimated to about `ratio` of its faces (vertex clustering)."""

    def __init__(self, name: str, ratio: float = 0.1, description: str = ""):
        super().__init__(name, description)
        if not 0 < ratio < 1:
            raise ConfigError(f"probe {name}: ratio must be in (0, 1)", field="ratio")
        self.ratio = float(ratio)

    def change(self, vertices, faces, rng):
        return cluster_decimate(vertices, faces, self.ratio)


class MeshNoise(MeshProbe):
    """Every vertex moved by Gaussian noise of `scale` times the bounding-box diagonal."""

    def __init__(self, name: str, scale: float = 0.01, description: str = ""):
        super().__init__(name, description)
        self.scale = float(scale)

    def change(self, vertices, faces, rng):
        diag = float(np.linalg.norm(vertices.max(0) - vertices.min(0))) or 1.0
        return vertices + rng.normal(0, self.scale * diag, vertices.shape), faces


@dataclass
class ProbeSet:
    """The probes of a run, in order, with unique names."""

    probes: list[Probe] = field(default_factory=list)

    def __post_init__(self):
        seen = set()
        for p in self.probes:
            if not isinstance(p, Probe):
                raise ConfigError(
                    f"{type(p).__name__} is not a probe (subclass omnireward.probe.probes.Probe)", field="_target_"
                )
            if p.name in seen:
                raise ConfigError(f"two probes are named {p.name!r}", field="name")
            seen.add(p.name)
