"""Spoken content before and after Whisper transcripts: the audio demo with the full embedded default.

    python benchmarks/audio_transcript.py [--n-pairs 300] [--epochs 4] [--extra-pairs 250] [--layers N] [--seed 0]

Builds the audio demo (train: the train voices and sentences), then trains the embedded default
twice with the README's media settings (lr 5e-4, LM lr 5e-5, batch 8): once with
`backbone.encoder_options.audio.transcript=false` (Whisper encoder states only) and once with
`=true` (states + the decoder's greedy transcript as LM tokens). Each model scores
- unseen sources: the demo's test split plus the test split of a second build (another seed),
  voices and sentences no train pair holds;
- seen sources: the val split (new pairings and augmentations of the train voices and sentences).
Also the word error rate of the transcripts on the bundled test-part clips (normal variant). Appends one line to
benchmarks/results/audio_transcript.jsonl with accuracy per rule (criteria flips by kind) and n.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_log import append  # noqa: E402


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Word edits (substitutions, insertions, deletions) over reference words, summed over clips."""
    edits = words = 0
    for ref, hyp in zip(refs, hyps):
        a, b = _words(ref), _words(hyp)
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            diag, row[0] = row[0], i
            for j, y in enumerate(b, 1):
                diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (x != y))
        edits, words = edits + row[-1], words + len(a)
    return edits / words


def _rule(meta: dict) -> str:
    return f"flip_{meta['flip']}" if "flip" in meta else meta["rule"]


def per_rule(pairs_files: list[Path], scores_files: list[Path]) -> dict[str, dict]:
    """rule -> {"accuracy", "n"} over the files together, plus "all"."""
    rules = {}
    for f in pairs_files:
        for line in f.read_text().splitlines():
            row = json.loads(line)
            rules[row["id"]] = _rule(row["meta"])
    right = defaultdict(list)
    for f in scores_files:
        for line in f.read_text().splitlines():
            s = json.loads(line)
            ok = (s["margin"] > 0) == (s["preference"] == "response1")
            right[rules[s["id"]]].append(ok)
            right["all"].append(ok)
    return {k: {"accuracy": round(sum(v) / len(v), 3), "n": len(v)} for k, v in sorted(right.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-pairs", type=int, default=300, help="train pairs (val and test: a fifth each)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument(
        "--extra-pairs",
        type=int,
        default=250,
        help="train size of the second build whose test split (a fifth) adds unseen-source pairs",
    )
    ap.add_argument("--layers", type=int, default=None, help="keep the first N of SmolLM2's 30 layers (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/omnireward-bench/audio_transcript")
    a = ap.parse_args()

    from omnireward.config import compose_config
    from omnireward.data.demo import build_demo
    from omnireward.data.demo.audio import bundled_clips
    from omnireward.encoders.transcript import transcribe
    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    work = Path(a.work)
    data = build_demo("audio", work / "data", n_pairs=a.n_pairs, seed=a.seed)
    extra = build_demo("audio", work / "extra", n_pairs=a.extra_pairs, seed=a.seed + 1000) if a.extra_pairs else None
    unseen = [data / "test.jsonl"] + ([extra / "test.jsonl"] if a.extra_pairs else [])
    seen = [data / "val.jsonl"]

    figures: dict = {
        "n_pairs": a.n_pairs,
        "epochs": a.epochs,
        "lm_layers": a.layers or 30,
        "seed": a.seed,
        "extra_pairs": a.extra_pairs,
        "extra_seed": a.seed + 1000,
        "settings": "model.lr=5e-4 model.lm_lr=5e-5 data.batch_size=8",
    }
    for transcript in (False, True):
        name = "with_transcript" if transcript else "without_transcript"
        run = work / name
        t0 = time.time()
        out = train(
            compose_config(
                [
                    "modality=audio",
                    f"data.train={data / 'train.jsonl'}",
                    f"data.val={data / 'val.jsonl'}",
                    f"output_dir={run / 'model'}",
                    f"trainer.max_epochs={a.epochs}",
                    f"seed={a.seed}",
                    "model.lr=5e-4",
                    "model.lm_lr=5e-5",
                    "data.batch_size=8",
                    f"backbone.encoder_options.audio.transcript={str(transcript).lower()}",
                    *([f"backbone.lm_layers={a.layers}"] if a.layers else []),
                ]
            )
        )
        train_s = time.time() - t0
        scores = {}
        for f in unseen + seen:
            scores[f] = run / f"{f.parent.name}_{f.stem}.scores.jsonl"
            score_file(f, out, scores[f])
        figures[name] = {
            "train_s": round(train_s, 1),
            "unseen_sources": per_rule(unseen, [scores[f] for f in unseen]),
            "seen_sources": per_rule(seen, [scores[f] for f in seen]),
        }
        print(name, json.dumps(figures[name], indent=1), flush=True)

    test_clips = [c for c in bundled_clips() if c.variant == "normal" and c.split == "test"]
    figures["wer_test_clips"] = round(
        word_error_rate([c.sentence for c in test_clips], [transcribe(c.wav) for c in test_clips]), 3
    )
    figures["n_test_clips"] = len(test_clips)
    for key in ("unseen_sources", "seen_sources"):
        figures[f"content_gain_{key}"] = round(
            figures["with_transcript"][key]["content"]["accuracy"]
            - figures["without_transcript"][key]["content"]["accuracy"],
            3,
        )
    row = append("audio_transcript", figures)
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
