"""Fan-in and fan-out of a weight, for the layer that owns it.

The default is torch's rule for the (out, in, *kernel) layout: fan_in =
shape[1] * prod(kernel), fan_out = shape[0] * prod(kernel). `in_axis` and
`out_axis` select other layouts with JAX's semantics (the remaining axes are
the receptive field). `layer` corrects the rule where the shape alone misleads:

- "conv" with `groups` g, weight (C_out, C_in/g, *k), `stride` s: each
  output sees C_in/g * prod(k) inputs (fan_in), and each input feeds
  C_out/g * prod(k)/prod(s) outputs on average (fan_out): with stride s an
  input position is reached by prod(k)/prod(s) taps per output channel on
  average, so the backward pass sums that many terms (the mirror image of the
  transposed case below). torch overcounts fan_out by g (pytorch issue
  23854) and ignores the stride, so its mode="fan_out" leaves the input
  gradient of a stride-2 2-d conv at 1/4 of the target variance.
- "conv_transpose", weight (C_in, C_out/g, *k), `stride` s: each output
  position receives C_in/g * prod(k)/prod(s) taps on average, each input
  feeds C_out/g * prod(k) outputs (torch swaps the two and ignores stride).
- `blocks` b: a fused matrix (QKV: 3, LSTM: 4, GRU: 3) of b equal blocks
  stacked along the output axis; each block is its own layer, so the output
  fan is divided by b (pytorch issue 166378).
- `batch_axis`: axes that index independent layers stacked into one array
  (Flax's nn.scan/nn.vmap parameters, a stack of experts), as in JAX's
  variance_scaling: they count in neither fan. The fans are those of one
  layer, the shape without those axes, by the rules above (in_axis and
  out_axis still count the axes of the whole shape).

From fans to the variance a weight needs (`weight_plan`), for every fan-based
init (kaiming_*, xavier_*, lecun_*, variance_scaling_):

1. fans: varinit.fans(shape, layer, groups, stride, blocks, in_axis, out_axis,
   batch_axis);
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
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _core, _validate
from ._typing import Axes, FloatArray, LayerKind, PerAxis, Shape

LAYERS: tuple[LayerKind, ...] = ("linear", "conv", "conv_transpose")


def _stride_product(stride: PerAxis, kernel_dims: int) -> int:
    return math.prod(_validate.per_axis(stride, "stride", kernel_dims))


def _divide(count: int, by: int, what: str) -> int:
    if count % by:
        raise ValueError(f"{what} ({count}) must be divisible by {by}")
    return count // by


def _check_rank(shape: Shape) -> None:
    if len(shape) < 2:  # torch's message, for parity
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )


def torch_rule_fans(shape: tuple[int, ...]) -> tuple[int | float, int | float]:
    """(fan_in, fan_out) by torch's rule for the (out, in, *kernel) layout.

    What `fans` returns when no layer keyword is given; init functions call it
    directly in that case, which keeps a small tensor's init cheap.
    """
    _check_rank(shape)
    return _core.fans(shape)


def one_layer(shape: tuple[int, ...], batch_axis: Axes | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape of one layer, batch axes): `shape` (a validated tuple) without the axes
    `batch_axis` names, and those axes as a sorted tuple of non-negative ints.

    batch_axis is an axis, a tuple (list) of axes, or () / None for none.
    """
    if batch_axis is None:
        return shape, ()
    batch = tuple(sorted(_validate.axes(batch_axis, len(shape), "batch_axis")))
    if not batch:
        return shape, ()
    layer_shape = tuple(n for k, n in enumerate(shape) if k not in batch)
    if len(layer_shape) < 2:
        raise ValueError(
            f"batch_axis={_validate.shown(batch_axis)} leaves {len(layer_shape)} of the {len(shape)} "
            f"axes of shape {shape}; one layer's weight needs at least 2 (an input and an output axis)"
        )
    return layer_shape, batch


def _renumber(axis: Axes | None, name: str, ndim: int, batch: tuple[int, ...]) -> tuple[int, ...] | None:
    """in_axis/out_axis (axes of the whole shape) as axes of one layer's shape."""
    if axis is None:
        return None
    axes = _validate.axes(axis, ndim, name)
    for a in axes:
        if a in batch:
            raise ValueError(f"{name}={_validate.shown(axis)} and batch_axis both name axis {a}")
    return tuple(a - sum(b < a for b in batch) for a in axes)


