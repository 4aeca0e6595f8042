"""Keras 3 initializers with varinit's values: for the same seed and stream, a
kernel holds the same bits as varinit's fill of a NumPy array of its shape.

    import keras
    import varinit.keras

    layer = keras.layers.Dense(256, kernel_initializer=varinit.keras.HeNormal(seed=1234))

Each class subclasses keras.initializers.Initializer, takes the arguments of
its Keras namesake, and is registered as "varinit>ClassName", so
keras.initializers.get(config), get_config/from_config and a saved model
find it. Values come from varinit's C core on the host, in float16,
bfloat16, float32 or float64, and reach the backend through
keras.ops.convert_to_tensor (a float16/bfloat16 value converts exactly).

Seeds and streams. The random classes take, besides Keras's arguments,

- seed: varinit's 64-bit key, an int in [0, 2**64), or None;
- stream: an int stream id in [0, 2**64) or a str name (it needs a seed);
- torch_layout: False (the kernel is filled in its own layout) or True (the
  PyTorch weight (out, in, *kernel) is filled and transposed to Keras's
  (*kernel, in, out): the Keras layer then holds exactly the weights of the
  PyTorch layer filled from the same seed and stream).

What the k-th call of one instance (k = 0, 1, ...) returns, and the NumPy
fill it equals bit for bit (`fill` = the varinit function behind the class):

- seed=None: the next stream of varinit.default_generator, as
  fill(generator=None); varinit.manual_seed(s) makes a model reproducible.
  keras.utils.set_random_seed does not reach varinit's generator.
- seed=S, no stream: stream k of S, as the k-th fill from
  varinit.Generator(S) (the first call is fill(generator=S)). Every call
  differs, so one instance can serve many layers; a new instance (a
  from_config copy, a rebuilt model) replays the same sequence.
- seed=S, stream=n or "name": the fixed stream varinit.generator.Stream(S, n)
  or varinit.Generator(S).stream("name"); every call returns the same
  values: give each layer its own stream.

Keras's own initializers differ: unseeded or seeded with an int, they return
the same values at every call (they draw their seed once).

Fans follow Keras (keras.initializers.VarianceScaling): fan_in =
shape[-2] * prod(shape[:-2]), fan_out = shape[-1] * prod(shape[:-2]), i.e.
varinit.fans(shape, in_axis=-2, out_axis=-1); with input_axes/output_axes,
the products of those axes alone, i.e. varinit.fans(shape, in_axis=input_axes,
out_axis=output_axes, batch_axis=<the other axes>). Where varinit's own rule
differs: a grouped convolution's kernel (kh, kw, in/g, out) gets Keras's
fan_out = out * kh * kw, g times that of varinit.fans(layer="conv",
groups=g) (the overcount of pytorch issue 23854); and Keras gives a vector
fan_in = fan_out = its length, where these classes raise ValueError.
"""
from collections.abc import Sequence
from typing import Any, Literal

import keras
import numpy as np

from . import _validate
from ._arrays import dtype_named
from ._framework_arrays import filled, orthogonal_columns_
from .generator import Generator, NamedStream, Stream, check_seed
from ._typing import ScalingDistribution, ScalingMode
from .init import (
    SCALING_MODES,
    check_fits,
    constant_,
    eye_,
    normal_,
    ones_,
    orthogonal_,
    trunc_normal_,
    uniform_,
    variance_scaling_,
    zeros_,
)

__all__ = [
    "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform",
    "Orthogonal", "Constant", "Zeros", "Ones", "Identity",
]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
# Keras reads "normal" as its truncated normal (keras.initializers.VarianceScaling);
# varinit's "normal" is the untruncated one, which Keras calls "untruncated_normal".
KerasDistribution = Literal["truncated_normal", "normal", "untruncated_normal", "uniform"]
KERAS_DISTRIBUTIONS: dict[KerasDistribution, ScalingDistribution] = {
    "truncated_normal": "truncated_normal", "normal": "truncated_normal",
    "untruncated_normal": "untruncated_normal", "uniform": "uniform"}
# Keras's own truncated normal cuts at two standard deviations from the mean.
TRUNCATION = 2.0

