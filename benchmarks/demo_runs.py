"""Train the embedded default on a demo set and score it on held-out pairs of seen and unseen sources.

    python benchmarks/demo_runs.py --modality image --epochs 4 --n-pairs 300 \
        model.lr=5e-4 model.lm_lr=5e-5 data.batch_size=8

Builds the demo set (`test` comes from sources training never shows), trains, then scores three
held-out sets: the `test` split; "fresh unseen", a larger sample of the test pool built with
another seed; and "fresh seen", new crops, windows or fillers of the training sources (the `val`
pool, another seed). Appends one line to benchmarks/results/demo_runs.jsonl through results_log:
times, and for each set the accuracy and n overall, per rule, and on all criteria-flip records
(also per wording of the criteria: the rule's own phrasings, and the test pool's paraphrases).

The line's `tag` (the row name docs render by) is derived from every setting that changes the
result: a readable prefix (modality, LM layers kept, epochs, pairs, seed, LM layers training,
`--label`) and a short hash of the Hydra overrides given (sorted), the effective train_layers,
group_by_length, lr, lm_lr and batch size read from the composed config, and the fresh-set size.
A rerun with other settings, or after a default changed, gets another tag, never another run's
row. (Lines written before the hash keep their old tags, e.g. `text-Lall-e2-n128-s0-t10`.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_log import append  # noqa: E402


def rule_of(meta: dict) -> str:
    """Criteria flips are told apart by what they flip (`criteria_flip:subject`)."""
    return f"{meta['rule']}:{meta['flip']}" if "flip" in meta else meta["rule"]


def accuracy_by_rule(pairs_file: Path, scores_file: Path) -> dict:
    """Accuracy and n overall, per rule and over all criteria-flip records of one scored set.

    Flip records that say how their criteria are worded (`meta.wording`: "trained", the rule's own
    phrasings, or "paraphrase", other words that only the unseen split uses) are also counted per
    wording under `flips_by_wording`: wording -> {accuracy, n, per_rule}.
    """
    metas = {r["id"]: r["meta"] for r in map(json.loads, pairs_file.read_text().splitlines())}
    right = defaultdict(list)
    worded = defaultdict(lambda: defaultdict(list))
    for x in scores_file.read_text().splitlines():
        s = json.loads(x)
        ok = (s["margin"] > 0) == (s["preference"] == "response1")
        meta = metas[s["id"]]
        rule = rule_of(meta)
        right[rule].append(ok)
        right["*all"].append(ok)
        if rule.startswith("criteria_flip"):
            right["*flips"].append(ok)
            if "wording" in meta:
                worded[meta["wording"]][rule].append(ok)

    def acc(v: list) -> dict:
        return {"accuracy": round(sum(v) / len(v), 4), "n": len(v)}

    out = {
        "accuracy": acc(right["*all"])["accuracy"],
        "n": len(right["*all"]),
        "flips": acc(right["*flips"]) if right["*flips"] else None,
        "per_rule": {k: acc(v) for k, v in sorted(right.items()) if not k.startswith("*")},
    }
    if worded:
        out["flips_by_wording"] = {
            how: {
                **acc([ok for v in rules.values() for ok in v]),
                "per_rule": {k: acc(v) for k, v in sorted(rules.items())},
            }
            for how, rules in sorted(worded.items())
        }
    return out


# Settings read from the composed config that change what a run measures (name -> config key).
TAG_SETTINGS = {
    "train_layers": "backbone.train_layers",
    "group_by_length": "data.group_by_length",
    "lr": "model.lr",
    "lm_lr": "model.lm_lr",
    "batch_size": "data.batch_size",
}


def effective_settings(cfg) -> dict:
    """The values of TAG_SETTINGS in a composed config (None where a key is absent)."""
    from omegaconf import OmegaConf

    return {name: OmegaConf.select(cfg, key, default=None) for name, key in TAG_SETTINGS.items()}


def run_tag(a: argparse.Namespace, settings: dict) -> str:
    """The results line's tag: a readable prefix plus a hash of everything else that changes the result."""
    trained = settings.get("train_layers")
    prefix = (
        f"{a.modality}-L{a.layers or 'all'}-e{a.epochs}-n{a.n_pairs}-s{a.seed}"
        f"-t{'all' if trained is None else trained}" + (f"-{a.label}" if a.label else "")
    )
    key = json.dumps(
        {"overrides": sorted(a.overrides), "settings": settings, "fresh_pairs": a.fresh_pairs}, sort_keys=True
    )
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def base_overrides(a: argparse.Namespace) -> list[str]:
    """The training overrides that do not depend on where the run writes."""
    out = [f"modality={a.modality}", f"trainer.max_epochs={a.epochs}", f"seed={a.seed}", *a.overrides]
    if a.layers:
        out.append(f"backbone.lm_layers={a.layers}")
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modality", default="text")
    ap.add_argument("--layers", type=int, default=None, help="keep the first N LM layers (default: all 30)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-pairs", type=int, default=300, help="training pairs of the demo set")
    ap.add_argument("--seed", type=int, default=0, help="seed of the demo set and of training")
    ap.add_argument(
        "--fresh-pairs",
        type=int,
        default=150,
        help="pairs in each fresh set (seen and unseen sources, seed + 1000); 0 skips them",
    )
    ap.add_argument("--label", default="", help="a suffix for the tag that names a variant (e.g. nolabel)")
    ap.add_argument("--work", default="/tmp/omnireward-bench")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides passed to training")
    return ap


