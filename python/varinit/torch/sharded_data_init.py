"""lsuv and weight_norm_init on a model whose parameters are DTensors: what they
need so that every rank ends with exactly the shards of the one-process call.

- Measured whole, written in shards. fully_shard (FSDP2) gathers a module's
  parameters whole before its forward and shards them again after: on the same
  batch every rank computes every layer's whole output, bit for bit the
  one-process output (the gather copies bits, and the layer's arithmetic is the
  one process's). The statistics are measured there, alike on every rank, so
  every rank takes the same decisions; only the writes are per rank, each
  rank changing its own shard of the parameter as the model registers it.
- Refused where a layer computes on shards. Under tensor parallelism
  (parallelize_module, alone or below fully_shard on a 2-D mesh) a layer's
  weight reaches its function as a DTensor: a column-parallel layer's output
  is split over the ranks, a row-parallel one's is a sum across them taken in
  another order than one process's, so the statistic measured (and every
  layer after it) would not be the one-process one. Such a layer is named in
  a ValueError on every rank, and nothing is written.
- One batch, one generator. Every rank must pass the same batch and, for
  lsuv's orthogonal start, hold the same generator: a digest of each is
  compared across the ranks of every mesh of the model (one small all-reduce
  per mesh dimension), and a mismatch raises the same ValueError on every
  rank before anything is written or drawn.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from .._arrays import as_array, is_dtensor, mark_written
from ..generator import Generator, user_frame
from .across_ranks import same_on_every_rank
from .sharded_model import after_measured_pass

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.tensor import DTensor


def has_dtensors(model: torch.nn.Module) -> bool:
    """Whether any parameter of `model` is a DTensor (FSDP2, tensor parallel)."""
    return any(is_dtensor(p) for p in model.parameters())


def _meshes(model: torch.nn.Module) -> list[DeviceMesh]:
    """The distinct meshes of the model's DTensor parameters, in the model's order
    (the same on every rank)."""
    meshes: dict[int, DeviceMesh] = {}
    for p in model.parameters():
        if is_dtensor(p):
            mesh = cast("DTensor", p).device_mesh
            meshes.setdefault(id(mesh), mesh)
    return list(meshes.values())


def _same_on_every_rank(model: torch.nn.Module, words: list[int]) -> bool:
    """Collective: True when the 32-bit `words` are the same on every rank of every mesh."""
    values = torch.tensor(words, dtype=torch.int64)
    return all(same_on_every_rank(mesh, values) for mesh in _meshes(model))


def _digest(obj: Any, sha: Any) -> None:
    """Feed a batch into `sha`: tensors and arrays by dtype, shape and bytes; lists,
    tuples and dicts item by item; anything else by its repr."""
    if isinstance(obj, torch.Tensor):
        sha.update(f"tensor {obj.dtype} {tuple(obj.shape)}".encode())
        if not obj.is_meta:
            flat = obj.detach().cpu().contiguous().reshape(-1)
            sha.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        sha.update(f"array {obj.dtype} {obj.shape}".encode())
        sha.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, (list, tuple)):
        sha.update(f"{type(obj).__name__} {len(obj)}".encode())
        for item in obj:
            _digest(item, sha)
    elif isinstance(obj, dict):
        sha.update(f"dict {len(obj)}".encode())
        for key, item in obj.items():
            sha.update(repr(key).encode())
            _digest(item, sha)
    else:
        sha.update(repr(obj).encode())


def check_same_batches(function: str, model: torch.nn.Module, batches: Sequence[Any], name: str) -> None:
    """Collective: ValueError on every rank unless every rank of every mesh of the
    model passed the same batches (compared by a 64-bit digest of their bits)."""
    sha = hashlib.sha256()
    _digest(list(batches), sha)
    digest = int.from_bytes(sha.digest()[:8], "little")
    if not _same_on_every_rank(model, [digest & 0xFFFFFFFF, digest >> 32]):
        raise ValueError(
            f"{function}: {name} differs between the ranks; every rank must pass the same batch, since "
            "each rank measures every layer's whole output on its own batch and those statistics set the "
            "values of every shard (different batches would give shards of different models). Nothing "
            "was written.")


def check_same_generator(function: str, model: torch.nn.Module, generator: Generator) -> None:
    """Collective: ValueError on every rank unless `generator` is in the same state
    on every rank of every mesh of the model."""
    seed, next_stream = generator.get_state()
    words = [(value >> shift) & 0xFFFFFFFF for value in (seed, next_stream) for shift in (0, 32)]
    if not _same_on_every_rank(model, words):
        raise ValueError(
            f"{function}: the ranks' generators differ (e.g. generator=None with torch seeded differently "
            "per rank), so their orthogonal starts would be shards of different matrices. Nothing was "
            "written. Seed every rank alike or pass generator=<int seed>.")


def refuse_sharded_compute(function: str, layer: str, tensor: Any) -> None:
    """ValueError when `tensor`, a weight as the forward pass computes with it, is a
    DTensor: the layer computes on shards (tensor parallelism)."""
    if not is_dtensor(tensor):
        return
    dtensor = cast("DTensor", tensor)
    raise ValueError(
        f"{function}: layer {layer} computes on shards of its weight (a DTensor placed "
        f"{tuple(dtensor.placements)} on a mesh of shape {tuple(dtensor.device_mesh.mesh.shape)}, as "
        "tensor parallelism leaves it): its output is split over the ranks or summed across them in "
        "another order than one process's, so the statistics measured would not be the one-process "
        f"ones. {function} supports DTensor models sharded by fully_shard (FSDP2) only; run it before "
        "parallelize_module. Nothing was written.")


def warn_other_precision(function: str, layers: Sequence[tuple[str, torch.dtype, torch.dtype]]) -> None:
    """Warn when layers compute with their weights in another dtype than their
    parameters' [(layer, dtype computed with, parameter dtype)], as fully_shard's
    MixedPrecisionPolicy makes them: the statistics are measured at that precision."""
    if not layers:
        return
    layer, computed, stored = layers[0]
    more = f" (and {len(layers) - 1} more layers)" if len(layers) > 1 else ""
    _, depth = user_frame()
    warnings.warn(
        f"{function}: layer {layer}{more} computes with its weight in {computed} while the parameter is "
        f"{stored} (e.g. fully_shard's MixedPrecisionPolicy): the statistics are measured at that "
        "precision, so the values are not those of the one-process call on the model as it is stored "
        "(every rank still ends with shards of one same result).", UserWarning, stacklevel=depth)


def local_part(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor whose memory holds this rank's values: a DTensor's local shard,
    any other tensor itself."""
    return cast("DTensor", tensor).to_local() if is_dtensor(tensor) else tensor