def fans(shape: Shape, *, layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1,
         blocks: int = 1, in_axis: Axes | None = None, out_axis: Axes | None = None,
         batch_axis: Axes | None = ()) -> tuple[int | float, int | float]:
    """(fan_in, fan_out) of a weight of this shape, for the layer that owns it.

    fan_in is the number of inputs each output unit sums, fan_out the number
    of outputs each input unit feeds. With no keyword, torch's rule for the
    ``(out, in, *kernel)`` layout: fan_in = shape[1] * prod(kernel), fan_out =
    shape[0] * prod(kernel). The keywords correct it where the shape alone
    misleads:

    - ``layer="conv"``, weight ``(C_out, C_in/g, *k)``, ``groups`` g, ``stride`` s:
      fan_in = C_in/g * prod(k), fan_out = C_out/g * prod(k) / prod(s) (torch
      overcounts fan_out by g, pytorch issue 23854, and ignores the stride);
    - ``layer="conv_transpose"``, weight ``(C_in, C_out/g, *k)``: fan_in = C_in/g *
      prod(k) / prod(s), fan_out = C_out/g * prod(k) (torch swaps the two);
    - ``blocks`` b: b equal blocks stacked along the output axis (QKV: 3, LSTM:
      4, GRU: 3), each its own layer: fan_out / b (pytorch issue 166378);
    - ``in_axis``/``out_axis``: another layout, with JAX's semantics (the other
      axes are the receptive field); ``batch_axis``: axes of stacked
      independent layers, which count in neither fan.

    Both fans are ints, except a strided convolution's fan_out and a strided
    transposed convolution's fan_in, which are averages (floats when the
    stride product does not divide them).

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, at least 2-D (after removing the batch axes).
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer; None is torch's shape rule.
    groups : int, default 1
        A convolution's groups.
    stride : int or tuple of int, default 1
        A convolution's stride (per spatial axis, or one for all).
    blocks : int, default 1
        Equal blocks fused along the output axis.
    in_axis, out_axis : int or tuple of int, optional
        The input and output axes (negative counts from the end); give both
        for tensors of more than 2 dimensions. Only with layer None or
        "linear".
    batch_axis : int or tuple of int, default ()
        Axes indexing independent layers stacked in one array (Flax's scanned
        layers, a stack of experts). in_axis and out_axis number the axes of
        the whole shape.

    Returns
    -------
    tuple
        (fan_in, fan_out), ints or floats.

    See Also
    --------
    varinit.kaiming_normal_, varinit.xavier_uniform_, varinit.variance_scaling_ :
        take the same keywords.

    References
    ----------
    .. [1] pytorch/pytorch issue 23854: the fan_out of grouped convolutions is
       counted over all groups.
    .. [2] pytorch/pytorch issue 166378: a fused QKV projection's fan_out counts
       the three projections as one layer.

    Examples
    --------
    >>> import varinit
    >>> varinit.fans((256, 128))                                  # torch's (out, in)
    (128, 256)
    >>> varinit.fans((128, 64), in_axis=0, out_axis=1)            # an (in, out) matrix
    (128, 64)
    >>> varinit.fans((64, 1, 3, 3), layer="conv", groups=64)      # depthwise; torch says (9, 576)
    (9, 9)
    >>> varinit.fans((64, 32, 3, 3), layer="conv", stride=2)      # 9 taps over 4 positions
    (288, 144)
    >>> varinit.fans((128, 64, 3, 3), layer="conv_transpose", stride=2)
    (288, 576)
    >>> varinit.fans((768, 256), blocks=3)                        # a packed QKV projection
    (256, 256)
    >>> varinit.fans((12, 128, 64), in_axis=1, out_axis=2, batch_axis=0)   # 12 stacked layers
    (128, 64)
    """
    shape = _validate.index_tuple(shape, "shape")
    layer_shape, batch = one_layer(shape, batch_axis)
    if batch:
        in_axis = _renumber(in_axis, "in_axis", len(shape), batch)
        out_axis = _renumber(out_axis, "out_axis", len(shape), batch)
        shape = layer_shape
    ndim = len(shape)
    _check_rank(shape)
    _validate.choice(layer, "layer", LAYERS + (None,))
    groups = _validate.integer(groups, "groups", minimum=1)
    blocks = _validate.integer(blocks, "blocks", minimum=1)
    if in_axis is not None or out_axis is not None:
        if layer is not None and layer != "linear":
            raise ValueError("in_axis/out_axis describe a layout; use them with layer=None or 'linear'")
        if in_axis is None or out_axis is None:
            if ndim != 2:
                raise ValueError("give both in_axis and out_axis for tensors with more than 2 dimensions")
            given = _validate.axes(in_axis if in_axis is not None else out_axis, ndim, "in_axis/out_axis")
            other = (1 - given[0],)
            in_axes, out_axes = (given, other) if in_axis is not None else (other, given)
        else:
            in_axes, out_axes = _validate.axes(in_axis, ndim, "in_axis"), _validate.axes(out_axis, ndim, "out_axis")
        if set(in_axes) & set(out_axes):
            raise ValueError("in_axis and out_axis must name different axes")
        _divide(math.prod(shape[k] for k in out_axes), blocks, "the output axis size")
        # groups and stride are not read with axes: they describe a layout, not a convolution
        return _core.fans(shape, _core.LAYER_DEFAULT, 1, None, blocks, in_axes, out_axes)
    if layer == "conv_transpose":
        if ndim < 3:
            raise ValueError("a conv_transpose weight has shape (C_in, C_out/groups, *kernel)")
        _divide(shape[0], groups, "C_in (dim 0)")
        _divide(shape[1], blocks, "C_out/groups (dim 1)")
        _stride_product(stride, ndim - 2)
        return _core.fans(shape, _core.LAYER_CONV_TRANSPOSE, groups, stride, blocks)
    if layer == "conv":
        _stride_product(stride, ndim - 2)
        code = _core.LAYER_CONV
    elif _validate.integer(stride, "stride") != 1:
        raise ValueError("stride applies to layer='conv' or 'conv_transpose'")
    else:
        code = _core.LAYER_LINEAR if layer == "linear" else _core.LAYER_DEFAULT
    if groups != 1 and layer != "conv":
        raise ValueError("groups only applies to layer='conv' or 'conv_transpose'")
    _divide(shape[0], groups * blocks, "dim 0")
    return _core.fans(shape, code, groups, stride if layer == "conv" else None, blocks)


