"""Filling a tensor larger than memory, block by block.

Every block is a region fill (``global_shape=`` the whole tensor, ``start=``
the block's corner) from one stream, so the result is the same bits as a
one-piece fill while only one block is ever in memory. `fill_in_blocks`
fills any array, typically a `numpy.memmap`, in row-major slabs; for a
memmap it reserves the file's blocks first (a full disk is an OSError, not a
SIGBUS) and hands each written slab back to the kernel so the process's
resident memory stays about one slab.

Example (a 4 GiB file, filled with about 64 MiB in memory)::

    w = np.memmap("w.bin", np.float32, "w+", shape=(1_000_000, 1024))
    fill_in_blocks(w, varinit.normal_, generator=0, std=0.02)
"""
from __future__ import annotations

import inspect
import math
import mmap
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .. import _validate
from .._arrays import as_array, is_torch_tensor
from ..generator import Stream, resolve
from .._typing import Array, FillableT, GeneratorLike
from ..progress import Progress, reporter
from .durable_files import reserve

if TYPE_CHECKING:
    import torch

# Slab size: large enough that per-call overhead is nil, small enough that
# one slab is a small fraction of any machine's memory.
DEFAULT_BLOCK_BYTES = 64 << 20
# How much a memmap fill writes between two msyncs of the whole map.
DEFAULT_FLUSH_BYTES = 1 << 30
# The stream of validation probes: their values are thrown away, and a fixed
# stream means a probe never takes one from the caller's generator.
PROBE_STREAM = Stream(0, 0)


def slabs(shape: tuple[int, ...], itemsize: int,
          block_bytes: int) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
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


def _accepts(initializer: Callable[..., Any], keyword: str) -> bool:
    try:
        return keyword in inspect.signature(initializer).parameters
    except (TypeError, ValueError):
        return False


def takes_region(initializer: Callable[..., Any]) -> bool:
    """True if `initializer` fills a block of a larger tensor (takes global_shape= and start=)."""
    return _accepts(initializer, "global_shape")


def fill_block(block: object, initializer: Callable[..., Any], stream: Stream, global_shape: tuple[int, ...],
               start: tuple[int, ...], kwargs: dict[str, Any]) -> None:
    """Fill `block`, the part at `start` of a tensor of `global_shape`, from `stream`.

    Initializers without a region form are called on `block` as it is (it
    must then be the whole tensor); those without a generator (zeros_, ones_)
    without one.
    """
    if takes_region(initializer):
        initializer(block, generator=stream, global_shape=global_shape, start=start, **kwargs)
    elif _accepts(initializer, "generator"):
        initializer(block, generator=stream, **kwargs)
    else:
        initializer(block, **kwargs)


def probe(initializer: Callable[..., Any], shape: tuple[int, ...], dtype: np.dtype[Any], kwargs: dict[str, Any],
          torch_dtype: torch.dtype | None = None) -> None:
    """Raise what filling a tensor of `shape` and `dtype` with `initializer(**kwargs)` would
    raise, at the cost of one element: a one-element block of the whole for a region
    initializer (its checks and fans see the whole shape), else a zero-length first axis
    (the keywords and the number of axes are checked, nothing is computed). The probe is a
    torch tensor of `torch_dtype` if one is given, else a NumPy array of `dtype`."""
    if takes_region(initializer) or not shape:
        probe_shape = (1,) * len(shape) if math.prod(shape) else shape
    else:
        probe_shape = (0,) + tuple(shape[1:])
    if torch_dtype is not None:
        import torch

        block: object = torch.empty(probe_shape, dtype=torch_dtype)
    else:
        block = np.empty(probe_shape, dtype)
    fill_block(block, initializer, PROBE_STREAM, tuple(shape), (0,) * len(shape), kwargs)


class _PageReleaser:
    """Hands the written pages of a shared memmap back to the kernel.

    Pages of a MAP_SHARED file mapping count in the process's RSS for as long
    as they stay mapped; MADV_DONTNEED unmaps them while their data stays in
    the page cache and the file (madvise(2): shared file mappings are
    repopulated from the file), so RSS stays about one slab.
    """

    def __init__(self, array: Array) -> None:
        self._map: mmap.mmap | None = None
        if not (isinstance(array, np.memmap) and getattr(array, "mode", None) in ("r+", "w+")):
            return
        mm = getattr(array, "_mmap", None)
        if not isinstance(mm, mmap.mmap) or not hasattr(mm, "madvise") or not array.flags.c_contiguous:
            return
        self._map = mm
        base = np.frombuffer(mm, np.uint8)
        self._offset = array.ctypes.data - base.ctypes.data
        del base

    def release(self, first_byte: int, nbytes: int) -> None:
        if self._map is None or nbytes == 0:
            return
        lo = self._offset + first_byte
        aligned = lo - lo % mmap.PAGESIZE
        self._map.madvise(mmap.MADV_DONTNEED, aligned, lo + nbytes - aligned)

    def flush(self) -> None:
        if self._map is not None:
            self._map.flush()


