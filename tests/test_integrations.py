"""In-process hooks with the real libraries' calling conventions, and the copy-paste blocks of
docs/serving.md run as written (paths swapped for tiny models)."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import urllib.request

import pytest
from _serving_docs import python_c, snippet

from omnireward.serving import ServeSettings, make_server

PAIRS = [
    ("Tell me about bees.", "Bees make honey and dance."),
    ("Tell me about tides.", "The moon pulls them."),
    ("How do I brew tea?", "No. Figure it out yourself."),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    from omnireward.config import compose_config
    from omnireward.train import build_module

    root = tmp_path_factory.mktemp("hooks") / "model"
    cfg = compose_config(["backbone=tiny", "backbone.feature_cache=false", "head.dropout=0", f"output_dir={root}"])
    model = build_module(cfg).model.eval()
    torch.manual_seed(1)
    torch.nn.init.normal_(model.head.score.weight)
    return model.save_pretrained(root, cfg, {"mean": -1.0, "std": 3.0, "n": 10})


@pytest.fixture(scope="module")
def native(model_dir):
    """Rewards `omnireward score` gives the native records, keyed by (prompt, response, criteria)."""
    from omnireward.data.records import record_from_dict
    from omnireward.reward_model import RewardModel
    from omnireward.scoring.bt import reward_records

    model = RewardModel.from_pretrained(model_dir)[0]

    def rewards(rows: list[tuple]) -> list[float]:
        recs = [
            record_from_dict({"prompt": p, "response": r, **({"criteria": c[0]} if c else {})}, default_id=str(i))
            for i, (p, r, *c) in enumerate(rows)
        ]
        return [x["reward"] for x in reward_records(model, recs, show_progress=False)]

    return rewards


# ---- TRL ---------------------------------------------------------------------------------------------
def test_trl_reward_function_standard_and_conversational(model_dir, native):
    from omnireward.integrations.trl import RewardFunction

    fn = RewardFunction(model_dir, device="cpu")
    expected = native(PAIRS)
    prompts, completions = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    assert fn(prompts=prompts, completions=completions, completion_ids=[[1]] * 3) == pytest.approx(expected, abs=1e-5)
    conv_p = [[{"role": "user", "content": p}] for p in prompts]
    conv_c = [[{"role": "assistant", "content": c}] for c in completions]
    assert fn(conv_p, conv_c, trainer_state=None) == pytest.approx(expected, abs=1e-5)
    # criteria: from a column, a fixed string, or the conversation's system turn
    crit = native([(p, r, "prefer short answers") for p, r in PAIRS])
    assert fn(prompts, completions, criteria=["prefer short answers"] * 3) == pytest.approx(crit, abs=1e-5)
    assert RewardFunction(model_dir, criteria="prefer short answers", device="cpu")(
        prompts, completions
    ) == pytest.approx(crit, abs=1e-5)
    with_system = [[{"role": "system", "content": "prefer short answers"}, *p] for p in conv_p]
    assert fn(with_system, conv_c) == pytest.approx(crit, abs=1e-5)
    normalized = RewardFunction(model_dir, normalize=True, device="cpu")(prompts, completions)
    assert normalized == pytest.approx([(r + 1.0) / 3.0 for r in expected], abs=1e-5)
    assert fn.__name__ == "omnireward"


def test_trl_media_columns_reach_the_model(model_dir):
    from PIL import Image

    from omnireward.errors import RequestError
    from omnireward.integrations.trl import RewardFunction

    fn = RewardFunction(model_dir, device="cpu")
    image = Image.new("RGB", (16, 16), "red")
    with pytest.raises(RequestError, match=r"completions\[0\]: .*no image encoder"):  # a text-only model says so
        fn(["What is this?"], ["Red."], image=[image])


def test_trl_grpo_trainer_runs_two_steps_with_the_reward_function(model_dir, tmp_path):
    """docs/serving.md's TRL block, run as written on a tiny random Qwen2 policy for two steps."""
    pytest.importorskip("trl")
    import torch
    from _tiny_hf import save_text_lm

    from omnireward.integrations import backend

    policy = save_text_lm(tmp_path / "policy")
    code = snippet("trl")
    code = code.replace('"runs/demo-text"', repr(str(model_dir)))
    code = code.replace('"Qwen/Qwen2.5-0.5B-Instruct"', repr(str(policy)))
    code = code.replace('"runs/grpo"', repr(str(tmp_path / "grpo")))
    code = code.replace(
        "GRPOConfig(",
        'GRPOConfig(max_steps=2, report_to="none", save_strategy="no", use_cpu=True, '
        "bf16=False, logging_steps=1, learning_rate=1e-2, ",
    )
    calls = []
    real = backend.LocalScorer.score

    def spy(self, records, where=None):
        lines = real(self, records, where)
        calls.append([(r.prompt, r.response.text, line["reward"]) for r, line in zip(records, lines)])
        return lines

    backend.LocalScorer.score = spy
    try:
        scope: dict = {}
        exec(compile(code, "docs/serving.md[trl]", "exec"), scope)
    finally:
        backend.LocalScorer.score = real
    trainer = scope["trainer"]
    assert trainer.state.global_step == 2
    assert len(calls) >= 2 and all(len(c) == 2 for c in calls)  # one group of two completions per step
    assert {p for c in calls for p, _, _ in c} <= {"Tell me about tides.", "How do I brew tea?"}
    logged = [h["rewards/omnireward/mean"] for h in trainer.state.log_history if "rewards/omnireward/mean" in h]
    assert logged and all(isinstance(x, float) and x == x for x in logged)
    assert logged[0] == pytest.approx(sum(r for _, _, r in calls[0]) / 2, abs=1e-4)
    start = type(trainer.model).from_pretrained(policy)
    moved = [
        n
        for (n, p), q in zip(trainer.model.named_parameters(), start.parameters())
        if not torch.equal(p.detach().cpu(), q)
    ]
    assert moved  # the policy learned from the rewards


