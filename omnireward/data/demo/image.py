"""Image demo pairs (text_to_image, text_image_to_text) from scikit-image's sample photos."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from omnireward.data.demo.pairs import FLIP, Choice, Ctx, package_file, plan, twin
from omnireward.data.records import Media, Response

# (file in skimage/data, what it shows, colour?)
_IMAGES = [
    ("astronaut.png", "an astronaut in a space suit", True),
    ("chelsea.png", "a tabby cat", True),
    ("coffee.png", "a cup of coffee", True),
    ("rocket.jpg", "a rocket on a launch pad", True),
    ("motorcycle_left.png", "a motorcycle", True),
    ("hubble_deep_field.jpg", "galaxies in deep space", True),
    ("retina.jpg", "the retina of an eye", True),
    ("ihc.png", "stained tissue under a microscope", True),
    ("camera.png", "a man with a camera on a tripod", False),
    ("coins.png", "a collection of old coins", False),
    ("moon.png", "the surface of the moon", False),
    ("brick.png", "a brick wall", False),
    ("grass.png", "a patch of grass", False),
    ("gravel.png", "a pile of gravel", False),
    ("horse.png", "the silhouette of a horse", False),
    ("page.png", "a page of printed text", False),
]
_IMAGE_PROMPTS = ["a photo of {x}", "{x}", "an image of {x}", "a picture showing {x}",
                  "a high-quality photo of {x}"]
_IMAGE_QUESTIONS = ["What is shown in this image?", "Describe this picture in a few words.",
                    "What does this image show?"]
CRITERIA = {
    "gray": ["Prefer the black-and-white image.", "Prefer the greyscale picture.",
             "The better image has no colour."],
    "colour": ["Prefer the colour image.", "Prefer the image in full colour.",
               "The better image is colourful, not black-and-white."],
    "bright": ["Prefer the brighter image.", "Prefer the lighter, more brightly lit picture."],
    "dark": ["Prefer the darker image.", "Prefer the dimmer, darker picture."],
    "quality": ["Prefer the sharper, cleaner image.", "Prefer the image without visual artifacts."],
    "subject": ["Prefer the image that matches the prompt."],
    "shows": ["Prefer the image that shows {x}.", "The better picture is the one of {x}."],
}
# Prompts that name no subject: the criteria alone say which picture is wanted.
_OPEN_PROMPTS = ["a nice photo", "a picture for my wall", "an interesting image"]
IMAGE_SIZE = 160


@cache
def _source_image(name: str) -> Image.Image:
    im = Image.open(package_file("skimage", "data", name))
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return im.convert("RGB")


def _crop(ctx: Ctx, name: str) -> Image.Image:
    """A random square crop (55-100% of the short side), maybe mirrored, at IMAGE_SIZE px."""
    im = _source_image(name)
    w, h = im.size
    side = int(min(w, h) * ctx.rng.uniform(0.55, 1.0))
    x, y = int(ctx.rng.integers(0, w - side + 1)), int(ctx.rng.integers(0, h - side + 1))
    out = im.crop((x, y, x + side, y + side)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
    if name != "page.png" and ctx.rng.random() < 0.5:  # mirrored text would be a second, odd signal
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
    name, subject, _ = ctx.pick(_IMAGES)
    other_name, other_subject, _ = ctx.pick([x for x in _IMAGES if x[0] != name])
    prompt = ctx.pick(_IMAGE_PROMPTS).format(x=subject)

    def choice(good_img, bad_img, criteria=None, **detail):
        return Choice("text_to_image", prompt, Response(media=[_save_image(ctx, good_img)]),
                      Response(media=[_save_image(ctx, bad_img)]), rule, criteria, detail=detail)

    if rule == "subject":
        criteria = ctx.maybe(CRITERIA["subject"])
        return [choice(_crop(ctx, name), _crop(ctx, other_name), criteria, other=other_name)]
    if rule == "degradation":
        clean = _crop(ctx, name)
        bad, kind = _degrade(ctx, clean)
        return [choice(clean, bad, ctx.maybe(CRITERIA["quality"]), degradation=kind)]
    if rule == "caption":
        shown = _save_image(ctx, _crop(ctx, name))
        return [Choice("text_image_to_text", ctx.pick(_IMAGE_QUESTIONS), Response(f"It shows {subject}."),
                       Response(f"It shows {other_subject}."), rule, prompt_media=[shown],
                       detail={"other": other_name})]
    # criteria flip: on the subject the criteria ask for, on colour (colour sources only), or on brightness
    kind = ctx.pick(["subject", "colour", "brightness"])
    if kind == "subject":
        prompt = ctx.pick(_OPEN_PROMPTS)
        shows = ctx.pick(CRITERIA["shows"])
        base = choice(_crop(ctx, name), _crop(ctx, other_name), flip="subject", other=other_name)
        return twin(base, shows.format(x=subject), shows.format(x=other_subject))
    if kind == "colour":
        name, subject, _ = ctx.pick([x for x in _IMAGES if x[2]])
        prompt = ctx.pick(_IMAGE_PROMPTS).format(x=subject)
        img = _crop(ctx, name)
        base = choice(img.convert("L").convert("RGB"), img, flip="colour")
        return twin(base, ctx.pick(CRITERIA["gray"]), ctx.pick(CRITERIA["colour"]))
    img = _crop(ctx, name)
    bright = ImageEnhance.Brightness(img).enhance(ctx.rng.uniform(1.4, 1.7))
    dark = ImageEnhance.Brightness(img).enhance(ctx.rng.uniform(0.35, 0.55))
    base = choice(bright, dark, flip="brightness")
    return twin(base, ctx.pick(CRITERIA["bright"]), ctx.pick(CRITERIA["dark"]))


def build(n: int, ctx: Ctx) -> list[list[Choice]]:
    shares = {"subject": 0.3, "degradation": 0.25, "caption": 0.15, FLIP: 0.3}
    return [_image_unit(rule, ctx) for rule in plan(n, shares, ctx.rng)]
