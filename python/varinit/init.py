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
import math
import warnings

import ml_dtypes
import numpy as np

from . import _core, _validate
from ._arrays import as_array, fill_array, is_torch_tensor, staging_buffer, writes_in_place
from .activations import ALIASES as ACTIVATION_ALIASES
from .activations import NAMES as ACTIVATION_NAMES
from .fan_rules import WeightPlan, tap_scale_block, torch_rule_fans, weight_plan
from .gains import TORCH_GAIN_NAMES, calculate_gain
from .gains import gain as second_moment_gain
from .generator import SECONDARY_BIT, Generator, resolve, user_frame, warn_if_seed_reused

FAN_MODES = ("fan_in", "fan_out")
SCALING_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
SCALING_DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")
# Keras/JAX cut their truncated normal at +-2 of its own standard deviations.
TRUNCATION = 2.0
# Standard deviation of N(0, 1) cut to [-2, 2]: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)),
# computed by the C core's own CDF (0.8796256610342398); dividing the target std
# by it makes the truncated sample's std equal the target.
TRUNCATED_STD = math.sqrt(_core.truncnorm_moments(-TRUNCATION, TRUNCATION)[1])


# ---- argument checks ---------------------------------------------------------
def _region(arr, global_shape, start):
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


def _draws_from_state(generator):
    """True for generators whose state advances with each fill (None: the default
    generator or torch's; a varinit.Generator; a NumPy or torch generator), False for
    an int seed or a Stream, which give the same stream at every call."""
    if generator is None or isinstance(generator, (Generator, np.random.Generator)):
        return True
    cls = type(generator)
    return cls.__module__ in ("torch", "torch._C") and cls.__name__ == "Generator"


def _warn_region_from_state(generator, region):
    _, depth = user_frame()   # point at the user's line, not at varinit's frames
    warnings.warn(
        f"a block fill (global_shape={region[0]}, start={region[1]}) drawing from "
        f"generator={'None' if generator is None else type(generator).__qualname__}: a stateful "
        "generator gives each call a new stream or key, so blocks filled by separate calls do not "
        "fit together into the whole tensor. Pass generator.stream(name) or an int seed, the same "
        "for every block.",
        UserWarning, stacklevel=depth,
    )


def _random_fill(tensor, arr, dist, p0, p1, p2, p3, generator, region, what, tap_scale=None):
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
    if tap_scale is None:
        target, scaled = staging_buffer(arr), None
    else:
        target = np.empty(arr.shape, dtype=arr.dtype.newbyteorder("="))
        scaled = np.empty(arr.shape, dtype=np.float64)
    # as_array returns a NumPy array itself and a view of anything else
    key, stream = resolve(generator, arr is not tensor)
    _core.fill(target, dist, p0, p1, p2, p3, key, stream, *region)
    if scaled is not None:
        # phase balancing multiplies each tap's values after sampling, in float64
        scaled[...] = target
        scaled *= tap_scale_block(tap_scale, region[1], arr.shape)
        arr[...] = scaled
    elif target is not arr:
        arr[...] = target
    if type(generator) is int and region[0] is None:
        warn_if_seed_reused(generator, arr.__array_interface__["data"][0])
    return tensor


def _check_representable(dtype, dist, p0, p1, p2, p3, what):
    """ValueError naming `what` when the distribution reaches beyond the largest finite
    value of `dtype`: the fill would hold inf or NaN."""
    largest = float(ml_dtypes.finfo(dtype).max)
    if dist == _core.UNIFORM:
        low, high, width = p0, p1, p1 - p0
        # float16/bfloat16 are sampled in float32 and rounded: the width must fit float32 too
        compute_largest = largest if dtype.itemsize == 8 else float(np.finfo(np.float32).max)
        reach = max(abs(low), abs(high))
        fits = reach <= largest and width <= compute_largest
        shown = f"U({low:g}, {high:g})"
    else:
        z = _core.normal_max_abs_z(1 if dtype.itemsize == 8 else 0)
        low, high = p0 - z * p1, p0 + z * p1
        if dist == _core.TRUNC_NORMAL:
            low, high = max(low, p2), min(high, p3)
        reach = max(abs(low), abs(high))
        fits = reach <= largest
        shown = f"N({p0:g}, {p1:g}^2)" + (f" cut to [{p2:g}, {p3:g}]" if dist == _core.TRUNC_NORMAL else "")
    if not fits:
        raise ValueError(
            f"{what}: {shown} reaches {reach:.4g}, beyond the largest finite {dtype} ({largest:.4g}); "
            "the values would be inf or NaN"
        )


def _check_uniform_has_values(dtype, a, b):
    """ValueError naming a and b when a < b but no value of `dtype` lies in [a, b):
    the fill clamps its values to the dtype's smallest value >= a and largest < b
    (the C core's plan), and there are none."""
    if not a < b:
        return  # a == b is the constant a, as torch's uniform_(a, a)
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