# ---- verl ----------------------------------------------------------------------------------------------
def _load_extern(path: str, name: str):
    """How verl loads custom_reward_function (verl.utils.import_utils.load_extern_object)."""
    spec = importlib.util.spec_from_file_location("custom_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _verl_overrides(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip().rstrip("\\").strip()
        if "=" in line and not line.startswith(("python", "#")):
            key, value = line.split("=", 1)
            m = re.fullmatch(r"\$\((.*)\)", value)
            out[key] = python_c(m.group(1)) if m else value
    return out


def test_verl_compute_score_as_verl_calls_it(model_dir, native):
    """docs/serving.md's verl block: load the function the way verl does and call it with verl's
    keyword arguments and the reward_kwargs merged in (verl.trainer.ppo.reward._call_with_kwargs)."""
    o = _verl_overrides(snippet("verl"))
    # verl 0.9.x reads reward.custom_reward_function.{path,name,reward_kwargs}
    assert o["reward.custom_reward_function.path"].endswith("omnireward/integrations/verl.py")
    raw_fn = _load_extern(o["reward.custom_reward_function.path"], o["reward.custom_reward_function.name"])
    reward_kwargs = {
        k.rsplit(".", 1)[1]: v for k, v in o.items() if k.startswith("+reward.custom_reward_function.reward_kwargs.")
    }
    assert reward_kwargs == {"model": "runs/demo-text"}
    reward_kwargs["model"] = str(model_dir)

    def call(**kwargs):  # verl: merged = {**call kwargs, **reward_kwargs}
        return raw_fn(**{**kwargs, **reward_kwargs})

    expected = native(PAIRS)
    for (p, r), e in zip(PAIRS, expected):
        score = call(
            data_source="demo",
            solution_str=r,
            ground_truth="",
            extra_info={"question": p, "index": 3, "num_turns": None, "rollout_reward_scores": {}},
            reward_router_address=None,
        )
        assert isinstance(score, float) and score == pytest.approx(e, abs=1e-5)
    chat = call(
        data_source="demo",
        solution_str=PAIRS[0][1],
        ground_truth=None,
        extra_info={"prompt": [{"role": "user", "content": PAIRS[0][0]}]},
    )
    assert chat == pytest.approx(expected[0], abs=1e-5)
    # concurrent calls from verl's thread pool share forward passes and keep their own rewards
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(
                lambda pr: call(data_source="d", solution_str=pr[1], ground_truth="", extra_info={"question": pr[0]}),
                PAIRS * 4,
            )
        )
    assert got == pytest.approx(expected * 4, abs=1e-5)


