"""Image demo pairs (text_to_image, text_image_to_text) from real photos shipped in Python packages.

Training and validation crops come from scikit-image's sample photos; the test split's come from
photos shipped in other packages (and two more of scikit-image's), which training never shows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from omnireward.data.demo.pairs import FLIP, Choice, Ctx, package_file, plan, twin, worded_twin, wording
from omnireward.data.records import Media, Response


@dataclass(frozen=True)
class Photo:
    name: str  # the source's name in `meta.sources`
    subject: str  # what it shows, as prompts and criteria name it
    colour: bool
    where: tuple[str, ...]  # package, then the path of the file inside it


def _sk(name: str, subject: str, colour: bool) -> Photo:
    return Photo(name.split(".")[0], subject, colour, ("skimage", "data", name))


# Seen sources: train and val crop these.
SEEN = [
    _sk("astronaut.png", "an astronaut in a space suit", True),
    _sk("chelsea.png", "a tabby cat", True),
    _sk("coffee.png", "a cup of coffee", True),
    _sk("rocket.jpg", "a rocket on a launch pad", True),
    _sk("motorcycle_left.png", "a motorcycle", True),
    _sk("hubble_deep_field.jpg", "galaxies in deep space", True),
    _sk("retina.jpg", "the retina of an eye", True),
    _sk("ihc.png", "stained tissue under a microscope", True),
    _sk("camera.png", "a man with a camera on a tripod", False),
    _sk("coins.png", "a collection of old coins", False),
    _sk("moon.png", "the surface of the moon", False),
    _sk("brick.png", "a brick wall", False),
    _sk("grass.png", "a patch of grass", False),
    _sk("gravel.png", "a pile of gravel", False),
    _sk("horse.png", "the silhouette of a horse", False),
    _sk("page.png", "a page of printed text", False),
]
# Unseen sources: only the test split shows these (none is a crop, copy or other view of a seen one).
UNSEEN = [
    Photo("china", "a Chinese pagoda above a lake", True, ("sklearn", "datasets", "images", "china.jpg")),
    Photo("flower", "an orange dahlia flower", True, ("sklearn", "datasets", "images", "flower.jpg")),
    Photo(
        "grace_hopper", "a woman in a navy uniform", True, ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
    ),
    Photo("earth", "a map of the whole Earth seen from space", True, ("pyvista", "examples", "2k_earth_daymap.jpg")),
    Photo("ascent", "people climbing an outdoor staircase", False, ("pywt", "data", "ascent.npz")),
    Photo("aero", "an aerial photo of fields and a river", False, ("pywt", "data", "aero.npz")),
    _sk("cell.png", "a single cell floating in liquid", False),
    _sk("text.png", "handwritten maths on a sheet of paper", False),
]


def pool(ctx: Ctx) -> list[Photo]:
    """The photos this split may show: unseen ones for test, the seen ones otherwise."""
    return UNSEEN if ctx.unseen else SEEN


_IMAGE_PROMPTS = ["a photo of {x}", "{x}", "an image of {x}", "a picture showing {x}", "a high-quality photo of {x}"]
_IMAGE_QUESTIONS = [
    "What is shown in this image?",
    "Describe this picture in a few words.",
    "What does this image show?",
]
CRITERIA = {
    "gray": ["Prefer the black-and-white image.", "Prefer the greyscale picture.", "The better image has no colour."],
    "colour": [
        "Prefer the colour image.",
        "Prefer the image in full colour.",
        "The better image is colourful, not black-and-white.",
    ],
    "bright": ["Prefer the brighter image.", "Prefer the lighter, more brightly lit picture."],
    "dark": ["Prefer the darker image.", "Prefer the dimmer, darker picture."],
    "quality": ["Prefer the sharper, cleaner image.", "Prefer the image without visual artifacts."],
    "subject": ["Prefer the image that matches the prompt."],
    "shows": ["Prefer the image that shows {x}.", "The better picture is the one of {x}."],
}
# Criteria for the flips in other words than CRITERIA's: only the test split uses them (pairs.wording).
PARAPHRASES = {
    "gray": ["The monochrome one.", "I would like a photo in shades of grey only.", "Pick the black and white shot."],
    "colour": [
        "The one with vivid colours.",
        "I would like a photo with all its hues intact.",
        "Pick the colourful shot.",
    ],
    "bright": ["The lighter one.", "I want the photo with more light in it.", "Pick the well-lit, luminous shot."],
    "dark": ["The dimmer one.", "I want the photo with less light in it.", "Pick the shadowy, low-light shot."],
    "shows": ["I want a picture of {x}.", "Pick the one that depicts {x}."],
}
# Prompts that name no subject: the criteria alone say which picture is wanted.
_OPEN_PROMPTS = ["a nice photo", "a picture for my wall", "an interesting image"]
IMAGE_SIZE = 160


@cache
def source_image(photo: Photo) -> Image.Image:
    """The whole photo in RGB (transparent parts on white)."""
    path = package_file(*photo.where)
    im = Image.fromarray(np.load(path)["data"]) if path.suffix == ".npz" else Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return im.convert("RGB")


def _crop(ctx: Ctx, photo: Photo) -> Image.Image:
    """A random square crop (55-100% of the short side), maybe mirrored, at IMAGE_SIZE px."""
    im = source_image(photo)
    w, h = im.size
    side = int(min(w, h) * ctx.rng.uniform(0.55, 1.0))
    x, y = int(ctx.rng.integers(0, w - side + 1)), int(ctx.rng.integers(0, h - side + 1))
    out = im.crop((x, y, x + side, y + side)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
    if photo.name not in ("page", "text") and ctx.rng.random() < 0.5:  # mirrored text: a second, odd signal
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return out


def _degrade(ctx: Ctx, im: Image.Image) -> tuple[Image.Image, str]:
    """A visibly worse copy: blur, noise, JPEG blocking, washed-out contrast or pixelation."""
    kind = ctx.pick(["blur", "noise", "jpeg", "contrast", "pixelate"])
    if kind == "blur":
        return im.filter(ImageFilter.GaussianBlur(ctx.rng.uniform(2.5, 4.0))), kind
    if kind == "noise":
        a = np.asarray(im, dtype=np.float32)
        a = a + ctx.rng.normal(0, ctx.rng.uniform(35, 60), a.shape)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), kind
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(ctx.rng.integers(2, 7)))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), kind
    if kind == "contrast":
        return ImageEnhance.Contrast(im).enhance(ctx.rng.uniform(0.2, 0.35)), kind
    small = max(8, int(im.width / ctx.rng.uniform(6, 10)))
    return im.resize((small, small), Image.BILINEAR).resize(im.size, Image.NEAREST), kind


def _save_image(ctx: Ctx, im: Image.Image) -> Media:
    path, rel = ctx.new_media(".png")
    im.save(path, "PNG", optimize=False, compress_level=6)
    return Media("image", rel)


def _image_unit(rule: str, ctx: Ctx) -> list[Choice]:
    photos = pool(ctx)
    photo = ctx.pick(photos)
    other = ctx.pick([x for x in photos if x != photo])
    prompt = ctx.pick(_IMAGE_PROMPTS).format(x=photo.subject)

    def choice(good_img, bad_img, criteria=None, sources=(photo,), **detail):
        return Choice(
            "text_to_image",
            prompt,
            Response(media=[_save_image(ctx, good_img)]),
            Response(media=[_save_image(ctx, bad_img)]),
            rule,
            criteria,
            detail={**detail, "sources": [x.name for x in sources]},
        )

    if rule == "subject":
        criteria = ctx.maybe(CRITERIA["subject"])
        return [choice(_crop(ctx, photo), _crop(ctx, other), criteria, (photo, other), other=other.name)]
    if rule == "degradation":
        clean = _crop(ctx, photo)
        bad, kind = _degrade(ctx, clean)
        return [choice(clean, bad, ctx.maybe(CRITERIA["quality"]), degradation=kind)]
    if rule == "caption":
        shown = _save_image(ctx, _crop(ctx, photo))
        return [
            Choice(
                "text_image_to_text",
                ctx.pick(_IMAGE_QUESTIONS),
                Response(f"It shows {photo.subject}."),
                Response(f"It shows {other.subject}."),
                rule,
                prompt_media=[shown],
                detail={"other": other.name, "sources": [photo.name, other.name]},
            )
        ]
    # criteria flip: on the subject the criteria ask for, on colour (colour sources only), or on brightness
    kind = ctx.pick(["subject", "colour", "brightness"])
    if kind == "subject":
        prompt = ctx.pick(_OPEN_PROMPTS)
        shows, how = wording(ctx, CRITERIA["shows"], PARAPHRASES["shows"])
        base = choice(
            _crop(ctx, photo), _crop(ctx, other), None, (photo, other), flip="subject", other=other.name, wording=how
        )
        return twin(base, shows.format(x=photo.subject), shows.format(x=other.subject))
    if kind == "colour":
        photo = ctx.pick([x for x in photos if x.colour])
        prompt = ctx.pick(_IMAGE_PROMPTS).format(x=photo.subject)
        img = _crop(ctx, photo)
        base = choice(img.convert("L").convert("RGB"), img, None, (photo,), flip="colour")
        return worded_twin(ctx, base, CRITERIA, PARAPHRASES, "gray", "colour")
    img = _crop(ctx, photo)
    bright = ImageEnhance.Brightness(img).enhance(ctx.rng.uniform(1.4, 1.7))
    dark = ImageEnhance.Brightness(img).enhance(ctx.rng.uniform(0.35, 0.55))
    base = choice(bright, dark, flip="brightness")
    return worded_twin(ctx, base, CRITERIA, PARAPHRASES, "bright", "dark")


def build(n: int, ctx: Ctx) -> list[list[Choice]]:
    shares = {"subject": 0.3, "degradation": 0.25, "caption": 0.15, FLIP: 0.3}
    return [_image_unit(rule, ctx) for rule in plan(n, shares, ctx.rng)]
