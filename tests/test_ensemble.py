"""Reward-model ensembles (omnireward/scoring/ensemble.py): the combination rules with numbers;
`score --model A --model B` lines and summary, read back by `eval`; the server and a TRL hook on
several folders; `train ensemble.members=2`; and what an ensemble is for: its spread is larger on
out-of-distribution records than on training-like ones.

Not tested: that mean - std ranks an answer padded with filler below the plain answer where a
single member prefers the padded one. Measured on these tiny members it held for seeds 0, 1, 2
and not for seeds 3, 4, 5 (docs/guards.md gives the figures), so a test of it would pass by the
choice of seeds."""

from __future__ import annotations

import json
import random
import urllib.request
from pathlib import Path

import pytest
from _deploy_utils import BAD, GOOD, TOPICS, fit_steps, text_pairs, write_jsonl
from typer.testing import CliRunner

from omnireward.errors import ConfigError, ModelError
from omnireward.scoring.ensemble import (
    EnsembleScorer,
    combine,
    combine_lines,
    mean_std,
    member_folders,
)
from omnireward.serving.scale import RewardScale

K = 3  # members
STEPS = 24  # AdamW steps per member: enough to learn praise against blame (accuracy checked below)


# ---- rules ---------------------------------------------------------------------------------------
def test_rules_with_numbers():
    v = [1.0, 2.0, 6.0]
    m, s = mean_std(v)
    assert m == pytest.approx(3.0) and s == pytest.approx((14 / 3) ** 0.5)  # population std
    assert combine(v, "mean") == pytest.approx(3.0)
    assert combine(v, "min") == 1.0
    assert combine(v, "mean_minus_std") == pytest.approx(3.0 - (14 / 3) ** 0.5)
    assert combine(v, "mean_minus_std", 0.5) == pytest.approx(3.0 - 0.5 * (14 / 3) ** 0.5)
    assert combine([4.0], "mean_minus_std") == 4.0  # one member: no spread
    with pytest.raises(ConfigError, match="unknown ensemble rule"):
        combine(v, "median")
    with pytest.raises(ConfigError, match="0 or more"):
        EnsembleScorer([], [], "mean_minus_std", -1.0)


def test_lines_combine_each_members_normalised_rewards():
    from omnireward.data.records import record_from_dict

    pair = record_from_dict({"id": "a", "prompt": "p", "response1": "x", "response2": "y", "preference": "response2"})
    item = record_from_dict({"id": "b", "prompt": "p", "response": "x"})
    scales = [RewardScale(1.0, 2.0, True), RewardScale(-1.0, 0.5, True)]
    member_lines = [
        [{"reward1": 3.0, "reward2": 1.0}, {"reward": 5.0}],  # normalised: 1, 0 and 2
        [{"reward1": -1.0, "reward2": 0.0}, {"reward": -0.5}],  # normalised: 0, 2 and 1
    ]
    p, i = combine_lines([pair, item], member_lines, scales, "mean_minus_std", 1.0)
    assert p["ensemble"]["members"] == [[1.0, 0.0], [0.0, 2.0]]
    assert p["ensemble"]["mean"] == [0.5, 1.0] and p["ensemble"]["std"] == [0.5, 1.0]
    assert p["reward1"] == 0.0 and p["reward2"] == 0.0 and p["margin"] == 0.0
    assert p["preference"] == "response2" and p["ensemble"]["rule"] == "mean_minus_std"
    assert i["ensemble"]["members"] == [2.0, 1.0] and i["reward"] == pytest.approx(1.5 - 0.5)
    (mn,) = combine_lines([item], [member_lines[0][1:], member_lines[1][1:]], scales, "min", 1.0)
    assert mn["reward"] == 1.0


