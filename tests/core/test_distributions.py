"""The samplers produce the distributions they claim: KS and moment tests.

Thresholds (fixed seeds, so each test is deterministic; the numbers below say
how unlikely a failure would be for a correct sampler on a fresh seed):
- KS: p-value > 1e-7, i.e. a correct sampler fails with probability 1e-7.
- moments: sample mean and variance within 6 standard errors of the exact
  values (two-sided normal tail at 6 SE: 2e-9 each).
With n = 1e6 the KS test rejects a 5% error in the standard deviation
(statistic ~0.01 against a critical value ~0.003) and the variance test a 5%
variance error (~35 standard errors); test_tests_have_power shows both.
"""
import math

import numpy as np
import pytest
from scipy import special, stats

import varinit
from varinit import _core

N = 1_000_000
KS_MIN_PVALUE = 1e-7
MOMENT_SE = 6.0
SEED = 20261122


def ks_pvalue(sample, dist):
    return stats.kstest(sample.astype(np.float64), fast_cdf(dist)).pvalue


def fast_cdf(dist):
    """dist's CDF; a truncated normal's from special.ndtr (SciPy's truncnorm.cdf takes
    seconds per 1e6 points), using the tail on the side the interval is, for precision."""
    if dist.dist.name != "truncnorm":
        return dist.cdf
    alpha, beta = dist.args
    loc, scale = dist.kwds["loc"], dist.kwds["scale"]
    if alpha >= 0:  # upper tail: survival functions keep their relative precision
        top, mass = special.ndtr(-alpha), special.ndtr(-alpha) - special.ndtr(-beta)
        return lambda x: (top - special.ndtr(-(x - loc) / scale)) / mass
    bottom, mass = special.ndtr(alpha), special.ndtr(beta) - special.ndtr(alpha)
    return lambda x: (special.ndtr((x - loc) / scale) - bottom) / mass


def moment_z_scores(sample, dist):
    """(z of the sample mean, z of the sample variance) against dist's exact moments."""
    x = sample.astype(np.float64)
    mean, var, kurt = (float(v) for v in dist.stats(moments="mvk"))
    mu4 = (kurt + 3.0) * var * var
    z_mean = (x.mean() - mean) / math.sqrt(var / x.size)
    z_var = (x.var() - var) / math.sqrt((mu4 - var * var) / x.size)
    return z_mean, z_var


def assert_distributed_as(sample, dist):
    assert ks_pvalue(sample, dist) > KS_MIN_PVALUE
    z_mean, z_var = moment_z_scores(sample, dist)
    assert abs(z_mean) < MOMENT_SE, z_mean
    assert abs(z_var) < MOMENT_SE, z_var


def truncnorm(mean, std, a, b):
    return stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)


def test_fast_cdf_agrees_with_scipy_truncnorm():
    x = np.linspace(-7.0, 6.0, 1001)
    for a, b in ((-2.0, 2.0), (4.0, 5.0), (-math.inf, -6.0), (2.0, 5.0)):
        dist = truncnorm(0.5, 1.5, a, b)
        np.testing.assert_allclose(fast_cdf(dist)(x).clip(0, 1), dist.cdf(x), rtol=1e-9, atol=1e-12)


