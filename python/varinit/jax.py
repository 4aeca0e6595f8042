"""JAX/Flax initializers with varinit's values: factories returning
`init(key, shape, dtype)`, the signature of jax.nn.initializers and Flax's
`kernel_init=`, whose arrays hold the same bits as varinit's fill of a NumPy
array of that shape for the same seed and stream.

    import flax.linen as nn
    import varinit.jax

    dense = nn.Dense(256, kernel_init=varinit.jax.he_normal())

The factories take the arguments of their jax.nn.initializers namesakes
(in_axis, out_axis, batch_axis and JAX's fan rule: the other axes are the
receptive field; axes in batch_axis count in neither fan), plus, keyword-only:

- seed: varinit's 64-bit key, an int in [0, 2**64), or None;
- stream: an int stream id in [0, 2**64) or a str name (it needs a seed);
- torch_layout: True fills the PyTorch weight (out, in, *kernel) and returns
  it transposed to Flax's (*kernel, in, out): the Flax layer then holds the
  weights of the PyTorch layer filled from the same seed and stream (the
  default axes only).

From the JAX key to varinit's (key, stream). JAX's default keys
(threefry2x32: jax.random.key(s) or jax.random.PRNGKey(s)) hold two 32-bit
words (w0, w1); k = w0 * 2**32 + w1 (so PRNGKey(s) gives k = s for
0 <= s < 2**32, and for any s >= 0 with jax_enable_x64).

- seed=None: varinit key k, stream 0, i.e. the NumPy fill with generator=k.
  Flax derives a distinct key for every parameter, so distinct layers get
  distinct values, and jax.random seeding governs them.
- seed=S, no stream: varinit key S, and the JAX key only selects the stream:
  varinit.Generator(S).stream(f"jax.random.key:{k:016x}").
- seed=S, stream=n or "name": the fixed stream varinit.generator.Stream(S, n)
  or varinit.Generator(S).stream("name"); the JAX key is ignored, so every
  parameter given this initializer gets the same values: one per layer.

`stream_for(key, seed, stream)` returns that varinit stream for a concrete
key: varinit.<fill>(np_array, ..., generator=stream_for(key)) is the array
init(key, ...) returns. Keys of other PRNG implementations (rbg,
unsafe_rbg: four words) are refused with a ValueError.

Values are computed on the host by varinit's C core (float16, bfloat16,
float32, float64 with jax_enable_x64) and returned as a jax.Array. Under
jit, vmap, scan or eval_shape the key is abstract: the fill then runs
through jax.pure_callback (vmap_method="sequential": one host fill per
key), with the same values; its argument checks run at trace time.
out_sharding is not supported (place the result with jax.device_put).
JAX's xavier_*/kaiming_* aliases are not offered: in varinit those names are
torch's untruncated rules (varinit.kaiming_normal_), not he_normal.
"""
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from . import _validate
from ._arrays import dtype_named
from ._framework_arrays import filled, orthogonal_columns_
from .fan_rules import fans
from .generator import NamedStream, Stream, check_seed
from ._typing import ScalingDistribution, ScalingMode
from .init import (
    SCALING_DISTRIBUTIONS,
    SCALING_MODES,
    normal_,
    orthogonal_,
    trunc_normal_,
    uniform_,
    variance_scaling_,
)

__all__ = [
    "normal", "truncated_normal", "uniform", "variance_scaling",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
    "orthogonal", "stream_for",
]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
KEY_NAME_PREFIX = "jax.random.key:"
Axes = int | Sequence[int]
# what the factories return: init(key, shape, dtype=..., out_sharding=None) -> jax.Array
Initializer = jax.nn.initializers.Initializer


