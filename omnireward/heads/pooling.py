"""What a head reads: which hidden layer (`head.layer`) and how the response's tokens become one
vector (`head.pooling`).

- `layer`: an index into transformers' `hidden_states` — 0 the token embeddings, k the output of
  decoder layer k, -1 (the default) the final normed state, -2 the output of the layer below the
  top, and so on. A layer below the top is RMS-normalised per token (no learned weight), as the
  top one is by the LM's own final norm: the residual stream grows through the layers (in
  SmolLM2-135M a response's last token has norm ≈ 690 after layer 29, ≈ 50 after the final norm),
  and unnormalised states would start the head far out on the sigmoid;
- `pooling`: `last` (the default: the response's last token, as a `*ForSequenceClassification`
  reads it), `mean` (the mean over the response's tokens) or `attention` (a learned query attends
  over the response's tokens).

The response's tokens are the assistant turn's: everything after the prompt's assistant header,
the response's media and end-of-turn tokens included; the prompt, other responses and padding
never enter. With the defaults nothing changes: the head reads `Backbone.reward_hidden` exactly as
before these options existed.
"""

from __future__ import annotations

import torch
from torch import nn

from omnireward.backbones.base import Batch
from omnireward.errors import ConfigError

POOLINGS = ("last", "mean", "attention")
LAST_LAYER = -1


def check_reading(layer, pooling) -> tuple[int, str]:
    """The (layer, pooling) a head was given, checked: an int layer, a known pooling."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise ConfigError(
            f"must be an integer (a hidden layer; -1 the last, negative counts from the top), got {layer!r}",
            field="head.layer",
        )
    if pooling not in POOLINGS:
        raise ConfigError(f"must be one of {', '.join(POOLINGS)}, got {pooling!r}", field="head.pooling")
    return int(layer), str(pooling)


def normalise(states: torch.Tensor, on: bool) -> torch.Tensor:
    """Each token's state divided by its root mean square over the hidden size (when `on`)."""
    if not on:
        return states
    return states * torch.rsqrt(states.pow(2).mean(-1, keepdim=True) + 1e-6)


class MeanPooling(nn.Module):
    """The mean of the hidden states over the response's tokens."""

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(states.dtype)[..., None]
        return (states * m).sum(1) / m.sum(1).clamp(min=1.0)


class AttentionPooling(nn.Module):
    """A learned query attends over the response's tokens: softmax(h·q / √H) over them, the states'
    weighted sum. The query starts at zero, so training starts from the mean over the tokens."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(hidden_size))
        self.scale = float(hidden_size) ** -0.5

    def weights(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights [N, L]: zero outside the mask, summing to 1 over it."""
        scores = (states @ self.query.to(states.dtype)) * self.scale
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a row without tokens: all zero

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.weights(states, mask)[..., None] * states).sum(1)


def make_pooling(pooling: str, hidden_size: int) -> nn.Module | None:
    """The module that pools the response's tokens (None for `last`, which reads one position)."""
    if pooling == "mean":
        return MeanPooling()
    if pooling == "attention":
        return AttentionPooling(hidden_size)
    return None


def reading(head) -> tuple[int, str]:
    """The layer and pooling a head reads (heads written without these options: -1, last)."""
    return int(getattr(head, "layer", LAST_LAYER)), str(getattr(head, "pooling", "last"))


def reads_default(head) -> bool:
    """Whether the head reads what every head read before these options: the last layer's last token."""
    return reading(head) == (LAST_LAYER, "last")


def check_layer(layer: int, n_layers: int) -> None:
    """`layer` must index `hidden_states` of a model with `n_layers` decoder layers (n + 1 entries)."""
    if not -(n_layers + 1) <= layer <= n_layers:
        raise ConfigError(
            f"{layer} is out of range: this backbone has {n_layers} decoder layers, so a layer is "
            f"-{n_layers + 1}..{n_layers} (0 the embeddings, -1 the last)",
            field="head.layer",
        )


def response_tokens(batch: Batch, with_mask: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """For every response of the batch, in the order rewards come out: its row [N], its tokens
    [N, L] (bool; None without `with_mask`) and its last token [N].

    A packed batch (prefix sharing) holds response k of row b where `segment_ids` is k; an unpacked
    one holds one response per row, its tokens in `response_mask` (what the processor writes when
    asked for it, `response_mask=True`)."""
    t = batch.tensors
    if "segment_ids" in t:
        reward_index = t["reward_index"]  # [K, B]
        K, B = reward_index.shape
        rows = torch.arange(B, device=reward_index.device).repeat(K)
        segment = torch.arange(1, K + 1, device=reward_index.device).repeat_interleave(B)
        last = reward_index.reshape(-1)
        keep = last >= 0
        rows, segment, last = rows[keep], segment[keep], last[keep]
        mask = t["segment_ids"][rows] == segment[:, None] if with_mask else None
        return rows, mask, last
    last = t["last_index"]
    rows = torch.arange(last.shape[0], device=last.device)
    if not with_mask:
        return rows, None, last
    if "response_mask" not in t:
        raise ConfigError(
            "this batch does not say which tokens are the response's (no response_mask): build it "
            "with the processor's response_mask=True (RewardModel.collate_records does)",
            field="head.pooling",
        )
    return rows, t["response_mask"].bool(), last


def set_reading(head: nn.Module, hidden_size: int, layer, pooling) -> None:
    """Give a head its checked `layer` and `pooling`, and the pooling module (`head.pool`) where the
    pooling has one; `last` adds nothing, so a default head's weights are what they always were."""
    head.layer, head.pooling = check_reading(layer, pooling)
    pool = make_pooling(head.pooling, hidden_size)
    if pool is not None:
        head.pool = pool