CASES = {
    "uniform": (varinit.uniform_, dict(a=-2.0, b=3.0), stats.uniform(-2.0, 5.0)),
    "normal": (varinit.normal_, dict(mean=0.5, std=2.0), stats.norm(0.5, 2.0)),
    "trunc_central": (varinit.trunc_normal_, dict(mean=0.0, std=1.0, a=-2.0, b=2.0),
                      truncnorm(0.0, 1.0, -2.0, 2.0)),
    "trunc_far_tail_4_5": (varinit.trunc_normal_, dict(mean=0.0, std=1.0, a=4.0, b=5.0),
                           truncnorm(0.0, 1.0, 4.0, 5.0)),
    "trunc_one_sided_below_minus6": (varinit.trunc_normal_, dict(mean=0.0, std=1.0, a=-math.inf, b=-6.0),
                                     truncnorm(0.0, 1.0, -math.inf, -6.0)),
    "trunc_tiny_std": (varinit.trunc_normal_, dict(mean=0.0, std=0.02, a=-0.04, b=0.04),
                       truncnorm(0.0, 0.02, -0.04, 0.04)),
    "trunc_shifted_mean": (varinit.trunc_normal_, dict(mean=3.0, std=0.5, a=2.0, b=5.0),
                           truncnorm(3.0, 0.5, 2.0, 5.0)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_distribution(case, dtype):
    fill, kwargs, dist = CASES[case]
    sample = fill(np.empty(N, dtype), generator=SEED, **kwargs)
    assert_distributed_as(sample, dist)


@pytest.mark.parametrize("case", sorted(c for c in CASES if c.startswith("trunc")))
def test_trunc_normal_stays_inside_bounds(case):
    fill, kwargs, _ = CASES[case]
    for dtype in (np.float32, np.float64):
        sample = fill(np.empty(N // 4, dtype), generator=SEED + 1, **kwargs)
        assert sample.min() >= dtype(kwargs["a"]) and sample.max() <= dtype(kwargs["b"])


def test_uniform_stays_in_half_open_interval():
    for dtype in (np.float32, np.float64):
        sample = varinit.uniform_(np.empty(N, dtype), -2.0, 3.0, generator=SEED)
        assert sample.min() >= -2.0 and sample.max() < 3.0


@pytest.mark.slow
def test_tests_have_power():
    # The same tests must reject a sampler whose std is 5% off, and a 5% variance error.
    sample = varinit.normal_(np.empty(N, np.float32), 0.0, 1.0, generator=SEED)
    assert ks_pvalue(sample, stats.norm(0.0, 1.05)) < KS_MIN_PVALUE
    assert abs(moment_z_scores(sample, stats.norm(0.0, math.sqrt(1.05)))[1]) > MOMENT_SE
    trunc = varinit.trunc_normal_(np.empty(N, np.float32), 0.0, 1.0, -2.0, 2.0, generator=SEED)
    assert ks_pvalue(trunc, truncnorm(0.0, 1.05, -2.0, 2.0)) < KS_MIN_PVALUE
    tail = varinit.trunc_normal_(np.empty(N, np.float32), 0.0, 1.0, 4.0, 5.0, generator=SEED)
    assert ks_pvalue(tail, truncnorm(0.0, 1.05, 4.0, 5.0)) < KS_MIN_PVALUE


@pytest.mark.parametrize("dtype,code", [(np.float32, 0), (np.float64, 1)])
def test_normal_never_exceeds_documented_max_abs_z(dtype, code):
    bound = _core.normal_max_abs_z(code)
    assert bound >= 6.0
    sample = varinit.normal_(np.empty(4 * N, dtype), generator=SEED)
    assert np.abs(sample).max() <= bound


def test_documented_max_abs_z_values():
    # u1 >= 2**-31 (float32) and 2**-53 (float64): radius sqrt(-2 log u1), as computed in
    # float32 / float64 (the C tests check it is the sampler's own value at u1's minimum).
    assert _core.normal_max_abs_z(0) == pytest.approx(math.sqrt(62 * math.log(2)), rel=1e-7)
    assert _core.normal_max_abs_z(0) == float(np.float32(_core.normal_max_abs_z(0)))
    assert _core.normal_max_abs_z(1) == pytest.approx(math.sqrt(106 * math.log(2)), rel=1e-14)


def test_normal_cdf_of_core_matches_scipy():
    for x in (-38.0, -20.0, -6.0, -2.0, -0.5, 0.0, 0.3, 2.0, 7.0):
        assert _core.normal_cdf(x) == pytest.approx(stats.norm.cdf(x), rel=1e-13, abs=1e-300)


def test_truncated_std_constant_matches_scipy():
    mean, var = _core.truncnorm_moments(-2.0, 2.0)
    assert mean == pytest.approx(0.0, abs=1e-15)
    assert math.sqrt(var) == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-13)
