"""Gains and Gaussian expectations against closed forms and scipy's adaptive quadrature."""
import math

import numpy as np
import pytest
from scipy import integrate, special
from scipy.stats import norm

import varinit
from varinit.activations import SELU_ALPHA, SELU_SCALE

# Closed forms are exact and the quadrature claims ~1e-13 (~1e-12 at an undeclared
# kink); 1e-10 checks that claim with room for scipy's own 1e-12.
RTOL = 1e-10


def scipy_expectation(f, q=1.0, points=(0.0,)):
    """E[f(sqrt(q) z)] by scipy.integrate.quad, split at the kinks, 1e-12 relative."""
    root = math.sqrt(q)
    cuts = [-math.inf] + sorted(p / root for p in points) + [math.inf]
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        total += integrate.quad(lambda z: f(root * z) * norm.pdf(z), lo, hi,
                                epsabs=0.0, epsrel=1e-12, limit=400)[0]
    return total


def elu_second_moment(alpha):
    # E[f^2] = 1/2 + alpha^2 (E[e^{2z}; z<0] - 2 E[e^z; z<0] + P(z<0))
    #        = 1/2 + alpha^2 (e^2 Phi(-2) - 2 e^{1/2} Phi(-1) + 1/2)
    return 0.5 + alpha ** 2 * (math.e ** 2 * norm.cdf(-2) - 2 * math.exp(0.5) * norm.cdf(-1) + 0.5)


@pytest.mark.parametrize("name,param,moment", [
    ("linear", None, 1.0),
    ("identity", None, 1.0),
    ("conv2d", None, 1.0),
    ("relu", None, 0.5),
    ("leaky_relu", None, (1 + 0.01 ** 2) / 2),
    ("leaky_relu", 0.2, (1 + 0.2 ** 2) / 2),
    ("leaky_relu", -1.0, 1.0),            # |x|
    ("elu", None, elu_second_moment(1.0)),
    ("elu", 0.5, elu_second_moment(0.5)),
    ("selu", None, SELU_SCALE ** 2 * elu_second_moment(SELU_ALPHA)),
])
def test_gain_matches_closed_form(name, param, moment):
    assert varinit.activations.second_moment(name, param=param) == pytest.approx(moment, rel=RTOL)
    assert varinit.gain(name, param) == pytest.approx(1 / math.sqrt(moment), rel=RTOL)


def test_named_gains_that_are_known_numbers():
    assert varinit.gain("relu") == pytest.approx(math.sqrt(2), rel=1e-13)
    # SELU's constants are chosen so that E[selu(z)^2] = 1 (Klambauer et al. 2017)
    assert varinit.gain("selu") == pytest.approx(1.0, rel=1e-12)
    assert varinit.gain("tanh") == pytest.approx(1.5925374197228315, rel=1e-12)


SMOOTH = {
    "tanh": (None, math.tanh, ()),
    "sigmoid": (None, special.expit, ()),
    "gelu": (None, lambda x: x * norm.cdf(x), ()),
    "gelu_tanh": (None, lambda x: 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))), ()),
    "silu": (None, lambda x: x * special.expit(x), ()),
    "swish": (None, lambda x: x * special.expit(x), ()),
    "mish": (None, lambda x: x * math.tanh(np.logaddexp(0, x)), ()),
    "softplus": (None, lambda x: np.logaddexp(0, x), ()),
    "softplus_beta2": (2.0, lambda x: np.logaddexp(0, 2 * x) / 2, ()),
    "hardswish": (None, lambda x: x * min(max(x + 3, 0), 6) / 6, (-3.0, 3.0)),
    "celu_alpha2": (2.0, lambda x: x if x > 0 else 2.0 * math.expm1(x / 2.0), (0.0,)),
    "relu6": (None, lambda x: min(max(x, 0.0), 6.0), (0.0, 6.0)),
    "hardtanh": (None, lambda x: min(max(x, -1.0), 1.0), (-1.0, 1.0)),
    "hardsigmoid": (None, lambda x: min(max(x / 6 + 0.5, 0.0), 1.0), (-3.0, 3.0)),
    "softsign": (None, lambda x: x / (1 + abs(x)), (0.0,)),
}


