"""From a weight's shape and its layer to the variance its values need.

Every fan-based init (kaiming_*, xavier_*, lecun_*, variance_scaling_) goes
through `weight_plan`:

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
from collections import namedtuple
from numbers import Integral

import numpy as np

from . import arguments
from .fans import fans

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

        >>> varinit.layer_variance.phase_scale((3,), (2,))   # taps 0, 2 -> phase 0; tap 1 -> phase 1
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
    keep_prob = arguments.fraction(keep_prob, "keep_prob")
    density = arguments.fraction(density, "density")
    input_var = arguments.positive(input_var, "input_var")
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
