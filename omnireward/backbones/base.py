"""The backbone contract: what heads, modules, scoring, export, quantisation and the server may use.

Two objects make a backbone family:

- a **Processor** (CPU side, no model weights needed): conversations with media → a `Batch` of
  tensors (chat template, tokens, media loading and feature cache, padding, LM targets). It is
  picklable and runs in DataLoader workers.
- a **Backbone** (`nn.Module`): computes on a `Batch` — hidden states at the reward position,
  hidden states over a prompt followed by given continuation tokens (log-probabilities of
  targets, next-token distributions), sampling with the KV cache, saving.

Everything outside `omnireward/backbones/` goes through these two protocols only; a new backbone
family is one file implementing them (see `modular.py` and `hf.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from omnireward.data.records import Media
from omnireward.errors import ConfigError
from omnireward.strategies import DECODER_LAYERS

Part = str | Media


@dataclass
class Turn:
    """One chat turn; `parts` is text and media in reading order (media paths already absolute)."""

    role: str  # "system" | "user" | "assistant"
    parts: list[Part] = field(default_factory=list)


Conversation = list[Turn]


@dataclass
class Batch:
    """A collated batch; tensors live in `tensors`, anything else (media plans) in `extra`.

    `tensors` always has `input_ids`, `attention_mask` and `last_index` (the reward position of
    each row); LM-target batches add `labels` (-100 where there is nothing to predict).
    """

    tensors: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)

    def to(self, device) -> Batch:
        return Batch(
            {k: v.to(device) for k, v in self.tensors.items()}, {k: _to(v, device) for k, v in self.extra.items()}
        )

    def __len__(self) -> int:
        return int(self.tensors["attention_mask"].shape[0])


def _to(v, device):
    if isinstance(v, torch.Tensor):
        return v.to(device)
    if isinstance(v, dict):
        return {k: _to(x, device) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_to(x, device) for x in v)
    return v


# A logits processor for constrained decoding: (token ids so far [B, t], next-token scores [B, V])
# -> scores with the disallowed tokens at -inf (the `transformers.LogitsProcessor` call shape).
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@runtime_checkable
class Processor(Protocol):
    """Conversations with media → tensors, on the CPU."""

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (chat template, pad/eos ids, decoding)."""

    def __call__(
        self,
        convs: list[Conversation],
        *,
        add_generation_prompt: bool = False,
        lm_target: bool = False,
        padding_side: str = "right",
        response_mask: bool = False,
    ) -> Batch:
        """Render, tokenise, prepare media and pad.

        `add_generation_prompt` ends each row with the assistant header (prompts to generate from;
        use `padding_side="left"`). With `lm_target` the last (assistant) turn is the LM target.
        With `response_mask` the batch adds `response_mask` [B, L] (bool): the last (assistant)
        turn's positions, its media included (what a pooling head reads).
        """

    def render(self, conv: Conversation, *, add_generation_prompt: bool = False) -> tuple:
        """The conversation through the chat template: its text first, then the media it holds."""

    def pack(self, groups: list[list[Conversation]]) -> Batch | None:
        """Prefix sharing: each group's conversations (one prompt, several answers) packed into one
        sequence (backbones/packing.py), or None when this processor cannot pack these."""


