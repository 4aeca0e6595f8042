"""init_module's norm shifts: in a chain of layers each followed by a norm with
batch statistics and an activation, the gradient grows by E[g'^2] / Var g per
norm (pi / (pi - 1) after ReLU), which no scale of the layers changes; the
norms' shifts move the activations toward their linear part until the measured
first/last ratio comes into the band, and are undone when the measure says
they did not help."""
import importlib
import math

import pytest
import torch
from scipy.stats import norm as gaussian
from torch import nn

from varinit.torch import norm_shift
from varinit.torch.dataflow import plan
from varinit.torch.gradient_check import Layer
from varinit.torch.norm_shift import growth, shift_norms, shiftable
from zoo import batchnorm_chain, init_with_warnings, profile, verdict


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.8, 1.5])
def test_relu_s_growth_per_norm_is_its_closed_form(beta):
    # z ~ N(b, 1): E[relu'(z)^2] = Phi(b); E relu(z) = b Phi(b) + phi(b); E relu(z)^2 = (1 + b^2) Phi(b) + b phi(b)
    cdf, pdf = gaussian.cdf(beta), gaussian.pdf(beta)
    variance = (1 + beta ** 2) * cdf + beta * pdf - (beta * cdf + pdf) ** 2
    assert growth(("relu", None), beta, 1.0) == pytest.approx(cdf / variance, rel=1e-6)
    if beta == 0.0:
        assert growth(("relu", None), beta, 1.0) == pytest.approx(math.pi / (math.pi - 1.0), rel=1e-6)


def test_a_batchnorm_chain_beyond_the_tilt_s_room_is_brought_into_the_band_by_its_norms_shifts():
    # 30 BatchNorm + ReLU: the tilt leaves the ratio above the band with the room spent; the
    # shifts bring it in, and every norm of the chain takes the same one
    torch.manual_seed(0)
    model, x = batchnorm_chain(30), torch.randn(16, 3, 8, 8)
    report, messages = init_with_warnings(model, x)
    v = verdict(*profile(model, x))
    assert 0.25 <= v["grad_ratio"] <= 4.0 and v["act_ratio"] <= 1.9 and 0.8 <= v["output_std"] <= 1.25, v
    shifted = [r for r in report if "norm shift: 0." in r.rule]
    assert len(shifted) == 30, [r.rule for r in report if r.name.endswith("bias")][:4]
    values = {float(dict(model.named_parameters())[r.name].detach()[0]) for r in shifted}
    assert len(values) == 1 and 0.1 < (beta := values.pop()) < norm_shift.SHIFT_MAX
    # the norms hold the forward: each ReLU after one is judged alone, by the gradient's growth per
    # norm (the next norm divides by Var g), not by E[g'^2] / E[g^2] over 30 in series (0.43^30)
    (relu,) = report.verdicts
    assert report.healthy and relu.activation == "relu after batch statistics" and relu.depth == 1
    assert relu.chi == pytest.approx(growth(("relu", None), beta, 1.0), rel=1e-6)
    assert any("the norms' shifts (beta)" in n and "kept, for a growth of" in n for n in report.notes), report.notes
    assert not any("measured in one backward pass" in m for m in messages)


def test_shifts_that_do_not_help_are_measured_and_undone(monkeypatch):
    # shifts past ReLU6's saturation stop the gradient there: they are undone, and every
    # parameter is what the solve without them gives
    initialize = importlib.import_module("varinit.torch.initialize")
    torch.manual_seed(0)
    reference, x = batchnorm_chain(30, activation=nn.ReLU6), torch.randn(16, 3, 8, 8)
    model = batchnorm_chain(30, activation=nn.ReLU6)
    monkeypatch.setattr(initialize, "shift_norms", lambda *args: None)
    init_with_warnings(reference, x)
    monkeypatch.undo()
    monkeypatch.setattr(norm_shift, "_shifts", lambda groups, cut: {b: 7.0 for g in groups for b in g.betas})
    report, _ = init_with_warnings(model, x)
    assert any("the norms' shifts (beta)" in n and "7 gave" in n and "measured and undone" in n for n in report.notes)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name


class _RepBlock(nn.Module):
    """RepVGG's training-time block: relu(BN(conv3x3 x) + BN(conv1x1 x) + BN(x))."""

    def __init__(self, c):
        super().__init__()
        self.conv3, self.norm3 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv1, self.norm1 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.identity = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.norm3(self.conv3(x)) + self.norm1(self.conv1(x)) + self.identity(x))


class _ResBlock(_RepBlock):
    def forward(self, x):
        return torch.relu(self.norm3(self.conv3(x)) + x)


def test_a_sum_of_norms_before_an_activation_shares_its_shift():
    # RepVGG: the activation reads N(sum of betas, sum of gamma^2); each of the three norms takes a
    # third of the mean. 16 blocks: 8.3 after the tilt, in the band with the shifts
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          *[_RepBlock(16) for _ in range(16)], nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 10))
    x = torch.randn(16, 3, 8, 8)
    groups = shiftable(plan(model, x.to("meta")))
    assert [len(g.betas) for g in groups] == [1] + [3] * 16
    assert all(g.std == pytest.approx(math.sqrt(3.0)) for g in groups[1:])
    report, _ = init_with_warnings(model, x)
    v = verdict(*profile(model, x))
    assert 0.25 <= v["grad_ratio"] <= 4.0 and v["act_ratio"] <= 1.9 and 0.8 <= v["output_std"] <= 1.25, v
    block = model[5]
    shifts = [float(n.bias[0]) for n in (block.norm3, block.norm1, block.identity)]
    assert shifts[0] > 0.0 and shifts == [shifts[0]] * 3
    # a residual block's sum reads the stream, not only norms: no shift for it
    resnet = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *[_ResBlock(16) for _ in range(4)])
    assert shiftable(plan(resnet, x.to("meta"))) == []


class _TwoReaders(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.out = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.norm(self.conv(x))
        return self.out(torch.relu(y)) + y


@pytest.mark.parametrize("make", [lambda: batchnorm_chain(4, activation=nn.Tanh), lambda: batchnorm_chain(4).eval(),
                                  _TwoReaders], ids=["tanh", "running_statistics", "two_readers"])
def test_no_shift_where_the_growth_does_not_fall_or_the_norm_feeds_more_than_its_activation(make):
    # tanh's growth rises off zero; a norm on running statistics keeps its input's scale; a
    # shift read by anything but the activation would add a mean there
    assert shiftable(plan(make(), torch.randn(8, 3, 8, 8))) == []


def test_relu6_is_known_by_name_and_nothing_is_solved_for_a_ratio_in_the_band():
    result = plan(batchnorm_chain(4, activation=nn.ReLU6), torch.randn(8, 3, 8, 8))
    groups = shiftable(result)
    assert {g.activation for g in groups} == {("relu6", None)} and [len(g.betas) for g in groups] == [1] * 4

    def solve(shifts):
        raise AssertionError("solved")

    for grads in ([0.4, 0.3, 0.2, 1.0], [0.01, 0.1, 0.2, 1.0]):   # 2 (in the band), 0.05 (below it)
        layers = [Layer(f"l{i}", 1.0, g, 1) for i, g in enumerate(grads)]
        assert shift_norms(result, layers, solve) is None
