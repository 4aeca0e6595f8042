"""Mean-field fixed points and chi1 against closed forms (ReLU, linear, erf) and scipy."""
import math

import numpy as np
import pytest
from scipy import integrate, optimize, special
from scipy.stats import norm

import varinit


def erf_second_moment(q):
    # E[erf(sqrt(q) z)^2] = (2/pi) arcsin(2q / (1 + 2q))  (Williams 1997)
    return 2 / math.pi * math.asin(2 * q / (1 + 2 * q))


def erf_chi1_factor(q):
    # erf'(x) = 2/sqrt(pi) e^{-x^2}:  E[erf'(sqrt(q) z)^2] = (4/pi) / sqrt(1 + 4q)
    return 4 / math.pi / math.sqrt(1 + 4 * q)


def test_relu_phases():
    # V(q) = sigma_w^2 q / 2 + sigma_b^2: dies below sqrt(2), explodes above, chi1 = sigma_w^2 / 2
    assert varinit.diagnostics.criticality("relu", 1.3) == (0.0, pytest.approx(1.3 ** 2 / 2, rel=1e-12))
    q, chi1 = varinit.diagnostics.criticality("relu", 1.5)
    assert q == math.inf and chi1 == pytest.approx(1.125, rel=1e-12)
    q, chi1 = varinit.diagnostics.criticality("relu", math.sqrt(2))
    assert q == 1.0 and chi1 == pytest.approx(1.0, rel=1e-12)       # every q is fixed: q0
    q, chi1 = varinit.diagnostics.criticality("relu", 1.2, 0.1)
    assert q == pytest.approx(0.01 / (1 - 0.72), rel=1e-12) and chi1 == pytest.approx(0.72, rel=1e-12)
    assert varinit.diagnostics.criticality("relu", 1.2, 0.1, q0=50.0).q_star == pytest.approx(0.01 / 0.28, rel=1e-12)


def test_linear_fixed_point():
    assert varinit.diagnostics.criticality("linear", 0.8, 0.3).q_star == pytest.approx(0.09 / (1 - 0.64), rel=1e-12)
    assert varinit.diagnostics.criticality("linear", 0.8, 0.3).chi1 == pytest.approx(0.64, rel=1e-12)


@pytest.mark.parametrize("sigma_w,sigma_b", [(1.5, 0.05), (2.5, 0.5), (0.9, 0.3), (4.0, 1.0)])
def test_erf_callable_against_closed_form(sigma_w, sigma_b):
    # a callable: f' is a central difference, so this also checks that path
    expected_q = optimize.brentq(
        lambda q: sigma_w ** 2 * erf_second_moment(q) + sigma_b ** 2 - q, 1e-12, 1e3, xtol=1e-15, rtol=1e-14)
    q, chi1 = varinit.diagnostics.criticality(special.erf, sigma_w, sigma_b)
    assert q == pytest.approx(expected_q, rel=1e-10)
    assert chi1 == pytest.approx(sigma_w ** 2 * erf_chi1_factor(expected_q), rel=1e-9)


def test_tanh_against_scipy():
    sigma_w, sigma_b = 1.5, 0.05
    q, chi1 = varinit.diagnostics.criticality("tanh", sigma_w, sigma_b)
    moment = lambda g, q: integrate.quad(lambda z: g(math.sqrt(q) * z) * norm.pdf(z), -np.inf, np.inf,
                                         epsabs=0, epsrel=1e-13, limit=400)[0]
    assert q == pytest.approx(sigma_w ** 2 * moment(lambda x: math.tanh(x) ** 2, q) + sigma_b ** 2, rel=1e-11)
    assert chi1 == pytest.approx(sigma_w ** 2 * moment(lambda x: (1 - math.tanh(x) ** 2) ** 2, q), rel=1e-11)
    assert chi1 > 1  # Poole et al. 2016, Fig. 1: (1.5, 0.05) is in the chaotic phase
    # sigma_b = 0: the signal dies for sigma_w <= 1, chi1 = sigma_w^2 tanh'(0)^2
    assert varinit.diagnostics.criticality("tanh", 0.9) == (0.0, pytest.approx(0.81, rel=1e-12))


