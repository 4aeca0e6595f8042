"""Scales of the first training steps that follow from the init: learning rate, input scale, depth.

- adam_lr: Adam's learning rate from the init std, lr = rho * sigma.
- critical_input_scale: the input scale at which one SGD step on a dense
  layer changes the layer's output by as much as the output itself.
- gradient_norm_growth: how much an init alpha times too hot (in variance)
  inflates the input gradient of an L-layer network: alpha^(L/2).
"""
from __future__ import annotations

import math

from .. import _validate


def adam_lr(init_std: float, rho: float = 0.02) -> float:
    """Adam's learning rate from the init: lr = rho * sigma for weights of std sigma.

    Adam's update m / sqrt(v) has magnitude about 1 per coordinate whatever
    the gradient's scale (exactly 1 on the first step, where it is sign(g)),
    so a step moves every weight by about lr. Relative to the weights' own
    size sigma, one step changes the matrix by lr / sigma = rho in RMS: rho is
    the fraction of the init that one step rewrites. Tuned values sit around
    rho = 0.01 to 0.03 (GPT-2: sigma 0.02, lr 6e-4, rho 0.03; He at width
    512: sigma 0.0625, lr 1e-3, rho 0.016); the rule carries a tuned rho
    across widths, where sigma ~ 1 / sqrt(fan_in) changes (compare muP).

    Parameters
    ----------
    init_std : float
        sigma, > 0.
    rho : float, default 0.02
        The fraction of the init one step rewrites, > 0.

    Returns
    -------
    float

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: a method for stochastic optimization",
       ICLR 2015, arXiv:1412.6980.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> print(f"{varinit.diagnostics.adam_lr(np.sqrt(2 / 512), rho=0.02):.3g}")     # He at width 512
    0.00125
    """
    return _validate.real(rho, "rho", _validate.POSITIVE) * _validate.real(init_std, "init_std", _validate.POSITIVE)


def critical_input_scale(weight_std: float, fan_in: int, lr: float, grad_rms: float = 1.0, batch: int = 1,
                         tolerance: float = 1.0) -> float:
    """The input scale c* above which one SGD step on a dense layer changes its output by more than `tolerance` times the output.

    Derivation. Layer y = W x, W (fan_out, fan_in) with i.i.d. entries of std
    sigma; inputs whose entries have RMS c; a loss gradient at the output
    whose entries have RMS g per example, independent of c. With a mean loss
    over a batch of B examples, SGD moves W by dW = -(lr / B) sum_b delta_b
    x_b^T. For one example x_1, the term of dW x_1 from x_1 itself has norm
    (lr / B) g sqrt(fan_out) fan_in c^2, and the others are smaller by
    sqrt((B - 1) / fan_in) (independent inputs), negligible when B <<
    fan_in. The output has norm sigma sqrt(fan_out) sqrt(fan_in) c. So
    norm(dW x_1) / norm(W x_1) = lr g sqrt(fan_in) c / (B sigma), linear in c, and
    setting it to `tolerance` gives

        c* = tolerance B sigma / (lr g sqrt(fan_in)).

    With He's sigma = sqrt(2 / fan_in): c* = tolerance B sqrt(2) / (lr g
    fan_in). Assumptions: plain SGD (Adam's sign-like first step makes the
    ratio independent of c), independent zero-mean inputs, B << fan_in.

    Parameters
    ----------
    weight_std : float
        sigma, > 0.
    fan_in : int
        The layer's inputs.
    lr : float
        The SGD learning rate, > 0.
    grad_rms : float, default 1
        g, the RMS of the output gradient's entries, > 0.
    batch : int, default 1
        B.
    tolerance : float, default 1
        The relative change of the output allowed, > 0.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, varinit
    >>> c = varinit.diagnostics.critical_input_scale(np.sqrt(2 / 784), 784, lr=0.1)
    >>> print(f"{c:.3f}")       # raw pixels in [0, 255] (RMS ~100) are far above it
    0.018
    """
    sigma = _validate.real(weight_std, "weight_std", _validate.POSITIVE)
    n = _validate.real(fan_in, "fan_in", _validate.POSITIVE)
    lr = _validate.real(lr, "lr", _validate.POSITIVE)
    g = _validate.real(grad_rms, "grad_rms", _validate.POSITIVE)
    b = _validate.integer(batch, "batch", minimum=1)
    tol = _validate.real(tolerance, "tolerance", _validate.POSITIVE)
    denominator = lr * g * math.sqrt(n)
    return tol * b * sigma / denominator if denominator else math.inf  # underflowed: no finite c*


def gradient_norm_growth(alpha: float, depth: int) -> float:
    """The factor alpha^(L/2) by which an init alpha times too hot (in variance) inflates the input gradient's norm.

    Each of the L layers then multiplies the backward signal's variance by chi
    = alpha instead of 1 (chi = sigma_w^2 E[f'(z)^2] is linear in sigma_w^2),
    so the gradient's variance grows by alpha^L and its norm by alpha^(L/2);
    alpha < 1 (too cold) shrinks it the same way. Exact for positively
    homogeneous activations (ReLU, leaky ReLU, linear) without biases, where
    scaling every weight by sqrt(alpha) scales the network's Jacobian by
    alpha^(L/2); to first order in log(alpha) otherwise.

    Parameters
    ----------
    alpha : float
        The ratio of the init's variance to the critical one, > 0.
    depth : int
        L, the number of layers.

    Returns
    -------
    float

    References
    ----------
    .. [1] S. S. Schoenholz, J. Gilmer, S. Ganguli and J. Sohl-Dickstein, "Deep
       information propagation", ICLR 2017, arXiv:1611.01232 (chi as the
       backward signal's factor per layer).

    Examples
    --------
    >>> import varinit
    >>> print(f"{varinit.diagnostics.gradient_norm_growth(1.1, 50):.2f}")   # 10% too much variance, 50 layers
    10.83
    """
    alpha = _validate.real(alpha, "alpha", _validate.POSITIVE)
    depth = _validate.integer(depth, "depth", minimum=0)
    try:
        return float(alpha ** (depth / 2.0))
    except OverflowError:
        return math.inf
