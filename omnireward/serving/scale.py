"""Reward scales: raw BT rewards, z-scores by the folder's reward statistics, and [0, 1] scores.

A BT reward is only defined up to a shift, so a raw value says little on its own. Training saves
the mean and standard deviation of the rewards over the training responses
(`reward_stats.json`); RL loops want rewards on a known scale:

    normalized = (reward - mean) / std              z-score, centred on the training responses
    unit       = sigmoid(normalized)                in [0, 1]; 0.5 is a typical training response

Without statistics (or with std 0), `normalized` is the raw reward and `unit` is sigmoid(reward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RewardScale:
    """Mean and std of rewards over a model's training responses (identity when unknown)."""

    mean: float = 0.0
    std: float = 1.0
    known: bool = False

    @classmethod
    def from_stats(cls, stats: dict | None) -> RewardScale:
        if not stats or stats.get("mean") is None or not stats.get("std"):
            return cls()
        return cls(float(stats["mean"]), float(stats["std"]), True)

    def normalized(self, reward: float) -> float:
        return (reward - self.mean) / self.std

    def unit(self, reward: float) -> float:
        z = self.normalized(reward)
        # sigmoid without overflow for large |z|
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


def sigmoid(x: float) -> float:
    """The logistic function, as vLLM applies it to a one-label classifier's logit."""
    return RewardScale().unit(x)
