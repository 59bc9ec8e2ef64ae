"""A judge folder served as the generative reward models are used in RL: OpenAI chat completions
(verl's reward loop posts them from a custom reward function), native /judge, batching across
requests, one-line 400s, the verl-style answer parser, and TRL's GRPOTrainer with the judge as
its reward, in process and through the server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from _judge_utils import write_rows, yes_no_rows

from omnireward.config import compose_config
from omnireward.data.records import Pair, Response
from omnireward.integrations.verl_judge import compute_judge_score, judge_messages, judge_reward
from omnireward.judge.templates import load_template
from omnireward.judge.verdicts import format_ok, parse_verdict
from omnireward.serving import BatchSettings, ServeSettings, make_server
from omnireward.train import train

QUESTION = "Is the sky blue?"
MAX_NEW = 6


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    """A judge folder (model=r1, omni template) trained for one epoch on a tiny random LM."""
    d = tmp_path_factory.mktemp("judge")
    rows = yes_no_rows(8, 0)
    for r in rows:
        r["critique"] = f"Verdict: [[{'A' if r['preference'] == 'response1' else 'B'}]]"
    out = train(
        compose_config(
            [
                "model=r1",
                "backbone=tiny",
                f"data.train={write_rows(d / 't.jsonl', rows)}",
                f"data.val={write_rows(d / 'v.jsonl', yes_no_rows(4, 1))}",
                "trainer.max_epochs=1",
                "model.sft_epochs=1",
                "model.val_max_new_tokens=0",
                "data.batch_size=4",
                f"output_dir={d / 'run'}",
            ]
        )
    )
    return str(out)


@pytest.fixture(scope="module")
def server(judge_dir, tmp_path_factory):
    settings = ServeSettings(port=0, quiet=True, media_root=tmp_path_factory.mktemp("media"))
    batching = BatchSettings(max_batch_size=16, batch_timeout=0.05)
    with make_server(judge_dir, settings=settings, batching=batching, device="cpu", max_new_tokens=MAX_NEW) as srv:
        yield srv


def call(srv, route: str, body=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        srv.url + route,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _messages(response="yes", reference="no"):
    return judge_messages(QUESTION, response, reference, template="omni")


# ---- the routes ---------------------------------------------------------------------------------------
def test_info_names_the_judge_and_its_routes(server, judge_dir):
    status, info = call(server, "/info")
    assert status == 200 and info["model"] == judge_dir
    assert info["judge"]["template"] == "omni" and info["judge"]["kind"] == "pairwise"
    assert set(info["routes"]) == {"/v1/chat/completions", "/judge"}
    assert call(server, "/judge", {"pairs": []}) == (200, {"results": []})
    status, body = call(server, "/score", {"records": []})
    assert status == 404 and "POST /v1/chat/completions" in body["error"]


def test_chat_completions_answer_in_openai_shape_and_the_template_parses_them(server):
    body = {"model": "judge", "messages": _messages(), "max_tokens": MAX_NEW, "temperature": 1.0, "n": 3, "seed": 11}
    status, out = call(server, "/v1/chat/completions", body)
    assert status == 200, out
    assert out["object"] == "chat.completion" and out["model"] == "judge" and out["id"].startswith("chatcmpl-")
    assert isinstance(out["created"], int) and len(out["choices"]) == 3
    omni = load_template("omni")
    for i, c in enumerate(out["choices"]):
        text = c["message"]["content"]
        assert c["index"] == i and c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length")
        assert format_ok(omni, text), text  # a critique, then exactly one [[X]] at the very end
        assert parse_verdict(text) == c["verdict"] == max(c["verdict_probs"], key=c["verdict_probs"].get)
        assert sum(c["verdict_probs"].values()) == pytest.approx(1.0, abs=1e-5)
    usage = out["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 3 * MAX_NEW
    again = call(server, "/v1/chat/completions", body)[1]
    assert [c["message"]["content"] for c in again["choices"]] == [c["message"]["content"] for c in out["choices"]]
    greedy = call(server, "/v1/chat/completions", {"messages": _messages(), "max_tokens": MAX_NEW, "n": 2})[1]
    assert greedy["choices"][0]["message"]["content"] == greedy["choices"][1]["message"]["content"]


def test_the_judge_route_gives_what_omnireward_score_gives(server, judge_dir):
    from omnireward.data.records import record_from_dict
    from omnireward.scoring.judge import JudgeFactory, judge_records, trained_judge

    rows = [{k: r[k] for k in ("id", "prompt", "response1", "response2")} for r in yes_no_rows(3, 5)]
    status, out = call(server, "/judge", {"pairs": rows, "both_orders": True})
    assert status == 200, out
    scorer = JudgeFactory(judge_dir, trained_judge(judge_dir), device="cpu", max_new_tokens=MAX_NEW, batch_size=16)()
    expected = judge_records(scorer.judge, [record_from_dict(r) for r in rows], both_orders=True, show_progress=False)
    for got, exp in zip(out["results"], expected):
        assert got["id"] == exp["id"] and got["verdict"] == exp["verdict"] and got["critique"] == exp["critique"]
        for k in ("p_response1", "p_response2", "p_tie", "margin"):
            assert got[k] == pytest.approx(exp[k], abs=1e-5)
        assert len(got["p_response1_by_order"]) == 2


def test_concurrent_requests_share_forward_passes(server):
    before = call(server, "/info")[1]["batches"]
    rows = [{"prompt": QUESTION, "response1": a, "response2": b} for a, b in [("yes", "no"), ("no", "yes")] * 3]
    alone = [call(server, "/judge", [r])[1]["results"][0] for r in rows[:2]]
    with ThreadPoolExecutor(8) as pool:
        chats = pool.submit(call, server, "/v1/chat/completions", {"messages": _messages(), "max_tokens": MAX_NEW})
        answers = list(pool.map(lambda r: call(server, "/judge", [r]), rows))
    assert chats.result()[0] == 200 and all(s == 200 for s, _ in answers)
    after = call(server, "/info")[1]["batches"]
    merged = {int(k): v - before["requests_per_batch"].get(k, 0) for k, v in after["requests_per_batch"].items()}
    assert max(k for k, v in merged.items() if v > 0) > 1  # at least one forward pass served several requests
    for (_, body), r in zip(answers, rows):
        same = alone[0] if r["response1"] == "yes" else alone[1]
        assert body["results"][0]["verdict"] == same["verdict"]
        assert body["results"][0]["p_response1"] == pytest.approx(same["p_response1"], abs=1e-4)


def _png() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    "route,body,field",
    [
        ("/v1/chat/completions", {"max_tokens": 4}, "messages"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": "8"}, "max_tokens"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "temperature": -1}, "temperature"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": True}, "stream"),
        ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "file"}]}]},
            "messages[0].content[0].type",
        ),
        (
            "/v1/chat/completions",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            "/v1/chat/completions",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "aiff"}}],
                    }
                ]
            },
            "messages[0].content[0].input_audio.format",
        ),
        (
            "/v1/chat/completions",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "PNG"}},
                        ],
                    }
                ]
            },
            "messages",
        ),  # a text-only judge has no image encoder: refused in one line, naming the request's messages
        ("/judge", {"pairs": [{"prompt": "x", "response1": "a"}]}, "pairs[0]"),
        ("/judge", {"pairs": [{"prompt": "x", "response": "a"}]}, "pairs[0]"),
        (
            "/judge",
            {"pairs": [{"prompt": "x", "response1": "a", "response2": "b"}], "both_orders": "yes"},
            "both_orders",
        ),
    ],
)
def test_a_bad_request_gets_a_one_line_400_naming_the_field(server, route, body, field):
    body = json.loads(json.dumps(body).replace('"PNG"', json.dumps(_png())))
    status, out = call(server, route, body)
    assert status == 400, out
    assert set(out) == {"error"} and "\n" not in out["error"]
    assert out["error"].startswith(field + ":") or out["error"].startswith(field + "."), out["error"]
    assert call(server, "/v1/chat/completions", {"messages": _messages(), "max_tokens": 2})[0] == 200  # still serving


@pytest.mark.parametrize("template", ["think", pytest.param("flex", marks=pytest.mark.slow)])
def test_other_templates_answer_in_their_own_form(judge_dir, template):
    """--judge TEMPLATE on a folder: think answers <think>...</think><answer>X</answer>; flex answers
    JSON generated inside its grammar (hundreds of tokens on CPU: slow)."""
    with make_server(
        judge_dir,
        judge=template,
        settings=ServeSettings(port=0, quiet=True),
        device="cpu",
        batching=BatchSettings(max_batch_size=8),
        max_new_tokens=MAX_NEW,
    ) as srv:
        body = {
            "messages": judge_messages(QUESTION, "yes", "no", template=template),
            "max_tokens": MAX_NEW,
            "n": 2,
            "temperature": 1.0,
            "seed": 3,
        }
        status, out = call(srv, "/v1/chat/completions", body)
    assert status == 200, out
    t = load_template(template)
    for c in out["choices"]:
        text = c["message"]["content"]
        assert format_ok(t, text), text
        assert parse_verdict(text) == c["verdict"]
        assert judge_reward(text, template=template) == {"A": 1.0, "B": -1.0, "C": 0.0}[c["verdict"]]


def test_an_answer_states_one_verdict_at_its_end_whatever_the_critique_wrote(tmp_path):
    from _judge_utils import MINI_TEMPLATE

    from omnireward.serving.judge_service import compose_answer

    omni, think = load_template("omni"), load_template("think")
    (tmp_path / "mini.yaml").write_text(MINI_TEMPLATE)
    mini = load_template(tmp_path / "mini.yaml")
    for t, critique in [
        (omni, "A is right [[B]] or not"),
        (omni, ""),
        (omni, "[[A]]"),
        (mini, ""),
        (mini, "ok [["),
        (think, "plain words"),
        (think, "<think>x</think><answer>B</answer> trailing"),
        (think, ""),
    ]:
        text = compose_answer(t, critique, "A")
        assert format_ok(t, text) and parse_verdict(text) == "A", (t.name, critique, text)
    assert compose_answer(omni, "A is right [[B]] or not", "B") == "A is right\n\nFinal verdict: [[B]]"


# ---- the verl-style parser and reward function ------------------------------------------------------------
def test_judge_reward_convention():
    assert judge_reward("Response A is right.\n\nFinal verdict: [[A]]") == 1.0
    assert judge_reward("B is better [[B]]") == -1.0
    assert judge_reward("[[C]]") == 0.0 and judge_reward("[[C]]", tie=0.25) == 0.25
    assert judge_reward("no verdict here") == 0.0 and judge_reward("none", unparsed=-2.0) == -2.0
    assert judge_reward("[[B]]", judged="B") == 1.0
    assert judge_reward("<think>short</think><answer>B</answer>", template="think") == -1.0
    response = {
        "choices": [
            {"message": {"content": "[[A]]"}},
            {"message": {"content": "[[B]]"}},
            {"message": {"content": "[[A]]"}},
        ]
    }
    assert judge_reward(response) == pytest.approx(1 / 3)
    flex = json.dumps(
        {
            "intent": "x",
            "categories": [{"name": "quality", "dimensions": [{"name": "d", "reason": "r", "score": 7}]}],
            "overall_score": 7,
        }
    )
    assert judge_reward(flex, template="flex_pointwise") == 7.0
    from omnireward.errors import ConfigError, RequestError

    with pytest.raises(ConfigError, match="judged"):
        judge_reward("[[A]]", judged="first")
    with pytest.raises(RequestError, match="answer"):
        judge_reward({"choices": []})


def test_judge_messages_render_the_template_and_swap_positions():
    a = judge_messages(QUESTION, "yes", "no")
    b = judge_messages(QUESTION, "yes", "no", judged="B")
    assert [m["role"] for m in a] == ["system", "user"] and a[0]["content"] == load_template("omni").system
    assert "[Response A]\nyes" in a[1]["content"] and "[Response B]\nno" in a[1]["content"]
    assert "[Response A]\nno" in b[1]["content"] and "[Response B]\nyes" in b[1]["content"]


def test_verl_reward_function_posts_chat_completions_to_the_router_address(server):
    host, port = server.address
    kwargs = dict(
        data_source="hh",
        solution_str="yes",
        ground_truth="no",
        extra_info={"question": QUESTION},
        reward_router_address=f"{host}:{port}",
        reward_model_tokenizer=None,
        max_tokens=MAX_NEW,
    )
    score = asyncio.run(compute_judge_score(**kwargs))
    direct = call(server, "/v1/chat/completions", {"messages": _messages("yes", "no"), "max_tokens": MAX_NEW})[1]
    assert score == judge_reward(direct) and score in (-1.0, 0.0, 1.0)
    both = asyncio.run(compute_judge_score(**kwargs, both_orders=True))
    swapped = call(
        server,
        "/v1/chat/completions",
        {"messages": judge_messages(QUESTION, "yes", "no", judged="B"), "max_tokens": MAX_NEW},
    )[1]
    assert both == pytest.approx((judge_reward(direct) + judge_reward(swapped, judged="B")) / 2)
    from omnireward.errors import RequestError

    with pytest.raises(RequestError, match=r"extra_info\.reference"):
        asyncio.run(compute_judge_score(**{**kwargs, "ground_truth": None}))


def test_verls_own_chat_request_shape_is_answered(server):
    """verl's genrm reward function (volcengine/verl tests/experimental/reward_loop/reward_fn.py at
    b178a3c, `chat_complete` and `compute_score_gsm8k`): aiohttp POST of {"messages", "model",
    "temperature", "top_p", "max_tokens"} to http://{reward_router_address}/v1/chat/completions, then
    `ChatCompletion(**json.loads(text)).choices[0].message.content`. max_tokens is 4096 there; here
    it is small so the tiny judge answers quickly."""
    aiohttp = pytest.importorskip("aiohttp")
    host, port = server.address

    async def chat_complete(router_address, chat_complete_request):
        url = f"http://{router_address}/v1/chat/completions"
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        try:
            async with session.post(url, json=chat_complete_request) as resp:
                return resp.status, json.loads(await resp.text())
        finally:
            await session.close()

    request = {
        "messages": [{"role": "user", "content": f"Problem:\n{QUESTION}\n\nSolution:\nyes\n\nScore it."}],
        "model": "~/models/judge",
        "temperature": 0.7,
        "top_p": 0.8,
        "max_tokens": MAX_NEW,
    }
    status, output = asyncio.run(chat_complete(f"{host}:{port}", request))
    assert status == 200, output
    content = output["choices"][0]["message"]["content"]
    assert isinstance(content, str) and parse_verdict(content) in ("A", "B", "C")
    assert output["model"] == "~/models/judge"


# ---- TRL's GRPOTrainer with the judge as its reward -------------------------------------------------------
@pytest.mark.parametrize("where", ["in_process", "server"])
def test_trl_grpo_runs_two_steps_with_the_judge_as_reward(where, judge_dir, server, tmp_path):
    pytest.importorskip("trl")
    import torch
    from _tiny_hf import save_text_lm
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from omnireward.integrations.judge import JudgeReward

    policy = save_text_lm(tmp_path / "policy")
    reward = JudgeReward(judge_dir if where == "in_process" else server.url, max_new_tokens=MAX_NEW, device="cpu")
    calls = []

    def judged(prompts, completions, **kw):
        rewards = reward(prompts, completions, **kw)
        calls.append(rewards)
        return rewards

    judged.__name__ = reward.__name__
    before = call(server, "/info")[1]["batches"]["items"]
    dataset = Dataset.from_list([{"prompt": "Tell me about tides."}, {"prompt": "How do I brew tea?"}])
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=8,
        max_steps=2,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        learning_rate=1e-2,
    )
    trainer = GRPOTrainer(model=str(policy), reward_funcs=[judged], args=args, train_dataset=dataset)
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(calls) >= 2 and all(len(c) == 2 for c in calls)
    for pair in calls:  # one group of two: win rates of one judged pair, in both orders
        assert all(0.0 <= r <= 1.0 for r in pair) and sum(pair) == pytest.approx(1.0, abs=1e-6)
    logged = [
        h["rewards/omnireward_judge/mean"] for h in trainer.state.log_history if "rewards/omnireward_judge/mean" in h
    ]
    assert logged and logged[0] == pytest.approx(0.5, abs=1e-5)
    served = call(server, "/info")[1]["batches"]["items"] - before
    assert served >= 2 if where == "server" else served == 0
    start = type(trainer.model).from_pretrained(policy)
    assert any(not torch.equal(p.detach().cpu(), q) for p, q in zip(trainer.model.parameters(), start.parameters()))


def test_judge_reward_with_a_reference_column_and_refusals(judge_dir):
    from omnireward.errors import RequestError
    from omnireward.integrations.judge import JudgeReward

    reward = JudgeReward(judge_dir, max_new_tokens=MAX_NEW, device="cpu", both_orders=False)
    got = reward([QUESTION, QUESTION], ["yes", "no"], reference=["no", "yes"])
    assert all(0.0 <= r <= 1.0 for r in got)
    pair = Pair(id="0", task="text_to_text", prompt=QUESTION, response1=Response("yes"), response2=Response("no"))
    line = reward.backend.judge([pair])[0]
    assert got[0] == pytest.approx(line["p_response1"] + line["p_tie"] / 2, abs=1e-5)
    with pytest.raises(RequestError, match="num_generations"):
        reward([QUESTION, "Another?"], ["yes", "no"])
    with pytest.raises(RequestError, match=r"reference\[1\]"):
        reward([QUESTION, QUESTION], ["yes", "no"], reference=["no", None])
