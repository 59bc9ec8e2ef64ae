"""Media kinds: the one registry of what a record's media `type` may name, and what each part of the
package needs to know about it.

A kind says which file suffixes and MIME types it has (serving infers a path's or a `data:` URI's
kind from them), how to decode one file cheaply (`data validate` proves a file reads with it), how a
report shows it (`view`, or a `preview` picture), and what an HF checkpoint's processor reads it as
(`processor_input`: meshes go in as rendered views, i.e. images; `to_processor` turns one file into
that input for kinds outside the package). The packaged kinds are registered here; an
`omnireward.encoders.base.Encoder` subclass registers its own kind from its `media_kind` (or a bare
kind from its `modality`), so a new modality touches only its encoder, loader and config files
(docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnireward.data.suffixes import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, MESH_EXTENSIONS, VIDEO_EXTENSIONS
from omnireward.errors import ConfigError

# How a report can show a file: the browser's own element, a turntable of rendered views, or a link.
VIEWS = ("image", "audio", "video", "turntable", "link")
# What an HF processor takes (its `images=`, `videos=`, `audio=` arguments).
PROCESSOR_INPUTS = ("image", "video", "audio")


@dataclass(frozen=True)
class MediaKind:
    """One media type records may hold.

    - `suffixes`: file suffixes of this kind (lower case, with the dot).
    - `mime`: MIME type -> the suffix a file decoded from a `data:` URI of that type is stored with.
    - `decode(path)`: reads one file (small settings), raising an `OmniRewardError` on a bad one.
    - `view`: how a report shows it (`VIEWS`); `preview(path) -> PIL.Image`, when given, is shown instead.
    - `processor_input`: what an HF processor reads it as (`PROCESSOR_INPUTS`), None when none does;
      `to_processor(path, processor) -> list` gives those inputs for a kind outside the package (the
      packaged kinds' are in backbones/hf_processor.py, which holds the frame and view settings).
    """

    name: str
    suffixes: tuple[str, ...] = ()
    mime: dict[str, str] = field(default_factory=dict)
    decode: Callable[[Path], Any] | None = None
    view: str = "link"
    preview: Callable[[Path], Any] | None = None
    processor_input: str | None = None
    to_processor: Callable[[Path, Any], list] | None = None

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"a media kind needs a name, got {self.name!r}")
        if self.view not in VIEWS:
            raise ConfigError(f"media kind {self.name!r}: view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        if self.processor_input not in (None, *PROCESSOR_INPUTS):
            raise ConfigError(
                f"media kind {self.name!r}: processor_input must be one of {', '.join(PROCESSOR_INPUTS)} or None, "
                f"got {self.processor_input!r}"
            )
        bad = [s for s in (*self.suffixes, *self.mime.values()) if not s.startswith(".") or s != s.lower()]
        if bad:
            raise ConfigError(f"media kind {self.name!r}: suffixes are lower case with the dot, got {bad}")


def _image(path: Path):
    # deferred: numpy and PIL load only when media files are decoded
    from omnireward.data.media import load_image

    return load_image(path)


def _video(path: Path):
    # deferred: numpy and the video backend load only when media files are decoded
    from omnireward.data.media import load_video

    return load_video(path, num_frames=2)


def _audio(path: Path):
    # deferred: numpy and soundfile load only when media files are decoded
    from omnireward.data.media import load_audio

    return load_audio(path, sample_rate=16000, max_seconds=1.0)


def _mesh(path: Path):
    # deferred: numpy and the mesh readers load only when media files are decoded
    from omnireward.data.media import load_mesh

    return load_mesh(path, num_points=64)


PACKAGED = (
    MediaKind(
        "image",
        suffixes=IMAGE_EXTENSIONS,
        mime={
            "image/png": ".png",
            "image/jpeg": ".jpg",
            "image/jpg": ".jpg",
            "image/webp": ".webp",
            "image/gif": ".gif",
            "image/bmp": ".bmp",
            "image/tiff": ".tiff",
        },
        decode=_image,
        view="image",
        processor_input="image",
    ),
    MediaKind(
        "video",
        suffixes=VIDEO_EXTENSIONS,
        mime={
            "video/mp4": ".mp4",
            "video/webm": ".webm",
            "video/quicktime": ".mov",
            "video/x-matroska": ".mkv",
            "video/x-msvideo": ".avi",
            "video/mpeg": ".mpg",
        },
        decode=_video,
        view="video",
        processor_input="video",
    ),
    MediaKind(
        "audio",
        suffixes=AUDIO_EXTENSIONS,
        mime={
            "audio/wav": ".wav",
            "audio/x-wav": ".wav",
            "audio/wave": ".wav",
            "audio/vnd.wave": ".wav",
            "audio/flac": ".flac",
            "audio/x-flac": ".flac",
            "audio/ogg": ".ogg",
            "audio/mpeg": ".mp3",
            "audio/mp3": ".mp3",
        },
        decode=_audio,
        view="audio",
        processor_input="audio",
    ),
    MediaKind(
        "mesh",
        suffixes=MESH_EXTENSIONS,
        mime={
            "model/gltf-binary": ".glb",
            "model/gltf+json": ".gltf",
            "model/obj": ".obj",
            "model/stl": ".stl",
            "model/ply": ".ply",
            "application/ply": ".ply",
        },
        decode=_mesh,
        view="turntable",
        processor_input="image",  # rendered views
    ),
)
_KINDS: dict[str, MediaKind] = {k.name: k for k in PACKAGED}


def register(kind: MediaKind) -> MediaKind:
    """Add a kind (an Encoder subclass does this for its own) and return the kind now registered.

    A bare kind (a name alone, from an encoder's `modality`) leaves a registered kind of that name as
    it is; a kind with settings replaces an earlier one of the user's (the last definition wins, as
    when a module is reloaded), never a packaged one.
    """
    have = _KINDS.get(kind.name)
    if have is not None and (kind == MediaKind(kind.name) or have == kind):
        return have
    if have in PACKAGED:
        raise ConfigError(f"media kind {kind.name!r} is one of the package's own; give yours another name")
    taken = {s: k.name for k in _KINDS.values() if k.name != kind.name for s in k.suffixes}
    clash = sorted(s for s in kind.suffixes if s in taken)
    if clash:
        raise ConfigError(f"media kind {kind.name!r}: suffixes {clash} already belong to {taken[clash[0]]!r}")
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> MediaKind | None:
    return _KINDS.get(name)


def names() -> tuple[str, ...]:
    """Every media type a record may hold: the packaged ones and those registered."""
    return tuple(_KINDS)


def of_suffix(suffix: str) -> MediaKind | None:
    """The kind whose files end in `suffix` (any case), or None."""
    s = suffix.lower()
    return next((k for k in _KINDS.values() if s in k.suffixes), None)


def of_mime(mime: str) -> tuple[MediaKind, str] | None:
    """(kind, suffix) for a MIME type, or None."""
    return next(((k, k.mime[mime]) for k in _KINDS.values() if mime in k.mime), None)


def mimes() -> dict[str, str]:
    """Every known MIME type -> its kind's name."""
    return {m: k.name for k in _KINDS.values() for m in k.mime}


def mime_of_suffix(suffix: str) -> str | None:
    """The first MIME type whose files are stored with `suffix` (what a client sends a file as)."""
    s = suffix.lower()
    return next((m for k in _KINDS.values() for m, sfx in k.mime.items() if sfx == s), None)
