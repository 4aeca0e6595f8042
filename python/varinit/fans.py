"""Fan-in and fan-out of a weight, for the layer that owns it.

The default is torch's rule for the (out, in, *kernel) layout: fan_in =
shape[1] * prod(kernel), fan_out = shape[0] * prod(kernel). `in_axis` and
`out_axis` select other layouts with JAX's semantics (the remaining axes are
the receptive field). `layer` corrects the rule where the shape alone misleads:

- "conv" with `groups` g, weight (C_out, C_in/g, *k): each output sees
  C_in/g * prod(k) inputs and each input feeds C_out/g * prod(k) outputs
  (torch overcounts fan_out by g: pytorch issue 23854). `stride` is
  accepted and leaves both unchanged (the issue's rule; with stride s an
  input actually reaches prod(k)/prod(s) positions per output channel on
  average, the mirror image of the transposed case below).
- "conv_transpose", weight (C_in, C_out/g, *k), `stride` s: each output
  position receives C_in/g * prod(k)/prod(s) taps on average, each input
  feeds C_out/g * prod(k) outputs (torch swaps the two and ignores stride).
- `blocks` b: a fused matrix (QKV: 3, LSTM: 4, GRU: 3) of b equal blocks
  stacked along the output axis; each block is its own layer, so the output
  fan is divided by b (pytorch issue 166378).

From fans to the variance a weight needs (`weight_plan`), for every fan-based
init (kaiming_*, xavier_*, lecun_*, variance_scaling_):

1. fans: varinit.fans(shape, layer, groups, stride, blocks, in_axis, out_axis);
2. density d (the fraction of weights a pruning mask keeps): each unit
   receives d * fan_in nonzero inputs and feeds d * fan_out outputs, so both
   fans are multiplied by d (Frankle & Carbin 2019 rescale this way);
3. the variance from the rule (He, Glorot, variance scaling) with those fans,
   multiplied by keep_prob / input_var: inverted dropout with keep
   probability p multiplies the second moment of the inputs by 1/p
   (E[(m x / p)^2] = E[x^2] / p for m ~ Bernoulli(p)), and inputs of
   variance v multiply the output variance by v; dividing them out keeps the
   layer's output variance at the rule's target;
4. phase balancing of strided transposed convolutions (see `phase_scale`).
"""
import math
from collections import namedtuple
from numbers import Integral

import numpy as np

from . import _validate

LAYERS = ("linear", "conv", "conv_transpose")


def _axes(axis, ndim, name):
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, Integral):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={axis!r} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis!r} names an axis twice")
    return tuple(out)


def _positive_int(value, name):
    if type(value) is int and value >= 1:  # the common case, without the slower ABC check
        return value
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _stride_product(stride, kernel_dims):
    if isinstance(stride, (tuple, list)):
        if len(stride) != kernel_dims:
            raise ValueError(
                f"stride must be an int or a tuple of {kernel_dims} ints (one per kernel axis), got {stride!r}"
            )
        return math.prod(_positive_int(s, "stride") for s in stride)
    return _positive_int(stride, "stride") ** kernel_dims


def _divide(count, by, what):
    if count % by:
        raise ValueError(f"{what} ({count}) must be divisible by {by}")
    return count // by


def _check_rank(shape):
    if len(shape) < 2:  # torch's message, for parity
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )


def torch_rule_fans(shape):
    """(fan_in, fan_out) by torch's rule for the (out, in, *kernel) layout.

    What `fans` returns when no layer keyword is given; init functions call it
    directly in that case, which keeps a small tensor's init cheap.
    """
    _check_rank(shape)
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def fans(shape, *, layer=None, groups=1, stride=1, blocks=1, in_axis=None, out_axis=None):
    """(fan_in, fan_out) of a weight of this shape.

    fan_in = inputs per output unit, fan_out = outputs per input unit. Both are
    ints, except a strided transposed convolution's fan_in, which is an average.

    Example::

        >>> varinit.fans((64, 1, 3, 3), layer="conv", groups=64)   # depthwise
        (9, 9)
        >>> varinit.fans((128, 64), in_axis=0, out_axis=1)           # (in, out) matrix
        (128, 64)
    """
    shape = tuple(shape)
    ndim = len(shape)
    _check_rank(shape)
    if layer is not None and layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS} or None, got {layer!r}")
    groups = _positive_int(groups, "groups")
    blocks = _positive_int(blocks, "blocks")
    if in_axis is not None or out_axis is not None:
        if layer is not None and layer != "linear":
            raise ValueError("in_axis/out_axis describe a layout; use them with layer=None or 'linear'")
        if in_axis is None or out_axis is None:
            if ndim != 2:
                raise ValueError("give both in_axis and out_axis for tensors with more than 2 dimensions")
            given = _axes(in_axis if in_axis is not None else out_axis, ndim, "in_axis/out_axis")
            other = (1 - given[0],)
            in_axes, out_axes = (given, other) if in_axis is not None else (other, given)
        else:
            in_axes, out_axes = _axes(in_axis, ndim, "in_axis"), _axes(out_axis, ndim, "out_axis")
        if set(in_axes) & set(out_axes):
            raise ValueError("in_axis and out_axis must name different axes")
        receptive = math.prod(s for k, s in enumerate(shape) if k not in in_axes + out_axes)
        n_in = math.prod(shape[k] for k in in_axes)
        n_out = _divide(math.prod(shape[k] for k in out_axes), blocks, "the output axis size")
        return n_in * receptive, n_out * receptive
    receptive = math.prod(shape[2:])
    if layer == "conv_transpose":
        if ndim < 3:
            raise ValueError("a conv_transpose weight has shape (C_in, C_out/groups, *kernel)")
        c_in = _divide(shape[0], groups, "C_in (dim 0)")
        c_out = _divide(shape[1], blocks, "C_out/groups (dim 1)")
        taps = _stride_product(stride, ndim - 2)
        fan_in = c_in * receptive
        fan_in = fan_in // taps if fan_in % taps == 0 else fan_in / taps
        return fan_in, c_out * receptive
    if layer == "conv":
        _stride_product(stride, ndim - 2)  # validated; a strided conv's fans are its kernel's
    elif stride != 1:
        raise ValueError("stride applies to layer='conv' or 'conv_transpose'")
    if groups != 1 and layer != "conv":
        raise ValueError("groups only applies to layer='conv' or 'conv_transpose'")
    c_out = _divide(shape[0], groups * blocks, "dim 0")
    return shape[1] * receptive, c_out * receptive


