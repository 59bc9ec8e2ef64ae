"""Judges that vote: K sampled critiques per pair (and per order), majority verdict, mean
probabilities, agreement; seeded per record, so reruns and batch neighbours do not change a line."""

from __future__ import annotations

import json

import pytest
import torch
from _judge_utils import small_backbone, write_rows, yes_no_rows

from omnireward.data.records import record_from_dict
from omnireward.errors import ConfigError
from omnireward.judge import critique as critique_mod
from omnireward.judge.templates import load_template
from omnireward.scoring.judge import Judge, Sampling, judge_file, majority, record_seed
from omnireward.scoring.output import ScoresFile

LABELS = ("response1", "response2", "tie")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny random LM saved as a plain HF folder."""
    d = tmp_path_factory.mktemp("lm")
    bb = small_backbone(["Is the sky blue? yes no Verdict: [[A]] [[B]] Response says maybe."])
    bb.lm.save_pretrained(d)
    bb.tokenizer.save_pretrained(d)
    return d


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


# ---- the vote rule -----------------------------------------------------------------------------
def test_majority_wins_and_a_tie_in_votes_goes_to_the_higher_mean_probability():
    p = {"response1": 0.3, "response2": 0.6, "tie": 0.1}
    assert majority({"response1": 3, "response2": 2, "tie": 0}, p) == "response1"  # votes first
    assert majority({"response1": 2, "response2": 2, "tie": 1}, p) == "response2"  # tied: mean p decides
    q = {"response1": 0.55, "response2": 0.4, "tie": 0.05}
    assert majority({"response1": 2, "response2": 2, "tie": 0}, q) == "response1"
    # Tied votes and tied means: response1, then response2, then tie.
    even = {"response1": 0.4, "response2": 0.4, "tie": 0.2}
    assert majority({"response1": 1, "response2": 1, "tie": 0}, even) == "response1"
    assert majority({"response1": 0, "response2": 1, "tie": 1}, {**even, "tie": 0.4}) == "response2"


def _stub_probs(monkeypatch, rows_per_call):
    """Verdict probabilities from a list, one [B, 3] tensor per critique call (the sampler stubbed)."""
    calls = iter(rows_per_call)
    monkeypatch.setattr(
        critique_mod, "verdict_probs", lambda bb, t, batch, crit: torch.tensor(next(calls), dtype=torch.float)
    )


def test_a_line_counts_votes_averages_probabilities_and_breaks_ties_by_the_mean(lm_dir, monkeypatch):
    bb = small_backbone(lm=str(lm_dir))
    j = Judge(bb, load_template("omni"), max_new_tokens=2)
    pair = record_from_dict(yes_no_rows(1, 0)[0])
    # Four samples: two say response1 (weakly), two say response2 (strongly): a 2-2 tie in votes,
    # broken by the mean probabilities, which favour response2.
    _stub_probs(monkeypatch, [[[0.5, 0.4, 0.1], [0.5, 0.4, 0.1], [0.1, 0.9, 0.0], [0.2, 0.7, 0.1]]])
    (x,) = j.judge_pairs([pair], sampling=Sampling(4, seed=1), show_progress=False)
    assert x["samples"] == 4 and x["votes"] == {"response1": 2, "response2": 2, "tie": 0}
    assert x["verdict"] == "response2" and x["agreement"] == 0.5
    assert x["p_response1"] == pytest.approx(0.325) and x["p_response2"] == pytest.approx(0.6)
    assert x["margin"] == pytest.approx(0.325 - 0.6) and len(x["critiques"]) == 4
    assert x["critique"] == x["critiques"][2]  # the first sample that voted with the majority
    # A clear majority wins against the mean probabilities: 3 weak votes for response1 beat 1 strong one.
    _stub_probs(monkeypatch, [[[0.4, 0.35, 0.25]] * 3 + [[0.0, 1.0, 0.0]]])
    (y,) = j.judge_pairs([pair], sampling=Sampling(4, seed=1), show_progress=False)
    assert y["verdict"] == "response1" and y["agreement"] == 0.75 and y["p_response2"] > y["p_response1"]


def test_both_orders_vote_with_k_samples_per_order(lm_dir, monkeypatch):
    bb = small_backbone(lm=str(lm_dir))
    j = Judge(bb, load_template("omni"), max_new_tokens=2)
    pair = record_from_dict(yes_no_rows(1, 0)[0])
    # As shown: A wins 3 times. Swapped (response2 shown as A): B (= response1) wins twice, A once.
    _stub_probs(monkeypatch, [[[0.8, 0.2, 0.0]] * 3, [[0.3, 0.7, 0.0], [0.2, 0.8, 0.0], [0.9, 0.1, 0.0]]])
    (x,) = j.judge_pairs([pair], both_orders=True, sampling=Sampling(3), show_progress=False)
    assert x["votes"] == {"response1": 5, "response2": 1, "tie": 0} and x["verdict"] == "response1"
    assert x["agreement"] == pytest.approx(5 / 6) and len(x["critiques_swapped"]) == 3
    assert x["p_response1_by_order"] == pytest.approx([0.8, (0.7 + 0.8 + 0.1) / 3])
    assert x["order_agreement"] is True
    assert x["p_response1"] == pytest.approx((0.8 * 3 + 0.7 + 0.8 + 0.1) / 6)


# ---- determinism -------------------------------------------------------------------------------
def test_voting_runs_are_reproducible_and_independent_of_batch_neighbours(lm_dir, tmp_path):
    rows = yes_no_rows(6, 0)
    kw = dict(max_new_tokens=5, device="cpu", samples=4, seed=3, show_progress=False)
    src = write_rows(tmp_path / "pairs.jsonl", rows)
    s = judge_file(src, lm_dir, tmp_path / "a.jsonl", batch_size=4, **kw)
    judge_file(src, lm_dir, tmp_path / "b.jsonl", batch_size=4, **kw)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    a = {x["id"]: x for x in _lines(tmp_path / "a.jsonl")}
    # The same records in another order, other batches and among other neighbours: same lines.
    shuffled = [rows[4], *yes_no_rows(3, 9), rows[1], rows[0]]
    judge_file(write_rows(tmp_path / "other.jsonl", shuffled), lm_dir, tmp_path / "c.jsonl", batch_size=3, **kw)
    for x in _lines(tmp_path / "c.jsonl"):
        if x["id"] in a:
            assert x == a[x["id"]]
    # Sampling is real (temperature 1.0 by default with K > 1) and the summary reports the vote.
    assert any(len(set(x["critiques"])) > 1 for x in a.values())
    assert all(sum(x["votes"].values()) == 4 and x["agreement"] >= 0.5 for x in a.values())
    assert s["samples"] == 4 and 0 <= s["vote_accuracy"] <= 1
    assert s["mean_agreement"] == pytest.approx(sum(x["agreement"] for x in a.values()) / 6)
    right = sum(x["verdict"] == x["preference"] for x in a.values())
    assert s["vote_accuracy"] == pytest.approx(right / 6)
    # Another run seed samples other critiques.
    judge_file(src, lm_dir, tmp_path / "d.jsonl", batch_size=4, **{**kw, "seed": 4})
    assert [x["critiques"] for x in _lines(tmp_path / "d.jsonl")] != [x["critiques"] for x in a.values()]
    assert record_seed(3, "yn0-0") != record_seed(4, "yn0-0") != record_seed(3, "yn0-0", 1)


def test_one_sample_is_todays_judge(lm_dir, tmp_path):
    """--samples 1 writes the file the judge wrote before voting existed: greedy, no vote fields,
    and the same run identity (so files written before resume)."""
    src = write_rows(tmp_path / "pairs.jsonl", yes_no_rows(5, 0))
    judge_file(src, lm_dir, tmp_path / "one.jsonl", max_new_tokens=5, batch_size=2, device="cpu", samples=1)
    judge_file(src, lm_dir, tmp_path / "old.jsonl", max_new_tokens=5, batch_size=2, device="cpu", temperature=0.0)
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "old.jsonl").read_bytes()
    one, old = (ScoresFile(tmp_path / f"{n}.jsonl").state_path for n in ("one", "old"))
    assert json.loads(one.read_text())["identity"]["options"] == json.loads(old.read_text())["identity"]["options"]
    assert "samples" not in json.loads(one.read_text())["identity"]["options"]
    bb = small_backbone(lm=str(lm_dir))
    j = Judge(bb, load_template("omni"), max_new_tokens=5, batch_size=2)
    pairs = [record_from_dict(r) for r in yes_no_rows(5, 0)]
    expected = j.judge_pairs(pairs, show_progress=False)
    for got, exp in zip(_lines(tmp_path / "one.jsonl"), expected):
        assert "votes" not in got and got["critique"] == exp["critique"]
        assert got["p_response1"] == pytest.approx(exp["p_response1"], abs=1e-6)


def test_items_and_groups_vote_too(lm_dir, tmp_path):
    rows = [
        {"id": "item", "prompt": "Is the sky blue?", "response": "yes"},
        {"id": "grp", "prompt": "Is the sky blue?", "responses": ["yes", "no", "maybe"]},
    ]
    src = write_rows(tmp_path / "mixed.jsonl", rows)
    # Free decoding: the tiny word vocabulary cannot spell the pointwise Flex JSON its grammar asks for.
    kw = dict(max_new_tokens=3, device="cpu", samples=3, constrained=False, show_progress=False)
    judge_file(src, lm_dir, tmp_path / "m.jsonl", **kw)
    item, group = _lines(tmp_path / "m.jsonl")
    assert item["samples"] == 3 and len(item["scores"]) == 3
    assert item["score"] == pytest.approx(sum(item["scores"]) / 3) and item["reward"] == item["score"]
    assert len(group["win_rate"]) == 3 and sum(group["win_rate"]) == pytest.approx(1.5)


def test_bad_sampling_settings_are_one_line(lm_dir, tmp_path):
    src = write_rows(tmp_path / "pairs.jsonl", yes_no_rows(2, 0))
    with pytest.raises(ConfigError, match="temperature") as e:
        judge_file(src, lm_dir, tmp_path / "x.jsonl", samples=3, temperature=0.0, device="cpu")
    assert e.value.field == "--temperature"
    with pytest.raises(ConfigError, match="at least 1"):
        judge_file(src, lm_dir, tmp_path / "y.jsonl", samples=0, device="cpu")
    with pytest.raises(ConfigError, match="top_p"):
        Sampling(2, top_p=0.0)


# ---- the routes --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(lm_dir):
    from omnireward.serving import BatchSettings, ServeSettings, make_server

    settings = ServeSettings(port=0, quiet=True)
    batching = BatchSettings(max_batch_size=16, batch_timeout=0.05)
    with make_server(
        str(lm_dir), judge="omni", settings=settings, batching=batching, device="cpu", max_new_tokens=4
    ) as srv:
        yield srv


def _post(srv, route: str, body) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        srv.url + route, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_judge_route_with_n_votes_as_score_samples_does(server, lm_dir, tmp_path):
    rows = [{k: r[k] for k in ("id", "prompt", "response1", "response2", "preference")} for r in yes_no_rows(3, 2)]
    status, out = _post(server, "/judge", {"pairs": rows, "n": 3, "seed": 5, "both_orders": True})
    assert status == 200, out
    src = write_rows(tmp_path / "p.jsonl", rows)
    kw = dict(judge="omni", max_new_tokens=4, device="cpu", samples=3, seed=5, both_orders=True)
    judge_file(src, lm_dir, tmp_path / "s.jsonl", show_progress=False, **kw)
    for got, exp in zip(out["results"], _lines(tmp_path / "s.jsonl")):
        assert got["samples"] == 3 and sum(got["votes"].values()) == 6
        for k in ("verdict", "votes", "critiques", "critiques_swapped", "agreement"):
            assert got[k] == exp[k], k
        assert got["p_response1"] == pytest.approx(exp["p_response1"], abs=1e-5)
    assert _post(server, "/judge", {"pairs": rows, "n": 3, "seed": 5, "both_orders": True})[1] == out
    # n = 1 (the default) is the greedy judge, without vote fields; sampling fields then need n > 1.
    status, one = _post(server, "/judge", {"pairs": rows})
    assert status == 200 and "votes" not in one["results"][0]
    status, bad = _post(server, "/judge", {"pairs": rows, "temperature": 0.7})
    assert status == 400 and bad["error"].startswith("temperature:"), bad
    status, bad = _post(server, "/judge", {"pairs": rows, "n": 0})
    assert status == 400 and bad["error"].startswith("n:"), bad


def test_chat_completions_with_n_return_n_choices_and_their_vote(server):
    from omnireward.integrations.verl_judge import judge_messages

    body = {"messages": judge_messages("Is the sky blue?", "yes", "no"), "max_tokens": 4, "temperature": 1.0}
    status, out = _post(server, "/v1/chat/completions", {**body, "n": 5, "seed": 2})
    assert status == 200, out
    assert len(out["choices"]) == 5 and [c["index"] for c in out["choices"]] == list(range(5))
    vote = out["vote"]
    letters = [c["verdict"] for c in out["choices"]]
    assert vote["n"] == 5 and vote["votes"] == {x: letters.count(x) for x in vote["votes"]}
    assert vote["agreement"] == letters.count(vote["verdict"]) / 5
    assert vote["votes"][vote["verdict"]] == max(vote["votes"].values())
    for x, p in vote["verdict_probs"].items():
        assert p == pytest.approx(sum(c["verdict_probs"][x] for c in out["choices"]) / 5, abs=1e-6)
    # One choice: the answer is as before, without a vote.
    status, one = _post(server, "/v1/chat/completions", body)
    assert status == 200 and len(one["choices"]) == 1 and "vote" not in one


def test_chat_vote_breaks_a_tie_by_the_mean_probabilities():
    from omnireward.serving.judge_service import chat_vote

    choices = [
        {"verdict": "A", "verdict_probs": {"A": 0.5, "B": 0.4, "C": 0.1}},
        {"verdict": "B", "verdict_probs": {"A": 0.1, "B": 0.9, "C": 0.0}},
    ]
    v = chat_vote(choices)
    assert v["verdict"] == "B" and v["votes"] == {"A": 1, "B": 1, "C": 0} and v["agreement"] == 0.5
    no_tie = [{"verdict": "A", "verdict_probs": {"A": 0.6, "B": 0.4}}] * 2 + [
        {"verdict": "B", "verdict_probs": {"A": 0.0, "B": 1.0}}
    ]
    assert chat_vote(no_tie)["verdict"] == "A"
    assert chat_vote([{"score": 2.0}, {"score": 4.0}]) == {"n": 2, "score": 3.0}
