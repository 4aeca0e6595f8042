"""keep_prob=, density=, input_var= on every fan-based init.

Weight variances: a sample of n values estimates Var with relative spread at most
sqrt(2 / n) (normal; uniform and truncated normal have lighter tails); 6 of those
bound a correct implementation's error with probability > 1 - 1e-8.
"""
import math

import numpy as np
import pytest

import varinit

OUT, IN = 512, 384
N = OUT * IN
TOL = 6 * math.sqrt(2 / N)

KEEP, DENSITY, INPUT_VAR = 0.8, 0.25, 4.0
ADJUST = dict(keep_prob=KEEP, density=DENSITY, input_var=INPUT_VAR)
FACTOR = KEEP / INPUT_VAR


@pytest.mark.parametrize("init,expected", [
    (lambda w, **k: varinit.kaiming_normal_(w, nonlinearity="relu", **k), 2 / (DENSITY * IN) * FACTOR),
    (lambda w, **k: varinit.kaiming_uniform_(w, nonlinearity="relu", mode="fan_out", **k),
     2 / (DENSITY * OUT) * FACTOR),
    (lambda w, **k: varinit.xavier_normal_(w, **k), 2 / (DENSITY * (IN + OUT)) * FACTOR),
    (lambda w, **k: varinit.xavier_uniform_(w, **k), 2 / (DENSITY * (IN + OUT)) * FACTOR),
    (lambda w, **k: varinit.lecun_normal_(w, **k), 1 / (DENSITY * IN) * FACTOR),
    (lambda w, **k: varinit.lecun_uniform_(w, **k), 1 / (DENSITY * IN) * FACTOR),
    (lambda w, **k: varinit.variance_scaling_(w, 2.0, "fan_avg", "truncated_normal", **k),
     2 / (DENSITY * (IN + OUT) / 2) * FACTOR),
    (lambda w, **k: varinit.variance_scaling_(w, 1.0, "fan_geo_avg", "normal", **k),
     1 / (DENSITY * math.sqrt(IN * OUT)) * FACTOR),
])
def test_every_fan_based_init_applies_the_three_adjustments(init, expected):
    w = init(np.empty((OUT, IN)), generator=21, **ADJUST)
    assert abs(w.var() / expected - 1) < TOL
    plain = init(np.empty((OUT, IN)), generator=21)
    # the same draw, rescaled: the adjustments move the std by exactly sqrt(FACTOR / DENSITY)
    # (uniform values are a + (b - a) u: near 0, rounding is relative to the bound)
    scale = math.sqrt(FACTOR / DENSITY)
    np.testing.assert_allclose(w, plain * scale, rtol=1e-12, atol=1e-14 * scale * np.abs(plain).max())


def test_adjustments_keep_a_real_layer_at_unit_variance():
    """A linear layer (gain 1) after dropout, with a pruning mask, on inputs of variance 4."""
    torch = pytest.importorskip("torch")
    fan_in, units, batch = 1024, 256, 1024
    layer = torch.nn.Linear(fan_in, units, bias=False)
    g = torch.Generator().manual_seed(22)
    x = 2.0 * torch.randn(batch, fan_in, generator=g)          # Var 4
    drop = torch.nn.Dropout(p=1 - KEEP).train()
    mask = (torch.rand(units, fan_in, generator=g) < DENSITY).float()
    varinit.kaiming_normal_(layer.weight, nonlinearity="linear", generator=23, **ADJUST)
    with torch.no_grad():
        torch.manual_seed(24)
        layer.weight.mul_(mask)
        y = layer(drop(x))
    # sum(w^2) over each unit's kept taps: relative spread sqrt(2 / (DENSITY fan_in units))
    # (+ mask spread, same order); batch sampling: sqrt(2 / (batch units)). 6 of each.
    tol = 6 * math.sqrt(3 / (DENSITY * fan_in * units)) + 6 * math.sqrt(2 / (batch * units))
    assert abs(float(y.pow(2).mean()) - 1) < tol
    varinit.kaiming_normal_(layer.weight, nonlinearity="linear", generator=23)
    with torch.no_grad():
        layer.weight.mul_(mask)
        y = layer(drop(x))
    # without them: Var = input_var * density / keep_prob = 1.25
    assert abs(float(y.pow(2).mean()) / (INPUT_VAR * DENSITY / KEEP) - 1) < tol


@pytest.mark.parametrize("key,value,error,message", [
    ("keep_prob", 0.0, ValueError, r"keep_prob must be in \(0, 1\]"),
    ("keep_prob", 1.5, ValueError, r"keep_prob must be in \(0, 1\]"),
    ("density", -0.1, ValueError, r"density must be in \(0, 1\]"),
    ("density", "half", TypeError, "density must be a real number"),
    ("input_var", 0.0, ValueError, "input_var must be a finite number > 0"),
    ("input_var", float("inf"), ValueError, "input_var must be a finite number > 0"),
    ("phase_balanced", 1, TypeError, "phase_balanced must be True or False"),
])
def test_bad_adjustments_leave_the_array_untouched(key, value, error, message):
    w = np.full((8, 8), 7.0)
    for init in (varinit.kaiming_normal_, varinit.xavier_uniform_, varinit.lecun_normal_):
        with pytest.raises(error, match=message):
            init(w, **{key: value})
        assert np.all(w == 7.0)
