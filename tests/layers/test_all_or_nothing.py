"""The whole-model functions that change a model in steps either finish or
leave the model and the generators exactly as they were; non-finite data is
refused before the first change."""
import numpy as np
import pytest
import torch

import varinit
from varinit.layers import Layer, lsuv, weight_norm_init


def model(seed=0):
    rng = np.random.default_rng(seed)
    return [Layer(rng.standard_normal((16, 8)), np.zeros(16), "tanh", name="a"),
            Layer(rng.standard_normal((4, 16)), np.zeros(4), "linear", name="b")]


def values(layers):
    return [np.array(a, copy=True) for layer in layers for a in (layer.weight, layer.bias)]


@pytest.mark.parametrize("function", [lambda m, x: lsuv(m, x, generator=0), weight_norm_init])
def test_nan_data_is_refused_before_any_weight_changes(function):
    layers = model()
    before = values(layers)
    x = np.random.default_rng(1).standard_normal((64, 8))
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        function(layers, x)
    for old, new in zip(before, values(layers)):
        np.testing.assert_array_equal(old, new)


def test_lsuv_that_fails_on_a_later_layer_restores_every_layer_and_the_stream():
    layers = model()
    layers[1].weight[...] = 0.0   # a dead layer: its output has zero variance, LSUV must fail there
    before = values(layers)
    state = varinit.default_generator.get_state()
    with pytest.raises(ValueError, match="layer b: its output has zero variance"):
        lsuv(layers, np.random.default_rng(1).standard_normal((64, 8)), orthogonal_init=False)
    for old, new in zip(before, values(layers)):
        np.testing.assert_array_equal(old, new)
    assert varinit.default_generator.get_state() == state


def test_torch_lsuv_that_fails_restores_the_module_and_torchs_generator():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.zero_()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    x = torch.randn(64, 8)
    rng_after_data = torch.get_rng_state()
    with pytest.raises(ValueError, match="zero variance"):
        varinit.torch.lsuv(net, x, orthogonal_init=False)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(torch.get_rng_state(), rng_after_data) and not torch.equal(rng, rng_after_data)


def test_torch_weight_norm_init_refuses_nan_data_and_changes_nothing():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(32, 8)
    x[0, 0] = float("inf")
    with pytest.raises(ValueError, match="x has NaN or infinite values"):
        varinit.torch.weight_norm_init(net, x)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_a_successful_torch_lsuv_bumps_the_version_counters():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    versions = [p._version for p in net.parameters()]
    varinit.torch.lsuv(net, torch.randn(64, 8), generator=0)
    assert all(p._version > v for p, v in zip(net.parameters(), versions))


def test_init_module_refuses_an_unfillable_parameter_before_touching_the_others():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    net[2].weight = torch.nn.Parameter(torch.zeros(4, 16, dtype=torch.int64), requires_grad=False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    with pytest.raises(TypeError, match="parameter 2.weight: tensor must have a floating dtype"):
        varinit.torch.init_module(net)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(torch.get_rng_state(), rng)


def test_init_layers_that_fails_on_a_later_layer_restores_the_earlier_ones():
    layers = [Layer(np.full((8, 8), 0.5, np.float32), np.full(8, 0.5, np.float32), "relu", name="a"),
              Layer(np.full((8, 8), 0.5, np.float16), None, "relu", name="b", density=1e-20)]
    state = varinit.default_generator.get_state()
    with pytest.raises(ValueError, match="the fans"):
        varinit.layers.init_layers(layers)
    assert np.all(layers[0].weight == 0.5) and np.all(layers[0].bias == 0.5)
    assert np.all(layers[1].weight == 0.5)
    assert varinit.default_generator.get_state() == state
