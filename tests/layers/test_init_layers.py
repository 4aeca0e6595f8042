"""varinit.layers.init_layers: whole-model init of NumPy models described as layers."""
import math

import numpy as np
import pytest
from scipy import stats

import varinit
from varinit.layers import Layer, forward

# Two-sided chi-square tests at TAIL per side, at most ~20 per test: a correct
# implementation fails a test with probability < 20 * 2 * TAIL = 4e-8.
TAIL = 1e-9


def assert_variance(w, variance, what):
    """n mean(w^2) / Var ~ chi-square(n) for n independent N(0, Var) entries."""
    w = np.asarray(w, np.float64).ravel()
    n = w.size
    statistic = n * np.mean(w * w) / variance
    lo, hi = stats.chi2.ppf(TAIL, n), stats.chi2.isf(TAIL, n)
    assert lo < statistic < hi, f"{what}: ratio {statistic / n:.4f} outside [{lo / n:.4f}, {hi / n:.4f}]"


def _mlp(sizes, activation, dtype=np.float32):
    return [Layer(np.full((o, i), 9.0, dtype), np.full(o, 9.0, dtype), activation)
            for i, o in zip(sizes[:-1], sizes[1:])]


def test_kaiming_per_layer_gain_fans_and_zero_bias():
    layers = [
        (np.empty((300, 200), np.float32), np.ones(300, np.float32), "relu"),
        {"weight": np.empty((200, 300), np.float64), "bias": np.ones(200), "activation": "leaky_relu",
         "param": 0.3},
        Layer(np.empty((300, 100), np.float32), None, "linear", in_axis=0, out_axis=1, name="readout"),
    ]
    report = varinit.layers.init_layers(layers, generator=3)
    assert_variance(layers[0][0], 2.0 / 200, "relu layer")
    assert_variance(layers[1]["weight"], 2.0 / (1 + 0.09) / 300, "leaky_relu layer")
    assert_variance(layers[2].weight, 1.0 / 300, "(in, out) layout: fan_in = 300")
    assert not layers[0][1].any() and not layers[1]["bias"].any()
    assert [r.name for r in report] == ["0.weight", "0.bias", "1.weight", "1.bias", "readout.weight"]
    assert report[4].fan_in == 300 and report[4].fan_out == 100


def test_schemes_conv_layouts_and_residual_scale():
    conv = Layer(np.empty((64, 8, 3, 3), np.float32), None, "relu", layer="conv", groups=4)
    deconv = Layer(np.empty((32, 16, 4, 4), np.float32), None, "linear", layer="conv_transpose", stride=2)
    proj = Layer(np.empty((128, 512), np.float32), None, "linear", residual=True)
    varinit.layers.init_layers([conv, deconv, proj], scheme="xavier", residual_scale=0.25, generator=4)
    # xavier: Var = 2 g^2 / (fan_in + fan_out); grouped conv fan_out = 64/4 * 9.
    assert_variance(conv.weight, 2 * 2.0 / (8 * 9 + 16 * 9), "grouped conv")
    # transposed, stride 2: fan_in = 32 * 16 / 4 = 128, fan_out = 16 * 16.
    assert_variance(deconv.weight, 2.0 / (128 + 256), "conv_transpose")
    assert_variance(proj.weight, 0.25**2 * 2.0 / (512 + 128), "residual")
    lecun = Layer(np.empty((256, 400), np.float32), None, "relu")
    report = varinit.layers.init_layers([lecun], scheme="lecun", distribution="truncated_normal", generator=5)
    # lecun ignores the activation: Var = 1/fan_in (truncated normal rescaled to that std).
    w = lecun.weight.astype(np.float64)
    # For N(0, 1) cut at +-2, Var(z^2) / E[z^2]^2 = 1.3655 (kurtosis - 1): the mean square
    # of n entries is within 6 standard errors of Var except with probability ~2e-9.
    assert abs(np.mean(w * w) * 400 - 1.0) < 6 * math.sqrt(1.3655 / w.size)
    assert np.abs(w).max() <= 2 * report[0].std / 0.8796256610342398 * (1 + 1e-6)
    ortho = Layer(np.empty((64, 256), np.float64), None, "relu")
    varinit.layers.init_layers([ortho], scheme="orthogonal", generator=6)
    np.testing.assert_allclose(ortho.weight @ ortho.weight.T, 2.0 * np.eye(64), atol=1e-12)


