"""Low-precision checks: Gaussian predictions against real casts, min std, int8 rescaling."""
import math

import ml_dtypes
import numpy as np
import pytest
from scipy import special, stats

import varinit
from varinit.diagnostics.mlp import mlp_spec
from varinit.diagnostics.precision import (
    BFLOAT16_OVERFLOW, FLOAT16_OVERFLOW, FLOAT16_SMALLEST_NORMAL, measured_fractions,
    predicted_fractions,
)

N = 1_000_000


def _gaussian(std, seed):
    return varinit.normal_(np.empty(N), 0.0, std, varinit.Generator(seed))


def _within_binomial(measured, predicted, n=N):
    # 6 binomial standard deviations (+1/n for p near 0): a correct prediction fails with p < 2e-9.
    sd = math.sqrt(max(predicted * (1 - predicted), 1.0 / n) / n)
    return abs(measured - predicted) <= 6 * sd + 1.0 / n


def test_thresholds_are_where_the_casts_change():
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(FLOAT16_OVERFLOW))
        assert np.isinf(np.array(BFLOAT16_OVERFLOW).astype(np.float32).astype(ml_dtypes.bfloat16))
    assert np.isfinite(np.float16(np.nextafter(FLOAT16_OVERFLOW, 0)))
    bf = ml_dtypes.bfloat16
    below = np.nextafter(np.float32(BFLOAT16_OVERFLOW), np.float32(0))
    assert np.isfinite(np.array(below).astype(bf))
    assert FLOAT16_SMALLEST_NORMAL == float(np.finfo(np.float16).smallest_normal)


@pytest.mark.parametrize("fmt, std, big, small", [
    ("float16", 3e4, 65520.0, 2.0 ** -14),
    ("float16", 1e-4, 65520.0, 2.0 ** -14),
    ("bfloat16", 2e38, BFLOAT16_OVERFLOW, 2.0 ** -126),
    ("bfloat16", 1e-38, BFLOAT16_OVERFLOW, 2.0 ** -126),
    ("int8", 2.0, 4.0, 4.0 / 127 / 2),
])
def test_predicted_matches_scipy_and_measured_matches_predicted(fmt, std, big, small):
    over, under = predicted_fractions(0.0, std, fmt)
    assert over == pytest.approx(2 * stats.norm.sf(big / std), rel=1e-9, abs=1e-300)
    assert under == pytest.approx(special.erf(small / (std * math.sqrt(2))), rel=1e-9, abs=1e-300)
    m_over, m_under = measured_fractions(_gaussian(std, 11), fmt)
    assert _within_binomial(m_over, over)
    assert _within_binomial(m_under, under)
    assert max(over, under) > 0.02       # each case tests a fraction that is really there


def test_int8_quantizer_and_input_scale():
    x = np.array([-5.0, -4.0, -0.01, 0.0, 0.0157, 0.0158, 1.0, 4.0, 9.0])
    codes = varinit.diagnostics.quantize_int8(x, clip=4.0)
    assert codes.dtype == np.int8
    assert codes.tolist() == [-127, -127, 0, 0, 0, 1, 32, 127, 127]
    # a = clip / (std * z_{1 - p/2}); then P(|a x| > clip) = p.
    a = varinit.diagnostics.int8_input_scale(3.0, clip=4.0, max_saturation=1e-3)
    assert a == pytest.approx(4.0 / (3.0 * stats.norm.isf(5e-4)), rel=1e-12)
    saturated = np.count_nonzero(np.abs(a * _gaussian(3.0, 12)) > 4.0) / N
    assert _within_binomial(saturated, 1e-3)
    with pytest.raises(ValueError, match="max_saturation must be in"):
        varinit.diagnostics.int8_input_scale(1.0, max_saturation=1.5)
    with pytest.raises(ValueError, match="std must be a finite number > 0"):
        varinit.diagnostics.int8_input_scale(0.0)


def test_min_weight_std_relu_closed_form_and_mean_field():
    floor = FLOAT16_SMALLEST_NORMAL
    s = varinit.diagnostics.min_weight_std(50, 512, "relu")
    assert s == pytest.approx(math.sqrt(2 / 512) * floor ** (1 / 50), rel=1e-9)
    # tanh: the mean-field RMS of the last layer of a network drawn with that std sits at the floor
    s_tanh = varinit.diagnostics.min_weight_std(10, 256, "tanh")
    net = [(np.full((256, 256), s_tanh), None, "tanh") for _ in range(10)]   # second moment exactly s^2
    report = varinit.propagate(net, np.ones((1, 256)))
    last = report.layers[-1]
    assert math.hypot(last.pred_mean, last.pred_std) == pytest.approx(floor, rel=1e-9)
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        varinit.diagnostics.min_weight_std(0, 10)


def test_propagation_precision_columns_predicted_vs_measured():
    # Xavier ReLU at depth 30: the pre-activations shrink by sqrt(2) per layer and cross float16's
    # smallest normal around layer 25; the first layer's pre-activations are exactly Gaussian given W.
    report = varinit.propagate(mlp_spec(depth=30, width=256, activation="relu", init="xavier_normal"),
                               batch=256, precision=True)
    entries = 256 * 256
    for layer in report.layers:
        checks = {c.format: c for c in layer.precision["activation"]}
        f16 = checks["float16"]
        # Across layers each unit's variance differs a little from the pooled one (a Gaussian
        # mixture); 6 binomial sd plus 15% of the prediction covers it.
        slack = 6 * math.sqrt(max(f16.predicted_underflow, 1 / entries) / entries) + 0.15 * f16.predicted_underflow
        assert abs(f16.measured_underflow - f16.predicted_underflow) <= slack + 1 / entries
        assert checks["bfloat16"].measured_underflow == 0.0
    assert report.layers[-1].precision["activation"][0].measured_underflow > 0.5
    assert report.layers[0].precision["activation"][0].measured_underflow < 1e-3
    text = report.precision_text(every=10)
    assert "float16 under" in text and len(text.splitlines()) == 2 + 1 + 2 * 4


def test_min_weight_std_with_a_fraction_holds_in_that_fraction_of_finite_networks():
    from varinit.layers import forward

    floor, depth, width = 1e-3, 10, 32
    expected = varinit.diagnostics.min_weight_std(depth, width, "relu", floor=floor)
    safe = varinit.diagnostics.min_weight_std(depth, width, "relu", floor=floor, fraction=0.9)
    assert safe > expected

    def holds(std):
        count = 0
        for seed in range(200):
            net = varinit.diagnostics.mlp_spec(depth=depth, width=width, init=std, seed=seed)
            x = np.random.default_rng(seed).standard_normal((64, width))
            _, post = forward(net, x)
            count += min(float(np.sqrt(np.mean(a * a))) for a in post) >= floor
        return count / 200

    # 0.9 promised; at least 0.8 of 200 fails with probability < 1e-6 when it holds
    assert holds(safe) >= 0.8
    # the expected-value bound is a median, not a guarantee: clearly fewer networks hold
    assert holds(expected) < holds(safe) - 0.2
