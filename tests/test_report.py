"""`eval --report` and `inspect`: the report folder, every plotted number equal to summary.json,
media copied beside the pages with relative links, and one-line errors."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _report_data import media_set
from matplotlib.container import BarContainer

from omnireward.errors import DataFormatError
from omnireward.metrics import LABEL_SIGN, accuracy_with_ties
from omnireward.report import plots
from omnireward.report.build import write_pairs, write_report


@pytest.fixture(scope="module")
def bt_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bt")
    data, scores = media_set(folder)
    index = write_report(scores, folder / "report", n_boot=200)
    return folder, data, scores, index


def _summary(index: Path) -> dict:
    return json.loads((index.parent / "summary.json").read_text())


def _near(a, b):
    if b is None:
        return math.isnan(a)
    return a == pytest.approx(b, abs=1e-9)


def test_report_folder_has_pages_plots_summary_and_media(bt_report):
    folder, data, scores, index = bt_report
    out = index.parent
    for name in (
        "index.html",
        "pairs.html",
        "summary.json",
        "plots/accuracy.png",
        "plots/tie_curve.png",
        "plots/margins.png",
        "plots/calibration.png",
    ):
        assert (out / name).is_file(), name
    kinds = {p.suffix for p in (out / "media").iterdir()}
    assert {".png", ".mp4", ".flac", ".ply"} <= kinds
    assert len(list((out / "media").glob("*-view*.png"))) == 4  # the mesh's turntable
    s = _summary(index)
    assert s["n_labelled_pairs"] == 40 and s["input"] == str(scores) and s["records"] == str(data)
    lines = [json.loads(x) for x in scores.read_text().splitlines()]
    acc, eps = accuracy_with_ties([x["margin"] for x in lines], [LABEL_SIGN[x["preference"]] for x in lines])
    assert s["accuracy"]["overall"]["accuracy_with_ties"] == pytest.approx(acc)
    assert s["accuracy"]["overall"]["tie_threshold"] == pytest.approx(eps)
    for part in [s["accuracy"]["overall"], *s["accuracy"]["per_task"].values()]:
        for key, ci in (("accuracy_without_ties", "ci_without_ties"), ("accuracy_with_ties", "ci_with_ties")):
            assert part[ci][0] <= part[key] <= part[ci][1]


def test_every_link_is_relative_and_resolves_inside_the_folder(bt_report):
    out = bt_report[3].parent
    for page in ("index.html", "pairs.html"):
        html = (out / page).read_text()
        refs = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
        assert refs
        for ref in refs:
            if ref.startswith(("#", "data:")):
                continue
            assert not ref.startswith(("/", "file:", "http")), ref
            assert (out / ref).resolve().is_file(), ref
            assert out.resolve() in (out / ref).resolve().parents


def test_pairs_page_lists_most_confident_wrong_first_and_escapes_text(bt_report):
    out = bt_report[3].parent
    html = (out / "pairs.html").read_text()
    s = _summary(bt_report[3])
    lines = [json.loads(x) for x in bt_report[2].read_text().splitlines()]
    eps = s["accuracy"]["overall"]["tie_threshold"]

    def wrong(x):
        if eps is not None and abs(x["margin"]) <= eps:
            return x["preference"] != "tie"
        return x["preference"] != ("response1" if x["margin"] > 0 else "response2")

    expected = [x["id"] for x in sorted(filter(wrong, lines), key=lambda x: -abs(x["margin"]))][:24]
    wrong_part = html.split("A random sample of right ones")[0]
    assert re.findall(r"id='pair-(p\d+)'", wrong_part) == expected
    assert "make something &lt;nice&gt;" in html and "<nice>" not in html
    assert "<video" in html and "<audio" in html and "class='turntable'" in html.replace('"', "'")


def _bars(fig, label):
    ax = fig.axes[0]
    cont = next(c for c in ax.containers if isinstance(c, BarContainer) and c.get_label() == label)
    return [r.get_height() for r in cont.patches]


def test_every_plotted_number_equals_summary_json(bt_report):
    s = _summary(bt_report[3])  # read back from disk: the plots must agree with the file
    acc = s["accuracy"]
    parts = [*acc["per_task"].values(), acc["overall"]]
    fig = plots.accuracy(s)
    for label, key in ((plots.W_T, "accuracy_without_ties"), (plots.WITH_T, "accuracy_with_ties")):
        heights = _bars(fig, label)
        assert len(heights) == len(parts)
        assert all(_near(h, p[key]) for h, p in zip(heights, parts))
    # Error bars end at the interval bounds.
    segs = [c for c in fig.axes[0].collections if type(c).__name__ == "LineCollection"]
    ends = sorted(round(y, 9) for seg in segs for line in seg.get_segments() for _, y in line)
    bounds = sorted(round(v, 9) for p in parts for k in ("ci_without_ties", "ci_with_ties") for v in p[k])
    assert ends == bounds

    tc = s["tie_curve"]
    ax = plots.tie_curve(s).axes[0]
    curve = next(line for line in ax.lines if line.get_label() == "accuracy w/ ties at ε")
    assert list(curve.get_xdata()) == pytest.approx(tc["eps"])
    assert list(curve.get_ydata()) == pytest.approx(tc["accuracy"])
    mark = next(line for line in ax.lines if line.get_label().startswith("chosen ε"))
    assert list(mark.get_xdata()) == pytest.approx([tc["chosen_eps"]])
    assert list(mark.get_ydata()) == pytest.approx([tc["chosen_accuracy"]])

    mh = s["margins"]
    ax = plots.margins(s).axes[0]
    steps = {p.get_label().split()[1]: p for p in ax.patches if type(p).__name__ == "StepPatch"}
    assert set(steps) == set(mh["counts"])
    for name, patch in steps.items():
        values, edges, _ = patch.get_data()
        assert list(values) == mh["counts"][name] and list(edges) == pytest.approx(mh["bin_edges"])

    cal = s["calibration"]
    ax = plots.calibration(s).axes[0]
    pts = next(line for line in ax.lines if line.get_label().startswith("bins"))
    used = [b for b in cal["bins"] if b["count"]]
    assert list(pts.get_xdata()) == pytest.approx([b["mean_p"] for b in used])
    assert list(pts.get_ydata()) == pytest.approx([b["share_response1"] for b in used])
    assert f"T = {cal['temperature']:.3g}" in ax.get_xlabel() and f"ECE {cal['ece']:.3f}" in ax.get_title()


def test_judge_report_plots_consistency_and_shows_critiques(tmp_path):
    _, scores = media_set(tmp_path, n=30, judge=True)
    index = write_report(scores, tmp_path / "report", n_boot=100)
    s = _summary(index)
    js = s["judge"]
    assert js["n"] == 30 and js["position_consistency"] == pytest.approx(22 / 30)
    assert js["parseable_share"] == pytest.approx(24 / 30)
    fig = plots.judge(s)
    keys = [k for k in ("parseable_share", "flex_valid_share", "position_consistency") if k in js]
    assert _bars(fig, "judge behaviour") == pytest.approx([js[k] for k in keys])
    assert _bars(fig, "verdict shares") == pytest.approx(list(js["verdicts"].values()))
    assert (index.parent / "plots" / "judge.png").is_file()
    pairs = (index.parent / "pairs.html").read_text()
    assert "Critique" in pairs and "response A is &lt;better&gt;" in pairs
    assert "position consistency" in index.read_text()


def test_published_rows_are_plotted_beside_ours_for_a_known_benchmark(tmp_path):
    _, scores = media_set(tmp_path, n=20)
    index = write_report(scores, tmp_path / "report", benchmark="omnirewardbench", n_boot=50)
    s = _summary(index)
    comp = s["published"]
    # the run's tasks that a published row also reports, then overall
    assert comp["columns"] == [
        "text_to_3d",
        "text_to_audio",
        "text_to_image",
        "text_to_text",
        "text_to_video",
        "overall",
    ]
    ours = {x["metric"]: x["values"] for x in comp["series"] if x["label"].startswith("this run")}
    assert ours["accuracy_with_ties"]["overall"] == pytest.approx(s["accuracy"]["overall"]["accuracy_with_ties"])
    for task in ("text_to_image", "text_to_3d"):
        assert ours["accuracy_with_ties"][task] == pytest.approx(s["accuracy"]["per_task"][task]["accuracy_with_ties"])
    fig = plots.published(s)
    for series in comp["series"]:
        want = [series["values"].get(c, math.nan) for c in comp["columns"]]
        assert _bars(fig, series["label"]) == pytest.approx(want, nan_ok=True)
    bt = next(x for x in comp["series"] if x["label"] == "Omni-RewardModel-BT (w/ ties)")
    assert bt["values"]["text_to_audio"] == pytest.approx(0.6399)
    assert any(
        r["model"] == "Omni-RewardModel-BT" and r["values"]["overall"] == pytest.approx(0.7368) for r in comp["rows"]
    )
    html = index.read_text()
    assert "arXiv 2510.23451" in html and "plots/published.png" in html


def test_inspect_cli_writes_pairs_page_and_refuses_missing_records(tmp_path):
    _, scores = media_set(tmp_path, n=15)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnireward.cli.app",
            "inspect",
            str(scores),
            "--out",
            str(tmp_path / "insp"),
            "--n-wrong",
            "3",
            "--n-right",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "insp" / "pairs.html").read_text()
    assert len(re.findall(r"class='card wrong'", html)) == 3 and len(re.findall(r"class='card right'", html)) == 2
    (tmp_path / "records.scores.summary.json").unlink()
    with pytest.raises(DataFormatError) as e:
        write_pairs(scores, tmp_path / "insp2")
    assert str(e.value) == (
        f"{scores}: cannot find the records these scores belong to (the scores summary names "
        "no input that exists here); pass --data"
    )
    with pytest.raises(DataFormatError, match="--data: no such file"):
        write_pairs(scores, tmp_path / "insp2", data=tmp_path / "nope.jsonl")


def test_eval_cli_report_from_a_scores_file(tmp_path):
    data, scores = media_set(tmp_path, n=12)
    (tmp_path / "records.scores.summary.json").unlink()  # so the records must come from --data
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnireward.cli.app",
            "eval",
            str(scores),
            "--report",
            str(tmp_path / "rep"),
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert f"report: {tmp_path / 'rep' / 'index.html'}" in res.stdout
    pairs = (tmp_path / "rep" / "pairs.html").read_text()
    assert "record not found" not in pairs and "<img" in pairs