@pytest.mark.parametrize("label", sorted(SMOOTH))
@pytest.mark.parametrize("q", [0.01, 1.0, 7.0])
def test_second_moment_matches_scipy_quad(label, q):
    param, f, kinks = SMOOTH[label]
    name = label.split("_beta")[0].split("_alpha")[0]
    expected = scipy_expectation(lambda x: f(x) ** 2, q, kinks or (0.0,))
    assert varinit.activations.second_moment(name, q, param) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("name,param", [(n, None) for n in varinit.activations.NAMES]
                         + [("leaky_relu", 0.3), ("elu", 0.7), ("softplus", 3.0), ("celu", 0.5)])
def test_closed_form_derivatives_match_central_differences(name, param):
    f, df = varinit.activations.activation_fn(name, param), varinit.activations.activation_derivative(name, param)
    x = np.linspace(-6, 6, 1201)
    kinks = np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 6.0])
    x = x[np.min(np.abs(x[:, None] - kinks), axis=1) > 1e-3]  # off the kinks
    h = 1e-6
    numeric = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(df(x), numeric, rtol=1e-6, atol=1e-7)


def test_activation_fn_values_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.linspace(-8, 8, 401)
    t = torch.from_numpy(x)
    pairs = {
        "relu": F.relu(t), "tanh": torch.tanh(t), "sigmoid": torch.sigmoid(t), "gelu": F.gelu(t),
        "gelu_tanh": F.gelu(t, approximate="tanh"), "silu": F.silu(t), "mish": F.mish(t),
        "elu": F.elu(t), "selu": F.selu(t), "softplus": F.softplus(t), "hardswish": F.hardswish(t),
        "celu": F.celu(t), "relu6": F.relu6(t), "hardtanh": F.hardtanh(t),
        "hardsigmoid": F.hardsigmoid(t), "softsign": F.softsign(t),
    }
    for name, expected in pairs.items():
        np.testing.assert_allclose(varinit.activations.activation_fn(name)(x), expected.numpy(), rtol=1e-12,
                                   atol=1e-14, err_msg=name)
    np.testing.assert_allclose(varinit.activations.activation_fn("leaky_relu", 0.2)(x),
                               F.leaky_relu(t, 0.2).numpy(), rtol=1e-15)


def test_a_divergent_expectation_stops_halving_and_strict_names_it():
    # E[1/(x + eps)^2] over a Gaussian diverges: its panels kept doubling for 40 halvings
    # (hundreds of thousands of panels; a linear-attention model's init ran for minutes)
    from varinit.quadrature import MAX_OPEN_PANELS, DivergentIntegral, expectation
    calls = []

    def pole(x):
        calls.append(x.size)
        return (1.0 / (x + 1e-6)) ** 2

    with pytest.raises(DivergentIntegral, match="does not converge"):
        expectation(pole, 0.01, strict=True)
    calls.clear()
    assert expectation(pole, 0.01) > 1e8
    assert max(calls) <= 2 * 20 * MAX_OPEN_PANELS   # 20 nodes per panel, both halves
    # undeclared kinks still converge under strict: |x - 0.3| and a jump at -1
    got = expectation(lambda x: np.abs(x - 0.3) + (x > -1.0), 1.0, strict=True)
    expected = scipy_expectation(lambda x: abs(x - 0.3) + (x > -1.0), 1.0, (0.3, -1.0))
    assert got == pytest.approx(expected, rel=1e-10)