def _plan(arr, region, layout):
    """WeightPlan (fans, variance factor, tap scale) from the global shape and keywords."""
    shape = region[0] if region[0] is not None else arr.shape
    if not layout:  # torch's rule and no adjustment: the common case, kept cheap
        return WeightPlan(*torch_rule_fans(shape), 1.0, None)
    return weight_plan(shape, **layout)


def _planned_fill(tensor, arr, plan, dist, p0, p1, p2, p3, generator, region, what):
    return _random_fill(tensor, arr, dist, p0, p1, p2, p3, generator, region, what, plan.tap_scale)


def scaled_normal_(tensor, std, tap_scale, generator, what):
    """N(0, std^2) with the per-tap multipliers of a phase-balanced weight (None:
    none), all or nothing: the building block of recipes that compute their own
    std (varinit.recipes.mup_init_). `what` names the arguments std came from."""
    arr = as_array(tensor)
    return _random_fill(tensor, arr, _core.NORMAL, 0.0, std, 0.0, 0.0, generator, (None, None), what,
                        tap_scale)


def _pick_fan(fan_pair, mode):
    if not isinstance(mode, str):
        raise TypeError(f"mode must be one of {FAN_MODES}, got {type(mode).__name__}")
    mode = mode.lower()  # torch accepts "FAN_IN"
    if mode not in FAN_MODES:
        raise ValueError(f"Mode {mode} not supported, please use one of {list(FAN_MODES)}")
    return fan_pair[0] if mode == "fan_in" else fan_pair[1]


