"""Initializing tensors larger than memory: block by block, into files.

Every block is a region fill (``global_shape=`` the whole tensor, ``start=``
the block's corner) from one stream, so the result is the same bits as a
one-piece fill while only one block is ever in memory:

- `fill_in_blocks` fills any array, typically a `numpy.memmap`, in row-major
  slabs; for a memmap it hands each written slab back to the kernel so the
  process's resident memory stays about one slab.
- `save_safetensors` and `save_zarr` write a whole model's parameters, each
  from the stream `Generator(seed).stream(name)`, without holding them all.

Example::

    >>> w = np.memmap("w.bin", np.float32, "w+", shape=(1_000_000, 1024))
    >>> fill_in_blocks(w, varinit.normal_, generator=0, std=0.02)
"""
import inspect
import itertools
import json
import math
import mmap
import struct
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import init
from .._arrays import as_array, dtype_named
from ..fans import _positive_int as positive_int
from ..generator import Generator, Stream, check_seed, resolve

# Slab size: large enough that per-call overhead is nil, small enough that
# one slab is a small fraction of any machine's memory.
DEFAULT_BLOCK_BYTES = 64 << 20
# How much a memmap fill writes between two msyncs of the whole map.
DEFAULT_FLUSH_BYTES = 1 << 30
SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}


class TensorSpec(NamedTuple):
    """One parameter to create: its shape, dtype, initializer and the initializer's keywords.

    Example::

        >>> TensorSpec((4096, 1024), "bfloat16", varinit.kaiming_normal_, {"nonlinearity": "relu"})
    """

    shape: tuple
    dtype: Any = "float32"
    initializer: Callable = init.normal_
    kwargs: dict = {}