_serializable = keras.saving.register_keras_serializable(package="varinit")


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, (keras.random.SeedGenerator, dict)):
        raise TypeError(
            "seed must be an int (varinit's 64-bit key) or None, got a keras.random.SeedGenerator: "
            "its draws come from Keras's random ops, which varinit cannot reproduce"
        )
    return check_seed(seed)


def _check_stream(stream: Any, seed: int | None) -> int | str | None:
    if stream is None:
        return None
    if seed is None:
        raise ValueError(f"stream={stream!r} needs a seed: a stream is one of the streams of a seed")
    if isinstance(stream, str):
        return stream
    return check_seed(stream, "stream")


def _check_axes(input_axes: Any, output_axes: Any) -> tuple[list[int] | None, list[int] | None]:
    """Keras's input_axes/output_axes (lists of ints), both or neither."""
    if (input_axes is None) != (output_axes is None):
        raise ValueError("give both input_axes and output_axes, or neither (Keras's fan rule then applies)")
    if input_axes is None:
        return None, None
    for value, name in ((input_axes, "input_axes"), (output_axes, "output_axes")):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list of ints, got {type(value).__name__}")
        for axis in value:
            _validate.integer(axis, name, minimum=None, maximum=None)
    return list(input_axes), list(output_axes)


def _float_dtype(dtype: Any) -> tuple[np.dtype, str]:
    """(NumPy dtype, Keras dtype name) of a floating dtype; Keras's floatx for None."""
    name = keras.backend.standardize_dtype(dtype)
    if name not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be one of {FLOAT_DTYPES}, got {name}")
    return dtype_named(name), name


class _VarinitInitializer(keras.initializers.Initializer):
    """A Keras initializer whose values are a NumPy array varinit fills (`_array`)."""

    def __call__(self, shape: Sequence[int], dtype: Any = None) -> Any:
        dims = _validate.index_tuple(shape, "shape")
        np_dtype, name = _float_dtype(dtype)
        return keras.ops.convert_to_tensor(self._array(dims, np_dtype), dtype=name)

    def _array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The values, a new array of this shape and dtype (each class defines it)."""
        raise NotImplementedError


class _Random(_VarinitInitializer):
    """seed, stream and torch_layout (module docstring), and the generator of a call."""

    def __init__(self, seed: int | None = None, stream: int | str | None = None,
                 torch_layout: bool = False) -> None:
        self.seed = _check_seed(seed)
        self.stream = _check_stream(stream, self.seed)
        self.torch_layout = _validate.flag(torch_layout, "torch_layout")
        # seed without a stream: a stream counter, so that calls differ
        self._counter = Generator(self.seed) if self.seed is not None and self.stream is None else None

    def _generator(self) -> Any:
        """What the fill draws from: the fill takes its stream only once its checks pass."""
        if self.seed is None:
            return None  # varinit.default_generator
        if self._counter is not None or self.stream is None:   # stream None: the counter
            return self._counter
        if isinstance(self.stream, str):
            return NamedStream(self.seed, self.stream)
        return Stream(self.seed, self.stream)

    def _array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        generator = self._generator()
        return filled(shape, dtype, self.torch_layout, lambda arr: self._fill(arr, generator))

    def _fill(self, arr: np.ndarray, generator: Any) -> None:
        """Fill arr from generator with the class's varinit function (each class defines it)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed, "stream": self.stream, "torch_layout": self.torch_layout}


@_serializable
class RandomNormal(_Random):
    """N(mean, stddev^2): varinit.normal_(arr, mean, stddev)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None,
                 stream: int | str | None = None, torch_layout: bool = False) -> None:
        self.mean = _validate.real(mean, "mean")
        self.stddev = _validate.real(stddev, "stddev", _validate.NON_NEGATIVE)
        super().__init__(seed, stream, torch_layout)

    def _fill(self, arr: np.ndarray, generator: Any) -> None:
        normal_(arr, self.mean, self.stddev, generator)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


@_serializable
class RandomUniform(_Random):
    """U(minval, maxval), values in [minval, maxval): varinit.uniform_(arr, minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None,
                 stream: int | str | None = None, torch_layout: bool = False) -> None:
        self.minval = _validate.real(minval, "minval")
        self.maxval = _validate.real(maxval, "maxval")
        if self.minval > self.maxval:
            raise ValueError(f"minval must be <= maxval, got minval={self.minval}, maxval={self.maxval}")
        super().__init__(seed, stream, torch_layout)

    def _fill(self, arr: np.ndarray, generator: Any) -> None:
        uniform_(arr, self.minval, self.maxval, generator)

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


