"""Weights memory at fp32 / bf16 / 8-bit / 4-bit, and peak RSS of scoring in full precision and 4-bit.

    python benchmarks/memory.py --work /tmp/memwork   # everything; appends a line to results/memory.jsonl
    python benchmarks/memory.py peak --model DIR --quant 4bit --data test.jsonl   # one scoring run (JSON)

Weights memory is the bytes of every parameter and buffer of the loaded reward model, plus the
bitsandbytes quantisation constants (absmax, nested constants, int8 row scales) that quantised
layers keep outside their parameters. Peak RSS is measured in a
fresh process per setting and model: the embedded default (SmolLM2-135M) and a reward model on an
LM of SmolLM2-360M's architecture with random weights (memory does not depend on the values).
Peaks are the kernel's high-water mark of this process's own memory (VmHWM), not `ru_maxrss`,
which a process started by another inherits from it when the parent's was higher.
The tables in benchmarks/README.md are rendered from the results line by report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GIB = 1024**3
MIB = 1024**2
# Bytes per weight of a quantised linear layer (bitsandbytes defaults):
#   nf4 + double quant: 4 bits + one 8-bit absmax per 64 weights + one fp32 constant per 256 absmax
#   int8 (LLM.int8): 1 byte + one fp32 scale per output row (negligible for wide layers)
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
INT8_BYTES = 1.0
# Hidden sizes etc. of Qwen2.5-3B and Qwen2.5-7B (their config.json): the 3B/7B rows are computed
# from these by building the models on the meta device (no memory) and counting parameters.
QWEN25 = {
    "Qwen2.5-3B": dict(
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "Qwen2.5-7B": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        tie_word_embeddings=False,
    ),
}


# ---- measuring ----------------------------------------------------------------------------
def weights_bytes(model: nn.Module) -> int:
    """Parameters + buffers + bitsandbytes quantisation state, each tensor counted once."""
    seen: set[int] = set()
    total = 0

    def add(t):
        nonlocal total
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            key = t.untyped_storage().data_ptr() if t.numel() else id(t)
            if key not in seen:
                seen.add(key)
                total += t.numel() * t.element_size()

    for t in list(model.parameters()) + list(model.buffers()):
        add(t)
    for m in model.modules():
        w = getattr(m, "weight", None)
        qs = getattr(w, "quant_state", None)
        if qs is not None:
            for t in (qs.absmax, getattr(qs, "code", None)):
                add(t)
            if getattr(qs, "state2", None) is not None:
                add(qs.state2.absmax)
                add(qs.state2.code)
        add(getattr(w, "SCB", None))
    return total


def save_embedded(model_dir: Path) -> Path:
    """The embedded default as a text reward model folder (random head: memory does not depend on training)."""
    from omnireward.config import compose_config
    from omnireward.train import build_module

    if (model_dir / "omnireward.yaml").exists():
        return model_dir
    cfg = compose_config(["backbone=embedded", "modality=text", f"output_dir={model_dir}"])
    return build_module(cfg).model.eval().save_pretrained(model_dir, cfg)


def measure_weights(model_dir: Path) -> dict[str, dict]:
    from omnireward.quant import load_quantized
    from omnireward.reward_model import RewardModel

    rows = {}
    model, _ = RewardModel.from_pretrained(model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    rows["fp32"] = {"bytes": weights_bytes(model), "params": n_params}
    model.to(torch.bfloat16)
    rows["bf16"] = {"bytes": weights_bytes(model), "params": n_params}
    del model
    for quant in ("8bit", "4bit"):
        q = load_quantized(model_dir, quant, "cpu")
        rows[quant] = {"bytes": weights_bytes(q), "params": n_params}
        del q
    return rows


def peak_run(model_dir: str, quant: str, data: str, batch_size: int, limit: int | None = None) -> dict:
    """Load (quantised) and score `data` (its first `limit` records) in this process; RSS figures and times."""
    from omnireward.data.datamodule import load_records
    from omnireward.scoring.bt import reward_records
    from omnireward.scoring.load import load_for_scoring

    records = load_records(data)[:limit]
    base = _rss()
    t0 = time.time()
    model = load_for_scoring(model_dir, quant=quant, device="cpu")
    loaded = _rss()
    load_peak = _hwm()
    scoring_peak_known = _reset_peak()
    t1 = time.time()
    reward_records(model, records, batch_size, show_progress=False)
    t2 = time.time()
    scoring_peak = _hwm() if scoring_peak_known else None
    return {
        "quant": quant,
        "records": len(records),
        "batch_size": batch_size,
        "rss_before_load_mib": base / MIB,
        "rss_after_load_mib": loaded / MIB,
        "peak_rss_loading_mib": load_peak / MIB,
        "peak_rss_scoring_mib": scoring_peak / MIB if scoring_peak else None,
        "peak_rss_mib": max(load_peak, scoring_peak or _hwm()) / MIB,
        "weights_mib": weights_bytes(model) / MIB,
        "load_s": t1 - t0,
        "score_s": t2 - t1,
    }


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so that the scoring peak can be read apart from loading."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# ---- computing ----------------------------------------------------------------------------
def count_params(config) -> dict[str, int]:
    """Parameters of a causal LM by kind: decoder linears (quantised) and the rest (embeddings, LM head,
    norms, biases). `config`: a transformers config, or Qwen2 config arguments."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    if isinstance(config, dict):
        config = Qwen2Config(**config)
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(config)
    decoder = lm.get_decoder()
    linear_ids = {id(m.weight) for m in decoder.modules() if isinstance(m, nn.Linear)}
    counted: dict[int, nn.Parameter] = {}
    for p in lm.parameters():  # tied embeddings count once
        counted[id(p)] = p
    linear = sum(p.numel() for i, p in counted.items() if i in linear_ids)
    total = sum(p.numel() for p in counted.values())
    return {"total": total, "linear": linear, "other": total - linear}