def slabs(shape, itemsize, block_bytes):
    """(start, block_shape) pairs covering `shape` in row-major order, each at most
    `block_bytes` (or one element) and contiguous in a C-ordered array.

    The split is along the first axis whose trailing sub-tensor fits a block;
    the axes before it are walked one index at a time.
    """
    ndim = len(shape)
    if math.prod(shape) == 0:
        return
    split = ndim - 1 if ndim else 0
    for k in range(ndim):
        if math.prod(shape[k + 1:]) * itemsize <= block_bytes:
            split = k
            break
    if ndim == 0:
        yield (), ()
        return
    unit = math.prod(shape[split + 1:]) * itemsize
    step = max(1, block_bytes // unit)
    for outer in np.ndindex(*shape[:split]):
        for lo in range(0, shape[split], step):
            n = min(step, shape[split] - lo)
            yield (outer + (lo,) + (0,) * (ndim - split - 1),
                   (1,) * split + (n,) + tuple(shape[split + 1:]))


def _accepts(initializer, keyword):
    try:
        return keyword in inspect.signature(initializer).parameters
    except (TypeError, ValueError):
        return False


def _takes_region(initializer):
    return _accepts(initializer, "global_shape")


class _PageReleaser:
    """Hands the written pages of a shared memmap back to the kernel.

    Pages of a MAP_SHARED file mapping count in the process's RSS for as long
    as they stay mapped; MADV_DONTNEED unmaps them while their data stays in
    the page cache and the file (madvise(2): shared file mappings are
    repopulated from the file), so RSS stays about one slab.
    """

    def __init__(self, array):
        self._map = None
        if not (isinstance(array, np.memmap) and getattr(array, "mode", None) in ("r+", "w+")):
            return
        mm = getattr(array, "_mmap", None)
        if not isinstance(mm, mmap.mmap) or not hasattr(mm, "madvise") or not array.flags.c_contiguous:
            return
        self._map = mm
        base = np.frombuffer(mm, np.uint8)
        self._offset = array.ctypes.data - base.ctypes.data
        del base

    def release(self, first_byte, nbytes):
        if self._map is None or nbytes == 0:
            return
        lo = self._offset + first_byte
        aligned = lo - lo % mmap.PAGESIZE
        self._map.madvise(mmap.MADV_DONTNEED, aligned, lo + nbytes - aligned)

    def flush(self):
        if self._map is not None:
            self._map.flush()


def _fill_one(block, initializer, stream, global_shape, start, kwargs):
    if _takes_region(initializer):
        initializer(block, generator=stream, global_shape=global_shape, start=start, **kwargs)
    elif _accepts(initializer, "generator"):
        initializer(block, generator=stream, **kwargs)
    else:
        initializer(block, **kwargs)


def fill_in_blocks(array, initializer, generator=None, *, block_bytes=DEFAULT_BLOCK_BYTES,
                   flush_bytes=DEFAULT_FLUSH_BYTES, progress=None, **kwargs):
    """Fill `array` (a NumPy array, numpy.memmap or PyTorch CPU tensor) with
    `initializer` one row-major slab at a time; returns `array`.

    The values are those of ``initializer(array, generator=..., **kwargs)`` in
    one piece, bit for bit: the generator is resolved once and every slab is a
    region fill of the whole. For a writable, C-contiguous `numpy.memmap`,
    each slab's pages are released after it is written and the map is flushed
    every `flush_bytes` and at the end, so resident memory stays about
    `block_bytes`. `progress(done, total)` (elements) is called after each slab.

    Example::

        >>> w = np.memmap("w.bin", np.float32, "w+", shape=(1 << 20, 1024))
        >>> fill_in_blocks(w, varinit.kaiming_uniform_, 0, progress=lambda d, t: print(d / t))
    """
    if not _takes_region(initializer):
        raise TypeError(
            f"initializer must take global_shape= and start= (a random varinit init such as "
            f"varinit.normal_), got {getattr(initializer, '__name__', initializer)!r}"
        )
    target, array = array, as_array(array)
    block_bytes = positive_int(block_bytes, "block_bytes")
    flush_bytes = positive_int(flush_bytes, "flush_bytes")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable as progress(done, total) or None")
    stream = Stream(*resolve(generator, False))
    shape, total, itemsize = array.shape, array.size, array.dtype.itemsize
    # Fails here, before anything is written, if the arguments are bad.
    probe = np.empty((1,) * array.ndim if total else shape, array.dtype)
    _fill_one(probe, initializer, stream, shape, (0,) * array.ndim, kwargs)
    pages = _PageReleaser(array)
    done = unflushed = 0
    for start, block_shape in slabs(shape, itemsize, block_bytes):
        region = tuple(slice(s, s + n) for s, n in zip(start, block_shape))
        block = array[region]
        _fill_one(block, initializer, stream, shape, start, kwargs)
        count = math.prod(block_shape)
        pages.release(done * itemsize, count * itemsize)
        done += count
        unflushed += count * itemsize
        if unflushed >= flush_bytes:
            pages.flush()
            unflushed = 0
        if progress is not None:
            progress(done, total)
    pages.flush()
    return target


def _model_items(params, generator):
    """Validated (name, shape, dtype, initializer, kwargs, stream) per parameter."""
    if isinstance(generator, Generator):
        seed = generator.initial_seed()
    else:
        seed = check_seed(generator, "generator")
    if not hasattr(params, "items"):
        raise TypeError("params must be a mapping from parameter name to TensorSpec")
    items = []
    for name, spec in params.items():
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be str, got {type(name).__name__}")
        if not isinstance(spec, TensorSpec):
            spec = TensorSpec(*spec)
        shape = init._index_tuple(spec.shape, f"shape of {name!r}")
        if any(n < 0 for n in shape):
            raise ValueError(f"shape of {name!r} must hold non-negative integers, got {shape!r}")
        items.append((name, shape, dtype_named(spec.dtype), spec.initializer, dict(spec.kwargs),
                      Generator(seed).stream(name)))
    return items


def _fill_to_sink(name, shape, dtype, initializer, kwargs, stream, block_bytes, write):
    """Fill one parameter slab by slab (or whole, if its initializer has no region form),
    passing each C-ordered block to write(start, block)."""
    if not _takes_region(initializer):
        whole = np.empty(shape, dtype)
        _fill_one(whole, initializer, stream, shape, (0,) * len(shape), kwargs)
        write((0,) * len(shape), whole)
        return
    for start, block_shape in slabs(shape, dtype.itemsize, block_bytes):
        block = np.empty(block_shape, dtype)
        _fill_one(block, initializer, stream, shape, start, kwargs)
        write(start, block)


def _little_endian_bytes(block):
    bits = block.view(f"u{block.dtype.itemsize}")
    return np.ascontiguousarray(bits.astype(bits.dtype.newbyteorder("<"), copy=False)).data


def save_safetensors(path, params, generator, *, metadata=None, block_bytes=DEFAULT_BLOCK_BYTES,
                     progress=None):
    """Write initialized parameters to a safetensors file, one slab in memory at a time.

    `params` maps each name to a TensorSpec (or a (shape, dtype, initializer,
    kwargs) tuple); tensor `name` gets the values of
    ``initializer(np.empty(shape, dtype), generator=Generator(seed).stream(name), **kwargs)``
    where seed is `generator` (an int, or a varinit.Generator's seed).
    Format (safetensors spec): 8-byte little-endian header length, a JSON
    header {name: {dtype, shape, data_offsets}} padded with spaces to 8 bytes,
    then the tensors' little-endian bytes back to back.
    `progress(done, total)` counts elements over all tensors.

    Example::

        >>> save_safetensors("init.safetensors", {"fc.weight": TensorSpec((4096, 1024), "float32",
        ...                   varinit.kaiming_uniform_)}, generator=0)
    """
    items = _model_items(params, generator)
    header, offset = {}, 0
    for name, shape, dtype, *_ in items:
        code = SAFETENSORS_DTYPES.get(dtype.name)
        if code is None:
            raise TypeError(f"dtype of {name!r} must be one of {sorted(SAFETENSORS_DTYPES)}, got {dtype}")
        size = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    total = sum(math.prod(item[1]) for item in items)
    done = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape, dtype, initializer, kwargs, stream in items:
            def write(start, block):
                nonlocal done
                f.write(_little_endian_bytes(block))
                done += block.size
                if progress is not None:
                    progress(done, total)
            _fill_to_sink(name, shape, dtype, initializer, kwargs, stream, block_bytes, write)
    return path


def save_zarr(store, params, generator, *, chunks="auto", progress=None):
    """Write initialized parameters to a Zarr group: one array per parameter, filled chunk by chunk.

    Values as in `save_safetensors`. `store` is anything zarr.open_group
    accepts (a path, a zarr.storage store); `chunks` is "auto" (zarr picks) or
    a mapping from parameter name to its chunk shape ("auto" for names not in
    it). Only one chunk is in memory at a time. Returns the group.

    Example::

        >>> g = save_zarr("init.zarr", {"fc.weight": TensorSpec((4096, 1024))}, generator=0)
    """
    import zarr

    items = _model_items(params, generator)
    for name, _, dtype, *_ in items:
        if dtype.name not in ("float16", "float32", "float64"):
            raise TypeError(f"dtype of {name!r} must be float16, float32 or float64 for Zarr, got {dtype}")
    group = zarr.open_group(store, mode="a")
    total = sum(math.prod(item[1]) for item in items)
    done = 0
    for name, shape, dtype, initializer, kwargs, stream in items:
        chunk_shape = chunks.get(name, "auto") if hasattr(chunks, "get") else chunks
        z = group.create_array(name, shape=shape, dtype=dtype, chunks=chunk_shape, overwrite=True)
        chunk = z.chunks
        whole = None if _takes_region(initializer) else np.empty(shape, dtype)
        if whole is not None:
            _fill_one(whole, initializer, stream, shape, (0,) * len(shape), kwargs)
        for corner in itertools.product(*(range(0, n, c) for n, c in zip(shape, chunk))):
            region = tuple(slice(s, min(s + c, n)) for s, c, n in zip(corner, chunk, shape))
            if whole is not None:
                block = whole[region]
            else:
                block = np.empty(tuple(r.stop - r.start for r in region), dtype)
                _fill_one(block, initializer, stream, shape, corner, kwargs)
            z[region] = block
            done += block.size
            if progress is not None:
                progress(done, total)
    return group
