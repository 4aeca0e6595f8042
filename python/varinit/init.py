"""The initializers: torch.nn.init's names and semantics, plus variance scaling.

Every function fills `tensor` in place and returns it. `tensor` is a NumPy
array (float16, bfloat16, float32, float64; any layout) or a PyTorch CPU
tensor. Random functions take `generator=` (see varinit.generator.resolve)
and, keyword-only, `global_shape=` and `start=`: `tensor` is then the block at
`start` of a larger virtual tensor of shape `global_shape`, and receives
exactly the values the whole tensor would have there (fans come from the
global shape). Fan-based functions also take the layer keywords of
varinit.fans (`layer`, `groups`, `stride`, `blocks`, `in_axis`, `out_axis`)
and the variance adjustments of varinit.fan_rules: `keep_prob=`
(inverted dropout on the inputs), `density=` (fraction of weights kept by a
pruning mask), `input_var=` (input variance), and for
layer="conv_transpose" `phase_balanced=True` (with `dilation=`), which
removes the checkerboard of strided transposed convolutions.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, Optional, cast

import ml_dtypes
import numpy as np

from . import _arrays, _core, _validate
from . import generator as _generator_module
from ._arrays import (as_array, is_torch_tensor, staging_buffer, writes_in_place, writes_in_place_fast,
                      written_address)
from .activations import ALIASES as ACTIVATION_ALIASES
from .activations import NAMES as ACTIVATION_NAMES
from .fan_rules import WeightPlan, tap_scale_block, torch_rule_fans, weight_plan
from .gains import TORCH_GAIN_NAMES, calculate_gain
from .gains import gain as second_moment_gain
from ._typing import (
    ActivationName,
    Array,
    Axes,
    FanMode,
    FillableT,
    FloatArray,
    GeneratorLike,
    LayerKind,
    Nonlinearity,
    PerAxis,
    ScalingDistribution,
    ScalingMode,
    Shape,
    TorchGainName,
)
from .generator import SECONDARY_BIT, Generator, resolve, user_frame, warn_if_seed_reused

FAN_MODES: tuple[FanMode, ...] = ("fan_in", "fan_out")
SCALING_MODES: tuple[ScalingMode, ...] = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
SCALING_DISTRIBUTIONS: tuple[ScalingDistribution, ...] = ("truncated_normal", "normal", "untruncated_normal",
                                                          "uniform")
# Keras/JAX cut their truncated normal at +-2 of its own standard deviations.
TRUNCATION = 2.0
# Standard deviation of N(0, 1) cut to [-2, 2]: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)),
# computed by the C core's own CDF (0.8796256610342398); dividing the target std
# by it makes the truncated sample's std equal the target.
TRUNCATED_STD = math.sqrt(_core.truncnorm_moments(-TRUNCATION, TRUNCATION)[1])

# (global_shape, start) of a block fill, or (None, None) for a whole tensor
Region = tuple[Optional[tuple[int, ...]], Optional[tuple[int, ...]]]
# The keywords of weight_plan, in its order: layer, groups, stride, blocks, in_axis,
# out_axis, batch_axis, keep_prob, density, input_var, phase_balanced, dilation
Layout = tuple[Optional[LayerKind], int, PerAxis, int, Optional[Axes], Optional[Axes], Optional[Axes],
               float, float, float, bool, PerAxis]


# ---- argument checks ---------------------------------------------------------
def _region(arr: Array, global_shape: Shape | None, start: Shape | None) -> Region:
    """Validated (global_shape, start) tuples, or (None, None) for a whole tensor."""
    if global_shape is None and start is None:
        return None, None
    ndim = arr.ndim
    gshape = tuple(arr.shape) if global_shape is None else _validate.index_tuple(global_shape, "global_shape")
    first = (0,) * ndim if start is None else _validate.index_tuple(start, "start")
    for name, seq in (("global_shape", gshape), ("start", first)):
        if len(seq) != ndim:
            raise ValueError(f"{name} must have {ndim} entries (one per axis of tensor), got {len(seq)}")
    for ax, (n, g, s) in enumerate(zip(arr.shape, gshape, first)):
        if s + n > g:
            raise ValueError(
                f"the block does not fit: along axis {ax}, start {s} + size {n} exceeds global_shape {g}"
            )
    if math.prod(gshape) > _validate.INT64_MAX:
        # the C core indexes the global tensor's elements with int64
        raise ValueError(f"global_shape {gshape} has more than 2**63 - 1 elements")
    return gshape, first


def _draws_from_state(generator: GeneratorLike) -> bool:
    """True for generators whose state advances with each fill (None: the default
    generator or torch's; a varinit.Generator; a NumPy or torch generator), False for
    an int seed or a Stream, which give the same stream at every call."""
    if generator is None or isinstance(generator, (Generator, np.random.Generator)):
        return True
    cls = type(generator)
    return cls.__module__ in ("torch", "torch._C") and cls.__name__ == "Generator"


def _warn_region_from_state(generator: GeneratorLike, region: Region) -> None:
    _, depth = user_frame()   # point at the user's line, not at varinit's frames
    warnings.warn(
        f"a block fill (global_shape={region[0]}, start={region[1]}) drawing from "
        f"generator={'None' if generator is None else type(generator).__qualname__}: a stateful "
        "generator gives each call a new stream or key, so blocks filled by separate calls do not "
        "fit together into the whole tensor. Pass generator.stream(name) or an int seed, the same "
        "for every block.",
        UserWarning, stacklevel=depth,
    )


def _random_fill(tensor: FillableT, arr: Array, dist: int, p0: float, p1: float, p2: float, p3: float,
                 generator: GeneratorLike, region: Region, what: str,
                 tap_scale: FloatArray | None = None) -> FillableT:
    """Fill `arr` (a view of `tensor`) from one stream of `generator`.

    Everything that can fail is done first (the distribution's range against the
    dtype, the staging buffers a byte-swapped array or per-tap scaling needs),
    then the stream is taken: a call that fails uses none and writes nothing.
    `what` names the arguments the parameters came from, for the error.
    """
    if arr.size == 0:
        return tensor
    _check_representable(arr.dtype, dist, p0, p1, p2, p3, what)
    if region[0] is not None and region[0] != arr.shape and _draws_from_state(generator):
        # before the stream is taken: with warnings as errors, the call changes nothing
        _warn_region_from_state(generator, region)
    scaled: FloatArray | None
    if tap_scale is None:
        target, scaled = staging_buffer(arr), None
    else:
        target = np.empty(arr.shape, dtype=arr.dtype.newbyteorder("="))
        scaled = np.empty(arr.shape, dtype=np.float64)
    # as_array returns a NumPy array itself and a view of anything else
    key, stream = resolve(generator, arr is not tensor)
    _core.fill(target, dist, p0, p1, p2, p3, key, stream, *region)
    if tap_scale is not None and scaled is not None:
        # phase balancing multiplies each tap's values after sampling, in float64
        scaled[...] = target
        scaled *= tap_scale_block(tap_scale, region[1], arr.shape)
        arr[...] = scaled
    elif target is not arr:
        arr[...] = target
    if type(generator) is int and region[0] is None:
        warn_if_seed_reused(generator, written_address(arr))
    return tensor


# per dtype: (largest finite value, largest of the compute type, largest |z| of its
# normal sampler, eps, smallest subnormal); ml_dtypes.finfo alone costs more than a small fill
_LIMITS: dict[np.dtype[Any], tuple[float, float, float, float, float]] = {}


def _limits(dtype: np.dtype[Any]) -> tuple[float, float, float, float, float]:
    info = ml_dtypes.finfo(dtype)
    largest = float(info.max)
    # float16/bfloat16 are sampled in float32 and rounded
    compute_largest = largest if dtype.itemsize == 8 else float(np.finfo(np.float32).max)
    limits = _LIMITS[dtype] = (largest, compute_largest,
                               _core.normal_max_abs_z(1 if dtype.itemsize == 8 else 0),
                               float(info.eps), float(info.smallest_subnormal))
    return limits


def _check_representable(dtype: np.dtype[Any], dist: int, p0: float, p1: float, p2: float, p3: float,
                         what: str) -> None:
    """ValueError naming `what` when the distribution reaches beyond the largest finite
    value of `dtype`: the fill would hold inf or NaN."""
    largest, compute_largest, z, _, _ = _LIMITS.get(dtype) or _limits(dtype)
    if dist == _core.UNIFORM:
        low, high, width = p0, p1, p1 - p0
        # the width must fit the compute type too
        reach = max(abs(low), abs(high))
        fits = reach <= largest and width <= compute_largest
    else:
        low, high = p0 - z * p1, p0 + z * p1
        if dist == _core.TRUNC_NORMAL:
            low, high = max(low, p2), min(high, p3)
        reach = max(abs(low), abs(high))
        fits = reach <= largest
    if not fits:
        if dist == _core.UNIFORM:
            shown = f"U({low:g}, {high:g})"
        else:
            shown = f"N({p0:g}, {p1:g}^2)" + (f" cut to [{p2:g}, {p3:g}]" if dist == _core.TRUNC_NORMAL else "")
        raise ValueError(
            f"{what}: {shown} reaches {reach:.4g}, beyond the largest finite {dtype} ({largest:.4g}); "
            "the values would be inf or NaN"
        )


def _check_uniform_has_values(dtype: np.dtype[Any], a: float, b: float) -> None:
    """ValueError naming a and b when a < b but no value of `dtype` lies in [a, b):
    the fill clamps its values to the dtype's smallest value >= a and largest < b
    (the C core's plan), and there are none."""
    if not a < b:
        return  # a == b is the constant a, as torch's uniform_(a, a)
    largest, _, _, eps, smallest = _LIMITS.get(dtype) or _limits(dtype)
    if abs(a) <= largest and b - a > 2.0 * (abs(a) * eps + smallest):
        return  # the next value >= a is within one spacing (at most |a| eps + smallest) of a
    value = dtype.type
    with np.errstate(over="ignore"):
        first = value(a)  # a nearest value; step up while it is below a
        while float(first) < a:
            first = np.nextafter(first, value(math.inf))
    if math.isinf(first):
        return  # a beyond the dtype's range: _check_representable names it
    if not float(first) < b:
        raise ValueError(
            f"uniform_: no {dtype.name} value lies in [a, b) = [{a!r}, {b!r}) (the smallest one "
            f">= a is {float(first)!r}); widen a and b or use a wider dtype"
        )


def _plan(arr: Array, region: Region, layout: Layout) -> WeightPlan:
    """WeightPlan (fans, variance factor, tap scale) from the global shape and keywords."""
    shape = region[0] if region[0] is not None else arr.shape
    (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density, input_var,
     phase_balanced, dilation) = layout
    # Every keyword at its default (None, 1, (), False by identity; floats of type float
    # equal to 1): torch's rule and no adjustment, the common case, kept cheap. A value
    # equal to a default but of another type (True, 1.0 for an int) goes to weight_plan,
    # whose checks refuse it, and any other value that means "not given" gets the same
    # plan from weight_plan.
    if (layer is None and groups is _ONE and stride is _ONE and blocks is _ONE and in_axis is None
            and out_axis is None and batch_axis is _NO_AXES and type(keep_prob) is float and keep_prob == 1.0
            and type(density) is float and density == 1.0 and type(input_var) is float and input_var == 1.0
            and phase_balanced is False and dilation is _ONE):
        plan = _TORCH_RULE_PLANS.get(shape)
        if plan is None:
            if len(_TORCH_RULE_PLANS) >= PLAN_CACHE_LIMIT:
                _TORCH_RULE_PLANS.clear()
            plan = _TORCH_RULE_PLANS[shape] = WeightPlan(*torch_rule_fans(shape), 1.0, None)
        return plan
    return weight_plan(shape, layer=layer, groups=groups, stride=stride, blocks=blocks, in_axis=in_axis,
                       out_axis=out_axis, batch_axis=batch_axis, keep_prob=keep_prob, density=density,
                       input_var=input_var, phase_balanced=phase_balanced, dilation=dilation)


_ONE, _NO_AXES = 1, ()
# torch's rule depends on the shape alone: its plans are kept (a model has few
# shapes), which spares a small fill a call for the fans and a namedtuple
_TORCH_RULE_PLANS: dict[tuple[int, ...], WeightPlan] = {}
PLAN_CACHE_LIMIT = 4096


def _planned_fill(tensor: FillableT, arr: Array, plan: WeightPlan, dist: int, p0: float, p1: float, p2: float,
                  p3: float, generator: GeneratorLike, region: Region, what: str) -> FillableT:
    return _random_fill(tensor, arr, dist, p0, p1, p2, p3, generator, region, what, plan.tap_scale)


def scaled_normal_(tensor: FillableT, std: float, tap_scale: FloatArray | None, generator: GeneratorLike,
                   what: str) -> FillableT:
    """N(0, std^2) with the per-tap multipliers of a phase-balanced weight (None:
    none), all or nothing: the building block of recipes that compute their own
    std (varinit.recipes.mup_init_). `what` names the arguments std came from."""
    arr = as_array(tensor)
    return _random_fill(tensor, arr, _core.NORMAL, 0.0, std, 0.0, 0.0, generator, (None, None), what,
                        tap_scale)


def _pick_fan(fan_pair: tuple[float, float], mode: object) -> float:
    if not isinstance(mode, str):
        raise TypeError(f"mode must be one of {FAN_MODES}, got {type(mode).__name__}")
    mode = mode.lower()  # torch accepts "FAN_IN"
    if mode not in FAN_MODES:
        raise ValueError(f"Mode {mode} not supported, please use one of {list(FAN_MODES)}")
    return fan_pair[0] if mode == "fan_in" else fan_pair[1]


# ---- plain distributions -------------------------------------------------------
@writes_in_place_fast(_core.FAST_UNIFORM)
def uniform_(tensor: FillableT, a: float = 0.0, b: float = 1.0, generator: GeneratorLike = None, *,
             global_shape: Shape | None = None, start: Shape | None = None) -> FillableT:
    """Fill with the uniform distribution U(a, b): values in [a, b) in the tensor's dtype.

    value = a + (b - a) u with u uniform in [0, 1), computed in float32
    (float64 for float64 tensors) and clamped to the dtype's smallest value
    >= a and largest value < b: rounding, which would otherwise return b
    itself (bfloat16 U(0, 1): 2e-3 of the values), moves those values to the
    nearest value inside instead. a == b gives the constant a, as in torch; a
    < b with no value of the dtype in [a, b) is refused.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    a, b : float, default 0 and 1
        The interval [a, b); a <= b, both finite.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw, "Parallel random
       numbers: as easy as 1, 2, 3", SC 2011 (Philox4x32-10).

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.uniform_(np.empty((256, 256), np.float32), -0.1, 0.1, generator=0)
    >>> print(f"{w.min():.4f} {w.max():.4f}")
    -0.1000 0.1000
    >>> bool(w.max() < 0.1)
    True
    """
    a, b = _validate.real(a, "a"), _validate.real(b, "b")
    if a > b:
        raise ValueError(f"uniform_ expects a <= b, got a={a}, b={b}")
    if math.isinf(b - a):
        raise ValueError(f"uniform_ expects a finite width b - a, got a={a}, b={b}")
    arr = as_array(tensor)
    region = _region(arr, global_shape, start)
    _check_uniform_has_values(arr.dtype, a, b)
    return _random_fill(tensor, arr, _core.UNIFORM, a, b, 0.0, 0.0, generator, region, "a and b")


@writes_in_place_fast(_core.FAST_NORMAL)
def normal_(tensor: FillableT, mean: float = 0.0, std: float = 1.0, generator: GeneratorLike = None, *,
            global_shape: Shape | None = None, start: Shape | None = None) -> FillableT:
    """Fill with the normal distribution N(mean, std^2).

    Box-Muller on a fixed pair of Philox4x32-10 words per two values: float32
    values reach at most 6.56 std from the mean, float64 values 8.57 std.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    mean : float, default 0
        The mean.
    std : float, default 1
        The standard deviation, >= 0.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw, "Parallel random
       numbers: as easy as 1, 2, 3", SC 2011 (Philox4x32-10).
    .. [2] G. E. P. Box and M. E. Muller, "A note on the generation of random normal
       deviates", Annals of Mathematical Statistics 29(2), 1958.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.normal_(np.empty((256, 256), np.float32), 0.0, 0.02, generator=0)
    >>> print(f"mean {w.mean():.4f}, std {w.std():.4f}")
    mean 0.0000, std 0.0200

    The same seed gives the same bits, in every dtype on every machine:

    >>> a = varinit.normal_(np.empty(5, np.float64), generator=42)
    >>> b = varinit.normal_(np.empty(5, np.float64), generator=42)
    >>> bool((a == b).all())
    True
    """
    mean, std = _validate.real(mean, "mean"), _validate.real(std, "std", _validate.NON_NEGATIVE)
    arr = as_array(tensor)
    region = _region(arr, global_shape, start)
    return _random_fill(tensor, arr, _core.NORMAL, mean, std, 0.0, 0.0, generator, region, "mean and std")


@writes_in_place_fast(_core.FAST_TRUNC_NORMAL)
def trunc_normal_(tensor: FillableT, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: GeneratorLike = None, *, global_shape: Shape | None = None,
                  start: Shape | None = None) -> FillableT:
    """Fill with N(mean, std^2) truncated to the absolute bounds [a, b].

    Sampled exactly, by the inverse CDF (one random word per value, no
    rejection loop; the normal quantile of Wichura's AS 241), so an interval
    far in a tail, e.g. [mean + 4 std, mean + 5 std], is as accurate as a
    central one. The sample's standard deviation is below `std` (by the
    factor of the truncated distribution: 0.88 for bounds at +-2 std).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    mean : float, default 0
        The mean of the normal before truncation.
    std : float, default 1
        Its standard deviation, >= 0.
    a, b : float, default -2 and 2
        The absolute bounds (not in units of std, as in torch); a <= b. An
        interval whose probability is below 1e-300 is refused.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] M. J. Wichura, "Algorithm AS 241: the percentage points of the normal
       distribution", Applied Statistics 37(3), 1988.

    Examples
    --------
    ViT and GPT-style weights, N(0, 0.02^2) cut at two standard deviations:

    >>> import numpy as np, varinit
    >>> w = varinit.trunc_normal_(np.empty((768, 768), np.float32), std=0.02, a=-0.04, b=0.04, generator=0)
    >>> print(f"{w.min():.4f} {w.max():.4f} std {w.std():.4f}")
    -0.0400 0.0400 std 0.0176
    """
    mean, std = _validate.real(mean, "mean"), _validate.real(std, "std", _validate.NON_NEGATIVE)
    a, b = _validate.real(a, "a", _validate.NOT_NAN), _validate.real(b, "b", _validate.NOT_NAN)
    if a > b:
        raise ValueError(f"trunc_normal_ expects a <= b, got a={a}, b={b}")
    if std > 0 and a < b:
        # refuse an interval the core cannot sample before a stream is taken
        try:
            _core.truncnorm_moments((a - mean) / std, (b - mean) / std)
        except ValueError:
            raise ValueError(
                f"trunc_normal_: [a, b] = [{a}, {b}] has numerically zero probability "
                f"(below 1e-300) under N({mean}, {std}^2)"
            ) from None
    arr = as_array(tensor)
    region = _region(arr, global_shape, start)
    return _random_fill(tensor, arr, _core.TRUNC_NORMAL, mean, std, a, b, generator, region,
                        "mean, std, a and b")


@writes_in_place
def constant_(tensor: FillableT, val: float) -> FillableT:
    """Fill with the value `val` (NaN and infinities included, as torch allows).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array or CPU tensor to fill in place (float16, bfloat16, float32,
        float64).
    val : float
        The value; a finite value beyond the dtype's range is refused
        (``ValueError``), where torch raises ``RuntimeError``.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> varinit.constant_(np.empty(3, np.float32), 0.5)
    array([0.5, 0.5, 0.5], dtype=float32)
    """
    val = _validate.real(val, "val", _validate.ANY)
    arr = as_array(tensor)
    check_fits(val, arr.dtype, "val")
    arr[...] = val
    return tensor


def check_fits(value: float, dtype: np.dtype[Any], name: str) -> None:
    """ValueError naming `name` when a finite value would round to inf in `dtype`
    (torch raises RuntimeError "cannot be converted ... without overflow" there)."""
    largest = float(ml_dtypes.finfo(dtype).max)
    if math.isfinite(value) and abs(value) > largest:
        raise ValueError(f"{name}={value} overflows the tensor's dtype {dtype} (largest finite {largest})")


@writes_in_place_fast(_core.FAST_ONES)
def ones_(tensor: FillableT) -> FillableT:
    """Fill with 1 (a normalization layer's gain, for instance).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array or CPU tensor to fill in place (float16, bfloat16, float32,
        float64).

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> varinit.ones_(np.empty(3, np.float32))
    array([1., 1., 1.], dtype=float32)
    """
    as_array(tensor)[...] = 1
    return tensor


@writes_in_place_fast(_core.FAST_ZEROS)
def zeros_(tensor: FillableT) -> FillableT:
    """Fill with 0 (a bias, for instance).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array or CPU tensor to fill in place (float16, bfloat16, float32,
        float64).

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> varinit.zeros_(np.empty(3, np.float32))
    array([0., 0., 0.], dtype=float32)
    """
    as_array(tensor)[...] = 0
    return tensor


@writes_in_place
def eye_(tensor: FillableT) -> FillableT:
    """Fill a 2-D tensor with the identity: ones on the main diagonal, zeros elsewhere.

    A non-square tensor gets ones on its leading diagonal, as ``torch.eye``.
    A linear layer so initialized passes its inputs through (as many as it
    has outputs).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        A 2-D array or CPU tensor, filled in place.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> varinit.eye_(np.empty((2, 3), np.float32))
    array([[1., 0., 0.],
           [0., 1., 0.]], dtype=float32)
    """
    arr = as_array(tensor)
    if arr.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    arr[...] = 0
    np.fill_diagonal(arr, 1)
    return tensor


@writes_in_place
def dirac_(tensor: FillableT, groups: int = 1) -> FillableT:
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta: the identity map.

    Weight ``(C_out, C_in, *kernel)``: w[i, i, center] = 1 for i < min(C_out,
    C_in), zeros elsewhere, so as many input channels as possible pass through
    unchanged; with ``groups`` g, each group of C_out / g output channels does
    so for its own inputs. The center of a kernel axis k is k // 2.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        A 3-, 4- or 5-D convolution weight ``(C_out, C_in / groups, *kernel)``,
        filled in place.
    groups : int, default 1
        The convolution's groups; must divide C_out.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    Examples
    --------
    A 1-d convolution with kernel 3 that copies its two channels:

    >>> import numpy as np, varinit
    >>> w = varinit.dirac_(np.empty((2, 2, 3), np.float32))
    >>> w[:, :, 1]
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    >>> float(w.sum())
    2.0
    """
    arr = as_array(tensor)
    if arr.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    groups = _validate.integer(groups, "groups", minimum=1)
    if arr.shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    if arr.size == 0:
        return tensor  # zero-element arrays are a no-op (a zero-length kernel has no center)
    out_per_group = arr.shape[0] // groups
    channels = np.arange(min(out_per_group, arr.shape[1]))
    center = tuple(k // 2 for k in arr.shape[2:])
    arr[...] = 0
    for g in range(groups):
        arr[(g * out_per_group + channels, channels) + center] = 1
    return tensor


# ---- fan-based -------------------------------------------------------------------
def _xavier(tensor: object, gain: float, global_shape: Shape | None, start: Shape | None,
            layout: Layout) -> tuple[Array, Region, WeightPlan, float | None]:
    """(array, region, plan, std) with std = gain * sqrt(2 / (fan_in + fan_out)),
    or std None when both fans are 0 (nothing to fill)."""
    gain = _validate.real(gain, "gain", _validate.NON_NEGATIVE)  # torch raises RuntimeError for gain < 0
    arr = as_array(tensor)
    region = _region(arr, global_shape, start)
    plan = _plan(arr, region, layout)
    if plan.fan_in + plan.fan_out == 0:
        return arr, region, plan, None
    std = gain * math.sqrt(2.0 * plan.variance_factor / float(plan.fan_in + plan.fan_out))
    return arr, region, plan, std


@writes_in_place_fast(_core.FAST_XAVIER_UNIFORM)
def xavier_uniform_(
    tensor: FillableT, gain: float = 1.0, generator: GeneratorLike = None, *,
    global_shape: Shape | None = None, start: Shape | None = None,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """Glorot and Bengio's init: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).

    The variance gain^2 * 2 / (fan_in + fan_out) is the compromise between
    keeping the forward signal (Var = 1 / fan_in) and the backward gradient
    (Var = 1 / fan_out) of a linear layer. Fans by torch's rule for the
    ``(out, in, *kernel)`` layout, or by the layout keywords.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    gain : float, default 1
        Multiplies the bound; >= 0 (`calculate_gain` gives torch's per
        activation).
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] X. Glorot and Y. Bengio, "Understanding the difficulty of training deep
       feedforward neural networks", AISTATS 2010.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.xavier_uniform_(np.empty((256, 128), np.float32), generator=0)
    >>> print(f"{abs(w).max():.4f} <= sqrt(6 / 384) = {np.sqrt(6 / 384):.4f}")
    0.1250 <= sqrt(6 / 384) = 0.1250

    A fused QKV projection (3E, E) is three layers of fans (E, E):

    >>> qkv = varinit.xavier_uniform_(np.empty((768, 256), np.float32), blocks=3, generator=1)
    >>> print(f"{abs(qkv).max():.4f}")
    0.1083
    """
    layout: Layout = (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density,
                      input_var, phase_balanced, dilation)
    arr, region, plan, std = _xavier(tensor, gain, global_shape, start, layout)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return _planned_fill(tensor, arr, plan, _core.UNIFORM, -bound, bound, 0.0, 0.0, generator, region,
                         "gain and the fans (density, keep_prob, input_var)")


@writes_in_place_fast(_core.FAST_XAVIER_NORMAL)
def xavier_normal_(
    tensor: FillableT, gain: float = 1.0, generator: GeneratorLike = None, *,
    global_shape: Shape | None = None, start: Shape | None = None,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """Glorot and Bengio's init: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    gain : float, default 1
        Multiplies the std; >= 0.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] X. Glorot and Y. Bengio, "Understanding the difficulty of training deep
       feedforward neural networks", AISTATS 2010.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.xavier_normal_(np.empty((256, 128), np.float32), generator=0)
    >>> print(f"std {w.std():.4f}, target {np.sqrt(2 / 384):.4f}")
    std 0.0724, target 0.0722
    """
    layout: Layout = (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density,
                      input_var, phase_balanced, dilation)
    arr, region, plan, std = _xavier(tensor, gain, global_shape, start, layout)
    if std is None:
        return tensor
    return _planned_fill(tensor, arr, plan, _core.NORMAL, 0.0, std, 0.0, 0.0, generator, region,
                         "gain and the fans (density, keep_prob, input_var)")


_TORCH_GAINS: dict[tuple[str, type, float], float] = {}


def _kaiming_gain(nonlinearity: object, a: float) -> float:
    """torch's table for the names it knows (parity, including its errors for a
    bad slope); varinit.gain (1 / sqrt(E[f(z)^2])) for other names and callables."""
    if callable(nonlinearity):
        return second_moment_gain(nonlinearity)
    if not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity must be a name or a callable, got {type(nonlinearity).__name__}")
    if nonlinearity in TORCH_GAIN_NAMES:
        name = cast(TorchGainName, nonlinearity)
        if type(a) is not int and type(a) is not float:
            return calculate_gain(name, a)
        key = (nonlinearity, type(a), a)  # the table's gains, kept: its checks cost more than a small fill
        gain = _TORCH_GAINS.get(key)
        if gain is None:
            if len(_TORCH_GAINS) >= PLAN_CACHE_LIMIT:
                _TORCH_GAINS.clear()
            gain = _TORCH_GAINS[key] = calculate_gain(name, a)
        return gain
    if nonlinearity in ACTIVATION_NAMES or nonlinearity in ACTIVATION_ALIASES:
        return second_moment_gain(cast(ActivationName, nonlinearity))
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _kaiming_std(a: float, mode: object, nonlinearity: object, plan: WeightPlan) -> float:
    fan = _pick_fan((plan.fan_in, plan.fan_out), mode)
    # gain / sqrt(fan) exactly as torch computes it when no adjustment applies
    # (variance_factor 1.0 leaves fan unchanged), so values match torch's std bit for bit.
    return _kaiming_gain(nonlinearity, a) / math.sqrt(fan / plan.variance_factor)


@writes_in_place_fast(_core.FAST_KAIMING_UNIFORM)
def kaiming_uniform_(
    tensor: FillableT, a: float = 0, mode: FanMode = "fan_in", nonlinearity: Nonlinearity = "leaky_relu",
    generator: GeneratorLike = None, *, global_shape: Shape | None = None, start: Shape | None = None,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """He et al.'s init: U(-bound, bound), bound = gain * sqrt(3 / fan).

    Var = gain^2 / fan keeps the second moment of a layer's outputs (fan =
    fan_in) or of its input gradients (fan = fan_out) through an activation of
    that gain. gain = `calculate_gain` (nonlinearity, a) for the names torch
    knows, so values match torch's; other names ("gelu", "silu", "mish", ...)
    and callables get `varinit.gain` (1 / sqrt(E[f(z)^2]), z ~ N(0, 1)).
    ``a=sqrt(5)`` with the default "leaky_relu" gives gain sqrt(1/3), so bound
    1 / sqrt(fan_in): ``nn.Linear``'s and ``nn.Conv*``'s own init.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    a : float, default 0
        The negative slope of leaky_relu (the gain's parameter).
    mode : {"fan_in", "fan_out"}, default "fan_in"
        fan_in preserves the forward signal, fan_out the backward one.
    nonlinearity : str or callable, default "leaky_relu"
        The activation after the layer: a name or a function of an array.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers:
       surpassing human-level performance on ImageNet classification", ICCV 2015,
       arXiv:1502.01852.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.kaiming_uniform_(np.empty((256, 512), np.float32), nonlinearity="relu", generator=0)
    >>> print(f"{abs(w).max():.4f} <= sqrt(6 / 512) = {np.sqrt(6 / 512):.4f}")
    0.1083 <= sqrt(6 / 512) = 0.1083
    """
    arr = as_array(tensor)
    if arr.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    region = _region(arr, global_shape, start)
    layout: Layout = (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density,
                      input_var, phase_balanced, dilation)
    plan = _plan(arr, region, layout)
    bound = math.sqrt(3.0) * _kaiming_std(a, mode, nonlinearity, plan)
    return _planned_fill(tensor, arr, plan, _core.UNIFORM, -bound, bound, 0.0, 0.0, generator, region,
                         "the gain and the fans (density, keep_prob, input_var)")


@writes_in_place_fast(_core.FAST_KAIMING_NORMAL)
def kaiming_normal_(
    tensor: FillableT, a: float = 0, mode: FanMode = "fan_in", nonlinearity: Nonlinearity = "leaky_relu",
    generator: GeneratorLike = None, *, global_shape: Shape | None = None, start: Shape | None = None,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """He et al.'s init: N(0, std^2), std = gain / sqrt(fan).

    gain = `calculate_gain` (nonlinearity, a) for the names torch knows (relu:
    sqrt(2)), `varinit.gain` for other names and callables. fan is fan_in or
    fan_out after the layout keywords and ``density``; the variance is then
    multiplied by keep_prob / input_var.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    a : float, default 0
        The negative slope of leaky_relu (the gain's parameter).
    mode : {"fan_in", "fan_out"}, default "fan_in"
        fan_in preserves the forward signal, fan_out the backward one.
    nonlinearity : str or callable, default "leaky_relu"
        The activation after the layer: a name or a function of an array.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers:
       surpassing human-level performance on ImageNet classification", ICCV 2015,
       arXiv:1502.01852.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.kaiming_normal_(np.empty((64, 32, 3, 3), np.float32), mode="fan_out",
    ...                             nonlinearity="relu", generator=0)
    >>> print(f"std {w.std():.4f}, target sqrt(2 / (64 * 9)) = {np.sqrt(2 / 576):.4f}")
    std 0.0591, target sqrt(2 / (64 * 9)) = 0.0589

    A depthwise convolution's fans, which torch's shape rule gets 64 times too large in fan_out:

    >>> dw = varinit.kaiming_normal_(np.empty((64, 1, 3, 3), np.float32), mode="fan_out",
    ...                              nonlinearity="relu", layer="conv", groups=64, generator=1)
    >>> print(f"std {dw.std():.3f}, target sqrt(2 / 9) = {np.sqrt(2 / 9):.3f}")
    std 0.475, target sqrt(2 / 9) = 0.471
    """
    arr = as_array(tensor)
    if arr.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    region = _region(arr, global_shape, start)
    layout: Layout = (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density,
                      input_var, phase_balanced, dilation)
    plan = _plan(arr, region, layout)
    std = _kaiming_std(a, mode, nonlinearity, plan)
    return _planned_fill(tensor, arr, plan, _core.NORMAL, 0.0, std, 0.0, 0.0, generator, region,
                         "the gain and the fans (density, keep_prob, input_var)")


@writes_in_place
def variance_scaling_(
    tensor: FillableT, scale: float = 1.0, mode: ScalingMode = "fan_in",
    distribution: ScalingDistribution = "truncated_normal", generator: GeneratorLike = None, *,
    global_shape: Shape | None = None, start: Shape | None = None,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """Keras and JAX's variance scaling: Var = scale / n.

    n is fan_in, fan_out, (fan_in + fan_out) / 2 ("fan_avg") or
    sqrt(fan_in * fan_out) ("fan_geo_avg"). "truncated_normal" cuts N(0, s^2)
    at +-2s with s = sqrt(Var) / 0.87962566, the standard deviation of N(0, 1)
    cut at +-2, so the sample's standard deviation is sqrt(Var) (as Keras and
    JAX do); "normal" (or "untruncated_normal") is N(0, Var); "uniform" is
    U(-sqrt(3 Var), sqrt(3 Var)). He init is scale 2, "fan_in"; Glorot's is
    scale 1, "fan_avg"; LeCun's scale 1, "fan_in".

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    scale : float, default 1
        The variance's numerator, > 0.
    mode : {"fan_in", "fan_out", "fan_avg", "fan_geo_avg"}, default "fan_in"
        Which fan divides it.
    distribution : {"truncated_normal", "normal", "untruncated_normal", "uniform"}
        The distribution, default "truncated_normal".
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers:
       surpassing human-level performance on ImageNet classification", ICCV 2015,
       arXiv:1502.01852.
    .. [2] X. Glorot and Y. Bengio, "Understanding the difficulty of training deep
       feedforward neural networks", AISTATS 2010.

    Examples
    --------
    He init of an (in, out) matrix, as Keras and JAX store it:

    >>> import numpy as np, varinit
    >>> w = varinit.variance_scaling_(np.empty((512, 256), np.float32), 2.0, "fan_in",
    ...                               "truncated_normal", in_axis=0, out_axis=1, generator=0)
    >>> print(f"std {w.std():.4f}, target sqrt(2 / 512) = {np.sqrt(2 / 512):.4f}")
    std 0.0626, target sqrt(2 / 512) = 0.0625
    """
    layout: Layout = (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density,
                      input_var, phase_balanced, dilation)
    return _variance_scaling(tensor, scale, mode, distribution, generator, global_shape, start, layout)


def _variance_scaling(tensor: FillableT, scale: float, mode: object, distribution: object,
                      generator: GeneratorLike, global_shape: Shape | None, start: Shape | None,
                      layout: Layout) -> FillableT:
    """variance_scaling_ with its keywords passed by position (lecun_* call it too)."""
    scale = _validate.real(scale, "scale", _validate.POSITIVE)
    mode = _validate.choice(mode, "mode", SCALING_MODES)
    distribution = _validate.choice(distribution, "distribution", SCALING_DISTRIBUTIONS)
    arr = as_array(tensor)
    region = _region(arr, global_shape, start)
    plan = _plan(arr, region, layout)
    fan_in, fan_out = plan.fan_in, plan.fan_out
    if arr.size == 0:
        return tensor
    denominator = {
        "fan_in": fan_in,
        "fan_out": fan_out,
        "fan_avg": (fan_in + fan_out) / 2.0,
        "fan_geo_avg": math.sqrt(fan_in * fan_out),
    }[mode]
    variance = scale * plan.variance_factor / denominator
    if distribution == "truncated_normal":
        s = math.sqrt(variance) / TRUNCATED_STD
        return _planned_fill(tensor, arr, plan, _core.TRUNC_NORMAL, 0.0, s, -TRUNCATION * s,
                             TRUNCATION * s, generator, region,
                         "scale and the fans (density, keep_prob, input_var)")
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return _planned_fill(tensor, arr, plan, _core.UNIFORM, -limit, limit, 0.0, 0.0, generator, region,
                         "scale and the fans (density, keep_prob, input_var)")
    return _planned_fill(tensor, arr, plan, _core.NORMAL, 0.0, math.sqrt(variance), 0.0, 0.0,
                         generator, region,
                         "scale and the fans (density, keep_prob, input_var)")


@writes_in_place
def lecun_normal_(
    tensor: FillableT, generator: GeneratorLike = None, *, global_shape: Shape | None = None,
    start: Shape | None = None,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """LeCun's init, as Keras and JAX define it: a truncated normal with Var = 1 / fan_in.

    The same as ``variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal")``:
    the init of self-normalizing SELU networks.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, G. B. Orr and K.-R. Mueller, "Efficient BackProp", in
       Neural Networks: Tricks of the Trade, Springer, 1998.
    .. [2] G. Klambauer, T. Unterthiner, A. Mayr and S. Hochreiter, "Self-normalizing
       neural networks", NeurIPS 2017, arXiv:1706.02515.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.lecun_normal_(np.empty((256, 512), np.float32), generator=0)
    >>> print(f"std {w.std():.4f}, target sqrt(1 / 512) = {np.sqrt(1 / 512):.4f}")
    std 0.0443, target sqrt(1 / 512) = 0.0442
    """
    return _variance_scaling(tensor, 1.0, "fan_in", "truncated_normal", generator, global_shape, start,
                              (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density,
                               input_var, phase_balanced, dilation))


@writes_in_place
def lecun_uniform_(
    tensor: FillableT, generator: GeneratorLike = None, *, global_shape: Shape | None = None,
    start: Shape | None = None,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """LeCun's uniform init, as Keras and JAX define it: U(-sqrt(3 / fan_in), sqrt(3 / fan_in)).

    The same as ``variance_scaling_(tensor, 1.0, "fan_in", "uniform")``.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, G. B. Orr and K.-R. Mueller, "Efficient BackProp", in
       Neural Networks: Tricks of the Trade, Springer, 1998.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.lecun_uniform_(np.empty((256, 512), np.float32), generator=0)
    >>> print(f"{abs(w).max():.4f} <= sqrt(3 / 512) = {np.sqrt(3 / 512):.4f}")
    0.0765 <= sqrt(3 / 512) = 0.0765
    """
    return _variance_scaling(tensor, 1.0, "fan_in", "uniform", generator, global_shape, start,
                              (layer, groups, stride, blocks, in_axis, out_axis, batch_axis, keep_prob, density,
                               input_var, phase_balanced, dilation))


# ---- structured ------------------------------------------------------------------
@writes_in_place
def orthogonal_(tensor: FillableT, gain: float = 1, generator: GeneratorLike = None, *, blocks: int = 1) -> FillableT:
    """Saxe et al.'s init: a (semi-)orthogonal matrix, scaled by `gain`.

    The tensor is seen as a (rows, prod(rest)) matrix. A Gaussian matrix of
    that shape, drawn in float64 from varinit's generator, is QR-factored in
    the target's precision (float32 for float16, bfloat16 and float32 targets,
    float64 for float64 ones) by LAPACK's Householder QR through SciPy, or by
    NumPy's float64 QR without SciPy, and Q's columns are multiplied by
    sign(diag(R)) so that Q is Haar-distributed (Mezzadri 2007): rows
    orthonormal if rows <= columns, else columns orthonormal. With ``blocks``
    b, each of b equal row blocks (the gates of a fused LSTM/GRU matrix) is its
    own orthogonal matrix. The values depend on the LAPACK build and its thread
    count, not only on the seed; the Gaussian input is bit-exact.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    gain : float, default 1
        Multiplies the matrix.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    blocks : int, default 1
        Equal row blocks, each made orthogonal on its own; must divide dim 0.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] A. M. Saxe, J. L. McClelland and S. Ganguli, "Exact solutions to the
       nonlinear dynamics of learning in deep linear neural networks", ICLR 2014,
       arXiv:1312.6120.
    .. [2] F. Mezzadri, "How to generate random matrices from the classical compact
       groups", Notices of the AMS 54(5), 2007.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.orthogonal_(np.empty((64, 128), np.float64), generator=0)
    >>> bool(np.allclose(w @ w.T, np.eye(64)))
    True

    An LSTM's recurrent weight, one orthogonal 128 x 128 matrix per gate:

    >>> w_hh = varinit.orthogonal_(np.empty((512, 128), np.float64), blocks=4, generator=0)
    >>> bool(np.allclose(w_hh[128:256] @ w_hh[128:256].T, np.eye(128)))
    True
    """
    gain = _validate.real(gain, "gain")
    arr = as_array(tensor)
    if arr.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    blocks = _validate.integer(blocks, "blocks", minimum=1)
    if arr.shape[0] % blocks:
        raise ValueError(f"dim 0 ({arr.shape[0]}) must be divisible by blocks ({blocks})")
    if arr.size == 0:
        return tensor
    rows, cols = arr.shape[0], arr.size // arr.shape[0]
    step = rows // blocks
    wide = step < cols
    precision = _qr_precision(arr.dtype)
    householder = _householder_routines(precision)
    # Every buffer exists before the stream is taken: a failed allocation uses none.
    gaussian = _gaussian_blocks(blocks, step, cols, precision, wide)
    scratch = _draw_scratch(gaussian)
    result = _result_blocks(arr, blocks, step, cols, precision)
    key, stream = resolve(generator, is_torch_tensor(tensor))
    _draw_gaussian(gaussian, key, stream, scratch)
    # Every block is factored before the first write: a failure leaves the target as it was.
    factors = [_factor(block.T if wide else block, gain, householder) for block in gaussian]
    for factor, out in zip(factors, result):
        _write_q(factor, out, wide, householder)
    if not np.may_share_memory(result, arr):
        arr[...] = result.reshape(arr.shape)
    return tensor


# A float64 Gaussian is drawn in row-major chunks of about this many values (1 MiB:
# two threads' share of the C core, and within a core's L2 cache).
_DRAW_CHUNK = 1 << 17
# Transposing copies go tile by tile, so that source and destination tiles stay in
# cache: one NumPy copy of a column-major 1024 x 1024 float32 matrix into a row-major
# one took 4.7 ms, 128 x 128 tiles 1.8 ms (2048^2: 28 and 7 ms).
_TILE = 128
# Columns per panel of LAPACK's geqrt. Its panels are factored recursively, with
# matrix products (Elmroth & Gustavson 2000), where geqrf's 32-column panels use
# vector operations. With 128, geqrt and gemqrt took 0.75-0.85x the CPU time of
# geqrf and orgqr from 256^2 to 2048^2 in float32 on one thread.
_PANEL = 128
# SciPy's LAPACK geqrt and gemqrt (SciPy has no type information)
Householder = tuple[Callable[..., Any], Callable[..., Any]]


def _qr_precision(dtype: np.dtype[Any]) -> np.dtype[np.floating[Any]]:
    """The dtype orthogonal_ factors its Gaussian in: float64 for float64 targets;
    float32 for float32, float16 and bfloat16 ones, whose values a float32
    Householder QR already gets right to the target's own rounding (its
    Q^T Q - I stays within ~1e-6 up to 4096 x 4096, where the float64 QR rounded
    to float32 gives ~1e-8; float16 and bfloat16 round far more coarsely)."""
    return np.dtype(np.float64) if dtype.itemsize == 8 else np.dtype(np.float32)


def _gaussian_blocks(blocks: int, step: int, cols: int, precision: np.dtype[Any], wide: bool) -> Array:
    """An uninitialized (blocks, step, cols) array whose blocks LAPACK can factor
    in place: each block's tall orientation (the block, or its transpose when it
    is wide) is column-major, as LAPACK stores matrices."""
    if wide:
        return np.empty((blocks, step, cols), precision)
    blocks_of_tall: Array = np.empty((blocks, cols, step), precision).transpose(0, 2, 1)
    return blocks_of_tall


def _draw_scratch(gaussian: Array) -> FloatArray | None:
    """None when `gaussian` is row-major float64 (it is drawn in place), else the
    row-major float64 buffer its rows are drawn in, a chunk at a time."""
    if gaussian.dtype == np.float64 and gaussian.flags.c_contiguous:
        return None
    cols = gaussian.shape[2]
    return np.empty((max(1, min(gaussian.shape[1], _DRAW_CHUNK // cols)), cols), np.float64)


def _draw_gaussian(gaussian: Array, key: int, stream: int, scratch: FloatArray | None) -> None:
    """gaussian[b, i, j] = element (b * step + i, j) of the float64 standard normal_
    fill of shape (rows, cols) for (key, stream), rounded to gaussian's dtype: the
    same Gaussian whatever the precision of the QR, so a float32 target's Q is
    the float64 target's Q up to rounding. A (blocks, step, cols) array's row-major
    indices are those of (rows, cols)."""
    if scratch is None:
        _core.fill(gaussian, _core.NORMAL, 0.0, 1.0, 0.0, 0.0, key, stream, None, None)
        return
    blocks, step, cols = gaussian.shape
    chunk = scratch.shape[0]
    for b in range(blocks):
        for lo in range(0, step, chunk):
            drawn = scratch[:min(chunk, step - lo)]
            _core.fill(drawn, _core.NORMAL, 0.0, 1.0, 0.0, 0.0, key, stream, (blocks * step, cols),
                       (b * step + lo, 0))
            _copy_tiled(gaussian[b, lo:lo + len(drawn)], drawn)


def _copy_tiled(dst: Array, src: Array) -> None:
    """dst[...] = src (2-D, one shape) tile by tile; see _TILE. Tall thin tiles for
    narrow matrices keep the number of copies (Python calls) near size / _TILE**2."""
    rows, cols = dst.shape
    tile_rows = max(_TILE, _TILE * _TILE // max(cols, 1))
    for r in range(0, rows, tile_rows):
        for c in range(0, cols, _TILE):
            dst[r:r + tile_rows, c:c + _TILE] = src[r:r + tile_rows, c:c + _TILE]


def _result_blocks(arr: Array, blocks: int, step: int, cols: int, precision: np.dtype[Any]) -> Array:
    """The (blocks, step, cols) row-major array Q is written in: the target's own
    memory when it is a row-major array of the QR's precision, else a new one
    that is copied into the target at the end."""
    if arr.dtype == precision and arr.flags.c_contiguous and arr.flags.aligned:
        return arr.reshape(blocks, step, cols)
    return np.empty((blocks, step, cols), precision)


@functools.cache
def _householder_routines(precision: np.dtype[Any]) -> Householder | None:
    """SciPy's LAPACK geqrt and gemqrt in `precision` (SciPy 1.5 and later), or
    None without them: then NumPy's numpy.linalg.qr, which has float64 only."""
    try:
        from scipy.linalg import lapack

        routines: Householder = lapack.get_lapack_funcs(("geqrt", "gemqrt"), dtype=precision)
        return routines
    except (ImportError, ValueError):
        return None


