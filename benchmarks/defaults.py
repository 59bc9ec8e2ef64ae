"""Choose defaults by what they learn: the plain `omnireward train` command per set, candidate settings, seeds.

    python benchmarks/defaults.py --set audio --seeds 0 1 2 \
        --candidate base= --candidate layers20=backbone.train_layers=20

For each set, seed and candidate: build the set (the demo set of a modality, or one of
benchmarks/named_sets.py's `tones` and `shapes`) with that seed, run

    omnireward train model=bt modality=M data.train=… data.val=… output_dir=… trainer.max_epochs=E seed=S <candidate>

in its own process (nothing else set: the configuration's defaults are what is measured), score the
unseen-source test split (and, for demo sets, a larger fresh sample of the unseen sources, seed +
1000) with `omnireward score`, and append one results line (benchmarks/results/defaults.jsonl):
the candidate's overrides, training time, and accuracy from raw margins per rule.
`--tree DIR` trains and scores with another checkout's code on the same data (for bisecting a
regression); the line records that checkout's commit. `--table` prints the candidates' table
(mean and worst seed of the unseen accuracy, training time) from the results lines. `--dry-run`
checks that every candidate composes (and its head accepts its values) and prints the train
commands, building and training nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from demo_runs import accuracy_by_rule  # noqa: E402
from results_log import append, lines  # noqa: E402

# set -> (modality, training pairs, epochs): the demo sets at `make demo`'s sizes, the named sets at
# the sizes of the regression they were built to catch.
SETS = {
    "text": ("text", 128, 2),
    "image": ("image", 300, 4),
    "video": ("video", 300, 4),
    "audio": ("audio", 300, 4),
    "3d": ("3d", 300, 4),
    "tones": ("audio", 120, 4),
    "shapes": ("3d", 180, 4),
}
FRESH_PAIRS = 150


def build(name: str, out: Path, seed: int, n_pairs: int) -> list[tuple[str, Path]]:
    """Build the set once per (set, seed, pairs); returns the unseen-source files to score."""
    done = out / ".built"
    if name in ("tones", "shapes"):
        from named_sets import build_set

        if not done.exists():
            build_set(name, out, n_pairs=n_pairs, seed=seed)
            done.touch()
        if not (out / "test_sources.jsonl").exists():  # a set built before the split existed
            build_set(name, out, n_pairs=n_pairs, seed=seed, splits=("test_sources",))
        return [("test", out / "test.jsonl"), ("test_sources", out / "test_sources.jsonl")]
    from omnireward.data.demo import build_demo, build_split

    if not done.exists():
        build_demo(name, out, n_pairs=n_pairs, seed=seed)
        build_split(name, out / "fresh", "test", FRESH_PAIRS, seed=seed + 1000)
        done.touch()
    return [("test", out / "test.jsonl"), ("fresh_unseen", out / "fresh" / "test.jsonl")]


def child(tree: str | None) -> tuple[dict, str | None]:
    """Environment and working folder of the train and score processes: with `tree`, that checkout's
    package first on the path and the process started inside it. `python -c` puts its working folder
    ahead of PYTHONPATH, so a child started from this repository imported this repository's package
    whatever PYTHONPATH said: every `--tree` line before this was measured fixed ran this tree's code."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if not tree:
        return env, None
    root = str(Path(tree).resolve())
    env["PYTHONPATH"] = root
    return env, root


def tree_commit(tree: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=tree, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree, capture_output=True, text=True
    ).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


EXE = [sys.executable, "-c", "from omnireward.cli.app import main; main()"]


