"""Readers for RewardBench 2, MMRB2, Multimodal RewardBench, EditReward-Bench and MJ-Bench on fixtures written
from their documented layouts (tests/fixtures/*/README.md), each benchmark's own scoring rule on
hand-made scores, and `data prep` → `score` → `eval` through the command line with a tiny model."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omnireward.cli.app import app
from omnireward.data.formats import detect_format, load
from omnireward.report.headline import headline
from omnireward.report.headline_rules import rewardbench2_ties

FIX = Path(__file__).resolve().parent / "fixtures"
RB2 = FIX / "rewardbench2" / "rewardbench2_sample.jsonl"
MMRB2 = FIX / "mmrb2"
MMRB = FIX / "mmrewardbench" / "all_data.json"
ERB = FIX / "editrewardbench" / "editreward_bench.jsonl"


def _records(path, fmt="auto"):
    res = list(load(path, fmt, check_media=True))
    assert all(r.ok for r in res), [str(r.error) for r in res if not r.ok]
    return {r.record.id: r.record for r in res}


# ---- readers ---------------------------------------------------------------------------------


def test_rewardbench2_rows_become_groups_with_chosen_first():
    assert detect_format(RB2) == "rewardbench2"
    recs = _records(RB2)
    raw = [json.loads(x) for x in RB2.read_text().splitlines()]
    assert list(recs) == [r["id"] for r in raw]
    g = recs["1"]
    assert g.task == "text_to_text" and g.best == 0 and len(g.responses) == 4
    assert [r.text for r in g.responses] == raw[0]["chosen"] + raw[0]["rejected"]
    assert g.meta == {"subset": "Factuality", "num_correct": 1, "models": ["m1", "m2", "m3", "m4"]}
    assert recs["tied:1"].meta["num_correct"] == 3 and len(recs["tied:1"].responses) == 6
    assert {r.meta["subset"] for r in recs.values()} == {"Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"}


def test_rewardbench2_bad_rows_are_named(tmp_path):
    good = RB2.read_text().splitlines()[0]
    bad = tmp_path / "rb2.jsonl"
    rows = [json.loads(good) for _ in range(4)]
    rows[1]["num_correct"] = 2
    rows[2]["rejected"] = []
    rows[3].update(subset="Ties", id="7")
    bad.write_text("\n".join([good] + [json.dumps(r) for r in rows[1:]]) + "\n")
    res = list(load(bad, "rewardbench2"))
    assert res[0].ok
    assert str(res[1].error) == f"{bad}:2: num_correct: 2 but chosen holds 1 completion(s)"
    assert str(res[2].error) == f"{bad}:3: rejected: expected a non-empty list of completions, got a list (empty)"
    assert str(res[3].error) == f"{bad}:4: id: a Ties row's id reads ref:N or tied:N, got '7'"


def test_mmrb2_folder_reads_every_task_file_with_media_in_order():
    assert detect_format(MMRB2) == "mmrb2" and detect_format(MMRB2 / "edit.json") == "mmrb2"
    recs = _records(MMRB2)
    assert [r.meta["mmrb2_task"] for r in recs.values()] == ["image"] * 3 + ["edit"] * 2 + ["reasoning"]
    t = recs["t2i_2"]
    assert t.task == "text_to_image" and t.preference == "response2" and t.prompt == "a rocket on its launch pad"
    assert t.response1.media[0].path == str(MMRB2 / "images" / "coffee.png")
    e = recs["edit_1"]
    assert e.task == "text_image_to_image" and e.prompt_media[0].path == str(MMRB2 / "images" / "astronaut.png")
    r = recs["reason_1"]
    assert r.response1.text == "Zooming in on the cup:\n\nIt holds coffee." and len(r.response1.media) == 1
    assert r.response2.text == "It holds tea." and not r.response2.media


def test_mmrb2_bad_parts_are_named(tmp_path):
    doc = json.loads((MMRB2 / "t2i.json").read_text())
    doc["pairs"][1]["chosen"] = "C"
    doc["pairs"][2]["response_a"]["response_content"] = [["audio", "x.wav"]]
    (tmp_path / "t2i.json").write_text(json.dumps(doc, indent=2))
    res = list(load(tmp_path / "t2i.json", media_root=MMRB2))
    assert res[0].ok and not res[1].ok and not res[2].ok
    assert str(res[1].error).endswith("chosen: unknown label 'C' (expected A or B)")
    assert str(res[2].error).endswith(
        "response_a.response_content[0]: unknown part kind 'audio' (expected text or image)"
    )
    assert str(res[1].error).startswith(f"{tmp_path / 't2i.json'}:")


def test_mmrewardbench_maps_better_and_splits_categories_like_its_script():
    assert detect_format(MMRB) == "mmrewardbench"
    recs = _records(MMRB)
    n = recs["nocaps_13062"]
    assert n.task == "text_image_to_text" and n.preference == "response2"
    assert n.prompt_media[0].path == str(MMRB.parent / "images" / "nocaps" / "13062.png")
    cats = {i: r.meta["category"] for i, r in recs.items()}
    assert cats == {
        "nocaps_13062": "open_generation/correctness_task",
        "mathvista_7": "reasoning/math",
        "emma-coding_12": "reasoning/coding",
        "pairs_3": "safety/bias",
        "hatefulmemes_4": "safety/toxicity",
    }


def test_editrewardbench_maps_letters_to_sides_and_groups(tmp_path):
    assert detect_format(ERB) == "editrewardbench"
    recs = _records(ERB)
    assert [r.preference for r in recs.values()] == [
        "response1",
        "tie",
        "response2",
        "response1",
        "response1",
        "response1",
        "response2",
        "response2",
    ]
    first = recs["101"]
    assert first.task == "text_image_to_image" and first.prompt == "make the sky bluer"
    assert first.prompt_media[0].path == str(ERB.parent / "images" / "astronaut.png")
    assert recs["102"].response1.media[0].path == str(ERB.parent / "images" / "rocket.png")  # {"path": ...}
    assert recs["201_AvsC"].meta["group"] == "201" and recs["201_AvsC"].meta["comparison_type"] == "AvsC"
    bad = tmp_path / "e.jsonl"
    row = json.loads(ERB.read_text().splitlines()[3])
    bad.write_text(json.dumps({**row, "ranking": "A>B"}) + "\n")
    res = list(load(bad, media_root=ERB.parent))
    assert str(res[0].error) == f"{bad}:1: ranking: unknown ranking 'A>B' (expected A>C, C>A or A=C)"


# ---- the benchmarks' own rules ---------------------------------------------------------------


def test_rewardbench2_best_of_4_shares_top_ties_and_scores_ties_by_its_rule():
    recs = _records(RB2)
    rewards = {
        "1": [3, 1, 0, 0],  # right
        "2": [1, 2, 0, 0],  # wrong
        "3": [2, 2, 0, 0],  # chosen shares the top with one other: 1/2
        "4": [0, 0, 0, 0],  # four-way tie at the top: 1/4
        "5": [1, 0, 0, 0],
        "6": [0, 1, 0, 0],  # Focus: 1 and 0
        "ref:1": [5, 1, 0, 0],
        "tied:1": [5, 4.5, 4, 1, 0, 0],
        "ref:2": [2, 3, 0, 0],
        "tied:2": [3, 3, 1, 0, 0],
    }
    lines = [{"id": i, "rewards": r, "best": r.index(max(r)), "gold_best": 0} for i, r in rewards.items()]
    head = headline("rewardbench2", lines, recs)
    s = head["sections"]
    assert s["Factuality"] == 1 and s["Precise IF"] == 0 and s["Math"] == 0.5 and s["Safety"] == 0.25
    assert s["Focus"] == 0.5
    # Ties by hand: ref accuracy 1/2 (ref:2 wrong), tied accuracy 2/2; prompt 1: spread 5-4 = 1 < gap
    # 4-1 = 3 (tied) and min(ref gap 4, 3) = 3 -> both preferred; prompt 2: spread 0 < gap 2 but the
    # ref gap is -1 -> not preferred when hard; its margin term is tanh(-1/0 - 1) = -1.
    t = head["ties"]
    assert (t["ref_accuracy"], t["tied_accuracy"]) == (0.5, 1.0)
    assert (t["correctness_preferred"], t["correctness_preferred_hard"]) == (1.0, 0.5)
    import math

    margin = (math.tanh(3 / 1 - 1) - 1) / 2
    assert t["correctness_margin_score"] == pytest.approx(margin)
    expected = 0.3 * 1 + 0.3 * 0.5 + 0.2 * 1 + 0.2 * 0.5 + 0.01 * margin
    assert s["Ties"] == pytest.approx(expected)
    assert head["value"] == pytest.approx((1 + 0 + 0.5 + 0.25 + 0.5 + expected) / 6)


def test_rewardbench2_ties_without_paired_prompts_says_why():
    out = rewardbench2_ties([("ref:1", [1, 0], 1)])
    assert out["score"] is None and "both" in out["note"] and out["ref_accuracy"] == 1.0


def test_mmrb2_counts_each_order_and_position_consistency():
    recs = _records(MMRB2)
    lines = [
        {"id": "t2i_1", "preference": "response1", "margin": 1.0},
        {"id": "t2i_2", "preference": "response2", "margin": 0.5},  # wrong in both orders
        {"id": "t2i_3", "preference": "response1", "margin": 0.0},  # zero margin: wrong
        # judge lines with both orders: one order right, one wrong
        {"id": "edit_1", "preference": "response2", "margin": -0.1, "p_response1_by_order": [0.2, 0.7]},
        {"id": "edit_2", "preference": "response1", "margin": 0.3, "p_response1_by_order": [0.9, 0.8]},
    ]
    head = headline("mmrb2", lines, recs)
    assert head["sections"] == {"edit": 0.75, "image": pytest.approx(1 / 3)}
    assert head["groups"]["edit: position-consistent"] == 0.5
    assert head["groups"]["image: position-consistent"] == pytest.approx(1 / 3)
    assert head["value"] == pytest.approx(5 / 10) and head["position_consistent"] == pytest.approx(2 / 5)


def test_mmrewardbench_accuracy_per_category():
    recs = _records(MMRB)
    margins = {"nocaps_13062": -1.0, "mathvista_7": 0.2, "emma-coding_12": 0.4, "pairs_3": 1.0, "hatefulmemes_4": 0.0}
    lines = [{"id": i, "preference": recs[i].preference, "margin": m} for i, m in margins.items()]
    head = headline("mmrewardbench", lines, recs)
    assert head["value"] == pytest.approx(3 / 5)
    assert head["sections"]["reasoning/coding"] == 0.0 and head["sections"]["safety/toxicity"] == 0.0
    assert head["sections"]["safety/bias"] == 1.0


def test_editrewardbench_pair_and_group_accuracy():
    recs = _records(ERB)
    # gold: 101 r1, 102 tie, 201: r2 r1 r1, 202: r1 r2 r2
    margins = {
        "101": 2.0,
        "102": 0.05,
        "201_AvsB": -1.0,
        "201_AvsC": 1.0,
        "201_BvsC": 3.0,
        "202_AvsB": 1.5,
        "202_AvsC": 0.5,
        "202_BvsC": -2.0,
    }
    lines = [{"id": i, "preference": recs[i].preference, "margin": m} for i, m in margins.items()]
    head = headline("editrewardbench", lines, recs)
    # Tie threshold: calling |m| <= .05 a tie makes 102 right and nothing else changes.
    assert head["tie_threshold"] == pytest.approx(0.05)
    assert head["sections"] == {"pair accuracy (2pair)": 1.0, "pair accuracy (3pair)": pytest.approx(5 / 6)}
    assert head["groups"] == {"group accuracy (3pair)": 0.5}
    assert head["value"] == pytest.approx(7 / 8) and head["pair_accuracy_without_ties"] == pytest.approx(6 / 7)


def test_eval_of_a_scores_file_prints_the_benchmarks_own_figures(tmp_path):
    recs = _records(ERB)
    scores = tmp_path / "erb.scores.jsonl"
    scores.write_text(
        "".join(
            json.dumps(
                {
                    "id": i,
                    "task": r.task,
                    "margin": 1.0 if r.preference == "response1" else -1.0,
                    "preference": r.preference,
                }
            )
            + "\n"
            for i, r in recs.items()
        )
    )
    res = CliRunner().invoke(app, ["eval", str(scores), "--data", str(ERB)])
    assert res.exit_code == 0, res.output
    assert "EditReward-Bench: its own metric" in res.output and "group accuracy (3pair)" in res.output


# ---- data prep → score → eval with a tiny model ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_image_model(tmp_path_factory):
    from _deploy_utils import text_set, train_tiny

    tmp = tmp_path_factory.mktemp("tiny")
    return train_tiny(
        text_set(tmp / "data", n_train=16, n_val=8, n_test=8), tmp / "run", "modality=image", "trainer.max_epochs=1"
    )


@pytest.mark.parametrize(
    "src,fmt,title,figure",
    [
        (RB2, "rewardbench2", "RewardBench 2: its own metric", "Factuality"),
        (MMRB2, "mmrb2", "Multimodal RewardBench 2: its own metric", "edit: position-consistent"),
        (MMRB, "mmrewardbench", "Multimodal RewardBench: its own metric", "safety/bias"),
        (ERB, "editrewardbench", "EditReward-Bench: its own metric", "group accuracy (3pair)"),
        (FIX / "mjbench", "mjbench", "MJ-Bench: its own metric", "safety (with ties)"),
    ],
)
def test_prep_score_eval_through_the_command_line(tmp_path, tiny_image_model, src, fmt, title, figure):
    runner = CliRunner()
    prepped = tmp_path / "prepped.jsonl"
    res = runner.invoke(app, ["data", "prep", str(src), "--out", str(prepped)])
    assert res.exit_code == 0, res.output
    assert f"({fmt})" in res.output
    n = len(prepped.read_text().splitlines())
    scores = tmp_path / "s.jsonl"
    root = src if src.is_dir() else src.parent  # prep writes media outside its output folder as absolute paths
    res = runner.invoke(
        app, ["score", str(prepped), "--model", str(tiny_image_model), "--out", str(scores), "--media-root", str(root)]
    )
    assert res.exit_code == 0, res.output
    assert len(scores.read_text().splitlines()) == n
    res = runner.invoke(app, ["eval", str(scores), "--data", str(src), "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert title in res.output and figure in res.output
    head = json.loads((tmp_path / "rep" / "summary.json").read_text())["headline"]
    assert head["value"] is not None and 0 <= head["value"] <= 1


# ---- HPDv3 and ImageRewardDB -----------------------------------------------------------------

HPD = FIX / "hpdv3" / "test.json"
IRDB = FIX / "imagerewarddb" / "test" / "test_1.json"


def test_hpdv3_pairs_put_the_preferred_image_first():
    assert detect_format(HPD) == "hpdv3"
    recs = list(_records(HPD).values())
    assert len(recs) == 3 and all(r.preference == "response1" and r.task == "text_to_image" for r in recs)
    assert recs[0].response1.media[0].path == str(HPD.parent / "images" / "coffee.png")
    assert recs[0].meta == {"model1": "flux", "model2": "sd3", "confidence": 0.9, "choice_dist": [9, 1]}


def test_imagerewarddb_entries_of_a_prompt_become_one_ranked_group(tmp_path):
    assert detect_format(IRDB) == "imagerewarddb"
    recs = _records(IRDB)
    g = recs["imagerewarddb-p001"]
    assert g.ranking == [0, 2, 1, 3] and g.best == 0 and len(g.responses) == 4
    assert g.responses[2].media[0].path == str(IRDB.parent.parent / "images" / "test" / "chelsea.png")
    assert g.meta["ranks"] == [1, 3, 2, 4] and g.meta["overall_rating"] == [7, 5, 6, 4]
    tied = recs["imagerewarddb-p002"]  # two images share rank 2: no total order, the best is still known
    assert tied.ranking is None and tied.best == 0
    rows = json.loads(IRDB.read_text())
    bad = tmp_path / "shard" / "s.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps([dict(rows[0], rank=0), dict(rows[4], prompt_id="solo")], indent=1))
    res = list(load(bad, media_root=IRDB.parent.parent))
    assert [str(r.error) for r in res] == [
        f"{bad}:2: rank: expected a whole number >= 1, got 0",
        f"{bad}:13: prompt_id: prompt_id 'solo' has 1 image; a ranking needs two or more",
    ]


def test_imagerewarddb_groups_train_with_plackett_luce(tmp_path):
    from _deploy_utils import tiny_overrides

    from omnireward.config import compose_config
    from omnireward.train import train

    prepped = tmp_path / "groups.jsonl"
    res = CliRunner().invoke(app, ["data", "prep", str(IRDB), "--out", str(prepped)])
    assert res.exit_code == 0 and "(imagerewarddb)" in res.output, res.output
    model = train(
        compose_config(
            tiny_overrides(
                {"train": prepped, "val": prepped},
                tmp_path / "run",
                "modality=image",
                "loss=plackett_luce",
                "trainer.max_epochs=1",
                "data.batch_size=2",
                f"data.media_root={IRDB.parent.parent}",
            )
        )
    )
    scores = tmp_path / "s.jsonl"
    res = CliRunner().invoke(
        app,
        ["score", str(prepped), "--model", str(model), "--out", str(scores), "--media-root", str(IRDB.parent.parent)],
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in scores.read_text().splitlines()]
    assert [len(x["rewards"]) for x in lines] == [4, 3] and lines[0]["gold_ranking"] == [0, 2, 1, 3]


# ---- MJ-Bench --------------------------------------------------------------------------------

MJB = FIX / "mjbench"


def test_mjbench_subsets_map_labels_and_bias_rows_become_items(tmp_path):
    from omnireward.data.records import Item, Pair

    assert detect_format(MJB) == "mjbench" and detect_format(MJB / "safety.jsonl") == "mjbench"
    recs = _records(MJB)
    pairs = {i: r for i, r in recs.items() if isinstance(r, Pair)}
    items = {i: r for i, r in recs.items() if isinstance(r, Item)}
    assert len(pairs) == 7 and len(items) == 4
    assert [r.meta["perspective"] for r in recs.values()] == ["alignment"] * 3 + ["safety"] * 2 + ["quality"] * 2 + [
        "bias"
    ] * 4
    a = recs["alignment-1"]
    assert a.task == "text_to_image" and a.prompt == "a cat sitting on a red chair" and a.preference == "response1"
    assert a.response1.media[0].path == str(MJB / "images" / "chelsea.png") and a.meta["subcategory"] == "object"
    assert recs["alignment-2"].preference == "response2"
    assert recs["alignment-3"].response2.media[0].path == str(MJB / "images" / "camera.png")  # {"path": ...}
    assert recs["safety-2"].preference == "response2"  # label0 0, label1 1
    assert recs["quality-2"].preference == "tie"  # 0.5 / 0.5
    doc = recs["bias-1"]
    assert doc.response.media[0].path == str(MJB / "images" / "astronaut.png")
    assert doc.meta == {"perspective": "bias", "demographic": "female", "group": "doctor"}
    assert recs["bias-3"].meta["group"] == "a photo of a chef"  # no occupation: grouped by caption
    bad = tmp_path / "alignment.jsonl"
    row = json.loads((MJB / "alignment.jsonl").read_text().splitlines()[0])
    bad.write_text(json.dumps({**row, "label": 2}) + "\n" + json.dumps({**row, "label": None, "image1": 3}) + "\n")
    res = list(load(bad, media_root=MJB))
    assert str(res[0].error) == f"{bad}:1: label: expected 0 (image0 preferred) or 1 (image1), got 2"
    assert str(res[1].error).startswith(f"{bad}:2: image1: expected an image path")


def test_mjbench_accuracy_with_and_without_ties_per_subset_and_bias_figures():
    recs = _records(MJB)
    # gold: alignment r1 r2 r1; safety r1 r2; quality r1 tie
    margins = {
        "alignment-1": 1.0,
        "alignment-2": 0.5,
        "alignment-3": 0.0,
        "safety-1": 2.0,
        "safety-2": -1.0,
        "quality-1": -0.5,
        "quality-2": 0.0,
    }
    lines = [{"id": i, "preference": recs[i].preference, "margin": m} for i, m in margins.items()]
    # Doctors scored alike (NDS 1, GES 1, ACC 1 after scaling), chefs apart.
    rewards = {"bias-1": 2.0, "bias-2": 2.0, "bias-3": 0.0, "bias-4": 4.0}
    lines += [{"id": i, "reward": r} for i, r in rewards.items()]
    head = headline("mjbench", lines, recs)
    assert head["sections"] == {
        "alignment (with ties)": pytest.approx(1 / 3),
        "quality (with ties)": 0.5,
        "safety (with ties)": 1.0,
    }
    assert head["value"] == pytest.approx((1 / 3 + 0.5 + 1.0) / 3)
    assert head["groups"]["alignment (without ties)"] == 0.5 and head["groups"]["quality (without ties)"] == 0.0
    assert head["groups"]["alignment/object"] == 1.0 and head["groups"]["quality/blur_motion"] == 1.0
    # Scaled to [0, 1]: doctors 0.5, 0.5 (NDS 1, GES 1, ACC 1); chefs 0, 1 (NDS 1 - 0.5/0.5 = 0,
    # Gini 0.5 so GES 0.5, ACC 0).
    assert head["bias"] == {"nds": 0.5, "ges": 0.75, "acc": 0.5, "groups": 2}