LAYOUT_KEYWORDS: tuple[str, ...] = ("layer", "groups", "stride", "blocks", "in_axis", "out_axis")
# A keyword of the fills but not a field of varinit.layers.Layer, which holds one
# layer's weight (it has one forward pass; a stack of layers has several).
STACK_KEYWORDS: tuple[str, ...] = ("batch_axis",)
ADJUSTMENT_KEYWORDS: tuple[str, ...] = ("keep_prob", "density", "input_var", "phase_balanced", "dilation")


class WeightPlan(NamedTuple):
    """Effective fans (density applied), the factor keep_prob / input_var on
    the rule's variance, and the per-tap std multipliers (None: all 1) shaped to broadcast
    against the weight."""

    fan_in: int | float
    fan_out: int | float
    variance_factor: float
    tap_scale: FloatArray | None


def phase_scale(kernel: Shape, stride: PerAxis, dilation: PerAxis = 1) -> FloatArray:
    """Per-tap std multipliers that give every output phase of a transposed convolution the same variance.

    Along an axis with kernel k, stride s, dilation d, tap j lands on output
    positions of phase (d j) mod s, and an output position of phase r sums
    n_r taps (n_r = number of j with (d j) mod s = r; n_r = ceil((k - r) / s)
    for d = 1). He's rule with fan_in = C_in/g * prod(k) / prod(s) gives
    phase r the variance n_r s / k: the checkerboard of Odena et al. (2016).
    Multiplying tap j's std by sqrt((k / s) / n_{r(j)}) gives every phase
    variance 1 (per axis; the factors multiply across axes). When k is a
    multiple of s (and d is 1) every multiplier is 1; when the taps reach
    every phase (k >= s and gcd(d, s) = 1) the mean of the squared
    multipliers over taps is 1, so the weight's overall variance is
    unchanged. Phases no tap reaches stay at zero, and the mean square is
    then below 1: phase_balanced=True refuses those layers
    (`check_phase_balanced`).

    Parameters
    ----------
    kernel : tuple of int
        The kernel size per spatial axis.
    stride : int or tuple of int
        The stride, per axis or one for all.
    dilation : int or tuple of int, default 1
        The dilation, per axis or one for all.

    Returns
    -------
    ndarray
        float64 multipliers of shape `kernel`.

    References
    ----------
    .. [1] A. Odena, V. Dumoulin and C. Olah, "Deconvolution and checkerboard
       artifacts", Distill, 2016.

    Examples
    --------
    >>> import varinit
    >>> varinit.fan_rules.phase_scale((3,), (2,))   # taps 0, 2 -> phase 0; tap 1 -> phase 1
    array([0.8660254 , 1.22474487, 0.8660254 ])
    >>> print(f"{(varinit.fan_rules.phase_scale((3, 3), 2) ** 2).mean():.3f}")
    1.000
    """
    kernel = tuple(int(k) for k in kernel)
    stride = _validate.per_axis(stride, "stride", len(kernel))
    dilation = _validate.per_axis(dilation, "dilation", len(kernel))
    return _core.phase_scale(kernel, stride, dilation)


