"""Multi-process training: DDP over 2 CPU processes reproduces one process, strategy configs, checkpointing."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy
from safetensors.torch import load_file

from omnireward.backbones.build import build_modular
from omnireward.config import compose_config
from omnireward.data.records import Pair, Response
from omnireward.errors import ConfigError, DependencyError
from omnireward.reward_model import RewardModel
from omnireward.strategies import (
    RUN_DIR_ENV,
    build_strategy,
    enable_gradient_checkpointing,
    gather_rows,
    shared_output_dir,
    wrap_policy,
)

ROOT = Path(__file__).resolve().parents[1]
GOOD = "Sure! To {}, start with the basics and go step by step."
BAD = ["No. Figure it out yourself.", "Stop asking me things.", "Whatever, not my problem."]
TOPICS = ["boil an egg", "tie a knot", "plant a tree", "fix a flat tyre", "bake bread", "learn chess"]


def _pairs(n: int, start: int = 0, flipped: int = 0) -> list[dict]:
    """Helpful beats rude; the first `flipped` labels are wrong so no model gets every pair right."""
    rows = []
    for i in range(start, start + n):
        topic, first = TOPICS[i % len(TOPICS)], (i * 7) % 3 != 0
        good, bad = GOOD.format(topic), BAD[i % len(BAD)]
        label = "response1" if first else "response2"
        if i - start < flipped:
            label = "response2" if first else "response1"
        rows.append(
            {
                "id": f"p{i}",
                "prompt": f"How do I {topic}?",
                "response1": good if first else bad,
                "response2": bad if first else good,
                "preference": label,
            }
        )
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _train_cli(out: Path, *overrides: str, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    # The real command: Lightning's launcher starts rank 1 by re-running this command line.
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false")
    env.pop(RUN_DIR_ENV, None)
    cmd = [sys.executable, *launcher, "-m", "omnireward.cli.app", "train", f"output_dir={out}", *overrides]
    return subprocess.run(cmd, cwd=out.parent, env=env, capture_output=True, text=True, timeout=300)


def _metrics(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["val/acc"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Training data and the overrides every run here shares; `runs.get(name, ...)` trains once per name."""
    tmp = tmp_path_factory.mktemp("ddp")
    train = _write(tmp / "train.jsonl", _pairs(48))  # 3 global batches of 16 per epoch
    val = _write(tmp / "val.jsonl", _pairs(15, 1000, flipped=4))  # odd: ranks get 8 and 7 pairs
    common = [
        "backbone=tiny",
        "head.dropout=0",
        "model.lr=3e-3",
        "model.lm_lr=1e-3",
        f"data.train={train}",
        f"data.val={val}",
        "trainer.max_epochs=2",
        "logger.tensorboard=false",
    ]
    done: dict[str, Path] = {}

    class Runs:
        @staticmethod
        def get(name: str, *overrides: str, launcher: tuple[str, ...] = ()) -> Path:
            if name not in done:
                r = _train_cli(tmp / name, *common, *overrides, launcher=launcher)
                assert r.returncode == 0, r.stderr[-3000:]
                done[name] = tmp / name
            return done[name]

    return Runs


def _one(runs) -> Path:
    return runs.get("one", "trainer.accelerator=cpu", "data.batch_size=16")


def _two(runs) -> Path:
    return runs.get("two", "trainer=cpu_ddp", "data.batch_size=8")


