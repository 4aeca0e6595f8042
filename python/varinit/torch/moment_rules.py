"""Moment rules: how each node of a traced model maps the mean and second
moment of one element of its inputs to those of its output.

A tensor is summarized by `Moments(mean, second)`: mu = E[x], nu = E[x^2]
over its elements (and over the random weights); sigma^2 = nu - mu^2. The
rules assume what holds at initialization: weights zero-mean and drawn
independently of everything else, operands of binary ops independent unless
they were fused into one elementwise function of a common source (`fuse`),
pre-activations Gaussian (sums of many independent terms). Parameter
statistics enter as numbers (the mean and mean square of a weight's or a
bias's entries), never as tensors. The formulas and their sources are listed
in moment-rules.md beside DESIGN.md; each function's docstring states its own.

Forward: `affine` with `effective_fan` (linear, conv, conv_transpose at the
actual spatial size), `elementwise` (Gaussian quadrature of any callable,
nonzero mean), `add`, `sub`, `mul`, `scale`, `shift`, `matmul`, `softmax`,
`attention`, `norm`, `batch_norm_eval`, `dropout`, `avg_pool` /
`reduce_mean`, `reduce_sum`, `interpolate`, `max_pool`, `cat`, `embedding`, and
`affine_correlation` (the neighbour correlation that pooling needs).
Backward: `affine_grad` with the effective fan-out; `elementwise` returns
E[g'(z)^2], the factor a gradient's second moment takes through g.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Union, cast

import numpy as np
import torch

from .. import _validate
from ..activations import resolve
from .._typing import AnyActivation, FloatArray, PerAxis
from ..quadrature import expectation

if TYPE_CHECKING:
    from .graph import Graph


class Moments(NamedTuple):
    """Mean and second moment of one element of a tensor."""

    mean: float
    second: float

    @property
    def variance(self) -> float:
        """second - mean^2, clipped at 0 (rounding can take it a hair below)."""
        return max(self.second - self.mean * self.mean, 0.0)


# second < mean^2 by more than this fraction of second is not rounding: a caller error.
_MOMENT_RTOL = 1e-9
# Moments, or a (mean, second moment) pair of real numbers
MomentsLike = Union[Moments, Sequence[float]]
# A per-element function: an activation name (with its param) or a callable on arrays or tensors
ElementFunction = Union[AnyActivation, Callable[..., Any]]


def _moments(value: object, name: str) -> Moments:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name} must be Moments(mean, second) or a pair of real numbers, "
                        f"got {type(value).__name__}")
    pair = cast("Sequence[object]", value)
    mean = _validate.real(pair[0], f"{name}.mean")
    second = _validate.real(pair[1], f"{name}.second", _validate.NON_NEGATIVE)
    _check_second(mean, second, name)
    return Moments(mean, second)


def _check_second(mean: float, second: float, name: str) -> None:
    if second < mean * mean * (1.0 - _MOMENT_RTOL):
        raise ValueError(f"{name}: the second moment ({second}) is below the squared mean "
                         f"({mean * mean}); a second moment is E[x^2] >= E[x]^2")


def _mean_and_square(mean: float, square: float, mean_name: str, square_name: str) -> tuple[float, float]:
    mean = _validate.real(mean, mean_name)
    square = _validate.real(square, square_name, _validate.NON_NEGATIVE)
    _check_second(mean, square, f"{square_name} and {mean_name}")
    return mean, square


# ---------------------------------------------------------------- fans

KINDS: tuple[str, ...] = ("linear", "conv", "conv_transpose")


def _pairs(positions: int, limit: int, k: int, stride: int, offset: int, dilation: int) -> int:
    """#{(a, j): 0 <= a < positions, 0 <= j < k, 0 <= a*stride - offset + j*dilation < limit}.

    For a conv, a runs over outputs and the index is the input read by tap j;
    for a transposed conv, a runs over inputs and the index is the output
    written by tap j. Counted per tap in closed form: exact for any size.
    """
    total = 0
    for j in range(k):
        shift = j * dilation - offset  # index = a * stride + shift
        first = max(0, -(shift // stride))  # ceil(-shift / stride) when shift < 0
        last = min(positions - 1, (limit - 1 - shift) // stride)
        total += max(0, last - first + 1)
    return total


def _axis_padding(padding: PerAxis | str, kernel: Sequence[int], dilation: Sequence[int], stride: Sequence[int],
                  kind: str) -> tuple[tuple[int, int], ...]:
    """((low, high) per axis) from an int, a tuple of ints, "valid" or "same"."""
    d = len(kernel)
    if isinstance(padding, str):
        if kind == "conv_transpose":
            raise ValueError("padding must be an int or a tuple of ints for conv_transpose, "
                             f"got {padding!r}")
        if _validate.choice(padding, "padding", ("valid", "same")) == "valid":
            return ((0, 0),) * d
        if any(s != 1 for s in stride):
            raise ValueError("padding='same' requires stride 1 (as in torch)")
        # torch pads dilation * (k - 1) in total, the odd one on the high side.
        totals = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in _validate.per_axis(padding, "padding", d, minimum=0))


def effective_fan(kind: str, weight_shape: Sequence[int], input_spatial: Sequence[int] = (), stride: PerAxis = 1,
                  padding: PerAxis | str = 0, dilation: PerAxis = 1, groups: int = 1,
                  output_padding: PerAxis = 0) -> tuple[float, float]:
    """(fan_in_eff, fan_out_eff) of a linear, conv or conv_transpose at its actual spatial size.

    fan_in_eff is the average, over output positions, of the number of
    inputs one output element sums (taps that land on real inputs, not on
    zero padding or on the zeros a stride inserts), times C_in/groups;
    fan_out_eff is the average, over input positions, of the number of output
    elements that read one input element, times C_out/groups. Then an output's
    second moment is fan_in_eff * E[w^2] * nu_in (`affine`) and an input
    gradient's is fan_out_eff * E[w^2] * nu_grad (`affine_grad`). Per axis,
    a tap at offset j*dilation - pad_low hits 0 <= o*stride + offset < size
    for a range of positions counted in closed form; the average over a grid
    of positions factorizes into per-axis averages.

    Small maps: a 3x3 conv with padding 1 on 4x4 averages 2.5 in-bound taps per
    axis, fan_in_eff = C_in * 6.25 instead of C_in * 9. A stride-2 conv_transpose
    with k = 3 has output phases of 1 and 2 taps (the checkerboard, Odena et al.
    2016): fan_in_eff ~ C_in * 9 / 4. A strided conv's fan_out ~ C_out * prod(k)
    / prod(stride), the mirror image.

    Arguments:
        kind: "linear" (weight (out, in)), "conv" (weight (C_out, C_in/groups,
            *k)), "conv_transpose" (weight (C_in, C_out/groups, *k)).
        input_spatial: the input's spatial sizes, one per kernel axis (empty
            for linear).
        stride, dilation: int or one per axis; padding: int or one per axis,
            or "valid"/"same" (conv); output_padding: int or one per axis
            (conv_transpose); groups: int.

    Example::

        >>> effective_fan("conv", (8, 16, 3, 3), (4, 4), padding=1)
        (100.0, 50.0)
    """
    kind = _validate.choice(kind, "kind", KINDS)
    shape = _validate.index_tuple(weight_shape, "weight_shape", minimum=1)
    spatial = _validate.index_tuple(input_spatial, "input_spatial", minimum=1)
    groups = _validate.integer(groups, "groups", minimum=1)
    if kind == "linear":
        if len(shape) != 2:
            raise ValueError(f"weight_shape of a linear must be (out, in), got {shape}")
        if spatial:
            raise ValueError(f"input_spatial applies to conv and conv_transpose, got {spatial}")
        if groups != 1:
            raise ValueError("groups applies to conv and conv_transpose")
        return float(shape[1]), float(shape[0])
    if len(shape) < 3:
        raise ValueError(f"weight_shape of a {kind} must be (channels, channels/groups, *kernel), "
                         f"got {shape}")
    kernel = shape[2:]
    d = len(kernel)
    if len(spatial) != d:
        raise ValueError(f"input_spatial must have one size per kernel axis ({d}), got {spatial}")
    strides = _validate.per_axis(stride, "stride", d)
    dilations = _validate.per_axis(dilation, "dilation", d)
    pads = _axis_padding(padding, kernel, dilations, strides, kind)
    if kind == "conv":
        if _validate.per_axis(output_padding, "output_padding", d, minimum=0) != (0,) * d:
            raise ValueError("output_padding applies to conv_transpose only")
        if shape[0] % groups:
            raise ValueError(f"groups ({groups}) must divide C_out (dim 0 of weight_shape, {shape[0]})")
        in_per_group, out_per_group = shape[1], shape[0] // groups
    else:
        extra = _validate.per_axis(output_padding, "output_padding", d, minimum=0)
        if shape[0] % groups:
            raise ValueError(f"groups ({groups}) must divide C_in (dim 0 of weight_shape, {shape[0]})")
        in_per_group, out_per_group = shape[0] // groups, shape[1]
    fan_in, fan_out = float(in_per_group), float(out_per_group)
    for axis in range(d):
        size, k, s, dl, (low, high) = spatial[axis], kernel[axis], strides[axis], dilations[axis], pads[axis]
        if kind == "conv":
            out = (size + low + high - dl * (k - 1) - 1) // s + 1
            if out < 1:
                raise ValueError(f"input_spatial {spatial} is smaller than the (dilated) kernel "
                                 f"{kernel} along axis {axis}")
            pairs = _pairs(out, size, k, s, low, dl)
        else:
            out = (size - 1) * s - low - high + dl * (k - 1) + extra[axis] + 1
            if out < 1:
                raise ValueError(f"padding {padding} leaves no output along axis {axis}")
            pairs = _pairs(size, out, k, s, low, dl)
        fan_in *= pairs / out
        fan_out *= pairs / size
    return fan_in, fan_out


# ---------------------------------------------------------------- weights


def affine(moments_in: MomentsLike, fan_in_eff: float, weight_sq_mean: float, bias_mean: float = 0.0,
           bias_sq_mean: float = 0.0) -> Moments:
    """Output moments of y = W x + b (linear, conv, conv_transpose), W zero-mean.

    mu = mean(b), nu = fan_in_eff * E[w^2] * nu_in + mean(b^2): the second
    moment of the input enters, not its variance (He et al. 2015), and the
    bias adds its own mean square (its per-channel spread included). With
    nonzero-mean weights this rule does not hold.

    Example::

        >>> affine(Moments(0.0, 2.0), 100.0, 0.01)
        Moments(mean=0.0, second=2.0)
    """
    m = _moments(moments_in, "moments_in")
    fan = _validate.real(fan_in_eff, "fan_in_eff", _validate.NON_NEGATIVE)
    w2 = _validate.real(weight_sq_mean, "weight_sq_mean", _validate.NON_NEGATIVE)
    b, b2 = _mean_and_square(bias_mean, bias_sq_mean, "bias_mean", "bias_sq_mean")
    return Moments(b, fan * w2 * m.second + b2)


def affine_centred(moments_in: MomentsLike, fan_in_eff: float, weight_sq_mean: float, row_sums: float) -> Moments:
    """Output moments of y = W x whose rows need not sum like independent entries.

    `row_sums`: the mean square of a row's sum over fan_in_eff * E[w^2] (1 for
    independent zero-mean entries, 0 for rows centred to mean zero, as weight
    standardization makes them: Qiao et al. 2019). The input's mean, shared by
    the entries a row reads, reaches the output only through the row's sum:
    nu = fan_in_eff * E[w^2] * (nu_in - (1 - row_sums) * mu_in^2); row_sums 1
    is `affine`.

    Example::

        >>> affine_centred(Moments(1.0, 2.0), 100.0, 0.01, 0.0)
        Moments(mean=0.0, second=1.0)
    """
    m = _moments(moments_in, "moments_in")
    fan = _validate.real(fan_in_eff, "fan_in_eff", _validate.NON_NEGATIVE)
    w2 = _validate.real(weight_sq_mean, "weight_sq_mean", _validate.NON_NEGATIVE)
    share = _validate.real(row_sums, "row_sums", _validate.NON_NEGATIVE)
    return Moments(0.0, fan * w2 * max(m.second - (1.0 - min(share, 1.0)) * m.mean * m.mean, 0.0))


def affine_grad(grad_second: float, fan_out_eff: float, weight_sq_mean: float) -> float:
    """Second moment of dL/dx for y = W x + b given that of dL/dy: fan_out_eff * E[w^2] * nu_grad.

    Each input element collects the gradients of the fan_out_eff outputs that
    read it, each through an independent zero-mean weight (Glorot & Bengio
    2010; at the actual spatial size via `effective_fan`).
    """
    g2 = _validate.real(grad_second, "grad_second", _validate.NON_NEGATIVE)
    fan = _validate.real(fan_out_eff, "fan_out_eff", _validate.NON_NEGATIVE)
    w2 = _validate.real(weight_sq_mean, "weight_sq_mean", _validate.NON_NEGATIVE)
    return fan * w2 * g2


def affine_correlation(moments_in: MomentsLike, fan_in_eff: float, weight_sq_mean: float, bias_mean: float = 0.0,
                       bias_sq_mean: float = 0.0, rho_in: float = 0.0) -> float:
    """Correlation between two outputs of one channel at different positions (conv, or a
    linear applied per token), over the random weights and inputs.

    With y_o = sum_a w_a x_(o+a) + b: E[w_a w_a'] = s^2 [a = a'] pairs each weight
    with two different input positions, so Cov(y_o, y_o') = fan * s^2 *
    (rho_in sigma_in^2 + mu_in^2) + Var(b) against Var(y) = fan * s^2 * nu_in +
    Var(b). A nonzero input mean (ReLU features: mu^2/nu = 1/pi) makes every
    channel carry a constant offset mu_in * sum(w), which pooling does not
    average away. rho_in is the input's own correlation between the positions
    paired by the same tap (0: independent positions). Ignores the border,
    where fewer taps are in bounds.

    Example::

        >>> affine_correlation(Moments(1.0, 2.0), 10.0, 0.1)   # mu^2 / nu
        0.5
    """
    m = _moments(moments_in, "moments_in")
    fan = _validate.real(fan_in_eff, "fan_in_eff", _validate.NON_NEGATIVE)
    w2 = _validate.real(weight_sq_mean, "weight_sq_mean", _validate.NON_NEGATIVE)
    b, b2 = _mean_and_square(bias_mean, bias_sq_mean, "bias_mean", "bias_sq_mean")
    rho_in = _validate.real(rho_in, "rho_in", _validate.BOUNDED_0_1)
    bias_var = max(b2 - b * b, 0.0)
    total = fan * w2 * m.second + bias_var
    if total == 0.0:
        return 0.0
    return (fan * w2 * (rho_in * m.variance + m.mean * m.mean) + bias_var) / total


def embedding(table_mean: float, table_sq_mean: float) -> Moments:
    """Moments of an embedding lookup: the mean and mean square of the table's entries
    (of the rows the tokens select; every row for uniform tokens)."""
    return Moments(*_mean_and_square(table_mean, table_sq_mean, "table_mean", "table_sq_mean"))


# ---------------------------------------------------------------- elementwise


def elementwise(g: ElementFunction, moments_in: MomentsLike, *, param: float | None = None,
                breakpoints: Iterable[float] | None = None) -> tuple[Moments, float]:
    """(Moments of g(z), E[g'(z)^2]) for z ~ N(mu, sigma^2) with (mu, sigma^2) from moments_in.

    E[g(mu + x)], E[g(mu + x)^2] and E[g'(mu + x)^2], x ~ N(0, sigma^2), by
    varinit.quadrature's panel Gauss-Legendre rule with the panels cut at g's
    kinks shifted by -mu. g is an activation name (exact derivative, known
    kinks; `param` as in varinit.activations) or any callable on float64
    arrays or tensors, e.g. a fused chain from `fuse` (derivative by central
    difference; kinks `breakpoints`, default 0, refined adaptively, so kinks
    nobody declared still converge). E[g'(z)^2] multiplies a gradient's second
    moment on the way back (Poole et al. 2016; Schoenholz et al. 2017). Raises
    varinit.quadrature.DivergentIntegral (an OverflowError) where one of them
    diverges (1 / x across its pole).

    Example::

        >>> elementwise("relu", Moments(0.0, 1.0))
        (Moments(mean=0.398942..., second=0.5), 0.5)
    """
    m = _moments(moments_in, "moments_in")
    spec = resolve(g, param, breakpoints)
    mu, var = m.mean, m.variance
    kinks = tuple(k - mu for k in spec.kinks)

    def integrate(call: Callable[[FloatArray], FloatArray]) -> float:
        return expectation(call, var, kinks, adaptive=spec.adaptive, strict=True)

    mean = integrate(lambda x: spec.fn(mu + x))
    second = integrate(lambda x: spec.fn(mu + x) ** 2)
    grad = integrate(lambda x: spec.derivative(mu + x) ** 2)
    return Moments(mean, max(second, mean * mean)), grad


# ---------------------------------------------------------------- binary and scalar


def add(a: MomentsLike, b: MomentsLike, alpha: float = 1.0) -> Moments:
    """a + alpha * b for independent operands: mu = mu_a + alpha mu_b,
    nu = nu_a + alpha^2 nu_b + 2 alpha mu_a mu_b (a residual branch with
    zero-mean weights is uncorrelated with its stream at init)."""
    ma, mb = _moments(a, "a"), _moments(b, "b")
    alpha = _validate.real(alpha, "alpha")
    return Moments(ma.mean + alpha * mb.mean,
                   max(ma.second + alpha * alpha * mb.second + 2.0 * alpha * ma.mean * mb.mean, 0.0))


def sub(a: MomentsLike, b: MomentsLike, alpha: float = 1.0) -> Moments:
    """a - alpha * b for independent operands (torch.sub's alpha)."""
    return add(a, b, -_validate.real(alpha, "alpha"))


def mul(a: MomentsLike, b: MomentsLike) -> Moments:
    """a * b for independent operands (GLU/SwiGLU gates): mu = mu_a mu_b, nu = nu_a nu_b.
    Operands that derive from one source (x * sigmoid(x)) are not independent:
    `fuse` them and use `elementwise`."""
    ma, mb = _moments(a, "a"), _moments(b, "b")
    return Moments(ma.mean * mb.mean, ma.second * mb.second)


def scale(m: MomentsLike, c: float) -> Moments:
    """c * x: mu -> c mu, nu -> c^2 nu."""
    x = _moments(m, "m")
    c = _validate.real(c, "c")
    return Moments(c * x.mean, c * c * x.second)


def shift(m: MomentsLike, c: float) -> Moments:
    """x + c: mu -> mu + c, nu -> nu + 2 c mu + c^2."""
    x = _moments(m, "m")
    c = _validate.real(c, "c")
    return Moments(x.mean + c, max(x.second + 2.0 * c * x.mean + c * c, 0.0))


def matmul(a: MomentsLike, b: MomentsLike, inner: int, a_shared: float | None = None,
           b_shared: float | None = None) -> Moments:
    """A @ B over `inner` terms, A independent of B:
    mu = d mu_a mu_b, nu = d nu_a nu_b + d (d - 1) s_a s_b, where s_a = E[a_f a_g]
    (f != g along the contraction) is `a_shared`, mu_a^2 when its entries are independent
    (None), and s_b likewise. Entries along the contraction share a factor in a sum of
    outer products (linear attention's state sum_j k_j v_j^T: its rows share v_j)."""
    ma, mb = _moments(a, "a"), _moments(b, "b")
    d = _validate.integer(inner, "inner", minimum=1)
    sa = ma.mean * ma.mean if a_shared is None else _validate.real(a_shared, "a_shared", _validate.NON_NEGATIVE)
    sb = mb.mean * mb.mean if b_shared is None else _validate.real(b_shared, "b_shared", _validate.NON_NEGATIVE)
    return Moments(d * ma.mean * mb.mean, d * ma.second * mb.second + d * (d - 1) * sa * sb)


def fixed_mix(x: MomentsLike, sums: float, sums_sq: float, squares: float, common: float | None = None) -> Moments:
    """y_i = sum_j A_ij x_j with A fixed (a graph's normalized adjacency, any constant
    mixing matrix) and x_j = c + z_j: c shared by every j (second moment kappa, the mean's
    square at least), the z_j independent: E[y_i] = mu sum_j A_ij,
    E[y_i^2] = kappa (sum_j A_ij)^2 + (nu - kappa) sum_j A_ij^2, averaged over i.

    sums, sums_sq, squares: the means over i of sum_j A_ij, (sum_j A_ij)^2 and
    sum_j A_ij^2; common: kappa (None: mu^2).

    Example::

        >>> fixed_mix(Moments(1.0, 2.0), 1.0, 1.0, 0.25)    # rows averaging 4 entries
        Moments(mean=1.0, second=1.25)
    """
    m = _moments(x, "x")
    s = _validate.real(sums, "sums")
    s2 = _validate.real(sums_sq, "sums_sq", _validate.NON_NEGATIVE)
    q = _validate.real(squares, "squares", _validate.NON_NEGATIVE)
    kappa = m.mean * m.mean if common is None else min(max(_validate.real(common, "common"), m.mean ** 2), m.second)
    return Moments(m.mean * s, max(kappa * s2 + (m.second - kappa) * q, 0.0))


def cat(parts: Iterable[tuple[MomentsLike, int]]) -> Moments:
    """Concatenation of [(moments, size), ...]: the size-weighted average of mu and nu
    (sizes: the operands' extents along the concatenated dim, or their numels)."""
    if isinstance(parts, (str, bytes)) or not hasattr(parts, "__iter__"):
        raise TypeError(f"parts must be a sequence of (moments, size) pairs, got {type(parts).__name__}")
    pairs = list(parts)
    if not pairs:
        raise ValueError("parts must hold at least one (moments, size) pair")
    mean = second = total = 0.0
    for i, part in enumerate(pairs):
        if isinstance(part, (str, bytes)) or not hasattr(part, "__len__") or len(part) != 2:
            raise TypeError(f"parts[{i}] must be a (moments, size) pair, got {type(part).__name__}")
        m = _moments(part[0], f"parts[{i}] moments")
        size = _validate.integer(part[1], f"parts[{i}] size", minimum=0)
        mean, second, total = mean + size * m.mean, second + size * m.second, total + size
    if total == 0:
        raise ValueError("parts have total size 0")
    return Moments(mean / total, second / total)


# ---------------------------------------------------------------- normalization and dropout


def norm(moments_in: MomentsLike, gamma_sq_mean: float = 1.0, beta_mean: float = 0.0, beta_sq_mean: float = 0.0, *,
         rms: bool = False, gamma_mean: float | None = None, eps: float = 0.0) -> Moments:
    """Output of a normalization with affine gamma, beta (layer, group, instance, batch norm in
    training, or RMS norm with rms=True), per feature, for wide normalized sets.

    Layer/group/instance/batch: x_hat has mean 0 and mean square
    sigma^2 / (sigma^2 + eps), so mu = mean(beta), nu = mean(gamma^2) *
    sigma^2 / (sigma^2 + eps) + mean(beta^2): the norm resets the scale
    (eps only matters for inputs near zero, e.g. a zero-initialized branch).
    RMS norm does not subtract the mean: x_hat has mean mu_in / sqrt(nu_in + eps)
    and mean square nu_in / (nu_in + eps); gamma and beta are taken independent
    of x_hat (E[gamma beta] ~ mean(gamma) mean(beta)). gamma_mean (read by RMS
    norm only) defaults to sqrt(gamma_sq_mean), a constant gamma (torch's ones).
    """
    m = _moments(moments_in, "moments_in")
    gamma_sq = _validate.real(gamma_sq_mean, "gamma_sq_mean", _validate.NON_NEGATIVE)
    gamma_mean, gamma_sq = _mean_and_square(math.sqrt(gamma_sq) if gamma_mean is None else gamma_mean, gamma_sq,
                                            "gamma_mean", "gamma_sq_mean")
    beta, beta_sq = _mean_and_square(beta_mean, beta_sq_mean, "beta_mean", "beta_sq_mean")
    rms = _validate.flag(rms, "rms")
    eps = _validate.real(eps, "eps", _validate.NON_NEGATIVE)
    spread = m.second if rms else m.variance
    if spread + eps == 0.0:  # a constant input: x_hat -> 0 as eps -> 0+
        return Moments(beta, beta_sq)
    hat_mean = m.mean / math.sqrt(m.second + eps) if rms else 0.0
    hat_sq = spread / (spread + eps)
    return Moments(gamma_mean * hat_mean + beta,
                   max(gamma_sq * hat_sq + 2.0 * gamma_mean * beta * hat_mean + beta_sq, 0.0))


def _per_channel(value: Any, name: str, non_negative: bool = False) -> FloatArray:
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a real number or a sequence of them, got {arr.dtype}")
    values: FloatArray = np.atleast_1d(arr.astype(np.float64)).ravel()
    arr = values
    bad = ~np.isfinite(arr) | ((arr < 0) if non_negative else False)
    if arr.size == 0 or bad.any():
        what = "finite numbers >= 0" if non_negative else "finite numbers"
        raise ValueError(f"{name} must hold {what} (at least one), got {arr[bad][:1] if arr.size else 'none'}")
    return values


def batch_norm_eval(moments_in: MomentsLike, running_mean: Any, running_var: Any, weight: Any = None,
                    bias: Any = None, eps: float = 1e-5) -> Moments:
    """Batch norm in eval mode: per channel c the affine map y = a_c x + b_c with
    a_c = gamma_c / sqrt(var_c + eps), b_c = beta_c - a_c mean_c (running statistics).

    mu = mean_c(a_c mu_in + b_c), nu = mean_c(a_c^2 nu_in + 2 a_c b_c mu_in + b_c^2),
    for an input whose moments are the same in every channel. The arguments
    are numbers or per-channel sequences (arrays, CPU tensors) of one common
    length; weight/bias None mean 1 and 0.
    """
    m = _moments(moments_in, "moments_in")
    stats = {"running_mean": _per_channel(running_mean, "running_mean"),
             "running_var": _per_channel(running_var, "running_var", non_negative=True),
             "weight": np.ones(1) if weight is None else _per_channel(weight, "weight"),
             "bias": np.zeros(1) if bias is None else _per_channel(bias, "bias")}
    count = max(arr.size for arr in stats.values())
    for name, arr in stats.items():
        if arr.size not in (1, count):
            raise ValueError(f"{name} has {arr.size} entries where the others have {count} (one per channel)")
    eps = _validate.real(eps, "eps", _validate.NON_NEGATIVE)
    if np.any(stats["running_var"] + eps == 0.0):
        raise ValueError("running_var + eps must be positive in every channel")
    a = stats["weight"] / np.sqrt(stats["running_var"] + eps)
    b = stats["bias"] - a * stats["running_mean"]
    a, b = np.broadcast_arrays(a, b)
    mean = float(np.mean(a * m.mean + b))
    second = float(np.mean(a * a * m.second + 2.0 * a * b * m.mean + b * b))
    return Moments(mean, max(second, mean * mean))


def _dropped(m: MomentsLike, p: float, training: bool) -> tuple[Moments, float, Moments | None]:
    """A dropout's input moments and p, checked, and its output where the kind of
    dropout does not matter: the input in eval, zeros at p = 1 (else None)."""
    x = _moments(m, "m")
    p = _validate.real(p, "p", _validate.BOUNDED_0_1)
    if not _validate.flag(training, "training"):
        return x, p, x
    return x, p, Moments(0.0, 0.0) if p == 1.0 else None


def dropout(m: MomentsLike, p: float, training: bool = True) -> Moments:
    """Inverted dropout: training keeps mu and divides nu by 1 - p (E[(mask x / (1-p))^2] =
    nu / (1 - p)); eval changes nothing; p = 1 zeroes the tensor."""
    x, p, settled = _dropped(m, p, training)
    return settled if settled is not None else Moments(x.mean, x.second / (1.0 - p))



# SELU's saturation value -lambda * alpha, where AlphaDropout sends dropped units (Klambauer et al. 2017)
ALPHA_PRIME = -1.0507009873554804934193349852946 * 1.6732632423543772848170429916717


def alpha_dropout_affine(p: float) -> tuple[float, float]:
    """AlphaDropout's affine map (a, b) after dropping to ALPHA_PRIME with probability
    p: a = ((1 - p)(1 + p alpha'^2))^(-1/2), b = -a alpha' p, so zero mean and unit
    variance are kept (Klambauer et al. 2017, section "New Dropout Technique")."""
    a = ((1.0 - p) * (1.0 + p * ALPHA_PRIME ** 2)) ** -0.5
    return a, -a * ALPHA_PRIME * p


def alpha_dropout(m: MomentsLike, p: float, training: bool = True) -> Moments:
    """AlphaDropout (and feature alpha dropout, whose mask is one per channel with the
    same marginals): y = a (x d + alpha' (1 - d)) + b, d ~ Bernoulli(1 - p), so
    E[y] = a (1 - p) mu and E[y^2] = a^2 ((1 - p) nu + p alpha'^2) + 2 a b ((1 - p) mu
    + p alpha') + b^2; (0, 1) stays (0, 1). Eval changes nothing; p = 1 gives the
    constant a alpha' + b = 0."""
    x, p, settled = _dropped(m, p, training)
    if settled is not None:
        return settled
    a, b = alpha_dropout_affine(p)
    mean_y = (1.0 - p) * x.mean + p * ALPHA_PRIME
    second_y = (1.0 - p) * x.second + p * ALPHA_PRIME ** 2
    return Moments(a * (1.0 - p) * x.mean, a * a * second_y + 2.0 * a * b * mean_y + b * b)



def scatter(base: MomentsLike, value: MomentsLike, share: float) -> Moments:
    """x[index] = value over a `share` of x's elements: the written ones have the
    value's moments, the rest keep x's."""
    b, v = _moments(base, "base"), _moments(value, "value")
    s = _validate.real(share, "share", _validate.BOUNDED_0_1)
    return Moments(s * v.mean + (1.0 - s) * b.mean, s * v.second + (1.0 - s) * b.second)


def index_add(base: MomentsLike, source: MomentsLike, counts: float, counts_sq: float,
              alpha: float = 1.0, kappa: float | None = None) -> Moments:
    """x.index_add(dim, index, source, alpha) (and x.scatter_add): an element of x that c
    source elements land on is x + alpha (s_1 + ... + s_c), the s_i sharing a common part
    of second moment `kappa` (mu_s^2 by default: independent); with E[c] = `counts` and
    E[c^2] = `counts_sq` over x's elements, mu = mu_x + E[c] alpha mu_s and nu = nu_x +
    2 E[c] alpha mu_x mu_s + E[c] alpha^2 (nu_s - kappa) + E[c^2] alpha^2 kappa. A graph
    network's sum over each node's neighbours (Xu et al. 2019, GIN) adds the features its
    neighbours share coherently: kappa is what one feature holds at every node."""
    b, src = _moments(base, "base"), _moments(source, "source")
    c1, c2 = float(counts), float(counts_sq)
    a = float(alpha)
    k = src.mean ** 2 if kappa is None else _validate.real(kappa, "kappa", _validate.NON_NEGATIVE)
    return Moments(b.mean + c1 * a * src.mean,
                   b.second + 2.0 * c1 * a * b.mean * src.mean + c1 * a * a * (src.second - k) + c2 * a * a * k)


def scatter_mean(base: MomentsLike, source: MomentsLike, written: float, inverse: float,
                 kappa: float | None = None) -> Moments:
    """x.scatter_reduce(dim, index, src, "mean", include_self=False): an element of x that
    c >= 1 source elements land on is their mean, the others keep x's value. The sources
    share a common part of second moment `kappa` (mu_s^2 by default: independent); with
    P(c > 0) = `written` and E[1/c; c > 0] = `inverse` over x's elements, mu = w mu_s +
    (1 - w) mu_x and nu = w kappa + E[1/c; c > 0] (nu_s - kappa) + (1 - w) nu_x (a graph
    network's mean aggregation: GraphSAGE, Hamilton et al. 2017)."""
    b, src = _moments(base, "base"), _moments(source, "source")
    w = _validate.real(written, "written", _validate.BOUNDED_0_1)
    inv = _validate.real(inverse, "inverse", _validate.BOUNDED_0_1)
    k = src.mean ** 2 if kappa is None else _validate.real(kappa, "kappa", _validate.NON_NEGATIVE)
    return Moments(w * src.mean + (1.0 - w) * b.mean, w * k + inv * (src.second - k) + (1.0 - w) * b.second)


def scatter_extreme(base: MomentsLike, source: MomentsLike, written: float, size: int,
                    largest: bool = True) -> Moments:
    """x.scatter_reduce(dim, index, src, "amax" or "amin", include_self=False): an element
    that source elements land on is their largest (smallest), taken as the extreme of
    `size` iid Gaussians (`top_k` with k = 1; the smallest by symmetry); the others, a
    share 1 - `written`, keep x's value."""
    b, src = _moments(base, "base"), _moments(source, "source")
    w = _validate.real(written, "written", _validate.BOUNDED_0_1)
    sign = 1.0 if largest else -1.0
    top = top_k(Moments(sign * src.mean, src.second), size, 1)
    return Moments(w * sign * top.mean + (1.0 - w) * b.mean, w * top.second + (1.0 - w) * b.second)


# ---------------------------------------------------------------- pooling and reductions


def avg_pool(m: MomentsLike, count: int, rho: float = 0.0) -> Moments:
    """Mean of `count` elements with average pairwise correlation rho (average pooling,
    adaptive/global average pooling with count = the pooled size, x.mean over dims):
    mu kept, nu = mu^2 + sigma^2 (1 + (count - 1) rho) / count.

    rho = 0 for independent elements; neighbouring conv outputs are correlated
    (see `affine_correlation`), or measure rho on the example input. Windows
    that reach into zero padding or past the input's edge: `pool_windows`.
    """
    x = _moments(m, "m")
    k = _validate.integer(count, "count", minimum=1)
    rho = _validate.real(rho, "rho", _validate.BOUNDED_0_1)
    return Moments(x.mean, x.mean * x.mean + x.variance * (1.0 + (k - 1) * rho) / k)


reduce_mean = avg_pool


def pool_windows(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                 outputs: Sequence[int], count_include_pad: bool = True,
                 divisor_override: int | None = None) -> tuple[FloatArray, FloatArray]:
    """Per output position of an average pooling (flattened), how many of its window's
    taps land on the input and what torch divides their sum by: the window clipped to
    the padded extent (count_include_pad), the real taps, or `divisor_override`.
    `sizes`, `outputs`: the input's and output's spatial sizes."""
    real_axes, pool_axes = [], []
    for size, k, st, pad, out in zip(sizes, kernel, stride, padding, outputs):
        start = np.arange(out) * st - pad
        end = np.minimum(start + k, size + pad)
        real_axes.append(np.maximum(np.minimum(end, size) - np.maximum(start, 0), 0))
        pool_axes.append(end - start)
    real = functools.reduce(np.multiply.outer, real_axes).ravel().astype(np.float64)
    pool = functools.reduce(np.multiply.outer, pool_axes).ravel().astype(np.float64)
    if divisor_override:
        return real, np.full_like(real, float(divisor_override))
    return real, (pool if count_include_pad else np.maximum(real, 1.0))


def avg_pool_windows(m: MomentsLike, real: FloatArray, divisor: FloatArray, rho: float = 0.0) -> Moments:
    """Average pooling whose windows hold `real` input taps and divide by `divisor`
    (per output position, `pool_windows`): a window of r taps has mean r mu / D and
    second moment (r sigma^2 (1 + (r - 1) rho) + r^2 mu^2) / D^2, averaged over the
    positions (zero padding is zeros; count_include_pad counts it in D)."""
    x = _moments(m, "m")
    rho = _validate.real(rho, "rho", _validate.BOUNDED_0_1)
    r, d = np.asarray(real, dtype=np.float64), np.asarray(divisor, dtype=np.float64)
    mean = float(np.mean(r / d)) * x.mean
    second = float(np.mean((r * x.variance * (1.0 + (r - 1.0) * rho) + r * r * x.mean * x.mean) / (d * d)))
    return Moments(mean, second)


def interpolate(m: MomentsLike, energy: float, rho: float = 0.0) -> Moments:
    """Interpolation (F.interpolate, nn.Upsample): each output is a weighted sum of
    inputs whose weights add to one, so mu is kept, and with E[sum w^2] = `energy`
    averaged over the outputs (`interpolation_energy`; 1 for nearest), nu = mu^2 +
    sigma^2 (rho + (1 - rho) energy) for inputs of pairwise correlation rho."""
    x = _moments(m, "m")
    energy = _validate.real(energy, "energy", _validate.BOUNDED_0_1)
    rho = _validate.real(rho, "rho", _validate.BOUNDED_0_1)
    return Moments(x.mean, x.mean * x.mean + x.variance * (rho + (1.0 - rho) * energy))


# interpolation modes by the 2-d mode whose 1-d kernel they apply along each axis
_AXIS_MODES = {"linear": "bilinear", "bilinear": "bilinear", "trilinear": "bilinear", "bicubic": "bicubic",
               "area": "area"}
# an axis longer than this is measured on a copy scaled down to it, same ratio (the weights repeat)
_LONGEST_AXIS = 1024


def interpolation_energy(mode: str, sizes_in: Sequence[int], sizes_out: Sequence[int],
                         align_corners: bool = False, antialias: bool = False) -> float:
    """E[sum_j w_ij^2] over the outputs of F.interpolate from `sizes_in` to `sizes_out`
    (the spatial sizes): 1 for "nearest" and "nearest-exact" (copies), else the
    product over the axes of the 1-d kernel's, read off torch's own interpolation of
    an identity matrix along each axis (linear, bilinear, trilinear and bicubic are
    separable: one kernel per axis; "area" is an adaptive average)."""
    if mode in ("nearest", "nearest-exact"):
        return 1.0
    axis_mode = _AXIS_MODES.get(mode)
    if axis_mode is None:
        raise ValueError(f"mode must be one of nearest, nearest-exact, {', '.join(_AXIS_MODES)}; got {mode!r}")
    energy = 1.0
    for n_in, n_out in zip(sizes_in, sizes_out):
        if n_in == n_out and axis_mode != "area" and not align_corners:
            continue
        if max(n_in, n_out) > _LONGEST_AXIS:
            shrink = max(n_in, n_out) / _LONGEST_AXIS
            n_in, n_out = max(round(n_in / shrink), 1), max(round(n_out / shrink), 1)
        eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, 1, n_in)
        extra = {} if axis_mode == "area" else {"align_corners": align_corners, "antialias": antialias}
        weights = torch.nn.functional.interpolate(eye, size=(1, n_out), mode=axis_mode, **extra)
        energy *= float(weights.pow(2).sum(dim=0).mean())
    return min(energy, 1.0)


def reduce_sum(m: MomentsLike, count: int, rho: float = 0.0) -> Moments:
    """Sum of `count` elements with average pairwise correlation rho:
    mu -> count mu, nu -> count^2 mu^2 + count sigma^2 (1 + (count - 1) rho)."""
    mean_of = avg_pool(m, count, rho)
    return Moments(count * mean_of.mean, count * count * mean_of.second)


def larger_of_two(a: MomentsLike, b: MomentsLike, larger: bool = True) -> Moments:
    """max(a, b) (or min) of two independent Gaussians with these moments, per element
    (torch.maximum of two signals: an mLSTM's stabilizer max(log f + m, log i)), by
    Clark (1961): with theta^2 = sigma_a^2 + sigma_b^2 and alpha = (mu_a - mu_b) / theta,
    E[max] = mu_a Phi(alpha) + mu_b Phi(-alpha) + theta phi(alpha) and
    E[max^2] = nu_a Phi(alpha) + nu_b Phi(-alpha) + (mu_a + mu_b) theta phi(alpha);
    min(a, b) = a + b - max(a, b), and min^2 + max^2 = a^2 + b^2."""
    x, y = _moments(a, "a"), _moments(b, "b")
    theta = math.sqrt(max(x.variance + y.variance, 0.0))
    if theta == 0.0:
        top = x if x.mean >= y.mean else y
    else:
        alpha = (x.mean - y.mean) / theta
        upper, lower = 0.5 * math.erfc(-alpha / math.sqrt(2.0)), 0.5 * math.erfc(alpha / math.sqrt(2.0))
        density = math.exp(-0.5 * alpha * alpha) / math.sqrt(2.0 * math.pi)
        top = Moments(x.mean * upper + y.mean * lower + theta * density,
                      x.second * upper + y.second * lower + (x.mean + y.mean) * theta * density)
    if larger:
        return top
    return Moments(x.mean + y.mean - top.mean, x.second + y.second - top.second)


# log sum exp is taken as concentrated while the relative variance of its sum of
# exponentials, (e^(sigma^2) - 1) / n, stays below this; beyond it the largest term rules
LOG_SUM_EXP_SPREAD = 0.5


def log_sum_exp(m: MomentsLike, count: int, rho: float = 0.0) -> Moments | None:
    """log sum_i exp(x_i) over `count` Gaussian elements with average pairwise correlation
    rho: the shared part c (variance rho sigma^2) passes whole, log sum exp(c + z_i) =
    c + log sum exp(z_i), and the sum S of the n lognormal exp(z_i) is concentrated, so by
    the delta method E[log S] = mu' + s^2 / 2 + log n - v / 2 and Var(log S) = v with
    s^2 = (1 - rho) sigma^2 and v = (e^(s^2) - 1) / n, mu' = mu. None when v exceeds
    LOG_SUM_EXP_SPREAD (a few large terms rule the sum: not concentrated)."""
    x = _moments(m, "m")
    n = _validate.integer(count, "count", minimum=1)
    rho = _validate.real(rho, "rho", _validate.BOUNDED_0_1)
    own = (1.0 - rho) * max(x.variance, 0.0)
    spread = math.expm1(own) / n if own < 700 else math.inf
    if spread > LOG_SUM_EXP_SPREAD:
        return None
    mean = x.mean + own / 2 + math.log(n) - spread / 2
    return Moments(mean, mean * mean + rho * max(x.variance, 0.0) + spread)


def cumulative_sum(m: MomentsLike, count: int, rho: float = 0.0) -> Moments:
    """Running sums y_k = x_1 + ... + x_k, k = 1..count, along one dim (torch.cumsum), of
    elements with average pairwise correlation rho, averaged over the count outputs: with
    kappa = mu^2 + rho sigma^2 the part the elements share, y_k has second moment
    k^2 kappa + k (nu - kappa), so mu -> mu (count + 1) / 2 and
    nu -> kappa (count + 1)(2 count + 1) / 6 + (nu - kappa)(count + 1) / 2."""
    x = _moments(m, "m")
    k = _validate.integer(count, "count", minimum=1)
    rho = _validate.real(rho, "rho", _validate.BOUNDED_0_1)
    return Moments(x.mean * (k + 1) / 2, running_sum_second(x.second, x.mean * x.mean + rho * x.variance, k))


def running_sum_second(each: float, pairwise: float, count: int) -> float:
    """The mean over k = 1..count of E[y_k z_k] for running sums y_k, z_k of terms whose
    products have mean `each` at one position and `pairwise` at two: k each +
    k (k - 1) pairwise, averaged, is pairwise (count + 1)(2 count + 1) / 6 +
    (each - pairwise)(count + 1) / 2."""
    return pairwise * (count + 1) * (2 * count + 1) / 6 + (each - pairwise) * (count + 1) / 2


def harmonic(n: int) -> float:
    """1 + 1/2 + ... + 1/n: a causal row t of n averages t keys, and the mean of 1/t is harmonic(n) / n."""
    return sum(1.0 / t for t in range(1, n + 1))


# The max of k iid copies of Y = g(Z) has E[max^j] = sum over Y's sorted values
# of y^j (F(y)^k - F(y-)^k): exact for a discrete Y, so Z is replaced by the
# midpoints of cells of width 2e-3 on [-10, 10] (phi(10) = 8e-23), weighted by
# phi. Rounding Z to a cell midpoint is unbiased to first order, so the error
# is O(h^2) ~ 1e-6 relative whether g is monotone or not.
_MAX_CELLS = 10_000
_MAX_Z = 10.0
# Equicorrelated inputs: Z_i = sqrt(rho) Z_0 + sqrt(1 - rho) e_i; Z_0 by Gauss-Hermite.
_MAX_OUTER_NODES = 40


def _max_values(values: FloatArray, weights: FloatArray, count: int) -> tuple[FloatArray, FloatArray]:
    order = np.argsort(values, axis=-1, kind="stable")
    v = np.take_along_axis(values, order, axis=-1)
    upper = np.minimum(np.cumsum(weights[order], axis=-1), 1.0)
    lower = np.concatenate((np.zeros(upper.shape[:-1] + (1,)), upper[..., :-1]), axis=-1)
    mass = upper ** count - lower ** count
    return np.sum(v * mass, axis=-1), np.sum(v * v * mass, axis=-1)


def _gaussian_cells() -> tuple[FloatArray, FloatArray]:
    """The middles of _MAX_CELLS equal cells over [-_MAX_Z, _MAX_Z] and each one's standard
    normal probability (normalized to one): the grid of the order-statistic integrals."""
    edges = np.linspace(-_MAX_Z, _MAX_Z, _MAX_CELLS + 1)
    middles = (edges[:-1] + edges[1:]) / 2
    cells = np.exp(-0.5 * middles * middles)
    return middles, cells / cells.sum()


def max_pool(m: MomentsLike, count: int, rho: float = 0.0, g: ElementFunction | None = None) -> Moments:
    """Moments of the max of `count` elements, each g(z_i) with z_i ~ N(mu, sigma^2), pairwise
    correlation rho between the z_i (max pooling over `count` taps; global max pooling).

    g None: the pooled elements are the Gaussians themselves; E[max] = mu +
    sigma sqrt(1 - rho) e_k (e_2 = 1/sqrt(pi), e_4 = 1.029). Pass g (a
    callable or activation name, e.g. the `fuse` chain of a ReLU) with m the
    moments of its Gaussian source when the pooled tensor is an activation:
    max pooling of ReLU features is not the max of a Gaussian. Integrates the
    order-statistic distribution F^count numerically (no monotonicity needed).

    Example::

        >>> max_pool(Moments(0.0, 1.0), 2).mean    # 1 / sqrt(pi)
        0.56418...
    """
    x = _moments(m, "m")
    k = _validate.integer(count, "count", minimum=1)
    rho = _validate.real(rho, "rho", _validate.BOUNDED_0_1)
    fn: Callable[[FloatArray], FloatArray] = (lambda z: z) if g is None else resolve(g).fn
    e, weights = _gaussian_cells()
    if rho == 0.0:
        outer, outer_w = np.zeros(1), np.ones(1)
    else:
        outer, outer_w = np.polynomial.hermite_e.hermegauss(_MAX_OUTER_NODES)
        outer_w = outer_w / outer_w.sum()
    sigma = math.sqrt(x.variance)
    z = math.sqrt(rho) * outer[:, None] + math.sqrt(1.0 - rho) * e[None, :]
    values = np.asarray(fn(x.mean + sigma * z.ravel()), dtype=np.float64).reshape(z.shape)
    if not np.all(np.isfinite(values)):
        raise ValueError("g returned a non-finite value")
    first, second = _max_values(values, weights, k)
    mean, sq = float(outer_w @ first), float(outer_w @ second)
    return Moments(mean, max(sq, mean * mean))


def top_k(m: MomentsLike, count: int, k: int) -> Moments:
    """Moments of the k largest of `count` iid N(mu, sigma^2) elements, over the k of them
    (torch.topk's values: a router's choice of k experts of `count`).

    The r-th largest has density count! / ((r - 1)! (count - r)!) F^(count - r) (1 - F)^(r - 1) f
    (David & Nagaraja 2003, order statistics); integrated on the grid of `max_pool`.

    Example::

        >>> top_k(Moments(0.0, 1.0), 2, 1).mean    # the larger of two: 1 / sqrt(pi)
        0.56418...
    """
    x = _moments(m, "m")
    n = _validate.integer(count, "count", minimum=1)
    k = _validate.integer(k, "k", minimum=1, maximum=n)
    e, cell = _gaussian_cells()
    below = np.clip(np.cumsum(cell) - cell / 2, 1e-300, 1.0)     # F at each cell's middle
    above = np.clip(1.0 - below, 1e-300, 1.0)
    values = x.mean + math.sqrt(x.variance) * e
    first = second = 0.0
    for r in range(1, k + 1):
        log_w = (n - r) * np.log(below) + (r - 1) * np.log(above) + np.log(np.maximum(cell, 1e-300))
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        first += float(w @ values) / k
        second += float(w @ (values * values)) / k
    return Moments(first, max(second, first * first))


# ---------------------------------------------------------------- softmax and attention

# E[sum_j a_j^2] for a = softmax(l), l_j iid N(0, c), over n logits, from
#   1/Z^2 = int_0^inf t e^(-t Z) dt  =>  E[sum a^2] = n int t M(t) L(t)^(n-1) dt,
# M(t) = E[e^(2l) e^(-t e^l)], L(t) = E[e^(-t e^l)], one-dimensional Gaussian
# integrals. With t = e^u the integrand is E[h(u + l)] L^(n-1), h(s) = exp(2s - e^s),
# smooth and decaying at both ends: the trapezoid rule in u (step 0.2) and in
# z = l / sqrt(c) (step 0.5 / sqrt(c)) converges geometrically, to ~1e-13 relative
# (checked against steps 8 times finer). Deterministic, any n, any c.
_U_STEP = 0.2
_Z_LIMIT = 10.0
# Norm fluctuation of q across rows: |q|^2 / E|q|^2 ~ Gamma(a, 1/a), a from its
# variance (Gaussian q entries), by generalized Gauss-Laguerre quadrature.
_GAMMA_NODES = 16
_GAMMA_SHAPE_MAX = 1e9


def _power_sum(lam: FloatArray, m: int) -> FloatArray:
    """sum_{n=1}^m n e^((n-1) lam), lam <= 0, in closed form (first-order series near lam = 0)."""
    series = m * (m + 1) / 2.0 + lam * (m - 1) * m * (m + 1) / 3.0
    one_minus = -np.expm1(lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = (-np.expm1(m * lam) - m * np.exp(m * lam) * one_minus) / (one_minus * one_minus)
    return np.where(m * np.abs(lam) < 1e-6, series, closed)


# the logit variance beyond which E[sum a^2] follows its one-hot limit (_sum_sq_given)
_ONE_HOT_FROM = 1600.0


def _sum_sq_given(c: float, keys: int, queries: int, causal: bool) -> float:
    """Average over query rows of E[sum_j a_j^2] for iid N(0, c) logits over the keys each row sees."""
    if causal:
        ramp = min(queries, keys)  # rows 0..ramp-1 see 1..ramp keys, the rest see all keys
        full_rows = queries - ramp
    else:
        ramp, full_rows = 0, queries
    if c <= 0.0:
        return (harmonic(ramp) + full_rows / keys) / queries
    if c > _ONE_HOT_FROM:
        # the grids grow as sqrt(c) each (a mask added as a signal gave c = 1e11 and a 3 PiB grid);
        # beyond, a row is one-hot but where its top two logits lie within O(1) of each other,
        # whose chance falls as 1 / sigma: within 1e-4 from 1600 to 6400 for 4 to 1024 keys
        near = 1.0 - _sum_sq_given(_ONE_HOT_FROM, keys, queries, causal)
        return 1.0 - near * math.sqrt(_ONE_HOT_FROM / c)
    root = math.sqrt(c)
    z_step = min(0.25, 0.5 / root)
    z = np.arange(-_Z_LIMIT, _Z_LIMIT + z_step / 2, z_step)
    wz = np.exp(-0.5 * z * z)
    wz /= wz.sum()
    # left of u_lo the integrand is ~ n e^(2u) E[e^(2l)] and its integral < 1e-16 / n;
    # right of u_hi, h(u + l) < e^-80 for every l on the grid
    u_lo = -min(c, _Z_LIMIT * root) - math.log(keys) - 19.0
    u = np.arange(u_lo, _Z_LIMIT * root + 5.0, _U_STEP)
    s = np.minimum(u[:, None] + root * z[None, :], 50.0)
    es = np.exp(s)
    bump = np.exp(2.0 * s - es) @ wz
    with np.errstate(divide="ignore"):  # L underflows to 0 far right: lam = -inf, clipped
        lam = np.maximum(np.log1p(-np.minimum(-np.expm1(-es) @ wz, 1.0)), -700.0)
    weight = full_rows * keys * np.exp((keys - 1) * lam)
    if ramp:
        weight = weight + _power_sum(lam, ramp)
    return float(_U_STEP * np.sum(bump * weight) / queries)


def _gamma_nodes(shape: float) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights of E[f(X)], X ~ Gamma(shape, 1/shape) (mean 1), by Golub-Welsch."""
    alpha = shape - 1.0
    k = np.arange(_GAMMA_NODES, dtype=np.float64)
    off = np.sqrt((k[1:]) * (k[1:] + alpha))
    jacobi = np.diag(2.0 * k + alpha + 1.0) + np.diag(off, 1) + np.diag(off, -1)
    nodes, vectors = np.linalg.eigh(jacobi)
    weights = vectors[0] ** 2
    return nodes / shape, weights / weights.sum()


@functools.lru_cache(maxsize=1024)   # every block of a transformer asks the same
def _sum_sq(c: float, keys: int, queries: int, causal: bool, shape: float) -> float:
    if c <= 0.0 or shape >= _GAMMA_SHAPE_MAX:
        return _sum_sq_given(c, keys, queries, causal)
    nodes, weights = _gamma_nodes(shape)
    return float(sum(w * _sum_sq_given(c * x, keys, queries, causal) for x, w in zip(nodes, weights)))


def softmax(m: MomentsLike, size: int, causal: bool = False) -> Moments:
    """Softmax over `size` iid N(mu, sigma^2) logits: each output has mean 1/size and second
    moment E[sum_j a_j^2] / size, by a one-dimensional integral that is exact for Gaussian
    logits (~ e^(sigma^2) / size^2 for many logits, the lognormal limit; 1/size^2 for
    sigma = 0). The mean of the logits cancels. causal: a size x size score matrix whose
    row t keeps t + 1 logits (the rest masked to -inf), averaged over its rows."""
    x = _moments(m, "m")
    n = _validate.integer(size, "size", minimum=1)
    causal = _validate.flag(causal, "causal")
    return Moments(1.0 / n, _sum_sq_given(x.variance, n, n if causal else 1, causal) / n)


def log_softmax(m: MomentsLike, size: int) -> Moments:
    """log_softmax over `size` iid N(mu, sigma^2) logits: x - log sum_j e^(x_j), whose
    log-sum-exp is mu + log(size) + sigma^2 / 2 for many logits (the lognormal sum's
    mean), and varies little from row to row: mean -(log(size) + sigma^2 / 2), variance
    sigma^2 (1 - 1/size). Within 0.5% for 1000 logits of unit variance, 3% (mean) and
    5% (second moment) for 10, more for two."""
    x = _moments(m, "m")
    n = _validate.integer(size, "size", minimum=1)
    mean = -(math.log(n) + 0.5 * x.variance)
    return Moments(mean, mean * mean + x.variance * (1.0 - 1.0 / n))


def attention(q: MomentsLike, k: MomentsLike, v: MomentsLike, keys: int, head_dim: int, scale: float | None = None,
              causal: bool = False, *, queries: int | None = None, dropout_p: float = 0.0,
              k_common: float | None = None, v_common: float | None = None) -> Moments:
    """Output moments of softmax(scale q k^T) v (F.scaled_dot_product_attention).

    Each of k and v is a part common to every position (second moment
    kappa, at least mu^2: the mean is common) plus a part independent from
    position to position. Within a query row the logits l_j = scale q.k_j
    share q; their common part (from k's common part) cancels in the
    softmax, and given q they are iid N(0, scale^2 |q|^2 (nu_k - kappa_k)).
    With a = softmax(l) and S = sum_j a_j^2, the output sum_j a_j v_j (v
    independent of a) has mean mu_v and second moment
    E[S] nu_v / (1 - p) + (1 - E[S]) kappa_v (attention dropout p,
    inverted): the common part passes whole, the rest is averaged. E[S] is
    computed exactly for iid Gaussian logits (uniform attention gives 1/T;
    large logit variance c gives ~ e^c / T) and averaged over the fluctuation
    of |q|^2 across rows (Gaussian q entries) and, with causal, over rows:
    row i sees min(i + 1, keys) keys (torch's top-left causal mask).
    Correlation between keys and values of the same tokens is not modelled.

    Arguments: q, k, v: Moments of the entries; keys: number of keys (source
    length); head_dim: d; scale: default 1/sqrt(d); queries: number of query
    rows (default keys; used with causal); k_common, v_common: kappa of k and
    v (default mu^2: positions independent around the mean).
    """
    mq, mk, mv = _moments(q, "q"), _moments(k, "k"), _moments(v, "v")
    keys = _validate.integer(keys, "keys", minimum=1)
    d = _validate.integer(head_dim, "head_dim", minimum=1)
    scale = 1.0 / math.sqrt(d) if scale is None else _validate.real(scale, "scale")
    causal = _validate.flag(causal, "causal")
    queries = keys if queries is None else _validate.integer(queries, "queries", minimum=1)
    p = _validate.real(dropout_p, "dropout_p", _validate.BOUNDED_LT_0_1)
    kappa_k = _common(mk, k_common, "k_common")
    kappa_v = _common(mv, v_common, "v_common")
    c = scale * scale * d * mq.second * (mk.second - kappa_k)
    # |q|^2 over d Gaussian entries: mean d nu_q, variance d (2 var_q^2 + 4 mu_q^2 var_q)
    spread = 2.0 * mq.variance ** 2 + 4.0 * mq.mean ** 2 * mq.variance
    shape = math.inf if spread == 0.0 else d * mq.second ** 2 / spread
    s = _sum_sq(c, keys, queries, causal, shape)
    return Moments(mv.mean, s * mv.second / (1.0 - p) + (1.0 - s) * kappa_v)


def attention_common(v: MomentsLike, keys: int, causal: bool = False, *, queries: int | None = None,
                     v_common: float | None = None) -> float:
    """kappa (second moment of the part common to every query) of attention's
    output: v's common part, plus the independent part averaged with the
    weights two different queries share, E[sum_j a_tj a_t'j] ~ 1/T for T keys
    (different rows' logits independent; the uniform-attention value, which
    peaked attention keeps on average). With causal, row t sees t + 1 keys
    and the pair average is (2T - H_T) / T^2 for T rows (H_T the harmonic number)."""
    mv = _moments(v, "v")
    keys = _validate.integer(keys, "keys", minimum=1)
    causal = _validate.flag(causal, "causal")
    queries = keys if queries is None else _validate.integer(queries, "queries", minimum=1)
    kappa_v = _common(mv, v_common, "v_common")
    if causal and queries == keys:
        shared = (2.0 * keys - harmonic(keys)) / (keys * keys)
    else:
        shared = 1.0 / keys
    return kappa_v + shared * (mv.second - kappa_v)


def _common(m: Moments, kappa: float | None, name: str) -> float:
    """A common part's second moment: mu^2 by default, else kappa checked against [mu^2, nu]."""
    if kappa is None:
        return m.mean * m.mean
    kappa = _validate.real(kappa, name, _validate.NON_NEGATIVE)
    if kappa > m.second * (1.0 + _MOMENT_RTOL) + 1e-300:
        raise ValueError(f"{name} must be at most the second moment {m.second}, got {kappa}")
    return min(max(kappa, m.mean * m.mean), m.second)


@functools.lru_cache(maxsize=8)
def _hermite(nodes: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Hermite nodes and weights for E[f(Z)], Z ~ N(0, 1) (weights summing to 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return x, w / w.sum()


def elementwise_common(g: ElementFunction, moments_in: MomentsLike, common: float, *,
                       param: float | None = None, nodes: int = 32) -> float:
    """kappa of g(z) for z = c + e: c common to every position, N(mu, kappa - mu^2),
    e independent from position to position, N(0, nu - kappa). The output's
    common part is E_e[g(c + e)], so kappa_out = E_c[(E_e g(c + e))^2], by
    Gauss-Hermite quadrature in both variables (`nodes` each).
    kappa = mu^2 gives (E g)^2; kappa = nu gives E[g^2]."""
    m = _moments(moments_in, "moments_in")
    kappa = _common(m, common, "common")
    fn = resolve(g, param).fn
    x, w = _hermite(_validate.integer(nodes, "nodes", minimum=2))
    c = m.mean + math.sqrt(max(kappa - m.mean * m.mean, 0.0)) * x
    e = math.sqrt(max(m.second - kappa, 0.0)) * x
    inner = np.asarray(fn((c[:, None] + e[None, :]).ravel()), dtype=np.float64).reshape(len(x), len(x)) @ w
    return float(w @ (inner * inner))


# ---------------------------------------------------------------- fusion

FUSIBLE = frozenset({"elementwise", "add", "sub", "mul", "div", "scale", "shift", "pow"})


def _fusible(graph: Graph, node: Any) -> bool:
    if node.kind not in FUSIBLE or node.replay is None or not node.inputs:
        return False
    # A per-channel parameter (PReLU with one slope per channel) makes the op
    # differ across elements: not a function of one scalar.
    for name in node.params.values():
        param = graph.params.get(name)
        if param is None or param.numel() != 1:
            return False
    return True


def _source(graph: Graph, index: int, memo: dict[int, int]) -> int:
    """The node whose value `index`'s value is a per-element function of (itself if none)."""
    stack = [index]
    while stack:
        i = stack[-1]
        if i in memo:
            stack.pop()
            continue
        node = graph.nodes[i]
        if not _fusible(graph, node):
            memo[i] = i
            stack.pop()
            continue
        pending = [j for j in node.inputs if j not in memo]
        if pending:
            stack.extend(pending)
            continue
        sources = {memo[j] for j in node.inputs}
        memo[i] = sources.pop() if len(sources) == 1 else i
        stack.pop()
    return memo[index]


def region_nodes(graph: Graph, source: int, end: int) -> list[int]:
    """The nodes between `source` (excluded) and `end` (included) of a fused region,
    in execution order: what `fuse` replays."""
    region: set[int] = set()
    stack = [end]
    while stack:
        i = stack.pop()
        if i != source and i not in region:
            region.add(i)
            stack.extend(graph.nodes[i].inputs)
    return sorted(region)


def fuse(graph: Graph, index: int,
         memo: dict[int, int] | None = None) -> tuple[int, FusedRegion] | None:
    """(source_index, g) when node `index` computes g(source) per element through
    elementwise / add / sub / mul / div / scale / shift / pow nodes only; None otherwise.

    The source is the deepest such node: for relu(a + b) with a, b independent
    it is the add node, for x * sigmoid(1.5 x) it is x, so correlated operands
    (x * sigmoid(x), x + relu(x)) are integrated as one function of one
    Gaussian by `elementwise` instead of being treated as independent. Views,
    reductions, parameters and constants end a chain (their values are not
    per-element functions of the source). g replays the recorded ops
    (Node.replay) on a float64 tensor (or array, returning an array).
    memo: a dict reused across calls on the same graph, so a pass over
    every node costs time linear in the graph.
    """
    memo = {} if memo is None else memo
    index = _validate.integer(index, "index", minimum=0, maximum=len(graph.nodes) - 1)
    source = _source(graph, index, memo)
    if source == index:
        return None
    # every node of the region is fusible, so it has a replay
    steps = [(i, cast("Callable[..., torch.Tensor]", graph.nodes[i].replay), tuple(graph.nodes[i].inputs))
             for i in region_nodes(graph, source, index)]

    return source, FusedRegion(steps, source, index)


class FusedRegion:
    """g(source) of a fused region: the recorded ops replayed on a float64 tensor (or
    array, returning an array), and its derivative as autograd takes it in training
    (`elementwise_derivative`, which `activations.resolve` uses instead of a central
    difference): a step such as nn.Threshold's or Hardshrink's jump has no derivative
    there, where a difference across it reads jump / h (chi_1 6.5 for Threshold(0.1, 0),
    a false trade-off)."""

    def __init__(self, steps: list[tuple[int, Callable[..., torch.Tensor], tuple[int, ...]]], source: int,
                 index: int) -> None:
        self.steps, self.source, self.index = steps, source, index

    def _run(self, t: torch.Tensor) -> torch.Tensor:
        values = {self.source: t}
        for i, replay, inputs in self.steps:
            values[i] = replay(*(values[j] for j in inputs))
        return torch.as_tensor(values[self.index], dtype=torch.float64)

    def __call__(self, x: Any) -> Any:
        is_tensor = isinstance(x, torch.Tensor)
        # a copy: an in-place op in the chain (relu_) must not write into the caller's array
        t = x.to(torch.float64).clone() if is_tensor else torch.tensor(np.asarray(x, dtype=np.float64))
        with torch.no_grad():
            out = self._run(t)
        return out if is_tensor else out.numpy()

    def elementwise_derivative(self, x: Any) -> Any:
        """dg/dx per element by autograd, on float64 arrays."""
        leaf = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
        with torch.enable_grad():
            out = self._run(leaf.clone())
            # constant in x (a comparison's mask): no gradient reaches x
            grad = torch.autograd.grad(out.sum(), leaf, allow_unused=True)[0] if out.requires_grad else None
        return np.zeros(tuple(leaf.shape)) if grad is None else grad.numpy()