def test_gaussian_expectation_kinked_and_scaled():
    assert varinit.quadrature.gaussian_expectation(lambda x: np.maximum(x, 0) ** 2) == pytest.approx(0.5, rel=1e-13)
    for q in (1e-6, 0.3, 25.0, 1e6):
        assert varinit.quadrature.gaussian_expectation(np.abs, q) == pytest.approx(math.sqrt(2 * q / math.pi), rel=1e-12)
        assert varinit.quadrature.gaussian_expectation(lambda x: x ** 4, q) == pytest.approx(3 * q * q, rel=1e-12)
    # a kink away from 0, declared: relu6
    relu6_sq = lambda x: np.clip(x, 0, 6) ** 2
    expected = scipy_expectation(lambda x: min(max(x, 0), 6) ** 2, 9.0, (0.0, 6.0))
    got = varinit.quadrature.gaussian_expectation(relu6_sq, 9.0, breakpoints=(0.0, 6.0))
    assert got == pytest.approx(expected, rel=RTOL)
    # tanh at large q (poles of tanh close to the real axis in z)
    for q in (100.0, 1e4):
        expected = scipy_expectation(lambda x: math.tanh(x) ** 2, q)
        assert varinit.quadrature.gaussian_expectation(lambda x: np.tanh(x) ** 2, q) == pytest.approx(expected, rel=RTOL)
    assert varinit.quadrature.gaussian_expectation(np.cos, 0.0) == 1.0


@pytest.mark.parametrize("c", [0.1, 0.37, -1.13])
def test_undeclared_kinks_and_jumps_still_converge(c):
    # the panels are cut at 0 and on fixed grids only; adaptive halving finds the rest
    kinked = varinit.quadrature.gaussian_expectation(lambda x: np.maximum(x - c, 0) ** 2)
    assert kinked == pytest.approx(scipy_expectation(lambda x: max(x - c, 0) ** 2, 1.0, (c,)), rel=RTOL)
    step = varinit.quadrature.gaussian_expectation(lambda x: (x > c) * 1.0)
    assert step == pytest.approx(norm.sf(c), rel=RTOL)


def test_callables_vectorized_scalar_and_torch_agree():
    expected = varinit.gain("tanh")
    assert varinit.gain(np.tanh) == pytest.approx(expected, rel=1e-13)
    assert varinit.gain(math.tanh) == pytest.approx(expected, rel=1e-13)          # scalar-only
    assert varinit.gain(lambda x: x if x > 0 else 0.0) == pytest.approx(math.sqrt(2), rel=1e-12)
    torch = pytest.importorskip("torch")
    assert varinit.gain(torch.tanh) == pytest.approx(expected, rel=1e-13)
    assert varinit.gain(torch.nn.GELU()) == pytest.approx(varinit.gain("gelu"), rel=1e-12)
    # a callable that returns an array of the wrong shape is evaluated per element instead
    assert varinit.gain(lambda x: float(np.sum(np.tanh(x)))) == pytest.approx(expected, rel=1e-13)


def test_calculate_gain_keeps_torch_table():
    torch = pytest.importorskip("torch")
    for name in ("linear", "conv2d", "sigmoid", "tanh", "relu", "selu"):
        assert varinit.calculate_gain(name) == torch.nn.init.calculate_gain(name)
    assert varinit.calculate_gain("tanh") == 5 / 3 and abs(varinit.gain("tanh") - 5 / 3) > 0.07
    assert varinit.calculate_gain("selu") == 0.75 and varinit.gain("selu") == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation 'nope' is not known"):
        varinit.gain("nope")
    with pytest.raises(ValueError, match="takes no param"):
        varinit.gain("tanh", 0.5)
    with pytest.raises(ValueError, match="beta of softplus"):
        varinit.gain("softplus", 0.0)
    with pytest.raises(TypeError, match="negative_slope"):
        varinit.gain("leaky_relu", "0.1")
    with pytest.raises(TypeError, match="activation must be a name"):
        varinit.gain(3)
    with pytest.raises(ValueError, match="E\\[f\\(z\\)\\^2\\] is 0"):
        varinit.gain(lambda x: 0 * x)
    with pytest.raises(ValueError, match="q must be a finite number >= 0"):
        varinit.quadrature.gaussian_expectation(np.tanh, -1.0)
    with pytest.raises(ValueError, match="non-finite"):
        with np.errstate(invalid="ignore", divide="ignore"):
            varinit.quadrature.gaussian_expectation(np.log)  # NaN for x < 0
    with pytest.raises(TypeError, match="could not be evaluated"):
        varinit.quadrature.gaussian_expectation(lambda x: "a" + x)