def computed_rows(counts: dict[str, int]) -> dict[str, float]:
    """Weights bytes: fp32 4·P, bf16 2·P, 8-bit 1·L + 2·O, 4-bit 0.516·L + 2·O (L: decoder linears,
    O: embeddings/LM head/norms/biases, kept in bf16 as on GPU)."""
    p, lin, other = counts["total"], counts["linear"], counts["other"]
    return {"fp32": 4 * p, "bf16": 2 * p, "8bit": INT8_BYTES * lin + 2 * other, "4bit": NF4_BYTES * lin + 2 * other}


def save_random_lm(model_dir: Path, lm_dir: Path, **arch) -> Path:
    """A text reward model on a random-weight LM with SmolLM2's tokenizer and the given architecture."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from omnireward.backbones.lm import embedded_lm_dir, load_tokenizer
    from omnireward.config import compose_config
    from omnireward.train import build_module

    if (model_dir / "omnireward.yaml").exists():
        return model_dir
    if not (lm_dir / "config.json").exists():
        config = AutoConfig.from_pretrained(embedded_lm_dir())
        for k, v in arch.items():
            setattr(config, k, v)
        torch.manual_seed(0)
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        lm.save_pretrained(lm_dir, safe_serialization=True)
        load_tokenizer("embedded").save_pretrained(lm_dir)
        del lm
    cfg = compose_config(["backbone=embedded", "modality=text", f"backbone.lm={lm_dir}", f"output_dir={model_dir}"])
    return build_module(cfg).model.eval().save_pretrained(model_dir, cfg)


LABELS = {
    "smollm2_135m": "SmolLM2-135M (the embedded default)",
    "smollm2_360m": "SmolLM2-360M architecture, random weights",
}
# SmolLM2-360M-Instruct's architecture (its config.json); weights random.
SMOLLM2_360M = dict(
    hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5
)


# ---- report -------------------------------------------------------------------------------
def main_all(args) -> None:
    import sys as _sys

    from omnireward.data.demo import build_demo

    _sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results_log import append

    work = Path(args.work or tempfile.mkdtemp(prefix="omnireward-mem-"))
    models = {
        "smollm2_135m": save_embedded(work / "embedded"),
        "smollm2_360m": save_random_lm(work / "smollm2-360m", work / "smollm2-360m-lm", **SMOLLM2_360M),
    }
    demo = work / "demo-text"
    if not (demo / "test.jsonl").exists():
        build_demo("text", demo)
    measured = measure_weights(models["smollm2_135m"])
    peaks = {}
    for name, model_dir in models.items():
        peaks[name] = {"label": LABELS[name]}
        for quant in ("none", "4bit"):
            cmd = [
                sys.executable,
                __file__,
                "peak",
                "--model",
                str(model_dir),
                "--quant",
                quant,
                "--data",
                str(demo / "test.jsonl"),
                "--batch-size",
                str(args.batch_size),
                "--limit",
                str(args.limit),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            peaks[name][quant] = json.loads(out.strip().splitlines()[-1])
        full, q = peaks[name]["none"], peaks[name]["4bit"]
        peaks[name]["ratio_peak_4bit_over_full"] = q["peak_rss_mib"] / full["peak_rss_mib"]
        peaks[name]["ratio_above_start_4bit_over_full"] = (q["peak_rss_mib"] - q["rss_before_load_mib"]) / (
            full["peak_rss_mib"] - full["rss_before_load_mib"]
        )
    from transformers import AutoConfig

    from omnireward.backbones.lm import embedded_lm_dir

    configs = {"SmolLM2-135M, embedded default": AutoConfig.from_pretrained(embedded_lm_dir()), **QWEN25}
    computed = {}
    for name, cfg in configs.items():
        counts = count_params(cfg)
        computed[name] = {"counts": counts, "bytes": computed_rows(counts)}
    figures = {
        "weights_measured": measured,
        "weights_computed": computed,
        "scoring_peaks": peaks,
        "scoring_records": args.limit,
        "batch_size": args.batch_size,
        "data": "text demo test.jsonl",
    }
    append("memory", figures)
    for p in peaks.values():
        print(
            f"{p['label']}: peak RSS full {p['none']['peak_rss_mib']:.0f} MiB, 4-bit {p['4bit']['peak_rss_mib']:.0f} MiB "
            f"({p['ratio_peak_4bit_over_full']:.2f}x; above the starting RSS "
            f"{p['ratio_above_start_4bit_over_full']:.2f}x)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    peak = sub.add_parser("peak", help="one scoring run in this process; prints JSON")
    peak.add_argument("--model", required=True)
    peak.add_argument("--quant", default="4bit")
    peak.add_argument("--data", required=True)
    peak.add_argument("--batch-size", type=int, default=4)
    peak.add_argument("--limit", type=int, default=None, help="score only the first N records")
    ap.add_argument("--work", help="folder for the saved models and demo set (default: a temporary folder)")
    ap.add_argument("--batch-size", type=int, default=4, help="records (pairs) per forward pass")
    ap.add_argument("--limit", type=int, default=16, help="pairs scored per run (the peak is per batch)")
    args = ap.parse_args()
    if args.cmd == "peak":
        print(json.dumps(peak_run(args.model, args.quant, args.data, args.batch_size, args.limit)))
    else:
        main_all(args)


if __name__ == "__main__":
    main()