# ---- keys, seeds and streams ----------------------------------------------------
def _key_words(key: Any) -> Any:
    """The two uint32 words of a threefry key (traced or concrete), or a clear error."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if key.ndim != 0:
            raise ValueError(f"key must be one PRNG key, got an array of keys of shape {key.shape}")
        words = jax.random.key_data(key)
    elif dtype == np.uint32 and getattr(key, "ndim", None) == 1:   # jax.random.PRNGKey's raw key
        words = key
    else:
        raise TypeError("key must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
                        f"got {type(key).__module__}.{type(key).__qualname__}"
                        + (f" of dtype {dtype}" if dtype is not None else ""))
    if words.shape != (2,):
        raise ValueError(f"key holds {words.shape[-1]} words; varinit.jax reads threefry2x32 keys "
                         "(2 words, JAX's default PRNG implementation)")
    return words


def _check_stream(stream: Any, seed: int | None) -> int | str | None:
    if stream is None:
        return None
    if seed is None:
        raise ValueError(f"stream={stream!r} needs a seed: without one the JAX key is varinit's key, "
                         "with stream 0")
    if isinstance(stream, str):
        return stream
    return check_seed(stream, "stream")


def _generator(words: np.ndarray, seed: int | None, stream: int | str | None) -> Stream:
    """The varinit stream (a Stream) of concrete key words, per the module docstring."""
    key = int(words[0]) << 32 | int(words[1])
    if seed is None:
        return Stream(key, 0)
    if stream is None:
        return NamedStream(seed, f"{KEY_NAME_PREFIX}{key:016x}")
    return NamedStream(seed, stream) if isinstance(stream, str) else Stream(seed, stream)


def stream_for(key: Any, seed: int | None = None, stream: int | str | None = None) -> Stream:
    """The varinit stream an initializer with this seed and stream fills from for `key`.

    Example::

        >>> import jax, varinit.jax
        >>> key = jax.random.key(0)
        >>> kernel = varinit.jax.he_normal(seed=7)(key, (256, 128))
        >>> same = varinit.variance_scaling_(np.empty((256, 128), np.float32), 2.0, "fan_in",
        ...                                  "truncated_normal", varinit.jax.stream_for(key, seed=7),
        ...                                  in_axis=-2, out_axis=-1)
        >>> bool((np.asarray(kernel) == same).all())
        True
    """
    seed = None if seed is None else check_seed(seed)
    stream = _check_stream(stream, seed)
    try:
        words = np.asarray(_key_words(key))
    except jax.errors.TracerArrayConversionError:
        raise ValueError("stream_for needs a concrete key; under jit the key is abstract") from None
    return _generator(words, seed, stream)


# ---- dtypes -------------------------------------------------------------------------
def _floating(dtype: Any) -> np.dtype:
    """The NumPy dtype of one of FLOAT_DTYPES, or TypeError."""
    try:
        np_dtype = dtype_named(dtype)
    except TypeError:
        raise TypeError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}") from None
    if np_dtype.name not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be one of {FLOAT_DTYPES}, got {np_dtype.name}")
    return np_dtype


def _float_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype a call fills: JAX's default float for None; float64 only with
    jax_enable_x64 (checked at the call, when the setting is the one in force)."""
    if dtype is None:
        return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))
    np_dtype = _floating(dtype)
    if jax.dtypes.canonicalize_dtype(np_dtype) != np_dtype:
        raise ValueError(f"dtype {np_dtype.name} needs jax_enable_x64 "
                         "(jax.config.update('jax_enable_x64', True)); without it JAX keeps float32")
    return np_dtype


# ---- the initializer ----------------------------------------------------------------
def _initializer(fill: Callable[[np.ndarray, Stream], Any], default_dtype: Any, seed: int | None,
                 stream: int | str | None, torch_layout: bool,
                 check: Callable[[tuple[int, ...]], Any] | None = None) -> Initializer:
    """init(key, shape, dtype) filling a new array with fill(array, generator).

    check(shape), when given, raises for shapes the fill refuses: under jit it runs
    at trace time, where an error inside the callback would come back wrapped.
    """
    seed = None if seed is None else check_seed(seed)
    stream = _check_stream(stream, seed)
    torch_layout = _validate.flag(torch_layout, "torch_layout")
    if default_dtype is not None:
        _floating(default_dtype)

    def init(key: Any, shape: Sequence[int], dtype: Any = default_dtype, out_sharding: Any = None) -> jax.Array:
        if out_sharding is not None:
            raise NotImplementedError("varinit.jax initializers make their arrays on the host; "
                                      "out_sharding is not supported (use jax.device_put)")
        dims = _validate.index_tuple(shape, "shape")
        np_dtype = _float_dtype(dtype)
        words = _key_words(key)

        def host(key_words: Any) -> np.ndarray:
            generator = _generator(np.asarray(key_words), seed, stream)
            return filled(dims, np_dtype, torch_layout, lambda arr: fill(arr, generator))

        try:
            concrete = np.asarray(words)
        except jax.errors.TracerArrayConversionError:
            if check is not None:
                check(dims)
            traced: jax.Array = jax.pure_callback(host, jax.ShapeDtypeStruct(dims, np_dtype), words,
                                                  vmap_method="sequential")
            return traced
        return jnp.asarray(host(concrete))

    return init