def test_critical_sigma_w():
    assert varinit.diagnostics.critical_sigma_w("relu") == pytest.approx(math.sqrt(2), rel=1e-12)
    assert varinit.diagnostics.critical_sigma_w("relu", 0.5) == pytest.approx(math.sqrt(2), rel=1e-12)
    assert varinit.diagnostics.critical_sigma_w("leaky_relu", param=0.2) == pytest.approx(math.sqrt(2 / 1.04), rel=1e-12)
    # chi1 - 1 only touches 0 quadratically above sigma_w = 1: ~1e-7 accuracy
    assert varinit.diagnostics.critical_sigma_w("tanh") == pytest.approx(1.0, abs=1e-6)
    sw = varinit.diagnostics.critical_sigma_w(special.erf, 0.3)
    q = optimize.brentq(lambda q: sw ** 2 * erf_second_moment(q) + 0.09 - q, 1e-12, 1e3, xtol=1e-15)
    assert sw ** 2 * erf_chi1_factor(q) == pytest.approx(1.0, rel=1e-9)
    sw = varinit.diagnostics.critical_sigma_w("tanh", 0.3)
    assert varinit.diagnostics.criticality("tanh", sw, 0.3).chi1 == pytest.approx(1.0, rel=1e-10)
    assert sw > 1  # the critical line bends right as sigma_b grows (Poole et al. 2016, Fig. 1)


def test_no_edge_of_chaos_is_reported_not_invented():
    # GELU, sigma_b = 0.1: along the stable branch chi1 stays < 0.94 until that branch
    # meets the unstable one (sigma_w ~ 1.759); started at q0 = 1 the signal explodes
    # beyond sigma_w = 1.5258 (chi1 -> 1.16) and falls to the stable branch below it
    # (chi1 = 0.62). chi1 = 1 is never reached continuously.
    with pytest.raises(ValueError, match=r"chi1 jumps from 0\.61\d* to 1\.16\d* at sigma_w = 1\.5258"):
        varinit.diagnostics.critical_sigma_w("gelu", 0.1)
    # softplus reaches chi1 = 1 only in the limit q* -> inf at sqrt(2): no jump there
    assert varinit.diagnostics.critical_sigma_w("softplus", 0.1) == pytest.approx(math.sqrt(2), rel=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma_w must be a finite number > 0"):
        varinit.diagnostics.criticality("relu", 0.0)
    with pytest.raises(ValueError, match="sigma_b must be a finite number >= 0"):
        varinit.diagnostics.criticality("relu", 1.0, -0.1)
    with pytest.raises(TypeError, match="sigma_w must be a real number"):
        varinit.diagnostics.criticality("relu", "1")
    with pytest.raises(ValueError, match="no critical sigma_w"):
        varinit.diagnostics.critical_sigma_w(lambda x: np.zeros_like(x) + 1.0)     # f' = 0: chi1 = 0 always


# ---- finite width: the band beside the mean-field line ----------------------------
def test_tanh_at_unit_sigma_w_has_its_fixed_point_at_zero():
    assert varinit.diagnostics.criticality("tanh", 1.0, 0.0).q_star == 0.0
    assert varinit.diagnostics.criticality("tanh", 1.5, 0.0).q_star == pytest.approx(0.79335, rel=1e-4)


def test_he_relu_report_agrees_with_itself_and_with_its_finite_width_band():
    report = varinit.propagate(varinit.diagnostics.mlp_spec(depth=50, width=128, activation="relu"))
    assert report.status == "healthy"
    assert not any("chaotic" in note or "explode" in note for note in report.notes)
    assert "near critical" in report.notes[0]
    deep = report.layers[-1]
    assert deep.act_std < 0.5 * deep.pred_std           # the mean-field line alone disagrees
    low, high = deep.pred_std_band
    assert low < deep.act_std < high                    # the band explains it


@pytest.mark.slow
def test_finite_width_band_holds_most_networks_and_has_the_right_spread():
    logs = []
    for seed in range(60):
        net = varinit.diagnostics.mlp_spec(depth=20, width=64, activation="relu", seed=seed)
        last = varinit.propagate(net, batch=64, seed=seed).layers[-1]
        logs.append(math.log(last.act_std))
    low, high = last.pred_std_band
    inside = sum(math.log(low) < v < math.log(high) for v in logs)
    # Monte Carlo (300 networks): 97.5% inside; 12 or more of 60 outside has probability < 1e-7.
    assert inside >= 48
    # spread: measured 0.84 of the predicted log-std sd (a batch averages part of the
    # per-example fluctuation); no band (sd 0) or a band from the wrong width fails.
    predicted_sd = math.log(high / low) / 4
    assert 0.45 * predicted_sd < float(np.std(logs)) < 1.25 * predicted_sd