# ---- tiny members --------------------------------------------------------------------------------
def _member(root: Path, seed: int, pairs) -> Path:
    """A tiny reward model (its own random LM and head: seed) fitted on praise-against-blame pairs,
    saved with the reward statistics of its training responses, as `train` saves them."""
    import torch

    from omnireward.config import compose_config
    from omnireward.train import build_module, reward_stats

    cfg = compose_config(
        ["backbone=tiny", "backbone.feature_cache=false", "head.dropout=0", f"seed={seed}", f"output_dir={root}"]
    )
    torch.manual_seed(seed)
    module = build_module(cfg)
    fit_steps(module, pairs, steps=STEPS, lr=3e-3)
    model = module.model.eval()
    return model.save_pretrained(root, cfg, reward_stats(model, pairs))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    from omnireward.data.records import record_from_dict

    root = tmp_path_factory.mktemp("ensemble")
    pairs = [record_from_dict(r) for r in text_pairs(96, seed=1)]
    return [_member(root / f"member-{k}", k, pairs) for k in range(K)]


@pytest.fixture(scope="module")
def loaded(members):
    from omnireward.reward_model import RewardModel

    return [(RewardModel.from_pretrained(m)[0], RewardScale.from_stats(RewardModel.reward_stats(m))) for m in members]


def _normalised(loaded, records) -> list[list[list[float]]]:
    """[member][record][response] normalised rewards, each member scored alone."""
    from omnireward.scoring.bt import reward_records
    from omnireward.scoring.ensemble import line_rewards

    return [
        [[s.normalized(r) for r in line_rewards(x)] for x in reward_records(m, records, 16, show_progress=False)]
        for m, s in loaded
    ]


def _items(rows: list[tuple[str, str]]):
    from omnireward.data.records import record_from_dict

    return [record_from_dict({"id": str(i), "prompt": p, "response": r}) for i, (p, r) in enumerate(rows)]


def test_member_folders_from_a_folder_of_folders(members, tmp_path):
    root = members[0].parent
    assert member_folders(root) == members  # natural order, beside nothing else
    assert member_folders([members[2], members[0]]) == [members[2], members[0]]
    (root / "ensemble.json").write_text(json.dumps({"members": ["member-2", "member-1"]}))
    try:
        assert member_folders(root) == [members[2], members[1]]  # the manifest's order and choice
    finally:
        (root / "ensemble.json").unlink()
    with pytest.raises(ModelError, match="neither a model folder"):
        member_folders([tmp_path])


def test_score_writes_members_and_combined_and_eval_reads_them(members, loaded, tmp_path):
    from omnireward.cli.app import app
    from omnireward.data.datamodule import load_records

    test = write_jsonl(tmp_path / "test.jsonl", text_pairs(24, seed=3))
    out = tmp_path / "scores.jsonl"
    models = [a for m in members for a in ("--model", str(m))]

    def score(rule):
        args = ["score", str(test), "--out", str(out), "--workers", "0", "--ensemble", rule, "--ensemble-lambda", "0.5"]
        return CliRunner().invoke(app, [*args, *models])

    r = score("mean_minus_std")
    assert r.exit_code == 0, r.output
    assert "ensemble of 3 (mean_minus_std, λ = 0.5)" in " ".join(r.output.split())
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    expect = _normalised(loaded, load_records(test))
    for j, line in enumerate(lines):
        e = line["ensemble"]
        assert e["rule"] == "mean_minus_std" and e["lambda"] == 0.5
        for side in range(2):
            vals = [expect[k][j][side] for k in range(K)]
            assert e["members"][side] == pytest.approx(vals, abs=1e-4)
            assert e["std"][side] == pytest.approx(mean_std(vals)[1], abs=1e-4)
        assert line["reward1"] == pytest.approx(e["mean"][0] - 0.5 * e["std"][0], abs=1e-6)
        assert line["margin"] == pytest.approx(line["reward1"] - line["reward2"], abs=1e-9)
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summary["model"] == [str(m) for m in members]
    ens = summary["ensemble"]
    assert ens["k"] == K and ens["n_responses"] == 48 and len(ens["member_accuracy"]) == K
    assert min(ens["member_accuracy"]) >= 0.75 and summary["accuracy_without_ties"] >= 0.75  # members learned
    # `eval` on the scores file: accuracy from the combined margin, and the line on the spread.
    r = CliRunner().invoke(app, ["eval", str(out), "--out", str(tmp_path / "eval.json")])
    assert r.exit_code == 0, r.output
    again = json.loads((tmp_path / "eval.json").read_text())
    assert again["accuracy_without_ties"] == summary["accuracy_without_ties"]
    assert again["ensemble"]["mean_std"] == pytest.approx(ens["mean_std"])
    assert "mean std of the members' normalised rewards" in " ".join(r.output.split())
    # A rerun continues (complete: same summary); another rule under the same --out is refused.
    r = score("mean")
    assert r.exit_code != 0 and "ensemble_rule" in str(r.exception)