def _assert_same_training(one: Path, two: Path, seed: int = 0) -> None:
    s1 = json.loads((one / "train_summary.json").read_text())
    s2 = json.loads((two / "train_summary.json").read_text())
    assert s1["global_steps"] == s2["global_steps"] == 6  # 48 pairs / 16 per step × 2 epochs
    a = torch.load(one / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(two / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    # The weights the run started from (train() seeds, then builds), to measure how far training moved them.
    L.seed_everything(seed, verbose=False)
    init = RewardModel.with_bt_head(
        build_modular(lm="tiny", lm_layers=2, pretrained_encoders=False, feature_cache=False), dropout=0.0
    ).state_dict()
    moved = {k: float((a[k] - init[k.removeprefix("model.")]).norm()) for k in a}
    apart = {k: float((a[k] - b[k]).norm()) for k in a}
    assert sum(m > 0 for m in moved.values()) >= 15  # training changed the trainable tensors...
    for k in a:  # ...and both runs changed them the same way (Adam lets a few near-zero gradients wobble)
        assert apart[k] <= 1e-5 * float(a[k].norm()), k
        assert apart[k] <= 1e-4 * moved[k], (k, apart[k], moved[k])


def test_ddp_on_two_cpu_processes_matches_one_process_with_the_same_global_batch(runs):
    one, two = _one(runs), _two(runs)
    _assert_same_training(one, two)
    known = ("one", "two", "torchrun", "ensemble-one", "ensemble-two")
    assert not [p for p in two.parent.iterdir() if p.is_dir() and p.name not in known]


@pytest.mark.slow
def test_torchrun_launch_matches_one_process(runs):
    """The documented torchrun command: Lightning takes the ranks torchrun gives and starts none itself."""
    launcher = ("-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--master_port=29517")
    _assert_same_training(_one(runs), runs.get("torchrun", "trainer=cpu_ddp", "data.batch_size=8", launcher=launcher))


def test_ensemble_members_train_over_two_ddp_processes_as_in_one(runs):
    """`ensemble.members=2` with `trainer=cpu_ddp`: each member's run spreads over two processes
    (Lightning's launcher re-runs the command for rank 1, which trains every member beside rank 0),
    the ensemble folder is shared, and each member trains as it does in one process with the same
    global batch and its own seed."""
    one = runs.get("ensemble-one", "trainer.accelerator=cpu", "data.batch_size=16", "ensemble.members=2")
    two = runs.get("ensemble-two", "trainer=cpu_ddp", "data.batch_size=8", "ensemble.members=2")
    for folder in (one, two):
        manifest = json.loads((folder / "ensemble.json").read_text())
        assert manifest["members"] == ["member-0", "member-1"] and manifest["seeds"] == [0, 1]
    for k in (0, 1):
        _assert_same_training(one / f"member-{k}", two / f"member-{k}", seed=k)
    a = load_file(str(two / "member-0" / "modules.safetensors"))
    b = load_file(str(two / "member-1" / "modules.safetensors"))
    assert any(float((a[k] - b[k]).norm()) > 1e-3 for k in a)  # the two seeds made two models
    assert sorted(p.name for p in two.iterdir() if p.is_dir()) == ["member-0", "member-1"]


def test_ddp_validation_metrics_cover_the_whole_val_set(runs):
    one, two = _one(runs), _two(runs)
    m1, m2 = _metrics(one), _metrics(two)
    assert len(m1) == len(m2) == 2
    for x, y in zip(m1, m2):
        assert float(x["val/acc"]) == pytest.approx(float(y["val/acc"]), abs=1e-6)
        assert float(x["val/loss"]) == pytest.approx(float(y["val/loss"]), rel=1e-5)
    # Same best epoch, so the saved model folders hold the same weights.
    for name in ("modules.safetensors", "lm/model.safetensors"):
        wa, wb = load_file(str(one / name)), load_file(str(two / name))
        for k in wa:
            assert float((wa[k] - wb[k]).norm()) <= 1e-5 * float(wa[k].norm()), (name, k)


def _trainer_cfg(name: str, *overrides: str):
    return compose_config([f"trainer={name}", *overrides]).trainer


def test_cpu_ddp_config_builds_a_two_process_gloo_trainer():
    kwargs = build_strategy(_trainer_cfg("cpu_ddp"))
    trainer = L.Trainer(**kwargs, logger=False, enable_progress_bar=False, enable_checkpointing=False)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2
    assert trainer.strategy._ddp_kwargs["find_unused_parameters"] is True
    assert trainer.strategy._get_process_group_backend() == "gloo"


@pytest.mark.parametrize("name", ["gpu", "ddp", "fsdp", "deepspeed"])
def test_gpu_configs_use_bf16_and_their_strategy(name):
    cfg = _trainer_cfg(name, "trainer.num_nodes=2", "trainer.accumulate_grad_batches=4")
    assert cfg.precision == "bf16-mixed" and cfg.accelerator == "gpu"
    if name == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        return  # covered by the DependencyError test
    kwargs = build_strategy(cfg)
    assert kwargs["num_nodes"] == 2 and kwargs["accumulate_grad_batches"] == 4
    strategy = kwargs["strategy"]
    if name == "gpu":
        assert strategy == "auto"
    elif name == "ddp":
        assert strategy == "ddp_find_unused_parameters_true"
    elif name == "fsdp":
        assert isinstance(strategy, FSDPStrategy) and strategy._state_dict_type == "full"
        assert strategy.kwargs["use_orig_params"] is True and callable(strategy.kwargs["auto_wrap_policy"])
    else:
        assert isinstance(strategy, DeepSpeedStrategy)


def test_fsdp_policy_shards_exactly_the_decoder_layers():
    model = RewardModel.with_bt_head(build_modular(lm="tiny", lm_layers=2, feature_cache=False), dropout=0.0)
    policy = wrap_policy(_trainer_cfg("fsdp").strategy.wrap_layers)
    units = [n for n, m in model.named_modules() if policy(module=m, recurse=False, nonwrapped_numel=0)]
    assert units == ["backbone.lm.model.layers.0", "backbone.lm.model.layers.1"]
    assert all(type(model.get_submodule(u)).__name__ == "LlamaDecoderLayer" for u in units)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
@pytest.mark.parametrize("strategy", [None, "trainer.strategy.stage=3"])
def test_deepspeed_without_the_package_is_a_one_line_dependency_error(strategy):
    cfg = _trainer_cfg("deepspeed", *([strategy] if strategy else []))
    with pytest.raises(DependencyError) as e:
        build_strategy(cfg)
    assert "pip install deepspeed" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DependencyError):
        build_strategy({"strategy": "deepspeed_stage_2", "devices": 1})


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
def test_train_command_with_deepspeed_missing_prints_one_line(tmp_path):
    r = _train_cli(tmp_path / "run", "trainer=deepspeed", "backbone=tiny")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "pip install deepspeed" in r.stderr and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1


def test_bad_strategy_mappings_are_config_errors():
    with pytest.raises(ConfigError, match="mapping with a _target_"):
        build_strategy({"strategy": {"name": "horovod"}})
    with pytest.raises(ConfigError, match="cannot import 'omnireward.strategies.horovod_strategy'"):
        compose_config(["trainer=fsdp", "trainer.strategy._target_=omnireward.strategies.horovod_strategy"])
    with pytest.raises(ConfigError, match="unknown option.*for the fsdp strategy: wrap_layer"):
        build_strategy(
            {"strategy": {"_target_": "omnireward.strategies.fsdp_strategy", "wrap_layer": ["DecoderLayer"]}}
        )
    assert build_strategy({"strategy": "ddp", "devices": 2}) == {"strategy": "ddp", "devices": 2}
    kwargs = build_strategy(
        {
            "strategy": {
                "_target_": "omnireward.strategies.ddp_strategy",
                "find_unused_parameters": False,
                "static_graph": True,
            }
        }
    )
    assert isinstance(kwargs["strategy"], DDPStrategy) and kwargs["strategy"]._ddp_kwargs["static_graph"] is True


def _grads(model: RewardModel, batch, labels) -> dict[str, torch.Tensor]:
    model.zero_grad()
    r = model(batch)
    n = len(labels)
    (-torch.nn.functional.logsigmoid(labels * (r[:n] - r[n:])).mean()).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_gradients():
    model = RewardModel.with_bt_head(build_modular(lm="tiny", lm_layers=2, feature_cache=False), dropout=0.0).train()
    pairs = [
        Pair(
            id=f"p{i}",
            task="text_to_text",
            prompt=f"How do I {t}?",
            response1=Response(text=GOOD.format(t)),
            response2=Response(text=BAD[i % 3]),
            preference="response1",
        )
        for i, t in enumerate(TOPICS[:4])
    ]
    batch, labels = model.collate_pairs(pairs), torch.tensor([1.0, -1.0, 1.0, -1.0])
    calls, mlp = [], model.backbone.lm.model.layers[0].mlp
    forward = mlp.forward
    mlp.forward = lambda x: calls.append(1) or forward(x)  # hooks do not fire in the recomputation
    plain = _grads(model, batch, labels)
    assert len(calls) == 1
    assert enable_gradient_checkpointing(model.backbone) == ["lm"]
    calls.clear()
    ckpt = _grads(model, batch, labels)
    assert len(calls) == 2  # the layer ran again in the backward pass
    # Embeddings are frozen here: non-reentrant checkpointing still sends gradients through every layer.
    assert "backbone.lm.model.layers.0.self_attn.q_proj.weight" in ckpt and plain.keys() == ckpt.keys()
    for k in plain:
        assert torch.allclose(plain[k], ckpt[k], rtol=1e-5, atol=1e-7), k
    assert model.backbone.lm.config.use_cache is False
    with pytest.raises(ConfigError, match="gradient checkpointing"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))


def test_gather_rows_outside_ddp_returns_a_copy():
    rows = [(0.5, 1, "text_to_text")]
    got = gather_rows(rows)
    rows.clear()  # the caller clears its own list after gathering
    assert got == [(0.5, 1, "text_to_text")]


def test_ranks_started_by_lightning_share_the_launching_process_output_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert shared_output_dir(tmp_path / "a") == tmp_path / "a"  # the launching process keeps its own
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank the launcher re-ran: its own timestamp differs
    assert shared_output_dir(tmp_path / "b") == tmp_path / "a"
    monkeypatch.setenv("LOCAL_RANK", "0")  # a later run in the launching process is a new run
    assert shared_output_dir(tmp_path / "c") == tmp_path / "c"
