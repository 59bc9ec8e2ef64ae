"""Flex answers read through every entry point: parse_flex (pairwise and pointwise),
parse_flex_pointwise and format_ok give the same results, pinned here."""

from __future__ import annotations

import json

import pytest

from omnireward.judge.templates import load_template
from omnireward.judge.verdicts import format_ok, parse_flex, parse_flex_pointwise

PAIR = {
    "intent": "draw a cat",
    "categories": [
        {
            "name": "Semantic Alignment",
            "dimensions": [
                {"name": "Subject!", "reason": "both cats", "score_a": 4, "score_b": 4},
                {"name": "count", "reason": "r", "score_a": "3", "score_b": 1},
            ],
        },
        {"name": "quality", "winner": "[[B]]", "dimensions": [{"name": "", "score_a": 0, "score_b": 0}]},
    ],
    "overall_winner": "Response A",
}
POINT = {
    "intent": "a dog",
    "categories": [
        {
            "name": "Quality",
            "dimensions": [{"name": "Sharp", "reason": "ok", "score": 12}, {"name": "noise", "score": "-2"}],
        },
        {"name": "fit", "dimensions": [{"score": 7.5, "reason": 3}]},
    ],
    "overall_score": "8",
}
BOTH = {"categories": [{"dimensions": [{"score": 3, "score_a": 1, "score_b": 2}]}], "overall_winner": "B"}


def _cats(*dims):
    return {"categories": [{"name": "x", "dimensions": list(dims)}]}


# (answer, valid pairwise, valid pointwise)
ANSWERS = [
    (json.dumps(PAIR), True, False),
    ("Here you go:\n```json\n" + json.dumps(PAIR) + "\n``` done", True, False),
    (json.dumps({**PAIR, "overall_winner": None}), True, False),
    (
        json.dumps(
            {"categories": [{"name": "x", "winner": "tie", "dimensions": [{"score_a": 2, "score_b": 1, "score": 4}]}]}
        ),
        True,
        True,
    ),
    (json.dumps(_cats({"score_a": -1, "score_b": 1})), False, False),
    (json.dumps(_cats({"score_a": True, "score_b": 1})), False, False),
    (json.dumps(_cats("a")), False, False),
    (json.dumps(_cats()), False, False),
    (json.dumps({"categories": []}), False, False),
    (json.dumps({"categories": ["x"]}), False, False),
    (json.dumps(POINT), False, True),
    ("{broken " + json.dumps(POINT), False, True),
    (json.dumps({**POINT, "overall_score": None}), False, True),
    (json.dumps({"categories": [{"dimensions": [{"score": "high"}]}]}), False, False),
    (json.dumps(BOTH), True, True),
    (json.dumps([1, 2]) + " " + json.dumps(POINT), False, True),
    ("not json", False, False),
    ("", False, False),
]


@pytest.mark.parametrize(("text", "pairwise", "pointwise"), ANSWERS)
def test_every_flex_entry_point_reads_an_answer_alike(text, pairwise, pointwise):
    flex, flex_pointwise = load_template("flex"), load_template("flex_pointwise")
    pair, point = parse_flex(text), parse_flex(text, pointwise=True)
    assert (pair is not None, point is not None) == (pairwise, pointwise)
    assert parse_flex_pointwise(text) == point
    assert format_ok(flex, text) == pairwise
    assert format_ok(flex_pointwise, text) == pointwise


def test_flex_results_are_pinned():
    assert parse_flex(json.dumps(PAIR)) == {
        "intent": "draw a cat",
        "categories": [
            {
                "name": "semantic_alignment",
                "dimensions": [
                    {"name": "subject", "reason": "both cats", "score_a": 5.0, "score_b": 5.0},
                    {"name": "count", "reason": "r", "score_a": 7.5, "score_b": 2.5},
                ],
                "winner": "A",
                "score_a": 6.25,
                "score_b": 3.75,
            },
            {
                "name": "quality",
                "dimensions": [{"name": "unnamed", "reason": "", "score_a": 5.0, "score_b": 5.0}],
                "winner": "B",
                "score_a": 5.0,
                "score_b": 5.0,
            },
        ],
        "overall_winner": "A",
    }
    assert parse_flex(json.dumps({**PAIR, "overall_winner": None}))["overall_winner"] == "C"  # one category each
    assert parse_flex(json.dumps(POINT), pointwise=True) == {
        "intent": "a dog",
        "categories": [
            {
                "name": "quality",
                "dimensions": [
                    {"name": "sharp", "reason": "ok", "score": 10.0},
                    {"name": "noise", "reason": "", "score": 0.0},
                ],
                "score": 5.0,
            },
            {"name": "fit", "dimensions": [{"name": "unnamed", "reason": "3", "score": 7.5}], "score": 7.5},
        ],
        "overall_score": 8.0,
    }
    assert parse_flex_pointwise(json.dumps({**POINT, "overall_score": None}))["overall_score"] == 6.25
    both = json.dumps(BOTH)
    assert [c["winner"] for c in parse_flex(both)["categories"]] == ["B"]
    assert parse_flex(both, pointwise=True)["overall_score"] == 3.0
