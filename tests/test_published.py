"""The shipped published-results files: every row loads with its source, per-task keys are the
package's task names, and where a benchmark defines its summary column as a mean of the per-task
columns, each row's printed summary agrees with that mean within the rounding of the figures."""

import pytest

from omnireward.data.records import TASKS
from omnireward.errors import DataFormatError
from omnireward.report import published
from omnireward.report.published import comparison, known, load

# (benchmark, summary column, the columns it averages or None for "every other column", tolerance).
# Omni-RewardBench: Omni-Reward (arXiv 2510.23451) Appendix G, "we compute the overall score by
#   averaging the performance across all modalities supported by a given model" -> mean of the
#   tasks present in the row; figures have 2 decimals, so mean and overall may differ by 0.005 + 0.005.
# VL-RewardBench: macro is the mean of general, hallucination and reasoning (1 decimal each).
# GenAI-Bench: show_results.py (main_merged) rounds np.mean of the three rounded splits to 2 decimals.
MEANS = [
    ("omnirewardbench", "overall", None, 0.01),
    ("vlrewardbench", "macro", ("general", "hallucination", "reasoning"), 0.1),
    ("genaibench", "average", ("image_generation", "image_editing", "video_generation"), 0.0051),
]


def test_every_shipped_file_loads_and_every_row_names_its_source():
    assert {"omnirewardbench", "vlrewardbench", "genaibench"} <= set(known())
    for bench in known():
        doc = load(bench)
        assert doc["benchmark"] == bench and doc["rows"]
        for row in doc["rows"]:
            assert row["metric"] in doc["metrics"] or row["metric"] == "vl", (bench, row["model"])
            assert all(isinstance(v, (int, float)) and 0 <= v <= 100 for v in row["values"].values())
            assert len(row["source"]) > 20


def test_omnirewardbench_per_task_rows_use_the_package_task_names():
    rows = load("omnirewardbench")["rows"]
    per_task = [r for r in rows if set(r["values"]) - {"overall"} and r["metric"] != "lightrft_accuracy"]
    models = {r["model"] for r in per_task}
    assert {
        "Omni-RewardModel-BT",
        "Omni-RewardModel-R1",
        "Claude 3.5 Sonnet",
        "Gemma-3 27B",
        "UnifiedReward1.5",
    } <= models
    for r in per_task:
        tasks = set(r["values"]) - {"overall"}
        assert tasks <= set(TASKS), (r["model"], tasks - set(TASKS))
        assert "overall" in r["values"] and r["metric"] == "accuracy_with_ties"
    bt = next(r for r in per_task if r["model"] == "Omni-RewardModel-BT")
    assert set(bt["values"]) - {"overall"} == set(TASKS)  # the omni-modal model covers all nine tasks
    r1 = next(r for r in per_task if r["model"] == "Omni-RewardModel-R1")
    assert not {"text_audio_to_text", "text_to_audio"} & set(r1["values"])  # no audio input: printed "-"
    # the overall figures the paper states in its text are the ones in the per-task rows
    stated = {"Omni-RewardModel-BT": 65.36, "Claude 3.5 Sonnet": 66.54, "Gemma-3 27B": 65.12, "UnifiedReward1.5": 59.69}
    for r in per_task:
        if r["model"] in stated:
            assert r["values"]["overall"] == stated[r["model"]]


def test_lightrft_rows_keep_their_own_metric_and_the_task_they_were_measured_on():
    rows = [r for r in load("omnirewardbench")["rows"] if r["metric"] == "lightrft_accuracy"]
    assert {tuple(r["values"]) for r in rows} <= {("text_to_audio",), ("text_to_image",)}
    assert max(r["values"]["text_to_audio"] for r in rows if "text_to_audio" in r["values"]) == 70.32
    assert all("LightRFT" in r["source"] and "193c76f9" in r["source"] for r in rows)


@pytest.mark.parametrize("bench,summary,parts,tol", MEANS)
def test_summary_column_is_the_mean_of_the_parts_within_rounding(bench, summary, parts, tol):
    checked = 0
    for r in load(bench)["rows"]:
        v = r["values"]
        cols = [c for c in (parts or v) if c != summary and c in v]
        if summary not in v or not cols:
            continue
        mean = sum(v[c] for c in cols) / len(cols)
        assert mean == pytest.approx(v[summary], abs=tol), (bench, r["model"], mean, v[summary])
        checked += 1
    assert checked >= 4


def test_a_changed_cell_breaks_the_mean_check():
    """The mean check can fail: one task figure off by a point moves the mean past the tolerance."""
    row = next(
        r
        for r in load("omnirewardbench")["rows"]
        if r["model"] == "Omni-RewardModel-BT" and r["metric"] == "accuracy_with_ties"
    )
    v = dict(row["values"], text_to_text=row["values"]["text_to_text"] + 1.0)
    mean = sum(x for k, x in v.items() if k != "overall") / 9
    assert abs(mean - v["overall"]) > 0.01


def test_per_task_rows_sit_beside_the_runs_per_task_figures():
    def part(a):
        return {"accuracy_with_ties": a, "accuracy_without_ties": a + 0.1}

    accuracy = {"overall": part(0.6), "per_task": {"text_to_audio": part(0.5), "text_to_text": part(0.7)}}
    comp = comparison("omnirewardbench", accuracy)
    assert comp["columns"] == ["text_to_audio", "text_to_text", "overall"]
    ours = next(s for s in comp["series"] if s["label"] == "this run (w/ ties)")
    assert ours["values"] == {"text_to_audio": 0.5, "text_to_text": 0.7, "overall": 0.6}
    bt = next(s for s in comp["series"] if s["label"] == "Omni-RewardModel-BT (w/ ties)")
    assert bt["values"] == pytest.approx({"text_to_audio": 0.6399, "text_to_text": 0.753, "overall": 0.6536})
    claude = next(s for s in comp["series"] if s["label"] == "Claude 3.5 Sonnet (w/ ties)")
    assert "text_to_audio" not in claude["values"]  # a task the model cannot take has no bar


def test_a_row_without_a_source_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "x.yaml").write_text(
        "benchmark: x\nrows:\n  - {model: m, metric: accuracy_with_ties, values: {text_to_text: 50}}\n"
    )
    monkeypatch.setattr(published.resources, "files", lambda _pkg: tmp_path)
    with pytest.raises(DataFormatError, match="source"):
        load("x")
