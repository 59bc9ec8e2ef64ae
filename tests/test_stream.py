"""Streaming, resumable scoring: kill -9 and rerun, refusals, rejects, bounded memory, groups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
from _deploy_utils import text_pairs, write_jsonl

from omnireward.errors import DataFormatError, MediaError, ResumeError

EXE = [sys.executable, "-m", "omnireward.cli.app"]


def mixed_records(n: int, seed: int = 5) -> list[dict]:
    """Pairs, with a group of three every 7th record and a pointwise item every 11th."""
    rows = text_pairs(n, seed=seed)
    for i in range(0, n, 7):
        r = rows[i]
        rows[i] = {
            "id": r["id"],
            "prompt": r["prompt"],
            "criteria": "prefer the kind answer",
            "responses": [r["response1"], r["response2"], "No idea."],
            "best": 0 if r["preference"] == "response1" else 1,
        }
    for i in range(3, n, 11):
        if i % 7:
            rows[i] = {"id": rows[i]["id"], "prompt": rows[i]["prompt"], "response": rows[i]["response1"]}
    return rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained tiny text reward model (2-layer random Llama): rewards are deterministic numbers."""
    from omnireward.config import compose_config
    from omnireward.train import build_module

    out = tmp_path_factory.mktemp("stream") / "model"
    cfg = compose_config(["backbone=tiny", f"output_dir={out}", "backbone.feature_cache=false", "head.dropout=0"])
    return build_module(cfg).model.eval().save_pretrained(out, cfg)


@pytest.fixture(scope="module")
def model(model_dir):
    from omnireward.scoring.load import load_for_scoring

    return load_for_scoring(model_dir, device="cpu")


def _score(src, model_dir, out, **kw):
    from omnireward.scoring.bt import score_file

    return score_file(src, model_dir, out, device="cpu", show_progress=False, **kw)


def run_cli(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


# ---- the same numbers as in-memory scoring -----------------------------------------------------
def test_streamed_lines_equal_in_memory_scoring(model, model_dir, tmp_path):
    from omnireward.data.datamodule import load_records
    from omnireward.scoring.bt import reward_records

    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(60))
    summary = _score(src, model_dir, tmp_path / "s.jsonl", batch_size=5, workers=1)
    streamed = {x["id"]: x for x in map(json.loads, (tmp_path / "s.jsonl").read_text().splitlines())}
    memory = reward_records(model, load_records(src), batch_size=16, show_progress=False)
    assert len(streamed) == 60 and summary["n_scored"] == 60
    for line in memory:
        got = streamed[line["id"]]
        assert got.keys() == line.keys()
        for key in ("reward1", "reward2", "margin", "reward"):
            if key in line:
                assert got[key] == pytest.approx(line[key], abs=1e-5)
        if "rewards" in line:
            assert got["rewards"] == pytest.approx(line["rewards"], abs=1e-5)
            assert got["ranking"] == line["ranking"] and got["best"] == line["ranking"][0]
    # workers prepare batches exactly as the main process does
    _score(src, model_dir, tmp_path / "w0.jsonl", batch_size=5, workers=0)
    assert (tmp_path / "w0.jsonl").read_bytes() == (tmp_path / "s.jsonl").read_bytes()


def test_group_rewards_equal_each_response_scored_alone(model, tmp_path):
    """A group of N is scored in one pass; each reward equals that response as a pointwise item."""
    from omnireward.data.records import Item, Response, record_from_dict
    from omnireward.scoring.batch import score_batch

    group = record_from_dict(
        {
            "id": "g",
            "prompt": "Tell me about bees.",
            "criteria": "be precise",
            "responses": ["Bees make honey.", "No.", "Bees are insects that make honey and wax."],
            "ranking": [2, 0, 1],
        }
    )
    [line] = score_batch(model, [group])
    alone = score_batch(
        model,
        [
            Item(f"i{k}", group.task, group.prompt, Response(text=r.text), group.criteria)
            for k, r in enumerate(group.responses)
        ],
    )
    assert line["rewards"] == pytest.approx([x["reward"] for x in alone], abs=1e-5)
    assert line["ranking"] == sorted(range(3), key=lambda i: -line["rewards"][i])
    assert line["best"] == line["ranking"][0] and line["gold_best"] == 2 and line["gold_ranking"] == [2, 0, 1]