# ---- plain distributions -------------------------------------------------------
@writes_in_place
def uniform_(tensor, a=0.0, b=1.0, generator=None, *, global_shape=None, start=None):
    """Fill with U(a, b): values in [a, b) in the tensor's dtype.

    a + (b - a) u, computed in float32 (float64 for float64), then clamped to the
    dtype's smallest value >= a and largest value < b: rounding, which would
    otherwise return b itself (bfloat16 U(0, 1): 2e-3 of the values), moves those
    values to the nearest value inside instead. a == b gives the constant a, as
    in torch; a < b with no value of the dtype in [a, b) is refused.

    Example::

        >>> w = varinit.uniform_(np.empty((3, 5), np.float32), -0.1, 0.1)
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


@writes_in_place
def normal_(tensor, mean=0.0, std=1.0, generator=None, *, global_shape=None, start=None):
    """Fill with N(mean, std^2) (Box-Muller on Philox4x32-10 words).

    Example::

        >>> w = varinit.normal_(np.empty((3, 5), np.float32), 0.0, 0.02)
    """
    mean, std = _validate.real(mean, "mean"), _validate.real(std, "std", _validate.NON_NEGATIVE)
    arr = as_array(tensor)
    region = _region(arr, global_shape, start)
    return _random_fill(tensor, arr, _core.NORMAL, mean, std, 0.0, 0.0, generator, region, "mean and std")


@writes_in_place
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *,
                  global_shape=None, start=None):
    """Fill with N(mean, std^2) truncated to the absolute bounds [a, b].

    Sampled exactly by the inverse CDF (Wichura's AS 241), so intervals far in
    a tail, e.g. [mean + 4 std, mean + 5 std], are as accurate as central ones.

    Example::

        >>> w = varinit.trunc_normal_(np.empty((768, 768), np.float32), std=0.02, a=-0.04, b=0.04)
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
def constant_(tensor, val):
    """Fill with the value `val` (NaN and infinities included, as torch allows).

    Example::

        >>> b = varinit.constant_(np.empty(256, np.float32), 0.1)
    """
    val = _validate.real(val, "val", _validate.ANY)
    arr = as_array(tensor)
    check_fits(val, arr.dtype, "val")
    arr[...] = val
    return tensor


def check_fits(value, dtype, name):
    """ValueError naming `name` when a finite value would round to inf in `dtype`
    (torch raises RuntimeError "cannot be converted ... without overflow" there)."""
    largest = float(ml_dtypes.finfo(dtype).max)
    if math.isfinite(value) and abs(value) > largest:
        raise ValueError(f"{name}={value} overflows the tensor's dtype {dtype} (largest finite {largest})")


@writes_in_place
def ones_(tensor):
    """Fill with 1 (e.g. a norm layer's gain).

    Example::

        >>> gamma = varinit.ones_(np.empty(768, np.float32))
    """
    as_array(tensor)[...] = 1
    return tensor


@writes_in_place
def zeros_(tensor):
    """Fill with 0 (e.g. a bias).

    Example::

        >>> bias = varinit.zeros_(np.empty(768, np.float32))
    """
    as_array(tensor)[...] = 0
    return tensor


@writes_in_place
def eye_(tensor):
    """Fill a 2-D tensor with the identity (ones on the main diagonal).

    A non-square tensor gets ones on its leading diagonal, as torch.eye.

    Example::

        >>> w = varinit.eye_(np.empty((128, 128), np.float32))
    """
    arr = as_array(tensor)
    if arr.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    arr[...] = 0
    np.fill_diagonal(arr, 1)
    return tensor


@writes_in_place
def dirac_(tensor, groups=1):
    """Fill a 3-, 4- or 5-D conv weight with the Dirac delta: the identity map.

    As many input channels as possible are passed through unchanged; with
    groups > 1, each group does so for its own channels.

    Example::

        >>> w = varinit.dirac_(np.empty((16, 16, 3, 3), np.float32))   # a 3x3 conv that copies its input
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
def _xavier(tensor, gain, global_shape, start, layout):
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


@writes_in_place
def xavier_uniform_(tensor, gain=1.0, generator=None, *, global_shape=None, start=None, **layout):
    """Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).

    Example::

        >>> w = varinit.xavier_uniform_(np.empty((256, 128), np.float32))
    """
    arr, region, plan, std = _xavier(tensor, gain, global_shape, start, layout)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return _planned_fill(tensor, arr, plan, _core.UNIFORM, -bound, bound, 0.0, 0.0, generator, region,
                         "gain and the fans (density, keep_prob, input_var)")


@writes_in_place
def xavier_normal_(tensor, gain=1.0, generator=None, *, global_shape=None, start=None, **layout):
    """Glorot & Bengio (2010): N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).

    Example::

        >>> w = varinit.xavier_normal_(np.empty((256, 128), np.float32))
    """
    arr, region, plan, std = _xavier(tensor, gain, global_shape, start, layout)
    if std is None:
        return tensor
    return _planned_fill(tensor, arr, plan, _core.NORMAL, 0.0, std, 0.0, 0.0, generator, region,
                         "gain and the fans (density, keep_prob, input_var)")


def _kaiming_gain(nonlinearity, a):
    """torch's table for the names it knows (parity, including its errors for a
    bad slope); varinit.gain (1 / sqrt(E[f(z)^2])) for other names and callables."""
    if callable(nonlinearity):
        return second_moment_gain(nonlinearity)
    if not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity must be a name or a callable, got {type(nonlinearity).__name__}")
    if nonlinearity in TORCH_GAIN_NAMES:
        return calculate_gain(nonlinearity, a)
    if nonlinearity in ACTIVATION_NAMES or nonlinearity in ACTIVATION_ALIASES:
        return second_moment_gain(nonlinearity)
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _kaiming_std(a, mode, nonlinearity, plan):
    fan = _pick_fan((plan.fan_in, plan.fan_out), mode)
    # gain / sqrt(fan) exactly as torch computes it when no adjustment applies
    # (variance_factor 1.0 leaves fan unchanged), so values match torch's std bit for bit.
    return _kaiming_gain(nonlinearity, a) / math.sqrt(fan / plan.variance_factor)


@writes_in_place
def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *,
                     global_shape=None, start=None, **layout):
    """He et al. (2015): U(-bound, bound), bound = gain * sqrt(3 / fan).

    gain = calculate_gain(nonlinearity, a) for the names torch knows; other
    names ("gelu", "silu", "mish", ...) and callables get varinit.gain
    (1 / sqrt(E[f(z)^2])). fan is fan_in (preserves the forward variance) or
    fan_out (the backward one), after the layer keywords and `density`; the
    variance is then multiplied by keep_prob / input_var.

    Example::

        >>> w = varinit.kaiming_uniform_(np.empty((256, 128), np.float32), nonlinearity="relu")
    """
    arr = as_array(tensor)
    if arr.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    region = _region(arr, global_shape, start)
    plan = _plan(arr, region, layout)
    bound = math.sqrt(3.0) * _kaiming_std(a, mode, nonlinearity, plan)
    return _planned_fill(tensor, arr, plan, _core.UNIFORM, -bound, bound, 0.0, 0.0, generator, region,
                         "the gain and the fans (density, keep_prob, input_var)")


@writes_in_place
def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *,
                    global_shape=None, start=None, **layout):
    """He et al. (2015): N(0, std^2), std = gain / sqrt(fan).

    Example::

        >>> w = varinit.kaiming_normal_(np.empty((64, 3, 7, 7), np.float32), mode="fan_out",
        ...                             nonlinearity="relu")
    """
    arr = as_array(tensor)
    if arr.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    region = _region(arr, global_shape, start)
    plan = _plan(arr, region, layout)
    std = _kaiming_std(a, mode, nonlinearity, plan)
    return _planned_fill(tensor, arr, plan, _core.NORMAL, 0.0, std, 0.0, 0.0, generator, region,
                         "the gain and the fans (density, keep_prob, input_var)")


@writes_in_place
def variance_scaling_(tensor, scale=1.0, mode="fan_in", distribution="truncated_normal",
                      generator=None, *, global_shape=None, start=None, **layout):
    """Keras/JAX variance scaling: Var = scale / n.

    n is fan_in, fan_out, (fan_in + fan_out) / 2 (fan_avg) or
    sqrt(fan_in * fan_out) (fan_geo_avg). "truncated_normal" cuts N(0, s^2) at
    +-2s with s = sqrt(Var) / 0.87962566 so the sample's std is sqrt(Var);
    "normal" (or "untruncated_normal") is N(0, Var); "uniform" is
    U(-sqrt(3 Var), sqrt(3 Var)).

    Example::

        >>> w = varinit.variance_scaling_(np.empty((128, 256), np.float32), 2.0, "fan_in",
        ...                               "truncated_normal", in_axis=0, out_axis=1)
    """
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
def lecun_normal_(tensor, generator=None, **kwargs):
    """LeCun et al. (1998), as Keras/JAX: truncated normal with Var = 1 / fan_in.

    variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal"): the init of
    self-normalizing SELU networks (Klambauer et al. 2017).

    Example::

        >>> w = varinit.lecun_normal_(np.empty((256, 128), np.float32))
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", generator, **kwargs)


