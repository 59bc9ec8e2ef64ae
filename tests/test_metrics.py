import numpy as np
import pytest

from omnireward.metrics import accuracy_with_ties, accuracy_without_ties, summarize


def brute_with_ties(m, y):
    """Try every threshold (each |margin|, and 'no ties'); predicted tie iff |margin| <= eps."""
    best, best_eps = -1, None
    for eps in [None] + sorted(set(abs(x) for x in m)):
        correct = 0
        for mi, yi in zip(m, y):
            pred = 0 if (eps is not None and abs(mi) <= eps) else (1 if mi > 0 else (-1 if mi < 0 else None))
            correct += pred == yi
        if correct > best:
            best, best_eps = correct, eps
    return best / len(m), best_eps


def brute_without_ties(m, y):
    kept = [(mi, yi) for mi, yi in zip(m, y) if yi != 0]
    if not kept:
        return None
    return sum((1 if mi > 0 else -1 if mi < 0 else 0) == yi for mi, yi in kept) / len(kept)


@pytest.mark.parametrize("seed", range(30))
def test_both_accuracies_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    # Rounded margins make equal |margin| values (and exact zeros) common.
    m = np.round(rng.normal(size=n) * 2, 0 if seed % 3 == 0 else 1).tolist()
    y = rng.choice([1, -1, 0], size=n, p=[0.4, 0.4, 0.2]).tolist()
    acc, eps = accuracy_with_ties(m, y)
    ref_acc, _ = brute_with_ties(m, y)
    assert acc == pytest.approx(ref_acc)
    # The returned threshold must achieve the reported accuracy.
    achieved = np.mean([(0 if eps is not None and abs(a) <= eps else np.sign(a)) == b for a, b in zip(m, y)])
    assert achieved == pytest.approx(acc)
    assert accuracy_without_ties(m, y) == brute_without_ties(m, y)


def test_all_ties_and_no_ties():
    m = [0.5, -0.2, 0.0, 0.1]
    acc, eps = accuracy_with_ties(m, [0, 0, 0, 0])
    assert acc == 1.0 and eps == 0.5
    assert accuracy_without_ties(m, [0, 0, 0, 0]) is None
    acc, eps = accuracy_with_ties([1.0, -2.0, 3.0], [1, -1, 1])
    assert acc == 1.0 and eps is None
    # A zero margin is not a correct non-tie prediction.
    assert accuracy_without_ties([0.0, 1.0], [1, 1]) == 0.5


def test_summary_per_task_keys():
    s = summarize(
        [1.0, -1.0, 0.1, 2.0],
        ["response1", "response1", "tie", "response2"],
        ["text_to_text", "text_to_text", "text_to_image", "text_to_image"],
    )
    assert s["n"] == 4 and s["accuracy_without_ties"] == pytest.approx(1 / 3)
    assert set(s["per_task"]) == {"text_to_text", "text_to_image"}
    for t in s["per_task"].values():
        assert {"accuracy_without_ties", "accuracy_with_ties", "tie_threshold", "n"} <= set(t)
    assert s["per_task"]["text_to_image"]["accuracy_with_ties"] == 0.5


def test_empty():
    assert accuracy_with_ties([], []) == (None, None)
