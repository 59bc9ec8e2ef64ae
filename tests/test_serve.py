"""The reward server over loopback: every route gives `omnireward score`'s rewards, with auth,
limits, batching across requests, and one-line errors that leave other requests alone."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _deploy_utils import score_lines, text_pairs

from omnireward.serving import BatchSettings, ServeSettings, make_server
from omnireward.serving.scale import sigmoid

KEY = "test-key-123"


def _save_tiny(root: Path, *overrides: str) -> Path:
    """A tiny reward model (random LM, random head) saved with reward statistics."""
    import torch

    from omnireward.config import compose_config
    from omnireward.train import build_module

    cfg = compose_config(
        ["backbone=tiny", "backbone.feature_cache=false", "head.dropout=0", f"output_dir={root}", *overrides]
    )
    model = build_module(cfg).model.eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.score.weight)
    return model.save_pretrained(root, cfg, {"mean": 0.5, "std": 2.0, "n": 10})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _save_tiny(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def reference(model_dir):
    from omnireward.reward_model import RewardModel

    return RewardModel.from_pretrained(model_dir)[0]


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("media")
    Image.fromarray(data.astronaut()[::4, ::4]).save(root / "astronaut.png")
    Image.fromarray(data.chelsea()[::4, ::4]).save(root / "chelsea.png")
    return root


@pytest.fixture(scope="module")
def server(model_dir, media_root):
    settings = ServeSettings(
        port=0, api_key=KEY, media_root=media_root, max_records_per_request=64, max_body_mb=0.25, quiet=True
    )
    with make_server(model_dir, settings=settings, batching=BatchSettings(max_batch_size=8), device="cpu") as srv:
        yield srv


def call(
    srv, route: str, body=None, *, raw: bytes | None = None, key: str | None = KEY, headers: dict | None = None
) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json", **(headers or {})}
    if key:
        h["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(srv.url + route, data=data, method="POST" if data is not None else "GET", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def rm_template(reference, chat: list[dict]) -> str:
    """What verl posts to /classify: the reward model tokenizer's chat template over the conversation."""
    return reference.backbone.tokenizer.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)


# ---- health, info, auth --------------------------------------------------------------------------------
def test_binds_loopback_and_health_needs_no_key(server, model_dir):
    assert server.address[0] == "127.0.0.1"
    assert call(server, "/health", key=None) == (200, {"status": "ok", "model": str(model_dir)})


def test_info_reports_model_objective_stats_and_batching(server, model_dir):
    status, info = call(server, "/info")
    assert status == 200
    assert info["model"] == str(model_dir) and info["objective"] == {
        "objective": "reward",
        "head": "BTHead",
        "loss": "bt_loss",
    }
    assert info["modalities"] == ["text"] and info["reward_stats"] == {"mean": 0.5, "std": 2.0, "n": 10}
    assert info["batching"]["max_batch_size"] == 8 and info["batching"]["replicas"] == 1
    assert info["limits"]["max_records_per_request"] == 64 and info["auth"] is True
    assert set(info["routes"]) == {"/score", "/score_group", "/get_reward", "/classify", "/pooling"}


@pytest.mark.parametrize("headers,key", [({}, None), ({}, "wrong"), ({"X-API-Key": KEY}, None)])
def test_api_key_is_required_on_every_scoring_route(server, headers, key):
    ok = "X-API-Key" in headers
    for route in ("/score", "/get_reward", "/classify", "/info"):
        body = None if route == "/info" else {"query": ["x"]}
        status, out = call(server, route, body, key=key, headers=headers)
        if ok:
            assert status != 401
        else:
            assert status == 401 and "API key" in out["error"]
    status, _ = call(server, f"/get_reward?api_key={KEY}", {"query": ["a b"]}, key=None)  # for URL-only clients
    assert status == 200


