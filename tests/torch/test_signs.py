"""signs.one_signed: the moments of a function of a value of one sign, over a Gamma law of
its magnitude, against the closed forms of exp(-Y) for Y ~ Gamma(k, theta):
E[exp(-sY)] = (1 + s theta)^-k."""
import math

import numpy as np
import pytest

from varinit.torch.moment_rules import Moments
from varinit.torch.signs import one_signed


@pytest.mark.parametrize("mean, std, wide", [(13.0, 9.0, True), (0.5, 2.0, True), (2.0, 0.1, False),
                                             (0.05, 0.02, False)])
def test_exp_of_a_nonpositive_value_has_the_gamma_law_s_moments(mean, std, wide):
    k, theta = (mean / std) ** 2, std * std / mean
    moments, grad = one_signed(np.exp, Moments(-mean, mean * mean + std * std), -1)
    assert moments.mean == pytest.approx((1 + theta) ** -k, rel=1e-6)
    assert moments.second == pytest.approx((1 + 2 * theta) ** -k, rel=1e-6)
    assert grad == pytest.approx((1 + 2 * theta) ** -k, rel=1e-5)   # exp' = exp
    # a wide Gaussian with those moments gives E[exp(2x)] = exp(-2 mean + 2 std^2), far off;
    # a narrow one is close to the Gamma law
    gaussian = math.exp(-2 * mean + 2 * std * std)
    assert math.isclose(moments.second, gaussian, rel_tol=0.05) != wide


def test_a_value_without_spread_or_mean_has_no_one_signed_law():
    assert one_signed(np.exp, Moments(-2.0, 4.0), -1) is None
    assert one_signed(np.exp, Moments(0.0, 1.0), 1) is None
