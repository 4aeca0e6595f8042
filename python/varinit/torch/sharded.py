"""DTensor targets: each rank fills its local shard with exactly the values the
whole (global) tensor would have there, so a sharded model holds the bits of
the one-process fill whatever the mesh, the placements or the number of ranks.

Where the shard sits. Along each tensor axis a rank holds a set of the global
indices, found by applying the placements left to right, as DTensor defines
them: `Shard(d)` keeps this rank's `torch.chunk` piece of the indices held so
far (torch's public `Shard.local_shard_size_and_offset` gives its size and
offset); `_StridedShard(d, split_factor=k)` (what FSDP2 puts on top of tensor
parallelism) first chunks them into k pieces, then keeps this rank's chunk of
each piece; `Replicate` keeps them all. Those sets are increasing, so they
break into runs of consecutive indices, and the local shard is the product
of the axes' runs: a few blocks of the global tensor (one for Shard and for
FSDP2 + TP with even sizes).

How it is filled. A function with a region form (every random fill: uniform_,
normal_, trunc_normal_, xavier_*, kaiming_*, variance_scaling_, lecun_*,
sparse_) fills each block as `fn(block, ..., global_shape=, start=)`, which
gives it the whole tensor's values (fans from the global shape).
constant_/ones_/zeros_ fill the shard as it is. Everything else (orthogonal_,
eye_, dirac_, the recipes) has no region form: the whole tensor is built on
every rank and each keeps its indices, with a warning that says what that
costs whenever the shard is smaller than the whole.

The order of a call: the arguments are checked on a meta stand-in of the
global tensor (any bad argument raises on every rank before anything is
drawn), the generator is resolved once to a fixed stream, the ranks of the
mesh confirm that they drew the same stream (one small all-reduce per mesh
dimension: ranks whose generators are in different states would otherwise
build shards of different tensors), and only then is anything written.

torch.distributed.tensor is imported inside the functions that meet a
DTensor (it is loaded then): importing varinit.torch, whose init_module and
trace use this module, must not cost its half second.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import itertools
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch.autograd.graph import increment_version

from .. import init
from .._arrays import as_array, is_dtensor, writes_in_place
from ..generator import Stream, resolve, user_frame
from .across_ranks import same_on_every_rank

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor

# the numbers a rank holds along each axis of the global tensor
Indices = list[npt.NDArray[np.int64]]

# The functions whose values do not depend on the position: the shard is filled as it is.
_POSITION_FREE = frozenset(getattr(f, "__wrapped__") for f in (init.constant_, init.ones_, init.zeros_))


def fill_dtensor(fn: Callable[..., Any], dtensor: DTensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> DTensor:
    """Fill the local shard of `dtensor` as `fn(whole global tensor, *args, **kwargs)`
    would fill it there; returns `dtensor`. `fn` is the undecorated fill."""
    name = fn.__name__
    if "global_shape" in kwargs or "start" in kwargs:
        raise ValueError(f"{name}: global_shape and start come from the DTensor itself (its shape and "
                         "placements); pass them only with a plain tensor or array")
    _check_placements(dtensor, name)
    global_shape = tuple(dtensor.shape)
    # every argument checked as for the whole tensor: a bad one raises on every rank, nothing drawn
    writes_in_place(fn)(torch.empty(global_shape, dtype=dtensor.dtype, device="meta"), *args, **kwargs)
    indices = _local_indices(dtensor)
    if indices is None:   # this rank is not in the DTensor's mesh: it holds nothing, draws nothing
        return dtensor
    args, kwargs = _with_fixed_stream(fn, dtensor, args, kwargs)
    with torch.no_grad():
        local = dtensor.to_local()
        if local.numel():
            if fn in _POSITION_FREE:
                fn(local, *args, **kwargs)
            elif _takes_region(fn):
                for block, start in _blocks(local, indices):
                    fn(block, *args, global_shape=global_shape, start=start, **kwargs)
            else:
                _fill_from_whole(fn, dtensor, local, indices, args, kwargs)
            increment_version(local)
    increment_version(dtensor)
    return dtensor


@functools.cache
def _takes_region(fn: Callable[..., Any]) -> bool:
    return "global_shape" in inspect.signature(fn).parameters


def _check_placements(dtensor: DTensor, name: str) -> None:
    from torch.distributed.tensor.placement_types import _StridedShard

    for mesh_dim, placement in enumerate(dtensor.placements):
        if placement.is_partial():
            raise ValueError(
                f"{name}: the DTensor is Partial on mesh dimension {mesh_dim} ({placement}): its local "
                "tensors are summands of the values, not values; redistribute it to Replicate or "
                "Shard before filling it")
        if not (placement.is_replicate() or placement.is_shard() or isinstance(placement, _StridedShard)):
            raise TypeError(f"{name}: unsupported DTensor placement {placement!r} on mesh dimension "
                            f"{mesh_dim}; expected Shard, _StridedShard or Replicate")


def _local_indices(dtensor: DTensor) -> Indices | None:
    """Per tensor axis, the increasing global indices this rank holds (int64 arrays),
    or None when the rank is not in the mesh. Checked against the local tensor's shape."""
    from torch.distributed.tensor import Shard
    from torch.distributed.tensor.placement_types import _StridedShard

    mesh = dtensor.device_mesh
    coordinate = mesh.get_coordinate()
    if coordinate is None:
        return None
    indices = [np.arange(n, dtype=np.int64) for n in dtensor.shape]
    placement: Any   # Shard and _StridedShard have .dim
    for mesh_dim, placement in enumerate(dtensor.placements):
        if placement.is_replicate():
            continue
        axis, ranks, rank = placement.dim, int(mesh.size(mesh_dim)), coordinate[mesh_dim]
        held = indices[axis]
        if isinstance(placement, _StridedShard):
            # right-to-left sharding written left to right: split_factor pieces first
            # (the shards a later mesh dimension makes), this rank's chunk of each
            pieces = [_chunk(Shard, _chunk(Shard, held, placement.split_factor, k), ranks, rank)
                      for k in range(placement.split_factor)]
            indices[axis] = np.concatenate(pieces)
        else:
            indices[axis] = _chunk(Shard, held, ranks, rank)
    local_shape = tuple(len(i) for i in indices)
    if local_shape != tuple(dtensor.to_local().shape):
        raise RuntimeError(
            f"the DTensor's local tensor has shape {tuple(dtensor.to_local().shape)}, but its placements "
            f"{dtensor.placements} on a mesh of shape {tuple(mesh.shape)} give this rank {local_shape}: a "
            "layout varinit does not know (a non-default shard order?); nothing was written")
    return indices


