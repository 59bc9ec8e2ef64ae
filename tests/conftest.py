import json
import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = [
    "boil an egg",
    "tie a knot",
    "plant a tree",
    "fix a flat tyre",
    "bake bread",
    "learn chess",
    "paint a wall",
    "write a poem",
    "clean a window",
    "brew tea",
    "fold a shirt",
    "start a fire",
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def helpful_vs_rude(n: int, seed: int = 0, start: int = 0):
    """Learnable text pairs: a helpful answer beats a rude refusal; labels balanced."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        topic = rng.choice(TOPICS)
        good = f"Sure! To {topic}, start with the basics and go step by step."
        bad = rng.choice(["No. Figure it out yourself.", "Stop asking me things.", "Whatever, not my problem."])
        first = i % 2 == 0
        rows.append(
            {
                "id": f"p{i}",
                "prompt": f"How do I {topic}?",
                "response1": good if first else bad,
                "response2": bad if first else good,
                "preference": "response1" if first else "response2",
            }
        )
    return rows


@pytest.fixture
def text_pairs(tmp_path):
    """train/val JSONL files of learnable text pairs."""
    train = write_jsonl(tmp_path / "train.jsonl", helpful_vs_rude(48, seed=1))
    val = write_jsonl(tmp_path / "val.jsonl", helpful_vs_rude(16, seed=2, start=1000))
    return train, val