# ---- every route gives omnireward score's rewards ------------------------------------------------------
def test_score_returns_the_lines_omnireward_score_writes(server, reference, tmp_path):
    records = text_pairs(6, seed=4) + [{"id": "item", "prompt": "Tell me about tides.", "response": "They turn."}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    expected = score_lines(reference, path)
    status, body = call(server, "/score", records)
    assert status == 200
    got = body["results"]
    assert [x["id"] for x in got] == [r["id"] for r in records]
    for g, e in zip(got, expected):
        assert g.keys() == e.keys()
        for k in ("reward1", "reward2", "margin", "reward"):
            if k in e:
                assert g[k] == pytest.approx(e[k], abs=1e-5)
    status, body = call(server, "/score", {"records": [{k: v for k, v in records[0].items() if k != "id"}]})
    assert status == 200 and body["results"][0]["id"] == "0"
    assert body["results"][0]["margin"] == pytest.approx(expected[0]["margin"], abs=1e-5)


def _native_rewards(server, pairs: list[tuple[str, str]], criteria: str | None = None) -> list[float]:
    recs = [{"prompt": p, "response": r, **({"criteria": criteria} if criteria else {})} for p, r in pairs]
    status, body = call(server, "/score", recs)
    assert status == 200
    return [x["reward"] for x in body["results"]]


PAIRS = [
    ("Tell me about bees.", "Bees make honey and dance."),
    ("Tell me about tides.", "The moon pulls them."),
    ("How do I brew tea?", "No. Figure it out yourself."),
]


def test_openrlhf_get_reward_equals_score_of_the_native_record(server):
    native = _native_rewards(server, PAIRS)
    body = {"query": [p + " " + r for p, r in PAIRS], "prompts": [p for p, _ in PAIRS], "labels": ["", "", ""]}
    status, out = call(server, "/get_reward", body)
    assert status == 200 and set(out) == {"rewards", "scores", "extra_logs"}
    assert out["rewards"] == pytest.approx(native, abs=1e-5)
    assert out["scores"] == pytest.approx([sigmoid((r - 0.5) / 2.0) for r in native], abs=1e-6)
    assert all(0 < s < 1 for s in out["scores"])
    assert out["extra_logs"]["reward_normalized"] == pytest.approx([(r - 0.5) / 2.0 for r in native], abs=1e-5)
    # a policy with a ChatML template: OpenRLHF decodes prompt + response with the special tokens
    chat = [f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n" for p, _ in PAIRS]
    body = {"query": [c + r + "<|im_end|>" for c, (_, r) in zip(chat, PAIRS)], "prompts": chat}
    status, out = call(server, "/get_reward", body)
    assert status == 200 and out["rewards"] == pytest.approx(native, abs=1e-5)


def test_vllm_classify_as_verl_posts_it_equals_score(server, reference):
    native = _native_rewards(server, PAIRS)
    for (p, r), expected in zip(PAIRS, native):
        text = rm_template(reference, [{"role": "user", "content": p}, {"role": "assistant", "content": r}])
        status, out = call(server, "/classify", {"model": "/ckpt/rm", "input": text, "activation": False})
        assert status == 200 and out["model"] == "/ckpt/rm" and out["object"] == "list"
        assert out["data"][-1]["probs"][-1] == pytest.approx(expected, abs=1e-5)  # what verl reads
    texts = [
        rm_template(reference, [{"role": "user", "content": p}, {"role": "assistant", "content": r}]) for p, r in PAIRS
    ]
    status, out = call(server, "/classify", {"input": texts})  # vLLM's default: sigmoid of the logit
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    assert [d["probs"][0] for d in out["data"]] == pytest.approx([sigmoid(r) for r in native], abs=1e-6)
    status, out = call(server, "/pooling", {"input": texts})
    assert [d["data"][0] for d in out["data"]] == pytest.approx(native, abs=1e-5)
    # chat messages instead of templated text, and a system turn that carries criteria
    crit = _native_rewards(server, PAIRS[:1], criteria="prefer short answers")
    msgs = [
        {"role": "system", "content": "prefer short answers"},
        {"role": "user", "content": PAIRS[0][0]},
        {"role": "assistant", "content": PAIRS[0][1]},
    ]
    status, out = call(server, "/classify", {"messages": msgs, "use_activation": False})
    assert out["data"][0]["probs"][0] == pytest.approx(crit[0], abs=1e-5)
    status, out = call(server, "/classify", {"input": rm_template(reference, msgs), "activation": False})
    assert out["data"][0]["probs"][0] == pytest.approx(crit[0], abs=1e-5)


def test_score_group_rewards_and_normalised_rewards(server):
    responses = ["An answer about bees that is kind and honest.", "bzzz", {"text": "Bees make honey."}]
    status, body = call(
        server,
        "/score_group",
        {"prompt": "Tell me about bees.", "responses": responses, "criteria": "prefer correct answers"},
    )
    assert status == 200
    assert len(body["rewards"]) == 3 and body["best"] == max(range(3), key=body["rewards"].__getitem__)
    assert body["normalized"] == pytest.approx([(r - 0.5) / 2.0 for r in body["rewards"]])
    one = _native_rewards(server, [("Tell me about bees.", "bzzz")], criteria="prefer correct answers")
    assert one[0] == pytest.approx(body["rewards"][1], abs=1e-5)


# ---- bad requests, limits --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "route,payload,raw,needle",
    [
        ("/score", None, b"{not json", "body: invalid JSON"),
        ("/score", None, b"[" * 100_000 + b"]" * 100_000, "body: JSON nested too deeply"),
        ("/score", {"records": "x"}, None, "records: expected a list"),
        ("/score", [{"prompt": "p", "response1": "a", "response2": 3}], None, "records[0].response2"),
        (
            "/score",
            [{"prompt": "p", "response1": "a", "response2": "b"}, {"prompt": 5, "response": "x"}],
            None,
            "records[1].prompt",
        ),
        (
            "/score",
            [{"prompt": "p", "response": "a", "prompt_media": [{"type": "image", "path": "missing.png"}]}],
            None,
            "records[0].prompt_media[0].path: media file not found",
        ),
        (
            "/score",
            [{"prompt": "p", "response": "a", "prompt_media": [{"type": "image", "path": "../../etc/passwd"}]}],
            None,
            "escapes the media root",
        ),
        ("/score_group", {"prompt": "p"}, None, "responses: expected a list"),
        ("/score_group", {"responses": ["a"]}, None, "prompt: expected a string"),
        ("/score_group", {"prompt": "p", "responses": ["a", {"text": 7}]}, None, "responses[1].text"),
        ("/get_reward", {"query": ["a", None]}, None, "query[1]: expected a string"),
        ("/classify", {"input": [[101, 102]]}, None, "input[0]: token ids"),
    ],
)
def test_bad_requests_get_a_400_naming_the_field(server, route, payload, raw, needle):
    status, body = call(server, route, payload, raw=raw)
    assert status == 400
    assert needle in body["error"] and "\n" not in body["error"]


def test_empty_lists_get_empty_lists(server):
    """OpenRLHF releases other than 0.11.2 send {"query": []} to every reward server after the first
    when there are fewer queries than servers; an empty list is an empty answer, not an error."""
    assert call(server, "/get_reward", {"query": [], "prompts": [], "labels": []}) == (
        200,
        {"rewards": [], "scores": [], "extra_logs": {"reward_normalized": []}},
    )
    assert call(server, "/score", []) == (200, {"results": []})
    assert call(server, "/score", {"records": []}) == (200, {"results": []})
    status, out = call(server, "/classify", {"input": []})
    assert status == 200 and out["data"] == [] and out["object"] == "list"
    status, out = call(server, "/pooling", {"input": []})
    assert status == 200 and out["data"] == []
    status, out = call(server, "/score_group", {"prompt": "p", "responses": []})
    assert status == 200 and out["rewards"] == [] and out["best"] is None


def test_size_and_count_limits_are_413(server):
    status, body = call(server, "/get_reward", {"query": ["x"] * 65})
    assert status == 413 and "65 records is over the limit of 64" in body["error"]
    status, body = call(server, "/score", [{"prompt": "p" * 300_000, "response": "r"}])
    assert status == 413 and "over the 262144 byte limit" in body["error"]
    assert call(server, "/health", key=None)[0] == 200


def test_unknown_routes_and_methods_are_one_line_errors(server):
    status, body = call(server, "/nope", {"a": 1})
    assert status == 404 and "no route POST /nope" in body["error"] and "POST /get_reward" in body["error"]
    assert call(server, "/score")[0] == 405
    assert call(server, "/health", key=None)[0] == 200


def test_a_bad_request_in_a_load_run_fails_alone(server):
    """An image sent to a text-only model fails inside the shared forward pass; the pass is re-run
    record by record so only that request fails, and every concurrent request gets its rewards."""
    groups = [
        {"prompt": f"Tell me about {t}.", "responses": [f"{t} are fine.", f"{t} are not fine at all."]}
        for t in ("maps", "clocks", "glass", "rivers", "bread", "chess", "bees", "tides")
    ]
    sequential = [call(server, "/score_group", g)[1]["rewards"] for g in groups]
    bad = [
        {
            "prompt": "What is this?",
            "response": "A person.",
            "prompt_media": [{"type": "image", "path": "astronaut.png"}],
        }
    ]
    jobs = [("/score_group", g) for g in groups[:4]] + [("/score", bad)] + [("/score_group", g) for g in groups[4:]]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(lambda j: call(server, *j), jobs))
    status, err = answers.pop(4)
    assert status == 400 and err["error"].startswith("records[0]: ") and "no image encoder" in err["error"]
    assert [s for s, _ in answers] == [200] * len(groups)
    assert [a["rewards"] for _, a in answers] == [pytest.approx(s, abs=1e-5) for s in sequential]


