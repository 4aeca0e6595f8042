"""variance_scaling_ / lecun_* (Keras/JAX semantics) and fans with in_axis/out_axis.

Moment checks use 6 standard errors (a correct sampler fails with probability
~2e-9); with n >= 2.5e5 a 5% variance error is >= 9 standard errors away.
"""
import math

import numpy as np
import pytest
from scipy import stats

import varinit

SHAPE = (300, 200, 3)       # (out, in, kernel): fan_in 600, fan_out 900 under torch's rule
FANS = {"fan_in": 600, "fan_out": 900, "fan_avg": 750.0, "fan_geo_avg": math.sqrt(600 * 900)}


def variance_z(x, var, mu4):
    x = x.astype(np.float64)
    return (np.mean(x**2) - var) / math.sqrt((mu4 - var**2) / x.size)


@pytest.mark.parametrize("mode", sorted(FANS))
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "untruncated_normal", "uniform"])
def test_sample_variance_is_scale_over_fan(mode, distribution):
    scale = 2.0
    var = scale / FANS[mode]
    x = varinit.variance_scaling_(np.empty(SHAPE, np.float32), scale, mode, distribution, generator=3)
    assert abs(x.astype(np.float64).mean()) < 6 * math.sqrt(var / x.size)
    if distribution == "uniform":
        limit = math.sqrt(3 * var)
        assert np.abs(x).max() <= limit * (1 + 1e-6)
        mu4 = 9 * var**2 / 5                       # E x^4 of U(-l, l) = l^4 / 5
    elif distribution == "truncated_normal":
        s = math.sqrt(var) / stats.truncnorm(-2, 2).std()   # Keras/JAX: std of the cut normal is sqrt(var)
        assert np.abs(x).max() <= 2 * s * (1 + 1e-6)
        mu4 = stats.truncnorm(-2, 2, scale=s).moment(4)
    else:
        mu4 = 3 * var**2
    assert abs(variance_z(x, var, mu4)) < 6


def test_truncated_variance_without_correction_would_fail():
    # Power: the uncorrected cut normal (std 0.88 of the target) is far outside 6 SE.
    x = varinit.variance_scaling_(np.empty(SHAPE, np.float32), 1.0, "fan_in", "truncated_normal", generator=3)
    var = 1.0 / 600
    wrong = var * stats.truncnorm(-2, 2).var()
    assert abs(variance_z(x, wrong, 3 * wrong**2)) > 6


def test_truncated_std_constant_is_derived_not_pasted():
    assert varinit.init.TRUNCATED_STD == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-13)


def test_lecun_are_variance_scaling_fan_in():
    a = varinit.lecun_normal_(np.empty(SHAPE, np.float32), generator=4)
    b = varinit.variance_scaling_(np.empty(SHAPE, np.float32), 1.0, "fan_in", "truncated_normal", generator=4)
    assert a.tobytes() == b.tobytes()
    a = varinit.lecun_uniform_(np.empty(SHAPE, np.float32), generator=4)
    b = varinit.variance_scaling_(np.empty(SHAPE, np.float32), 1.0, "fan_in", "uniform", generator=4)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape,in_axis,out_axis,want", [
    ((128, 64), 0, 1, (128, 64)),              # (in, out) matrix
    ((128, 64), -2, -1, (128, 64)),
    ((3, 3, 16, 32), 2, 3, (144, 288)),        # HWIO conv kernel: receptive field 9
    ((3, 3, 16, 32), -2, -1, (144, 288)),
    ((4, 5, 6, 7), (0, 1), 3, (20 * 6, 7 * 6)),  # several input axes
    ((10, 20), 1, None, (20, 10)),             # one axis given, 2-D: the other is the other
    ((10, 20), None, 1, (10, 20)),
])
def test_fans_with_axes_follow_jax(shape, in_axis, out_axis, want):
    assert varinit.fans(shape, in_axis=in_axis, out_axis=out_axis) == want


def test_in_out_matrix_gets_the_right_std():
    # A NumPy (in, out) = (1000, 250) matrix: fan_in is 1000, not torch's shape[1] = 250.
    x = varinit.kaiming_normal_(np.empty((1000, 250), np.float32), nonlinearity="relu",
                                in_axis=0, out_axis=1, generator=5)
    var = 2.0 / 1000
    assert abs(variance_z(x, var, 3 * var**2)) < 6
    assert varinit.kaiming_normal_(np.empty((1000, 250), np.float32), nonlinearity="relu",
                                   generator=5).std() > 1.9 * x.std()   # torch's rule, for (out, in)
