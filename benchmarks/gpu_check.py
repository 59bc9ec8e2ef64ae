"""A GPU check in one run: nf4 against bf16 scoring, a bf16 BT training step against TRL's
RewardTrainer, and `omnireward serve` at 1 and 32 clients, on an LM of Qwen2.5-7B's architecture
with random weights built on the GPU. Start it with benchmarks/gpu_check.sh, whose header says how
to run it on a machine without network.

    python benchmarks/gpu_check.py                       # needs a CUDA GPU
    python benchmarks/gpu_check.py --tiny                # the same code on CPU: a 2-layer Qwen2, hidden 64
    python benchmarks/gpu_check.py --only scoring,serve  # a subset of the three parts

Each part runs in its own process (a GPU peak is that process's own) and appends one line to
`gpu_check.jsonl` through results_log.append; the line's `check` names the part, its `status` is
ok, partial (a measurement skipped, with its reason) or error (with the end of the part's log):

- `nf4_vs_bf16`: the LM is built in bf16 on the device and wrapped as the HF backbone of a BT
  reward model (omnireward.reward_model.RewardModel, the config's head); its pairs are scored
  (omnireward.scoring.bt.reward_records, prefix sharing on). Its decoder's linear layers are then
  quantised in place to nf4 with double quantisation (omnireward.quant.quantize_lm with the
  conf/quant/4bit option; compute dtype bf16 on GPU, fp32 on CPU) and the same pairs scored again.
  Per setting: weights, GPU memory allocated after loading and at its peak while scoring, pairs/s;
  and the share of pairs whose margin keeps its sign and Kendall's tau (omnireward.quant.agreement).
  Before quantising, the bf16 model is saved as a model folder; `nf4_loaded_from_folder` loads it
  as `omnireward score --quant 4bit` does (omnireward.scoring.load.load_for_scoring, quantised while
  loading) and scores the pairs once more.
- `train_vs_trl`: omnireward's BTModule (config model=bt, bf16-mixed precision over bf16 weights,
  the GPU trainer) under a Lightning Trainer, against TRL's RewardTrainer (bf16=True over bf16
  weights) on AutoModelForSequenceClassification of the same config: the same pairs, batch size,
  LM learning rate and trainable parameters (the top `--train-layers` decoder layers, the final
  norm and the head: omnireward.backbones.base.train_top_layers on both sides). Timed: the steps
  after the warm-up ones, from the end of one to the end of the last (data loading included on
  both sides), with the process's peak GPU memory over the run.
- `serve`: `omnireward serve` on the saved bf16 folder as its own process (benchmarks/serve_load.py's
  Server), driven by serve_load's `level` (N concurrent clients sending OpenRLHF-shaped requests of
  one rollout each) at 1 and 32 clients.

The pairs are made here: a prompt and two answers of random words from a fixed list, and the
tokenizer is a byte-level BPE trained here on that list, so each word is one token and sequence
lengths are set in tokens (recorded in every line, with the model's sizes, dtype, batch sizes and
the TRL and bitsandbytes versions). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MIB = 1024**2
PARTS = ("scoring", "train", "serve")
CHECK_NAMES = {"scoring": "nf4_vs_bf16", "train": "train_vs_trl", "serve": "serve"}

# One token each (the tokenizer is trained on them); prompts and answers are drawn from them.
WORDS = (
    "the a an and or but if then so because when while where which who what how why this that these those "
    "is are was were be been being have has had do does did can could should would will may might must "
    "model answer question reward pair score train test data value result reason step method example "
    "clear careful helpful safe polite short long better worse correct wrong true false first second "
    "image video audio sound text picture scene object person animal tree river road city house car "
    "red green blue small large bright dark quick slow early late new old good bad simple complex "
    "read write speak listen look see hear think know learn explain describe compare choose prefer "
    "one two three four five six seven eight nine ten many few more less most least all some none"
).split()


# ---- settings -------------------------------------------------------------------------------
def qwen25_7b() -> dict:
    from memory import QWEN25

    return {**QWEN25["Qwen2.5-7B"], "max_position_embeddings": 32768, "rms_norm_eps": 1e-6}


def presets(tiny: bool) -> dict:
    if tiny:
        return dict(
            arch="Qwen2, tiny: 2 layers, hidden 64 (random weights)",
            model_type="qwen2",
            config=dict(
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                tie_word_embeddings=True,
                max_position_embeddings=4096,
                rms_norm_eps=1e-6,
            ),
            score_pairs=16,
            score_batch=8,
            prompt_words=24,
            response_words=8,
            train_batch=4,
            warmup_steps=1,
            timed_steps=3,
            train_layers=1,
            lr=1e-4,
            lm_lr=1e-5,
            gradient_checkpointing=False,
            max_length=1024,
            serve_clients=(1, 32),
            serve_requests=(6, 32),
            serve_warmup=2,
            serve_max_seconds=60.0,
            max_batch_size=32,
            batch_timeout=0.01,
            child_timeout=600,
        )
    return dict(
        arch="Qwen2.5-7B architecture (random weights)",
        model_type="qwen2",
        config=qwen25_7b(),
        score_pairs=256,
        score_batch=16,
        prompt_words=480,
        response_words=120,
        train_batch=8,
        warmup_steps=3,
        timed_steps=10,
        train_layers=8,
        lr=1e-4,
        lm_lr=1e-5,
        gradient_checkpointing=False,
        max_length=4096,
        serve_clients=(1, 32),
        serve_requests=(32, 256),
        serve_warmup=4,
        serve_max_seconds=120.0,
        max_batch_size=32,
        batch_timeout=0.01,
        child_timeout=420,
    )


# ---- data and tokenizer (made here, nothing downloaded) -------------------------------------
def make_pairs(n: int, prompt_words: int, response_words: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = " ".join(rng.choice(WORDS) for _ in range(prompt_words))
        r1, r2 = (" ".join(rng.choice(WORDS) for _ in range(response_words)) for _ in range(2))
        rows.append(
            {
                "id": f"p{i}",
                "prompt": prompt,
                "response1": r1,
                "response2": r2,
                "preference": "response1" if i % 2 == 0 else "response2",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CHAT_TEMPLATE = (
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_tokenizer(out: Path):
    """A Qwen2 byte-level BPE trained on WORDS (each word one token) with a ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [" ".join(WORDS), "system user assistant", "\n".join(WORDS)]
    bpe.train_from_iterator(
        corpus * 4,
        trainers.BpeTrainer(vocab_size=4096, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    model = json.loads(bpe.to_str())["model"]
    tok = Qwen2Tokenizer(
        vocab=dict(model["vocab"]),
        merges=[tuple(m) for m in model["merges"]],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    return tok


def token_lengths(tok, rows: list[dict]) -> dict:
    """Mean tokens of the prompt (its chat turn + the assistant header), of an answer, and of one
    scored sequence (prompt + answer), as both tools render them."""
    from omnireward.export import reward_messages

    def n(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    prompts, seqs = [], []
    for r in rows[:32]:
        msgs = reward_messages(r["prompt"], r["response1"])
        prompts.append(n(tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)))
        seqs.append(n(tok.apply_chat_template(msgs, tokenize=False)))
    p, s = statistics.mean(prompts), statistics.mean(seqs)
    return {
        "prompt_tokens": round(p, 1),
        "response_tokens": round(s - p, 1),
        "sequence_tokens": round(s, 1),
        "packed_pair_tokens": round(2 * s - p, 1),
    }


# ---- the model, built on the device ---------------------------------------------------------
def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lm_config(s: dict, tok, sequence_classification: bool = False):
    from transformers import AutoConfig

    extra = {"num_labels": 1} if sequence_classification else {}
    vocab = s["config"].get("vocab_size") or -(-len(tok) // 64) * 64
    return AutoConfig.for_model(
        s["model_type"],
        **{**s["config"], "vocab_size": vocab},
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        **extra,
    )


def build_lm(s: dict, tok, dev, seed: int, sequence_classification: bool = False):
    """The LM with random weights (transformers' own init), in bf16, built directly on `dev`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if sequence_classification else AutoModelForCausalLM
    torch.manual_seed(seed)
    with torch.device(dev):
        return cls.from_config(lm_config(s, tok, sequence_classification), dtype=torch.bfloat16)


def model_settings(s: dict, tok, lm=None) -> dict:
    cfg = lm_config(s, tok)
    out = {
        "architecture": s["arch"],
        "model_type": cfg.model_type,
        **{
            k: getattr(cfg, k)
            for k in (
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "vocab_size",
                "tie_word_embeddings",
            )
        },
    }
    if lm is not None:
        out["lm_params"] = sum(p.numel() for p in lm.parameters())
    return out


def omni_config(a, s: dict, extra: list[str] = ()):
    """The training/model-folder config: backbone=hf over the saved LM folder, bf16 weights, the GPU
    trainer's bf16-mixed precision (the default trainer on CPU, with the same precision)."""
    from omnireward.config import compose_config

    trainer = ["trainer=gpu"] if device().type == "cuda" else ["trainer.accelerator=cpu"]
    return compose_config(
        [
            "backbone=hf",
            f"backbone.name_or_path={Path(a.work) / 'model' / 'hf'}",
            "backbone.dtype=bfloat16",
            f"backbone.max_length={s['max_length']}",
            *trainer,
            "trainer.precision=bf16-mixed",
            f"output_dir={Path(a.work) / 'model'}",
            f"seed={a.seed}",
            *extra,
        ]
    )


def reward_model(lm, tok, cfg, s: dict):
    """Backbone (the HF backbone over the in-memory LM) + the config's head: omnireward's RewardModel."""
    from omnireward.backbones.hf import HFBackbone
    from omnireward.backbones.hf_family import TEXT
    from omnireward.backbones.hf_processor import HFProcessor
    from omnireward.config import build
    from omnireward.reward_model import RewardModel

    backbone = HFBackbone(lm, HFProcessor(tok, TEXT, max_length=s["max_length"]))
    return RewardModel(backbone, build(cfg.head)(backbone.hidden_size))


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _gpu(stat: str) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(getattr(torch.cuda, stat)() / MIB, 1)


def _reset_peak() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ---- part 1: nf4 against bf16 scoring -------------------------------------------------------
def score_timed(model, recs: list, batch: int) -> tuple[dict, list[dict]]:
    from memory import weights_bytes

    from omnireward.scoring.bt import reward_records

    reward_records(model, recs[:batch], batch_size=batch, show_progress=False)  # warm-up (kernels, allocator)
    _reset_peak()
    allocated = _gpu("memory_allocated")
    t0 = time.perf_counter()
    lines = reward_records(model, recs, batch_size=batch, show_progress=False)
    _sync()
    seconds = time.perf_counter() - t0
    return {
        "pairs_per_s": len(recs) / seconds,
        "seconds": round(seconds, 3),
        "weights_mib": round(weights_bytes(model) / MIB, 1),
        "gpu_allocated_mib": allocated,
        "peak_gpu_mib": _gpu("max_memory_allocated"),
        "peak_gpu_reserved_mib": _gpu("max_memory_reserved"),
    }, lines


def run_scoring(a, s: dict) -> dict:
    from omnireward.data.datamodule import load_records
    from omnireward.quant import agreement

    dev = device()
    tok = load_tokenizer(a)
    cfg = omni_config(a, s)
    t0 = time.perf_counter()
    lm = build_lm(s, tok, dev, a.seed)
    model = reward_model(lm, tok, cfg, s).to(dev).eval()
    _sync()
    build_s = time.perf_counter() - t0
    out = {
        "settings": {
            **model_settings(s, tok, lm),
            "device": str(dev),
            "pairs": s["score_pairs"],
            "batch_pairs": s["score_batch"],
            "prefix_sharing": model.prefix_sharing,
            "build_on_device_s": round(build_s, 1),
        }
    }
    folder = Path(a.work) / "model"
    if a.save_folder:
        t0 = time.perf_counter()
        model.save_pretrained(folder, cfg, {"mean": 0.0, "std": 1.0, "n": 0})
        out["settings"]["save_folder_s"] = round(time.perf_counter() - t0, 1)
    recs = load_records(a.pairs)
    out["bf16"], full = score_timed(model, recs, s["score_batch"])
    out["bf16"]["dtype"] = str(lm.dtype).replace("torch.", "")
    reason = nf4_unavailable()
    if reason:
        out["nf4"] = {"skipped": reason}
        return out
    out["nf4"], quant = _guarded(functools.partial(score_nf4_in_place, lm, model, recs, s, dev), dev)
    if quant is not None:
        out["agreement"] = agreement(full, quant)
        out["ratios"] = {
            "peak_gpu": (
                out["nf4"]["peak_gpu_mib"] / out["bf16"]["peak_gpu_mib"] if out["bf16"]["peak_gpu_mib"] else None
            ),
            "weights": out["nf4"]["weights_mib"] / out["bf16"]["weights_mib"],
            "speed": out["nf4"]["pairs_per_s"] / out["bf16"]["pairs_per_s"],
        }
    del model, lm
    if a.save_folder:  # `omnireward score --quant 4bit`'s loader: the folder quantised while it loads
        out["nf4_loaded_from_folder"], loaded = _guarded(lambda: score_nf4_from_folder(folder, recs, s, dev), dev)
        if loaded is not None:
            out["nf4_loaded_from_folder"]["agreement"] = agreement(full, loaded)
    out["process_peak_rss_mib"] = peak_rss_mib()
    return out


def nf4_unavailable() -> str | None:
    """Why nf4 cannot run here (bitsandbytes missing or unusable), or None."""
    from omnireward.errors import DependencyError
    from omnireward.quant import import_bnb

    try:
        import_bnb()
    except DependencyError as e:
        return str(e)
    return None


def _guarded(run, dev) -> tuple[dict, list | None]:
    """(figures, score lines) of `run`; a failure on the GPU is an error of this measurement, on the
    CPU a skip with its reason (bitsandbytes' CPU backend may lack what a GPU has)."""
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - recorded in the results line, the other figures stay
        msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        _reset_peak()
        return ({"error": msg} if dev.type == "cuda" else {"skipped": f"nf4 did not run on the CPU: {msg}"}), None


def _bnb_figures(q, dev, n_layers: int) -> dict:
    import bitsandbytes

    return {
        "quant_type": q.quant_type,
        "double_quant": q.double_quant,
        "layers_quantised": n_layers,
        "compute_dtype": str(q.dtype_for(dev)).replace("torch.", ""),
        "bitsandbytes": bitsandbytes.__version__,
        "unquantised": "embeddings, LM head, norms, reward head",
    }


def _check_quantised(lm, dev) -> int:
    layers = [m for m in lm.modules() if type(getattr(m, "weight", None)).__name__ == "Params4bit"]
    if not layers or any(m.weight.device.type != dev.type for m in layers):
        raise RuntimeError(
            f"expected 4-bit layers on {dev}, found {len(layers)} on {sorted({m.weight.device.type for m in layers})}"
        )
    return len(layers)


def score_nf4_in_place(lm, model, recs, s: dict, dev) -> tuple[dict, list]:
    """The LM's decoder linears quantised in place (omnireward.quant.quantize_lm), then the same pairs."""
    from omnireward.quant import quant_option, quantize_lm

    q = quant_option("4bit")
    t0 = time.perf_counter()
    quantize_lm(lm, q, device=dev)
    _sync()
    quantise_s = time.perf_counter() - t0
    figures, lines = score_timed(model, recs, s["score_batch"])
    figures.update(_bnb_figures(q, dev, _check_quantised(lm, dev)), quantise_s=round(quantise_s, 2))
    return figures, lines


def score_nf4_from_folder(folder: Path, recs, s: dict, dev) -> tuple[dict, list]:
    """The saved bf16 folder loaded by omnireward.scoring.load.load_for_scoring(quant="4bit")."""
    from omnireward.quant import quant_option
    from omnireward.scoring.load import load_for_scoring

    _reset_peak()
    t0 = time.perf_counter()
    model = load_for_scoring(folder, quant="4bit", device=str(dev))
    _sync()
    load_s = time.perf_counter() - t0
    peak_loading = _gpu("max_memory_allocated")
    n = _check_quantised(model.backbone.language_model(), dev)
    figures, lines = score_timed(model, recs, s["score_batch"])
    figures.update(
        _bnb_figures(quant_option("4bit"), dev, n), load_s=round(load_s, 1), peak_gpu_mib_while_loading=peak_loading
    )
    return figures, lines


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (the kernel's VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# ---- part 2: a bf16 BT training step against TRL's RewardTrainer -----------------------------
class _Steps:
    """End-of-step times (after a device sync) and losses, shared by the two tools' callbacks."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.ends: list[float] = []
        self.losses: list[float] = []

    def end(self, loss=None) -> None:
        _sync()
        self.ends.append(time.perf_counter())
        if loss is not None:
            self.losses.append(float(loss))

    def figures(self, pairs_per_step: int) -> dict:
        steps = len(self.ends) - self.warmup
        if steps < 1:
            raise RuntimeError(f"ran {len(self.ends)} steps, not more than the {self.warmup} warm-up ones")
        seconds = self.ends[-1] - self.ends[self.warmup - 1]
        gaps = [b - a for a, b in zip(self.ends[self.warmup - 1 :], self.ends[self.warmup :])]
        out = {
            "pairs_per_s": pairs_per_step * steps / seconds,
            "timed_steps": steps,
            "step_s_median": round(statistics.median(gaps), 4),
            "seconds": round(seconds, 3),
        }
        if self.losses:
            out.update(loss_first=round(self.losses[0], 4), loss_last=round(self.losses[-1], 4))
        return out


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _trained(optimizer) -> int:
    """Parameters the optimiser holds state for: those a step updated (an unused LM head has none)."""
    return sum(p.numel() for p in optimizer.state)


def run_train_omni(a, s: dict) -> dict:
    import lightning as L

    from omnireward.backbones.base import train_top_layers
    from omnireward.config import build
    from omnireward.strategies import build_strategy, checkpoint_layers

    dev = device()
    tok = load_tokenizer(a)
    cfg = omni_config(
        a,
        s,
        [
            f"data.train={a.train}",
            "data.val=null",
            f"data.batch_size={s['train_batch']}",
            f"model.lr={s['lr']}",
            f"model.lm_lr={s['lm_lr']}",
            "head.dropout=0.0",
        ],
    )
    L.seed_everything(a.seed, verbose=False)
    lm = build_lm(s, tok, dev, a.seed)
    if s["gradient_checkpointing"]:
        checkpoint_layers(lm)
    train_top_layers(lm, s["train_layers"])  # what build_hf does with backbone.train_layers
    model = reward_model(lm, tok, cfg, s).to(dev)
    model.train()
    module = build(cfg.model, model=model)
    dm = build(cfg.data)
    dm.needs = module.data_needs()
    dm.setup("fit")
    steps = _Steps(s["warmup_steps"])

    class Timer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            steps.end(None if loss is None else loss.detach())

    kwargs = build_strategy(cfg.trainer)
    kwargs.update(
        max_steps=s["warmup_steps"] + s["timed_steps"],
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Timer()],
        default_root_dir=str(Path(a.work) / "omni-train"),
    )
    trainer = L.Trainer(**kwargs)
    _reset_peak()
    trainer.fit(module, datamodule=dm)
    return {
        **steps.figures(s["train_batch"]),
        "peak_gpu_mib": _gpu("max_memory_allocated"),
        "peak_gpu_reserved_mib": _gpu("max_memory_reserved"),
        "process_peak_rss_mib": peak_rss_mib(),
        "trainable_params": _trainable(module),
        "trained_params": _trained(trainer.optimizers[0]),
        "precision": str(trainer.precision),
        "weights_dtype": str(lm.dtype).replace("torch.", ""),
        "prefix_sharing": model.prefix_sharing,
        "optimizer": type(trainer.optimizers[0]).__name__,
        "learning_rates": {"head": s["lr"], "lm": s["lm_lr"]},
    }


def run_train_trl(a, s: dict) -> dict:
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from omnireward.backbones.base import train_top_layers
    from omnireward.export import reward_messages

    dev = device()
    tok = load_tokenizer(a)
    model = build_lm(s, tok, dev, a.seed, sequence_classification=True)
    model.config.pad_token_id = tok.pad_token_id
    train_top_layers(model, s["train_layers"])
    rows = []
    for r in json_rows(a.train):
        win, lose = r["response1"], r["response2"]
        if r["preference"] == "response2":
            win, lose = lose, win
        rows.append(
            {
                "prompt": reward_messages(r["prompt"], "")[:-1],
                "chosen": [{"role": "assistant", "content": win}],
                "rejected": [{"role": "assistant", "content": lose}],
            }
        )
    steps = _Steps(s["warmup_steps"])

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            steps.end()

    args = RewardConfig(
        output_dir=str(Path(a.work) / "trl"),
        per_device_train_batch_size=s["train_batch"],
        max_steps=s["warmup_steps"] + s["timed_steps"],
        learning_rate=s["lm_lr"],
        bf16=True,
        use_cpu=dev.type == "cpu",
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        max_length=s["max_length"],
        dataloader_num_workers=0,
        seed=a.seed,
        disable_dropout=True,
        gradient_checkpointing=s["gradient_checkpointing"],
    )
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Timer()]
    )
    _reset_peak()
    trainer.train()
    return {
        **steps.figures(s["train_batch"]),
        "peak_gpu_mib": _gpu("max_memory_allocated"),
        "peak_gpu_reserved_mib": _gpu("max_memory_reserved"),
        "process_peak_rss_mib": peak_rss_mib(),
        "trainable_params": _trainable(model),
        "trained_params": _trained(trainer.optimizer),
        "trl": trl.__version__,
        "bf16": args.bf16,
        "weights_dtype": str(model.dtype).replace("torch.", ""),
        "optimizer": getattr(args.optim, "value", str(args.optim)),
        "learning_rate": args.learning_rate,
    }


# ---- children -------------------------------------------------------------------------------
def json_rows(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def load_tokenizer(a):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(a.work) / "tokenizer")


def child(a) -> None:
    s = presets(a.tiny)
    s.update(json.loads(a.settings))
    result = CHILDREN[a.child](a, s)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(name: str, a, s: dict, **extra) -> dict:
    """Run one part in a fresh process; its figures, or {"error": ...} with the end of its log."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--work",
        str(a.work),
        "--seed",
        str(a.seed),
        "--settings",
        json.dumps(_overrides(a)),
        "--pairs",
        str(a.pairs_file),
        "--train",
        str(a.train_file),
    ]
    cmd += ["--tiny"] if a.tiny else []
    cmd += ["--save-folder"] if extra.get("save_folder") else []
    print(f"[gpu_check] {name} ...", flush=True)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=s["child_timeout"])
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"")[-2000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        print(tail, file=sys.stderr)
        return {"error": f"{name} ran past {s['child_timeout']} s", "log_tail": tail}
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if p.returncode != 0 or line is None:
        sys.stderr.write(p.stderr[-6000:])
        last = [x for x in p.stderr.strip().splitlines() if x.strip()]
        return {
            "error": f"{name} exited with {p.returncode}: {last[-1] if last else 'no output'}",
            "log_tail": p.stderr[-2000:],
        }
    out = json.loads(line[len("RESULT ") :])
    print(f"[gpu_check] {name} done in {time.time() - t0:.0f} s", flush=True)
    return out


def _overrides(a) -> dict:
    keys = ("score_pairs", "score_batch", "train_batch", "train_layers", "timed_steps")
    return {k: getattr(a, k) for k in keys if getattr(a, k, None) is not None}


# ---- part 3: serving ------------------------------------------------------------------------
def nvidia_smi_used_mib() -> float | None:
    """GPU memory in use on the device (all processes), from nvidia-smi; None without it."""
    try:
        r = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return float(r.stdout.split()[0]) if r.returncode == 0 and r.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def run_serve(a, s: dict, folder: Path, rows: list[dict]) -> dict:
    from serve_load import Server, level

    data = [(r["prompt"], r[k]) for r in rows for k in ("response1", "response2")]
    dev = "cuda" if a.cuda else "cpu"
    t0 = time.time()
    server = Server(
        folder,
        ["--max-batch-size", str(s["max_batch_size"]), "--batch-timeout", str(s["batch_timeout"]), "--device", dev],
    )
    load_s = time.time() - t0
    try:
        level(server, 1, s["serve_warmup"], s["serve_max_seconds"], data)  # warm-up, not counted
        levels = {}
        for n, k in zip(s["serve_clients"], s["serve_requests"]):
            levels[str(n)] = r = level(server, n, k, s["serve_max_seconds"], data)
            print(f"[gpu_check] serve, {n} clients: {json.dumps(r)}", flush=True)
        peak = server.peak_rss_mib()
        gpu_used = nvidia_smi_used_mib() if a.cuda else None
        info = server.get("/info")
    finally:
        server.stop()
    base = levels[str(s["serve_clients"][0])]["requests_per_s"]
    return {
        "levels": levels,
        "speedup": {k: v["requests_per_s"] / base for k, v in levels.items() if base},
        "errors": sum(v["errors"] for v in levels.values()),
        "server_peak_rss_mib": round(peak, 1),
        "gpu_memory_used_mib": gpu_used,
        "server_start_s": round(load_s, 1),
        "server": {
            "devices": info["batching"].get("devices", info.get("devices")),
            "replicas": info["batching"].get("replicas"),
            "quant": info.get("quant"),
        },
    }


def save_folder(a, s: dict) -> dict:
    """The bf16 model folder for serving, when the scoring part (which writes it) does not run."""
    tok = load_tokenizer(a)
    cfg = omni_config(a, s)
    model = reward_model(build_lm(s, tok, device(), a.seed), tok, cfg, s).eval()
    model.save_pretrained(Path(a.work) / "model", cfg, {"mean": 0.0, "std": 1.0, "n": 0})
    return {}


CHILDREN = {"scoring": run_scoring, "train_omni": run_train_omni, "train_trl": run_train_trl, "folder": save_folder}


# ---- wheels for a machine without network ---------------------------------------------------
# What a GPU image with torch, transformers, lightning, peft, rich and typer (and the usual
# scientific stack: numpy, pandas, pyarrow, scipy, matplotlib, tensorboard, pillow, anyio, h11,
# click, fsspec, xxhash, aiohttp) lacks for this check.
WHEELS = (
    "bitsandbytes",
    "trl",
    "datasets",
    "dill",
    "multiprocess",
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "opentelemetry-api",
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def fetch_wheels(folder: Path) -> None:
    """Download, for CPython 3.12 on x86-64 Linux, the versions installed here of WHEELS into
    `folder` (a source-only package is built into a wheel here)."""
    from importlib.metadata import PackageNotFoundError, version

    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    for name in WHEELS:
        try:
            spec = f"{name}=={version(name)}"
        except PackageNotFoundError:
            spec = name
        cmd = [
            *pip,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *[x for p in PLATFORMS for x in ("--platform", p)],
            "-d",
            str(folder),
            spec,
        ]
        if subprocess.run(cmd).returncode != 0:  # no wheel on the index (antlr4 4.9.3): build a pure-Python one
            subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), spec], check=True)
    files = sorted(folder.glob("*.whl"))
    total = sum(f.stat().st_size for f in files) / MIB
    for f in files:
        print(f"{f.stat().st_size / MIB:8.2f} MiB  {f.name}")
    print(f"{total:8.2f} MiB  in all ({len(files)} wheels)")


# ---- the driver -----------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="the same code on CPU with a 2-layer Qwen2 (hidden 64)")
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help="folder for gpu_check.jsonl (default: benchmarks/results; with --tiny: WORK/results)",
    )
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--commit", default=None, help="the commit the tree was copied from, for a copy without .git")
    ap.add_argument("--score-pairs", type=int, default=None)
    ap.add_argument("--score-batch", type=int, default=None)
    ap.add_argument("--train-batch", type=int, default=None)
    ap.add_argument("--train-layers", type=int, default=None, help="top decoder layers trained on both sides")
    ap.add_argument("--timed-steps", type=int, default=None)
    ap.add_argument(
        "--fetch-wheels",
        type=Path,
        default=None,
        metavar="DIR",
        help="download the wheels a GPU machine without network needs, then stop",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--pairs", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--train", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save-folder", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.fetch_wheels:
        fetch_wheels(a.fetch_wheels)
        return 0
    if a.child:
        child(a)
        return 0

    import torch
    from results_log import START_COMMIT, append

    a.cuda = torch.cuda.is_available()
    if not a.cuda and not a.tiny:
        print("gpu_check needs a CUDA GPU; --tiny runs the same code on CPU with a tiny model", file=sys.stderr)
        return 2
    parts = [p.strip() for p in a.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    s = presets(a.tiny)
    s.update(_overrides(a))
    a.work = a.work or Path(tempfile.mkdtemp(prefix="omnireward-gpu-check-"))
    a.work.mkdir(parents=True, exist_ok=True)
    results = a.results or (a.work / "results" if a.tiny else HERE / "results")
    fields = {"check": None}
    if a.commit and START_COMMIT == "unknown":
        fields["commit"] = a.commit
    t_start = time.time()

    tok = build_tokenizer(a.work / "tokenizer")
    rows = make_pairs(s["score_pairs"], s["prompt_words"], s["response_words"], a.seed)
    train_rows = make_pairs(
        s["train_batch"] * (s["warmup_steps"] + s["timed_steps"]), s["prompt_words"], s["response_words"], a.seed + 1
    )
    a.pairs_file = write_jsonl(a.work / "pairs.jsonl", rows)
    a.train_file = write_jsonl(a.work / "train.jsonl", train_rows)
    lengths = token_lengths(tok, rows)
    common = {
        **model_settings(s, tok),
        "device": "cuda" if a.cuda else "cpu",
        "gpu": torch.cuda.get_device_name(0) if a.cuda else None,
        "tiny": a.tiny,
        **lengths,
        "prompt_words": s["prompt_words"],
        "response_words": s["response_words"],
        "max_length": s["max_length"],
        "seed": a.seed,
        "trl": _version("trl"),
        "bitsandbytes": _version("bitsandbytes"),
    }
    written, failed = [], []

    def record(part: str, figures: dict, t0: float) -> None:
        status = line_status(figures)
        figures["part_s"] = round(time.time() - t0, 1)
        written.append(
            append("gpu_check", figures, results_dir=results, **{**fields, "check": CHECK_NAMES[part]}, status=status)
        )
        if status == "error":
            failed.append(part)
        print(f"[gpu_check] {CHECK_NAMES[part]}: {status}", flush=True)

    folder_ready = False
    if "scoring" in parts:
        t0 = time.time()
        sc = spawn("scoring", a, s, save_folder="serve" in parts)
        folder_ready = (a.work / "model" / "omnireward.yaml").exists()
        settings = {**common, **sc.pop("settings", {})}
        settings.update(
            dtype="bfloat16",
            quant="nf4, double quantisation (conf/quant/4bit)",
            batch_pairs=s["score_batch"],
            pairs=s["score_pairs"],
        )
        record("scoring", {"settings": settings, **sc}, t0)
    if "serve" in parts:
        t0 = time.time()
        err = {} if folder_ready else {k: v for k, v in spawn("folder", a, s).items() if k == "error"}
        settings = {
            **common,
            "dtype": folder_dtype(a.work / "model"),
            "clients": list(s["serve_clients"]),
            "requests_per_level": dict(zip(map(str, s["serve_clients"]), s["serve_requests"])),
            "max_batch_size": s["max_batch_size"],
            "batch_timeout": s["batch_timeout"],
            "request": "OpenRLHF /get_reward, one rollout (prompt + one answer) per request",
        }
        if err:
            record("serve", {"settings": settings, **err}, t0)
        else:
            try:
                figures = run_serve(a, s, a.work / "model", rows)
            except Exception as e:  # noqa: BLE001 - the line says what broke; the other parts still run
                figures = {"error": f"{type(e).__name__}: {e}"}
            record("serve", {"settings": settings, **figures}, t0)
    if "train" in parts:
        t0 = time.time()
        omni = spawn("train_omni", a, s)
        trl_run = spawn("train_trl", a, s)
        trainer = "trainer=gpu" if a.cuda else "the default trainer on CPU"
        settings = {
            **common,
            "dtype": "bfloat16 weights",
            "precision": f"omnireward: bf16-mixed over bf16 weights ({trainer}); TRL: bf16=True over bf16 weights",
            "batch_pairs": s["train_batch"],
            "warmup_steps": s["warmup_steps"],
            "timed_steps": s["timed_steps"],
            "train_layers": s["train_layers"],
            "gradient_checkpointing": s["gradient_checkpointing"],
            "lr_head": s["lr"],
            "lr_lm": s["lm_lr"],
            "trl": trl_run.get("trl", _version("trl")),
        }
        figures = {"settings": settings, "omnireward": omni, "trl": trl_run}
        errors = [f"{k}: {v['error']}" for k, v in (("omnireward", omni), ("trl", trl_run)) if "error" in v]
        if errors:
            figures["error"] = "; ".join(errors)
        else:
            figures["ratio"] = omni["pairs_per_s"] / trl_run["pairs_per_s"]
            if omni.get("peak_gpu_mib") and trl_run.get("peak_gpu_mib"):
                figures["peak_gpu_ratio"] = omni["peak_gpu_mib"] / trl_run["peak_gpu_mib"]
        record("train", figures, t0)
    print(
        f"[gpu_check] {len(written)} line(s) in {results / 'gpu_check.jsonl'}, {time.time() - t_start:.0f} s",
        flush=True,
    )
    return 1 if failed else 0


def line_status(figures: dict) -> str:
    """error: the part, or one of its measurements, failed; partial: a measurement was skipped (with
    its reason); ok: every figure was measured."""
    subs = [figures, *(v for v in figures.values() if isinstance(v, dict))]
    if any("error" in d for d in subs):
        return "error"
    return "partial" if any("skipped" in d for d in subs) else "ok"


def folder_dtype(folder: Path) -> str | None:
    """The dtype the saved folder's backbone loads in (what the server runs)."""
    try:
        from omegaconf import OmegaConf

        return str(OmegaConf.load(folder / "omnireward.yaml").backbone.dtype)
    except Exception:  # noqa: BLE001 - no folder: the serve line carries the error instead
        return None


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
