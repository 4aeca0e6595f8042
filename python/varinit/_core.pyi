"""Types of varinit._core, the C extension (csrc/_module.c): one entry per function
of its method table and per constant it adds at import. Functions written with
METH_FASTCALL, METH_O or METH_VARARGS take positional arguments only.
tests/typing/test_core_stub.py checks that this file and the built module name
the same things."""
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

class LayoutError(ValueError):
    """The array is byte-swapped or misaligned: the caller stages it through a native copy."""

STREAM_VERSION: Final[int]
# distributions (vi_params.dist)
UNIFORM: Final[int]
NORMAL: Final[int]
TRUNC_NORMAL: Final[int]
# dtype codes, for normal_max_abs_z
F32: Final[int]
F64: Final[int]
# tensor_view flags
TV_ALLOW_INFERENCE: Final[int]
TV_ALLOW_IRREGULAR: Final[int]
TV_CHECK_ONLY: Final[int]
# fans' layer codes
LAYER_DEFAULT: Final[int]
LAYER_LINEAR: Final[int]
LAYER_CONV: Final[int]
LAYER_CONV_TRANSPOSE: Final[int]
# fast_fill's kinds: the functions of init.py whose common calls it makes
FAST_UNIFORM: Final[int]
FAST_NORMAL: Final[int]
FAST_TRUNC_NORMAL: Final[int]
FAST_KAIMING_UNIFORM: Final[int]
FAST_KAIMING_NORMAL: Final[int]
FAST_XAVIER_UNIFORM: Final[int]
FAST_XAVIER_NORMAL: Final[int]
FAST_ZEROS: Final[int]
FAST_ONES: Final[int]

def fill(
    array: npt.NDArray[Any],
    dist: int,
    p0: float,
    p1: float,
    p2: float,
    p3: float,
    key: int,
    stream: int,
    global_shape: tuple[int, ...] | None,
    start: tuple[int, ...] | None,
    /,
) -> None:
    """Fill `array` (float16, bfloat16, float32 or float64; writable, native byte
    order, aligned) in place; ten positional arguments, global_shape and start
    None for a whole array."""

def fans(
    shape: Sequence[int],
    layer: int = ...,
    groups: int = ...,
    stride: int | Sequence[int] | None = ...,
    blocks: int = ...,
    in_axes: int | Sequence[int] | None = ...,
    out_axes: int | Sequence[int] | None = ...,
    /,
) -> tuple[int | float, int | float]:
    """(fan_in, fan_out): ints, except a strided convolution's average fans (floats)."""

def phase_scale(
    kernel: Sequence[int],
    stride: int | Sequence[int] | None = ...,
    dilation: int | Sequence[int] | None = ...,
    /,
) -> npt.NDArray[np.float64]:
    """Per-tap std multipliers of a phase-balanced transposed convolution, shape `kernel`."""

def tensor_view(tensor: object, flags: int, /) -> npt.NDArray[Any] | str | None:
    """An ndarray sharing a CPU torch tensor's memory, None with TV_CHECK_ONLY, or the
    name of the rule the tensor breaks ("inference", "subclass", "device", "layout",
    "nested", "negated", "dtype", "ndim", "irregular", "storage")."""

def set_tensor_kinds(dtypes: dict[Any, np.dtype[Any]], strided: object, exchange: object, /) -> bool:
    """Tell the torch direct path torch's dtypes, torch.strided and the DLPack exchange
    table (a capsule, or None); True when that table is used."""

def fast_fill(kind: int, target: object, args: tuple[Any, ...], kwargs: dict[str, Any], /) -> Any:
    """`target` filled as init.py's function `kind` fills it when called with
    (target, *args, **kwargs); NotImplemented, with nothing written and no stream
    taken, for every call the Python path must make."""

def fast_fill_register(kind: int, fn: Callable[..., Any], /) -> None:
    """Take `fn`'s defaults for `kind`; ValueError unless fn's parameters after the
    tensor are the ones fast_fill reads."""

def fast_fill_setup(generator_module: ModuleType, arrays_module: ModuleType, gains: dict[Any, Any],
                    limits: dict[np.dtype[Any], tuple[float, float, float, float, float]], /) -> None:
    """What fast_fill reads of the Python layer: generator.py's Generator, Stream,
    NamedStream, default_generator, _torch_words, _torch_key and warn_if_seed_reused;
    _arrays.py's _dry_run; init._TORCH_GAINS; init._limits per dtype."""

def set_torch_calls(tensor: type, parameter: type, has_torch_function: Callable[[object], bool],
                    increment_version: Callable[..., None], /) -> None:
    """The torch side of fast_fill: torch.Tensor, nn.Parameter, torch's
    has_torch_function_unary and its version-counter bump (taking a tuple)."""

def philox4x32_10(
    counter: tuple[int, int, int, int], key: tuple[int, int], /
) -> tuple[int, int, int, int]:
    """One Philox4x32-10 block: four 32-bit words."""

def normal_cdf(x: float, /) -> float:
    """The standard normal CDF (the core's own, libm-free)."""

def truncnorm_moments(alpha: float, beta: float, /) -> tuple[float, float]:
    """(mean, variance) of N(0, 1) truncated to [alpha, beta]."""

def normal_max_abs_z(dtype_code: int, /) -> float:
    """The largest |z| the normal sampler returns for a dtype code (F32 or F64)."""

def isa() -> str:
    """The name of the active kernel table."""

def cpu_features() -> dict[str, bool]:
    """{feature name: detected} as the dispatcher sees them."""

def available_isas() -> list[str]:
    """The kernel tables this machine runs, best first."""

def set_num_threads(n: int, /) -> None:
    """Fill large arrays on n threads (the calling one included), 1 <= n <= the maximum."""

def get_num_threads() -> int:
    """The number of threads a large fill uses."""
