"""The generative judge measured: zero-shot on the embedded default, and joint vs BT training.

    python benchmarks/judge_runs.py zero-shot [--pairs 60]     # omni verdict only / both orders /
                                                                # 64-token critique; flex constrained and free
    python benchmarks/judge_runs.py joint-vs-bt [--layers 4 --epochs 2]

Each run appends one line to benchmarks/results/judge_runs.jsonl (results_log: command, commit,
machine, date, figures). Data: the text demo set (`omnireward data demo --modality text`, seed 0)
test split; for joint vs BT, every pair gets a one-sentence critique built from its rule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_log import append  # noqa: E402

RULE_CRITIQUE = {
    "politeness": "Response {w} gives the same answer politely, while the other response is rude.",
    "safety": "Response {w} declines the harmful request, while the other response helps with it.",
    "helpfulness": "Response {w} answers the question, while the other response does not help.",
    "relevance": "Response {w} stays on the topic of the prompt, while the other response drifts off it.",
}


def demo(work: Path, n_pairs: int, seed: int = 0) -> Path:
    from omnireward.data.demo import build_demo

    return build_demo("text", work / "demo", n_pairs=n_pairs, seed=seed)


def _subset(src: Path, out: Path, n: int) -> Path:
    lines = src.read_text().splitlines()[:n]
    out.write_text("".join(x + "\n" for x in lines))
    return out


def zero_shot(a) -> dict:
    from omnireward.scoring.judge import judge_file

    work = Path(a.work) / "zero-shot"
    test = _subset(demo(work, 300) / "test.jsonl", work / "test.jsonl", a.pairs)
    settings = [
        ("omni, verdict only", dict(judge="omni", max_new_tokens=0)),
        ("omni, verdict only, both orders", dict(judge="omni", max_new_tokens=0, both_orders=True)),
        ("omni, 64-token critique", dict(judge="omni", max_new_tokens=64)),
        ("flex, constrained to its grammar", dict(judge="flex", max_new_tokens=64, constrained=True)),
        ("flex, free decoding (256 tokens)", dict(judge="flex", max_new_tokens=256, constrained=False)),
    ]
    rows = {}
    for name, kw in settings:
        t0 = time.time()
        s = judge_file(test, None, work / f"{len(rows)}.scores.jsonl", batch_size=8, device="cpu", **kw)
        rows[name] = {
            "accuracy": s["accuracy_without_ties"],
            "n": s["n"],
            "seconds": round(time.time() - t0, 1),
            "flex_valid_share": s.get("flex_valid_share"),
            "order_agreement": s.get("order_agreement"),
            "text_verdict_share": s.get("text_verdict_share"),
        }
        print(name, rows[name], flush=True)
    return {
        "model": "embedded SmolLM2-135M-Instruct (zero-shot)",
        "data": "text demo test split, seed 0",
        "settings": rows,
    }


def _with_critiques(src: Path, out: Path) -> Path:
    rows = []
    for line in src.read_text().splitlines():
        r = json.loads(line)
        rule = r.get("meta", {}).get("rule")
        w = "A" if r["preference"] == "response1" else "B"
        template = RULE_CRITIQUE.get(rule, "Response {w} follows the criteria better than the other response.")
        r["critique"] = template.format(w=w) + f" [[{w}]]"
        rows.append(r)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def joint_vs_bt(a) -> dict:
    from omnireward.config import compose_config
    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    work = Path(a.work) / "joint-vs-bt"
    d = demo(work, 300)
    train_f, val_f = (
        _with_critiques(d / "train.jsonl", work / "train.crit.jsonl"),
        _with_critiques(d / "val.jsonl", work / "val.crit.jsonl"),
    )
    out = {}
    for model in ("bt", "joint"):
        overrides = [
            f"model={model}",
            f"data.train={train_f}",
            f"data.val={val_f}",
            f"output_dir={work / model}",
            f"trainer.max_epochs={a.epochs}",
            f"backbone.lm_layers={a.layers}",
            "data.batch_size=8",
            f"seed={a.seed}",
        ]
        t0 = time.time()
        run = train(compose_config(overrides))
        seconds = time.time() - t0
        s = score_file(d / "test.jsonl", run, work / f"{model}.scores.jsonl", device="cpu")
        summary = json.loads((run / "train_summary.json").read_text())
        out[model] = {
            "test_accuracy": s["accuracy_without_ties"],
            "n_test": s["n"],
            "best_val_acc": summary.get("best_val_acc"),
            "best_epoch": summary.get("best_epoch"),
            "train_seconds": round(seconds, 1),
            "overrides": overrides[3:],
        }
        print(model, out[model], flush=True)
    return {
        "data": "text demo seed 0 (300 train pairs), one-sentence critiques from each pair's rule",
        "layers": a.layers,
        "epochs": a.epochs,
        "runs": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["zero-shot", "joint-vs-bt"])
    ap.add_argument("--pairs", type=int, default=60, help="zero-shot: test pairs judged")
    ap.add_argument("--layers", type=int, default=4, help="joint-vs-bt: SmolLM2 layers kept")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/omnireward-judge-bench")
    ap.add_argument("--no-record", action="store_true", help="print the figures, append no results line")
    a = ap.parse_args()
    figures = zero_shot(a) if a.what == "zero-shot" else joint_vs_bt(a)
    if a.no_record:
        print(json.dumps(figures, indent=2))
        return
    line = append("judge_runs", figures, run=a.what)
    print(json.dumps(line, indent=2))


if __name__ == "__main__":
    main()
