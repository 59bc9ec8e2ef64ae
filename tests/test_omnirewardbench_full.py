"""`omnireward bench omnirewardbench` on a small benchmark built in the published layout
({task}_preferences.json files beside media_data.zip, media paths relative to media_data/):
media extracted, pairs prepared, scored with a tiny model, and the paper's table written beside
the published rows with their sources."""

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omnireward.bench.omnirewardbench import COLUMNS, extract_media, paper_table
from omnireward.cli.app import app
from omnireward.errors import DataFormatError

IMAGES = Path(__file__).resolve().parent / "fixtures" / "mmrb2" / "images"


def build(folder: Path, nested: bool = True) -> Path:
    """Three of the nine task files, in the documented fields, and the media zip."""
    folder.mkdir(parents=True, exist_ok=True)
    t2t = [
        {
            "id": str(i),
            "prompt": f"Question {i}: name a colour.",
            "response1": "Red." if i % 2 else "Banana.",
            "response2": "Banana." if i % 2 else "Blue.",
            "model1": "a",
            "model2": "b",
            "criteria": "prefer a correct answer",
            "criteria_preference": ["response2", "response1", "tie"][i % 3],
        }
        for i in range(6)
    ]
    t2i = [
        {
            "id": str(i),
            "prompt": "a cup of coffee",
            "response1_path": "images/coffee.png",
            "response2_path": "images/rocket.png",
            "model1": "x",
            "model2": "y",
            "criteria": "prefer the coffee",
            "criteria_preference": "response1" if i < 2 else "tie",
        }
        for i in range(3)
    ]
    ti2t = [
        {
            "id": str(i),
            "prompt": "What is in the image?",
            "image_path": "images/chelsea.png",
            "response1": "A cat.",
            "response2": "A rocket.",
            "model1": "x",
            "model2": "y",
            "criteria": "prefer the accurate answer",
            "criteria_preference": "response1",
        }
        for i in range(2)
    ]
    for task, rows in (("text_to_text", t2t), ("text_to_image", t2i), ("text_image_to_text", ti2t)):
        (folder / f"{task}_preferences.json").write_text(json.dumps(rows, indent=1))
    with zipfile.ZipFile(folder / "media_data.zip", "w") as z:
        for name in ("coffee", "rocket", "chelsea"):
            z.write(IMAGES / f"{name}.png", f"{'media_data/' if nested else ''}images/{name}.png")
    return folder


@pytest.mark.parametrize("nested", [True, False])
def test_media_zip_is_extracted_to_media_data_either_way(tmp_path, nested):
    folder = build(tmp_path / "b", nested)
    media = extract_media(folder)
    assert media == folder / "media_data" and (media / "images" / "coffee.png").is_file()
    assert not list(folder.glob(".media_data*"))
    assert extract_media(folder) == media  # already there: left alone


def test_bad_archives_and_missing_media_are_one_line_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"neither media_data/ nor media_data.zip here"):
        extract_media(tmp_path)
    with zipfile.ZipFile(tmp_path / "media_data.zip", "w") as z:
        z.writestr("../evil.png", b"x")
    with pytest.raises(DataFormatError, match=r"media_data.zip: archive member '../evil.png' would land outside"):
        extract_media(tmp_path)
    (tmp_path / "media_data.zip").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="not a readable zip archive"):
        extract_media(tmp_path)


def test_paper_table_overall_is_the_mean_of_the_tasks_present():
    summary = {
        "per_task": {
            "text_to_text": {"accuracy_without_ties": 0.8, "accuracy_with_ties": 0.6},
            "text_to_image": {"accuracy_without_ties": 0.5, "accuracy_with_ties": 0.4},
        }
    }
    rows = paper_table(summary)
    assert [r["label"] for r in rows] == ["w/o Ties", "w/ Ties"]
    assert rows[0]["values"]["overall"] == pytest.approx(0.65) and rows[1]["values"]["overall"] == pytest.approx(0.5)


def test_bench_command_prepares_scores_and_renders_the_table(tmp_path):
    from _deploy_utils import text_set, train_tiny

    model = train_tiny(
        text_set(tmp_path / "data", n_train=16, n_val=8, n_test=8),
        tmp_path / "run",
        "modality=image",
        "trainer.max_epochs=1",
    )
    folder = build(tmp_path / "OmniRewardBench")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "omnirewardbench",
            str(folder),
            "--model",
            str(model),
            "--out",
            str(out),
            "--quant",
            "none",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "11 of 11 records" in res.output and "Omni-RewardBench (accuracy, %)" in res.output
    assert (folder / "media_data" / "images" / "coffee.png").is_file() and (folder / "pairs.jsonl").is_file()
    doc = json.loads((out / "table.json").read_text())
    ours = {r["metric"]: r for r in doc["rows"] if r["model"] == "this run"}
    summary = json.loads((out / "omnirewardbench.scores.summary.json").read_text())
    for metric, row in ours.items():
        tasks = {
            t: summary["per_task"][t][metric]
            for t in ("text_to_text", "text_to_image", "text_image_to_text")
            if summary["per_task"][t][metric] is not None
        }
        assert {k: v for k, v in row["values"].items() if k != "overall"} == pytest.approx(tasks)
        assert row["values"]["overall"] == pytest.approx(sum(tasks.values()) / len(tasks))
    published = [r for r in doc["rows"] if r["model"] != "this run"]
    assert {"Omni-RewardModel-BT", "LightRFT MiniCPM-o 2.6 (HPS loss, trained on Audio-Alpaca)"} <= {
        r["model"] for r in published
    }
    md = (out / "table.md").read_text()
    assert "| model | metric | " + " | ".join(h for _, h in COLUMNS) + " | Overall |" in md
    assert "| Omni-RewardModel-BT | w/ Ties | 75.30 |" in md and "Sources:" in md and "193c76f9" in md
