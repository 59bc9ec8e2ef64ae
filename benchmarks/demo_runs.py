"""Train and score the embedded default on each demo set; print time and held-out accuracy.

    python benchmarks/demo_runs.py --modality image --layers 2 --epochs 6 [-- extra hydra overrides]

Writes one JSON line per run to benchmarks/results/demo_runs.jsonl (machine, command, figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _commit() -> str:
    """The commit the run used (+ "-dirty" with uncommitted changes), when run from a git checkout."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    return (head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")) if head else "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modality", default="text")
    ap.add_argument("--layers", type=int, default=None, help="keep the first N LM layers (None: all 30)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-pairs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh-pairs", type=int, default=200,
                    help="also score the train split of a demo set built with another seed (files the model "
                    "never saw) for a larger held-out sample; 0 skips it")
    ap.add_argument("--work", default="/tmp/omnireward-bench")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()

    import torch

    from omnireward.config import compose_config
    from omnireward.data.demo import build_demo
    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    tag = f"{a.modality}-L{a.layers or 'all'}-e{a.epochs}-s{a.seed}"
    work = Path(a.work) / tag
    data = work / "data"
    t0 = time.time()
    build_demo(a.modality, data, n_pairs=a.n_pairs, seed=a.seed)
    t_data = time.time() - t0
    overrides = [f"modality={a.modality}", f"data.train={data / 'train.jsonl'}", f"data.val={data / 'val.jsonl'}",
                 f"output_dir={work / 'run'}", f"trainer.max_epochs={a.epochs}", f"seed={a.seed}", *a.overrides]
    if a.layers:
        overrides.append(f"backbone.lm_layers={a.layers}")
    t0 = time.time()
    out = train(compose_config(overrides))
    t_train = time.time() - t0
    t0 = time.time()
    summary = score_file(data / "test.jsonl", out, work / "test.scores.jsonl")
    t_score = time.time() - t0

    def rule_of(meta: dict) -> str:  # criteria flips are told apart by what they flip
        return f"{meta['rule']}:{meta['flip']}" if "flip" in meta else meta.get("rule")

    def per_rule_of(pairs_file: Path, scores_file: Path) -> dict[str, str]:  # rule -> "accuracy (n)"
        rules = {json.loads(x)["id"]: rule_of(json.loads(x).get("meta", {}))
                 for x in pairs_file.read_text().splitlines()}
        right = defaultdict(list)
        for x in scores_file.read_text().splitlines():
            s = json.loads(x)
            right[rules[s["id"]]].append((s["margin"] > 0) == (s["preference"] == "response1"))
        return {k: f"{sum(v) / len(v):.3f} ({len(v)})" for k, v in sorted(right.items())}

    per_rule = per_rule_of(data / "test.jsonl", work / "test.scores.jsonl")
    fresh = {}
    if a.fresh_pairs:
        fresh_data = build_demo(a.modality, work / "fresh", n_pairs=a.fresh_pairs, seed=a.seed + 1000)
        fresh_summary = score_file(fresh_data / "train.jsonl", out, work / "fresh.scores.jsonl")
        fresh = {"fresh_seed": a.seed + 1000, "fresh_accuracy": fresh_summary["accuracy_without_ties"],
                 "n_fresh": fresh_summary["n"],
                 "fresh_per_rule": per_rule_of(fresh_data / "train.jsonl", work / "fresh.scores.jsonl")}
    result = {
        "tag": tag, "modality": a.modality, "layers": a.layers or 30, "epochs": a.epochs,
        "overrides": a.overrides, "machine": f"{platform.machine()} {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}", "data_s": round(t_data, 1), "train_s": round(t_train, 1),
        "score_s": round(t_score, 1), "test_accuracy": summary["accuracy_without_ties"], "n_test": summary["n"],
        "per_rule": per_rule, **fresh,
        "train_summary": json.loads((out / "train_summary.json").read_text()),
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "code": _commit(),
    }
    print(json.dumps(result, indent=2))
    res = Path(__file__).parent / "results" / "demo_runs.jsonl"
    res.parent.mkdir(exist_ok=True)
    with res.open("a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
