"""The same conversation gets the same reward whichever way it arrives: every route and hook
(OpenRLHF /get_reward and reward_func, vLLM/verl /classify and /pooling as text or messages, TRL's
reward function in both dataset formats, verl's compute_score) against the native record's reward
from /score, for random conversations rendered by the chat templates of common policy families."""

from __future__ import annotations

import json
import urllib.request

import pytest

hypothesis = pytest.importorskip("hypothesis")
from _chat_templates import FAMILIES  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from omnireward.data.formats.common import render_transcript  # noqa: E402
from omnireward.serving import ServeSettings, make_server  # noqa: E402
from omnireward.serving.chat import KNOWN_DEFAULT_SYSTEMS  # noqa: E402

TOL = 1e-5
TEXT = (
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCDEFG.,?!'0123456789", min_size=1, max_size=30)
    .map(lambda s: " ".join(s.split()))
    .filter(bool)
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    from omnireward.config import compose_config
    from omnireward.train import build_module

    root = tmp_path_factory.mktemp("routes") / "model"
    cfg = compose_config(["backbone=tiny", "backbone.feature_cache=false", "head.dropout=0", f"output_dir={root}"])
    model = build_module(cfg).model.eval()
    torch.manual_seed(3)
    torch.nn.init.normal_(model.head.score.weight)
    return model.save_pretrained(root, cfg, {"mean": 0.0, "std": 1.0, "n": 4})


@pytest.fixture(scope="module")
def server(model_dir):
    with make_server(model_dir, settings=ServeSettings(port=0, quiet=True), device="cpu") as srv:
        yield srv


def post(srv, route: str, body) -> dict:
    req = urllib.request.Request(
        srv.url + route, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


@st.composite
def conversations(draw):
    family = FAMILIES[draw(st.sampled_from(sorted(FAMILIES)))]
    kind = draw(st.sampled_from(["none", "default", "custom"])) if family.system else "none"
    history = draw(st.lists(st.tuples(TEXT, TEXT), max_size=1))
    user, response = draw(TEXT), draw(TEXT)
    messages, criteria = [], None
    if kind == "custom":
        criteria = draw(TEXT)
        messages.append({"role": "system", "content": criteria})
    elif kind == "default" and not family.default_system:
        # a family whose template inserts none: a user-set system prompt that is a known default
        messages.append({"role": "system", "content": draw(st.sampled_from(KNOWN_DEFAULT_SYSTEMS))})
    # kind == "default" with a template default: no system message, the template inserts its own
    for u, a in history:
        messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": user})
    prompt = user if not history else render_transcript([m for m in messages if m["role"] != "system"])
    return (
        family,
        messages,
        response,
        {"prompt": prompt, "response": response, **({"criteria": criteria} if criteria else {})},
        draw(st.booleans()),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(case=conversations())
def test_every_route_gives_the_native_records_reward(server, model_dir, case):
    from omnireward.integrations.openrlhf import reward_func
    from omnireward.integrations.trl import RewardFunction
    from omnireward.integrations.verl import compute_score

    family, messages, response, record, strip_bos = case
    expected = post(server, "/score", [record])["results"][0]["reward"]
    full_messages = [*messages, {"role": "assistant", "content": response}]
    generation = family.name not in ("mistral-v0.1", "mistral-small-3")  # their templates have no generation prompt
    prompt_text = family.render(messages, generation)
    full_text = family.render(full_messages, False)
    query = prompt_text + response + family.eos  # OpenRLHF: decode(prompt ids + response ids + eos)
    sent = full_text[len(family.bos) :] if strip_bos and family.bos and full_text.startswith(family.bos) else full_text
    got = {
        "get_reward": post(server, "/get_reward", {"query": [query], "prompts": [prompt_text], "labels": [None]})[
            "rewards"
        ][0],
        "get_reward without prompts": post(server, "/get_reward", {"query": [full_text]})["rewards"][0],
        "classify text": post(server, "/classify", {"model": "rm", "input": sent, "use_activation": False})["data"][-1][
            "probs"
        ][-1],
        "pooling text": post(server, "/pooling", {"input": [sent]})["data"][0]["data"][0],
        "classify messages": post(server, "/classify", {"messages": full_messages, "use_activation": False})["data"][0][
            "probs"
        ][0],
        "openrlhf reward_func": reward_func([query], [prompt_text], [None], model=str(model_dir))["rewards"][0],
    }
    fn = RewardFunction(model_dir, device="cpu")
    got["trl standard"] = fn([prompt_text], [response])[0]
    got["trl conversational"] = fn([messages], [[{"role": "assistant", "content": response}]])[0]
    got["verl templated prompt"] = compute_score(
        "d", response + family.eos, None, {"prompt": prompt_text}, model=str(model_dir)
    )
    got["verl messages"] = compute_score(
        data_sources=["d"],
        solution_strs=[response],
        ground_truths=[None],
        extra_infos=[{"prompt": messages}],
        model=str(model_dir),
    )[0]
    wrong = {k: v for k, v in got.items() if abs(v - expected) > TOL}
    assert not wrong, f"{family.name} (bos stripped: {strip_bos}) {record}: native {expected}, got {wrong}"


def test_system_prompt_modes(model_dir, server):
    """auto drops a policy's default, always keeps every system turn as criteria, never drops them all."""
    fam = FAMILIES["qwen2.5"]
    text = fam.render(
        [{"role": "user", "content": "Tell me about bees."}, {"role": "assistant", "content": "They buzz."}], False
    )
    native = {
        c: post(
            server,
            "/score",
            [{"prompt": "Tell me about bees.", "response": "They buzz.", **({"criteria": c} if c else {})}],
        )["results"][0]["reward"]
        for c in (None, fam.default_system)
    }
    assert native[None] != native[fam.default_system]
    assert post(server, "/classify", {"input": text, "use_activation": False})["data"][0]["probs"][0] == pytest.approx(
        native[None], abs=TOL
    )
    for mode, key in (("always", fam.default_system), ("never", None)):
        with make_server(
            model_dir, settings=ServeSettings(port=0, quiet=True, system_prompt_as_criteria=mode), device="cpu"
        ) as srv:
            assert post(srv, "/classify", {"input": text, "use_activation": False})["data"][0]["probs"][
                0
            ] == pytest.approx(native[key], abs=TOL)
    from omnireward.errors import ConfigError
    from omnireward.integrations.trl import RewardFunction

    assert RewardFunction(model_dir, device="cpu", system_prompt_as_criteria="always")(
        [[{"role": "system", "content": fam.default_system}, {"role": "user", "content": "Tell me about bees."}]],
        ["They buzz."],
    ) == pytest.approx([native[fam.default_system]], abs=TOL)
    with pytest.raises(ConfigError, match="system_prompt_as_criteria: must be one of auto, always, never"):
        RewardFunction(model_dir, system_prompt_as_criteria="sometimes")
