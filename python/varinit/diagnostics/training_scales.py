"""Scales of the first training steps that follow from the init: learning rate, input scale, depth.

- adam_lr: Adam's learning rate from the init std, lr = rho * sigma.
- critical_input_scale: the input scale at which one SGD step on a dense
  layer changes the layer's output by as much as the output itself.
- gradient_norm_growth: how much an init alpha times too hot (in variance)
  inflates the input gradient of an L-layer network: alpha^(L/2).
"""
import math

from .. import _validate


def adam_lr(init_std, rho=0.02):
    """Adam learning rate lr = rho * sigma for weights initialized with std sigma.

    Adam's update m / sqrt(v) has magnitude ~1 per coordinate whatever the
    gradient's scale (exactly 1 on the first step, where it is sign(g)), so a
    step moves every weight by ~lr. Relative to the weights' own size sigma,
    one step changes the matrix by lr / sigma = rho in RMS: rho is the
    fraction of the init that one step rewrites. Tuned values sit around
    rho ~ 0.01-0.03 (GPT-2: sigma 0.02, lr 6e-4, rho 0.03; He at width 512:
    sigma 0.0625, lr 1e-3, rho 0.016); the rule transfers a tuned rho across
    widths, where sigma ~ 1 / sqrt(fan_in) changes (cf. muP, Yang et al. 2022).

    Example::

        >>> w = varinit.kaiming_normal_(np.empty((512, 512), np.float32), nonlinearity="relu")
        >>> lr = varinit.diagnostics.adam_lr(np.sqrt(2 / 512), rho=0.02)    # 1.25e-3
    """
    return _validate.real(rho, "rho", _validate.POSITIVE) * _validate.real(init_std, "init_std", _validate.POSITIVE)


def critical_input_scale(weight_std, fan_in, lr, grad_rms=1.0, batch=1, tolerance=1.0):
    """Input scale c* above which one SGD step on a dense layer changes its output by more
    than `tolerance` times the output itself.

    Derivation. Layer y = W x, W (fan_out, fan_in) with i.i.d. entries of std
    sigma; inputs x whose entries have RMS c (unit-RMS data multiplied by c);
    the loss gradient at the output, per example, has entries of RMS g and is
    independent of c (it is fixed by the loss at the output). With a mean
    loss over a batch of B examples, SGD moves W by
        dW = -(lr / B) sum_b delta_b x_b^T.
    For an example x_1 of the batch, dW x_1 = -(lr / B) [delta_1 |x_1|^2 +
    sum_{b>1} delta_b (x_b . x_1)]; the first term has norm
    (lr / B) g sqrt(fan_out) fan_in c^2, the others are smaller by
    sqrt((B - 1) / fan_in) (independent inputs), negligible when B << fan_in.
    The output has norm |W x_1| = sigma sqrt(fan_out) sqrt(fan_in) c. So
        |dW x_1| / |W x_1| = lr g sqrt(fan_in) c / (B sigma),
    linear in c: the gradient grows with c and so does its effect on the
    output, one factor more than the output itself. Setting the ratio to
    `tolerance` gives
        c* = tolerance * B * sigma / (lr * g * sqrt(fan_in)).
    With He's sigma = sqrt(2 / fan_in): c* = tolerance * B sqrt(2) / (lr g fan_in).
    Assumptions: plain SGD (Adam's sign-like first step makes the ratio
    independent of c), independent zero-mean inputs, B << fan_in.

    Example::

        >>> c = varinit.diagnostics.critical_input_scale(np.sqrt(2 / 784), 784, lr=0.1)   # 0.018
        >>> # pixels in [0, 255] (c ~ 100) are far above it: divide them by 255 first.
    """
    sigma = _validate.real(weight_std, "weight_std", _validate.POSITIVE)
    n = _validate.real(fan_in, "fan_in", _validate.POSITIVE)
    lr = _validate.real(lr, "lr", _validate.POSITIVE)
    g = _validate.real(grad_rms, "grad_rms", _validate.POSITIVE)
    b = _validate.integer(batch, "batch", minimum=1)
    tol = _validate.real(tolerance, "tolerance", _validate.POSITIVE)
    denominator = lr * g * math.sqrt(n)
    return tol * b * sigma / denominator if denominator else math.inf  # underflowed: no finite c*


def gradient_norm_growth(alpha, depth):
    """Factor alpha^(L/2) by which an init alpha times too hot inflates the input-gradient norm.

    Each of the L layers then multiplies the backward signal's variance by
    chi = alpha instead of 1 (chi = sigma_w^2 E[f'(z)^2] is linear in
    sigma_w^2), so the gradient's variance grows by alpha^L and its norm by
    alpha^(L/2); alpha < 1 (too cold) shrinks it the same way. Exact for
    positively homogeneous activations (ReLU, leaky ReLU, linear) without
    biases, where scaling every weight by sqrt(alpha) scales the network's
    Jacobian by alpha^(L/2) exactly; to first order in log(alpha) otherwise.

    Example::

        >>> varinit.diagnostics.gradient_norm_growth(1.1, 50)   # 10% too much variance per layer, 50 layers
        10.834705943388395
    """
    alpha = _validate.real(alpha, "alpha", _validate.POSITIVE)
    depth = _validate.integer(depth, "depth", minimum=0)
    try:
        return alpha ** (depth / 2.0)
    except OverflowError:
        return math.inf