def _reserve_mapped_file(array: Array) -> None:
    """Allocate the file blocks under a writable, file-backed numpy.memmap's elements
    (`array` or an ndarray viewing one).

    A shared mapping of a sparse file (np.memmap's "w+" creates one) gets its
    blocks only when a page is first written; on a full filesystem the kernel
    then answers the write with SIGBUS, which kills the process
    (mmap(2)). Reserving first turns that into an OSError before any write.
    """
    node: object = array
    while isinstance(node, np.ndarray) and not isinstance(node, np.memmap):
        node = node.base
    mm = getattr(node, "_mmap", None)
    if (not isinstance(node, np.memmap) or node.mode not in ("r+", "w+") or not node.filename
            or not isinstance(mm, mmap.mmap) or array.size == 0):
        return
    # np.memmap maps the file from `offset` rounded down to the allocation granularity
    map_start = node.offset - node.offset % mmap.ALLOCATIONGRANULARITY
    base = np.frombuffer(mm, np.uint8)
    map_address = base.ctypes.data
    del base
    lo, hi = np.lib.array_utils.byte_bounds(array)
    fd = os.open(node.filename, os.O_RDWR)
    try:
        reserve(fd, map_start + lo - map_address, hi - lo, node.filename)
    finally:
        os.close(fd)


def fill_in_blocks(array: FillableT, initializer: Callable[..., Any], generator: GeneratorLike = None, *,
                   block_bytes: int = DEFAULT_BLOCK_BYTES, flush_bytes: int = DEFAULT_FLUSH_BYTES,
                   progress: Progress = None, **kwargs: Any) -> FillableT:
    """Fill an array larger than memory with `initializer`, one row-major slab at a time; returns `array`.

    The values are those of ``initializer(array, generator=..., **kwargs)`` in
    one piece, bit for bit: the generator is resolved once, as a direct call
    resolves it (for a torch tensor, generator=None draws the key from
    torch's default generator, so ``torch.manual_seed`` governs it), and every
    slab is a region fill of the whole. Everything is checked before anything
    is written and before a stream is taken. For a writable ``numpy.memmap``
    (or a view of one) the file's blocks under the array are reserved first
    (``posix_fallocate``), so a full filesystem raises OSError (ENOSPC) naming
    the file instead of a SIGBUS; for a C-contiguous one, each slab's pages
    are released after it is written (``madvise(MADV_DONTNEED)``) and the map
    is flushed every `flush_bytes` and at the end, so resident memory stays
    about `block_bytes`.

    Parameters
    ----------
    array : ndarray, numpy.memmap or torch.Tensor
        The array to fill in place (float16, bfloat16, float32, float64).
    initializer : callable
        A random varinit fill that takes ``global_shape=`` and ``start=``:
        ``uniform_``, ``normal_``, ``trunc_normal_``, ``kaiming_*``,
        ``xavier_*``, ``variance_scaling_``, ``lecun_*``.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Resolved once, as a direct call of `initializer` resolves it.
    block_bytes : int, default 64 MiB
        The size of one slab.
    flush_bytes : int, default 1 GiB
        How much a memmap fill writes between two flushes.
    progress : bool or callable, optional
        True: a tqdm progress bar, when tqdm is installed (`varinit.progress`);
        a callable is called as ``progress(done, total)`` (elements) after
        each slab.
    **kwargs
        The keywords of `initializer` (std=, nonlinearity=, ...).

    Returns
    -------
    ndarray, numpy.memmap or torch.Tensor
        `array`, filled in place.

    Examples
    --------
    >>> import os, tempfile, numpy as np, varinit
    >>> from varinit.scale_out.blocks import fill_in_blocks
    >>> folder = tempfile.TemporaryDirectory()
    >>> w = np.memmap(os.path.join(folder.name, "w.bin"), np.float32, "w+", shape=(4096, 256))
    >>> _ = fill_in_blocks(w, varinit.normal_, 0, std=0.02, block_bytes=1 << 20,
    ...                    progress=lambda done, total: print(done / total))
    0.25
    0.5
    0.75
    1.0
    >>> bool((w == varinit.normal_(np.empty((4096, 256), np.float32), std=0.02, generator=0)).all())
    True
    >>> del w
    >>> folder.cleanup()
    """
    if not takes_region(initializer):
        raise TypeError(
            f"initializer must take global_shape= and start= (a random varinit init such as "
            f"varinit.normal_), got {getattr(initializer, '__name__', initializer)!r}"
        )
    target, view = array, as_array(array)
    torch_target = is_torch_tensor(target)
    block_bytes = _validate.integer(block_bytes, "block_bytes", minimum=1)
    flush_bytes = _validate.integer(flush_bytes, "flush_bytes", minimum=1)
    step = reporter(progress, "varinit: filling", unit="values")
    shape, total, itemsize = view.shape, view.size, view.dtype.itemsize
    probe(initializer, shape, view.dtype, kwargs, cast("torch.Tensor", target).dtype if torch_target else None)
    _reserve_mapped_file(view)
    stream = Stream(*resolve(generator, torch_target))
    # Blocks of a torch tensor are torch views (detach() shares the version
    # counter), so each block is written as a direct call writes a tensor.
    whole: Any = cast("torch.Tensor", target).detach() if torch_target else view
    pages = _PageReleaser(view)
    done = unflushed = 0
    for start, block_shape in slabs(shape, itemsize, block_bytes):
        # the Ellipsis keeps a 0-d block an array (a[()] would be a scalar)
        block = whole[tuple(slice(s, s + n) for s, n in zip(start, block_shape)) + (Ellipsis,)]
        initializer(block, generator=stream, global_shape=shape, start=start, **kwargs)
        count = math.prod(block_shape)
        pages.release(done * itemsize, count * itemsize)
        done += count
        unflushed += count * itemsize
        if unflushed >= flush_bytes:
            pages.flush()
            unflushed = 0
        if step is not None:
            step(done, total)
    pages.flush()
    return target