def plan(a, name: str, seed: int, cand: str, overrides: list[str]) -> tuple[Path, Path, list[str]]:
    """The set's data folder, the run folder and the `omnireward train` command of one run."""
    modality, n_default, e_default = SETS[name]
    n_pairs, epochs = a.n_pairs or n_default, a.epochs or e_default
    data = Path(a.work) / "data" / f"{name}-n{n_pairs}-s{seed}"
    run = Path(a.work) / "runs" / f"{name}-{cand}-s{seed}" / (Path(a.tree).name if a.tree else "main")
    cmd = [
        *EXE,
        "train",
        "model=bt",
        f"modality={modality}",
        f"data.train={data / 'train.jsonl'}",
        f"data.val={data / 'val.jsonl'}",
        f"output_dir={run}",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        *overrides,
    ]
    return data, run, cmd


def check_candidate(modality: str, overrides: list[str]) -> None:
    """Stop before any training when a candidate's overrides do not compose (an unknown key or
    option) or its head refuses its values (e.g. head.pooling=max): one line, as `train` would."""
    from omnireward.config import build as build_component
    from omnireward.config import compose_config

    cfg = compose_config(["model=bt", f"modality={modality}", *overrides])
    build_component(cfg.head)(8)  # the head's own checks; the layer's range needs the backbone


def run_one(a, name: str, seed: int, cand: str, overrides: list[str]) -> dict:
    modality, n_default, e_default = SETS[name]
    n_pairs, epochs = a.n_pairs or n_default, a.epochs or e_default
    data, run, cmd = plan(a, name, seed, cand, overrides)
    files = build(name, data, seed, n_pairs)
    resume = a.resume and (run / "train_summary.json").exists()
    if not resume:
        shutil.rmtree(run, ignore_errors=True)
    env, cwd = child(a.tree)
    t0 = time.time()
    log = run.parent / f"{run.name}.train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if resume:  # a finished training run whose scoring was cut: its own training time
        train_s = json.loads((run / "train_summary.json").read_text())["train_seconds"]
    else:
        with open(log, "w") as fh:
            subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, check=True)
        train_s = time.time() - t0
    figures = {
        "set": name,
        "modality": modality,
        "seed": seed,
        "candidate": cand,
        "overrides": overrides,
        "n_pairs": n_pairs,
        "epochs": epochs,
        "train_s": round(train_s, 1),
    }
    for key, f in files:
        scores = run / f"{key}.scores.jsonl"
        with open(run.parent / f"{run.name}.score.log", "a") as fh:
            subprocess.run(
                [*EXE, "score", str(f), "--model", str(run), "--out", str(scores)],
                env=env,
                cwd=cwd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                check=True,
            )
        figures[key] = accuracy_by_rule(f, scores)
    summary = run / "train_summary.json"
    if summary.exists():
        figures["train_summary"] = json.loads(summary.read_text())
    fields = {"tag": f"{name}-{cand}-s{seed}"}
    if a.tree:  # another checkout's code: its own tag, never a row of this tree's table
        fields["tree_commit"] = tree_commit(Path(a.tree))
        fields["tree_isolated"] = True  # started inside the tree (see `child`): its code, not this one's
        fields["tag"] += f"@{fields['tree_commit']}"
    return append("defaults", figures, **fields)


def unseen_accuracy(f: dict) -> float:
    """The unseen-source figure a candidate is judged by: the fresh unseen sample where there is one
    (larger), else the test split."""
    return (f.get("fresh_unseen") or f["test"])["accuracy"]


