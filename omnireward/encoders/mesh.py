"""Mesh encoder: rendered views through EfficientNet-Lite0 plus a PointNet over surface samples."""

from __future__ import annotations

import pathlib

import torch
from torch import nn

from omnireward.data.media import load_mesh
from omnireward.data.render import render_views
from omnireward.encoders.base import Encoder
from omnireward.encoders.image import (
    FEATURE_DIM,
    IMAGE_SIZE,
    class_probs,
    efficientnet_lite0,
    global_features,
    imagenet_label_names,
    preprocess,
    shared_frozen_net,
    weights_id,
)


class PointNet(nn.Module):
    """Shared per-point MLP 3 -> 64 -> 128 -> 256 and a max-pool: an order-invariant shape code [B, 256]."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        dims = (3, *widths)
        self.mlp = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.dim = widths[-1]

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.mlp(points).amax(dim=1)


class MeshEncoder(Encoder):
    """n_views view tokens + n_point_tokens point tokens, all projected to out_dim.

    Defaults: 4 views (global EfficientNet-Lite0 features of software-rendered 224 px views, frozen
    unless `trainable`) and 4 point tokens from a PointNet over 1024 surface points, out_dim 512,
    so n_tokens = 8. The PointNet and both projections always train. `prepare()` packs the view
    part (features, or pixels when trainable) and the points into one flat tensor per mesh.
    """

    modality = "mesh"

    def __init__(
        self,
        *,
        pretrained: bool = True,
        trainable: bool = False,
        n_views: int = 4,
        num_points: int = 1024,
        n_point_tokens: int = 4,
        out_dim: int = 512,
        view_size: int = IMAGE_SIZE,
    ):
        super().__init__()
        self.pretrained, self.trainable = pretrained, trainable
        self.n_views, self.num_points, self.n_point_tokens = n_views, num_points, n_point_tokens
        self.view_size = view_size
        self.out_dim, self.n_tokens = out_dim, n_views + n_point_tokens
        self.pointnet = PointNet()
        self.view_proj = nn.Linear(FEATURE_DIM, out_dim)
        self.point_proj = nn.Linear(self.pointnet.dim, n_point_tokens * out_dim)
        if trainable:
            self.net = efficientnet_lite0(pretrained, view_size)
        else:
            self._frozen = (shared_frozen_net(pretrained, view_size),)

    def cache_key(self) -> str:
        return self._key(
            weights_id(self.pretrained),
            views=self.n_views,
            points=self.num_points,
            size=self.view_size,
            sampler="surface-seed0",
        )

    def _view_numel(self) -> int:
        per_view = 3 * self.view_size**2 if self.trainable else FEATURE_DIM
        return self.n_views * per_view

    def prepare(self, path: pathlib.Path) -> torch.Tensor:
        views = render_views(path, n_views=self.n_views, size=self.view_size)
        pixels = torch.stack([preprocess(v, self.view_size) for v in views])
        points = torch.from_numpy(load_mesh(path, num_points=self.num_points, seed=0))
        if self.trainable:
            view_part = pixels
        else:
            with torch.no_grad():
                view_part = global_features(self._frozen[0], pixels)
        return torch.cat([view_part.flatten(), points.flatten()])

    def _view_features(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, flat] -> view features [B, n_views, 1280] and points [B, num_points, 3]."""
        b = prepared.shape[0]
        view_part, points = prepared.split([self._view_numel(), self.num_points * 3], dim=1)
        if self.trainable:
            s = self.view_size
            feats = global_features(self.net, view_part.reshape(b * self.n_views, 3, s, s)).view(b, self.n_views, -1)
        else:
            feats = view_part.view(b, self.n_views, FEATURE_DIM)
        return feats, points.view(b, self.num_points, 3)

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        return self.forward_with_labels(prepared, labels=False)[0]

    @property
    def label_names(self) -> tuple[str, ...]:
        return imagenet_label_names()

    def forward_with_labels(self, prepared: torch.Tensor, labels: bool = True):
        """View + point tokens, and the image classifier's probabilities averaged over the rendered views."""
        feats, points = self._view_features(prepared)
        view_tokens = self.view_proj(feats)
        point_tokens = self.point_proj(self.pointnet(points)).view(len(points), self.n_point_tokens, self.out_dim)
        probs = class_probs(self.net if self.trainable else self._frozen[0], feats) if labels else None
        return torch.cat([view_tokens, point_tokens], dim=1), probs
