"""benchmarks/gpu_check.sh --tiny: the GPU check's own code on CPU (a 2-layer Qwen2, hidden 64, built in
code) writes its three results lines — nf4 against bf16 scoring, a BT training step against TRL's
RewardTrainer, serving at 1 and 32 clients — with their settings, into a folder of its own."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
REPO_RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.jsonl"


def _has_bnb() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("trl")
    pytest.importorskip("fastapi")
    root = tmp_path_factory.mktemp("gpu_check")
    before = REPO_RESULTS.read_bytes() if REPO_RESULTS.exists() else None
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        ["bash", str(SCRIPT), "--tiny", "--work", str(root / "work"), "--results", str(root / "out")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert (REPO_RESULTS.read_bytes() if REPO_RESULTS.exists() else None) == before  # the repository's file untouched
    lines = [json.loads(x) for x in (root / "out" / "gpu_check.jsonl").read_text().splitlines()]
    return {line["check"]: line for line in lines}


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_part_writes_one_line_with_its_provenance(tiny):
    assert sorted(tiny) == ["nf4_vs_bf16", "serve", "train_vs_trl"]
    for line in tiny.values():
        assert line["bench"] == "gpu_check" and "--tiny" in line["command"]
        assert line["status"] == ("ok" if _has_bnb() or line["check"] != "nf4_vs_bf16" else "partial")
        assert {"commit", "date", "machine"} <= set(line) and line["machine"]["torch"]
        s = line["figures"]["settings"]
        assert s["tiny"] is True and s["device"] == "cpu" and s["model_type"] == "qwen2"
        assert (s["hidden_size"], s["num_hidden_layers"]) == (64, 2)
        assert {
            "num_attention_heads",
            "num_key_value_heads",
            "intermediate_size",
            "vocab_size",
            "dtype",
            "max_length",
        } <= set(s)
        # Sequence lengths in tokens: every word of the prompt and answers is one token.
        assert s["prompt_tokens"] > s["prompt_words"] and s["response_tokens"] > s["response_words"]
        assert s["sequence_tokens"] == pytest.approx(s["prompt_tokens"] + s["response_tokens"])
        assert _positive(line["figures"]["part_s"])


def test_scoring_line_compares_nf4_with_bf16(tiny):
    f = tiny["nf4_vs_bf16"]["figures"]
    assert f["settings"]["dtype"] == "bfloat16" and f["settings"]["batch_pairs"] == 8 and f["settings"]["pairs"] == 16
    assert f["bf16"]["dtype"] == "bfloat16" and _positive(f["bf16"]["pairs_per_s"])
    for part in ("bf16", "nf4"):
        assert "peak_gpu_mib" in f.get(part, {}) or "skipped" in f[part]
    assert f["bf16"]["peak_gpu_mib"] is None  # no GPU here: no GPU figure, not a made-up one
    if not _has_bnb():
        assert "bitsandbytes" in f["nf4"]["skipped"] and "agreement" not in f
        return
    for nf4 in (f["nf4"], f["nf4_loaded_from_folder"]):
        assert nf4["quant_type"] == "nf4" and nf4["double_quant"] and nf4["compute_dtype"] == "float32"
        assert nf4["layers_quantised"] == 14  # 2 layers x (q, k, v, o, gate, up, down)
        assert _positive(nf4["pairs_per_s"]) and nf4["bitsandbytes"]
        assert nf4["weights_mib"] < f["bf16"]["weights_mib"]
    for a in (f["agreement"], f["nf4_loaded_from_folder"]["agreement"]):
        assert a["n_pairs"] == 16 and 0 <= a["sign_agreement"] <= 1 and -1 <= a["kendall_tau"] <= 1
    assert f["ratios"]["weights"] < 1 and _positive(f["ratios"]["speed"])


def test_training_line_compares_the_bt_step_with_trl(tiny):
    f = tiny["train_vs_trl"]["figures"]
    s = f["settings"]
    assert s["trl"] and s["batch_pairs"] == 4 and s["train_layers"] == 1 and s["timed_steps"] == 3
    assert "bf16" in s["precision"]
    omni, trl = f["omnireward"], f["trl"]
    for side in (omni, trl):
        assert _positive(side["pairs_per_s"]) and side["timed_steps"] == 3 and _positive(side["step_s_median"])
        assert side["weights_dtype"] == "bfloat16" and side["peak_gpu_mib"] is None
        assert side["trained_params"] == side["trainable_params"] > 0
    assert omni["precision"] == "bf16-mixed" and trl["bf16"] is True and trl["trl"] == s["trl"]
    # The same trainable set (top layer, final norm) on both sides; only the heads differ (BT head vs `score`).
    assert abs(omni["trained_params"] - trl["trained_params"]) <= 2 * s["hidden_size"] + 1
    assert math.isfinite(omni["loss_first"]) and _positive(f["ratio"])


def test_serving_line_has_both_client_counts(tiny):
    f = tiny["serve"]["figures"]
    assert f["settings"]["clients"] == [1, 32] and f["settings"]["dtype"] == "bfloat16"
    assert sorted(f["levels"], key=int) == ["1", "32"] and f["errors"] == 0
    for n, level in f["levels"].items():
        assert level["clients"] == int(n) and level["ok"] == level["requests"] == f["settings"]["requests_per_level"][n]
        assert _positive(level["requests_per_s"]) and _positive(level["p50_s"]) and level["p99_s"] >= level["p50_s"]
    assert f["speedup"]["1"] == 1.0 and _positive(f["server_peak_rss_mib"]) and f["gpu_memory_used_mib"] is None
    assert f["server"]["devices"] == ["cpu"]


def test_line_status_names_errors_and_skips():
    assert gpu_check.line_status({"bf16": {"pairs_per_s": 1.0}, "nf4": {"pairs_per_s": 1.0}}) == "ok"
    assert gpu_check.line_status({"bf16": {}, "nf4": {"skipped": "no bitsandbytes"}}) == "partial"
    assert gpu_check.line_status({"bf16": {}, "nf4": {"error": "CUDA out of memory"}}) == "error"
    assert gpu_check.line_status({"error": "scoring exited with 1"}) == "error"


def test_step_timer_counts_only_the_steps_after_warm_up():
    steps = gpu_check._Steps(warmup=2)
    steps.ends = [0.0, 10.0, 11.0, 13.0, 14.0]  # a slow first step, then 1, 2, 1 s
    f = steps.figures(pairs_per_step=4)
    assert f["timed_steps"] == 3 and f["seconds"] == 4.0 and f["pairs_per_s"] == 3.0 and f["step_s_median"] == 1.0
    with pytest.raises(RuntimeError):
        gpu_check._Steps(warmup=3).figures(4)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="with a GPU the full check would run")
def test_without_a_gpu_the_full_check_refuses_in_one_line(tmp_path):
    r = subprocess.run(
        ["bash", str(SCRIPT), "--work", str(tmp_path), "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 2 and "--tiny" in r.stderr and not (tmp_path / "gpu_check.jsonl").exists()
