"""`omnireward eval` recomputes summaries from scores files and refuses bad lines by file:line:field."""

import json

import pytest

from omnireward.errors import DataFormatError
from omnireward.scoring.evaluate import eval_scores, is_scores_file


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reward_pairs_or_margins_give_the_same_summary(tmp_path):
    rows = [
        {"id": "a", "task": "t1", "reward1": 2.0, "reward2": 1.0, "preference": "response1"},
        {"id": "b", "task": "t1", "reward1": 0.0, "reward2": 0.05, "preference": "tie"},
        {"id": "c", "task": "t2", "reward1": 1.0, "reward2": 3.0, "preference": "response1"},
        {"id": "d", "reward": 0.3},
    ]
    s = eval_scores(_write(tmp_path / "a.jsonl", rows), tmp_path / "out.json")
    assert s["n"] == 3 and s["n_scored"] == 4
    assert s["accuracy_without_ties"] == 0.5
    assert s["accuracy_with_ties"] == pytest.approx(2 / 3) and s["tie_threshold"] == pytest.approx(0.05)
    margins = [
        {"margin": r["reward1"] - r["reward2"], **{k: v for k, v in r.items() if k not in ("reward1", "reward2")}}
        for r in rows[:3]
    ]
    s2 = eval_scores(_write(tmp_path / "b.jsonl", margins))
    assert s2["per_task"] == s["per_task"]
    assert json.loads((tmp_path / "out.json").read_text())["accuracy_without_ties"] == 0.5
    assert is_scores_file(tmp_path / "a.jsonl")


@pytest.mark.parametrize(
    "row,field",
    [
        ({"id": "x", "preference": "response1"}, "margin"),
        ({"id": "x", "margin": "big", "preference": "response1"}, "margin"),
        ({"id": "x", "margin": 1.0, "preference": "left"}, "preference"),
    ],
)
def test_bad_lines_are_named(tmp_path, row, field):
    f = _write(tmp_path / "s.jsonl", [{"id": "ok", "margin": 1.0, "preference": "response1"}, row])
    with pytest.raises(DataFormatError) as e:
        eval_scores(f)
    assert str(e.value).startswith(f"{f}:2: {field}:")