# ---- the factories --------------------------------------------------------------------
def normal(stddev: float = 1e-2, dtype: Any = None, *, seed: int | None = None,
           stream: int | str | None = None, torch_layout: bool = False) -> Initializer:
    """N(0, stddev^2): varinit.normal_(arr, 0.0, stddev)."""
    stddev = _validate.real(stddev, "stddev", _validate.NON_NEGATIVE)
    return _initializer(lambda arr, g: normal_(arr, 0.0, stddev, g), dtype, seed, stream, torch_layout)


def truncated_normal(stddev: float = 1e-2, dtype: Any = None, lower: float = -2.0, upper: float = 2.0, *,
                     seed: int | None = None, stream: int | str | None = None,
                     torch_layout: bool = False) -> Initializer:
    """N(0, stddev^2) cut to [lower stddev, upper stddev], as JAX (stddev is that of the
    normal before the cut): varinit.trunc_normal_(arr, 0.0, stddev, lower * stddev,
    upper * stddev), sampled exactly by the inverse CDF."""
    stddev = _validate.real(stddev, "stddev", _validate.NON_NEGATIVE)
    lower = _validate.real(lower, "lower", _validate.NOT_NAN)
    upper = _validate.real(upper, "upper", _validate.NOT_NAN)
    if lower >= upper:
        raise ValueError(f"lower must be below upper, got lower={lower}, upper={upper}")
    return _initializer(lambda arr, g: trunc_normal_(arr, 0.0, stddev, lower * stddev, upper * stddev, g),
                        dtype, seed, stream, torch_layout)


def uniform(scale: float = 1e-2, dtype: Any = None, *, seed: int | None = None,
            stream: int | str | None = None, torch_layout: bool = False) -> Initializer:
    """U(0, scale), values in [0, scale), as JAX: varinit.uniform_(arr, 0.0, scale)."""
    scale = _validate.real(scale, "scale", _validate.NON_NEGATIVE)
    return _initializer(lambda arr, g: uniform_(arr, 0.0, scale, g), dtype, seed, stream, torch_layout)


def variance_scaling(scale: float, mode: ScalingMode, distribution: ScalingDistribution, in_axis: Axes = -2,
                     out_axis: Axes = -1,
                     batch_axis: Axes = (), dtype: Any = None, *, seed: int | None = None,
                     stream: int | str | None = None, torch_layout: bool = False) -> Initializer:
    """Var = scale / n with JAX's fans: varinit.variance_scaling_(arr, scale, mode,
    distribution, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis).

    mode: "fan_in", "fan_out", "fan_avg" or "fan_geo_avg"; distribution:
    "truncated_normal" (cut at +-2 of its std, rescaled so the sample's std is
    sqrt(Var)), "normal" or "uniform".
    """
    scale = _validate.real(scale, "scale", _validate.POSITIVE)
    mode = _validate.choice(mode, "mode", SCALING_MODES)
    distribution = _validate.choice(distribution, "distribution", SCALING_DISTRIBUTIONS)
    if _validate.flag(torch_layout, "torch_layout") and (in_axis, out_axis, batch_axis) != (-2, -1, ()):
        raise ValueError("torch_layout=True describes the default kernel layout (in_axis=-2, "
                         "out_axis=-1, no batch_axis)")

    def fill(arr: np.ndarray, generator: Stream) -> None:
        # torch_layout: arr is the (out, in, *kernel) weight, and torch's rule its fans
        if torch_layout:
            variance_scaling_(arr, scale, mode, distribution, generator)
        else:
            variance_scaling_(arr, scale, mode, distribution, generator, in_axis=in_axis, out_axis=out_axis,
                              batch_axis=batch_axis)

    return _initializer(fill, dtype, seed, stream, torch_layout,
                        check=lambda shape: fans(shape, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis))