def test_verl_batched_convention_and_a_missing_prompt(model_dir, native):
    """verl's batch reward manager passes lists (data_sources=, solution_strs=, ground_truths=,
    extra_infos=); verl's own preprocessing of hh-rlhf, gsm8k and hellaswag keeps only {split, index}
    in extra_info, so a missing prompt warns once (or refuses with missing_prompt="error")."""
    import warnings

    import omnireward.integrations.verl as verl
    from omnireward.errors import RequestError

    expected = native(PAIRS)
    got = verl.compute_score(
        data_sources=["d"] * len(PAIRS),
        solution_strs=[r for _, r in PAIRS],
        ground_truths=[None] * len(PAIRS),
        extra_infos=[{"question": p} for p, _ in PAIRS],
        model=str(model_dir),
    )
    assert got == pytest.approx(expected, abs=1e-5)
    assert (
        verl.compute_score(data_sources=[], solution_strs=[], ground_truths=[], extra_infos=[], model=str(model_dir))
        == []
    )
    verl._warned_no_prompt = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            verl.compute_score("d", PAIRS[0][1], None, {"split": "train", "index": 0}, model=str(model_dir))
    assert len([w for w in caught if "extra_info['prompt']" in str(w.message)]) == 1
    with pytest.raises(RequestError, match="extra_info"):
        verl.compute_score(
            "d", PAIRS[0][1], None, {"split": "train", "index": 0}, model=str(model_dir), missing_prompt="error"
        )


