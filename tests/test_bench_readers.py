"""The reward-bench and VideoGen-RewardBench readers on their fixtures, and `eval` on each printing
the benchmark's own headline metric beside ours."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omnireward.cli.app import app
from omnireward.data.formats import detect_format, load
from omnireward.errors import DataFormatError
from omnireward.report.headline import REWARDBENCH_COUNTS, REWARDBENCH_SECTIONS

FIX = Path(__file__).resolve().parent / "fixtures"
RB = FIX / "rewardbench" / "rewardbench_sample.jsonl"
VG = FIX / "videogen_rewardbench" / "videogen-rewardbench.csv"


def test_rewardbench_reader_keeps_subset_and_puts_chosen_first():
    assert detect_format(RB) == "rewardbench"
    res = list(load(RB))
    assert all(r.ok for r in res) and len(res) == 12
    first = res[0].record
    raw = json.loads(RB.read_text().splitlines()[0])
    assert first.id == str(raw["id"]) and first.task == "text_to_text" and first.preference == "response1"
    assert first.response1.text == raw["chosen"] and first.response2.text == raw["rejected"]
    assert first.meta == {
        "subset": raw["subset"],
        "chosen_model": raw["chosen_model"],
        "rejected_model": raw["rejected_model"],
    }
    # The fixture covers all four sections with the benchmark's own subset names.
    subsets = {r.record.meta["subset"] for r in res}
    assert subsets <= set(REWARDBENCH_COUNTS)
    assert all(set(members) & subsets for members in REWARDBENCH_SECTIONS.values())


def test_rewardbench_bad_record_is_named(tmp_path):
    bad = tmp_path / "rb.jsonl"
    bad.write_text(
        RB.read_text().splitlines()[0]
        + "\n"
        + json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "subset": 3})
        + "\n"
    )
    res = list(load(bad, "rewardbench"))
    assert res[0].ok and not res[1].ok
    assert str(res[1].error) == f"{bad}:2: subset: expected a string, got a number"


def test_videogen_reader_maps_labels_and_keeps_dimensions():
    assert detect_format(VG) == "videogenrewardbench"
    res = list(load(VG, check_media=True))
    assert all(r.ok for r in res) and [r.line for r in res] == [2, 3, 4, 5, 6, 7]
    recs = [r.record for r in res]
    assert [r.preference for r in recs] == ["response1", "response2", "tie", "response1", "response2", "tie"]
    assert recs[0].id == "videogen-rewardbench-2" and recs[0].task == "text_to_video"
    assert recs[0].response1.media[0].type == "video"
    assert recs[0].response1.media[0].path == str(VG.parent / "videos" / "clip_a.mp4")
    assert recs[3].response1.media[0].path == str(VG.parent / "videos" / "clip_a.mp4")  # "./videos/..." too
    assert recs[1].meta == {"VQ": "B", "MQ": "same", "TA": "B", "A_model": "model-y", "B_model": "model-z"}
    # VQ / MQ / TA are also the pair's per-dimension labels (what head=multi trains on).
    assert recs[1].dimension_preferences == {
        "visual_quality": "response2",
        "motion_quality": "tie",
        "text_alignment": "response2",
    }
    assert recs[1].to_dict()["preference"] == {
        "visual_quality": "response2",
        "motion_quality": "tie",
        "text_alignment": "response2",
        "overall": "response2",
    }


def test_videogen_reader_errors_name_file_line_and_column(tmp_path):
    bad = tmp_path / "v.csv"
    lines = VG.read_text().splitlines()
    bad.write_text("\n".join([lines[0], lines[1], lines[2].replace(",B,same,B,B,", ",B,same,B,C,")]) + "\n")
    res = list(load(bad))
    assert res[0].ok and str(res[1].error) == f"{bad}:3: Overall: unknown label 'C' (expected A, B or same)"
    nohead = tmp_path / "n.csv"
    nohead.write_text("path_A,path_B,prompt\nx.mp4,y.mp4,hi\n")
    with pytest.raises(DataFormatError, match=r"n.csv:1: missing column\(s\) Overall"):
        list(load(nohead))
    other = tmp_path / "o.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(DataFormatError, match="read only as VideoGen-RewardBench"):
        detect_format(other)


def test_eval_scores_file_prints_videogen_headline_beside_ours(tmp_path):
    recs = [r.record for r in load(VG)]
    margins = [0.9, -0.4, 0.05, -0.2, -1.0, 0.3]  # right, right, tie-ish, wrong, right, far from tie
    scores = tmp_path / "vg.scores.jsonl"
    scores.write_text(
        "".join(
            json.dumps({"id": r.id, "task": r.task, "margin": m, "preference": r.preference}) + "\n"
            for r, m in zip(recs, margins)
        )
    )
    res = CliRunner().invoke(app, ["eval", str(scores), "--data", str(VG), "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "VideoGen-RewardBench: its own metric" in res.output and "reward accuracy" in res.output
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    head = summary["headline"]
    assert summary["benchmark"] == "videogenrewardbench"
    assert head["overall"]["without_ties"] == pytest.approx(3 / 4)
    # |m| order: .05 (tie) .2 (A, wrong) .3 (tie) .4 (B right) .9 (A right) 1.0 (B right):
    # k=1 -> 1+3=4/6, k=2 -> 4/6, k=3 -> 2 ties + 3 right = 5/6, k=4 -> 2+2=4/6 ...
    assert head["overall"]["with_ties"] == pytest.approx(5 / 6)
    # VQ labels A B same A B A: the same margins are right on 4 of the 5 non-tie pairs.
    assert head["dimensions"]["VQ"]["without_ties"] == pytest.approx(4 / 5)
    assert set(head["dimensions"]) == {"VQ", "MQ", "TA"}
    assert "Overall with ties 83.3%" in (tmp_path / "rep" / "index.html").read_text()


def test_eval_with_a_model_scores_rewardbench_and_reports_its_score(tmp_path):
    from _deploy_utils import text_set, train_tiny

    model = train_tiny(
        text_set(tmp_path / "data", n_train=32, n_val=16, n_test=8), tmp_path / "run", "trainer.max_epochs=1"
    )
    res = CliRunner().invoke(
        app,
        ["eval", str(RB), "--model", str(model), "-o", str(tmp_path / "rb.json"), "--report", str(tmp_path / "rep")],
    )
    assert res.exit_code == 0, res.output
    assert "RewardBench: its own metric" in res.output
    for section in REWARDBENCH_SECTIONS:
        assert section in res.output
    lines = [json.loads(x) for x in (tmp_path / "rb.scores.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    head = json.loads((tmp_path / "rep" / "summary.json").read_text())["headline"]
    by_id = {x["id"]: x["margin"] > 0 for x in lines}
    subset_of = {r.record.id: r.record.meta["subset"] for r in load(RB)}
    assert head["subsets"] == {s: float(by_id[i]) for i, s in sorted(subset_of.items(), key=lambda t: t[1])}
    assert head["value"] == pytest.approx(sum(head["sections"].values()) / 4)