def test_serve_scores_each_batch_with_every_member(members, loaded):
    from omnireward.serving import BatchSettings, ServeSettings, make_server

    rows = [("Tell me about bees.", "An answer about bees that is clear and kind."), ("Tell me about maps.", "No.")]
    expect = _normalised(loaded, _items(rows))
    settings = ServeSettings(port=0, quiet=True)
    with make_server(members[:2], settings=settings, batching=BatchSettings(max_batch_size=8), ensemble="min") as srv:

        def post(route, body):
            req = urllib.request.Request(
                srv.url + route, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())

        got = post("/score", {"records": [{"prompt": p, "response": r} for p, r in rows]})["results"]
        for j, line in enumerate(got):
            vals = [expect[k][j][0] for k in range(2)]
            assert line["reward"] == pytest.approx(min(vals), abs=1e-4)
            assert line["ensemble"]["std"] == pytest.approx(mean_std(vals)[1], abs=1e-4)
        group = post("/score_group", {"prompt": rows[0][0], "responses": [rows[0][1], "No."]})
        assert group["normalized"] == pytest.approx(group["rewards"]) and len(group["ensemble_std"]) == 2
        openrlhf = post("/get_reward", {"query": [p + " " + r for p, r in rows], "prompts": [p for p, _ in rows]})
        assert openrlhf["rewards"] == pytest.approx([x["reward"] for x in got], abs=1e-5)
        assert openrlhf["extra_logs"]["reward_ensemble_std"] == pytest.approx(
            [x["ensemble"]["std"] for x in got], abs=1e-5
        )
        with urllib.request.urlopen(srv.url + "/info", timeout=30) as resp:
            info = json.loads(resp.read())
        assert info["ensemble"]["members"] == [str(m) for m in members[:2]] and info["ensemble"]["rule"] == "min"


def test_trl_reward_function_takes_several_folders(members, loaded):
    from omnireward.integrations.trl import RewardFunction

    prompts = ["Tell me about tides.", "Tell me about chess."]
    completions = ["An answer about tides that is precise and useful.", "An answer about chess that is rude."]
    reward = RewardFunction(members, ensemble="mean_minus_std", ensemble_lambda=2.0)
    got = reward(prompts, completions)
    expect = _normalised(loaded, _items(list(zip(prompts, completions))))
    for j, r in enumerate(got):
        vals = [expect[k][j][0] for k in range(K)]
        assert r == pytest.approx(combine(vals, "mean_minus_std", 2.0), abs=1e-4)
    assert got[0] > got[1]
    assert RewardFunction(members, ensemble="mean_minus_std", ensemble_lambda=2.0, normalize=True)(
        prompts, completions
    ) == pytest.approx(got)