# ---- batching across requests -----------------------------------------------------------------------------
def test_concurrent_requests_share_one_forward_pass(model_dir):
    """Eight clients, one record each: the batch fills up (the 60 s timeout never runs out) and the
    eight requests are answered from one forward pass with the rewards they get alone."""
    settings = ServeSettings(port=0, quiet=True)
    batching = BatchSettings(max_batch_size=8, batch_timeout=60)
    queries = [f"Tell me about {t}. They are {w}." for t in ("maps", "bees") for w in ("fine", "bad", "ok", "odd")]
    with make_server(model_dir, settings=settings, batching=batching, device="cpu") as srv:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda q: call(srv, "/get_reward", {"query": [q]}, key=None), queries))
        batches = call(srv, "/info", key=None)[1]["batches"]
        assert batches["batches"] == 1 and batches["requests_per_batch"] == {"8": 1}
        # alone (the batch is full with 8 records, so no waiting)
        status, alone = call(srv, "/get_reward", {"query": queries}, key=None)
    assert [s for s, _ in answers] == [200] * 8
    assert [a["rewards"][0] for _, a in answers] == pytest.approx(alone["rewards"], abs=1e-5)


def test_timeout_is_504_and_a_full_queue_is_503(model_dir):
    from omnireward.serving.batcher import Batcher

    gate = threading.Event()
    settings = ServeSettings(port=0, quiet=True, request_timeout=0.5)
    with make_server(model_dir, settings=settings, device="cpu") as srv:
        service = srv.service
        service.batcher.close()
        service.batcher = Batcher(
            [lambda items: gate.wait(60) and [{"reward": 0.0}] * len(items)],
            max_batch_size=2,
            batch_timeout=0,
            max_queue=2,
        )
        try:
            status, body = call(srv, "/get_reward", {"query": ["a", "b"]}, key=None)  # held at the gate
            assert status == 504 and "not answered within 0.5 s" in body["error"]
            service.batcher.submit([1, 2])  # the worker is still held: these two wait
            status, body = call(srv, "/get_reward", {"query": ["c"]}, key=None)
            assert status == 503 and "server busy" in body["error"]
        finally:
            gate.set()


