"""The RL frameworks' own client code against servers started here, not a copy of our reading of it.

Installed by the `rlclients` extra (with --no-deps, see the Makefile): OpenRLHF 0.11.2 and verl 0.9.1.
What runs is theirs: OpenRLHF's `SingleTurnAgentExecutor` (openrlhf/utils/agent.py) with only its
vLLM engine faked; verl's Hydra `ppo_trainer` config, `load_reward_manager` + `NaiveRewardManager`
(how its reward loop calls `reward.custom_reward_function`), `RewardLoopWorker` (its `/classify`
client, bos_token strip included) and `NaiveRouter` in front of several omnireward servers. The
docs/serving.md blocks for several servers run as written, ports swapped for free ones.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from _serving_docs import python_c, snippet

openrlhf_agent = pytest.importorskip("openrlhf.utils.agent", reason="the rlclients extra (OpenRLHF 0.11.2)")
pytest.importorskip("verl.experimental.reward_loop.reward_loop", reason="the rlclients extra (verl 0.9.1)")

from omnireward.serving import ServeSettings, make_server  # noqa: E402

PAIRS = [
    ("Tell me about bees.", "Bees make honey and dance."),
    ("Tell me about tides.", "The moon pulls them."),
    ("How do I brew tea?", "No. Figure it out yourself."),
]
CRITERIA = "Prefer short answers."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    from omnireward.config import compose_config
    from omnireward.train import build_module

    root = tmp_path_factory.mktemp("rlclients") / "model"
    cfg = compose_config(["backbone=tiny", "backbone.feature_cache=false", "head.dropout=0", f"output_dir={root}"])
    model = build_module(cfg).model.eval()
    torch.manual_seed(4)
    torch.nn.init.normal_(model.head.score.weight)
    return model.save_pretrained(root, cfg, {"mean": 0.0, "std": 2.0, "n": 4})


@pytest.fixture(scope="module")
def tokenizer_dir(model_dir, tmp_path_factory):
    """The reward model's tokenizer (SmolLM2's: bos_token "<|im_start|>") saved as a folder, which the
    tests also use as the policy's tokenizer."""
    from omnireward.reward_model import RewardModel

    out = tmp_path_factory.mktemp("tok")
    RewardModel.from_pretrained(model_dir)[0].backbone.tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert tok.bos_token == "<|im_start|>"
    return tok


