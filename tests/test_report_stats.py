"""The report's statistics: tie calibration (vectorised), bootstrap intervals, tie curve,
margin histograms, temperature and ECE, judge consistency, and each benchmark's own metric."""

import math

import numpy as np
import pytest

from omnireward.metrics import accuracy_with_ties
from omnireward.report import stats
from omnireward.report.consistency import judge_stats
from omnireward.report.headline import headline, rewardbench, videogen_accuracy, vl_group


def _data(n, seed, spread=1.0, rounding=None):
    rng = np.random.default_rng(seed)
    y = rng.choice([1, -1, 0], size=n, p=[0.4, 0.4, 0.2])
    m = y * 0.8 + rng.normal(0, spread, n)
    if rounding:
        m = np.round(m, rounding)  # many equal |margin| values
    return m.tolist(), y.tolist()


@pytest.mark.parametrize("seed,rounding", [(0, None), (1, 1), (2, 0), (3, 2)])
def test_vectorised_tie_calibration_equals_the_reference(seed, rounding):
    m, y = _data(300, seed, rounding=rounding)
    assert stats.accuracy_with_ties_fast(m, y) == pytest.approx(accuracy_with_ties(m, y)[0])
    acc, eps = accuracy_with_ties(m, y)
    assert stats.accuracy_at(m, y, eps) == pytest.approx(acc)


def test_bootstrap_interval_brackets_the_estimate_and_shrinks_with_data():
    m, y = _data(100, 0)
    small = stats.bootstrap_interval(m, y, stats.accuracy_without_ties, n=400, seed=1)
    again = stats.bootstrap_interval(m, y, stats.accuracy_without_ties, n=400, seed=1)
    assert small == again  # seeded
    point = stats.accuracy_without_ties(m, y)
    assert small[0] <= point <= small[1]
    m2, y2 = _data(2000, 0)
    big = stats.bootstrap_interval(m2, y2, stats.accuracy_without_ties, n=400, seed=1)
    assert (big[1] - big[0]) < (small[1] - small[0]) / 2.5  # ~ 1/sqrt(n): 20x data, ~4.5x narrower
    # A binomial proportion's interval: width close to 2 * 1.96 * sqrt(p(1-p)/n).
    n2 = sum(1 for v in y2 if v != 0)
    p = stats.accuracy_without_ties(m2, y2)
    assert big[1] - big[0] == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n2), rel=0.2)


def test_bootstrap_is_none_without_pairs_or_when_mostly_undefined():
    assert stats.bootstrap_interval([], [], stats.accuracy_without_ties) is None
    assert stats.bootstrap_interval([0.1, 0.2], [0, 0], stats.accuracy_without_ties, n=50) is None


def test_tie_curve_peaks_at_the_chosen_threshold():
    rng = np.random.default_rng(5)
    y = rng.choice([1, -1, 0], size=400).tolist()
    m = [v * 1.0 + rng.normal(0, 0.6 if v else 0.2) for v in y]  # ties sit near 0: a threshold pays
    acc, eps = accuracy_with_ties(m, y)
    assert eps is not None
    tc = stats.tie_curve(m, y, eps)
    assert eps in tc["eps"] and tc["chosen_accuracy"] == pytest.approx(acc)
    assert max(tc["accuracy"]) == pytest.approx(acc)
    assert tc["no_tie_accuracy"] == pytest.approx(stats.accuracy_at(m, y, None))
    assert tc["eps"][0] == 0.0 and tc["eps"][-1] == pytest.approx(max(abs(v) for v in m))


def test_margin_histogram_counts_every_pair_once():
    m, y = _data(250, 7)
    h = stats.margin_histogram(m, y)
    for name, sign in (("response1", 1), ("response2", -1), ("tie", 0)):
        assert sum(h["counts"][name]) == sum(1 for v in y if v == sign)
        assert h["median"][name] == pytest.approx(float(np.median([a for a, b in zip(m, y) if b == sign])))
    assert len(h["bin_edges"]) == len(h["counts"]["tie"]) + 1


def test_temperature_is_recovered_and_calibration_improves():
    rng = np.random.default_rng(0)
    m = rng.normal(0, 4, 6000)
    target = (rng.random(6000) < 1 / (1 + np.exp(-m / 2.5))).astype(int)  # generated at T = 2.5
    y = np.where(target == 1, 1, -1)
    cal = stats.calibration(m, y)
    assert cal["temperature"] == pytest.approx(2.5, rel=0.1)
    assert cal["ece"] < 0.03 < cal["ece_at_t1"]  # raw σ(margin) is overconfident here
    assert sum(b["count"] for b in cal["bins"]) == cal["n"] == 6000