def _factor(tall: Array, gain: float, householder: Householder | None) -> tuple[Array, Array | None, Array]:
    """The QR factorization tall = Q R of a column-major (m, n), m >= n, Gaussian
    block, computed in its own memory when SciPy's LAPACK does it, and the
    column scale gain * sign(R_jj) (+gain where R_jj = 0): Q D with D = diag(sign(R_jj))
    is Haar-distributed (Mezzadri 2007, section 5). Returns (reflectors, their
    triangular factor T, scale), or (Q, None, scale) from NumPy."""
    if householder is None:
        q, r = np.linalg.qr(tall)  # float64 inside; Q is rounded back to tall's dtype
        return q, None, np.where(np.diagonal(r) < 0, -gain, gain).astype(q.dtype)
    reflectors, t, info = householder[0](min(_PANEL, tall.shape[1]), tall, overwrite_a=True)
    _check_lapack("geqrt", info)
    return reflectors, t, np.where(np.diagonal(reflectors) < 0, -gain, gain).astype(tall.dtype)


def _write_q(factor: tuple[Array, Array | None, Array], out: Array, wide: bool,
             householder: Householder | None) -> None:
    """out (a (step, cols) row-major block) = gain * Q D from `_factor`, in the
    block's orientation: (Q D)^T for a wide block, whose transpose was factored.
    LAPACK writes Q straight into out: out^T is column-major, and it is Q times
    the first columns of the identity (wide) or those rows of the identity times
    Q^T (tall), which gemqrt computes in place."""
    q, t, scale = factor
    if t is None or householder is None:
        out[...] = q.T if wide else q
    else:
        product = out.T
        product[...] = 0
        np.fill_diagonal(product, 1)
        computed, info = householder[1](q, t, product, side="L" if wide else "R", trans="N" if wide else "T",
                                        overwrite_c=True)
        _check_lapack("gemqrt", info)
        if computed is not product:  # f2py copies an argument it cannot use in place
            product[...] = computed
    out *= scale[:, None] if wide else scale


