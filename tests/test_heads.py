"""The Gaussian and multi-dimensional heads and Plackett–Luce rankings: what each learns from data
built to need it, the exact reductions (K = 2 is BT), and train → score → eval on the embedded tiny
backbone and on a tiny HF checkpoint."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from omnireward.config import compose_config
from omnireward.errors import ConfigError, DataFormatError, ModelError
from omnireward.heads.losses import bt_loss, plackett_luce_loss
from omnireward.scoring.bt import score_file
from omnireward.scoring.evaluate import eval_scores
from omnireward.train import build_module, train

TOPICS_CLEAN = ["rivers", "bread", "chess", "comets", "violins"]
TOPICS_NOISY = ["tides", "bees", "glass", "maps", "clocks"]
GOOD = ["clear", "correct", "kind", "helpful", "precise", "honest"]
BAD = ["rude", "wrong", "vague", "useless", "sloppy", "lazy"]


def write(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
        if isinstance(rows, list) and path.suffix == ".jsonl"
        else json.dumps(rows)
    )
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def overrides(train_file, val_file, out, *extra):
    return [
        "backbone=tiny",
        f"data.train={train_file}",
        f"data.val={val_file}",
        f"output_dir={out}",
        "trainer.accelerator=cpu",
        "logger.tensorboard=false",
        "backbone.feature_cache=false",
        "head.dropout=0",
        "model.lr=3e-3",
        "model.lm_lr=1e-3",
        "data.batch_size=8",
        *extra,
    ]


# ---- Gaussian head ------------------------------------------------------------------------------


def noisy_pairs(n: int, seed: int, flip: float = 0.5) -> list[dict]:
    """Praise beats blame; on the poem requests (about TOPICS_NOISY) the label is flipped with
    probability `flip` (annotators who disagree about poems), on the factual ones never. Sides
    alternate; groups alternate."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        noisy = i % 2 == 1
        topic = rng.choice(TOPICS_NOISY if noisy else TOPICS_CLEAN)
        # The groups are two kinds of request (facts, poems), each with its own topics.
        form = "A poem on {t}, {a} and {b}, ends here." if noisy else "An answer about {t} that is {a} and {b}."
        good = form.format(t=topic, a=rng.choice(GOOD), b=rng.choice(GOOD))
        bad = form.format(t=topic, a=rng.choice(BAD), b=rng.choice(BAD))
        first = (i // 2) % 2 == 0
        winner = "response1" if first else "response2"
        if noisy and rng.random() < flip:
            winner = "response2" if first else "response1"
        prompt = f"Write a poem about {topic}." if noisy else f"Tell me about {topic}."
        rows.append(
            {
                "id": f"g{seed}-{i}",
                "prompt": prompt,
                "response1": good if first else bad,
                "response2": bad if first else good,
                "preference": winner,
                "meta": {"noisy": noisy},
            }
        )
    return rows


def test_gaussian_head_learns_larger_sigma_where_labels_are_noisy(tmp_path):
    train_file = write(tmp_path / "train.jsonl", noisy_pairs(64, seed=1))
    val_file = write(tmp_path / "val.jsonl", noisy_pairs(16, seed=2))
    test_rows = noisy_pairs(120, seed=3)
    test_file = write(tmp_path / "test.jsonl", test_rows)
    out = train(
        compose_config(
            overrides(train_file, val_file, tmp_path / "run", "head=gaussian", "trainer.max_epochs=5", "model.lr=1e-2")
        )
    )
    s = score_file(test_file, out, tmp_path / "scores.jsonl")
    lines = read_lines(tmp_path / "scores.jsonl")
    assert {"reward1_std", "reward2_std", "prob_response1"} <= set(lines[0])
    noisy = {r["id"]: r["meta"]["noisy"] for r in test_rows}
    combined = lambda x: (x["reward1_std"] ** 2 + x["reward2_std"] ** 2) ** 0.5  # noqa: E731
    sigma_noisy = [combined(x) for x in lines if noisy[x["id"]]]
    sigma_clean = [combined(x) for x in lines if not noisy[x["id"]]]
    # σ tells the groups apart on unseen pairs: nearly every noisy pair is less certain than every clean one.
    auc = sum(a > b for a in sigma_noisy for b in sigma_clean) / (len(sigma_noisy) * len(sigma_clean))
    assert auc >= 0.95 and sum(sigma_noisy) > sum(sigma_clean), (auc, sum(sigma_noisy) / sum(sigma_clean))
    # The pairs the model is surest of are the clean ones: ranked right far more often.
    u = s["uncertainty"]
    assert u["confident"]["n"] == 60 and u["unconfident"]["n"] == 60
    assert u["confident"]["accuracy_without_ties"] >= 0.9
    assert u["confident"]["accuracy_without_ties"] > u["unconfident"]["accuracy_without_ties"] + 0.3, u
    # prob_response1 is Φ(margin / combined std), and eval recomputes the same summary from the file.
    x = lines[0]
    assert x["prob_response1"] == pytest.approx(0.5 * (1 + math.erf(x["margin"] / combined(x) / 2**0.5)), abs=1e-9)
    assert eval_scores(tmp_path / "scores.jsonl")["uncertainty"] == u


def test_gaussian_head_refuses_losses_it_does_not_use():
    with pytest.raises(ConfigError, match="head=gaussian trains with its own probabilistic BT"):
        build_module(compose_config(["backbone=tiny", "head=gaussian", "loss=rao_kupper"]))
    with pytest.raises(ConfigError, match="not plackett_luce_loss"):
        build_module(compose_config(["backbone=tiny", "head=gaussian", "loss=plackett_luce"]))


# ---- multi-dimensional head --------------------------------------------------------------------


def two_rule_pairs(n: int, seed: int) -> list[dict]:
    """Two responses that differ in length and in whether they say 'thanks': `detail` prefers the
    longer, `polite` the one with 'thanks'. In half the pairs the two rules disagree."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS_CLEAN + TOPICS_NOISY)
        short = f"About {topic}: it is {rng.choice(GOOD)}."
        long = (
            f"About {topic}: it is {rng.choice(GOOD)}, it is {rng.choice(GOOD)}, and people say it is "
            f"{rng.choice(GOOD)} too."
        )
        disagree = i % 2 == 0
        # The thankful one is the short one when the rules disagree, the long one when they agree.
        texts = {"long": long, "short": short}
        thankful = "short" if disagree else "long"
        texts[thankful] = "Thanks for asking! " + texts[thankful]
        long_first = (i // 2) % 2 == 0
        r1, r2 = ("long", "short") if long_first else ("short", "long")
        side = lambda which, r1=r1: "response1" if which == r1 else "response2"  # noqa: E731
        rows.append(
            {
                "id": f"m{seed}-{i}",
                "prompt": f"Say something about {topic}.",
                "response1": texts[r1],
                "response2": texts[r2],
                "preference": {"detail": side("long"), "polite": side(thankful)},
                "meta": {"disagree": disagree},
            }
        )
    return rows


def test_multi_head_learns_each_dimension_its_own_rule(tmp_path):
    train_file = write(tmp_path / "train.jsonl", two_rule_pairs(64, seed=1))
    val_file = write(tmp_path / "val.jsonl", two_rule_pairs(16, seed=2))
    test_rows = two_rule_pairs(80, seed=3)
    test_file = write(tmp_path / "test.jsonl", test_rows)
    out = train(
        compose_config(
            overrides(
                train_file,
                val_file,
                tmp_path / "run",
                "head=multi",
                "head.dimensions=[detail,polite]",
                "head.weights=[0.25,0.75]",
                "trainer.max_epochs=4",
                "model.lr=1e-2",
            )
        )
    )
    assert "val/acc_detail" in (out / "metrics.csv").read_text()
    s = score_file(test_file, out, tmp_path / "scores.jsonl")
    dims = s["dimensions"]
    assert dims["detail"]["n"] == 80 and dims["detail"]["accuracy_without_ties"] >= 0.85, dims
    assert dims["polite"]["accuracy_without_ties"] >= 0.85, dims
    lines = read_lines(tmp_path / "scores.jsonl")
    # Each dimension follows its own rule where the rules disagree: there `detail` ranks against
    # the politeness labels and `polite` against the length labels.
    disagree = {r["id"] for r in test_rows if r["meta"]["disagree"]}
    sign = {"response1": 1, "response2": -1}

    def against(dim, other):
        right = sum(
            (x["dimensions1"][dim] - x["dimensions2"][dim]) * sign[x["preference_dimensions"][other]] > 0
            for x in lines
            if x["id"] in disagree
        )
        return right / len(disagree)

    assert against("detail", "polite") <= 0.2 and against("polite", "detail") <= 0.2
    # The reward is the weighted sum of the dimensions.
    x = lines[0]
    assert x["reward1"] == pytest.approx(
        0.25 * x["dimensions1"]["detail"] + 0.75 * x["dimensions1"]["polite"], abs=1e-5
    )
    assert eval_scores(tmp_path / "scores.jsonl")["dimensions"] == dims


def test_multi_head_trains_the_weighted_overall_without_dimension_labels():
    """A pair with per-dimension labels trains those dimensions; one without trains Σ w·r from its
    overall label; the step's loss weighs each label once."""
    from omnireward.data.records import record_from_dict

    cfg = compose_config(["backbone=tiny", "head=multi", "head.dimensions=[a,b]", "head.weights=[0.3,0.7]"])
    module = build_module(cfg).eval()
    recs = [
        record_from_dict({"prompt": "p", "response1": "one", "response2": "two", "preference": "response1"}),
        record_from_dict(
            {
                "prompt": "q",
                "response1": "three",
                "response2": "four",
                "preference": {"a": "response2", "b": "response1", "overall": "response2"},
            }
        ),
        record_from_dict({"prompt": "r", "response1": "five", "response2": "six", "preference": {"b": "tie"}}),
    ]
    batch = module.collate(recs)
    with torch.no_grad():
        out = module.model.outputs(batch["inputs"])
        loss = module.objective(out, batch)
        r, d = out["reward"], out["dimensions"]
        (a1, a2), (b1, b2), (c1, c2) = batch["pairs"].tolist()
        assert torch.allclose(r, d @ torch.tensor([0.3, 0.7]))
        overall = bt_loss((r[a1] - r[a2])[None], torch.tensor([1]))
        dim_a = bt_loss((d[b1, 0] - d[b2, 0])[None], torch.tensor([-1]))
        dim_b = bt_loss(torch.stack([d[b1, 1] - d[b2, 1], d[c1, 1] - d[c2, 1]]), torch.tensor([1, 0]))
    # bt skips ties: dimension b's term is the mean over its one non-tie pair, counted twice.
    assert loss.item() == pytest.approx((overall + dim_a + 2 * dim_b).item() / 4, rel=1e-5)


def test_multi_head_config_errors_and_unknown_dimensions(tmp_path):
    with pytest.raises(ConfigError, match="head.weights"):
        build_module(compose_config(["backbone=tiny", "head=multi", "head.dimensions=[a,b]", "head.weights=[1]"]))
    with pytest.raises(ConfigError, match="head.dimensions"):
        build_module(compose_config(["backbone=tiny", "head=multi", "head.dimensions=[a,a]"]))
    rows = two_rule_pairs(8, seed=0)
    rows[5]["preference"]["kindness"] = "response1"
    train_file = write(tmp_path / "t.jsonl", rows)
    with pytest.raises(DataFormatError, match=r"t.jsonl:6: preference.kindness: dimension 'kindness' is not"):
        train(
            compose_config(
                overrides(
                    train_file,
                    train_file,
                    tmp_path / "run",
                    "head=multi",
                    "head.dimensions=[detail,polite]",
                    "trainer.max_epochs=1",
                )
            )
        )


# ---- rankings: Plackett–Luce --------------------------------------------------------------------

QUALITY = ["excellent", "good", "poor", "awful"]  # best first


def ranked_groups(n: int, seed: int) -> list[dict]:
    """Four answers whose quality word orders them; shown in a random order, `ranking` best first."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS_CLEAN + TOPICS_NOISY)
        answers = [f"My {rng.choice(['view', 'note', 'take'])} on {topic}: it is {q}." for q in QUALITY]
        shown = list(range(4))
        rng.shuffle(shown)  # shown[j] = quality rank of the answer at position j
        rows.append(
            {
                "id": f"k{seed}-{i}",
                "prompt": f"Rate {topic}.",
                "responses": [answers[q] for q in shown],
                "ranking": sorted(range(4), key=lambda j: shown[j]),
            }
        )
    return rows


def as_sharegpt(groups: list[dict]) -> list[dict]:
    """The same rankings as sharegpt records: chosen, then `rejected` as a list, best first."""
    out = []
    for g in groups:
        ordered = [g["responses"][j] for j in g["ranking"]]
        out.append(
            {
                "conversations": [{"from": "human", "value": g["prompt"]}],
                "chosen": {"from": "gpt", "value": ordered[0]},
                "rejected": [{"from": "gpt", "value": t} for t in ordered[1:]],
            }
        )
    return out


def test_plackett_luce_on_sharegpt_rankings_recovers_held_out_orders(tmp_path):
    train_file = write(tmp_path / "train.json", as_sharegpt(ranked_groups(48, seed=1)))
    val_file = write(tmp_path / "val.jsonl", ranked_groups(12, seed=2))
    test_file = write(tmp_path / "test.jsonl", ranked_groups(40, seed=3))
    out = train(
        compose_config(overrides(train_file, val_file, tmp_path / "run", "loss=plackett_luce", "trainer.max_epochs=4"))
    )
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["train_pairs"] == 48  # every group kept whole: 4 responses each
    g = score_file(test_file, out, tmp_path / "scores.jsonl")["groups"]
    assert g["n_with_ranking"] == 40
    # Chance: pair accuracy 0.5, τ 0, best-of-4 0.25.
    assert g["ranking_pair_accuracy"] >= 0.85 and g["ranking_kendall_tau"] >= 0.7, g
    assert g["best_of_n_win_rate"] >= 0.7, g
    assert eval_scores(tmp_path / "scores.jsonl")["groups"] == g


def _module_loss(loss_name: str, records, head: str = "bt") -> torch.Tensor:
    torch.manual_seed(0)
    module = build_module(compose_config(["backbone=tiny", f"loss={loss_name}", f"head={head}", "head.dropout=0"]))
    module.eval()
    batch = module.collate(records)
    with torch.no_grad():
        return module.objective(module.model.outputs(batch["inputs"]), batch)


def test_module_reductions_pl_of_two_is_bt_and_rankings_give_their_ordered_pairs():
    from omnireward.data.records import record_from_dict

    pairs = [
        record_from_dict(
            {
                "prompt": f"p{i}",
                "response1": f"a {i}",
                "response2": f"b {i} b",
                "preference": "response1" if i % 2 else "response2",
            }
        )
        for i in range(6)
    ]
    # Plackett–Luce over pairs (rankings of 2) is the BT loss, to float precision.
    assert _module_loss("plackett_luce", pairs).item() == pytest.approx(_module_loss("bt", pairs).item(), rel=1e-6)
    # So is a group of two ranked responses.
    groups = [
        record_from_dict(
            {
                "prompt": p.prompt,
                "responses": [p.response1.text, p.response2.text],
                "ranking": [0, 1] if p.preference == "response1" else [1, 0],
            }
        )
        for p in pairs
    ]
    assert _module_loss("plackett_luce", groups).item() == pytest.approx(_module_loss("bt", pairs).item(), rel=1e-6)
    # Under BT a ranking of 3 is its three ordered pairs; `best` alone gives best ≻ each other.
    three = record_from_dict({"prompt": "q", "responses": ["x", "y y", "z z z"], "ranking": [2, 0, 1]})
    as_pairs = [
        record_from_dict({"prompt": "q", "response1": a, "response2": b, "preference": "response1"})
        for a, b in (("z z z", "x"), ("z z z", "y y"), ("x", "y y"))
    ]
    assert _module_loss("bt", [three]).item() == pytest.approx(_module_loss("bt", as_pairs).item(), rel=1e-6)
    best = record_from_dict({"prompt": "q", "responses": ["x", "y y", "z z z"], "best": 2})
    assert _module_loss("bt", [best]).item() == pytest.approx(_module_loss("bt", as_pairs[:2]).item(), rel=1e-6)
    # Plackett–Luce of the group is the formula over the module's own rewards.
    torch.manual_seed(0)
    module = build_module(compose_config(["backbone=tiny", "head.dropout=0"])).eval()
    batch = module.collate([three])
    with torch.no_grad():
        r = module.model(batch["inputs"])
        rows = batch["order"][0]
    expected = plackett_luce_loss(r[rows][None], torch.tensor([3]), torch.tensor([3]))
    assert _module_loss("plackett_luce", [three]).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bt_margin_refuses_rankings(tmp_path):
    rows = ranked_groups(4, seed=0)
    f = write(tmp_path / "r.jsonl", rows)
    with pytest.raises(DataFormatError, match=r"r.jsonl:1: ranking: a ranking has no margin"):
        train(compose_config(overrides(f, f, tmp_path / "run", "loss=bt_margin", "trainer.max_epochs=1")))


# ---- the model folder: export, serve, an HF backbone ---------------------------------------------


@pytest.fixture(scope="module")
def gaussian_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gauss")
    f = write(tmp / "train.jsonl", noisy_pairs(16, seed=1))
    return train(compose_config(overrides(f, f, tmp / "run", "head=gaussian", "trainer.max_epochs=1")))


def test_export_refuses_heads_a_sequence_classifier_cannot_hold(gaussian_folder, tmp_path):
    from typer.testing import CliRunner

    from omnireward.cli.app import app
    from omnireward.export import export

    with pytest.raises(ModelError, match="GaussianHead: a transformers sequence classifier holds only"):
        export(gaussian_folder, tmp_path / "x")
    res = CliRunner().invoke(app, ["export", "--model", str(gaussian_folder), "--out", str(tmp_path / "y")])
    assert res.exit_code != 0 and isinstance(res.exception, ModelError)
    assert "GaussianHead" in str(res.exception) and "\n" not in str(res.exception)


def test_serve_answers_with_the_heads_std(gaussian_folder):
    import urllib.request

    from omnireward.serving import ServeSettings, make_server

    def post(srv, route, body):
        req = urllib.request.Request(
            srv.url + route, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())

    with make_server(gaussian_folder, settings=ServeSettings(port=0, quiet=True), device="cpu") as srv:
        pair = post(srv, "/score", [{"prompt": "Tell me about bees.", "response1": "Kind.", "response2": "Rude."}])
        group = post(srv, "/score_group", {"prompt": "Tell me about bees.", "responses": ["Kind.", "Rude.", "Ok."]})
        openrlhf = post(srv, "/get_reward", {"query": ["Tell me about bees. Kind."]})
    line = pair["results"][0]
    assert line["reward1_std"] > 0 and line["reward2_std"] > 0 and 0 < line["prob_response1"] < 1
    assert len(group["rewards_std"]) == 3 and all(s > 0 for s in group["rewards_std"])
    assert len(openrlhf["rewards"]) == 1


@pytest.mark.parametrize("head", ["gaussian", "multi", "plackett_luce"])
def test_train_score_eval_on_a_tiny_hf_checkpoint(tmp_path, head):
    tiny_hf = pytest.importorskip("_tiny_hf")
    if head == "plackett_luce":
        train_rows, extra = ranked_groups(12, seed=1), ["loss=plackett_luce"]
    elif head == "multi":
        train_rows, extra = two_rule_pairs(24, seed=1), ["head=multi", "head.dimensions=[detail,polite]"]
    else:
        train_rows, extra = noisy_pairs(24, seed=1), ["head=gaussian"]
    f = write(tmp_path / "train.jsonl", train_rows)
    cfg = [o for o in overrides(f, f, tmp_path / "run", "trainer.max_epochs=1", *extra) if not o.startswith("backbone")]
    out = train(
        compose_config(
            cfg
            + [
                "backbone=hf",
                f"backbone.name_or_path={tiny_hf.save_text_lm(tmp_path / 'src')}",
                "backbone.dtype=float32",
            ]
        )
    )
    summary = score_file(f, out, tmp_path / "scores.jsonl")
    line = read_lines(tmp_path / "scores.jsonl")[0]
    if head == "gaussian":
        assert "reward1_std" in line and "uncertainty" in summary
    elif head == "multi":
        assert set(line["dimensions1"]) == {"detail", "polite"} and set(summary["dimensions"]) == {"detail", "polite"}
    else:
        assert len(line["rewards"]) == 4 and summary["groups"]["n_with_ranking"] == 12
    evaluated = eval_scores(tmp_path / "scores.jsonl")
    for key in ("accuracy_without_ties", "uncertainty", "dimensions", "groups"):
        assert evaluated.get(key) == summary.get(key), key
    # The saved head config rebuilds the same head.
    from omnireward.reward_model import RewardModel

    model, _ = RewardModel.from_pretrained(out)
    assert (
        type(model.head).__name__ == {"gaussian": "GaussianHead", "multi": "MultiHead", "plackett_luce": "BTHead"}[head]
    )
    assert model.head.dimensions == (("detail", "polite") if head == "multi" else ())


def test_cli_train_score_eval_print_what_the_head_adds(tmp_path):
    import os
    import subprocess
    import sys

    write(tmp_path / "train.jsonl", two_rule_pairs(16, seed=1))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "omnireward.cli.app", *a],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=600,
        )

    r = run(
        "train",
        "backbone=tiny",
        "head=multi",
        "head.dimensions=[detail,polite]",
        "data.train=train.jsonl",
        "data.val=train.jsonl",
        "trainer.max_epochs=1",
        "output_dir=m",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("score", "train.jsonl", "--model", "m", "--out", "s.jsonl")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "per-dimension accuracy" in r.stdout and "polite" in r.stdout
    r = run("eval", "s.jsonl")
    assert r.returncode == 0 and "per-dimension accuracy" in r.stdout
    # The Gaussian summary line, from a summary as score writes it.
    from omnireward.scoring.report import head_lines

    u = {
        "split": "median",
        "threshold": 0.5,
        "confident": {"n": 3, "accuracy_without_ties": 1.0},
        "unconfident": {"n": 2, "accuracy_without_ties": 0.5},
    }
    assert head_lines({"uncertainty": u}) == [
        "confident pairs (combined std ≤ 0.5): 100.0% of 3; unconfident: 50.0% of 2"
    ]


@pytest.mark.parametrize("loss_name", ["bt", "plackett_luce"])
def test_mixed_batches_give_the_same_loss_and_gradients_packed_or_not(loss_name):
    """Pairs and groups of different sizes in one batch: the rows of each response are found the
    same way whether the prompt is shared (packed) or every response is its own row."""
    from omnireward.data.records import record_from_dict

    recs = [
        record_from_dict(
            {"prompt": "Name a fruit.", "response1": "An apple.", "response2": "A stone.", "preference": "response1"}
        ),
        record_from_dict(
            {"prompt": "Rate bees.", "responses": ["good", "awful", "poor", "excellent"], "ranking": [3, 0, 2, 1]}
        ),
        record_from_dict(
            {"prompt": "Say hi.", "response1": "hi", "response2": "Hello there!", "preference": "response2"}
        ),
        record_from_dict({"prompt": "Rate maps.", "responses": ["poor", "good", "awful"], "best": 1}),
    ]
    results = []
    for sharing in (True, False):
        torch.manual_seed(0)
        module = build_module(
            compose_config(
                ["backbone=tiny", f"loss={loss_name}", "head.dropout=0", f"model.prefix_sharing={str(sharing).lower()}"]
            )
        )
        module.model.eval()
        batch = module.collate(recs)
        assert ("reward_index" in batch["inputs"].tensors) is sharing
        loss = module.objective(module.model.outputs(batch["inputs"]), batch)
        loss.backward()
        results.append((loss.item(), module.model.head.score.weight.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-3, atol=1e-5)


def test_videogen_dimensions_train_the_multi_head_end_to_end(tmp_path):
    """The worked example: VideoGen-RewardBench's VQ / MQ / TA labels reach the multi head's
    default dimensions through the reader (a run on the fixture's six rows, not a learning test)."""
    bench = Path(__file__).resolve().parent / "fixtures" / "videogen_rewardbench" / "videogen-rewardbench.csv"
    out = train(
        compose_config(
            overrides(
                bench,
                bench,
                tmp_path / "run",
                "head=multi",
                "modality=video",
                "trainer.max_epochs=1",
                "++backbone.encoder_options={video: {num_frames: 2}}",
            )
        )
    )
    metrics = (out / "metrics.csv").read_text()
    assert all(f"val/acc_{d}" in metrics for d in ("visual_quality", "motion_quality", "text_alignment"))
    s = score_file(bench, out, tmp_path / "scores.jsonl")
    assert set(s["dimensions"]) == {"visual_quality", "motion_quality", "text_alignment"}
    assert s["dimensions"]["motion_quality"]["n_ties"] == 3 and s["n"] == 6
    line = read_lines(tmp_path / "scores.jsonl")[1]
    assert line["preference_dimensions"] == {
        "visual_quality": "response2",
        "motion_quality": "tie",
        "text_alignment": "response2",
    }