LAYOUT_KEYWORDS = ("layer", "groups", "stride", "blocks", "in_axis", "out_axis")
ADJUSTMENT_KEYWORDS = ("keep_prob", "density", "input_var", "phase_balanced", "dilation")

WeightPlan = namedtuple("WeightPlan", ["fan_in", "fan_out", "variance_factor", "tap_scale"])
WeightPlan.__doc__ = """Effective fans (density applied), the factor keep_prob / input_var on
the rule's variance, and the per-tap std multipliers (None: all 1) shaped to broadcast
against the weight."""


def _per_axis(value, count, name):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * count
    if len(items) != count:
        raise ValueError(f"{name} must be an int or a tuple of {count} ints (one per kernel axis), got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
            raise ValueError(f"{name} must hold positive integers, got {value!r}")
    return tuple(int(v) for v in items)


def phase_scale(kernel, stride, dilation=1):
    """Per-tap std multipliers that give every output phase of a transposed conv the same variance.

    Along an axis with kernel k, stride s, dilation d, tap j lands on output
    positions of phase (d j) mod s, and an output position of phase r sums
    n_r taps (n_r = number of j with (d j) mod s = r; n_r = ceil((k - r) / s)
    for d = 1). He's rule with fan_in = C_in/g * prod(k) / prod(s) gives
    phase r the variance n_r s / k (the checkerboard, Odena et al. 2016).
    Multiplying tap j's std by sqrt((k / s) / n_{r(j)}) gives every phase
    variance 1 (per axis; the factors multiply across axes). When k is a
    multiple of s (and d is 1) every multiplier is 1; for k >= s the mean of
    the squared multipliers over taps is 1, so the weight's overall variance
    is unchanged.

    Example::

        >>> varinit.fans.phase_scale((3,), (2,))   # taps 0, 2 -> phase 0; tap 1 -> phase 1
        array([0.8660254 , 1.22474487, 0.8660254 ])
    """
    kernel = tuple(int(k) for k in kernel)
    stride = _per_axis(stride, len(kernel), "stride")
    dilation = _per_axis(dilation, len(kernel), "dilation")
    factor = np.ones(kernel, dtype=np.float64)
    for axis, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
        phases = (d * np.arange(k)) % s
        counts = np.bincount(phases, minlength=s)
        along = np.sqrt((k / s) / counts[phases])
        shape = [1] * len(kernel)
        shape[axis] = k
        factor = factor * along.reshape(shape)
    return factor


def weight_plan(shape, *, keep_prob=1.0, density=1.0, input_var=1.0, phase_balanced=False,
                dilation=1, **layout):
    """The WeightPlan of a weight of this (global) shape; validates every keyword."""
    unknown = sorted(set(layout) - set(LAYOUT_KEYWORDS))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument {unknown[0]!r}; fan-based inits take "
            f"{', '.join(LAYOUT_KEYWORDS + ADJUSTMENT_KEYWORDS)}"
        )
    keep_prob = _validate.fraction(keep_prob, "keep_prob")
    density = _validate.fraction(density, "density")
    input_var = _validate.positive(input_var, "input_var")
    if not isinstance(phase_balanced, (bool, np.bool_)):
        raise TypeError(f"phase_balanced must be True or False, got {phase_balanced!r}")
    fan_in, fan_out = fans(shape, **layout)
    if layout.get("layer") in ("conv", "conv_transpose"):
        _per_axis(dilation, len(shape) - 2, "dilation")  # accepted; it changes no fan
    elif dilation != 1:
        raise ValueError("dilation applies to layer='conv' or 'conv_transpose'")
    tap_scale = None
    if phase_balanced:
        if layout.get("layer") != "conv_transpose":
            raise ValueError("phase_balanced=True applies to layer='conv_transpose' only")
        factor = phase_scale(tuple(shape)[2:], layout.get("stride", 1), dilation)
        tap_scale = factor.reshape((1, 1) + factor.shape)
    return WeightPlan(fan_in * density, fan_out * density, keep_prob / input_var, tap_scale)


def apply_tap_scale(arr, tap_scale, start):
    """Multiply the filled block `arr` (at `start` of the global weight) by its taps' factors."""
    if tap_scale is None:
        return
    if start is not None:
        index = tuple(slice(s, s + n) if tap_scale.shape[a] > 1 else slice(None)
                      for a, (s, n) in enumerate(zip(start, arr.shape)))
        tap_scale = tap_scale[index]
    scaled = arr.astype(np.float64) * tap_scale
    arr[...] = scaled.astype(arr.dtype)
