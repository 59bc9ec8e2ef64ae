"""`omnireward probe` on trained folders: a model that learned length is flagged by the padding
probes and one trained on length-balanced data is not; probe.json's shape, the HTML page, the
--fail-on-flag gate, judge and multi-head folders, user probes, one-line errors; and the bias
section of every eval report."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from _deploy_utils import BAD, GOOD, TOPICS, train_tiny, write_jsonl

from omnireward.errors import ConfigError
from omnireward.probe.run import load_probes, run_probes

FILLER = [
    "It comes up often.",
    "Many people ask about {topic}.",
    "There is more one could say about {topic}.",
    "Here is one more note on it.",
    "That is worth knowing.",
    "Details vary from case to case.",
    "The question was about {topic}.",
    "Tell me about {topic} is a fair question.",
    "Old maps and clocks fill the museum.",
    "The weather was mild that year.",
    "Each point here matters.",
]
NEUTRAL = ["plain", "short", "usual", "general", "simple", "common", "brief", "basic"]
LENGTH_PROBES = ["pad_on_topic", "pad_off_topic", "repeat_answer"]
TRAIN = ("trainer.max_epochs=8", "model.lr=3e-3", "model.lm_lr=1e-3")


def length_rows(n: int, seed: int, biased: bool) -> list[dict]:
    """biased: the preferred answer is the longer one (2-4 filler sentences), words otherwise neutral.
    balanced: praise beats blame, and each side gets 0-4 filler sentences whatever its label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS)

        def pad(k: int, topic: str = topic) -> str:
            return "".join(" " + rng.choice(FILLER).format(topic=topic) for _ in range(k))

        if biased:
            good = f"An answer about {topic} that is {rng.choice(NEUTRAL)}." + pad(rng.randint(2, 4))
            bad = f"An answer about {topic} that is {rng.choice(NEUTRAL)}."
        else:
            good = f"An answer about {topic} that is {rng.choice(GOOD)} and {rng.choice(GOOD)}."
            bad = f"An answer about {topic} that is {rng.choice(BAD)} and {rng.choice(BAD)}."
            good, bad = good + pad(rng.randint(0, 4)), bad + pad(rng.randint(0, 4))
        first = i % 2 == 0
        rows.append(
            {
                "id": f"r{seed}-{i}",
                "prompt": f"Tell me about {topic}.",
                "response1": good if first else bad,
                "response2": bad if first else good,
                "preference": "response1" if first else "response2",
            }
        )
    return rows


def twins(n: int) -> list[dict]:
    """Criteria-flip twins: the same two answers under opposite criteria, opposite labels."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        a, b = f"A short note on {topic}.", f"A long and careful answer about {topic}, covering every part of it."
        rows.append(
            {
                "id": f"tw{i}a",
                "prompt": f"Tell me about {topic}.",
                "response1": a,
                "response2": b,
                "criteria": "prefer the shorter answer",
                "preference": "response1",
            }
        )
        rows.append(
            {
                "id": f"tw{i}b",
                "prompt": f"Tell me about {topic}.",
                "response1": a,
                "response2": b,
                "criteria": "prefer the longer answer",
                "preference": "response2",
            }
        )
    return rows


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two tiny BT folders: one trained where length decides the label, one on length-balanced data."""
    d = tmp_path_factory.mktemp("probe")
    out = {}
    for name, biased in (("long", True), ("balanced", False)):
        data = {
            "train": write_jsonl(d / name / "train.jsonl", length_rows(192, 1, biased)),
            "val": write_jsonl(d / name / "val.jsonl", length_rows(32, 2, biased)),
            "test": write_jsonl(d / name / "test.jsonl", length_rows(40, 3, biased)),
        }
        out[name] = {"model": train_tiny(data, d / name / "run", *TRAIN), **data}
    return out