@writes_in_place
def lecun_uniform_(tensor, generator=None, **kwargs):
    """LeCun et al. (1998), as Keras/JAX: U(-sqrt(3 / fan_in), sqrt(3 / fan_in)).

    Example::

        >>> w = varinit.lecun_uniform_(np.empty((256, 128), np.float32))
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", generator, **kwargs)


# ---- structured ------------------------------------------------------------------
@writes_in_place
def orthogonal_(tensor, gain=1, generator=None, *, blocks=1):
    """Saxe et al. (2013): a (semi-)orthogonal matrix, scaled by gain.

    The tensor is seen as (rows, prod(rest)); a Gaussian matrix from varinit's
    generator is QR-factored by NumPy's LAPACK, and Q's columns are multiplied
    by sign(diag(R)) so that Q is Haar-distributed (Mezzadri 2007). With
    blocks=b, each of b equal row blocks (fused gates) is its own orthogonal
    matrix. Bits depend on the LAPACK build, not only on the seed.

    Example::

        >>> w = varinit.orthogonal_(np.empty((512, 128), np.float32), gain=np.sqrt(2))
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
    gaussian = np.empty((rows, cols), np.float64)
    key, stream = resolve(generator, is_torch_tensor(tensor))
    fill_array(gaussian, _core.NORMAL, 0.0, 1.0, 0.0, 0.0, key, stream)
    result = np.empty_like(gaussian)
    step = rows // blocks
    for lo in range(0, rows, step):
        result[lo:lo + step] = _haar_orthogonal(gaussian[lo:lo + step])
    arr[...] = (result * gain).reshape(arr.shape)
    return tensor


def _haar_orthogonal(gaussian):
    tall = gaussian if gaussian.shape[0] >= gaussian.shape[1] else gaussian.T
    q, r = np.linalg.qr(tall)
    q *= np.sign(np.diag(r))
    return q if tall is gaussian else q.T


@writes_in_place
def sparse_(tensor, sparsity, std=0.01, generator=None):
    """Martens (2010): N(0, std^2) with ceil(sparsity * rows) zeros in each column.

    The zeroed rows of each column are a uniformly random subset, drawn from a
    second stream of the same generator call.

    Example::

        >>> w = varinit.sparse_(np.empty((100, 50), np.float32), sparsity=0.9)
    """
    sparsity = _validate.real(sparsity, "sparsity", _validate.BOUNDED_0_1)
    std = _validate.real(std, "std", _validate.NON_NEGATIVE)
    arr = as_array(tensor)
    if arr.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    if arr.size == 0:
        return tensor
    rows, cols = arr.shape
    num_zeros = math.ceil(sparsity * rows)
    # Everything is allocated and ranked before the first write to the target.
    ranks = np.empty((rows, cols), np.float64) if num_zeros else None
    values = staging_buffer(arr)
    key, stream = resolve(generator, is_torch_tensor(tensor))
    if num_zeros:
        fill_array(ranks, _core.UNIFORM, 0.0, 1.0, 0.0, 0.0, key, stream ^ SECONDARY_BIT)
        zero_rows = np.argsort(ranks, axis=0, kind="stable")[:num_zeros]
    _core.fill(values, _core.NORMAL, 0.0, std, 0.0, 0.0, key, stream, None, None)
    if num_zeros:
        np.put_along_axis(values, zero_rows, 0, axis=0)
    if values is not arr:
        arr[...] = values
    return tensor
