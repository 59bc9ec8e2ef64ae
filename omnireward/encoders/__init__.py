"""Modality encoders: one file per modality, each a `_target_` component.

A modality config names its encoders (`conf/modality/<name>.yaml`, `encoders:`), each either a
name from `SPECS` (the packaged encoders) or a spec of its own, `{_target_: pkg.module.Class,
_partial_: true, ...}` (Hydra hands it over as a `functools.partial`), whose class subclasses `omnireward.encoders.base.Encoder`; the encoder's `modality` is the media
type it reads (records' `{"type": ..., "path": ...}`), and defining the class makes that type known
to the data reader (docs/extending.md).
"""

from __future__ import annotations

import functools
import inspect

from omnireward.encoders.base import Encoder
from omnireward.errors import ConfigError

# The packaged encoders by name; each module is imported only when its encoder is built (it pulls
# in its own pretrained-weights packages).
SPECS = {
    "image": {"_target_": "omnireward.encoders.image.ImageEncoder"},
    "video": {"_target_": "omnireward.encoders.video.VideoEncoder"},
    "audio": {"_target_": "omnireward.encoders.audio.AudioEncoder"},
    "mesh": {"_target_": "omnireward.encoders.mesh.MeshEncoder"},
}
MODALITIES = tuple(SPECS)


def _import(target: str) -> type[Encoder]:
    import importlib

    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"cannot import encoder {target!r} ({type(e).__name__}: {e})", field="encoder") from None
    if not (isinstance(cls, type) and issubclass(cls, Encoder)):
        raise ConfigError(f"{target} is not an omnireward.encoders.base.Encoder", field="encoder")
    return cls


def encoder_spec(encoder) -> dict:
    """The `_target_` spec a modality config's entry stands for: a name from SPECS, a spec, or the
    `functools.partial` Hydra builds from a `_partial_: true` spec."""
    if isinstance(encoder, functools.partial):
        cls = encoder.func
        return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **encoder.keywords}
    if isinstance(encoder, str):
        if encoder not in SPECS:
            raise ConfigError(
                f"unknown modality {encoder!r} (expected one of {', '.join(MODALITIES)}, "
                "or an encoder spec with _target_)",
                field="encoder",
            )
        return dict(SPECS[encoder])
    spec = {k: v for k, v in dict(encoder).items() if k != "_partial_"}
    if "_target_" not in spec:
        raise ConfigError(f"an encoder spec needs a _target_ (got {sorted(spec)})", field="encoder")
    return spec


def encoder_name(encoder) -> str:
    """The media type an entry's encoder reads (its class's `modality`)."""
    return _import(encoder_spec(encoder)["_target_"]).modality


def build_encoder(encoder, *, pretrained: bool = True, trainable: bool = False, **options) -> Encoder:
    """The encoder a modality config's entry names (image | video | audio | mesh, or a `_target_`
    spec), with its options (see each class) over the spec's own."""
    spec = encoder_spec(encoder)
    cls = _import(spec.pop("_target_"))
    options = {**spec, **options}
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "pretrained", "trainable")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown {cls.modality} encoder option(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})",
            field="encoder",
        )
    given = {k: v for k, v in (("pretrained", pretrained), ("trainable", trainable)) if k in params}
    return cls(**given, **options)


__all__ = ["Encoder", "MODALITIES", "SPECS", "build_encoder", "encoder_name", "encoder_spec"]
