import math

import pytest
import torch

from omnireward.config import build, compose_config
from omnireward.errors import ConfigError
from omnireward.heads.losses import bt_loss, bt_margin_loss, davidson_loss, needs_margin, rao_kupper_loss


def test_bt_matches_formula_and_skips_ties():
    d = torch.tensor([1.0, -0.5, 2.0])
    y = torch.tensor([1, 1, 0])
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(1 / (1 + math.exp(0.5)))) / 2
    assert bt_loss(d, y).item() == pytest.approx(expected, rel=1e-6)


def test_margin_shifts_the_target():
    d = torch.tensor([1.0])
    y = torch.tensor([1])
    assert bt_margin_loss(d, y, torch.tensor([1.0])).item() == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize("d", [-3.0, -0.3, 0.0, 0.7, 4.0])
def test_tie_models_are_distributions(d):
    x = torch.tensor([d, d, d])
    y = torch.tensor([1, -1, 0])
    for fn, param in ((rao_kupper_loss, 2.5), (davidson_loss, 0.8)):
        probs = [math.exp(-fn(x[i : i + 1], y[i : i + 1], None, param).item()) for i in range(3)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    # Rao–Kupper closed form for the win probability.
    p1 = math.exp(-rao_kupper_loss(x[:1], y[:1], theta=2.5).item())
    assert p1 == pytest.approx(1 / (1 + 2.5 * math.exp(-d)), rel=1e-5)


def test_tie_loss_pulls_rewards_together():
    d = torch.tensor([3.0], requires_grad=True)
    davidson_loss(d, torch.tensor([0])).backward()
    assert d.grad.item() > 0  # descending the gradient shrinks |d|
    d2 = torch.tensor([-3.0], requires_grad=True)
    rao_kupper_loss(d2, torch.tensor([0]), theta=2.0).backward()
    assert d2.grad.item() < 0


def test_every_packaged_loss_composes_and_builds_a_callable():
    for name, needs in (("bt", False), ("bt_margin", True), ("rao_kupper", False), ("davidson", False)):
        cfg = compose_config([f"loss={name}"])
        loss = build(cfg.model.loss)
        d, y = torch.tensor([0.5, -0.2]), torch.tensor([1, 0])
        assert torch.isfinite(loss(d, y, torch.tensor([0.1, 0.2])))
        assert needs_margin(loss) is needs


def test_unknown_loss_or_bad_option_fails_when_composing():
    with pytest.raises(ConfigError, match="loss"):
        compose_config(["loss=nope"])
    with pytest.raises(ConfigError, match="takes no option"):
        compose_config(["loss=rao_kupper", "+loss.thet=3"])
    with pytest.raises(ConfigError, match="model.loss"):
        compose_config(["model.loss=bt_margin"])  # the old string switch names no component
    with pytest.raises(ConfigError, match="theta > 1"):
        build(compose_config(["loss=rao_kupper", "loss.theta=0.5"]).model.loss)(torch.zeros(1), torch.ones(1), None)


# ---- probabilistic BT (head=gaussian) and Plackett–Luce (loss=plackett_luce) -------------------------


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_gaussian_bt_is_minus_log_phi_of_the_standardised_margin():
    from omnireward.heads.losses import gaussian_bt_loss

    d, var = torch.tensor([1.0, -0.5, 2.0, 0.3]), torch.tensor([0.5, 2.0, 1.0, 4.0])
    y = torch.tensor([1, 1, -1, 0])  # the tie carries no signal
    expected = (
        -sum(math.log(_phi(s * a / math.sqrt(v))) for a, v, s in ((1.0, 0.5, 1), (-0.5, 2.0, 1), (2.0, 1.0, -1))) / 3
    )
    assert gaussian_bt_loss(d, var, y).item() == pytest.approx(expected, rel=1e-6)
    # It is the probability that a draw of r1 - r2 ~ N(d, var) is positive (Monte Carlo, one pair).
    g = torch.Generator().manual_seed(0)
    draws = 0.7 + math.sqrt(1.5) * torch.randn(400_000, generator=g)
    p = math.exp(-gaussian_bt_loss(torch.tensor([0.7]), torch.tensor([1.5]), torch.tensor([1])).item())
    assert p == pytest.approx(float((draws > 0).float().mean()), abs=3e-3)
    # Far in the wrong direction it stays finite (log Φ, not log of an underflowed Φ).
    assert torch.isfinite(gaussian_bt_loss(torch.tensor([-60.0]), torch.tensor([1.0]), torch.tensor([1])))


def test_gaussian_bt_variance_gradient_follows_whether_the_pair_is_predicted():
    """More variance costs a pair the model ranks right and helps one it ranks wrong: σ grows
    where labels disagree with the means."""
    from omnireward.heads.losses import gaussian_bt_loss

    var = torch.tensor([1.0, 1.0], requires_grad=True)
    gaussian_bt_loss(torch.tensor([1.0, -1.0]), var, torch.tensor([1, 1])).backward()
    assert var.grad[0] > 0 and var.grad[1] < 0


def test_plackett_luce_with_two_responses_is_exactly_bt():
    from omnireward.heads.losses import plackett_luce_loss

    g = torch.Generator().manual_seed(0)
    r = torch.randn(64, 2, generator=g, dtype=torch.float64)
    win = torch.randint(0, 2, (64,), generator=g)
    # Gold order, best first: the winner's reward in column 0.
    ranked = torch.where(win[:, None] == 0, r, r.flip(-1))
    two = torch.full((64,), 2)
    pl = plackett_luce_loss(ranked, two, two)
    bt = bt_loss(r[:, 0] - r[:, 1], torch.where(win == 0, 1, -1))
    assert pl.item() == pytest.approx(bt.item(), rel=1e-12)
    # Their gradients agree too.
    a = r.clone().requires_grad_(True)
    b = r.clone().requires_grad_(True)
    plackett_luce_loss(torch.where(win[:, None] == 0, a, a.flip(-1)), two, two).backward()
    bt_loss(b[:, 0] - b[:, 1], torch.where(win == 0, 1, -1)).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)