def _chunk(shard: Any, held: npt.NDArray[np.int64], count: int | torch.SymInt, index: int) -> npt.NDArray[np.int64]:
    """The index-th of `count` torch.chunk pieces of `held`, by torch's public rule
    (`shard` is torch's Shard class)."""
    size, offset = shard.local_shard_size_and_offset(len(held), count, index)
    return held[offset:offset + size]


def _runs(axis_indices: npt.NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """(local start, global start, length) of each run of consecutive global indices."""
    if len(axis_indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(axis_indices) != 1) + 1
    bounds = [0, *breaks.tolist(), len(axis_indices)]
    return [(lo, int(axis_indices[lo]), hi - lo) for lo, hi in itertools.pairwise(bounds)]


def _blocks(local: torch.Tensor, indices: Indices) -> Iterator[tuple[torch.Tensor, tuple[int, ...]]]:
    """(view of `local`, its start in the global tensor) for every block of the shard."""
    for runs in itertools.product(*(_runs(i) for i in indices)):
        view = local[tuple(slice(lo, lo + n) for lo, _, n in runs)]
        yield view, tuple(start for _, start, _ in runs)


# Set by init_module once it has checked that every rank holds the same generator: a
# whole model's fills then skip the per-fill check (one all-reduce per parameter).
_STREAMS_AGREED = contextvars.ContextVar("varinit_streams_agreed", default=False)


@contextlib.contextmanager
def streams_agreed() -> Iterator[None]:
    """Within the block, DTensor fills trust that every rank resolves the same stream."""
    token = _STREAMS_AGREED.set(True)
    try:
        yield
    finally:
        _STREAMS_AGREED.reset(token)


def _with_fixed_stream(fn: Callable[..., Any], dtensor: DTensor, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """args and kwargs with `generator` resolved once to a fixed Stream, confirmed to be
    the same on every rank of the mesh; unchanged for a function without a generator."""
    if "generator" not in inspect.signature(fn).parameters:
        return args, kwargs
    bound = inspect.signature(fn).bind(None, *args, **kwargs)
    key, stream = resolve(bound.arguments.get("generator"), True)
    words = [key & 0xFFFFFFFF, key >> 32, stream & 0xFFFFFFFF, stream >> 32]
    if not _STREAMS_AGREED.get() and not same_on_every_rank(dtensor.device_mesh,
                                                            torch.tensor(words, dtype=torch.int64)):
        raise ValueError(
            f"{fn.__name__}: generator={bound.arguments.get('generator')!r} gave the ranks of the DTensor's "
            "mesh different streams (their generators are in different states, e.g. torch seeded "
            "differently per rank), so their shards would come from different tensors; nothing was "
            "written. Seed every rank alike or pass generator=varinit.Generator(seed).stream(name).")
    bound.arguments["generator"] = Stream(key, stream)
    return bound.args[1:], bound.kwargs


def _fill_from_whole(fn: Callable[..., Any], dtensor: DTensor, local: torch.Tensor, indices: Indices,
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Build the whole tensor with `fn`, keep this rank's indices."""
    if local.numel() < dtensor.numel():
        _warn_whole_build(fn.__name__, dtensor, kwargs)
    whole = torch.empty(tuple(dtensor.shape), dtype=dtensor.dtype)
    fn(whole, *args, **kwargs)
    for axis, axis_indices in enumerate(indices):
        if len(axis_indices) != whole.shape[axis]:
            whole = whole.index_select(axis, torch.from_numpy(axis_indices))
    local.copy_(whole)


def _warn_whole_build(name: str, dtensor: DTensor, kwargs: dict[str, Any]) -> None:
    shape = tuple(dtensor.shape)
    cost = f"{_bytes(dtensor.numel() * dtensor.element_size())} of {dtensor.dtype}"
    if name == "orthogonal_":
        blocks = kwargs.get("blocks", 1)
        rows, cols = shape[0] // blocks, dtensor.numel() // shape[0]
        tall, wide = max(rows, cols), min(rows, cols)
        # Householder QR, then forming Q: about 2 m n^2 - 2 n^3 / 3 flops each (Golub & Van Loan 5.2.1)
        flops = blocks * 2 * (2 * tall * wide**2 - 2 * wide**3 / 3)
        cost += f", a {rows} x {cols} Gaussian and its QR per block ({blocks}), about {flops:.3g} flops"
    _, depth = user_frame()
    warnings.warn(
        f"{name} on a DTensor of shape {shape} sharded as {tuple(dtensor.placements)}: {name} has no "
        f"region form, so every rank builds the whole tensor ({cost}) and keeps its shard "
        f"({dtensor.to_local().numel()} of {dtensor.numel()} values). The values equal the one-process "
        "fill.", UserWarning, stacklevel=depth)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def write_rows(tensor: Any, rows: Any, value: float) -> None:
    """tensor[rows] = value along the first axis, for a plain tensor or a DTensor
    (each rank writes the rows of its shard that fall in `rows`, an int or a slice)."""
    if not is_dtensor(tensor):
        as_array(tensor)[rows] = value
        return
    indices = _local_indices(tensor)
    if indices is None:
        return
    selected = np.arange(tensor.shape[0], dtype=np.int64)[rows]
    mask = np.isin(indices[0], selected)
    with torch.no_grad():
        local = tensor.to_local()
        as_array(local)[mask] = value
        increment_version(local)
