"""Shared by the PEFT, quantisation, export and serving tests: a learnable text set and tiny trained models."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOOD = ["clear", "correct", "kind", "helpful", "precise", "honest", "careful", "useful"]
BAD = ["rude", "wrong", "vague", "useless", "sloppy", "false", "lazy", "harmful"]
TOPICS = ["rivers", "bread", "chess", "comets", "violins", "tides", "bees", "glass", "maps", "clocks"]


def text_pairs(n: int, seed: int = 0) -> list[dict]:
    """Native records whose preferred response uses words of praise and the other words of blame.

    A tiny random LM learns this in a few epochs; the preferred side alternates so that
    position alone predicts nothing.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        good = f"An answer about {topic} that is {rng.choice(GOOD)} and {rng.choice(GOOD)}."
        bad = f"An answer about {topic} that is {rng.choice(BAD)} and {rng.choice(BAD)}."
        first = i % 2 == 0
        rec = {
            "id": f"t{seed}-{i:04d}",
            "prompt": f"Tell me about {topic}.",
            "response1": good if first else bad,
            "response2": bad if first else good,
            "preference": "response1" if first else "response2",
        }
        if i % 3 == 0:
            rec["criteria"] = "prefer the answer that is correct and helpful"
        out.append(rec)
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def text_set(folder: Path, n_train: int = 96, n_val: int = 32, n_test: int = 40) -> dict[str, Path]:
    folder = Path(folder)
    return {
        "train": write_jsonl(folder / "train.jsonl", text_pairs(n_train, seed=1)),
        "val": write_jsonl(folder / "val.jsonl", text_pairs(n_val, seed=2)),
        "test": write_jsonl(folder / "test.jsonl", text_pairs(n_test, seed=3)),
    }


def tiny_overrides(data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "backbone=tiny",
        f"data.train={data['train']}",
        f"data.val={data['val']}",
        f"output_dir={out}",
        "trainer.accelerator=cpu",
        "logger.tensorboard=false",
        "data.batch_size=16",
        "backbone.feature_cache=false",
        *extra,
    ]


def train_tiny(data: dict[str, Path], out: Path, *extra: str) -> Path:
    """Train a tiny text reward model (2-layer random Llama) and return its model folder."""
    from omnireward.config import compose_config
    from omnireward.train import train

    return train(compose_config(tiny_overrides(data, out, *extra)))


def score_lines(model, path: Path, batch_size: int = 16) -> list[dict]:
    from omnireward.data.datamodule import load_records
    from omnireward.scoring.bt import reward_records

    return reward_records(model, load_records(path), batch_size, show_progress=False)


def accuracy(lines: list[dict]) -> float:
    sign = {"response1": 1, "response2": -1}
    return sum((x["margin"] > 0) == (sign[x["preference"]] > 0) for x in lines) / len(lines)


def fit_steps(module, pairs, steps: int = 6, lr: float = 3e-3, batch_size: int = 16) -> list[float]:
    """A few plain AdamW steps on the BT loss (no Lightning): enough to move every trainable weight."""
    import torch

    model = module.model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        start = (step * batch_size) % len(pairs)
        batch = module.collate(pairs[start : start + batch_size])
        r1, r2 = module.rewards(batch)
        loss = torch.nn.functional.softplus(-(r1 - r2) * batch["y"]).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
