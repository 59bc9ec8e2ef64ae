"""The generative judge measured: zero-shot on the embedded default, and joint vs BT training.

    python benchmarks/judge_runs.py zero-shot [--pairs 60]     # omni verdict only / both orders /
                                                                # 64-token critique; flex constrained and free
    python benchmarks/judge_runs.py joint-vs-bt [--layers 4 --epochs 2]
    python benchmarks/judge_runs.py votes [--samples 1,5,15 --right 0.7]   # judges that vote (--samples K)

Each run appends one line to benchmarks/results/judge_runs.jsonl (results_log: command, commit,
machine, date, figures). Data: the text demo set (`omnireward data demo --modality text`, seed 0)
test split; for joint vs BT, every pair gets a one-sentence critique built from its rule. For
votes: the judge learning set of tests/test_grpo.py (a tiny word-level LM, the "yes" answer wins on
either side) SFT'd on critiques whose verdict names the right winner only `--right` of the time; a
right critique takes one of three wordings, a wrong one always the same wording, so the likeliest
first word leads to the wrong verdict while most of the probability names the right one (the case
self-consistency voting is for: greedy decoding follows the single likeliest path, a vote counts
every path). Held-out pairs (gold labels) are then judged greedily (K = 1, as `score --judge`), by
one sampled critique, and by the majority of `--samples K` sampled critiques.
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


# The votes set's critiques: right ones in three wordings, wrong ones in one (module docstring).
RIGHT_WORDINGS = ("{x} says yes.", "Yes is the answer of {x}.", "The yes is in {x}.")
WRONG_WORDING = "Response {x} says yes."


def votes(a) -> dict:
    """K = 1 (greedy, and one sampled critique) against K sampled critiques that vote, on a judge
    SFT'd on noisy critiques of the judge learning set."""
    import random

    from omegaconf import OmegaConf, open_dict

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _judge_utils import mini_judge_dir, write_rows, yes_no_rows

    from omnireward.config import compose_config
    from omnireward.scoring.judge import judge_file
    from omnireward.train import train

    work = Path(a.work) / "votes"
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)
    rows = yes_no_rows(a.train_pairs, a.seed + 1)
    named_right = 0
    for r in rows:
        w = "A" if r["preference"] == "response1" else "B"
        right = rng.random() < a.right
        named = w if right else "AB".replace(w, "")
        named_right += right
        # A right critique takes one of three wordings, a wrong one always the same: its first word
        # is the single likeliest, so greedy decoding follows it to the wrong verdict.
        wording = rng.choice(RIGHT_WORDINGS) if right else WRONG_WORDING
        r["critique"] = wording.format(x=named)
        # The critique's verdict is the training target (the template appends it after the critique).
        r["preference"] = "response1" if named == "A" else "response2"
    train_f = write_rows(work / "train.jsonl", rows)
    test_f = write_rows(work / "test.jsonl", yes_no_rows(a.pairs, a.seed + 7))
    cfg = compose_config(
        [
            "model=r1",
            "judge=mini",
            "backbone=tiny",
            f"data.train={train_f}",
            f"data.val={test_f}",
            f"output_dir={work / 'run'}",
            "data.batch_size=8",
            f"trainer.max_epochs={a.epochs}",
            f"model.sft_epochs={a.epochs}",
            "model.val_max_new_tokens=0",
            f"model.lm_lr={a.lr}",
            f"model.lr={a.lr}",
            "logger.tensorboard=false",
            f"seed={a.seed}",
        ],
        config_dirs=[mini_judge_dir(work)],
    )
    with open_dict(cfg):
        cfg.backbone = OmegaConf.create(
            {
                "_target_": "_judge_utils.small_backbone",
                "extra_texts": [
                    "Is the sky blue? yes no Verdict: [[A]] [[B]]",
                    *(t.format(x=x) for t in (*RIGHT_WORDINGS, WRONG_WORDING) for x in "AB"),
                ],
                "hidden": 64,
                "seed": a.seed,
            }
        )
    t0 = time.time()
    run = train(cfg)
    train_seconds = round(time.time() - t0, 1)
    # Keys: greedy, and sampled_K for K sampled critiques (their vote when K > 1); each row's label
    # says it in words.
    settings = [("greedy", "K = 1, greedy", dict(samples=1))]
    settings += [
        (f"sampled_{k}", f"K = {k}, sampled (T = {a.temperature})", dict(samples=k, temperature=a.temperature))
        for k in (int(x) for x in a.samples.split(","))
    ]
    rows_out = {}
    for name, label, kw in settings:
        t0 = time.time()
        s = judge_file(
            test_f,
            run,
            work / f"{len(rows_out)}.scores.jsonl",
            max_new_tokens=16,
            batch_size=8,
            overwrite=True,  # the judge above was just trained anew
            device="cpu",
            seed=a.seed,
            show_progress=False,
            **kw,
        )
        rows_out[name] = {
            "label": label,
            "samples": kw["samples"],
            "accuracy": s["accuracy_without_ties"],
            "vote_accuracy": s.get("vote_accuracy"),
            "mean_agreement": s.get("mean_agreement"),
            "n": s["n"],
            "seconds": round(time.time() - t0, 1),
        }
        print(label, rows_out[name], flush=True)
    return {
        "model": "tiny word-level Llama (2 layers, 64 wide), judge=mini, SFT only",
        "data": (
            f"judge learning set (tests/_judge_utils.yes_no_rows): {a.train_pairs} train pairs whose critiques "
            f"name the right winner {named_right}/{len(rows)} times (in 3 wordings; wrong ones in 1), "
            f"{a.pairs} held-out pairs, seed {a.seed}"
        ),
        "epochs": a.epochs,
        "lr": a.lr,
        "train_seconds": train_seconds,
        "temperature": a.temperature,
        "settings": rows_out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["zero-shot", "joint-vs-bt", "votes"])
    ap.add_argument("--pairs", type=int, default=60, help="zero-shot, votes: test pairs judged")
    ap.add_argument("--samples", default="1,5,15", help="votes: the K values sampled (K = 1 greedy always runs)")
    ap.add_argument("--right", type=float, default=0.7, help="votes: share of training critiques naming the winner")
    ap.add_argument("--train-pairs", type=int, default=128, help="votes: training pairs")
    ap.add_argument("--lr", type=float, default=1e-2, help="votes: learning rate of the tiny judge")
    ap.add_argument("--temperature", type=float, default=1.0, help="votes: sampling temperature")
    ap.add_argument("--layers", type=int, default=4, help="joint-vs-bt: SmolLM2 layers kept")
    ap.add_argument("--epochs", type=int, default=2, help="joint-vs-bt; votes uses 60 unless given")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/omnireward-judge-bench")
    ap.add_argument("--no-record", action="store_true", help="print the figures, append no results line")
    a = ap.parse_args()
    if a.what == "votes" and "--epochs" not in sys.argv:
        a.epochs = 60
    figures = {"zero-shot": zero_shot, "joint-vs-bt": joint_vs_bt, "votes": votes}[a.what](a)
    if a.no_record:
        print(json.dumps(figures, indent=2))
        return
    line = append("judge_runs", figures, run=a.what)
    print(json.dumps(line, indent=2))


if __name__ == "__main__":
    main()