# ---- media: paths and inline data: URIs on an image model ---------------------------------------------------
@pytest.fixture(scope="module")
def image_server(tmp_path_factory, media_root):
    model = _save_tiny(tmp_path_factory.mktemp("serve-image") / "model", "modality=image")
    settings = ServeSettings(port=0, media_root=media_root, max_media_mb=0.5, quiet=True)
    with make_server(model, settings=settings, device="cpu") as srv:
        yield srv, model


def _uri(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def test_inline_images_score_like_files(image_server, media_root):
    from omnireward.reward_model import RewardModel

    srv, model = image_server
    records = [
        {
            "id": name,
            "prompt": "What is in the picture?",
            "response": "An animal.",
            "prompt_media": [{"type": "image", "path": f"{name}.png"}],
        }
        for name in ("astronaut", "chelsea")
    ]
    path = media_root / "items.jsonl"  # paths resolve against the file's folder, as the server's against its root
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    expected = [x["reward"] for x in score_lines(RewardModel.from_pretrained(model)[0], path)]
    assert expected[0] != expected[1]  # the image reaches the reward (a small effect in a random tiny model)
    by_path = records
    inline = [{**r, "prompt_media": [{"type": "image", "path": _uri(media_root / f"{r['id']}.png")}]} for r in records]
    got = []
    for body in (by_path, inline):
        status, out = call(srv, "/score", body, key=None)
        assert status == 200
        got.append([x["reward"] for x in out["results"]])
    assert got[0] == got[1] and got[0] == pytest.approx(expected, abs=1e-6)
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": _uri(media_root / "chelsea.png")}},
                {"type": "text", "text": "What is in the picture?"},
            ],
        },
        {"role": "assistant", "content": "An animal."},
    ]
    status, out = call(srv, "/classify", {"messages": msgs, "use_activation": False}, key=None)
    # 1.9e-6 apart on an AMD EPYC (batch composition changes fp32 summation order); within 1e-5
    assert status == 200 and out["data"][0]["probs"][0] == pytest.approx(expected[1], abs=1e-5)
    status, info = call(srv, "/info", key=None)
    assert info["modalities"] == ["text", "image"]


