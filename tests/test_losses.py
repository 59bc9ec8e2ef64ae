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
        probs = [math.exp(-fn(x[i:i + 1], y[i:i + 1], None, param).item()) for i in range(3)]
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