# ---- kill -9 in the middle, rerun ---------------------------------------------------------------
def test_kill_9_then_rerun_loses_and_repeats_nothing(model_dir, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(500))
    args = ["score", src, "--model", model_dir, "--batch-size", "2", "--device", "cpu"]
    full = run_cli(*args, "--out", tmp_path / "full.jsonl", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]

    out = tmp_path / "cut.jsonl"
    partial = tmp_path / "cut.jsonl.partial"
    proc = subprocess.Popen(
        [*EXE, *map(str, args), "--out", str(out)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_bytes().count(b"\n") >= 40:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the scorer and its DataLoader worker, without warning
    proc.wait()
    written = partial.read_bytes().count(b"\n")
    assert 40 <= written < 500
    assert not json.loads((tmp_path / "cut.jsonl.state.json").read_text())["complete"]
    assert not out.exists() and not (tmp_path / "cut.summary.json").exists()

    again = run_cli(*args, "--out", out, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert out.read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert ids == [r["id"] for r in mixed_records(500)]  # each once, in input order
    assert not partial.exists()
    assert json.loads((tmp_path / "cut.summary.json").read_text()) == json.loads(
        (tmp_path / "full.summary.json").read_text()
    )


class _Crash(Exception):
    pass


def crash_after(monkeypatch, batches: int):
    """The run dies after writing `batches` batches (as a crash or a kill between two writes would)."""
    from omnireward.scoring.output import ScoresFile

    real = ScoresFile.append
    calls = {"n": 0}

    def append(self, lines):
        if calls["n"] == batches:
            raise _Crash()
        calls["n"] += 1
        real(self, lines)

    monkeypatch.setattr(ScoresFile, "append", append)
    return lambda: monkeypatch.setattr(ScoresFile, "append", real)


def test_torn_last_line_and_a_cut_batch_are_completed(model_dir, tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(40))
    _score(src, model_dir, tmp_path / "whole.jsonl", batch_size=4)
    undo = crash_after(monkeypatch, 3)
    with pytest.raises(_Crash):
        _score(src, model_dir, tmp_path / "a.jsonl", batch_size=4)
    undo()
    partial = tmp_path / "a.jsonl.partial"
    lines = partial.read_bytes().split(b"\n")
    assert len(lines) == 13 and not (tmp_path / "a.jsonl").exists()
    # 9 whole lines (the third batch cut after its first line) and half of the 10th
    partial.write_bytes(b"\n".join(lines[:9]) + b"\n" + lines[9][:15])
    _score(src, model_dir, tmp_path / "a.jsonl", batch_size=4)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert not partial.exists()


def test_a_finished_run_is_not_scored_again(model_dir, tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(12))
    first = _score(src, model_dir, tmp_path / "s.jsonl")
    import omnireward.scoring.bt as bt

    monkeypatch.setattr(bt.BTModel, "__call__", lambda self: pytest.fail("the model was loaded again"))
    assert _score(src, model_dir, tmp_path / "s.jsonl") == first


# ---- refusals ---------------------------------------------------------------------------------
def test_changed_model_input_or_options_are_refused_in_one_line(model_dir, tmp_path):
    import shutil

    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(12))
    _score(src, model_dir, tmp_path / "s.jsonl")
    other = tmp_path / "other-model"
    shutil.copytree(model_dir, other)
    from safetensors.torch import load_file, save_file

    state = load_file(str(other / "modules.safetensors"))
    state["head.score.weight"] = state["head.score.weight"] + 1.0
    save_file(state, str(other / "modules.safetensors"))
    with pytest.raises(ResumeError, match="different model"):
        _score(src, other, tmp_path / "s.jsonl")
    write_jsonl(src, mixed_records(13))
    with pytest.raises(ResumeError, match="different input"):
        _score(src, model_dir, tmp_path / "s.jsonl")
    write_jsonl(src, mixed_records(12))
    with pytest.raises(ResumeError, match="options.quant"):
        _score(src, model_dir, tmp_path / "s.jsonl", quant="8bit")
    # the same model copied elsewhere is the same model
    shutil.rmtree(other)
    shutil.copytree(model_dir, other)
    _score(src, other, tmp_path / "s.jsonl")

    r = run_cli("score", src, "--model", tmp_path / "nope", "--out", "s.jsonl", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    state = load_file(str(other / "modules.safetensors"))
    state["head.score.weight"] = state["head.score.weight"] * 2
    save_file(state, str(other / "modules.safetensors"))
    r = run_cli("score", src, "--model", other, "--out", "s.jsonl", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "s.jsonl: was scored with a different model" in lines[0] and "--overwrite" in lines[0]
    r = run_cli("score", src, "--model", other, "--out", "s.jsonl", "--device", "cpu", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]


def test_an_output_no_resumable_run_wrote_is_refused(model_dir, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(5))
    (tmp_path / "s.jsonl").write_text('{"id": "mine"}\n')
    with pytest.raises(ResumeError, match="no resumable run wrote it"):
        _score(src, model_dir, tmp_path / "s.jsonl")
    assert _score(src, model_dir, tmp_path / "s.jsonl", overwrite=True)["n_scored"] == 5


def test_lines_that_do_not_line_up_with_the_input_are_refused(model_dir, tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(12))
    undo = crash_after(monkeypatch, 2)
    with pytest.raises(_Crash):
        _score(src, model_dir, tmp_path / "s.jsonl", batch_size=4)
    undo()
    partial = tmp_path / "s.jsonl.partial"
    lines = partial.read_text().splitlines()
    partial.write_text("\n".join([lines[1], lines[0]]) + "\n")
    with pytest.raises(ResumeError, match="line 1 holds id"):
        _score(src, model_dir, tmp_path / "s.jsonl", batch_size=4)


# ---- records that cannot be read --------------------------------------------------------------
def _with_bad_records(tmp_path) -> Path:
    rows = [json.dumps(r) for r in mixed_records(10)]
    rows[2] = '{"id": "broken", "prompt": '  # malformed JSON
    rows[5] = json.dumps({"id": "g1", "prompt": "p", "responses": ["a", "b"], "best": 2})
    rows[7] = json.dumps(
        {
            "id": "m1",
            "prompt": "p",
            "response1": "a",
            "response2": {"media": [{"type": "image", "path": "missing.png"}]},
        }
    )
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_unreadable_records_go_to_the_rejects_file_with_file_line_and_reason(model_dir, tmp_path):
    src = _with_bad_records(tmp_path)
    s = _score(src, model_dir, tmp_path / "s.jsonl")
    assert s["n_scored"] == 7 and s["n_rejected"] == 3
    rejects = [json.loads(x) for x in (tmp_path / "s.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(3, None), (6, "best"), (8, "response2.media[0].path")]
    assert "malformed JSON" in rejects[0]["reason"] and rejects[0]["file"] == str(src)
    assert "not found" in rejects[2]["reason"]
    ids = {json.loads(x)["id"] for x in (tmp_path / "s.jsonl").read_text().splitlines()}
    assert not ids & {"broken", "g1", "m1"}


def test_stop_on_bad_record_names_file_line_and_field(model_dir, tmp_path):
    src = _with_bad_records(tmp_path)
    with pytest.raises(DataFormatError) as e:
        _score(src, model_dir, tmp_path / "s.jsonl", on_bad_record="stop")
    assert str(e.value).startswith(f"{src}:3: malformed JSON")
    r = run_cli(
        "score",
        src,
        "--model",
        model_dir,
        "--out",
        "t.jsonl",
        "--on-bad-record",
        "stop",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "bad.jsonl:3:" in r.stderr


def test_a_media_file_that_does_not_decode_stops_with_its_line(tmp_path):
    """Readable records whose media turn out corrupt while batches are prepared (in a worker)."""
    from PIL import Image
    from skimage import data as skdata

    from omnireward.config import compose_config
    from omnireward.scoring.stream import score_stream
    from omnireward.train import build_module

    Image.fromarray(skdata.astronaut()).resize((64, 64)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    rows = [
        {
            "id": f"r{i}",
            "prompt": "a photo",
            "response1": {"media": [{"type": "image", "path": "ok.png"}]},
            "response2": {"media": [{"type": "image", "path": "bad.png" if i == 3 else "ok.png"}]},
        }
        for i in range(6)
    ]
    src = write_jsonl(tmp_path / "img.jsonl", rows)
    cfg = compose_config(
        [
            "backbone=tiny",
            "modality=image",
            "backbone.pretrained_encoders=false",
            "backbone.feature_cache=false",
            f"output_dir={tmp_path / 'm'}",
        ]
    )
    from omnireward.scoring.identity import run_identity
    from omnireward.scoring.pipeline import BTScorer

    scorer = BTScorer(build_module(cfg).model.eval())
    with pytest.raises(MediaError) as e:
        score_stream(
            src,
            tmp_path / "s.jsonl",
            lambda: scorer,
            run_identity(None, src, {}),
            batch_size=2,
            workers=1,
            show_progress=False,
        )
    assert f"{src}:4:" in str(e.value)


# ---- memory does not grow with the file -------------------------------------------------------
class _CountingScorer:
    """No model: rewards from the text length; records how many records are alive at each batch."""

    def __init__(self, alive: dict):
        self.alive = alive
        self.most = 0

    def prepare(self, planned):
        return None

    def score(self, planned, prepared):
        import gc

        from omnireward.data.records import responses_of
        from omnireward.scoring.batch import line_for

        gc.collect()
        self.most = max(self.most, self.alive["n"])
        return [line_for(r, [float(len(x.text)) for x in responses_of(r)]) for r in planned.records]


def test_records_are_not_all_held_while_a_large_file_is_scored(tmp_path, monkeypatch):
    import omnireward.scoring.plan as plan_mod
    from omnireward.scoring.identity import run_identity
    from omnireward.scoring.stream import score_stream

    n = 1500  # fifteen windows of 100
    src = write_jsonl(tmp_path / "big.jsonl", mixed_records(n))
    alive = {"n": 0}
    real = plan_mod.read_records

    def gone():
        alive["n"] -= 1

    def counted(*a, **kw):
        for line, rec in real(*a, **kw):
            alive["n"] += 1
            weakref.finalize(rec, gone)
            yield line, rec

    monkeypatch.setattr("omnireward.scoring.stream.read_records", counted)
    monkeypatch.setattr(plan_mod, "WINDOW", 100)
    monkeypatch.setattr(plan_mod.plan, "__defaults__", (100,))
    scorer = _CountingScorer(alive)
    s = score_stream(
        src,
        tmp_path / "s.jsonl",
        lambda: scorer,
        run_identity(None, src, {}),
        batch_size=10,
        workers=0,
        show_progress=False,
    )
    assert s["n_scored"] == n
    assert 0 < scorer.most <= 120, scorer.most  # one window (+ the batch in hand), not the file
    assert sum(1 for _ in open(tmp_path / "s.jsonl")) == n


# ---- group records ----------------------------------------------------------------------------
def test_group_summary_win_rate_and_ranking():
    from omnireward.scoring.summary import summarize_lines

    lines = [
        {
            "id": "a",
            "rewards": [3.0, 1.0, 2.0],
            "ranking": [0, 2, 1],
            "best": 0,
            "gold_best": 0,
            "gold_ranking": [0, 2, 1],
        },
        {"id": "b", "rewards": [0.0, 1.0], "ranking": [1, 0], "best": 1, "gold_best": 0, "gold_ranking": [0, 1]},
        {"id": "c", "rewards": [0.0, 1.0, 5.0, 2.0], "ranking": [2, 3, 1, 0], "best": 2},
        {"id": "p", "margin": 1.0, "preference": "response1", "task": "text_to_text"},
    ]
    s = summarize_lines(lines)
    g = s["groups"]
    assert s["n"] == 1 and s["n_scored"] == 4
    assert g["n"] == 3 and g["n_with_best"] == 2 and g["best_of_n_win_rate"] == 0.5
    assert g["best_of_n_chance"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert g["n_with_ranking"] == 2 and g["ranking_pair_accuracy"] == pytest.approx(3 / 4)
    assert g["ranking_kendall_tau"] == pytest.approx((1.0 + -1.0) / 2)


@pytest.mark.parametrize(
    "record,field,reason",
    [
        ({"responses": ["only one"]}, "responses", "at least 2"),
        ({"responses": "a, b"}, "responses", "expected a list"),
        ({"responses": ["a", "b"], "best": 2}, "best", "0 to 1"),
        ({"responses": ["a", "b"], "best": True}, "best", "0 to 1"),
        ({"responses": ["a", "b", "c"], "ranking": [0, 0, 1]}, "ranking", "every index"),
        ({"responses": ["a", "b", "c"], "ranking": [0, 1]}, "ranking", "every index"),
        ({"responses": ["a", "b"], "best": 0, "ranking": [1, 0]}, "best", "ranking starts with 1"),
        ({"responses": ["a", 3]}, "responses[1]", "expected a string or an object"),
        ({"responses": ["a", "b"], "response1": "c"}, "response1", "not both"),
        ({"responses": ["a", "b"], "preference": "response1"}, "preference", "best"),
    ],
)
def test_bad_groups_are_named_by_file_line_and_field(tmp_path, record, field, reason):
    from omnireward.data.validate import validate

    src = write_jsonl(
        tmp_path / "g.jsonl",
        [{"id": "ok", "prompt": "p", "responses": ["x", "y"], "best": 1}, {"id": "bad", "prompt": "p", **record}],
    )
    problems = validate(src, decode_media=False)
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{src}:2: {field}: ") and reason in problems[0].reason


def test_groups_with_media_validate_and_round_trip(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    from omnireward.data.formats import load
    from omnireward.data.validate import validate

    Image.fromarray(skdata.coffee()).resize((32, 32)).save(tmp_path / "a.png")
    rec = {
        "id": "g",
        "prompt": "a cup",
        "responses": [
            {"media": [{"type": "image", "path": "a.png"}]},
            {"text": "x", "media": [{"type": "image", "path": "nope.png"}]},
        ],
        "ranking": [1, 0],
    }
    src = write_jsonl(tmp_path / "g.jsonl", [rec])
    problems = validate(src)
    assert [p.field for p in problems] == ["responses[1].media[0].path"]
    [res] = list(load(src))
    assert res.record.task == "text_to_image" and res.record.gold_best == 1
    assert res.record.responses[0].media[0].path == str(tmp_path / "a.png")
    assert res.record.to_dict()["ranking"] == [1, 0]


def test_progress_bar_shows_speed_in_the_records_kind():
    from omnireward.scoring.progress import RateColumn, progress

    with progress() as bar:
        t = bar.add_task("scoring", total=10, unit="pairs", visible=False)
        bar.advance(t, 4)
        task = bar.tasks[0]
        assert "pairs/s" in RateColumn().render(task).plain
    assert any("ETA" in str(getattr(c, "text_format", "")) for c in progress().columns)


def test_score_help_explains_the_streaming_options():
    r = subprocess.run(
        [*EXE, "score", "--help"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}
    )
    for option in (
        "--overwrite",
        "--workers",
        "--on-bad-record",
        "--engine",
        "--address",
        "--num-workers",
        "--gpus-per-worker",
        "--format",
    ):
        assert option in r.stdout


def test_scores_and_a_report_written_into_the_model_folder_leave_it_the_same_model(model_dir, tmp_path):
    """`make demo` scores into RUN/test.scores.jsonl and renders RUN/report: rerunning the same
    command continues (the folder's model files did not change), it is not refused as another model."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(model_dir, run)
    src = write_jsonl(tmp_path / "in.jsonl", mixed_records(12))
    first = _score(src, run, run / "test.scores.jsonl")
    _score(src, run, run / "other.scores.jsonl")
    (run / "report").mkdir()
    (run / "report" / "index.html").write_text("<html></html>")
    assert _score(src, run, run / "test.scores.jsonl") == first


def test_the_input_is_resolved_once_per_score_run(model_dir, tmp_path, monkeypatch):
    """One InputSource per run: the format detected once, the records counted once, the contents
    digested once (each used to be done by every step that needed it)."""
    import omnireward.data.formats as formats
    import omnireward.scoring.identity as identity
    import omnireward.scoring.source as source
    from omnireward.data.formats.detect import detect_format
    from omnireward.data.io import count_records

    calls = {"detect": 0, "count": 0, "digest": 0}

    def counted(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)

        return wrapper

    monkeypatch.setattr(formats, "detect_format", counted("detect", detect_format))
    monkeypatch.setattr(source, "count_records", counted("count", count_records))
    monkeypatch.setattr("omnireward.data.io.count_records", counted("count", count_records))
    monkeypatch.setattr(identity, "tree_digest", counted("digest", identity.tree_digest))
    src = write_jsonl(tmp_path / "in.jsonl", text_pairs(12, seed=3))
    summary = _score(src, model_dir, tmp_path / "s.jsonl", batch_size=4)
    assert summary["n_scored"] == 12
    assert calls["detect"] == 1 and calls["count"] == 1
    assert calls["digest"] == 2  # the model folder and the input, once each
    opened = source.InputSource.open(src)
    assert (opened.format, opened.count) == ("native", 12) and opened.identity["sha256"]
    with pytest.raises(DataFormatError, match="missing.jsonl: no such file"):
        source.InputSource.open(tmp_path / "missing.jsonl")