def test_inline_media_limits_and_types(image_server, media_root, tmp_path):
    import numpy as np
    from PIL import Image

    srv, _ = image_server
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)).save(big)
    rec = {"prompt": "p", "response": "r", "prompt_media": [{"type": "image", "path": _uri(big)}]}
    status, body = call(srv, "/score", [rec], key=None)
    assert status == 413 and body["error"].startswith("records[0].prompt_media[0].path: inline media of")
    rec["prompt_media"] = [{"type": "image", "path": _uri(media_root / "chelsea.png", "video/mp4")}]
    status, body = call(srv, "/score", [rec], key=None)
    assert status == 400 and "a video/mp4 data: URI where image is expected" in body["error"]
    rec["prompt_media"] = [
        {"type": "image", "path": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}
    ]
    status, body = call(srv, "/score", [rec], key=None)
    assert status == 400 and body["error"].startswith("records[0]: ") and "image" in body["error"]


# ---- the command line ---------------------------------------------------------------------------------------
def test_cli_help_lists_every_option():
    from typer.testing import CliRunner

    from omnireward.cli.app import app

    res = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for opt in (
        "--max-batch-size",
        "--batch-timeout",
        "--workers-per-device",
        "--api-key",
        "--max-body-mb",
        "--max-records-per-request",
        "--max-media-mb",
        "--request-timeout",
        "--media-root",
        "--host",
    ):
        assert opt in res.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--max-batch-size", "0"], "max-batch-size: must be at least 1"),
        (["--request-timeout", "0"], "request-timeout: must be positive"),
        (["--media-root", "/no/such/dir"], "media-root: not a folder"),
    ],
)
def test_cli_bad_settings_are_one_line_errors(args, needle, model_dir):
    from typer.testing import CliRunner

    from omnireward.cli.app import app
    from omnireward.errors import ConfigError

    res = CliRunner().invoke(app, ["serve", "--model", str(model_dir), "--port", "0", *args])
    assert isinstance(res.exception, ConfigError) and needle in str(res.exception)


@pytest.mark.slow  # a fresh process imports torch and loads the model: ~25 s on 2 busy cores
def test_omnireward_serve_command_answers_with_its_api_key(model_dir):
    env = {**os.environ, "OMNIREWARD_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("omnireward")
    proc = subprocess.Popen(
        [str(exe), "serve", "--model", str(model_dir), "--port", "0", "--device", "cpu", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        line = ""
        while "serving" not in line:
            line = proc.stdout.readline()
            assert line, "the server exited before serving"
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)

        class Srv:
            pass

        srv = Srv()
        srv.url = url
        assert call(srv, "/get_reward", {"query": ["a b"]}, key=None)[0] == 401
        status, out = call(
            srv, "/get_reward", {"query": ["Tell me about bees. Bees."], "prompts": ["Tell me about bees."]}
        )
        assert status == 200 and len(out["rewards"]) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped" in rest


def test_two_replicas_answer_like_one(model_dir):
    """--workers-per-device 2: two model copies take batches from one queue; rewards do not change."""
    queries = [f"Tell me about {t}. They are {w}." for t in ("maps", "bees") for w in ("fine", "bad", "ok")]
    with make_server(
        model_dir,
        settings=ServeSettings(port=0, quiet=True),
        batching=BatchSettings(max_batch_size=2, workers_per_device=2),
        device="cpu",
    ) as srv:
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda q: call(srv, "/get_reward", {"query": [q]}, key=None), queries))
        info = call(srv, "/info", key=None)[1]
        status, together = call(srv, "/get_reward", {"query": queries}, key=None)
    assert info["batching"]["replicas"] == 2 and info["devices"] == ["cpu", "cpu"]
    assert [a["rewards"][0] for _, a in answers] == pytest.approx(together["rewards"], abs=1e-5)


def test_4bit_server(model_dir):
    pytest.importorskip("bitsandbytes")
    with make_server(model_dir, settings=ServeSettings(port=0, quiet=True), quant="4bit", device="cpu") as srv:
        status, info = call(srv, "/info", key=None)
        assert status == 200 and info["quant"] == "4bit"
        status, body = call(srv, "/score_group", {"prompt": "p", "responses": ["a", "b"]}, key=None)
        assert status == 200 and len(body["rewards"]) == 2