@runtime_checkable
class Backbone(Protocol):
    """What every backbone offers. Methods take batches made by its own `processor`."""

    processor: Processor
    # Prefix (inside the backbone) of the language model's parameter names: its own learning rate,
    # and the part `save()` writes as a plain transformers folder.
    lm_prefix: str

    @property
    def tokenizer(self) -> Any:
        """The processor's tokenizer."""

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states the heads read."""

    @property
    def modalities(self) -> list[str]:
        """Media types it reads (image, video, audio, mesh); [] for text only."""

    @property
    def lora_targets(self) -> list[str] | str:
        """Names of the LM's linear layers that LoRA adapts (or "all-linear")."""

    def reward_hidden(self, batch: Batch) -> torch.Tensor:
        """Final hidden state at each row's reward position (`last_index`), [B, H], float32; for a
        packed batch, at each answer's last token, answer-major ([all groups' answer 1, then 2, ...])."""

    def layer_states(self, batch: Batch, layer: int = -1) -> torch.Tensor:
        """Hidden states [B, L, H] of one layer over the batch's rows, packed or not; `layer`
        indexes transformers' `hidden_states` (0 the embeddings, k the output of decoder layer k,
        -1 the final normed state: what `reward_hidden` reads)."""

    def hidden_states(
        self, batch: Batch, continuation: torch.Tensor | None = None, continuation_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Final hidden states [B, L + T, H] over the batch's rows (left-padded prompts when a
        continuation is given), each followed by its continuation tokens [B, T] (right-padded,
        `continuation_mask` 1 for real tokens)."""

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on hidden states [..., H] → next-token logits [..., V]."""

    def sample(
        self,
        batch: Batch,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> torch.Tensor:
        """Continue left-padded prompts with the KV cache: new token ids [B, T], padded with the pad
        id after each row's end-of-turn token. Greedy when temperature is 0."""

    def language_model(self) -> nn.Module:
        """The causal language model inside (for PEFT wrapping, quantisation and text export)."""

    def replace_language_model(self, lm: nn.Module) -> None:
        """Put a wrapped language model (e.g. with LoRA adapters) in place of the current one."""

    def save(self, out: Path) -> None:
        """Write the backbone's weights into the model folder `out` as plain transformers folders."""


def conversation(system: str | None, user: list, assistant: list | None = None) -> Conversation:
    """Build a conversation from parts; empty strings are dropped."""
    conv: Conversation = []
    if system:
        conv.append(Turn("system", [system]))
    conv.append(Turn("user", [p for p in user if not (isinstance(p, str) and not p)]))
    if assistant is not None:
        conv.append(Turn("assistant", [p for p in assistant if not (isinstance(p, str) and not p)]))
    return conv


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The decoder layers of an HF causal LM (the language model's, for a multimodal checkpoint)."""
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, nn.ModuleList):
        return layers
    # custom-code models: the longest list of `*DecoderLayer` blocks (the units FSDP shards)
    lists = [
        m
        for m in lm.modules()
        if isinstance(m, nn.ModuleList) and len(m) and type(m[0]).__name__.endswith(DECODER_LAYERS)
    ]
    if not lists:
        raise ConfigError(f"{type(lm).__name__} has no decoder layers to freeze", field="backbone.train_layers")
    return max(lists, key=len)


def train_top_layers(lm: nn.Module, n: int | None) -> None:
    """Train only the top `n` decoder layers of `lm` (all of them when it has fewer) and what sits
    above them (final norm, LM head): the token embeddings, the layers below and a multimodal
    checkpoint's own encoders stay fixed.
    A text batch then runs the frozen layers without building a graph — no stored activations, no
    backward, no gradients or optimiser state for them. `None` leaves every parameter as it is."""
    if n is None:
        return
    if int(n) < 0:
        raise ConfigError(f"must be a number of layers >= 0 (or null for all), got {n}", field="backbone.train_layers")
    layers = decoder_layers(lm)
    keep = {id(p) for layer in layers[max(0, len(layers) - int(n)) :] for p in layer.parameters()}
    below = {id(p) for p in layers.parameters()} | {id(p) for p in lm.get_input_embeddings().parameters()}
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm
    above = {id(p) for p in decoder.parameters()} - below  # final norm
    out = lm.get_output_embeddings()
    if out is not None and out.weight is not lm.get_input_embeddings().weight:
        above |= {id(p) for p in out.parameters()}
    trained = keep | above
    for p in lm.parameters():
        if id(p) not in trained:
            p.requires_grad_(False)