class ScalingFactory(Protocol):
    """The signature of glorot_normal, he_uniform, lecun_normal and the others."""

    def __call__(self, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: Any = None, *,
                 seed: int | None = None, stream: int | str | None = None,
                 torch_layout: bool = False) -> Initializer: ...


def _fixed_scaling(scale: float, mode: ScalingMode, distribution: ScalingDistribution,
                   doc: str) -> ScalingFactory:
    def factory(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: Any = None, *,
                seed: int | None = None, stream: int | str | None = None,
                torch_layout: bool = False) -> Initializer:
        return variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype,
                                seed=seed, stream=stream, torch_layout=torch_layout)

    factory.__doc__ = f"{doc}: variance_scaling({scale}, {mode!r}, {distribution!r}, ...)."
    return factory


glorot_normal = _fixed_scaling(1.0, "fan_avg", "truncated_normal",
                               "Glorot & Bengio (2010), as JAX: truncated normal, Var = 2 / (fan_in + fan_out)")
glorot_uniform = _fixed_scaling(1.0, "fan_avg", "uniform",
                                "Glorot & Bengio (2010): U(-a, a), a = sqrt(6 / (fan_in + fan_out))")
he_normal = _fixed_scaling(2.0, "fan_in", "truncated_normal",
                           "He et al. (2015), as JAX: truncated normal, Var = 2 / fan_in")
he_uniform = _fixed_scaling(2.0, "fan_in", "uniform", "He et al. (2015): U(-a, a), a = sqrt(6 / fan_in)")
lecun_normal = _fixed_scaling(1.0, "fan_in", "truncated_normal",
                              "LeCun et al. (1998): truncated normal, Var = 1 / fan_in")
lecun_uniform = _fixed_scaling(1.0, "fan_in", "uniform", "LeCun et al. (1998): U(-a, a), a = sqrt(3 / fan_in)")
for _factory, _name in ((glorot_normal, "glorot_normal"), (glorot_uniform, "glorot_uniform"),
                        (he_normal, "he_normal"), (he_uniform, "he_uniform"),
                        (lecun_normal, "lecun_normal"), (lecun_uniform, "lecun_uniform")):
    setattr(_factory, "__name__", _name)
    setattr(_factory, "__qualname__", _name)
del _factory, _name


def orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: Any = None, *, seed: int | None = None,
               stream: int | str | None = None, torch_layout: bool = False) -> Initializer:
    """Saxe et al. (2013), as JAX: the matrix (product of the other axes,
    shape[column_axis]) is varinit.orthogonal_'s fill of a matrix of that shape,
    times scale, reshaped with the column axis back in place. With torch_layout,
    varinit.orthogonal_ of the PyTorch weight, transposed. Its QR is LAPACK's: the
    Gaussian input is the same bits everywhere, the result on one machine and BLAS."""
    scale = _validate.real(scale, "scale")
    column_axis = _validate.integer(column_axis, "column_axis")
    if _validate.flag(torch_layout, "torch_layout") and column_axis != -1:
        raise ValueError("torch_layout=True describes the default kernel layout (column_axis=-1)")

    def fill(arr: np.ndarray, generator: Stream) -> None:
        if torch_layout:
            orthogonal_(arr, scale, generator)
        else:
            orthogonal_columns_(arr, scale, generator, column_axis)

    def check(shape: tuple[int, ...]) -> None:
        if len(shape) < 2:
            raise ValueError(f"an orthogonal init needs a shape of at least 2 dimensions, got {shape}")
        _validate.axes(column_axis, len(shape), "column_axis")

    return _initializer(fill, dtype, seed, stream, torch_layout, check)