def check_phase_balanced(kernel: Shape, stride: PerAxis, dilation: PerAxis = 1) -> None:
    """ValueError unless phase balancing can give every output phase the same variance.

    Along an axis, tap j of a transposed conv reaches the output phase (d j) mod s,
    so the taps reach min(k, s / gcd(d, s)) of the s phases. When that is fewer than
    s (a dilation sharing a factor with the stride, or a kernel smaller than the
    stride), the other phases' outputs receive no tap whatever the weights: no per-tap
    scale can balance them, and phase_scale's multipliers, which give the reached
    phases the target variance, leave the weight's variance at prod(reached / s) of
    He's (a quarter for k = 3, s = 2, d = 2 in 2-d). `kernel`, `stride` and `dilation`
    are validated per axis.
    """
    kernel = tuple(kernel)
    stride = _validate.per_axis(stride, "stride", len(kernel))
    dilation = _validate.per_axis(dilation, "dilation", len(kernel))
    for axis, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
        reached = min(k, s // math.gcd(s, d))
        if k and reached < s:  # an empty kernel fills nothing
            why = (f"gcd(dilation, stride) = {math.gcd(s, d)}" if s // math.gcd(s, d) < s
                   else "the kernel is smaller than the stride")
            raise ValueError(
                f"phase_balanced=True: along kernel axis {axis}, kernel {k} with stride {s} and "
                f"dilation {d} reaches only {reached} of the {s} output phases ({why}); the outputs "
                "of the other phases get no tap whatever the weights, so no per-tap scale balances "
                f"them (the weight variance would be {reached}/{s} of He's along this axis). Use "
                "phase_balanced=False, or a dilation that shares no factor with the stride and a "
                "kernel at least as large as the stride"
            )


def weight_plan(shape: Shape, *, layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1,
                blocks: int = 1, in_axis: Axes | None = None, out_axis: Axes | None = None,
                batch_axis: Axes | None = (), keep_prob: float = 1.0, density: float = 1.0,
                input_var: float = 1.0, phase_balanced: bool = False, dilation: PerAxis = 1) -> WeightPlan:
    """The WeightPlan of a weight of this (global) shape; validates every keyword.

    The keywords are those of `fans` and the variance adjustments (keep_prob,
    density, input_var, phase_balanced with dilation); each default means "not
    given".
    """
    keep_prob = _validate.real(keep_prob, "keep_prob", _validate.BOUNDED_GT_0_1)
    density = _validate.real(density, "density", _validate.BOUNDED_GT_0_1)
    input_var = _validate.real(input_var, "input_var", _validate.POSITIVE)
    if math.isinf(keep_prob / input_var):
        raise ValueError(f"input_var={input_var} is too small: keep_prob / input_var overflows a float")
    phase_balanced = _validate.flag(phase_balanced, "phase_balanced")
    fan_in, fan_out = fans(shape, layer=layer, groups=groups, stride=stride, blocks=blocks, in_axis=in_axis,
                           out_axis=out_axis, batch_axis=batch_axis)
    # the kernel axes are those of one layer: the shape without its batch axes
    layer_shape, batch = one_layer(tuple(shape), batch_axis)
    if layer in ("conv", "conv_transpose"):
        _validate.per_axis(dilation, "dilation", len(layer_shape) - 2)  # accepted; it changes no fan
    elif _validate.integer(dilation, "dilation") != 1:
        raise ValueError("dilation applies to layer='conv' or 'conv_transpose'")
    tap_scale = None
    if phase_balanced:
        if layer != "conv_transpose":
            raise ValueError("phase_balanced=True applies to layer='conv_transpose' only")
        check_phase_balanced(layer_shape[2:], stride, dilation)
        factor = phase_scale(layer_shape[2:], stride, dilation)
        # every stacked layer gets the same multipliers: size-1 batch axes broadcast
        tap_scale = np.expand_dims(factor.reshape((1, 1) + factor.shape), batch)
    return WeightPlan(fan_in * density, fan_out * density, keep_prob / input_var, tap_scale)


def tap_scale_block(tap_scale: FloatArray, start: tuple[int, ...] | None, shape: tuple[int, ...]) -> FloatArray:
    """The part of the per-tap multipliers that applies to the block of `shape` at
    `start` of the global weight (the whole of them when start is None)."""
    if start is None:
        return tap_scale
    index = tuple(slice(s, s + n) if tap_scale.shape[a] > 1 else slice(None)
                  for a, (s, n) in enumerate(zip(start, shape)))
    return tap_scale[index]