def table(sets: list[str] | None = None) -> str:
    """Markdown table per set: each candidate's mean / worst-seed unseen accuracy and training time,
    from the newest line of each (set, candidate, seed). Rows trained with another checkout's code
    (`--tree`, for bisecting) are named `candidate @ commit`; they are never this tree's candidates.
    The named sets add their unseen sources under training's phrasings (`test_sources`), and every
    row the best validation accuracy (seen sources)."""
    from results_log import newest

    tags = sorted({row["tag"] for row in lines("defaults")})
    by = defaultdict(list)
    for tag in tags:
        row = newest("defaults", [f"tag:{tag}"])
        if "tree_commit" in row and not row.get("tree_isolated"):
            continue  # a --tree line from before `child`: it ran this tree's code, not the other's
        f = row["figures"]
        if not sets or f["set"] in sets:
            cand = f["candidate"] + (f" @ {row['tree_commit']}" if "tree_commit" in row else "")
            by[(f["set"], cand)].append(row)
    out = [
        "| set | candidate | overrides | seeds | unseen acc. mean | worst seed | sd | unseen sources, trained "
        "phrasings | best val acc. | training time (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def mean_of(rows, get):
        vals = [v for v in (get(r["figures"]) for r in rows) if v is not None]
        return f"{statistics.mean(vals):.3f}" if len(vals) == len(rows) else "—"

    for (s, c), rows in sorted(
        by.items(), key=lambda kv: (list(SETS).index(kv[0][0]), "@" in kv[0][1], kv[0][1] != "base", kv[0][1])
    ):
        accs = [unseen_accuracy(r["figures"]) for r in rows]
        t = statistics.mean(r["figures"]["train_s"] for r in rows)
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        ov = " ".join(rows[0]["figures"]["overrides"]) or "(the defaults)"
        sources = mean_of(rows, lambda f: (f.get("test_sources") or {}).get("accuracy"))
        val = mean_of(rows, lambda f: (f.get("train_summary") or {}).get("best_val_acc"))
        out.append(
            f"| {s} | {c} | `{ov}` | {', '.join(str(r['figures']['seed']) for r in rows)} "
            f"| {statistics.mean(accs):.3f} | {min(accs):.3f} | {sd:.3f} | {sources} | {val} | {t / 60:.1f} min |"
        )
    commits = sorted({r["commit"] for rows in by.values() for r in rows})
    loads = [r["machine"].get("load_1min") for rows in by.values() for r in rows]
    out.append("")
    out.append(
        f"Commits: {', '.join(f'`{c}`' for c in commits)}; 2-core CPU, load at the end of each run "
        f"{min(loads)}–{max(loads)} (training times are rough where other work ran; a run's first "
        f"epoch also computes and caches the frozen encoders' features)."
    )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", choices=sorted(SETS), help="repeatable")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="NAME=override[,override…]; `base=` is the configuration's defaults",
    )
    ap.add_argument("--n-pairs", type=int, default=None, help="training pairs (default: the set's own)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: the set's own)")
    ap.add_argument("--tree", default=None, help="train and score with this checkout's code (bisecting)")
    ap.add_argument("--work", default="/tmp/omnireward-defaults")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep a finished training run of the same set, seed and candidate; score it (scoring resumes)",
    )
    ap.add_argument("--table", action="store_true", help="print the candidates' table and exit")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="check that every candidate composes (with this checkout's configs) and print the train "
        "commands, without building data or training",
    )
    a = ap.parse_args()
    a.work = str(Path(a.work).resolve())  # the children may start in another folder (--tree)
    if a.table:
        print(table(a.set))
        return
    cands = [(c.split("=", 1)[0], [x for x in c.split("=", 1)[1].split(",") if x]) for c in a.candidate or ["base="]]
    if a.dry_run:
        import shlex

        from omnireward.errors import OmniRewardError

        for name in a.set or []:
            for cand, overrides in cands:
                try:
                    check_candidate(SETS[name][0], overrides)
                except OmniRewardError as e:
                    sys.exit(f"candidate {cand} on {name}: {e}")
            for seed in a.seeds:
                for cand, overrides in cands:
                    print("omnireward", shlex.join(plan(a, name, seed, cand, overrides)[2][len(EXE) :]))
        return
    for name in a.set or []:
        for seed in a.seeds:
            for cand, overrides in cands:
                line = run_one(a, name, seed, cand, overrides)
                f = line["figures"]
                print(
                    f"{name} seed {seed} {cand}: unseen {unseen_accuracy(f):.3f} (test {f['test']['accuracy']:.3f}) "
                    f"train {f['train_s']:.0f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