@_serializable
class TruncatedNormal(_Random):
    """N(mean, stddev^2) cut at mean +- 2 stddev, as Keras (stddev is that of the
    normal before the cut): varinit.trunc_normal_(arr, mean, stddev, mean - 2 stddev,
    mean + 2 stddev), sampled exactly by the inverse CDF."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None,
                 stream: int | str | None = None, torch_layout: bool = False) -> None:
        self.mean = _validate.real(mean, "mean")
        self.stddev = _validate.real(stddev, "stddev", _validate.NON_NEGATIVE)
        super().__init__(seed, stream, torch_layout)

    def _fill(self, arr: np.ndarray, generator: Any) -> None:
        cut = TRUNCATION * self.stddev
        trunc_normal_(arr, self.mean, self.stddev, self.mean - cut, self.mean + cut, generator)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


@_serializable
class VarianceScaling(_Random):
    """Var = scale / n (n: fan_in, fan_out, fan_avg or fan_geo_avg) with Keras's fans:
    varinit.variance_scaling_(arr, scale, mode, distribution, in_axis=-2, out_axis=-1).

    distribution: "truncated_normal" (its sample std is sqrt(Var)), "normal" (Keras's
    name for the same truncated normal), "untruncated_normal" or "uniform".
    input_axes/output_axes: Keras's; the other axes then count in no fan.
    """

    def __init__(self, scale: float = 1.0, mode: ScalingMode = "fan_in",
                 distribution: KerasDistribution = "truncated_normal",
                 seed: int | None = None, stream: int | str | None = None,
                 input_axes: Sequence[int] | None = None, output_axes: Sequence[int] | None = None,
                 torch_layout: bool = False) -> None:
        self.scale = _validate.real(scale, "scale", _validate.POSITIVE)
        self.mode = _validate.choice(mode, "mode", SCALING_MODES)
        self.distribution = KERAS_DISTRIBUTIONS[
            _validate.choice(distribution, "distribution", tuple(KERAS_DISTRIBUTIONS))]
        self.input_axes, self.output_axes = _check_axes(input_axes, output_axes)
        super().__init__(seed, stream, torch_layout)
        if self.torch_layout and self.input_axes is not None:
            raise ValueError("torch_layout=True describes Keras's default kernel layout; it does not "
                             "combine with input_axes/output_axes")

    def _layout(self, ndim: int) -> dict[str, Any]:
        """varinit's fan keywords for Keras's rule on an ndim-dimensional kernel."""
        if self.torch_layout:
            return {}  # torch's rule on the (out, in, *kernel) weight: Keras's fans
        if self.input_axes is None:
            return {"in_axis": -2, "out_axis": -1}
        inputs = _validate.axes(self.input_axes, ndim, "input_axes")
        outputs = _validate.axes(self.output_axes, ndim, "output_axes")
        if set(inputs) & set(outputs):
            raise ValueError(f"input_axes={self.input_axes} and output_axes={self.output_axes} must name "
                             "different axes")
        return {"in_axis": inputs, "out_axis": outputs,
                "batch_axis": tuple(k for k in range(ndim) if k not in inputs + outputs)}

    def _array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if len(shape) < 2:
            raise ValueError(
                f"{type(self).__name__}: shape {shape} has {len(shape)} dimensions; varinit's fans need "
                "a weight of at least 2 (Keras would take fan_in = fan_out = shape[0] for a vector). "
                "Use RandomNormal or TruncatedNormal with an explicit stddev for vectors"
            )
        return super()._array(shape, dtype)

    def _fill(self, arr: np.ndarray, generator: Any) -> None:
        variance_scaling_(arr, self.scale, self.mode, self.distribution, generator, **self._layout(arr.ndim))

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "input_axes": self.input_axes, "output_axes": self.output_axes, **super().get_config()}


class _FixedScaling(VarianceScaling):
    """A VarianceScaling whose scale, mode and distribution the class fixes."""

    SCALING: tuple[float, ScalingMode, KerasDistribution]  # (scale, mode, distribution)

    def __init__(self, seed: int | None = None, stream: int | str | None = None,
                 input_axes: Sequence[int] | None = None, output_axes: Sequence[int] | None = None,
                 torch_layout: bool = False) -> None:
        super().__init__(*self.SCALING, seed=seed, stream=stream, input_axes=input_axes,
                         output_axes=output_axes, torch_layout=torch_layout)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for fixed in ("scale", "mode", "distribution"):
            del config[fixed]
        return config


@_serializable
class GlorotNormal(_FixedScaling):
    """Glorot & Bengio (2010), as Keras: truncated normal, Var = 2 / (fan_in + fan_out)."""

    SCALING = (1.0, "fan_avg", "truncated_normal")


@_serializable
class GlorotUniform(_FixedScaling):
    """Glorot & Bengio (2010): U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""

    SCALING = (1.0, "fan_avg", "uniform")


