"""Media in requests: paths under the media root, or inline bytes (base64 `data:` URIs, images,
waveforms) written once to a content-addressed spool folder.

The media loaders read files, so inline media become files named by the hash of their bytes:
the same image sent by the G rollouts of one GRPO group is one file, and the encoders' feature
cache (keyed by path, size and mtime) computes its features once. Spool files stay while a
request holds them (a `Lease`) and are evicted oldest first past `max_spool_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from omnireward.data import kinds
from omnireward.data.paths import resolve_media_path
from omnireward.data.records import Media
from omnireward.errors import OmniRewardError, RequestError, RequestTooLarge

# OpenAI-style `input_audio.format` values
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg"}


def is_data_uri(ref: str) -> bool:
    return ref[:5].lower() == "data:"


class MediaStore:
    """Resolves media references of requests to files the loaders read."""

    def __init__(
        self,
        root: str | Path = ".",
        *,
        allow_outside_root: bool = False,
        max_item_bytes: int = 32 * 2**20,
        spool: str | Path | None = None,
        max_spool_bytes: int = 512 * 2**20,
        check_exists: bool = True,
    ):
        self.root = Path(root).resolve()
        self.allow_outside_root = allow_outside_root
        self.max_item_bytes = max_item_bytes
        self.max_spool_bytes = max_spool_bytes
        self.check_exists = check_exists
        self._own_spool = spool is None
        self.spool = Path(spool) if spool is not None else Path(tempfile.mkdtemp(prefix="omnireward-media-"))
        self.spool.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._files: OrderedDict[Path, int] = OrderedDict()  # spool file -> size, oldest first
        self._holds: dict[Path, int] = {}
        self._bytes = 0

    def lease(self) -> Lease:
        """A holder for the spool files one request uses; release it when the request is answered."""
        return Lease(self)

    def close(self) -> None:
        if self._own_spool:
            shutil.rmtree(self.spool, ignore_errors=True)

    # ---- resolving ------------------------------------------------------------------------------
    def path(self, ref: str, field: str) -> Path:
        """A path reference, resolved against the media root (refusing escapes unless allowed)."""
        ref = ref[len("file://") :] if ref.startswith("file://") else ref
        if ref.startswith(("http://", "https://")):
            raise RequestError(
                "the server does not fetch URLs; send the file as a base64 data: URI or a path under --media-root",
                field=field,
            )
        try:
            full = resolve_media_path(ref, self.root, allow_outside=self.allow_outside_root)
        except OmniRewardError as e:
            raise RequestError(e.reason, field=field) from None
        if self.check_exists and not full.is_file():
            raise RequestError(
                f"media file not found: {ref!r} (paths resolve against the media root {str(self.root)!r})", field=field
            )
        return full

    def decode_data_uri(self, uri: str, field: str) -> tuple[str, bytes]:
        """(MIME type, bytes) of a base64 `data:` URI, checking the size limit before decoding."""
        head, sep, payload = uri.partition(",")
        if not sep:
            raise RequestError("a data: URI needs a comma before its payload", field=field)
        params = head[5:].split(";")
        mime = params[0].strip().lower()
        if "base64" not in [p.strip().lower() for p in params[1:]]:
            raise RequestError("only base64 data: URIs are accepted (data:<type>;base64,...)", field=field)
        approx = len(payload) * 3 // 4
        if approx > self.max_item_bytes:
            raise RequestTooLarge(
                f"inline media of {approx / 2**20:.1f} MiB is over the "
                f"{self.max_item_bytes / 2**20:.0f} MiB limit per item (--max-media-mb)",
                field=field,
            )
        try:
            data = base64.b64decode(payload.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("the data: URI payload is not valid base64", field=field) from None
        if not data:
            raise RequestError("the data: URI is empty", field=field)
        return mime, data

    def put(self, data: bytes, suffix: str, field: str) -> Path:
        """A spool file holding `data` (written once per distinct content), held once for the caller."""
        if len(data) > self.max_item_bytes:
            raise RequestTooLarge(
                f"inline media of {len(data) / 2**20:.1f} MiB is over the "
                f"{self.max_item_bytes / 2**20:.0f} MiB limit per item (--max-media-mb)",
                field=field,
            )
        name = hashlib.sha256(data).hexdigest()[:32] + suffix
        path = self.spool / name
        with self._lock:
            if path in self._files:
                self._files.move_to_end(path)
                self._holds[path] = self._holds.get(path, 0) + 1
                return path
        tmp = path.with_name(f".{name}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        with self._lock:
            if path not in self._files:
                self._files[path] = len(data)
                self._bytes += len(data)
            self._holds[path] = self._holds.get(path, 0) + 1
            self._evict()
        return path

    def _evict(self) -> None:
        for old in list(self._files):
            if self._bytes <= self.max_spool_bytes:
                break
            if self._holds.get(old):
                continue
            self._bytes -= self._files.pop(old)
            old.unlink(missing_ok=True)

    def unhold(self, path: Path) -> None:
        with self._lock:
            n = self._holds.get(path, 0) - 1
            if n > 0:
                self._holds[path] = n
            else:
                self._holds.pop(path, None)
            self._evict()


class Lease:
    """The media of one request: resolves references and holds the spool files until released."""

    def __init__(self, store: MediaStore):
        self.store = store
        self.held: list[Path] = []

    def media(self, mtype: str | None, ref, field: str) -> Media:
        """A Media item with an absolute path from a path or a `data:` URI (type from the URI when None)."""
        if not isinstance(ref, str) or not ref.strip():
            raise RequestError("expected a media path or a data: URI string", field=field)
        if mtype is not None and kinds.get(mtype) is None:
            raise RequestError(
                f"unknown media type {mtype!r} (expected one of {', '.join(kinds.names())})", field=field
            )
        if not is_data_uri(ref):
            path = self.store.path(ref, field)
            if mtype is None:
                mtype = _type_of_suffix(path.suffix, field)
            return Media(mtype, str(path))
        mime, data = self.store.decode_data_uri(ref, field)
        found = kinds.of_mime(mime)
        if found is None:
            raise RequestError(
                f"unsupported media type {mime or '(none)'!r} in data: URI (known: {', '.join(sorted(kinds.mimes()))})",
                field=field,
            )
        kind, suffix = found[0].name, found[1]
        if mtype is not None and kind != mtype:
            raise RequestError(f"a {mime} data: URI where {mtype} is expected", field=field)
        return Media(kind, str(self._keep(self.store.put(data, suffix, field))))

    def image(self, image, field: str) -> Media:
        """A PIL image (as TRL datasets hold them), spooled as PNG."""
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG")
        return Media("image", str(self._keep(self.store.put(buf.getvalue(), ".png", field))))

    def waveform(self, array, sample_rate: int, field: str) -> Media:
        """A waveform (as `datasets.Audio` decodes it), spooled as 16-bit WAV."""
        import numpy as np
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.asarray(array, dtype="float32"), int(sample_rate), format="WAV", subtype="PCM_16")
        return Media("audio", str(self._keep(self.store.put(buf.getvalue(), ".wav", field))))

    def raw(self, data: bytes, mtype: str, suffix: str, field: str) -> Media:
        return Media(mtype, str(self._keep(self.store.put(data, suffix, field))))

    def _keep(self, path: Path) -> Path:
        self.held.append(path)  # `put` already holds it for us
        return path

    def release(self) -> None:
        for p in self.held:
            self.store.unhold(p)
        self.held = []

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _type_of_suffix(suffix: str, field: str) -> str:
    kind = kinds.of_suffix(suffix)
    if kind is None:
        raise RequestError(f"cannot tell the media type of a {suffix or 'suffix-less'} file", field=field)
    return kind.name


_URL_PARTS = {"image_url": "image", "video_url": "video", "audio_url": "audio"}


def content_parts(content: list, lease: Lease, field: str) -> list:
    """An OpenAI-format message's content parts in reading order: adjacent text parts joined into one
    string, each image/video/audio part (a URL, a path or a data URI; `input_audio` base64) a Media."""
    parts: list = []
    for j, part in enumerate(content):
        f = f"{field}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise RequestError("expected a string", field=f + ".text")
            if parts and isinstance(parts[-1], str):
                parts[-1] += part["text"]
            else:
                parts.append(part["text"])
        elif kind in _URL_PARTS:
            ref = part.get(kind)
            ref = ref.get("url") if isinstance(ref, dict) else ref
            parts.append(lease.media(_URL_PARTS[kind], ref, f"{f}.{kind}.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                raise RequestError('expected {"data": base64, "format": "wav"}', field=f + ".input_audio")
            mime = AUDIO_FORMATS.get(str(audio.get("format", "wav")).lower())
            if mime is None:
                raise RequestError(
                    f"unknown audio format {audio.get('format')!r} (one of {', '.join(AUDIO_FORMATS)})",
                    field=f + ".input_audio.format",
                )
            parts.append(lease.media("audio", f"data:{mime};base64,{audio['data']}", f + ".input_audio.data"))
        else:
            raise RequestError(
                f"unsupported content part type {kind!r} (text, image_url, video_url, audio_url or input_audio)",
                field=f + ".type",
            )
    return parts