def test_variance_adjustments_on_layers():
    pruned = Layer(np.empty((256, 400), np.float32), None, "relu", density=0.25, keep_prob=0.8)
    scaled = Layer(np.empty((256, 300), np.float64), None, "linear", input_var=4.0)
    ortho = Layer(np.empty((64, 128), np.float64), None, "linear", keep_prob=0.5)
    report = varinit.layers.init_layers([pruned, scaled], generator=8)
    # density d: fan_in * d inputs survive; keep_prob multiplies Var; input_var divides it.
    assert_variance(pruned.weight, 2.0 * 0.8 / (400 * 0.25), "density and keep_prob")
    assert_variance(scaled.weight, 1.0 / (4.0 * 300), "input_var")
    assert report[0].fan_in == 100 and "density=0.25" in report[0].rule
    varinit.layers.init_layers([ortho], scheme="orthogonal", generator=9)
    np.testing.assert_allclose(ortho.weight @ ortho.weight.T, 0.5 * np.eye(64), atol=1e-12)


def test_same_seed_bitwise_and_by_name_independent_of_position():
    a, b = _mlp([20, 30, 40], "tanh"), _mlp([20, 30, 40], "tanh")
    varinit.layers.init_layers(a, generator=11)
    varinit.layers.init_layers(b, generator=varinit.Generator(11))
    assert all(np.array_equal(x.weight, y.weight) for x, y in zip(a, b))
    named = [Layer(np.empty((30, 20), np.float32), name="enc"), Layer(np.empty((40, 30), np.float32), name="dec")]
    swapped = [Layer(np.empty((40, 30), np.float32), name="dec"), Layer(np.empty((30, 20), np.float32), name="enc")]
    varinit.layers.init_layers(named, by_name=True, generator=12)
    varinit.layers.init_layers(swapped, by_name=True, generator=12)
    assert np.array_equal(named[0].weight, swapped[1].weight) and np.array_equal(named[1].weight, swapped[0].weight)
    varinit.layers.init_layers(swapped, generator=12)
    assert not np.array_equal(named[1].weight, swapped[0].weight)


def test_forward_pass_of_dense_layers():
    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((5, 3)), rng.standard_normal(5)
    w2 = rng.standard_normal((5, 2))  # (in, out)
    g = np.array([2.0, 0.5])
    x = rng.standard_normal((7, 3))
    layers = [(w1, b1, "relu"), Layer(w2, None, "tanh", in_axis=0, out_axis=1, g=g)]
    h = np.maximum(x @ w1.T + b1, 0)
    expected = np.tanh(h @ (w2 / np.linalg.norm(w2, axis=0)) * g)
    np.testing.assert_allclose(forward(layers, x)[1][-1], expected, rtol=1e-12)


def test_bad_layers_raise_and_leave_arrays_alone():
    w = np.full((4, 3), 5.0, np.float32)
    with pytest.raises(ValueError, match="scheme"):
        varinit.layers.init_layers([(w, None, "relu")], scheme="glorot")
    with pytest.raises(ValueError, match="activation"):
        varinit.layers.init_layers([(w, None, "relu"), (w.copy(), None, "nope")])
    with pytest.raises(ValueError, match="unknown keys"):
        varinit.layers.init_layers([{"weight": w, "act": "relu"}])
    with pytest.raises(ValueError, match="2 dimensions"):
        varinit.layers.init_layers([(np.empty(3), None, "relu")])
    with pytest.raises(TypeError, match="layers"):
        varinit.layers.init_layers(Layer(w))
    assert np.all(w == 5.0)