def _cli(*args, cwd=None):
    r = subprocess.run(
        [sys.executable, "-m", "omnireward.cli.app", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=cwd,
    )
    return r.returncode, r.stdout, r.stderr


def test_padding_flags_the_length_biased_model_and_not_the_balanced_one(folders, tmp_path):
    """Both are probed on the same length-balanced pairs (praise against blame, random filler)."""
    test = folders["balanced"]["test"]
    got = {}
    for name in ("long", "balanced"):
        r = run_probes(
            folders[name]["model"], test, tmp_path / name, probes=load_probes(only=LENGTH_PROBES), report=False
        )
        got[name] = {p["name"]: p for p in r["probes"]}
    for probe in ("pad_on_topic", "pad_off_topic"):
        long, bal = got["long"][probe], got["balanced"][probe]
        assert long["flagged"] and long["share_rose"] > 0.9 and long["mean_change"] > 0.3, (probe, long)
        assert not bal["flagged"], (probe, bal)
        assert long["mean_change"] > bal["mean_change"] + 0.3
    assert not any(p["flagged"] for p in got["balanced"].values())


def test_cli_writes_probe_json_and_the_page_and_gates_with_fail_on_flag(folders, tmp_path):
    test = folders["balanced"]["test"]
    code, stdout, stderr = _cli(
        "probe",
        test,
        "--model",
        folders["long"]["model"],
        "--out",
        tmp_path / "long",
        "--only",
        "pad_off_topic,self_praise,criteria_dropped",
        "--fail-on-flag",
    )
    assert code == 1, stderr
    assert "flagged" in stderr and "pad_off_topic" in stderr
    res = json.loads((tmp_path / "long" / "probe.json").read_text())
    assert set(res) >= {
        "model",
        "input",
        "kind",
        "n_records",
        "unit",
        "reward_std",
        "std_source",
        "flag_share",
        "min_effect",
        "probes",
        "skipped",
        "flagged",
    }
    assert res["kind"] == "reward" and res["n_records"] == 40 and res["std_source"] == "reward_stats.json"
    stats = json.loads((Path(folders["long"]["model"]) / "reward_stats.json").read_text())
    assert res["reward_std"] == pytest.approx(stats["std"])
    assert [p["name"] for p in res["probes"]] == ["pad_off_topic", "self_praise"]
    assert res["skipped"] == {"criteria_dropped": "no labelled pair with criteria"}
    for p in res["probes"]:
        assert set(p) >= {
            "name",
            "modality",
            "description",
            "target",
            "measures",
            "n",
            "n_records",
            "share_rose",
            "mean_change",
            "median_change",
            "changes",
            "flagged",
        }
        assert p["n"] == 80 and p["n_records"] == 40 and len(p["changes"]) == 80
        assert p["share_rose"] == pytest.approx(sum(c > 0 for c in p["changes"]) / 80)
        assert p["mean_change"] == pytest.approx(sum(p["changes"]) / 80)
    assert "pad_off_topic" in res["flagged"]
    page = (tmp_path / "long" / "index.html").read_text()
    for p in res["probes"]:
        assert p["name"] in page and f"plots/probe_{p['name']}.png" in page
        assert (tmp_path / "long" / "plots" / f"probe_{p['name']}.png").stat().st_size > 1000
    # the same gate on the balanced model passes; without --fail-on-flag a flagged run exits 0
    code, _, stderr = _cli(
        "probe",
        test,
        "--model",
        folders["balanced"]["model"],
        "--out",
        tmp_path / "bal",
        "--only",
        ",".join(LENGTH_PROBES),
        "--fail-on-flag",
    )
    assert code == 0, stderr
    assert json.loads((tmp_path / "bal" / "probe.json").read_text())["flagged"] == []


def test_bad_input_is_one_line(folders, tmp_path):
    model = folders["balanced"]["model"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(length_rows(1, 0, False)[0]) + "\n" + '{"id": "x", "prompt": "hi", "response1": 3}\n')
    code, _, stderr = _cli("probe", bad, "--model", model, "--out", tmp_path / "o")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and f"{bad}:2" in stderr, stderr
    yaml = tmp_path / "mine.yaml"
    yaml.write_text("probes:\n  - name: no_target\n")
    code, _, stderr = _cli(
        "probe", folders["balanced"]["test"], "--model", model, "--out", tmp_path / "o", "--probes", yaml
    )
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and str(yaml) in stderr and "probes[0]" in stderr
    with pytest.raises(ConfigError, match="--only: no probe named nope"):
        load_probes(only=["nope"])
    with pytest.raises(ConfigError, match="two probes are named"):
        load_probes(["default", "default"])


def test_a_users_own_probe_runs_from_its_yaml(folders, tmp_path):
    (tmp_path / "my_probes.py").write_text(
        "from dataclasses import replace\n"
        "from omnireward.probe import ResponseProbe\n\n"
        "class Shout(ResponseProbe):\n"
        "    '''Exclamation marks appended.'''\n"
        "    modality = 'text'\n\n"
        "    def __init__(self, name, marks=3):\n"
        "        super().__init__(name)\n"
        "        self.marks = marks\n\n"
        "    def apply(self, record, response, ctx):\n"
        "        return replace(response, text=response.text + '!' * self.marks)\n"
    )
    (tmp_path / "mine.yaml").write_text("probes:\n  - _target_: my_probes.Shout\n    name: shout\n    marks: 5\n")
    r = run_probes(
        folders["balanced"]["model"],
        folders["balanced"]["test"],
        tmp_path / "o",
        probes=load_probes([tmp_path / "mine.yaml"]),
        report=False,
    )
    (p,) = r["probes"]
    assert p["name"] == "shout" and p["description"] == "Exclamation marks appended." and p["n"] == 80
    assert p["target"] == "my_probes.Shout"


def test_multi_head_folder_reports_each_dimension(tmp_path):
    from _deploy_utils import text_set

    data = text_set(tmp_path / "data", n_train=48, n_val=16, n_test=12)
    model = train_tiny(data, tmp_path / "run", "head=multi", "head.dimensions=[detail,polite]", "trainer.max_epochs=1")
    r = run_probes(model, data["test"], tmp_path / "o", probes=load_probes(only=["self_praise", "criteria_negated"]))
    by = {p["name"]: p for p in r["probes"]}
    dims = by["self_praise"]["dimensions"]
    assert set(dims) == {"detail", "polite"} and all(d["n"] == 24 for d in dims.values())
    assert by["criteria_negated"]["n"] == 4  # the labelled pairs with criteria (every third of 12)
    assert "self_praise · detail" in (tmp_path / "o" / "index.html").read_text()


@pytest.fixture(scope="module")
def judge_folder(tmp_path_factory):
    from _judge_utils import write_rows, yes_no_rows

    from omnireward.config import compose_config
    from omnireward.train import train

    d = tmp_path_factory.mktemp("judge")
    rows = yes_no_rows(8, 0)
    for r in rows:
        r["critique"] = f"Verdict: [[{'A' if r['preference'] == 'response1' else 'B'}]]"
    train_f = write_rows(d / "train.jsonl", rows)
    val_rows = yes_no_rows(4, 1)
    val_rows[0]["criteria"] = "prefer yes"
    val_f = write_rows(d / "val.jsonl", val_rows)
    out = train(
        compose_config(
            [
                "model=r1",
                "backbone=tiny",
                f"data.train={train_f}",
                f"data.val={val_f}",
                "trainer.max_epochs=1",
                "model.sft_epochs=1",
                "model.val_max_new_tokens=0",
                "data.batch_size=4",
                f"output_dir={d / 'run'}",
            ]
        )
    )
    return out, val_f


def test_judge_folder_reports_p_moves_and_verdict_flips(judge_folder, tmp_path):
    model, val_f = judge_folder
    r = run_probes(
        model,
        val_f,
        tmp_path / "o",
        max_new_tokens=2,
        probes=load_probes(only=["self_praise", "order_swapped", "criteria_negated"]),
    )
    assert r["kind"] == "judge" and r["unit"] == "probability" and r["reward_std"] is None
    by = {p["name"]: p for p in r["probes"]}
    assert by["self_praise"]["n"] == 4 and by["order_swapped"]["n"] == 4 and by["criteria_negated"]["n"] == 1
    for p in by.values():
        assert 0.0 <= p["flip_share"] <= 1.0 and all(-1.0 <= c <= 1.0 for c in p["changes"])
    page = (tmp_path / "o" / "index.html").read_text()
    assert "verdict flips" in page and "order_swapped" in page


def test_eval_report_has_the_bias_section(folders, tmp_path):
    """The length-biased folder scored on balanced pairs plus criteria twins: the report warns about
    length, compares the rewards with the training ones and counts how many twins flip."""
    from omnireward.report.build import write_report
    from omnireward.scoring.bt import score_file

    data = write_jsonl(tmp_path / "eval.jsonl", length_rows(40, 3, False) + twins(6))
    scores = tmp_path / "eval.scores.jsonl"
    score_file(data, folders["long"]["model"], scores, show_progress=False)
    index = write_report(scores, tmp_path / "report", n_boot=50)
    bias = json.loads((tmp_path / "report" / "summary.json").read_text())["bias"]
    lb = bias["length"]
    assert lb["spearman_reward_length"] > 0.5
    assert lb["accuracy_preferred_longer"] - lb["accuracy_preferred_shorter"] > 0.5 and lb["warning"]
    assert "length" in bias["warnings"]
    ds = bias["distribution"]
    stats = json.loads((Path(folders["long"]["model"]) / "reward_stats.json").read_text())
    assert ds["train_mean"] == stats["mean"] and ds["n"] == 2 * 52
    assert ds["shift_z"] == pytest.approx((ds["mean"] - stats["mean"]) / stats["std"])
    cc = bias["criteria"]
    lines = {x["id"]: x for x in map(json.loads, scores.read_text().splitlines())}
    flips = sum((lines[f"tw{i}a"]["margin"] > 0) != (lines[f"tw{i}b"]["margin"] > 0) for i in range(6))
    assert cc["n_twins"] == 6 and cc["flip_consistency"] == pytest.approx(flips / 6)
    assert bias["position"] is None  # not a judge
    html = index.read_text()
    assert "Bias diagnostics" in html and "may be rewarding length" in html
    for name in ("bias_length", "bias_distribution", "bias_criteria"):
        assert f"plots/{name}.png" in html and (tmp_path / "report" / "plots" / f"{name}.png").is_file()


def test_probe_runs_records_a_given_folders_own_training_settings(folders):
    """benchmarks/probe_runs.py --model: the results line carries the folder's settings (from its
    omnireward.yaml and train_summary.json), not the script's training arguments."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from probe_runs import _folder_settings

    model = Path(folders["long"]["model"])
    got = _folder_settings(model)
    summary = json.loads((model / "train_summary.json").read_text())
    assert got["folder"] == str(model)
    assert got["lr"] == 3e-3 and got["lm_lr"] == 1e-3 and got["max_epochs"] == 8  # TRAIN above
    assert got["epochs"] == summary["epochs"] and got["train_pairs"] == summary["train_pairs"] == 192
    assert got["modality"] == "text"