def _native(srv, rows) -> list[float]:
    body = [{"prompt": p, "response": r, **({"criteria": c[0]} if c else {})} for p, r, *c in rows]
    req = urllib.request.Request(
        srv.url + "/score", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return [x["reward"] for x in json.loads(resp.read())["results"]]


def _info(srv) -> dict:
    with urllib.request.urlopen(srv.url + "/info", timeout=30) as resp:
        return json.loads(resp.read())


def _requests(srv) -> int:
    return sum(int(k) * v for k, v in _info(srv)["batches"]["requests_per_batch"].items())


def _servers(model_dir, ports: list[int]) -> tuple[list, dict[str, str]]:
    """Servers for the ports a docs block names, on free ports; and the block's address -> the real one."""
    servers = [make_server(model_dir, settings=ServeSettings(port=0, quiet=True), device="cpu") for _ in ports]
    for s in servers:
        s.start()
    return servers, {f"127.0.0.1:{p}": s.url.split("://", 1)[1] for p, s in zip(ports, servers)}


class Router:
    """verl's NaiveRouter served by uvicorn in a thread (verl's run_router runs the same app in a process)."""

    def __init__(self, worker_urls: list[str]):
        import socket

        import uvicorn
        from verl.experimental.reward_loop.router.naive_router import NaiveRouter

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(
                NaiveRouter(worker_urls=worker_urls).app, host="127.0.0.1", port=self.port, log_level="warning"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "verl's router did not start"
            time.sleep(0.05)
        self.address = f"127.0.0.1:{self.port}"

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


# ---- OpenRLHF 0.11.2: SingleTurnAgentExecutor, several remote_urls --------------------------------------
class FakeEngine:
    """The one part of OpenRLHF's rollout that needs a GPU: vLLM's engine. It 'generates' a fixed
    response per prompt, as token ids and text the way vLLM returns them."""

    def __init__(self, tokenizer, answers: dict[str, str]):
        self.tokenizer, self.answers = tokenizer, answers

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        prompt = self.tokenizer.decode(prompt_token_ids, skip_special_tokens=False)
        text = next(a for p, a in self.answers.items() if p in prompt)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        out = SimpleNamespace(token_ids=ids, text=self.tokenizer.decode(ids), finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def _rollouts(executor, tokenizer, rows, system: str | None = None) -> list[dict]:
    """OpenRLHF's prompts: the dataset's messages through the policy's chat template (as its
    PromptDataset applies it), then one executor.execute per rollout."""
    engine = FakeEngine(tokenizer, {p: r for p, r in rows})
    params = SimpleNamespace(max_tokens=32, logprobs=None)

    async def run():
        jobs = []
        for p, _ in rows:
            msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
            prompt = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            jobs.append(executor.execute(prompt, "", params, max_length=512, hf_tokenizer=tokenizer, llm_engine=engine))
        return await asyncio.gather(*jobs)

    return asyncio.run(run())


def test_openrlhf_executor_across_several_servers_gets_the_native_rewards(model_dir, tokenizer):
    """docs/serving.md's openrlhf-servers block: OpenRLHF splits --reward.remote_url at commas
    (openrlhf 0.11.2 cli/train_ppo_ray.py line 674) and its SingleTurnAgentExecutor rotates the
    one-rollout requests across the servers."""
    lines = snippet("openrlhf-servers").splitlines()
    ports = [int(re.search(r"--port (\d+)", x).group(1)) for x in lines if x.startswith("omnireward serve")]
    remote_url = re.search(r"--reward\.remote_url (\S+)", lines[-1]).group(1)
    urls = remote_url.split(",")  # train_ppo_ray.py:674  args.reward.remote_url.split(",")
    assert len(urls) == len(ports) == 2
    servers, addr = _servers(model_dir, ports)
    try:
        urls = [re.sub(r"127\.0\.0\.1:\d+", lambda m: addr[m.group(0)], u) for u in urls]
        executor = openrlhf_agent.SingleTurnAgentExecutor(remote_rm_url=urls)
        rows = PAIRS + PAIRS[::-1]
        outputs = _rollouts(executor, tokenizer, rows)
        assert [_requests(s) for s in servers] == [3, 3]  # rotated across both servers
        expected = _native(servers[0], rows)
        assert [o["reward"] for o in outputs] == [pytest.approx([e], abs=1e-5) for e in expected]
        assert [o["scores"] for o in outputs] == [
            pytest.approx([1 / (1 + 2.718281828459045 ** (-e / 2.0))], abs=1e-5) for e in expected
        ]
        # a system turn the policy's dataset sets is criteria; the template's own default is not
        outputs = _rollouts(executor, tokenizer, PAIRS, system=CRITERIA)
        assert [o["reward"][0] for o in outputs] == pytest.approx(
            _native(servers[0], [(p, r, CRITERIA) for p, r in PAIRS]), abs=1e-5
        )
    finally:
        for s in servers:
            s.close()


def test_openrlhf_executor_with_the_reward_func_file(model_dir, tokenizer, monkeypatch):
    """docs/serving.md's openrlhf block, in-process: the executor loads reward_func from the file
    (agent.py lines 196-205) and calls it in a thread per rollout."""
    lines = snippet("openrlhf").splitlines()
    path = python_c(re.search(r"--reward\.remote_url \$\((.*?)\) ", next(x for x in lines if "$(" in x)).group(1))
    monkeypatch.setenv("OMNIREWARD_MODEL", str(model_dir))
    executor = openrlhf_agent.SingleTurnAgentExecutor(remote_rm_url=path)
    assert executor.reward_func is not None and executor.reward_func.__module__ == "reward_func"
    outputs = _rollouts(executor, tokenizer, PAIRS)
    with make_server(model_dir, settings=ServeSettings(port=0, quiet=True), device="cpu") as srv:
        expected = _native(srv, PAIRS)
    assert [o["reward"][0] for o in outputs] == pytest.approx(expected, abs=1e-5)


# ---- verl 0.9.1: Hydra config, reward manager, reward-loop worker, router -------------------------------
def _verl_overrides(block: str, mapping: dict[str, str] | None = None) -> list[str]:
    out = []
    for line in block.splitlines():
        line = line.strip().rstrip("\\").strip()
        if "=" not in line or line.startswith(("python", "omnireward", "#")):
            continue
        key, value = line.split("=", 1)
        m = re.fullmatch(r"\$\((.*)\)", value)
        value = python_c(m.group(1)) if m else value
        for old, new in (mapping or {}).items():
            value = value.replace(old, new)
        out.append(f"{key}={value}")
    return out


def compose_ppo_trainer(overrides: list[str]):
    """verl's own trainer config (verl/trainer/config/ppo_trainer.yaml) composed with overrides,
    as `python -m verl.trainer.main_ppo ...` composes it."""
    import verl
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        return compose("ppo_trainer", overrides=overrides)


def _verl_batch(tokenizer, rows, system: str | None = None):
    """A verl DataProto of rollouts, one per row: the fields verl's reward managers and reward loop
    read (responses, attention_mask, raw_prompt, data_source, reward_model, extra_info)."""
    import numpy as np
    import torch
    from verl import DataProto

    width, resp_len = 16, 24
    responses = torch.full((len(rows), resp_len), tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(rows), width + resp_len), dtype=torch.long)
    raw, infos = np.empty(len(rows), dtype=object), np.empty(len(rows), dtype=object)
    for i, (p, r) in enumerate(rows):
        ids = tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        responses[i, : len(ids)] = torch.tensor(ids)
        mask[i, width - 4 : width + len(ids)] = 1
        raw[i] = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
        infos[i] = {"prompt": raw[i], "index": i}
    return DataProto.from_dict(
        tensors={"responses": responses, "attention_mask": mask},
        non_tensors={
            "raw_prompt": raw,
            "extra_info": infos,
            "data_source": np.array(["demo"] * len(rows), dtype=object),
            "reward_model": np.array([{"ground_truth": None}] * len(rows), dtype=object),
        },
    )


def test_verl_config_composes_with_the_documented_overrides():
    """docs/serving.md's verl blocks compose on verl 0.9.1's own ppo_trainer config: the reward
    function's path, name and kwargs land in reward.custom_reward_function (an override verl does
    not know would fail to compose here instead of doing nothing)."""
    for name in ("verl", "verl-router"):
        cfg = compose_ppo_trainer(_verl_overrides(snippet(name)))
        fn = cfg.reward.custom_reward_function
        assert fn.path and fn.path.endswith("omnireward/integrations/verl.py") and Path(fn.path).is_file()
        assert fn.name == "compute_score" and fn.reward_kwargs.model in ("runs/demo-text", "http://127.0.0.1:8000")


def test_verl_reward_manager_behind_its_router_gets_the_native_rewards(model_dir, tokenizer, tokenizer_dir):
    """docs/serving.md's verl-router block: two servers behind verl's NaiveRouter; verl's
    load_reward_manager loads compute_score from the composed config and its NaiveRewardManager
    calls it per rollout (decoded response, extra_info with the prompt messages), and verl's
    RewardLoopWorker posts /classify through the router with the reward model's template applied
    and its bos_token stripped (reward_loop.py lines 197-229)."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.reward import load_reward_manager

    block = snippet("verl-router")
    lines = block.splitlines()
    ports = [int(re.search(r"--port (\d+)", x).group(1)) for x in lines if x.startswith("omnireward serve")]
    router_line = next(x for x in lines if "run_router" in x)
    router_args = re.search(r"run_router\((.*)\)\"", router_line).group(1)
    host, port, workers = eval(f"({router_args})", {})  # noqa: S307 - the docs block's literal arguments
    servers, addr = _servers(model_dir, ports)
    router = Router([re.sub(r"127\.0\.0\.1:\d+", lambda m: addr[m.group(0)], u) for u in workers])
    try:
        mapping = {f"{host}:{port}": router.address}
        rows = PAIRS + PAIRS[::-1]
        expected = _native(servers[0], rows)
        before = [_requests(s) for s in servers]
        cfg = compose_ppo_trainer(_verl_overrides(block, mapping))
        assert cfg.reward.custom_reward_function.reward_kwargs.model == f"http://{router.address}"
        data = _verl_batch(tokenizer, rows)

        async def manager_scores():
            manager = load_reward_manager(cfg, tokenizer)
            return await asyncio.gather(*[manager.run_single(data[i : i + 1]) for i in range(len(data))])

        got = asyncio.run(manager_scores())
        assert [g["reward_score"] for g in got] == pytest.approx(expected, abs=1e-5)
        assert all(_requests(s) > b for s, b in zip(servers, before))  # the router used both servers

        # verl's /classify client (reward.reward_model.enable, no custom function) through the same router
        disrm = compose_ppo_trainer(
            [
                f"actor_rollout_ref.model.path={tokenizer_dir}",
                "reward.reward_model.enable=True",
                f"reward.reward_model.model_path={tokenizer_dir}",
                "reward.reward_model.rollout.name=vllm",
            ]
        )

        async def classify_scores(batch):
            worker = RewardLoopWorker(disrm, reward_router_address=router.address)
            assert worker.reward_model_tokenizer.bos_token == "<|im_start|>"  # the strip takes the first opener
            return await worker.compute_score_batch(batch)

        got = asyncio.run(classify_scores(data))
        assert [g["reward_score"] for g in got] == pytest.approx(expected, abs=1e-5)
        with_system = asyncio.run(classify_scores(_verl_batch(tokenizer, PAIRS, system=CRITERIA)))
        assert [g["reward_score"] for g in with_system] == pytest.approx(
            _native(servers[0], [(p, r, CRITERIA) for p, r in PAIRS]), abs=1e-5
        )
    finally:
        router.close()
        for s in servers:
            s.close()


def test_documented_serve_commands_exist():
    """Every `omnireward serve` option the several-server blocks use is one the command takes."""
    from typer.testing import CliRunner

    from omnireward.cli.app import app

    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).stdout
    for name in ("openrlhf-servers", "verl-router"):
        for line in snippet(name).splitlines():
            if line.startswith("omnireward serve"):
                assert all(a in help_text for a in shlex.split(line.rstrip("&")) if a.startswith("--"))
