"""Dask arrays of initialized weights whose values do not depend on the chunking.

Each constructor returns a lazy `dask.array.Array`; computing it gives exactly
the bits of the one-process fill, for every chunking, scheduler and cluster:
every chunk is a region fill (``global_shape=shape``, ``start=`` the chunk's
corner) from one stream, resolved once when the graph is built.

Example (2 GiB of weights, written chunk by chunk)::

    import varinit.scale_out.dask_arrays
    w = varinit.scale_out.dask_arrays.kaiming_normal((65536, 8192), chunks=(4096, 8192),
                                     generator=varinit.Generator(0).stream("lm_head.weight"))
    w.to_zarr("weights.zarr")   # one aligned chunk per task, no locks

`array.to_zarr(store)` (dask's own, with its default mode "a") writes each
chunk to its own Zarr chunk without locks when the dask chunks are regular
(all equal except the last per axis), which "auto" and integer chunks are.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from .. import _validate, init
from .._arrays import dtype_named
from .._typing import Array, GeneratorLike, Shape
from ..generator import Stream, resolve

if TYPE_CHECKING:
    import dask.array


class DaskConstructor(Protocol):
    """The signature of every constructor here; **kwargs are the keywords of the
    varinit initializer it wraps (typed by that function, not here)."""

    __name__: str
    __qualname__: str

    def __call__(self, shape: Shape, chunks: Any = "auto", dtype: npt.DTypeLike = "float32",
                 generator: GeneratorLike = None, **kwargs: Any) -> dask.array.Array: ...


def _dask_array_module() -> ModuleType:
    try:
        import dask.array
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "varinit.scale_out.dask_arrays needs dask's array module: pip install 'dask[array]' "
            "(and 'distributed' for clusters)"
        ) from exc
    return dask.array


def _fill_chunk(initializer: Callable[..., Any], shape: tuple[int, ...], dtype: np.dtype[Any], stream: Stream,
                kwargs: dict[str, Any], block_info: dict[Any, Any] | None = None) -> Array:
    """One chunk: a region fill of the virtual `shape` tensor at the chunk's corner."""
    info = (block_info or {})[None]   # dask passes it to every chunk
    start = tuple(lo for lo, _ in info["array-location"])
    out = np.empty(info["chunk-shape"], dtype)
    if out.size:
        initializer(out, generator=stream, global_shape=shape, start=start, **kwargs)
    return out


def _check_arguments(initializer: Callable[..., Any], shape: tuple[int, ...], dtype: np.dtype[Any],
                     kwargs: dict[str, Any]) -> None:
    """Run the initializer on a one-element block so bad arguments fail at build time,
    before the generator is consulted: a fixed stream, so a failure consumes none."""
    stream = Stream(0, 0)
    if 0 in shape:
        probe: Array = np.empty(shape, dtype)
        start = (0,) * len(shape)
    else:
        probe, start = np.empty((1,) * len(shape), dtype), (0,) * len(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kaiming_*'s zero-element warning
        initializer(probe, generator=stream, global_shape=shape, start=start, **kwargs)


def _constructor(initializer: Callable[..., Any]) -> DaskConstructor:
    """A dask constructor for `initializer` (a varinit in-place init function)."""
    public = initializer.__name__.rstrip("_")

    def build(shape: Shape, chunks: Any = "auto", dtype: npt.DTypeLike = "float32", generator: GeneratorLike = None,
              **kwargs: Any) -> dask.array.Array:
        da = _dask_array_module()
        for reserved in ("global_shape", "start", "tensor"):
            if reserved in kwargs:
                raise TypeError(f"{public}() sets {reserved} itself; do not pass it")
        dims = _validate.index_tuple(shape, "shape")
        if math.prod(dims) > _validate.INT64_MAX:  # the C core indexes elements with int64
            raise ValueError(f"shape {dims} has more than 2**63 - 1 elements")
        kind = dtype_named(dtype)
        _check_arguments(initializer, dims, kind, kwargs)
        # The one place the generator is consulted: every chunk gets this stream.
        stream = Stream(*resolve(generator, False))
        chunks = da.core.normalize_chunks(chunks, dims, dtype=kind)
        token = da.core.tokenize(public, dims, chunks, kind.str, stream.key,
                                 stream.stream_id, sorted(kwargs.items()))
        lazy: dask.array.Array = da.map_blocks(
            functools.partial(_fill_chunk, initializer, dims, kind, stream, kwargs),
            chunks=chunks,
            dtype=kind,
            meta=np.empty((0,) * len(dims), kind),
            name=f"varinit-{public}-{token}",
        )
        return lazy

    build.__name__ = build.__qualname__ = public
    build.__doc__ = (
        f"A lazy dask array of `shape`, filled as ``varinit.{initializer.__name__}`` would fill it in one piece.\n\n"
        f"Each chunk is a region fill of the whole (``global_shape=shape``, ``start=`` the chunk's\n"
        f"corner) from one stream, resolved once, now: the computed array is the one-process fill\n"
        f"bit for bit, for every chunking, scheduler and cluster. Needs dask[array].\n\n"
        f"Parameters\n----------\n"
        f"shape : tuple of int\n    The array's shape.\n"
        f"chunks : optional\n    Anything dask.array accepts (default \"auto\").\n"
        f"dtype : str or dtype, default \"float32\"\n    float16, bfloat16, float32 or float64.\n"
        f"generator : None, int, varinit.Generator or Stream, optional\n"
        f"    An int seed, ``Generator.stream(name)``, or a varinit.Generator (one stream taken\n"
        f"    now); None takes the default generator's next stream.\n"
        f"**kwargs\n    The keywords of ``varinit.{initializer.__name__}`` (not tensor, global_shape, start).\n\n"
        f"Returns\n-------\ndask.array.Array\n\n"
        f"Examples\n--------\n"
        f">>> import numpy as np, varinit, varinit.scale_out.dask_arrays\n"
        f">>> x = varinit.scale_out.dask_arrays.{public}((1000, 500), chunks=(300, 200), generator=0)\n"
        f">>> x.chunks\n((300, 300, 300, 100), (200, 200, 100))\n"
        f">>> whole = varinit.{initializer.__name__}(np.empty((1000, 500), np.float32), generator=0)\n"
        f">>> bool((x.compute() == whole).all())\nTrue\n"
    )
    return build


uniform = _constructor(init.uniform_)
normal = _constructor(init.normal_)
trunc_normal = _constructor(init.trunc_normal_)
xavier_uniform = _constructor(init.xavier_uniform_)
xavier_normal = _constructor(init.xavier_normal_)
kaiming_uniform = _constructor(init.kaiming_uniform_)
kaiming_normal = _constructor(init.kaiming_normal_)
variance_scaling = _constructor(init.variance_scaling_)
lecun_normal = _constructor(init.lecun_normal_)
lecun_uniform = _constructor(init.lecun_uniform_)

__all__ = [
    "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "normal",
    "trunc_normal", "uniform", "variance_scaling", "xavier_normal", "xavier_uniform",
]
