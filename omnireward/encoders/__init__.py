"""Modality encoders: one file per modality, built by name with `build_encoder`."""

from __future__ import annotations

import inspect

from omnireward.encoders.base import Encoder
from omnireward.errors import ConfigError


def _registry() -> dict[str, type[Encoder]]:
    # Imported lazily: each module pulls in its own pretrained-weights packages.
    from omnireward.encoders.audio import AudioEncoder
    from omnireward.encoders.image import ImageEncoder
    from omnireward.encoders.mesh import MeshEncoder
    from omnireward.encoders.video import VideoEncoder

    return {"image": ImageEncoder, "video": VideoEncoder, "audio": AudioEncoder, "mesh": MeshEncoder}


MODALITIES = ("image", "video", "audio", "mesh")


def build_encoder(modality: str, *, pretrained: bool = True, trainable: bool = False, **options) -> Encoder:
    """The encoder for `modality` (image | video | audio | mesh) with its options (see each class)."""
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r} (expected one of {', '.join(MODALITIES)})", field="encoder")
    cls = _registry()[modality]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "pretrained", "trainable")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown {modality} encoder option(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})",
            field="encoder",
        )
    return cls(pretrained=pretrained, trainable=trainable, **options)


__all__ = ["Encoder", "MODALITIES", "build_encoder"]
