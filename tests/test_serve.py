"""The HTTP reward server, queried over loopback from the test process."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from _deploy_utils import score_lines, text_pairs
from omnireward.serve import make_server


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny text reward model (random LM, random head) saved with reward statistics."""
    import torch

    from omnireward.config import compose_config
    from omnireward.train import build_module

    root = tmp_path_factory.mktemp("serve")
    cfg = compose_config(["backbone=tiny", "backbone.feature_cache=false", "head.dropout=0",
                          f"output_dir={root / 'model'}"])
    model = build_module(cfg).model.eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.score.weight)
    return model.save_pretrained(root / "model", cfg, {"mean": 0.5, "std": 2.0, "n": 10})


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    srv = make_server(model_dir, host="127.0.0.1", port=0, batch_size=4, device="cpu", media_root=media, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def _url(srv, route: str) -> str:
    host, port = srv.server_address[:2]
    assert host == "127.0.0.1"
    return f"http://{host}:{port}{route}"


def _request(srv, route: str, body=None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(_url(srv, route), data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_health(server, model_dir):
    status, body = _request(server, "/health")
    assert status == 200 and body["status"] == "ok"
    assert body["model"] == str(model_dir) and body["quant"] == "none" and body["modalities"] == []
    assert body["reward_stats"] == {"mean": 0.5, "std": 2.0, "n": 10}


def test_score_returns_the_lines_omnireward_score_writes(server, model_dir, tmp_path):
    from omnireward.reward_model import RewardModel

    records = text_pairs(6, seed=4) + [{"id": "item", "prompt": "Tell me about tides.", "response": "They turn."}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    expected = score_lines(RewardModel.from_pretrained(model_dir)[0], path)
    status, body = _request(server, "/score", records)
    assert status == 200
    got = body["results"]
    assert [x["id"] for x in got] == [r["id"] for r in records]
    for g, e in zip(got, expected):
        assert g.keys() == e.keys()
        for k in ("reward1", "reward2", "margin", "reward"):
            if k in e:
                assert g[k] == pytest.approx(e[k], abs=1e-5)
    # the {"records": [...]} form, and records without ids
    status, body = _request(server, "/score", {"records": [{k: v for k, v in records[0].items() if k != "id"}]})
    assert status == 200 and body["results"][0]["id"] == "0"
    assert body["results"][0]["margin"] == pytest.approx(expected[0]["margin"], abs=1e-5)


def test_score_group_rewards_and_normalised_rewards(server):
    responses = ["An answer about bees that is kind and honest.", "bzzz", {"text": "Bees make honey."}]
    status, body = _request(server, "/score_group", {"prompt": "Tell me about bees.", "responses": responses,
                                                     "criteria": "prefer correct answers"})
    assert status == 200
    assert len(body["rewards"]) == 3 and body["best"] == max(range(3), key=body["rewards"].__getitem__)
    assert body["normalized"] == pytest.approx([(r - 0.5) / 2.0 for r in body["rewards"]])
    # the same response scored alone through /score gives the same reward
    status, one = _request(server, "/score", [{"prompt": "Tell me about bees.", "response": "bzzz",
                                               "criteria": "prefer correct answers"}])
    assert one["results"][0]["reward"] == pytest.approx(body["rewards"][1], abs=1e-5)


@pytest.mark.parametrize("route,payload,raw,needle", [
    ("/score", None, b"{not json", "body: invalid JSON"),
    ("/score", {"records": "x"}, None, "records: expected a list"),
    ("/score", [], None, "records: the list is empty"),
    ("/score", [{"prompt": "p", "response1": "a", "response2": 3}], None, "records[0].response2"),
    ("/score", [{"prompt": "p", "response1": "a", "response2": "b"}, {"prompt": 5, "response": "x"}], None,
     "records[1].prompt"),
    ("/score", [{"prompt": "p", "response": "a", "prompt_media": [{"type": "image", "path": "missing.png"}]}], None,
     "records[0].prompt_media[0].path"),
    ("/score", [{"prompt": "p", "response": "a", "prompt_media": [{"type": "image", "path": "../../etc/passwd"}]}],
     None, "escapes the media root"),
    ("/score_group", {"prompt": "p"}, None, "responses: expected a non-empty list"),
    ("/score_group", {"responses": ["a"]}, None, "prompt: expected a string"),
    ("/score_group", {"prompt": "p", "responses": ["a", {"text": 7}]}, None, "responses[1]"),
])
def test_bad_requests_get_a_400_naming_the_field(server, route, payload, raw, needle):
    status, body = _request(server, route, payload, raw)
    assert status == 400
    assert needle in body["error"] and "\n" not in body["error"]


def test_unknown_route_is_404_and_the_server_keeps_serving(server):
    assert _request(server, "/nope", {"a": 1})[0] == 404
    assert _request(server, "/nope")[0] == 404
    assert _request(server, "/health")[0] == 200


def test_concurrent_requests_get_their_own_answers(server):
    groups = [{"prompt": f"Tell me about {t}.", "responses": [f"{t} are fine.", f"{t} are not fine at all."]}
              for t in ("maps", "clocks", "glass", "rivers", "bread", "chess")]
    sequential = [_request(server, "/score_group", g)[1]["rewards"] for g in groups]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(lambda g: _request(server, "/score_group", g)[1]["rewards"], groups))
    assert parallel == [pytest.approx(s, abs=1e-5) for s in sequential]


def test_4bit_server(model_dir):
    pytest.importorskip("bitsandbytes")
    srv = make_server(model_dir, port=0, quant="4bit", device="cpu", quiet=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        status, body = _request(srv, "/health")
        assert status == 200 and body["quant"] == "4bit"
        status, body = _request(srv, "/score_group", {"prompt": "p", "responses": ["a", "b"]})
        assert status == 200 and len(body["rewards"]) == 2
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def test_cli_registers_serve():
    import typer
    from typer.testing import CliRunner

    from omnireward.cli.serve_cmd import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root():
        pass

    res = CliRunner().invoke(app, ["serve", "--help"])
    assert res.exit_code == 0 and "--quant" in res.stdout and "--batch-size" in res.stdout