# ---- OpenRLHF ------------------------------------------------------------------------------------------
def test_openrlhf_http_and_reward_func_file_give_the_same_rewards(model_dir, native, monkeypatch):
    """docs/serving.md's OpenRLHF block: the server URL and the reward-function file, each called
    the way OpenRLHF's SingleTurnAgentExecutor calls them."""
    lines = snippet("openrlhf").splitlines()
    serve_args = shlex.split(next(x for x in lines if x.startswith("omnireward serve")).rstrip("&"))
    urls = [re.search(r"--reward\.remote_url (\$\(.*\)|\S+)", x).group(1) for x in lines if "--reward.remote_url" in x]
    env = dict(re.findall(r"export (\w+)=(\S+)", "\n".join(lines)))
    assert urls[0] == "http://127.0.0.1:5000/get_reward" and env == {"OMNIREWARD_MODEL": "runs/demo-text"}
    from typer.testing import CliRunner

    from omnireward.cli.app import app

    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).stdout
    assert all(a in help_text for a in serve_args if a.startswith("--"))

    queries = [p + " " + r for p, r in PAIRS]
    prompts = [p for p, _ in PAIRS]
    labels = ["", "", ""]
    expected = native(PAIRS)
    with make_server(model_dir, settings=ServeSettings(port=0, quiet=True), device="cpu") as srv:
        url = urls[0].replace("http://127.0.0.1:5000", srv.url)
        answers = []
        for q, p, lab in zip(queries, prompts, labels):  # one query per request, as OpenRLHF sends them
            req = urllib.request.Request(
                url,
                data=json.dumps({"query": [q], "prompts": [p], "labels": [lab]}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                answers.append(json.loads(resp.read()))
    assert [a["rewards"][0] for a in answers] == pytest.approx(expected, abs=1e-5)

    path = python_c(re.fullmatch(r"\$\((.*)\)", urls[1]).group(1))
    assert path.endswith("omnireward/integrations/openrlhf.py")
    monkeypatch.setenv("OMNIREWARD_MODEL", str(model_dir))
    reward_func = _load_extern(path, "reward_func")
    got = [reward_func([q], [p], [lab]) for q, p, lab in zip(queries, prompts, labels)]
    for g, a in zip(got, answers):
        assert set(g) == {"rewards", "scores", "extra_logs"}
        assert g["rewards"] == pytest.approx(a["rewards"], abs=1e-5)
        assert g["scores"] == pytest.approx(a["scores"], abs=1e-6)


def test_hooks_reach_a_running_server_by_url(model_dir, native, monkeypatch):
    from omnireward.errors import RequestError
    from omnireward.integrations.trl import RewardFunction
    from omnireward.integrations.verl import compute_score

    settings = ServeSettings(port=0, quiet=True, api_key="k")
    with make_server(model_dir, settings=settings, device="cpu") as srv:
        fn = RewardFunction(srv.url, api_key="k")
        assert fn([p for p, _ in PAIRS], [r for _, r in PAIRS]) == pytest.approx(native(PAIRS), abs=1e-5)
        monkeypatch.setenv("OMNIREWARD_API_KEY", "k")  # what a verl job would export
        score = compute_score("d", PAIRS[0][1], "", {"question": PAIRS[0][0]}, model=srv.url + "/score")
        assert score == pytest.approx(native(PAIRS[:1])[0], abs=1e-5)
        with pytest.raises(RequestError, match="HTTP 401"):
            RewardFunction(srv.url, api_key="wrong")(["p"], ["r"])


def test_trl_image_column_reaches_an_image_model(tmp_path):
    """A PIL image in the dataset's `image` column is scored like the same image given by path."""
    import torch
    from PIL import Image

    from omnireward.config import compose_config
    from omnireward.data.records import record_from_dict
    from omnireward.integrations.trl import RewardFunction
    from omnireward.reward_model import RewardModel
    from omnireward.scoring.bt import reward_records

    root = tmp_path / "image-model"
    from omnireward.train import build_module

    cfg = compose_config(
        ["backbone=tiny", "modality=image", "backbone.feature_cache=false", "head.dropout=0", f"output_dir={root}"]
    )
    model = build_module(cfg).model.eval()
    torch.manual_seed(2)
    torch.nn.init.normal_(model.head.score.weight)
    model_dir = model.save_pretrained(root, cfg, {"mean": 0.0, "std": 1.0, "n": 4})
    from skimage import data

    images = [Image.fromarray(data.astronaut()[::4, ::4]), Image.fromarray(data.chelsea()[::4, ::4])]
    for i, im in enumerate(images):
        im.save(tmp_path / f"im{i}.png")
    recs = [
        record_from_dict(
            {
                "prompt": "What is this?",
                "response": "Noise.",
                "prompt_media": [{"type": "image", "path": str(tmp_path / f"im{i}.png")}],
            },
            default_id=str(i),
        )
        for i in range(2)
    ]
    expected = [
        x["reward"] for x in reward_records(RewardModel.from_pretrained(model_dir)[0], recs, show_progress=False)
    ]
    assert expected[0] != expected[1]
    fn = RewardFunction(model_dir, device="cpu")
    conv = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]] * 2
    got = fn(conv, [[{"role": "assistant", "content": "Noise."}]] * 2, image=images)
    assert got == pytest.approx(expected, abs=1e-6)
    assert fn(["What is this?"] * 2, ["Noise."] * 2, images=[[im] for im in images]) == pytest.approx(
        expected, abs=1e-6
    )