def test_reliability_by_hand():
    bins, ece = stats.reliability([0.05, 0.15, 0.95, 0.92], [0, 1, 1, 1], bins=10)
    assert [b["count"] for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[9]["mean_p"] == pytest.approx(0.935) and bins[9]["share_response1"] == 1.0
    assert ece == pytest.approx((0.05 + 0.85 + 2 * 0.065) / 4)


def test_judge_stats_from_judge_lines():
    lines = [
        {
            "verdict": "response1",
            "p_response1": 0.7,
            "p_response2": 0.2,
            "p_tie": 0.1,
            "text_verdict": "response1",
            "order_agreement": True,
            "p_response1_by_order": [0.8, 0.6],
        },
        {
            "verdict": "response2",
            "p_response1": 0.3,
            "p_response2": 0.6,
            "p_tie": 0.1,
            "order_agreement": False,
            "p_response1_by_order": [0.6, 0.0],
        },
        {
            "verdict": "tie",
            "p_response1": 0.3,
            "p_response2": 0.3,
            "p_tie": 0.4,
            "text_verdict": "tie",
            "order_agreement": True,
            "p_response1_by_order": [0.3, 0.3],
        },
        {"reward": 1.0},  # a pointwise line is not a judged pair
    ]
    js = judge_stats(lines)
    assert js["n"] == 3 and js["parseable_share"] == pytest.approx(2 / 3)
    assert js["position_consistency"] == pytest.approx(2 / 3) and js["flip_rate"] == pytest.approx(1 / 3)
    assert js["mean_p_response1_shift"] == pytest.approx((0.2 + 0.6 + 0.0) / 3)
    assert js["verdicts"] == {
        "response1": pytest.approx(1 / 3),
        "response2": pytest.approx(1 / 3),
        "tie": pytest.approx(1 / 3),
    }
    assert judge_stats([{"margin": 1.0}]) is None


class _Rec:
    def __init__(self, **meta):
        self.meta = meta


def test_rewardbench_sections_are_prompt_weighted_and_score_is_their_mean():
    lines, records = [], {}
    # Chat: alpacaeval-easy 1/1 right, mt-bench-med 0/1; Reasoning: math-prm right, hep-python wrong.
    for i, (subset, margin) in enumerate(
        [("alpacaeval-easy", 1.0), ("mt-bench-med", -1.0), ("math-prm", 2.0), ("hep-python", 0.0)]
    ):
        lines.append({"id": str(i), "margin": margin, "preference": "response1"})
        records[str(i)] = _Rec(subset=subset)
    h = rewardbench(lines, records)
    assert h["subsets"] == {"alpacaeval-easy": 1.0, "hep-python": 0.0, "math-prm": 1.0, "mt-bench-med": 0.0}
    assert h["sections"]["Chat"] == pytest.approx(100 / (100 + 40))
    assert h["sections"]["Reasoning"] == pytest.approx(984 / (984 + 164))  # math-prm counts as much as all code
    assert h["value"] == pytest.approx((100 / 140 + 984 / 1148) / 2)
    assert h["missing_sections"] == ["Chat Hard", "Safety"]


def test_videogen_accuracy_follows_videoalign_definition():
    # |margin| order: 0.1 (tie, r), 0.2 (A, right), 0.3 (tie), 0.5 (B but margin +: wrong)
    m = [0.2, -0.1, 0.3, 0.5]
    y = [1, 0, 0, -1]
    out = videogen_accuracy(m, y)
    assert out["without_ties"] == pytest.approx(1 / 2)
    # k=1: tie(0.1) right + A right = 2/4; k=2: 0.2 called tie -> wrong: 1/4; k=3: 2/4; k=4: 2/4.
    assert out["with_ties"] == pytest.approx(2 / 4)
    # Our calibration may call nothing a tie; VideoAlign's takes k >= 1 even when that is worse.
    assert videogen_accuracy([5.0, -5.0], [1, -1])["with_ties"] == pytest.approx(1 / 2)
    assert accuracy_with_ties([5.0, -5.0], [1, -1])[0] == 1.0


def test_vl_rewardbench_groups_from_ids_and_macro():
    assert [
        vl_group(i)
        for i in ("RLAIF-V_12", "mathverse_2279", "wildvision-battle_3", "hallucination_9", "vlfeedback_1", "mmmu_4")
    ] == ["hallucination", "reasoning", "general", "hallucination", "general", "reasoning"]
    lines = [
        {"id": "mathverse_1", "margin": 1.0, "preference": "response1"},
        {"id": "mathverse_2", "margin": -1.0, "preference": "response1"},
        {"id": "RLHF-V_1", "margin": 1.0, "preference": "response1"},
        {"id": "wildvision_1", "margin": -1.0, "preference": "response2"},
    ]
    h = headline("vlrewardbench", lines)
    assert h["groups"] == {"general": 1.0, "hallucination": 1.0, "reasoning": 0.5}
    assert h["overall"] == pytest.approx(3 / 4) and h["macro"] == pytest.approx(2.5 / 3)
    assert headline("omnirewardbench", lines) is None  # its own metric is ours: nothing extra to print