def _check_lapack(routine: str, info: int) -> None:
    # info < 0 names an argument LAPACK refused: a bug here, never the user's input
    if info != 0:
        raise RuntimeError(f"orthogonal_: LAPACK {routine} returned info={info}")


@writes_in_place
def sparse_(tensor: FillableT, sparsity: float, std: float = 0.01, generator: GeneratorLike = None, *,
            global_shape: Shape | None = None, start: Shape | None = None) -> FillableT:
    """Martens' sparse init: N(0, std^2) with ceil(sparsity * rows) zeros in each column.

    The zeroed rows of each column are a uniformly random subset, drawn from a
    second stream of the same generator call: each row of a column gets a
    uniform rank and the lowest ranks are zeroed. A column depends on itself
    only, so with `global_shape` and `start` a block of columns costs what its
    own values cost; a block of fewer rows than the whole draws its columns'
    ranks over every row (rows x its columns uniforms).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        A 2-D array or CPU tensor (float16, bfloat16, float32, float64), filled
        in place.
    sparsity : float
        The fraction of each column set to zero, in [0, 1].
    std : float, default 0.01
        The standard deviation of the nonzero values.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    global_shape, start : tuple of int, optional
        Fill `tensor` as the block at corner `start` of a virtual tensor of
        shape `global_shape`: it receives exactly the bits the whole tensor
        would hold there, and the fans come from `global_shape`. Pass a
        generator that gives the same stream at every call (an int or
        ``Generator.stream(name)``) for every block.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.sparse_(np.empty((10, 4), np.float32), sparsity=0.5, generator=0)
    >>> (w == 0).sum(axis=0)
    array([5, 5, 5, 5])
    """
    sparsity = _validate.real(sparsity, "sparsity", _validate.BOUNDED_0_1)
    std = _validate.real(std, "std", _validate.NON_NEGATIVE)
    arr = as_array(tensor)
    if arr.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    region = _region(arr, global_shape, start)
    if arr.size == 0:
        return tensor
    rows, cols = region[0] if region[0] is not None else arr.shape
    first_row, first_col = region[1] if region[1] is not None else (0, 0)
    num_zeros = math.ceil(sparsity * rows)
    # Everything is allocated before the stream is taken and ranked before the first write.
    ranks = np.empty((rows, arr.shape[1]), np.float64) if num_zeros else None
    values = staging_buffer(arr)
    if region[0] is not None and region[0] != arr.shape and _draws_from_state(generator):
        _warn_region_from_state(generator, region)
    key, stream = resolve(generator, is_torch_tensor(tensor))
    if ranks is not None:
        # the block's columns over every row: each column's ranks are the whole fill's
        column_region = ((rows, cols), (0, first_col)) if region[0] is not None else (None, None)
        _core.fill(ranks, _core.UNIFORM, 0.0, 1.0, 0.0, 0.0, key, stream ^ SECONDARY_BIT, *column_region)
        zero_rows = np.argsort(ranks, axis=0, kind="stable")[:num_zeros] - first_row
    _core.fill(values, _core.NORMAL, 0.0, std, 0.0, 0.0, key, stream, *region)
    if num_zeros:
        in_block = (zero_rows >= 0) & (zero_rows < arr.shape[0])
        columns = np.broadcast_to(np.arange(arr.shape[1]), zero_rows.shape)
        values[zero_rows[in_block], columns[in_block]] = 0
    if values is not arr:
        arr[...] = values
    return tensor


# ---- the C core's one-call path ------------------------------------------------------
# _core.fast_fill makes the common calls of the functions decorated with
# writes_in_place_fast by the rules above, computed the same way: it reads their
# defaults, torch's gains as _kaiming_gain caches them, each dtype's limits, and
# how generator.resolve takes a stream (csrc/_module.c lists what it reads).
_core.fast_fill_setup(_generator_module, _arrays, _TORCH_GAINS,
                      {dtype: _limits(dtype) for dtype in (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16),
                                                           np.dtype(np.float32), np.dtype(np.float64))})
