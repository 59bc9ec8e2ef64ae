"""What a judge server is asked to do: a chat conversation to answer, or a native record to judge."""

from __future__ import annotations

from dataclasses import dataclass

from omnireward.backbones.base import Conversation
from omnireward.data.records import Item, Pair
from omnireward.scoring.judge import Sampling


@dataclass
class ChatWork:
    """One chat-completions request: a conversation answered `n` times."""

    conversation: Conversation
    n: int = 1
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class PairWork:
    """One native record judged as `omnireward score --judge` judges it (`sampling`: as with
    `--samples K`, K sampled judgements per order that vote)."""

    record: Pair | Item
    both_orders: bool = False
    sampling: Sampling | None = None


def work_cost(work) -> int:
    """Critiques a work item generates."""
    if isinstance(work, ChatWork):
        return work.n
    k = work.sampling.samples if getattr(work, "sampling", None) is not None else 1
    return k * (2 if getattr(work, "both_orders", False) else 1)
