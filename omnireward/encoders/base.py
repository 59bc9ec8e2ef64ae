"""The interface every modality encoder follows: a CPU `prepare()` per file, a batched `forward()`."""

from __future__ import annotations

import pathlib

import torch
from torch import nn

from omnireward.data import kinds
from omnireward.data.kinds import MediaKind


class Encoder(nn.Module):
    """Turns one media file into `n_tokens` feature vectors of size `out_dim`.

    Frozen encoders (`trainable=False`) run their pretrained net inside `prepare()`, so its output
    can be cached per file (keyed by `cache_key()`) and reused across epochs; the pretrained net is
    then kept outside the module tree: it stays on CPU in eval mode and is not part of `state_dict()`.
    Trainable encoders return preprocessed inputs from `prepare()` and run the net in `forward()`.
    """

    modality: str = ""
    # The media type this encoder reads, with what validation, reports, serving and HF processors
    # need of it (omnireward/data/kinds.py); a subclass giving only `modality` registers a bare kind.
    media_kind: MediaKind | None = None
    out_dim: int
    n_tokens: int
    trainable: bool = False
    transcribes: bool = False  # media of this encoder also reach the LM as words (`transcribe`)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("media_kind")
        if own is not None:  # records may now hold media of this kind
            cls.modality = kinds.register(own).name
        elif cls.modality:
            kinds.register(MediaKind(cls.modality))

    def cache_key(self) -> str:
        """Identifies what `prepare()` returns (encoder, weights, options), for feature caches."""
        raise NotImplementedError

    def prepare(self, path: pathlib.Path) -> torch.Tensor:
        """Load and preprocess one file on CPU, deterministically (plus the frozen net when frozen)."""
        raise NotImplementedError

    def forward(self, prepared: torch.Tensor) -> torch.Tensor:
        """Stacked `prepare()` outputs [B, ...] -> tokens [B, n_tokens, out_dim]."""
        raise NotImplementedError

    def transcript_key(self) -> str:
        """Identifies what `transcribe()` returns, for caches (only when `transcribes`)."""
        raise NotImplementedError(f"the {self.modality} encoder gives no transcripts")

    def transcribe(self, path: pathlib.Path) -> str:
        """The words one file holds, placed as text right after its feature tokens (only when `transcribes`)."""
        raise NotImplementedError(f"the {self.modality} encoder gives no transcripts")

    @property
    def label_names(self) -> tuple[str, ...] | None:
        """Names of the classes a pretrained classifier of this encoder recognises (None: no classifier)."""
        return None

    def forward_with_labels(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward()` and the classifier's probabilities [B, len(label_names)] from one pass of the net."""
        raise NotImplementedError(f"the {self.modality} encoder has no classifier")

    def label_probs(self, prepared: torch.Tensor) -> torch.Tensor:
        """Stacked `prepare()` outputs [B, ...] -> class probabilities [B, len(label_names)]."""
        return self.forward_with_labels(prepared)[1]

    def train(self, mode: bool = True):
        """Train the heads; a trainable pretrained net (`self.net`) still runs in eval mode.

        Its normalisation statistics stay the pretrained ones (reward batches are far too small to
        re-estimate BatchNorm), while gradients still flow through it.
        """
        super().train(mode)
        net = getattr(self, "net", None)
        if net is not None:
            net.eval()
        return self

    def _key(self, name: str, **options) -> str:
        """`modality/name/frozen|trainable/k=v,...` with options sorted, so equal settings give equal keys."""
        opts = ",".join(f"{k}={options[k]}" for k in sorted(options))
        return f"{self.modality}/{name}/{'trainable' if self.trainable else 'frozen'}/{opts}"


def frozen(module: nn.Module) -> nn.Module:
    """The module in eval mode with gradients off."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def seeded_init(build, seed: int = 0):
    """Call `build()` with torch's RNG seeded, so random-init models are the same in every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
