"""Gains that the whole-model init used to get wrong, measured by Monte Carlo:
channel-wise PReLU and weight-normalized layers."""
import math

import numpy as np
import pytest
import torch
from torch.nn.utils.parametrizations import weight_norm

import varinit
from varinit.layers import Layer, forward, init_layers


def test_gain_of_a_prelu_module_with_a_float32_slope():
    assert varinit.gain(torch.nn.PReLU()) == pytest.approx(math.sqrt(2 / (1 + 0.25**2)), rel=1e-10)
    assert varinit.gain(torch.nn.PReLU(init=0.5)) == pytest.approx(math.sqrt(2 / 1.25), rel=1e-10)


@pytest.mark.parametrize("channels", [1, 64])
def test_prelu_channels_keep_the_output_second_moment_at_one(channels):
    model = torch.nn.Sequential(torch.nn.Linear(512, 64), torch.nn.PReLU(channels))
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(0.0, 0.5, channels))   # slopes differ per channel
    varinit.torch.init_module(model, generator=0)
    torch.manual_seed(1)
    with torch.no_grad():
        y = model(torch.randn(4096, 512))
    # per-unit weight norms fluctuate by sqrt(2/512); over 64 units the mean is within 1% (12 sd at 10%);
    # gain 1 would give (1 + mean a^2)/2 ~ 0.54
    assert float((y**2).mean()) == pytest.approx(1.0, abs=0.1)


def deep_weight_norm(depth, width):
    layers = []
    for _ in range(depth):
        layers += [weight_norm(torch.nn.Linear(width, width)), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers)


def test_weight_normalized_relu_stack_keeps_its_signal_and_every_parameter_has_a_rule():
    model = deep_weight_norm(20, 256)
    report = varinit.torch.init_module(model, generator=0)
    assert not [r.name for r in report if r.rule == "untouched"]
    g = model[0].parametrizations.weight.original0
    assert torch.allclose(g, torch.full_like(g, math.sqrt(2)))
    torch.manual_seed(2)
    with torch.no_grad():
        h = model(torch.randn(2048, 256))
    # He keeps E[h^2] = 1 in expectation; finite width moves log E[h^2] by about
    # sqrt(5 L / n) = 0.6 (Hanin & Rolnick 2018): a factor 30 is over 5 sd. g = 1 gives 2^-20.
    assert 1 / 30 < float((h**2).mean()) < 30


def test_numpy_weight_norm_layers_get_the_gain_as_g():
    layers = [Layer(np.empty((256, 256)), np.empty(256), "relu", g=np.empty(256)) for _ in range(20)]
    report = init_layers(layers, generator=0)
    np.testing.assert_allclose(layers[5].g, math.sqrt(2))
    assert [r.std for r in report if r.name == "5.g"] == [0.0]
    _, post = forward(layers, np.random.default_rng(3).standard_normal((2048, 256)))
    assert 1 / 30 < float(np.mean(post[-1] ** 2)) < 30
