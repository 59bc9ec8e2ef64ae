"""Video encoder: uniformly sampled frames through EfficientNet-Lite0, plus a fixed frame-order encoding."""

from __future__ import annotations

import math
import pathlib

import torch

from omnireward.data.media import load_video
from omnireward.encoders.base import Encoder
from omnireward.encoders.image import (
    FEATURE_DIM,
    IMAGE_SIZE,
    class_probs,
    efficientnet_lite0,
    global_features,
    imagenet_label_names,
    preprocess_frames,
    shared_frozen_net,
    weights_id,
)

# EfficientNet-Lite0 global features have an RMS of about 0.4 on natural images; the sinusoid has an
# RMS of 1/sqrt(2), so 0.1 makes the order signal ~18% of the content: visible, not drowning it.
PE_SCALE = 0.1


def sinusoid(positions: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal encoding [positions, dim] (sin on even channels, cos on odd)."""
    pos = torch.arange(positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(positions, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class VideoEncoder(Encoder):
    """One 1280-d token per sampled frame: n_tokens = num_frames (default 8), out_dim = 1280.

    A fixed sinusoidal encoding of the frame index is added in `forward()`, so the same frames in
    another order give different tokens even when the image net is frozen (and cached features stay pure).
    """

    modality = "video"

    def __init__(
        self,
        *,
        pretrained: bool = True,
        trainable: bool = False,
        num_frames: int = 8,
        image_size: int = IMAGE_SIZE,
        pe_scale: float = PE_SCALE,
    ):
        super().__init__()
        self.pretrained, self.trainable = pretrained, trainable
        self.num_frames, self.image_size = num_frames, image_size
        self.out_dim, self.n_tokens = FEATURE_DIM, num_frames
        self.register_buffer("order", pe_scale * sinusoid(num_frames, FEATURE_DIM), persistent=False)
        if trainable:
            self.net = efficientnet_lite0(pretrained, image_size)
        else:
            self._frozen = (shared_frozen_net(pretrained, image_size),)

    def cache_key(self) -> str:
        return self._key(weights_id(self.pretrained), frames=self.num_frames, size=self.image_size)

    def prepare(self, path: pathlib.Path) -> torch.Tensor:
        clip = load_video(path, num_frames=self.num_frames, size=self.image_size)
        pixels = preprocess_frames(clip.frames, self.image_size)  # [T, 3, S, S]
        if self.trainable:
            return pixels
        with torch.no_grad():
            return global_features(self._frozen[0], pixels)  # [T, 1280]

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        return self.forward_with_labels(prepared, labels=False)[0]

    @property
    def label_names(self) -> tuple[str, ...]:
        return imagenet_label_names()

    def forward_with_labels(self, prepared: torch.Tensor, labels: bool = True):
        """Frame tokens (+ frame-order code) and the classifier's probabilities averaged over the frames."""
        if self.trainable:
            b, t = prepared.shape[:2]
            feats = global_features(self.net, prepared.flatten(0, 1)).view(b, t, -1)
        else:
            feats = prepared
        probs = class_probs(self.net if self.trainable else self._frozen[0], feats) if labels else None
        return feats + self.order.to(feats.dtype), probs