def write_whole(tensor: torch.Tensor, whole: torch.Tensor) -> None:
    """Write into this rank's shard of the DTensor `tensor` its part of `whole`, a
    plain tensor of its global shape and dtype (each rank splits it as the
    placements say, with torch's own rule; no communication)."""
    from torch.distributed.tensor import distribute_tensor

    dtensor = cast("DTensor", tensor)
    part = distribute_tensor(whole.detach(), dtensor.device_mesh, dtensor.placements, src_data_rank=None)
    with torch.no_grad():
        dtensor.to_local().copy_(part.to_local())


class WholeCopy:
    """A DTensor parameter's whole value on every rank, to change in place through
    `values` (a NumPy view) with the one-process arithmetic; `write` puts this
    rank's part of it into the parameter's shard."""

    def __init__(self, dtensor: torch.Tensor) -> None:
        self.dtensor = dtensor
        self.whole = cast("DTensor", dtensor).full_tensor()   # collective: every rank in the same order
        self.values = as_array(self.whole)

    def write(self) -> None:
        write_whole(self.dtensor, self.whole)


def end_forward(model: torch.nn.Module) -> None:
    """After a forward pass, finished or stopped by an exception: fully_shard's
    parameters sharded again (FSDP2's recovery, reset_iter_state on each root), so
    that the next pass gathers what was written since."""
    after_measured_pass(model)


def mark_dtensors_written(tensors: Sequence[torch.Tensor | None]) -> None:
    """Bump the version counters of the DTensors among `tensors` (their local shards
    are bumped by the writes themselves)."""
    for tensor in tensors:
        if is_dtensor(tensor):
            mark_written(tensor)
