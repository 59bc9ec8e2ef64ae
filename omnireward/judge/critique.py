"""One critique step, shared by training (R1 validation, GRPO rollouts) and scoring.

The judge writes a critique (greedy or sampled, optionally constrained to the template's output
grammar), then the template's verdict prefix is appended and the verdict is read from the next
token's probabilities, so every item gets a verdict whatever the critique says.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omnireward.backbones.base import Batch, Conversation
from omnireward.judge.decoding import completion_mask, decode, prompt_batch, score_probs, strip_end, verdict_probs
from omnireward.judge.templates import JudgeTemplate


@dataclass
class Critiques:
    """What a judge wrote for a batch of prompts and what it concluded."""

    batch: Batch  # the left-padded prompts (on the model's device)
    ids: torch.Tensor  # sampled ids [B, T], padded after each row's end token
    mask: torch.Tensor  # 1 up to and including each row's end token
    tokens: list[list[int]]  # each critique's ids without padding and end token
    texts: list[str]
    probs: torch.Tensor | None  # pairwise: [B, 3] over (shown first, shown second, tie); pointwise: [B, K] scores


def device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def critique(
    backbone,
    template: JudgeTemplate,
    convs: list[Conversation],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    constraint=None,
    read_verdict: bool = True,
) -> Critiques:
    """Critiques for judge prompts `convs` and, with `read_verdict`, the verdict (or score) probabilities.

    `constraint` is a logits processor (e.g. `judge.grammar.FlexConstraint(...).processor(convs)`)
    that keeps the critique inside the template's output grammar.
    """
    batch = prompt_batch(backbone, convs).to(device_of(backbone))
    ids = backbone.sample(
        batch,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        generator=generator,
        logits_processor=constraint,
    )
    eos = backbone.tokenizer.eos_token_id
    mask = completion_mask(ids, eos)
    tokens = strip_end(ids, mask, eos)
    probs = None
    if read_verdict:
        with torch.no_grad():
            reader = verdict_probs if template.kind == "pairwise" else score_probs
            probs = reader(backbone, template, batch, tokens)
    return Critiques(batch, ids, mask, tokens, decode(backbone.tokenizer, tokens), probs)
