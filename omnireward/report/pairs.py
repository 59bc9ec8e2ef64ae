"""Which pairs a report shows: the most confidently wrong ones and a random sample of right ones."""

from __future__ import annotations

import random

from omnireward.metrics import LABEL_SIGN

SIGN_LABEL = {1: "response1", -1: "response2", 0: "tie"}


def predicted(line: dict, eps: float | None) -> str:
    """The label a margin predicts: a tie when |margin| <= ε (ε None: never), else its sign."""
    m = float(line["margin"])
    if eps is not None and abs(m) <= eps:
        return "tie"
    return SIGN_LABEL[(m > 0) - (m < 0)]


def pick(
    lines: list[dict], eps: float | None, *, n_wrong: int = 24, n_right: int = 8, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """(wrong, right): wrong pairs by |margin| from the largest (most confident) down; right
    pairs a seeded random sample in file order. Each line gets a `predicted` field."""
    labelled = [
        dict(x, predicted=predicted(x, eps)) for x in lines if "margin" in x and x.get("preference") in LABEL_SIGN
    ]
    wrong = [x for x in labelled if x["predicted"] != x["preference"]]
    right = [i for i, x in enumerate(labelled) if x["predicted"] == x["preference"]]
    wrong.sort(key=lambda x: -abs(float(x["margin"])))
    sample = sorted(random.Random(seed).sample(right, min(n_right, len(right))))
    return wrong[:n_wrong], [labelled[i] for i in sample]
