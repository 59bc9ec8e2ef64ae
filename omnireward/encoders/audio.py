"""Audio encoder: Whisper tiny.en's encoder states, average-pooled over the clip's real (unpadded) span."""

from __future__ import annotations

import functools
import math
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

from omnireward.data.media import load_audio
from omnireward.encoders import transcript, whisper
from omnireward.encoders.base import Encoder, frozen, seeded_init
from omnireward.errors import ConfigError

CHUNK_SECONDS = 2.0  # inputs are zero-padded to a multiple of this, so similar lengths share shapes
_FRAMES_PER_SECOND = whisper.SAMPLE_RATE // whisper.HOP  # 100 mel frames per second
_VERSION = "1"


def _random_encoder() -> whisper.WhisperAudioEncoder:
    """A small randomly initialised Whisper-style encoder (64-d, 2 layers) for fast tests."""
    return seeded_init(lambda: whisper.WhisperAudioEncoder(dim=64, layers=2, heads=2, ffn=128)).eval()


@functools.cache
def _shared_frozen(pretrained: bool) -> whisper.WhisperAudioEncoder:
    return frozen(whisper.WhisperAudioEncoder.pretrained() if pretrained else _random_encoder())


def pool_valid(states: torch.Tensor, valid: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """states [B, T, D], valid state counts [B] -> [B, n_tokens, D]: adaptive averages over each item's span."""
    return torch.stack(
        [F.adaptive_avg_pool1d(s[: max(1, int(v))].T[None], n_tokens)[0].T for s, v in zip(states, valid)]
    )


class AudioEncoder(Encoder):
    """Whisper tiny.en encoder states (50 per second, 384-d) pooled to n_tokens (default 16).

    Clips are cut to `max_seconds` (at most 30 s, Whisper's window) and zero-padded only to the next
    2 s multiple: the encoder runs on that span with its first positional embeddings, so a 5 s clip
    costs a sixth of a 30 s one; the pooling covers only the clip's own frames. out_dim = 384
    (64 with `pretrained=False`, a small random encoder for tests).

    With `transcript=True` (pretrained only), Whisper's decoder also transcribes each clip greedily
    and the modular backbone places the words, in the LM's own tokens, right after the clip's
    feature tokens: encoder states carry voice and sound, the transcript carries what is said.
    """

    modality = "audio"

    def __init__(
        self,
        *,
        pretrained: bool = True,
        trainable: bool = False,
        n_tokens: int = 16,
        max_seconds: float = 30.0,
        transcript: bool = False,
    ):
        super().__init__()
        if not 0 < max_seconds <= 30.0:
            raise ConfigError("must be in (0, 30]: Whisper's encoder covers 30 s", field="encoder.max_seconds")
        if transcript and not pretrained:
            raise ConfigError(
                "transcripts need the pretrained Whisper tiny.en (backbone.pretrained_encoders=true)",
                field="encoder_options.audio.transcript",
            )
        self.transcribes = transcript
        self.pretrained, self.trainable = pretrained, trainable
        self.n_tokens, self.max_seconds = n_tokens, max_seconds
        if trainable:
            self.net = whisper.WhisperAudioEncoder.pretrained() if pretrained else _random_encoder()
            net = self.net
        else:
            net = _shared_frozen(pretrained)
            self._frozen = (net,)
        self.out_dim = net.dim
        chunk = int(CHUNK_SECONDS * _FRAMES_PER_SECOND)
        self._chunk = chunk
        self._max_frames = math.ceil(max_seconds * _FRAMES_PER_SECOND / chunk) * chunk

    def cache_key(self) -> str:
        weights = f"whisper-tiny.en@{whisper.CONVERSION_VERSION}" if self.pretrained else "whisper-random-64"
        return self._key(weights, v=_VERSION, tokens=self.n_tokens, max_s=self.max_seconds)

    def transcript_key(self) -> str:
        return (
            f"audio/whisper-tiny.en@{whisper.CONVERSION_VERSION}/transcript/"
            f"v={transcript.VERSION},max_s={self.max_seconds}"
        )

    def transcribe(self, path: pathlib.Path) -> str:
        return transcript.transcribe(load_audio(path, sample_rate=whisper.SAMPLE_RATE, max_seconds=self.max_seconds))

    def _mel(self, wave: np.ndarray) -> tuple[torch.Tensor, int]:
        """Log-mel padded to the next chunk multiple, and the number of mel frames holding the clip."""
        frames = max(1, math.ceil(len(wave) / whisper.HOP))
        padded = min(self._max_frames, math.ceil(frames / self._chunk) * self._chunk)
        return whisper.log_mel(wave, padded * whisper.HOP), min(frames, padded)

    def _encode(self, net, mel: torch.Tensor, mel_frames: torch.Tensor) -> torch.Tensor:
        states = net(mel)
        valid = torch.div(mel_frames + whisper.FRAMES_PER_TOKEN - 1, whisper.FRAMES_PER_TOKEN, rounding_mode="floor")
        return pool_valid(states, valid, self.n_tokens)

    def prepare(self, path: pathlib.Path) -> torch.Tensor:
        wave = load_audio(path, sample_rate=whisper.SAMPLE_RATE, max_seconds=self.max_seconds)
        mel, frames = self._mel(wave)
        if self.trainable:
            # Fixed-size [81, max_frames] so clips stack: 80 mel rows plus one row marking the clip's frames.
            # Padding holds the value zero samples get in Whisper's log-mel (the clamp floor), so a
            # longer span in a batch sees exactly the mel a longer zero-padded clip would have.
            floor = max(float(mel.max()) - 2.0, -1.5)
            out = torch.full((whisper.N_MELS + 1, self._max_frames), floor)
            out[: whisper.N_MELS, : mel.shape[1]] = mel
            out[whisper.N_MELS] = 0.0
            out[whisper.N_MELS, :frames] = 1.0
            return out
        with torch.no_grad():
            return self._encode(self._frozen[0], mel[None], torch.tensor([frames]))[0]

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        if not self.trainable:
            return prepared
        frames = prepared[:, whisper.N_MELS].sum(dim=1).long()
        # Run only as far as the longest clip in the batch needs (rounded up to a chunk).
        span = min(self._max_frames, math.ceil(int(frames.max()) / self._chunk) * self._chunk)
        return self._encode(self.net, prepared[:, : whisper.N_MELS, :span], frames)