def main() -> None:
    a = parser().parse_args()

    from omnireward.config import compose_config
    from omnireward.data.demo import build_demo, build_split
    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    settings = effective_settings(compose_config(base_overrides(a)))
    tag = run_tag(a, settings)
    work = Path(a.work) / tag
    shutil.rmtree(work, ignore_errors=True)  # each measurement starts from nothing (no resumed run or scores)
    data = work / "data"
    t0 = time.time()
    build_demo(a.modality, data, n_pairs=a.n_pairs, seed=a.seed)
    t_data = time.time() - t0
    cfg = compose_config(
        [
            *base_overrides(a),
            f"data.train={data / 'train.jsonl'}",
            f"data.val={data / 'val.jsonl'}",
            f"output_dir={work / 'run'}",
        ]
    )
    if effective_settings(cfg) != settings:  # the tag must name the settings that train
        raise SystemExit(f"the data paths changed the settings the tag names: {settings} vs {effective_settings(cfg)}")
    t0 = time.time()
    out = train(cfg)
    t_train = time.time() - t0

    t0 = time.time()
    score_file(data / "test.jsonl", out, work / "test.scores.jsonl")
    t_score = time.time() - t0
    figures = {
        "modality": a.modality,
        "layers": a.layers or 30,
        "epochs": a.epochs,
        "n_pairs": a.n_pairs,
        "seed": a.seed,
        "overrides": a.overrides,
        "data_s": round(t_data, 1),
        "train_s": round(t_train, 1),
        "score_s": round(t_score, 1),
        "train_layers": cfg.backbone.get("train_layers"),
        "settings": settings,
        "fresh_pairs": a.fresh_pairs,
        "test": accuracy_by_rule(data / "test.jsonl", work / "test.scores.jsonl"),
    }
    if a.fresh_pairs:
        for name, split in (("fresh_unseen", "test"), ("fresh_seen", "val")):
            pairs = build_split(a.modality, work / "fresh", split, a.fresh_pairs, seed=a.seed + 1000)
            score_file(pairs, out, work / f"{name}.scores.jsonl")
            figures[name] = accuracy_by_rule(pairs, work / f"{name}.scores.jsonl")
        figures["fresh_seed"] = a.seed + 1000
    figures["train_summary"] = json.loads((out / "train_summary.json").read_text())
    line = append("demo_runs", figures, tag=tag)
    print(json.dumps(line, indent=2))


if __name__ == "__main__":
    main()
