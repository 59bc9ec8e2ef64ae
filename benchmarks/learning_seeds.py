"""The per-modality learning check of tests/test_learning.py over several seeds: the range its
threshold is set from.

    python benchmarks/learning_seeds.py [--modalities image,audio,video,3d] [--seeds 0,1,2]

For each modality and seed, builds the demo set with that seed, trains the tiny-LM recipe of
`test_modality_learns_from_its_demo_set` (real frozen encoders, same settings, training seed =
the seed) and scores HELD_OUT_PAIRS pairs of unseen sources (seed + 1000). Appends one line per
modality to benchmarks/results/learning_seeds.jsonl: per seed, the accuracy and n of every rule,
and the minimum and maximum over seeds of the rule the test asserts on.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "tests"))
from results_log import append  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modalities", default="image,audio,video,3d")
    ap.add_argument("--seeds", default="0,1,2")
    a = ap.parse_args()
    from test_learning import CASES, run_case

    seeds = [int(x) for x in a.seeds.split(",")]
    for modality in a.modalities.split(","):
        n_pairs, rule = CASES[modality]
        runs = {}
        for seed in seeds:
            t0 = time.time()
            with tempfile.TemporaryDirectory(prefix=f"learning-{modality}-{seed}-") as work:
                _, _, _, per_rule = run_case(modality, Path(work), seed)
            runs[str(seed)] = {
                "seconds": round(time.time() - t0, 1),
                "rules": {k: {"accuracy": round(sum(v) / len(v), 3), "n": len(v)} for k, v in sorted(per_rule.items())},
            }
            print(modality, seed, runs[str(seed)], flush=True)
        asserted = [r["rules"][rule]["accuracy"] for r in runs.values() if rule in r["rules"]]
        print(
            append(
                "learning_seeds",
                {
                    "modality": modality,
                    "seeds": seeds,
                    "train_pairs": n_pairs,
                    "asserted_rule": rule,
                    "runs": runs,
                    "asserted_min": min(asserted),
                    "asserted_max": max(asserted),
                },
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
