"""omnireward against its peers on the same work, side by side in one run: training against TRL's
RewardTrainer, scoring against transformers' AutoModelForSequenceClassification on the same weights.

    python benchmarks/vs_trl.py --work /tmp/vtfull   # the full run (an idle machine, roughly 1.5 hours on 2 cores)
    python benchmarks/vs_trl.py --smoke              # tiny sizes, every row end to end; results in a temp folder

The same LM (the embedded SmolLM2-135M-Instruct as an HF folder; `--lm-layers N` keeps its first N
layers on both sides), the same pairs, batch size and epochs, fp32 on CPU on both sides. Every
setting of both sides is written out below and recorded in the results line with the TRL version;
each measurement runs in a fresh process (peak RSS is that process's VmHWM; a training run's is
taken when training ends, before its held-out pairs are scored); times exclude loading.

Training rows, per set:
  (a) `all_layers`: every LM layer and the token embeddings train on both sides;
  (b) `top_layers`: the top N layers (N = the text default, `backbone.train_layers`) train;
      TRL gets the same embeddings and lower layers frozen (`requires_grad_(False)`);
  (c) `defaults`: each tool's own defaults (TRL's RewardConfig, omnireward's composed config), fp32
      on CPU on both, over `--seeds` seeds.
  Rows (a) and (b) give both sides one learning rate (`--lr`), the same schedule (linear warmup
  over 10 % of the steps, cosine to 10 %), AdamW without weight decay, gradient clipping at 1.0,
  no dropout, and the same activation recomputation (`--recompute`). Trainable parameters are
  counted on both sides. Held-out accuracy is on unseen-topic pairs (`--heldout`, ≥ 200 in the
  full run).
Scoring rows, per set, on the weights row (c) trained with the first seed: omnireward's folder
against its `omnireward export` loaded by transformers, which scores each pair in two passes
(batched, sorted by length as omnireward sorts them). The script asserts that the two tools'
margins (pairs) and rewards (best-of-N groups) agree within 1e-3. omnireward's int8 (torch's
dynamic int8 on the LM's linear layers) and bf16 (where the CPU has bf16 instructions) scoring
rows are set against HF fp32, with the share of margins whose sign they keep.

Sets: `text` — the text demo (criteria in the system turn, short answers; held-out pairs from
sources training never shows); `prompt_heavy` — long criteria and prompt (~300 words), short
answers that vary from pair to pair, held-out pairs on topics training never shows. The
conversation is the same for both tools: system = criteria, user = prompt, assistant = response.
Best-of-N groups: `--group-size` answers to one held-out prompt (its pair's two and others of the
set), one group per forward pass on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

AGREE = 1e-3  # the largest margin (or reward) difference allowed between the two tools on the same weights

# Full-size and smoke sizes; every one can be set on the command line.
FULL = {
    "pairs": 128,
    "heldout": 200,
    "epochs": 1,
    "batch": 8,
    "seeds": "0,1,2",
    "lm_layers": None,
    "top_layers": None,
    "n_groups": 32,
    "group_size": 8,
    "default_epochs": None,
}
SMOKE = {
    "pairs": 16,
    "heldout": 16,
    "epochs": 1,
    "batch": 4,
    "seeds": "0",
    "lm_layers": 2,
    "top_layers": 1,
    "n_groups": 2,
    "group_size": 8,
    "default_epochs": 1,
}

# TRL's RewardConfig defaults as read from TRL 1.16; the script refuses to run when the installed
# TRL's differ (row (c) would silently measure other settings).
TRL_DEFAULTS = {
    "learning_rate": 1e-4,
    "lr_scheduler_type": "linear",
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "optim": "adamw_torch_fused",
    "max_grad_norm": 1.0,
    "gradient_checkpointing": True,
    "max_length": 1024,
    "disable_dropout": True,
    "center_rewards_coefficient": None,
    "per_device_train_batch_size": 8,
    "num_train_epochs": 3.0,
}

WORDS = (
    "the model should weigh clarity accuracy safety and tone while it reads the whole request "
    "carefully before it answers every part of the question with care and detail"
).split()
PH_TOPICS = [
    "rivers",
    "bread",
    "chess",
    "comets",
    "violins",
    "tides",
    "bees",
    "glass",
    "maps",
    "clocks",
    "bridges",
    "orchids",
    "volcanoes",
    "sailing",
    "pottery",
    "glaciers",
    "lanterns",
    "owls",
    "mosaics",
    "deserts",
]
PH_HELD_OUT = set(PH_TOPICS[::4])  # topics only the held-out pairs ask about
GOOD_OPEN = ["Here is", "This is", "Below is", "What follows is", "Let me give you", "I have written"]
GOOD_KIND = [
    "a clear and careful answer",
    "a complete, step-by-step answer",
    "a precise answer",
    "a thorough and honest explanation",
    "a well-checked summary",
    "a detailed and correct reply",
]
GOOD_END = [
    "that covers every part of the question.",
    "with each point explained.",
    "that addresses each of the criteria.",
    "with sources you can check.",
    "and a short example at the end.",
    "written with care for your situation.",
]
BAD = [
    "No.",
    "Not my problem.",
    "Figure it out yourself.",
    "Ask someone else about {t}.",
    "Whatever.",
    "I don't care about {t}.",
    "Too long, didn't read.",
    "{t}? No idea, stop asking.",
    "Nope, not doing that.",
    "Look it up.",
    "Why would I answer that?",
    "Boring question about {t}.",
]


def _peak_mib() -> float:
    """This process's peak RSS: the kernel's VmHWM (ru_maxrss would include the parent's at fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the sets ---------------------------------------------------------------------------------
def prompt_heavy(n: int, seed: int, *, held_out: bool) -> list[dict]:
    """Long criteria + long prompt, short answers that vary; the helpful answer wins on either side.
    Held-out pairs ask only about PH_HELD_OUT topics, training pairs never do."""
    rng = random.Random(seed)
    topics = [t for t in PH_TOPICS if (t in PH_HELD_OUT) == held_out]
    rows = []
    for i in range(n):
        t = rng.choice(topics)
        criteria = "Prefer the answer that " + " ".join(rng.choice(WORDS) for _ in range(120)) + "."
        prompt = f"Question {i} about {t}: " + " ".join(rng.choice(WORDS) for _ in range(180)) + "?"
        good = f"{rng.choice(GOOD_OPEN)} {rng.choice(GOOD_KIND)} about {t} {rng.choice(GOOD_END)}"
        bad = rng.choice(BAD).format(t=t)
        first = i % 2 == 0
        rows.append(
            {
                "id": f"ph{'h' if held_out else 't'}{i}",
                "prompt": prompt,
                "criteria": criteria,
                "response1": good if first else bad,
                "response2": bad if first else good,
                "preference": "response1" if first else "response2",
            }
        )
    return rows


def build_sets(work: Path, n: int, heldout: int, seed: int) -> dict[str, dict[str, Path]]:
    from omnireward.data.demo import build_demo, build_split

    sets = {}
    demo = build_demo("text", work / "text", n_pairs=n, seed=seed)
    # Held-out: pairs from sources train.jsonl never shows (the demo's test split, drawn larger).
    build_split("text", demo, "test", heldout, seed=seed)
    sets["text"] = {"train": demo / "train.jsonl", "test": demo / "test.jsonl"}
    d = work / "prompt_heavy"
    d.mkdir(parents=True, exist_ok=True)
    for split, rows in (
        ("train", prompt_heavy(n, seed, held_out=False)),
        ("test", prompt_heavy(heldout, seed + 1, held_out=True)),
    ):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets["prompt_heavy"] = {"train": d / "train.jsonl", "test": d / "test.jsonl"}
    for name, paths in sets.items():  # answers vary: no set may hinge on two fixed strings
        answers = {
            r[k] if isinstance(r[k], str) else r[k].get("text")
            for r in _records(paths["train"])
            for k in ("response1", "response2")
        }
        assert len(answers) > 2, f"{name}: the answers are {len(answers)} fixed strings"
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
        rows.append(
            {
                "id": f"g{i}",
                "prompt": r["prompt"],
                "criteria": r.get("criteria"),
                "responses": [r["response1"], r["response2"], *others],
            }
        )
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def _records(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def _messages(rec: dict, response: str) -> list[dict]:
    from omnireward.export import reward_messages

    return reward_messages(rec["prompt"], response, rec.get("criteria"))


def _text(r) -> str:
    return r if isinstance(r, str) else r.get("text", "")


def _trainable(model) -> int:
    """Trainable parameters, each tensor once (a tied LM head shares the embeddings')."""
    seen, n = set(), 0
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


# ---- the runs (each in its own process) ------------------------------------------------------
def run_trl_train(s: dict) -> dict:
    """TRL RewardTrainer on AutoModelForSequenceClassification(SmolLM2), then its held-out accuracy."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from omnireward.backbones.lm import embedded_lm_dir

    lm = embedded_lm_dir()
    tok = AutoTokenizer.from_pretrained(lm)
    model = AutoModelForSequenceClassification.from_pretrained(lm, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    layers = model.model.layers
    if s["lm_layers"]:  # the first N layers, as omnireward's backbone.lm_layers keeps them
        model.model.layers = layers = layers[: s["lm_layers"]]
        model.config.num_hidden_layers = len(layers)
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[: len(layers)]
    if s["top_layers"] is not None:  # the same frozen set as omnireward's backbone.train_layers
        model.model.embed_tokens.requires_grad_(False)
        for layer in layers[: max(0, len(layers) - s["top_layers"])]:
            layer.requires_grad_(False)
    rows = []
    for r in _records(s["train"]):
        win, lose = (
            (r["response1"], r["response2"]) if r["preference"] == "response1" else (r["response2"], r["response1"])
        )
        rows.append(
            {
                "prompt": _messages(r, "")[:-1],
                "chosen": [{"role": "assistant", "content": _text(win)}],
                "rejected": [{"role": "assistant", "content": _text(lose)}],
            }
        )
    config = dict(s["config"])
    args = RewardConfig(
        output_dir=str(Path(s["work"]) / "trl"),
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        seed=s["seed"],
        **config,
    )
    trainable = _trainable(model)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    peak = _peak_mib()  # training's peak, before the held-out pairs are scored
    acc = _hf_accuracy(model.eval(), tok, _records(s["test"]), s["batch"])
    trained = sum(p.numel() for p in trainer.optimizer.state) if trainer.optimizer is not None else None
    return {
        "pairs_per_s": len(rows) * float(args.num_train_epochs) / seconds,
        "train_seconds": seconds,
        "test_accuracy": acc,
        "peak_rss_mib": round(peak),
        "trainable_params": trainable,
        "trained_params": trained,
        "trl": trl.__version__,
        "settings": {
            "learning_rate": args.learning_rate,
            "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
            "lr_scheduler_kwargs": args.lr_scheduler_kwargs,
            "warmup_steps": args.warmup_steps,
            "weight_decay": args.weight_decay,
            "optim": str(getattr(args.optim, "value", args.optim)),
            "max_grad_norm": args.max_grad_norm,
            "gradient_checkpointing": args.gradient_checkpointing,
            "gradient_checkpointing_kwargs": args.gradient_checkpointing_kwargs,
            "bf16": args.bf16,
            "fp16": args.fp16,
            "weights_dtype": str(model.dtype).replace("torch.", ""),
            "max_length": args.max_length,
            "disable_dropout": args.disable_dropout,
            "center_rewards_coefficient": args.center_rewards_coefficient,
            "batch": args.per_device_train_batch_size,
            "epochs": float(args.num_train_epochs),
            "lm_layers": len(layers),
            "top_layers": s["top_layers"],
            "seed": s["seed"],
        },
    }


def _hf_scores(model, tok, recs: list[dict], batch: int) -> list[tuple[float, float]]:
    """Two passes per batch (all response1, then all response2), right-padded, no grad; batches
    sorted by length as omnireward sorts records (`prompts.length_hint`). Rewards in input order."""
    import torch

    from omnireward.data.records import record_from_dict
    from omnireward.prompts import length_hint

    tok.padding_side = "right"
    order = sorted(range(len(recs)), key=lambda i: length_hint(record_from_dict(recs[i])))
    out: dict[int, tuple[float, float]] = {}
    with torch.no_grad():
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            passes = []
            for side in ("response1", "response2"):
                texts = [tok.apply_chat_template(_messages(recs[i], _text(recs[i][side])), tokenize=False) for i in idx]
                enc = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
                passes.append(model(**enc).logits[:, 0].tolist())
            out.update(zip(idx, zip(*passes)))
    return [out[i] for i in range(len(recs))]


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


def run_hf_score(s: dict) -> dict:
    """transformers on the `omnireward export` folder, fp32: pairs in two passes, or groups."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(s["export"])
    model = AutoModelForSequenceClassification.from_pretrained(s["export"], dtype=torch.float32).eval()
    recs = _records(s["data"])
    if s["groups"]:
        _hf_group_scores(model, tok, recs[:1])  # warm-up, untimed (as on the omnireward side)
        t0 = time.time()
        rewards = _hf_group_scores(model, tok, recs)
    else:
        t0 = time.time()
        rewards = [list(x) for x in _hf_scores(model, tok, recs, s["batch"])]
    seconds = time.time() - t0
    Path(s["rewards_out"]).write_text(json.dumps({r["id"]: x for r, x in zip(recs, rewards)}))
    return {
        "groups_per_s" if s["groups"] else "pairs_per_s": len(recs) / seconds,
        "score_seconds": seconds,
        "precision": "fp32",
        "batch": 1 if s["groups"] else s["batch"],
    }


def run_export(s: dict) -> dict:
    from omnireward.export import export

    export(s["model"], s["export"], dtype="float32")
    return {"export": s["export"]}


class _Counts:
    """What the optimiser trains and whether activations are recomputed, read when training starts."""

    def __init__(self):
        self.figures: dict = {}

    def callback(self):
        import lightning as L

        counts = self

        class Count(L.Callback):
            def on_train_start(self, trainer, pl_module):
                lm = pl_module.model.backbone.language_model()
                counts.figures = {
                    "trainable_params": _trainable(pl_module),
                    "gradient_checkpointing": bool(getattr(lm, "is_gradient_checkpointing", False)),
                    "precision": str(trainer.precision),
                    "weights_dtype": str(next(lm.parameters()).dtype).replace("torch.", ""),
                }

        return Count()


def run_omni_train(s: dict) -> dict:
    from omnireward.config import compose_config
    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    out = Path(s["out"])
    overrides = [
        f"data.train={s['train']}",
        "data.val=null",
        f"output_dir={out}",
        f"seed={s['seed']}",
        "trainer.accelerator=cpu",
        "logger.tensorboard=false",
        *s["overrides"],
    ]
    cfg = compose_config(overrides)
    counts = _Counts()
    train(cfg, callbacks=[counts.callback()])
    peak = _peak_mib()  # training's peak (model folder written), before the held-out pairs are scored
    summary = json.loads((out / "train_summary.json").read_text())
    n, epochs = summary["train_pairs"], summary["epochs"]
    test = score_file(
        s["test"],
        out,
        out.with_name(out.name + ".test.jsonl"),
        batch_size=s["batch"],
        device="cpu",
        show_progress=False,
    )
    b, m, t = cfg.backbone, cfg.model, cfg.trainer
    return {
        "pairs_per_s": n * epochs / summary["train_seconds"],
        "train_seconds": summary["train_seconds"],
        "test_accuracy": test["accuracy_without_ties"],
        "test_pairs": test["n"],
        "model": str(out),
        "peak_rss_mib": round(peak),
        "trainable_params": counts.figures.get("trainable_params"),
        "settings": {
            "lr_head": m.lr,
            "lr_lm": m.lm_lr,
            "schedule": "linear warmup, cosine to 10 %",
            "warmup_ratio": m.warmup_ratio,
            "weight_decay": m.weight_decay,
            "optimizer": "AdamW (torch)",
            "gradient_clip_val": t.gradient_clip_val,
            "precision": counts.figures.get("precision"),
            "weights_dtype": counts.figures.get("weights_dtype"),
            "gradient_checkpointing": counts.figures.get("gradient_checkpointing"),
            "gradient_checkpointing_config": b.get("gradient_checkpointing"),
            "train_layers": b.get("train_layers"),
            "freeze_embeddings": b.get("freeze_embeddings"),
            "lm_layers": b.get("lm_layers"),
            "max_length": b.get("max_length"),
            "head_dropout": cfg.head.get("dropout"),
            "center_weight": m.get("center_weight"),
            "prefix_sharing": m.get("prefix_sharing"),
            "group_by_length": cfg.data.get("group_by_length"),
            "batch": cfg.data.batch_size,
            "epochs": epochs,
            "seed": s["seed"],
        },
    }


def run_omni_score(s: dict) -> dict:
    from omnireward.data.datamodule import load_records
    from omnireward.quant import precision_details
    from omnireward.scoring.bt import reward_records
    from omnireward.scoring.load import load_for_scoring

    model = load_for_scoring(s["model"], quant=s["quant"], device="cpu")
    model.prefix_sharing = s["prefix_sharing"]
    recs = load_records(s["data"])
    if s["groups"]:  # one group (N sequences) per forward pass, as the HF side runs them
        reward_records(model, recs[:1], batch_size=1, show_progress=False)  # warm-up, untimed
        t0 = time.time()
        lines = reward_records(model, recs, batch_size=1, show_progress=False)
        seconds = time.time() - t0
        Path(s["rewards_out"]).write_text(json.dumps({x["id"]: x["rewards"] for x in lines}))
        return {"groups_per_s": len(recs) / seconds, "score_seconds": seconds, "batch": 1}
    batch = model.collate_pairs(recs[: s["batch"]])
    tokens = int(batch.tensors["attention_mask"].sum()) / min(s["batch"], len(recs))
    t0 = time.time()
    lines = reward_records(model, recs, batch_size=s["batch"], show_progress=False)
    seconds = time.time() - t0
    Path(s["rewards_out"]).write_text(json.dumps({x["id"]: [x["reward1"], x["reward2"]] for x in lines}))
    out = {
        "pairs_per_s": len(recs) / seconds,
        "score_seconds": seconds,
        "tokens_per_pair": tokens,
        "batch": s["batch"],
        "prefix_sharing": s["prefix_sharing"],
        "precision": s["quant"],
    }
    if s["quant"] in ("int8", "bf16"):
        out["precision_details"] = precision_details(s["quant"])
    return out


RUNS = {
    "trl_train": run_trl_train,
    "hf_score": run_hf_score,
    "omni_train": run_omni_train,
    "omni_score": run_omni_score,
    "export": run_export,
}


def _child(run: str, spec: str) -> None:
    import torch

    s = json.loads(spec)
    torch.manual_seed(s.get("seed", 0))
    result = RUNS[run](s)
    result.setdefault("peak_rss_mib", round(_peak_mib()))
    print("RESULT " + json.dumps(result), flush=True)


def _spawn(run: str, **spec) -> dict:
    cmd = [sys.executable, __file__, "--child", run, "--spec", json.dumps(spec)]
    print(f"$ {run} {spec.get('label', '')}", flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if p.returncode != 0 or line is None:
        raise SystemExit(f"{run} ({spec.get('label', '')}) failed:\n{p.stderr[-3000:]}")
    out = json.loads(line[len("RESULT ") :])
    print(run, {k: v for k, v in out.items() if k != "settings"}, flush=True)
    return out


# ---- the rows --------------------------------------------------------------------------------
def same_work(a, top_layers: int | None) -> tuple[list[str], dict]:
    """omnireward overrides and TRL RewardConfig settings of rows (a) and (b): the same work."""
    recompute = a.recompute == "on"
    omni = [
        f"backbone.gradient_checkpointing={str(recompute).lower()}",
        f"model.lr={a.lr}",
        f"model.lm_lr={a.lr}",
        "model.warmup_ratio=0.1",
        "model.weight_decay=0.0",
        "trainer.gradient_clip_val=1.0",
        "head.dropout=0.0",
        "model.center_weight=0.0",
        f"data.batch_size={a.batch}",
        f"trainer.max_epochs={a.epochs}",
        "backbone.max_length=1024",
    ]
    if top_layers is None:
        omni += ["backbone.train_layers=null", "backbone.freeze_embeddings=false"]
    else:
        omni += [f"backbone.train_layers={top_layers}", "backbone.freeze_embeddings=true"]
    trl = {
        "learning_rate": a.lr,
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
        "warmup_steps": 0.1,
        "weight_decay": 0.0,
        "optim": "adamw_torch",
        "max_grad_norm": 1.0,
        "gradient_checkpointing": recompute,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if recompute else None,
        "bf16": False,
        "fp16": False,
        "max_length": 1024,
        "disable_dropout": True,
        "center_rewards_coefficient": None,
        "per_device_train_batch_size": a.batch,
        "num_train_epochs": a.epochs,
    }
    return omni, trl


def defaults(a) -> tuple[list[str], dict]:
    """Row (c): each tool's defaults, fp32 on CPU (TRL told bf16=False). Smoke runs shorten both to
    `default_epochs` epochs."""
    trl = {**TRL_DEFAULTS, "bf16": False, "fp16": False}
    omni: list[str] = []
    if a.default_epochs:
        trl["num_train_epochs"] = a.default_epochs
        omni.append(f"trainer.max_epochs={a.default_epochs}")
    return omni, trl


def check_trl_defaults() -> None:
    import dataclasses

    from trl import RewardConfig

    have = {f.name: f.default for f in dataclasses.fields(RewardConfig)}
    differ = {k: (v, have.get(k)) for k, v in TRL_DEFAULTS.items() if have.get(k) != v}
    if differ:
        raise SystemExit(
            f"TRL's RewardConfig defaults changed (expected, installed): {differ}; "
            "update TRL_DEFAULTS after checking what row (c) now compares"
        )


def _ratio(a: dict, b: dict, key: str = "pairs_per_s") -> float:
    return a[key] / b[key]


def train_rows(a, name: str, paths: dict, work: Path) -> tuple[dict, str]:
    """Rows (a), (b), (c) of one set; returns the figures and the omnireward folder row (c) trained
    with the first seed (the weights the scoring rows use)."""
    lm_layers = [f"backbone.lm_layers={a.lm_layers}"] if a.lm_layers else []
    common = {
        "train": paths["train"],
        "test": paths["test"],
        "batch": a.batch,
        "work": str(work),
        "lm_layers": a.lm_layers,
    }
    seeds = [int(x) for x in a.seeds.split(",")]
    rows = {}
    for row, top in (("all_layers", None), ("top_layers", a.top_layers)):
        omni_o, trl_c = same_work(a, top)
        trl = _spawn("trl_train", **common, seed=seeds[0], top_layers=top, config=trl_c, label=f"{name} {row}")
        omni = _spawn(
            "omni_train",
            **common,
            seed=seeds[0],
            out=str(work / f"omni-{name}-{row}"),
            overrides=[*lm_layers, *omni_o],
            label=f"{name} {row}",
        )
        omni.pop("model")
        rows[row] = {
            "omnireward": omni,
            "trl": trl,
            "ratio": _ratio(omni, trl),
            "rss_ratio": omni["peak_rss_mib"] / trl["peak_rss_mib"],
            "same_trainable_params": omni["trainable_params"] == trl["trainable_params"],
        }
        print(
            f"{name} {row}: trainable parameters omnireward {omni['trainable_params']:,}, "
            f"TRL {trl['trainable_params']:,}",
            flush=True,
        )
    omni_o, trl_c = defaults(a)
    runs = {"omnireward": [], "trl": []}
    first_model = None
    for seed in seeds:
        trl = _spawn(
            "trl_train", **common, seed=seed, top_layers=None, config=trl_c, label=f"{name} defaults seed {seed}"
        )
        omni = _spawn(
            "omni_train",
            **common,
            seed=seed,
            out=str(work / f"omni-{name}-defaults-s{seed}"),
            overrides=[*lm_layers, *omni_o],
            label=f"{name} defaults seed {seed}",
        )
        first_model = first_model or omni["model"]
        omni.pop("model")
        runs["omnireward"].append(omni)
        runs["trl"].append(trl)
    print(
        f"{name} defaults: trainable parameters omnireward {runs['omnireward'][0]['trainable_params']:,}, "
        f"TRL {runs['trl'][0]['trainable_params']:,}",
        flush=True,
    )
    rows["defaults"] = {"seeds": seeds, **runs, "mean": {side: _means(r) for side, r in runs.items()}}
    m = rows["defaults"]["mean"]
    rows["defaults"]["ratio"] = m["omnireward"]["pairs_per_s"] / m["trl"]["pairs_per_s"]
    return rows, first_model


def _means(runs: list[dict]) -> dict:
    out = {}
    for key in ("pairs_per_s", "test_accuracy", "peak_rss_mib"):
        vals = [r[key] for r in runs]
        out[key] = statistics.fmean(vals)
        out[key + "_range"] = [min(vals), max(vals)]
    return out


def score_rows(a, name: str, paths: dict, model: str, work: Path) -> dict:
    """The same weights scored by both tools; the margins must agree within AGREE."""
    from omnireward.errors import ConfigError
    from omnireward.quant import agreement, check_cpu_precision

    export_dir = str(work / f"export-{name}")
    _spawn("export", model=model, export=export_dir, label=name)
    pairs = paths["test"]
    hf = _spawn(
        "hf_score",
        export=export_dir,
        data=pairs,
        batch=a.batch,
        groups=False,
        rewards_out=str(work / f"{name}.hf.json"),
        label=f"{name} pairs",
    )
    hf_r = json.loads((work / f"{name}.hf.json").read_text())
    out = {"pairs": len(hf_r), "hf_two_pass": hf}

    def lines(rewards: dict) -> list[dict]:
        return [{"id": k, "reward1": v[0], "reward2": v[1], "margin": v[0] - v[1]} for k, v in sorted(rewards.items())]

    for key, quant, sharing in (
        ("omnireward", "none", True),
        ("omnireward_no_prefix_sharing", "none", False),
        ("omnireward_int8", "int8", True),
        ("omnireward_bf16", "bf16", True),
    ):
        if quant != "none":
            try:
                check_cpu_precision(quant, "cpu")
            except ConfigError as e:  # bf16 on a CPU without bf16 instructions: the line says so
                out[key] = {"skipped": str(e).split(": ", 1)[-1]}
                continue
        file = work / f"{name}.{key}.json"
        r = _spawn(
            "omni_score",
            model=model,
            data=pairs,
            quant=quant,
            prefix_sharing=sharing,
            batch=a.batch,
            groups=False,
            rewards_out=str(file),
            label=f"{name} {key}",
        )
        got = json.loads(file.read_text())
        diff = max(abs((got[k][0] - got[k][1]) - (v[0] - v[1])) for k, v in hf_r.items())
        r["ratio"] = _ratio(r, hf)
        if quant == "none":
            assert diff <= AGREE, f"{name} {key}: margins differ from HF's on the same weights by {diff:.3g}"
            r["max_margin_diff_vs_hf"] = diff
        else:
            r["agreement_with_hf_fp32"] = agreement(lines(hf_r), lines(got))
        out[key] = r
    groups = str(group_file(Path(pairs), work / f"{name}.groups.jsonl", a.n_groups, a.group_size, a.seed))
    hf_g = _spawn(
        "hf_score",
        export=export_dir,
        data=groups,
        batch=1,
        groups=True,
        rewards_out=str(work / f"{name}.hf.groups.json"),
        label=f"{name} groups",
    )
    omni_g = _spawn(
        "omni_score",
        model=model,
        data=groups,
        quant="none",
        prefix_sharing=True,
        batch=1,
        groups=True,
        rewards_out=str(work / f"{name}.omni.groups.json"),
        label=f"{name} groups",
    )
    hg = json.loads((work / f"{name}.hf.groups.json").read_text())
    og = json.loads((work / f"{name}.omni.groups.json").read_text())
    gdiff = max(abs(x - y) for k in hg for x, y in zip(hg[k], og[k]))
    assert gdiff <= AGREE, f"{name} groups: rewards differ from HF's on the same weights by {gdiff:.3g}"
    return {
        "pairs": out,
        "groups": {
            "group_size": a.group_size,
            "groups": len(hg),
            "hf": hf_g,
            "omnireward": omni_g,
            "ratio": _ratio(omni_g, hf_g, "groups_per_s"),
            "max_reward_diff_vs_hf": gdiff,
        },
    }


def _clear_outputs(work: Path) -> None:
    """Each measurement starts from nothing: remove the run folders, exports and scores of an earlier run."""
    if not work.is_dir():
        return
    for p in [*work.glob("omni-*"), *work.glob("export-*"), *work.glob("*.json"), work / "trl"]:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes (2 LM layers, 16 pairs, one seed): every row "
        "end to end in minutes; the results line goes to WORK/results, never benchmarks/results",
    )
    ap.add_argument("--sets", default="text,prompt_heavy")
    ap.add_argument("--pairs", type=int, help="training pairs per set (full: 128)")
    ap.add_argument("--heldout", type=int, help="held-out unseen-topic pairs per set (full: 200)")
    ap.add_argument("--epochs", type=int, help="epochs of rows (a) and (b) (full: 1); row (c) uses each tool's default")
    ap.add_argument("--batch", type=int, help="pairs per training and scoring batch (full: 8)")
    ap.add_argument("--seeds", help="row (c) seeds, comma-separated (full: 0,1,2)")
    ap.add_argument("--lm-layers", type=int, help="keep the LM's first N layers on both sides (full: all 30)")
    ap.add_argument(
        "--top-layers", type=int, help="row (b): layers training (full: backbone.train_layers of the text default)"
    )
    ap.add_argument("--n-groups", type=int, help="best-of-N groups scored per set (full: 32)")
    ap.add_argument("--group-size", type=int, help="responses per best-of-N group (full: 8)")
    ap.add_argument("--default-epochs", type=int, help=argparse.SUPPRESS)
    ap.add_argument(
        "--lr", type=float, default=1e-4, help="rows (a), (b): one learning rate for every parameter, both sides"
    )
    ap.add_argument(
        "--recompute",
        choices=("off", "on"),
        default="off",
        help="rows (a), (b): activation recomputation (gradient checkpointing), the same on both sides",
    )
    ap.add_argument("--seed", type=int, default=3, help="seed of the sets")
    ap.add_argument(
        "--work", default=None, help="scratch folder (default: a new temporary one); its earlier outputs are cleared"
    )
    ap.add_argument(
        "--results-dir",
        default=None,
        help="where the results line goes (default: benchmarks/results; with --smoke: WORK/results)",
    )
    ap.add_argument("--no-record", action="store_true", help="print the figures, append no results line")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return _child(a.child, a.spec)
    for k, v in (SMOKE if a.smoke else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.top_layers is None:
        from omnireward.config import compose_config

        a.top_layers = compose_config([]).backbone.train_layers
    check_trl_defaults()
    import trl
    from results_log import append

    if a.work is None:
        a.work = tempfile.mkdtemp(prefix="omnireward-vs-trl-")
    work = Path(a.work)
    _clear_outputs(work)
    sets = build_sets(work, a.pairs, a.heldout, a.seed)
    settings = {
        "smoke": a.smoke,
        "pairs": a.pairs,
        "heldout_pairs": a.heldout,
        "epochs": a.epochs,
        "batch": a.batch,
        "seeds": a.seeds,
        "lm": "embedded SmolLM2-135M-Instruct",
        "lm_layers": a.lm_layers or "all",
        "top_layers": a.top_layers,
        "lr": a.lr,
        "recompute": a.recompute,
        "device": "cpu",
        "precision": "fp32 (both sides; TRL bf16=False)",
        "trl": trl.__version__,
        "margin_agreement_tolerance": AGREE,
    }
    figures = {"settings": settings, "sets": {}}
    for name in a.sets.split(","):
        paths = {k: str(v) for k, v in sets[name].items()}
        train, model = train_rows(a, name, paths, work)
        figures["sets"][name] = {"train": train, "score": score_rows(a, name, paths, model, work)}
    if a.no_record:
        print(json.dumps(figures, indent=2))
        return
    results_dir = a.results_dir or (str(work / "results") if a.smoke else None)
    line = append("vs_trl", figures, results_dir=results_dir)
    print(json.dumps(line, indent=2))
    print(
        f"results line appended to {Path(results_dir) / 'vs_trl.jsonl' if results_dir else 'benchmarks/results/vs_trl.jsonl'}"
    )


if __name__ == "__main__":
    main()