# ---- train ensemble.members=K ----------------------------------------------------------------------
def test_train_members_writes_each_member_with_its_seed(tmp_path):
    from _deploy_utils import tiny_overrides

    from omnireward.config import compose_config
    from omnireward.model_folder import read_config
    from omnireward.train import train

    data = {
        "train": write_jsonl(tmp_path / "train.jsonl", text_pairs(16, seed=1)),
        "val": write_jsonl(tmp_path / "val.jsonl", text_pairs(8, seed=2)),
    }
    cfg = compose_config(tiny_overrides(data, tmp_path / "run", "trainer.max_epochs=1", "ensemble.members=2", "seed=7"))
    assert compose_config(tiny_overrides(data, tmp_path / "x")).ensemble.members == 1  # default: one model
    out = train(cfg)
    assert out == tmp_path / "run"
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["members"] == ["member-0", "member-1"] and manifest["seeds"] == [7, 8]
    assert manifest["data_seeds"] == [7, 7] and manifest["shuffle_data"] is False  # same order unless asked
    c0, c1 = read_config(out / "member-0"), read_config(out / "member-1")
    assert (c0.seed, c1.seed, c0.backbone.seed, c1.backbone.seed) == (7, 8, 7, 8)
    assert (c0.ensemble.member, c1.ensemble.member) == (0, 1)
    assert all((out / m / "reward_stats.json").is_file() for m in manifest["members"])
    assert member_folders(out) == [out / "member-0", out / "member-1"]
    shuffled = compose_config(tiny_overrides(data, tmp_path / "y", "ensemble.members=2", "ensemble.shuffle_data=true"))
    from omnireward.train import member_config

    assert [member_config(shuffled, k, tmp_path / "y").data.seed for k in range(2)] == [0, 1]


# ---- what an ensemble is for (issue 24, item 4) -------------------------------------------------------
OOD = [
    "Der Zug nach Berlin fährt um neun Uhr ab.",
    "def f(x): return x ** 2 + 1",
    "1234 5678 9012 3456 7890",
    "zxq vbnm plok trew uiop asdf",
    "The stock market fell sharply on Tuesday afternoon.",
    "Photosynthesis converts light into chemical energy.",
    "!!! ??? ### $$$ %%% &&&",
    "Quantum chromodynamics describes the strong force.",
    "Je voudrais un café, s'il vous plaît.",
]


def test_std_is_larger_out_of_distribution(loaded):
    """Training-like answers (two words of praise or two of blame on a training topic, new draws)
    against records unlike any training record: one word of praise and one of blame together (the
    features that decided every training label now contradict each other), text of other
    languages, code and subjects, digit strings, and prompts of another kind."""
    rng = random.Random(0)
    topics = TOPICS * 2

    def answer(t, a, b):
        return (f"Tell me about {t}.", f"An answer about {t} that is {a} and {b}.")

    like = [answer(t, *rng.sample(GOOD if i % 2 else BAD, 2)) for i, t in enumerate(topics)]
    ood = [answer(t, rng.choice(GOOD), rng.choice(BAD)) for t in topics]
    ood += [(f"Tell me about {t}.", OOD[i % len(OOD)]) for i, t in enumerate(topics)]
    ood += [(f"Tell me about {t}.", " ".join(str(rng.randint(0, 9999)) for _ in range(12))) for t in topics]
    prompts = ["Wie spät ist es?", "print(1)", "???", "Sum 2 and 3.", "Où est la gare?"]
    ood += [(prompts[i % len(prompts)], OOD[i % len(OOD)]) for i in range(len(topics))]

    def stds(rows):
        per = _normalised(loaded, _items(rows))
        return [mean_std([per[k][j][0] for k in range(K)])[1] for j in range(len(rows))]

    s_like, s_ood = stds(like), stds(ood)
    mean_like, mean_ood = sum(s_like) / len(s_like), sum(s_ood) / len(s_ood)
    assert mean_ood > 1.5 * mean_like, (mean_like, mean_ood)
    assert sorted(s_ood)[len(s_ood) // 2] > sorted(s_like)[len(s_like) // 2]  # the medians too
