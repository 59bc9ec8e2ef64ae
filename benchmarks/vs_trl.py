"""omnireward against the peers, side by side in one run: training vs TRL's RewardTrainer, scoring vs
transformers' AutoModelForSequenceClassification.

    python benchmarks/vs_trl.py                      # text and prompt-heavy sets, 128 pairs, 1 epoch, batch 8
    python benchmarks/vs_trl.py --sets text --pairs 64

The same LM (the embedded SmolLM2-135M-Instruct as an HF folder), the same pairs, batch size and
epochs, CPU fp32. Every measurement runs in a fresh process (peak RSS is that process's
VmHWM; a training run's is taken when training ends, before its held-out pairs are scored);
times exclude loading. Appends one line to benchmarks/results/vs_trl.jsonl with
pairs/s, peak RSS, held-out accuracy and the ratios omnireward/peer.

Sets: `text` — the text demo (seed 3: prompts, criteria in the system turn, short answers);
`prompt_heavy` — long criteria and prompt (~300 words), one-sentence answers, where a pair's shared
prompt dominates. The conversation is the same for both tools: system = criteria, user = prompt,
assistant = response, through SmolLM2's chat template. Best-of-N scoring: groups of 8 responses
to one prompt of each set (its pair's two and six of the set's other answers), one group per
forward pass on both sides (after one untimed warm-up group): HF runs the prompt once per
response, omnireward once per group.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

WORDS = ("the model should weigh clarity accuracy safety and tone while it reads the whole request "
         "carefully before it answers every part of the question with care and detail").split()


def _peak_mib() -> float:
    """This process's peak RSS: the kernel's VmHWM (ru_maxrss would include the parent's at fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prompt_heavy(n: int, seed: int) -> list[dict]:
    """Long criteria + long prompt, short answers; the helpful answer wins on either side."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        criteria = "Prefer the answer that " + " ".join(rng.choice(WORDS) for _ in range(120)) + "."
        prompt = f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(180)) + "?"
        good, bad = "Here is a clear and careful answer to every part.", "No."
        first = i % 2 == 0
        rows.append({"id": f"ph{i}", "prompt": prompt, "criteria": criteria, "response1": good if first else bad,
                     "response2": bad if first else good, "preference": "response1" if first else "response2"})
    return rows


def build_sets(work: Path, n: int, seed: int) -> dict[str, dict[str, Path]]:
    from omnireward.data.demo import build_demo

    sets = {}
    demo = build_demo("text", work / "text", n_pairs=n, seed=seed)
    # Neither tool validates here, so the demo's val and test splits together are the held-out pairs.
    heldout = demo / "heldout.jsonl"
    heldout.write_text((demo / "test.jsonl").read_text() + (demo / "val.jsonl").read_text())
    sets["text"] = {"train": demo / "train.jsonl", "test": heldout}
    d = work / "prompt_heavy"
    d.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", prompt_heavy(n, seed)), ("test", prompt_heavy(max(32, n // 2), seed + 1))):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets["prompt_heavy"] = {"train": d / "train.jsonl", "test": d / "test.jsonl"}
    return sets


def group_file(pairs: Path, out: Path, n: int, size: int, seed: int) -> Path:
    """Best-of-N groups from a set's pairs: each of the first `n` prompts (with its criteria) and
    `size` responses, its own two plus others drawn from the set's other pairs."""
    recs = _records(pairs)
    pool = [r[k] for r in recs for k in ("response1", "response2")]
    rng = random.Random(seed)
    rows = []
    for i, r in enumerate(recs[:n]):
        others = rng.sample([x for j, x in enumerate(pool) if j // 2 != i], size - 2)
        rows.append({"id": f"g{i}", "prompt": r["prompt"], "criteria": r.get("criteria"),
                     "responses": [r["response1"], r["response2"], *others]})
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _messages(rec: dict, response: str) -> list[dict]:
    from omnireward.export import reward_messages

    return reward_messages(rec["prompt"], response, rec.get("criteria"))


def _text(r) -> str:
    return r if isinstance(r, str) else r.get("text", "")


# ---- the runs (each in its own process) ------------------------------------------------------
def run_trl_train(a) -> dict:
    """TRL RewardTrainer on AutoModelForSequenceClassification(SmolLM2), then its held-out accuracy."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from omnireward.backbones.lm import embedded_lm_dir

    lm = embedded_lm_dir()
    tok = AutoTokenizer.from_pretrained(lm)
    model = AutoModelForSequenceClassification.from_pretrained(lm, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    rows = []
    for r in _records(Path(a.train)):
        win, lose = (r["response1"], r["response2"]) if r["preference"] == "response1" else (r["response2"], r["response1"])
        msgs = _messages(r, "")[:-1]
        rows.append({"prompt": msgs, "chosen": [{"role": "assistant", "content": _text(win)}],
                     "rejected": [{"role": "assistant", "content": _text(lose)}]})
    args = RewardConfig(output_dir=str(Path(a.work) / "trl"), per_device_train_batch_size=a.batch,
                        num_train_epochs=a.epochs, learning_rate=1e-4, use_cpu=True, report_to=[], save_strategy="no",
                        logging_strategy="no", max_length=1024, dataloader_num_workers=0, seed=a.seed,
                        disable_dropout=True)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    peak = _peak_mib()  # training's peak, before the held-out pairs are scored
    acc = _hf_accuracy(model.eval(), tok, _records(Path(a.test)), a.batch)
    return {"pairs_per_s": len(rows) * a.epochs / seconds, "train_seconds": seconds, "test_accuracy": acc,
            "peak_rss_mib": round(peak)}


def _hf_scores(model, tok, recs: list[dict], batch: int) -> list[tuple[float, float]]:
    """Two passes per batch (all response1, then all response2), right-padded, no grad."""
    import torch

    tok.padding_side = "right"
    out = []
    with torch.no_grad():
        for i in range(0, len(recs), batch):
            chunk = recs[i:i + batch]
            passes = []
            for side in ("response1", "response2"):
                texts = [tok.apply_chat_template(_messages(r, _text(r[side])), tokenize=False) for r in chunk]
                enc = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
                passes.append(model(**enc).logits[:, 0].tolist())
            out += list(zip(*passes))
    return out


def _hf_group_scores(model, tok, recs: list[dict]) -> list[list[float]]:
    """One pass per group: its N conversations (the prompt repeated with each response), right-padded."""
    import torch

    tok.padding_side = "right"
    out = []
    with torch.no_grad():
        for r in recs:
            texts = [tok.apply_chat_template(_messages(r, _text(x)), tokenize=False) for x in r["responses"]]
            enc = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
            out.append(model(**enc).logits[:, 0].tolist())
    return out


def _hf_accuracy(model, tok, recs, batch) -> float:
    scores = _hf_scores(model, tok, recs, batch)
    right = [(s1 > s2) == (r["preference"] == "response1") for (s1, s2), r in zip(scores, recs)]
    return sum(right) / len(right)


def run_hf_score(a) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from omnireward.backbones.lm import embedded_lm_dir

    lm = embedded_lm_dir()
    tok = AutoTokenizer.from_pretrained(lm)
    model = AutoModelForSequenceClassification.from_pretrained(lm, num_labels=1, dtype=torch.float32).eval()
    model.config.pad_token_id = tok.pad_token_id
    recs = _records(Path(a.train))
    if a.groups:
        _hf_group_scores(model, tok, recs[:1])  # warm-up, untimed (as on the omnireward side)
    t0 = time.time()
    if a.groups:
        _hf_group_scores(model, tok, recs)
    else:
        _hf_scores(model, tok, recs, a.batch)
    seconds = time.time() - t0
    return {"pairs_per_s" if not a.groups else "groups_per_s": len(recs) / seconds, "score_seconds": seconds}


def run_omni_train(a) -> dict:
    from omnireward.config import compose_config
    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    out = Path(a.work) / f"omni-{a.set}"
    overrides = [f"data.train={a.train}", "data.val=null", f"output_dir={out}", f"trainer.max_epochs={a.epochs}",
                 f"data.batch_size={a.batch}", "model.lr=1e-3", "model.lm_lr=1e-4", f"seed={a.seed}",
                 "head.dropout=0.0", *a.overrides]
    cfg = compose_config(overrides)
    train(cfg)
    peak = _peak_mib()  # training's peak (model folder written), before the held-out pairs are scored
    summary = json.loads((out / "train_summary.json").read_text())
    n = summary["train_pairs"]
    s = score_file(a.test, out, Path(a.work) / f"omni-{a.set}.test.jsonl", batch_size=a.batch, device="cpu")
    return {"pairs_per_s": n * a.epochs / summary["train_seconds"], "train_seconds": summary["train_seconds"],
            "test_accuracy": s["accuracy_without_ties"], "model": str(out), "peak_rss_mib": round(peak),
            "train_layers": cfg.backbone.get("train_layers"), "gradient_checkpointing": cfg.backbone.get("gradient_checkpointing"),
            "group_by_length": cfg.data.get("group_by_length")}


def run_omni_score(a) -> dict:
    from omnireward.data.datamodule import load_records
    from omnireward.scoring.bt import reward_records
    from omnireward.scoring.load import load_for_scoring

    model = load_for_scoring(a.model, device="cpu")
    model.prefix_sharing = not a.no_prefix_sharing
    recs = load_records(a.train)
    if a.groups:  # one group (N sequences) per forward pass, as the HF side runs them
        reward_records(model, recs[:1], batch_size=1, show_progress=False)  # warm-up, untimed
        t0 = time.time()
        reward_records(model, recs, batch_size=1, show_progress=False)
        seconds = time.time() - t0
        return {"groups_per_s": len(recs) / seconds, "score_seconds": seconds}
    batch = model.collate_pairs(recs[:a.batch])
    tokens = int(batch.tensors["attention_mask"].sum()) / min(a.batch, len(recs))
    t0 = time.time()
    reward_records(model, recs, batch_size=a.batch, show_progress=False)
    seconds = time.time() - t0
    return {"pairs_per_s": len(recs) / seconds, "score_seconds": seconds, "tokens_per_pair": tokens}


RUNS = {"trl_train": run_trl_train, "hf_score": run_hf_score, "omni_train": run_omni_train,
        "omni_score": run_omni_score}


def _child(a) -> None:
    import torch

    torch.manual_seed(a.seed)
    result = RUNS[a.run](a)
    result.setdefault("peak_rss_mib", round(_peak_mib()))
    print("RESULT " + json.dumps(result), flush=True)


def _spawn(run: str, a, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", run, "--work", str(a.work), "--batch", str(a.batch), "--epochs",
           str(a.epochs), "--seed", str(a.seed)]
    for k, v in extra.items():
        if isinstance(v, bool):
            cmd += [f"--{k.replace('_', '-')}"] if v else []
        elif isinstance(v, list):
            cmd += [f"--{k}", *v] if v else []
        else:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    print("$", " ".join(cmd[2:]), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if p.returncode != 0 or line is None:
        raise SystemExit(f"{run} failed:\n{p.stderr[-3000:]}")
    out = json.loads(line[len("RESULT "):])
    print(run, out, flush=True)
    return out


def _clear_outputs(work: Path) -> None:
    """Each measurement starts from nothing: remove the run folders and score files of an earlier run."""
    if not work.is_dir():
        return
    for p in list(work.glob("omni-*")) + [work / "trl"] + []:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="text,prompt_heavy")
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temporary one); "
                    "its earlier outputs are cleared")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--set", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--train", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--test", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-prefix-sharing", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--groups", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--group-size", type=int, default=8, help="responses per best-of-N group")
    ap.add_argument("--n-groups", type=int, default=32, help="best-of-N groups scored per set")
    ap.add_argument("--overrides", nargs="*", default=[], help="extra omnireward train overrides")
    ap.add_argument("--no-record", action="store_true", help="print the figures, append no results line")
    a = ap.parse_args()
    if a.child:
        a.run = a.child
        return _child(a)
    from results_log import append

    if a.work is None:
        a.work = tempfile.mkdtemp(prefix="omnireward-vs-trl-")
    work = Path(a.work)
    _clear_outputs(work)
    sets = build_sets(work, a.pairs, a.seed)
    figures = {"pairs": a.pairs, "epochs": a.epochs, "batch": a.batch, "sets": {}}
    for name in a.sets.split(","):
        paths = {"train": str(sets[name]["train"]), "test": str(sets[name]["test"])}
        common = {"set": name, **paths}
        trl = _spawn("trl_train", a, **common)
        omni = _spawn("omni_train", a, **common, overrides=a.overrides)
        # The same with every LM layer training (the default trains the top ones): what that costs and gives.
        every = _spawn("omni_train", a, **{**common, "set": f"{name}-all-layers"},
                       overrides=[*a.overrides, "backbone.train_layers=null"])
        # The same with batches in plain shuffled order (the default groups them by length).
        ungrouped = _spawn("omni_train", a, **{**common, "set": f"{name}-ungrouped"},
                           overrides=[*a.overrides, "data.group_by_length=0"])
        hf = _spawn("hf_score", a, **common)
        shared = _spawn("omni_score", a, **common, model=omni["model"])
        unshared = _spawn("omni_score", a, **common, model=omni["model"], no_prefix_sharing=True)
        # Best-of-N: groups of --group-size responses to one prompt, one group per forward pass on both sides.
        groups = {"train": str(group_file(Path(paths["train"]), work / f"{name}.groups.jsonl", a.n_groups,
                                          a.group_size, a.seed))}
        hf_groups = _spawn("hf_score", a, set=name, **groups, groups=True)
        omni_groups = _spawn("omni_score", a, set=name, **groups, model=omni["model"], groups=True)
        omni.pop("model")
        every.pop("model")
        ungrouped.pop("model")
        figures["sets"][name] = {
            "train": {"trl": trl, "omnireward": omni, "ratio": omni["pairs_per_s"] / trl["pairs_per_s"],
                      "rss_ratio": omni["peak_rss_mib"] / trl["peak_rss_mib"], "omnireward_all_layers": every,
                      "all_layers_ratio": every["pairs_per_s"] / trl["pairs_per_s"], "omnireward_ungrouped": ungrouped,
                      "ungrouped_ratio": ungrouped["pairs_per_s"] / trl["pairs_per_s"]},
            "score": {"hf_two_pass": hf, "omnireward": shared, "omnireward_no_prefix_sharing": unshared,
                      "ratio": shared["pairs_per_s"] / hf["pairs_per_s"]},
            "score_groups": {"group_size": a.group_size, "groups": a.n_groups, "hf": hf_groups,
                             "omnireward": omni_groups,
                             "ratio": omni_groups["groups_per_s"] / hf_groups["groups_per_s"]}}
    if a.no_record:
        print(json.dumps(figures, indent=2))
        return
    line = append("vs_trl", figures)
    print(json.dumps(line, indent=2))


if __name__ == "__main__":
    main()
