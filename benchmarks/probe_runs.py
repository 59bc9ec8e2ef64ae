"""The perturbation probes measured on the demo models of every modality (and a trained judge).

    python benchmarks/probe_runs.py --modality text --epochs 3 --n-pairs 300
    python benchmarks/probe_runs.py --modality image --epochs 4 model.lr=5e-4 model.lm_lr=5e-5
    python benchmarks/probe_runs.py --modality text --judge --epochs 1     # model=r1 on the text demo
    python benchmarks/probe_runs.py --modality text --model runs/x         # an existing folder, no training

Builds the modality's demo set (`omnireward data demo`, seed --seed), trains the embedded default
on it (BT; with --judge a model=r1 judge, whose SFT critiques name the gold verdict), then runs
every packaged probe (conf/probe/default.yaml) on the `test` split (sources training never saw)
and writes one line to benchmarks/results/probe_runs.jsonl through results_log: per probe the
records changed, share rose, mean and median change, flip share (judges) and verdict, plus the
training and probing times and the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_log import append  # noqa: E402


def _with_verdicts(src: Path, out: Path) -> Path:
    """Judge training data: each pair's critique is its gold verdict."""
    rows = []
    for line in src.read_text().splitlines():
        r = json.loads(line)
        r["critique"] = f"Verdict: [[{'A' if r['preference'] == 'response1' else 'B'}]]"
        rows.append(r)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _folder_settings(folder: Path) -> dict:
    """What a given model folder was trained with, from its own omnireward.yaml and
    train_summary.json: the settings that change what it learned."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(folder / "omnireward.yaml")
    pick = {
        "modality": "modality.name",
        "model": "model._target_",
        "train_layers": "backbone.train_layers",
        "lm_layers": "backbone.lm_layers",
        "descriptor_tokens": "backbone.descriptor_tokens",
        "lr": "model.lr",
        "lm_lr": "model.lm_lr",
        "batch_size": "data.batch_size",
        "group_by_length": "data.group_by_length",
        "max_epochs": "trainer.max_epochs",
        "seed": "seed",
        "head": "head._target_",
    }
    out = {"folder": str(folder)}
    out.update({k: OmegaConf.select(cfg, v, default=None) for k, v in pick.items()})
    summary = folder / "train_summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        out.update({k: s.get(k) for k in ("epochs", "train_pairs", "best_epoch", "best_val_acc", "train_seconds")})
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modality", default="text", help="text|image|video|audio|3d|omni")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-pairs", type=int, default=300, help="training pairs of the demo set")
    ap.add_argument("--layers", type=int, default=None, help="keep the first N LM layers (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judge", action="store_true", help="train and probe a model=r1 judge instead of BT")
    ap.add_argument("--model", default=None, help="probe this folder instead of training one")
    ap.add_argument("--max-records", type=int, default=None, help="probe only the first N test records")
    ap.add_argument("--max-new-tokens", type=int, default=16, help="judges: critique length while probing")
    ap.add_argument("--work", default="/tmp/omnireward-probe-bench")
    ap.add_argument("--no-record", action="store_true", help="print the figures, append no results line")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides passed to training")
    return ap


def main() -> None:
    a = parser().parse_args()
    from omnireward.config import compose_config
    from omnireward.data.demo import build_demo
    from omnireward.probe.run import run_probes
    from omnireward.train import train

    kind = "judge" if a.judge else "bt"
    tag = f"{a.modality}-{kind}-e{a.epochs}-n{a.n_pairs}-s{a.seed}" + (f"-L{a.layers}" if a.layers else "")
    work = Path(a.work) / tag
    shutil.rmtree(work, ignore_errors=True)
    data = build_demo(a.modality, work / "data", n_pairs=a.n_pairs, seed=a.seed)
    t_train = None
    given = None
    if a.model:
        model = Path(a.model)
        name = model.name if model.name not in ("main", "run", "model") else f"{model.parent.name}-{model.name}"
        tag = f"{a.modality}-given-{name}"
        given = _folder_settings(model)
    else:
        train_f, val_f = data / "train.jsonl", data / "val.jsonl"
        overrides = [f"modality={a.modality}", f"trainer.max_epochs={a.epochs}", f"seed={a.seed}", *a.overrides]
        if a.judge:
            train_f = _with_verdicts(train_f, work / "train.verdicts.jsonl")
            val_f = _with_verdicts(val_f, work / "val.verdicts.jsonl")
            overrides = ["model=r1", *overrides]
        if a.layers:
            overrides.append(f"backbone.lm_layers={a.layers}")
        t0 = time.time()
        model = train(
            compose_config([*overrides, f"data.train={train_f}", f"data.val={val_f}", f"output_dir={work / 'run'}"])
        )
        t_train = round(time.time() - t0, 1)
    t0 = time.time()
    result = run_probes(
        model,
        data / "test.jsonl",
        work / "probe",
        max_records=a.max_records,
        seed=a.seed,
        max_new_tokens=a.max_new_tokens,
    )
    t_probe = round(time.time() - t0, 1)
    probes = {
        p["name"]: {
            k: p.get(k)
            for k in (
                "modality",
                "n",
                "n_records",
                "share_rose",
                "mean_change",
                "median_change",
                "flip_share",
                "flagged",
            )
        }
        for p in result["probes"]
    }
    figures = {
        "modality": a.modality,
        "kind": result["kind"],
        # With --model: the demo set's size and seed whose test split was probed; the folder's own
        # training settings are under `given` (epochs, layers and overrides here are not its own).
        "epochs": None if given else a.epochs,
        "n_pairs": a.n_pairs,
        "seed": a.seed,
        "layers": None if given else a.layers,
        "overrides": [] if given else a.overrides,
        "given": given,
        "train_s": t_train,
        "probe_s": t_probe,
        "n_records": result["n_records"],
        "unit": result["unit"],
        "reward_std": result["reward_std"],
        "std_source": result["std_source"],
        "flag_share": result["flag_share"],
        "min_effect": result["min_effect"],
        "probes": probes,
        "skipped": result["skipped"],
        "flagged": result["flagged"],
    }
    if a.no_record:
        print(json.dumps(figures, indent=2))
        return
    print(json.dumps(append("probe_runs", figures, tag=tag), indent=2))


if __name__ == "__main__":
    main()