@_serializable
class HeNormal(_FixedScaling):
    """He et al. (2015), as Keras: truncated normal, Var = 2 / fan_in (torch's
    kaiming_normal_ is untruncated: VarianceScaling(2.0, "fan_in", "untruncated_normal"))."""

    SCALING = (2.0, "fan_in", "truncated_normal")


@_serializable
class HeUniform(_FixedScaling):
    """He et al. (2015): U(-a, a), a = sqrt(6 / fan_in)."""

    SCALING = (2.0, "fan_in", "uniform")


@_serializable
class LecunNormal(_FixedScaling):
    """LeCun et al. (1998): truncated normal, Var = 1 / fan_in (SELU networks)."""

    SCALING = (1.0, "fan_in", "truncated_normal")


@_serializable
class LecunUniform(_FixedScaling):
    """LeCun et al. (1998): U(-a, a), a = sqrt(3 / fan_in)."""

    SCALING = (1.0, "fan_in", "uniform")


@_serializable
class Orthogonal(_Random):
    """Saxe et al. (2013), as Keras: the matrix (prod(shape[:-1]), shape[-1]) is
    varinit.orthogonal_'s fill of a matrix of that shape, times gain, reshaped
    (orthonormal columns when it is tall). With torch_layout, varinit.orthogonal_
    of the PyTorch weight, transposed. Its QR is LAPACK's: the Gaussian input is
    the same bits everywhere, the result on one machine and BLAS."""

    def __init__(self, gain: float = 1.0, seed: int | None = None, stream: int | str | None = None,
                 torch_layout: bool = False) -> None:
        self.gain = _validate.real(gain, "gain")
        super().__init__(seed, stream, torch_layout)

    def _fill(self, arr: np.ndarray, generator: Any) -> None:
        if self.torch_layout:
            orthogonal_(arr, self.gain, generator)
        else:
            orthogonal_columns_(arr, self.gain, generator)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, **super().get_config()}


@_serializable
class Constant(_VarinitInitializer):
    """Every value `value`: varinit.constant_(arr, value)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = _validate.real(value, "value", _validate.ANY)

    def _array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        check_fits(self.value, dtype, "value")
        return constant_(np.empty(shape, dtype), self.value)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


@_serializable
class Zeros(_VarinitInitializer):
    """Every value 0: varinit.zeros_."""

    def _array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return zeros_(np.empty(shape, dtype))


@_serializable
class Ones(_VarinitInitializer):
    """Every value 1: varinit.ones_."""

    def _array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return ones_(np.empty(shape, dtype))


@_serializable
class Identity(_VarinitInitializer):
    """gain on the leading diagonal of a 2-D kernel, 0 elsewhere: varinit.eye_ times gain."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = _validate.real(gain, "gain")

    def _array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        check_fits(self.gain, dtype, "gain")
        arr = eye_(np.empty(shape, dtype))
        arr[arr != 0] = self.gain
        return arr

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}
