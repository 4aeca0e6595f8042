"""Forward signal through deep stacks: the matching recipe keeps it in a band, others drift.

A ReLU stack of width n and depth L initialized by He keeps E[h^2] exactly in
expectation, but one stack's log-variance wanders with standard deviation about
sqrt(5 L / n) (Hanin & Rolnick 2018): ~1 for L = 50, n = 256. The He band is therefore
6 of those, a factor e^6 ~ 400 either way; Xavier (2^-50) and N(0, 1) (128^50) miss it by
more than 1e10, so neither outcome is near the threshold.
"""
import math

import numpy as np
import pytest

import varinit

WIDTH, BATCH, DEPTH = 256, 512, 50


def inputs(seed=0):
    return np.random.default_rng(seed).standard_normal((BATCH, WIDTH))


def mlp_variances(init, activation="relu", seed=1):
    """Mean square of the pre-activations after each of DEPTH layers."""
    f = varinit.activations.activation_fn(activation)
    g = varinit.Generator(seed)
    x = inputs()
    out = []
    for _ in range(DEPTH):
        w = init(np.empty((WIDTH, WIDTH)), g)
        h = x @ w.T
        out.append(float(np.mean(h * h)))
        x = f(h)
    return np.array(out)


BAND = math.exp(6 * math.sqrt(5 * DEPTH / WIDTH))


def test_he_relu_keeps_variance_xavier_vanishes_unit_normal_explodes():
    # raw N(0, 1) inputs: the first pre-activations have Var 2, which He then preserves
    he = mlp_variances(lambda w, g: varinit.kaiming_normal_(w, nonlinearity="relu", generator=g))
    assert np.all((he > 2 / BAND) & (he < 2 * BAND)), he[[0, 9, 19, 29, 39, 49]]
    # Xavier on a square layer has Var = 1/n: ReLU halves the signal every layer (2^-49 ~ 2e-15)
    xavier = mlp_variances(lambda w, g: varinit.xavier_normal_(w, generator=g))
    assert xavier[-1] < 2 * 0.5 ** (DEPTH - 1) * BAND < 2 / BAND
    # N(0, 1) multiplies it by n/2 = 128 every layer
    unit = mlp_variances(lambda w, g: varinit.normal_(w, 0.0, 1.0, generator=g))
    assert unit[9] > 1e18


def test_gain_fixed_point_attracts_for_tanh_and_selu_repels_for_gelu():
    """gain(f) makes E[h^2] = 1 a fixed point of V(q) = gain^2 E[f(sqrt(q) z)^2].

    For tanh and SELU, V(q)/q decreases through 1 there: the layers pull E[h^2] back
    to 1 (spread over 6 seeds: ~3 %, band +-25 %). For GELU it increases (V ~ gain^2 q/2
    = 1.18 q for large q): started at q = 2.35 (raw inputs), the signal runs away, as the
    mean-field map predicts.
    """
    for name in ("tanh", "selu"):
        gain = varinit.gain(name)
        v = mlp_variances(lambda w, g: varinit.kaiming_normal_(w, nonlinearity="linear", generator=g) * gain,
                          activation=name)
        assert np.all((v[10:] > 0.75) & (v[10:] < 1.33)), (name, v[[0, 10, 49]])
    gain = varinit.gain("gelu")
    v = mlp_variances(lambda w, g: varinit.kaiming_normal_(w, nonlinearity="linear", generator=g) * gain,
                      activation="gelu")
    assert v[-1] > 100


def test_deep_tanh_net_settles_at_the_mean_field_fixed_point():
    # Poole et al. (2016)'s (sigma_w, sigma_b) = (1.5, 0.05); over 10 seeds the final
    # E[h^2] / q* had a spread of 1.5 %: 10 % is > 6 of those.
    sigma_w, sigma_b = 1.5, 0.05
    q_star, _ = varinit.diagnostics.criticality("tanh", sigma_w, sigma_b)
    g = varinit.Generator(3)
    x = inputs()
    for _ in range(30):
        w = varinit.normal_(np.empty((WIDTH, WIDTH)), 0.0, sigma_w / math.sqrt(WIDTH), generator=g)
        b = varinit.normal_(np.empty(WIDTH), 0.0, sigma_b, generator=g)
        h = x @ w.T + b
        x = np.tanh(h)
    assert float(np.mean(h * h)) == pytest.approx(q_star, rel=0.10)


def residual_variances(scale, depth=DEPTH, seed=2):
    """x <- x + s * W2 relu(W1 x) with He init: each branch has the variance of its input."""
    g = varinit.Generator(seed)
    x = inputs()
    for _ in range(depth):
        w1 = varinit.kaiming_normal_(np.empty((WIDTH, WIDTH)), nonlinearity="relu", generator=g)
        w2 = varinit.kaiming_normal_(np.empty((WIDTH, WIDTH)), nonlinearity="linear", generator=g)
        x = x + scale * (np.maximum(x @ w1.T, 0) @ w2.T)
    return float(np.mean(x * x))


def test_residual_depth_scaling():
    # no scaling: variance doubles per block (2^50)
    assert residual_variances(1.0) > 1e12
    # gpt2 with one branch per block (L = DEPTH / 2 blocks of two): (1 + 1/DEPTH)^DEPTH -> e
    s = varinit.recipes.depth_scale("gpt2", DEPTH // 2)
    expected = (1 + s * s) ** DEPTH
    assert residual_variances(s) == pytest.approx(expected, rel=0.3)   # spread over 8 seeds: 3.7 %
    assert expected < math.e
    # fixup with two layers per branch scales each of them by L^(-1/2): branch Var ~ 1/L^2
    f = varinit.recipes.depth_scale("fixup", DEPTH, layers_per_branch=2)
    # (spread over 4 seeds: 0.03 %, offset 0.2 %: higher-order terms)
    assert residual_variances(f * f) == pytest.approx((1 + f ** 4) ** DEPTH, rel=0.02)
