"""Decoding video frames: decord where it installs, PyAV everywhere else, the same frames from both.

decord ships wheels for x86-64 Linux, Windows and Intel macOS only; PyAV's wheels (which bundle
ffmpeg) cover macOS arm64 and Linux aarch64 as well. Both decode with ffmpeg, and both resize with
swscale's bilinear filter, so a clip gives the same frames, timestamps and frame count whichever
reads it (tests/test_media.py compares them). `OMNIREWARD_VIDEO_BACKEND=decord|av` picks one.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

import numpy as np

from omnireward.errors import ConfigError

BACKENDS = ("decord", "av")


class VideoBackendError(ConfigError, ValueError):
    """OMNIREWARD_VIDEO_BACKEND names no backend: one line, before any file is read."""


def backend() -> str:
    """The backend in use: `OMNIREWARD_VIDEO_BACKEND` when set, else decord if it imports, else av."""
    chosen = os.environ.get("OMNIREWARD_VIDEO_BACKEND", "").strip().lower()
    if chosen:
        if chosen not in BACKENDS:
            raise VideoBackendError(
                f"OMNIREWARD_VIDEO_BACKEND={chosen!r}: expected one of {', '.join(BACKENDS)}",
                field="OMNIREWARD_VIDEO_BACKEND",
            )
        return chosen
    return "decord" if importlib.util.find_spec("decord") is not None else "av"


def frame_size(path: str) -> tuple[int, int]:
    """(height, width) of the stream's frames, without decoding the clip."""
    if backend() == "decord":
        import decord

        return tuple(decord.VideoReader(str(path), num_threads=1)[0].shape[:2])
    import av

    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.height, ctx.width


class VideoFile:
    """A video's frame count, frame size, average fps, frames by index and per-frame [start, end] times.

    `width`/`height` resize on decode (both or neither).
    """

    def __init__(self, path: str, width: int | None = None, height: int | None = None):
        self.path, self.size = str(path), (width, height) if width and height else None
        self.backend = backend()
        if self.backend == "decord":
            import decord

            kw = {"width": width, "height": height} if self.size else {}
            self._vr = decord.VideoReader(self.path, num_threads=1, **kw)
            self._n = len(self._vr)
            self.fps = float(self._vr.get_avg_fps())
        else:
            self._open_av()

    # -- PyAV: one sequential decode of the stream (frame-exact indices, as decord gives)
    def _open_av(self) -> None:
        import av

        with av.open(self.path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            base = float(stream.time_base) if stream.time_base else 0.0
            self._frames, starts = [], []
            for frame in container.decode(stream):
                if self.size:
                    frame = frame.reformat(
                        width=self.size[0], height=self.size[1], format="rgb24", interpolation="BILINEAR"
                    )
                self._frames.append(frame.to_ndarray(format="rgb24"))
                starts.append(frame.pts * base if frame.pts is not None else len(starts) / (self.fps or 1.0))
        self._n = len(self._frames)
        step = 1.0 / self.fps if self.fps > 0 else 0.0
        first = starts[0] if starts else 0.0
        start = np.asarray(starts, dtype=np.float64) - first
        self._times = np.stack([start, start + step], axis=1) if self._n else np.zeros((0, 2))

    def __len__(self) -> int:
        return self._n

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """[len(indices), H, W, 3] uint8 RGB."""
        idx = [int(i) for i in indices]
        if self.backend == "decord":
            return self._vr.get_batch(idx).asnumpy()
        return np.stack([self._frames[i] for i in idx])

    def timestamps(self, indices: Sequence[int]) -> np.ndarray:
        """[len(indices), 2] seconds: each frame's start and end."""
        idx = [int(i) for i in indices]
        if self.backend == "decord":
            return np.asarray(self._vr.get_frame_timestamp(idx), dtype=np.float64)
        return self._times[idx]
