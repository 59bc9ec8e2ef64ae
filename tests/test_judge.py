"""Generative judge: prompts from records, verdict parsing, constrained verdicts, Flex JSON, judge_file."""

from __future__ import annotations

import json

import pytest
import torch
from _judge_utils import small_backbone, write_rows, yes_no_rows

from omnireward.backbones.base import Turn
from omnireward.backbones.hf import HFBackbone
from omnireward.backbones.modular import ModularBackbone
from omnireward.data.records import Item, Media, Pair, Response, record_from_dict
from omnireward.errors import ConfigError
from omnireward.judge import critique as critique_mod
from omnireward.judge.decoding import (
    completion_mask,
    option_token_ids,
    prompt_batch,
    strip_end,
    verdict_probs,
)
from omnireward.judge.templates import judge_conversation, load_template, pointwise_conversation, sft_target
from omnireward.judge.verdicts import find_verdicts, flex_in_response_terms, format_ok, parse_flex, parse_verdict
from omnireward.scoring.judge import Judge, group_scores, judge_file

FLEX = json.dumps(
    {
        "intent": "answer whether the sky is blue",
        "categories": [
            {
                "name": "semantic_alignment",
                "dimensions": [
                    {"name": "answers the question", "reason": "A says yes", "score_a": 8, "score_b": 2},
                    {"name": "correctness", "reason": "the sky is blue", "score_a": 3, "score_b": 1},
                ],
                "winner": "A",
            },
            {
                "name": "quality",
                "dimensions": [{"name": "clarity", "reason": "both short", "score_a": 0, "score_b": 0}],
            },
            {
                "name": "aesthetics",
                "dimensions": [{"name": "style", "reason": "B reads better", "score_a": 4, "score_b": 6}],
                "winner": "B",
            },
        ],
        "overall_winner": "A",
    }
)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny random LM saved as a plain HF folder (what `--model` may point at)."""
    d = tmp_path_factory.mktemp("lm")
    bb = small_backbone(["Is the sky blue? yes no Verdict: [[A]] [[B]]", FLEX, "Prefer the polite answer."])
    bb.lm.save_pretrained(d)
    bb.tokenizer.save_pretrained(d)
    return d


def _pair(**kw):
    d = {
        "id": "p1",
        "task": "text_to_image",
        "prompt": "a red cube",
        "response1": Response("first", [Media("image", "/m/1.png")]),
        "response2": Response("", [Media("image", "/m/2.png")]),
        "preference": "response1",
        "prompt_media": [Media("audio", "/m/q.wav")],
    }
    d.update(kw)
    return Pair(**d)


# ---- templates and prompts ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["omni", "think", "flex"])
def test_pairwise_prompt_places_criteria_prompt_and_labelled_responses_with_media(name):
    t = load_template(name)
    conv = judge_conversation(t, _pair(criteria="Prefer the brighter image."))
    assert [turn.role for turn in conv] == ["system", "user"] and conv[0].parts == [t.system]
    parts = conv[1].parts
    text = "".join(p if isinstance(p, str) else f"<{p.type}:{p.path}>" for p in parts)
    # Prompt media right before the prompt; each response's media right after its label.
    assert "<audio:/m/q.wav>a red cube" in text
    assert "Prefer the brighter image." in text
    a, b = text.index("Response A"), text.index("Response B")
    assert a < text.index("<image:/m/1.png>first") < b < text.index("<image:/m/2.png>")
    swapped = "".join(
        p if isinstance(p, str) else f"<{p.type}:{p.path}>" for p in judge_conversation(t, _pair(), swap=True)[1].parts
    )
    assert swapped.index("/m/2.png") < swapped.index("/m/1.png")
    assert "Prefer the brighter" not in swapped  # no criteria, no criteria block


def test_flex_adds_the_personalised_category_only_with_criteria():
    t = load_template("flex")
    with_c = "".join(p for p in judge_conversation(t, _pair(criteria="be bold"))[1].parts if isinstance(p, str))
    without = "".join(p for p in judge_conversation(t, _pair())[1].parts if isinstance(p, str))
    assert '"personalised"' in with_c and '"personalised"' not in without
    assert '{"intent": "..."' in without  # the JSON example's braces are not taken for slots


def test_pointwise_template_scores_items_and_refuses_pairs():
    t = load_template("flex_pointwise")
    item = Item(id="i", task="text_to_text", prompt="hi", response=Response("hello"))
    conv = pointwise_conversation(t, item, answer="{}")
    assert conv[-1] == Turn("assistant", ["{}"]) and "hello" in conv[1].parts[0]
    with pytest.raises(ConfigError, match="pointwise"):
        judge_conversation(t, _pair())
    with pytest.raises(ConfigError, match="unknown judge"):
        load_template("nope")


def test_sft_target_keeps_own_verdicts_and_adds_missing_ones():
    omni, think = load_template("omni"), load_template("think")
    assert sft_target(omni, "A is right. [[A]]", "response2") == "A is right. [[A]]"
    assert sft_target(omni, "B is kinder.", "response2") == "B is kinder.\n\n[[B]]"
    assert sft_target(omni, "B is kinder.", "response2", swap=True).endswith("[[A]]")
    assert sft_target(think, "tie here", "tie") == "<think>tie here</think><answer>C</answer>"


# ---- free-text verdicts ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,letter",
    [
        ("A is more helpful. [[A]]", "A"),
        ("Final: [[ B ]]", "B"),
        ("Both equal [[C]].", "C"),
        (r"So the answer is \boxed{B}", "B"),
        (r"\boxed{\text{A}}", "A"),
        ("<think>hmm</think><answer>C</answer>", "C"),
        ("<answer>Response B</answer>", "B"),
        ("<answer>Image 1 is better</answer>", "A"),
        ("<answer>they are equally good</answer>", "C"),
        ('Here you go: {"categories": [], "overall_winner": "B"}', "B"),
        ("First I thought [[A]] but on reflection [[B]]", "B"),  # the last verdict written counts
        ("No verdict here at all.", None),
        ("[[D]] is not an option", None),
    ],
)
def test_parse_verdict_reads_every_form(text, letter):
    assert parse_verdict(text) == letter


def test_find_verdicts_reports_each_form_in_order():
    forms = [f for _, f, _ in find_verdicts(r"[[A]] then \boxed{B} then <answer>A</answer>")]
    assert forms == ["brackets", "boxed", "answer"]


def test_format_checks():
    omni, think, flex = load_template("omni"), load_template("think"), load_template("flex")
    assert format_ok(omni, "A answers the question. [[A]]")
    assert not format_ok(omni, "[[A]]")  # no critique
    assert not format_ok(omni, "A [[A]] or [[B]]")  # two verdicts
    assert not format_ok(omni, "[[A]] because A is better")  # the verdict must come last
    assert format_ok(think, "<think>A says yes</think><answer>A</answer>")
    assert not format_ok(think, "<think>A says yes</think>A")
    assert format_ok(flex, FLEX) and not format_ok(flex, '{"categories": []}')


# ---- Flex JSON ---------------------------------------------------------------------------------
def test_parse_flex_normalises_each_sub_dimension_to_ten():
    f = parse_flex("```json\n" + FLEX + "\n```")
    assert f is not None and [c["name"] for c in f["categories"]] == ["semantic_alignment", "quality", "aesthetics"]
    for c in f["categories"]:
        for d in c["dimensions"]:
            assert d["score_a"] + d["score_b"] == pytest.approx(10.0)
    dims = f["categories"][0]["dimensions"]
    assert (dims[1]["score_a"], dims[1]["score_b"]) == (7.5, 2.5)  # 3/1 rescaled
    assert f["categories"][1]["dimensions"][0]["score_a"] == 5.0  # 0/0 becomes an even split
    assert f["categories"][1]["winner"] == "C"  # derived from the sums when not given
    assert f["overall_winner"] == "A"
    assert parse_flex('{"categories": [{"name": "x", "dimensions": [{"score_a": "a", "score_b": 1}]}]}') is None
    assert parse_flex("not json") is None
    mapped = flex_in_response_terms(f, swap=True)  # A was response2
    assert mapped["overall_winner"] == "response2"
    # Shown as B, response1 got the aesthetics 6 and won it.
    assert mapped["categories"]["aesthetics"]["score1"] == pytest.approx(6.0)
    assert mapped["categories"]["aesthetics"]["winner"] == "response1"


# ---- constrained verdicts ----------------------------------------------------------------------
def test_verdict_probabilities_cover_every_pair(lm_dir):
    bb = small_backbone(lm=str(lm_dir))
    t = load_template("omni")
    ids = option_token_ids(bb.tokenizer, t.verdict_prefix, ["A", "B", "C"])
    assert len(set(ids)) == 3
    pairs = [record_from_dict(r) for r in yes_no_rows(3, 0)]
    batch = prompt_batch(bb, [judge_conversation(t, p) for p in pairs])
    with torch.no_grad():
        p = verdict_probs(bb, t, batch, ["", "Verdict: [[A]]", "yes no yes"])
    assert p.shape == (3, 3) and torch.allclose(p.sum(-1), torch.ones(3)) and (p >= 0).all()
    # Batched and one-by-one give the same probabilities (left padding is harmless).
    with torch.no_grad():
        one = verdict_probs(bb, t, prompt_batch(bb, [judge_conversation(t, pairs[1])]), ["Verdict: [[A]]"])
    assert torch.allclose(one[0], p[1], atol=1e-5)


def test_media_are_spliced_into_judge_prompts_and_continuations(tmp_path):
    import numpy as np
    from PIL import Image

    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.png")
        pixels = np.random.default_rng(k).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(paths[-1])
    # The real EfficientNet-Lite0: a random one maps every image to (almost) the same features.
    bb = small_backbone(["a red square Verdict: [[A]]"], encoders=["image"], pretrained_encoders=True).eval()
    t = load_template("omni")
    pairs = [
        Pair(
            id=str(k),
            task="text_to_image",
            prompt="a red square" if k else "a red square, please",
            response1=Response("", [Media("image", str(paths[k]))]),
            response2=Response("", [Media("image", str(paths[(k + 1) % 3]))]),
        )
        for k in range(3)
    ]
    j = Judge(bb, t, max_new_tokens=5)
    with torch.no_grad():
        lines = j.judge_pairs(pairs, show_progress=False)
        # The same pair judged alone gives the same probabilities: media spans shift nothing.
        alone = Judge(bb, t, max_new_tokens=5, batch_size=1).judge_pairs(pairs[1:2], show_progress=False)[0]
    assert alone["p_response1"] == pytest.approx(lines[1]["p_response1"], abs=1e-5)
    assert alone["critique"] == lines[1]["critique"]
    # The image changes the judgement: swapping which image is response1 changes p_response1.
    assert lines[0]["p_response1"] != pytest.approx(
        j.judge_pairs(
            [
                Pair(
                    id="s",
                    task="text_to_image",
                    prompt="a red square, please",
                    response1=pairs[0].response2,
                    response2=pairs[0].response1,
                )
            ],
            show_progress=False,
        )[0]["p_response1"],
        abs=1e-6,
    )


def test_judge_file_lines_and_summary(lm_dir, tmp_path):
    rows = yes_no_rows(6, 0)
    rows[0]["criteria"] = "Prefer the polite answer."
    rows.append({"id": "item", "prompt": "Is the sky blue?", "response": "yes"})
    src = write_rows(tmp_path / "pairs.jsonl", rows)
    s = judge_file(src, lm_dir, tmp_path / "out.jsonl", max_new_tokens=6, batch_size=4, device="cpu")
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 7 and [x["id"] for x in lines] == [r["id"] for r in rows]
    for x in lines[:6]:
        assert isinstance(x["critique"], str) and x["verdict"] in ("response1", "response2", "tie")
        assert 0 <= x["p_response1"] <= 1 and 0 <= x["p_tie"] <= 1
        assert x["p_response1"] + x["p_response2"] + x["p_tie"] == pytest.approx(1, abs=1e-5)
        assert x["margin"] == pytest.approx(x["p_response1"] - x["p_response2"])
        assert x["verdict"] == max(("response1", "response2", "tie"), key=lambda k: x[f"p_{k}"])
    assert sum(bool(x["critique"]) for x in lines[:6]) >= 3
    assert 0 <= lines[6]["score"] <= 10 and lines[6]["reward"] == lines[6]["score"]
    assert s["n"] == 6 and s["n_scored"] == 7 and s["judge"] == "omni"
    assert {
        "accuracy_without_ties",
        "accuracy_with_ties",
        "tie_threshold",
        "per_task",
        "text_verdict_disagreement",
        "text_verdict_share",
    } <= set(s)
    assert json.loads((tmp_path / "out.summary.json").read_text())["n"] == 6
    with pytest.raises(ConfigError, match="unknown judge"):
        judge_file(src, lm_dir, tmp_path / "x.jsonl", judge="bogus")


def test_a_crashed_sampling_judge_run_resumes_to_the_uninterrupted_file(lm_dir, tmp_path, monkeypatch):
    """`score --judge` streams and resumes like BT scoring: each batch samples with (seed, batch
    number), so a run cut after two batches and rerun writes the file an uninterrupted run writes."""
    from test_stream import _Crash, crash_after

    src = write_rows(tmp_path / "pairs.jsonl", yes_no_rows(10, 0))
    kw = dict(max_new_tokens=6, batch_size=3, device="cpu", temperature=1.0, seed=4, show_progress=False)
    whole = judge_file(src, lm_dir, tmp_path / "whole.jsonl", **kw)
    undo = crash_after(monkeypatch, 2)
    with pytest.raises(_Crash):
        judge_file(src, lm_dir, tmp_path / "cut.jsonl", **kw)
    undo()
    assert (tmp_path / "cut.jsonl.partial").read_text().count("\n") == 6 and not (tmp_path / "cut.jsonl").exists()
    again = judge_file(src, lm_dir, tmp_path / "cut.jsonl", **kw)
    assert (tmp_path / "cut.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert again == whole
    # Sampling really varies by batch: not every critique is the same text.
    assert len({json.loads(x)["critique"] for x in (tmp_path / "whole.jsonl").read_text().splitlines()}) > 1


def test_both_orders_average_the_swapped_judgement(lm_dir, tmp_path):
    src = write_rows(tmp_path / "pairs.jsonl", yes_no_rows(4, 0))
    judge_file(src, lm_dir, tmp_path / "both.jsonl", max_new_tokens=4, both_orders=True, device="cpu")
    lines = [json.loads(x) for x in (tmp_path / "both.jsonl").read_text().splitlines()]
    bb = small_backbone(lm=str(lm_dir))
    t = load_template("omni")
    pairs = [record_from_dict(r) for r in yes_no_rows(4, 0)]
    eos = bb.tokenizer.eos_token_id
    for x, p in zip(lines, pairs):
        # The swapped order shows response2 as "A": its p_response1 is the probability of "B".
        batch = prompt_batch(bb, [judge_conversation(t, p, swap=True)])
        with torch.no_grad():
            ids = bb.sample(batch, max_new_tokens=4)
            probs = verdict_probs(bb, t, batch, strip_end(ids, completion_mask(ids, eos), eos))[0]
        assert x["p_response1_by_order"][1] == pytest.approx(float(probs[1]), abs=1e-4)
        assert x["p_response1"] == pytest.approx(sum(x["p_response1_by_order"]) / 2, abs=1e-6)
        assert "critique_swapped" in x and isinstance(x["order_agreement"], bool)


def _canned(monkeypatch, bb, text):
    """Make the judge 'write' `text` for every item (generation is the LM's; parsing is what is tested)."""
    ids = bb.tokenizer(text, add_special_tokens=False)["input_ids"] + [bb.tokenizer.eos_token_id]

    def fake_sample(backbone, batch, **kw):
        return torch.tensor([ids] * len(batch))

    monkeypatch.setattr(ModularBackbone, "sample", fake_sample)
    monkeypatch.setattr(HFBackbone, "sample", fake_sample)


def test_flex_lines_carry_valid_json_and_dimension_scores(lm_dir, tmp_path, monkeypatch):
    bb = small_backbone(lm=str(lm_dir))
    _canned(monkeypatch, bb, FLEX)
    src = write_rows(tmp_path / "pairs.jsonl", yes_no_rows(2, 0))
    s = judge_file(src, lm_dir, tmp_path / "flex.jsonl", judge="flex", device="cpu")
    x = json.loads((tmp_path / "flex.jsonl").read_text().splitlines()[0])
    assert x["critique"] == FLEX and x["flex_valid"] and s["flex_valid_share"] == 1.0
    for name, (s1, s2) in x["dimension_scores"].items():
        assert s1 + s2 == pytest.approx(10.0), name
    assert x["dimension_scores"]["semantic_alignment/correctness"] == [7.5, 2.5]
    assert x["flex"]["overall_winner"] == "response1" and x["text_verdict"] == "response1"
    assert x["contradiction"] == (x["verdict"] != "response1")


def test_contradictions_are_counted(lm_dir, tmp_path, monkeypatch):
    bb = small_backbone(lm=str(lm_dir))
    _canned(monkeypatch, bb, "Verdict: [[B]]")
    monkeypatch.setattr(
        critique_mod, "verdict_probs", lambda bb, t, batch, crit: torch.tensor([[0.7, 0.2, 0.1]] * len(crit))
    )
    src = write_rows(tmp_path / "pairs.jsonl", yes_no_rows(4, 0))
    s = judge_file(src, lm_dir, tmp_path / "c.jsonl", device="cpu")
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert all(x["verdict"] == "response1" and x["text_verdict"] == "response2" and x["contradiction"] for x in lines)
    assert s["text_verdict_disagreement"] == 1.0 and s["text_verdict_share"] == 1.0
    assert s["accuracy_without_ties"] == 0.5  # labels alternate sides; the probabilities always say response1


# ---- group scores for RL -----------------------------------------------------------------------
class _FakeJudge:
    """Judges by a hidden quality per candidate text; Flex aesthetics is decided the other way round."""

    def __init__(self, quality):
        self.quality = quality

    def judge_pairs(self, pairs, both_orders=False, show_progress=True):
        out = []
        for p in pairs:
            q1, q2 = self.quality[p.response1.text], self.quality[p.response2.text]
            p1 = 0.9 if q1 > q2 else 0.1
            aest = "response2" if q1 > q2 else "response1"
            out.append(
                {
                    "p_response1": p1,
                    "p_response2": 1 - p1,
                    "p_tie": 0.0,
                    "flex": {"categories": {"aesthetics": {"winner": aest}}},
                }
            )
        return out


def test_group_scores_win_rates_and_weighted_mix():
    rec = record_from_dict({"id": "g", "prompt": "q", "response1": "x", "response2": "y"})
    cands = [Response("best"), Response("mid"), Response("worst")]
    judge = _FakeJudge({"best": 3, "mid": 2, "worst": 1})
    g = group_scores(rec, cands, judge, weights={"overall": 1.0})
    assert g["win_rate"] == pytest.approx([0.9, 0.5, 0.1]) and g["mixed"] == pytest.approx(g["win_rate"])
    assert g["per_category"]["aesthetics"] == pytest.approx([0.0, 0.5, 1.0])
    g = group_scores(rec, cands, judge, weights={"overall": 1.0, "aesthetics": 1.0})
    assert g["mixed"] == pytest.approx([0.45, 0.5, 0.55])
    # Categories never judged fall back to the overall rate.
    g = group_scores(rec, cands, judge, weights={"overall": 1.0, "quality": 3.0})
    assert g["mixed"] == pytest.approx(g["win_rate"])
    with pytest.raises(ConfigError, match="two candidates"):
        group_scores(rec, cands[:1], judge)


def test_group_scores_with_a_real_judge(lm_dir):
    bb = small_backbone(lm=str(lm_dir))
    rec = record_from_dict({"id": "g", "prompt": "Is the sky blue?", "response1": "yes", "response2": "no"})
    g = group_scores(
        rec,
        [Response("yes"), Response("no"), Response("no yes")],
        Judge(bb, load_template("omni"), max_new_tokens=3),
        both_orders=True,
    )
    assert len(g["win_rate"]) == 3 and len(g["pairs"]) == 3
    assert sum(g["win_rate"]) == pytest.approx(1.5)  # every pair hands out exactly one win in total
    assert all(0 <= w <= 1 for w in g["win_rate"])


@pytest.mark.slow
def test_embedded_instruct_lm_judges_zero_shot(tmp_path):
    rows = yes_no_rows(2, 0)
    src = write_rows(tmp_path / "pairs.jsonl", rows)
    s = judge_file(src, None, tmp_path / "z.jsonl", max_new_tokens=24, device="cpu")
    lines = [json.loads(x) for x in (tmp_path / "z.jsonl").read_text().splitlines()]
    assert s["n"] == 2 and all(x["critique"].strip() and x["verdict"] for x in lines)


def test_custom_template_without_ties(lm_dir, tmp_path):
    from importlib import resources

    from omegaconf import OmegaConf

    d = OmegaConf.to_container(
        OmegaConf.create(resources.files("omnireward.conf").joinpath("judge", "omni.yaml").read_text())
    )
    d["verdict"]["options"] = {"response1": "A", "response2": "B"}
    (tmp_path / "notie.yaml").write_text(OmegaConf.to_yaml(d))
    src = write_rows(tmp_path / "pairs.jsonl", yes_no_rows(3, 0))
    judge_file(src, lm_dir, tmp_path / "o.jsonl", judge=str(tmp_path / "notie.yaml"), max_new_tokens=3, device="cpu")
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert all(x["p_tie"] == 0 and x["p_response1"] + x["p_response2"] == pytest.approx(1) for x in lines)
    assert all(x["verdict"] != "tie" for x in lines)
    d["verdict"]["options"] = {"response1": "A", "best": "B"}
    (tmp_path / "bad.yaml").write_text(OmegaConf.to_yaml(d))
    with pytest.raises(ConfigError, match="verdict options"):
        load_template(tmp_path / "bad.yaml")


def test_a_verdict_the_critique_wrote_is_read_where_it_wrote_it():
    """A trained judge writes "[[B]]" itself: its probabilities are read right after its own "[[",
    not after a second verdict prefix appended behind the critique."""
    from omnireward.judge.decoding import cut_at_anchor

    bb = small_backbone(["Response A is better. [[B]] Verdict:"])
    t = load_template("omni")
    tok = bb.tokenizer
    ids = tok("Response A is better. [[B]]", add_special_tokens=False)["input_ids"]
    cut = cut_at_anchor(tok, t, ids)
    assert cut is not None and tok.decode(cut).endswith("[[") and len(cut) == len(ids) - 2
    assert cut_at_anchor(tok, t, tok("Response A is better.", add_special_tokens=False)["input_ids"]) is None
    assert cut_at_anchor(tok, t, tok("see [[ nothing", add_special_tokens=False)["input_ids"]) is None
    assert load_template("think").verdict_anchor == "<answer>"
