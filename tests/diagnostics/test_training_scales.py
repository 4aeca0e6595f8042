"""Seed-theory helpers: Adam's lr = rho * sigma, the critical input scale, alpha^(L/2)."""
import math

import numpy as np
import pytest

import varinit
from varinit.diagnostics import mlp_spec
from varinit.layers import backward, forward


def test_adam_lr_moves_weights_by_rho_of_their_std_on_the_first_step():
    sigma, rho = 0.05, 0.02
    lr = varinit.diagnostics.adam_lr(sigma, rho)
    assert lr == pytest.approx(rho * sigma)
    w = varinit.normal_(np.empty((512, 512)), 0.0, sigma, varinit.Generator(1))
    g = varinit.normal_(np.empty((512, 512)), 0.0, 3.7, varinit.Generator(2))
    # Adam's first step: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected to g and g^2.
    m_hat, v_hat = g, g * g
    step = lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    relative = np.sqrt(np.mean(step ** 2)) / np.sqrt(np.mean(w ** 2))
    # RMS(w) / sigma has relative sd 1 / sqrt(2 * 262144) = 0.14%: 1% is 7 of those.
    assert relative == pytest.approx(rho, rel=0.01)
    with pytest.raises(ValueError, match="rho must be a finite number > 0"):
        varinit.diagnostics.adam_lr(0.1, rho=0.0)
    with pytest.raises(TypeError, match="init_std must be a real number"):
        varinit.diagnostics.adam_lr("0.1")


def _relative_output_change(fan_in, fan_out, batch, c, lr, seed):
    """|dW x_1| / |W x_1| after one SGD step on a mean loss whose output gradients are N(0, 1)."""
    gen = varinit.Generator(seed)
    sigma = math.sqrt(2.0 / fan_in)
    w = varinit.normal_(np.empty((fan_out, fan_in)), 0.0, sigma, gen)
    x = c * varinit.normal_(np.empty((batch, fan_in)), 0.0, 1.0, gen)
    delta = varinit.normal_(np.empty((batch, fan_out)), 0.0, 1.0, gen)
    dw = -(lr / batch) * delta.T @ x
    return np.linalg.norm(dw @ x[0]) / np.linalg.norm(w @ x[0]), sigma


@pytest.mark.parametrize("batch", [1, 4])
def test_critical_input_scale_makes_the_first_step_as_large_as_the_output(batch):
    fan_in, fan_out, lr = 2048, 1024, 0.01
    sigma = math.sqrt(2.0 / fan_in)
    c_star = varinit.diagnostics.critical_input_scale(sigma, fan_in, lr, grad_rms=1.0, batch=batch)
    assert c_star == pytest.approx(batch * sigma / (lr * math.sqrt(fan_in)))
    ratio, _ = _relative_output_change(fan_in, fan_out, batch, c_star, lr, seed=batch)
    # |delta| and |W x| have relative sd ~2.2% each (1/sqrt(2 * 1024)), |x| 1.1%, the batch cross
    # terms add sqrt(3 / 2048) = 3.8% in quadrature (+0.07%): 20% is > 6 sd of their combination.
    assert ratio == pytest.approx(1.0, rel=0.2)
    # the ratio is exactly linear in c (same draws, inputs scaled)
    doubled, _ = _relative_output_change(fan_in, fan_out, batch, 2 * c_star, lr, seed=batch)
    assert doubled == pytest.approx(2 * ratio, rel=1e-12)
    assert varinit.diagnostics.critical_input_scale(sigma, fan_in, lr, tolerance=0.1) == pytest.approx(0.1 * c_star / batch)


def test_gradient_norm_growth_is_exact_for_relu_networks():
    depth, alpha = 12, 1.3
    assert varinit.diagnostics.gradient_norm_growth(alpha, depth) == pytest.approx(alpha ** 6)
    layers = mlp_spec(depth=depth, width=64, activation="relu", init="kaiming_normal", seed=9)
    x = varinit.normal_(np.empty((32, 64)), 0.0, 1.0, varinit.Generator(3))
    g = varinit.normal_(np.empty((32, 64)), 0.0, 1.0, varinit.Generator(4))
    _, base = backward(layers, forward(layers, x)[0], g)
    for a in (alpha, 0.7):
        hot = [type(l)(l.weight * math.sqrt(a), l.bias, l.activation) for l in layers]
        _, grad = backward(hot, forward(hot, x)[0], g)
        measured = np.linalg.norm(grad) / np.linalg.norm(base)
        assert measured == pytest.approx(varinit.diagnostics.gradient_norm_growth(a, depth), rel=1e-10)
    assert varinit.diagnostics.gradient_norm_growth(1e10, 10**6) == math.inf
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        varinit.diagnostics.gradient_norm_growth(-1.0, 3)
