"""`--engine ray`: Ray Data actors on a local 2-CPU cluster give the single-process scores, resumably."""

from __future__ import annotations

import json
import os

import pytest
from _deploy_utils import write_jsonl
from test_stream import mixed_records

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs, started for these tests (about 15 s here)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from omnireward.config import compose_config
    from omnireward.train import build_module

    out = tmp_path_factory.mktemp("ray") / "model"
    cfg = compose_config(["backbone=tiny", f"output_dir={out}", "backbone.feature_cache=false", "head.dropout=0"])
    return build_module(cfg).model.eval().save_pretrained(out, cfg)


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_ray_scores_equal_single_process_scores_and_resume(cluster, model_dir, tmp_path, monkeypatch):
    from omnireward.scoring import ray_engine
    from omnireward.scoring.bt import score_file
    from omnireward.scoring.stream import RayOptions

    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(64))
    local = score_file(src, model_dir, tmp_path / "local.jsonl", batch_size=4, device="cpu", show_progress=False)

    pids: set = set()
    real = ray_engine.run_ray
    monkeypatch.setattr(ray_engine, "run_ray", lambda *a, **kw: real(*a, **kw, workers=pids))
    opts = RayOptions(num_workers=2)
    out = tmp_path / "ray.jsonl"
    remote = score_file(src, model_dir, out, batch_size=4, device="cpu", engine="ray", ray=opts, show_progress=False)
    # scored in Ray's actor processes, not here (how the batches spread over the two actors
    # depends on how fast each starts)
    assert pids and os.getpid() not in pids
    a, b = _lines(tmp_path / "local.jsonl"), _lines(out)
    assert [x["id"] for x in a] == [x["id"] for x in b] == [r["id"] for r in mixed_records(64)]
    for x, y in zip(a, b):
        for key in ("reward1", "reward2", "margin", "reward"):
            if key in x:
                assert y[key] == pytest.approx(x[key], abs=1e-6)
        if "rewards" in x:
            assert y["rewards"] == pytest.approx(x["rewards"], abs=1e-6) and y["ranking"] == x["ranking"]
    assert remote["accuracy_without_ties"] == local["accuracy_without_ties"]
    assert remote["groups"] == local["groups"] and remote["n_scored"] == 64
    assert not (tmp_path / "ray.jsonl.ray").exists()  # the spool is removed once merged

    # the driver dies after 3 batches; the same command on Ray finishes the file
    from test_stream import _Crash, crash_after

    out2 = tmp_path / "cut.jsonl"
    undo = crash_after(monkeypatch, 3)
    with pytest.raises(_Crash):
        score_file(src, model_dir, out2, batch_size=4, device="cpu", engine="ray", ray=opts, show_progress=False)
    undo()
    assert (tmp_path / "cut.jsonl.partial").read_text().count("\n") == 12
    pids.clear()
    score_file(src, model_dir, out2, batch_size=4, device="cpu", engine="ray", ray=opts, show_progress=False)
    assert out2.read_bytes() == out.read_bytes()
    assert pids  # the rest was scored by the actors