def test_plackett_luce_formula_padding_and_partial_rankings():
    from omnireward.heads.losses import plackett_luce_loss

    s = [2.0, 0.5, -1.0, 0.1]  # rewards in gold order
    full = sum(math.log(sum(math.exp(x) for x in s[j:])) - s[j] for j in range(4))
    top1 = math.log(sum(math.exp(x) for x in s)) - s[0]
    three = math.log(sum(math.exp(x) for x in s[:3])) - s[0] + math.log(math.exp(s[1]) + math.exp(s[2])) - s[1]
    ranked = torch.tensor([s, s, s[:3] + [123.0]])  # the last group has 3 responses; 123 is padding
    n_ranked, n_valid = torch.tensor([4, 1, 3]), torch.tensor([4, 4, 3])
    assert plackett_luce_loss(ranked, n_ranked, n_valid).item() == pytest.approx((full + top1 + three) / 3, rel=1e-6)
    # The probabilities of all 3! orders of three responses sum to one.
    import itertools

    r = torch.tensor([0.3, -1.2, 0.8])
    total = sum(
        math.exp(-plackett_luce_loss(r[list(p)][None], torch.tensor([3]), torch.tensor([3])).item())
        for p in itertools.permutations(range(3))
    )
    assert total == pytest.approx(1.0, abs=1e-6)
    # Padding gets no gradient (and no NaN).
    x = ranked.clone().requires_grad_(True)
    plackett_luce_loss(x, n_ranked, n_valid).backward()
    assert torch.isfinite(x.grad).all() and x.grad[2, 3] == 0


def test_plackett_luce_composes_and_is_listwise():
    from omnireward.heads.losses import is_listwise

    loss = build(compose_config(["loss=plackett_luce"]).model.loss)
    assert is_listwise(loss) and not needs_margin(loss)
    assert not is_listwise(build(compose_config(["loss=bt"]).model.loss))


def test_a_loss_declares_what_it_needs_and_nothing_reads_its_signature():
    from functools import partial

    from omnireward.heads.losses import declare, is_listwise, is_plain_bt

    def mine(d, y, margin):  # a required `margin` parameter declares nothing by itself
        return d.mean()

    assert not needs_margin(mine) and not is_listwise(mine) and not is_plain_bt(mine)
    mine.needs_margin = True
    assert needs_margin(partial(mine)) and not is_listwise(partial(mine))
    assert is_plain_bt(partial(bt_loss)) and not is_plain_bt(partial(bt_margin_loss))
    ranked = declare(listwise=True)(lambda ranked, n_ranked, n_valid: ranked.sum())
    assert is_listwise(ranked) and not needs_margin(ranked)
