"""init_module on a model whose parameters are DTensors (FSDP2's fully_shard,
tensor parallelism's parallelize_module, or both on a 2-D mesh): what the
dataflow mode needs so that every rank plans and fills what one process would.

- The trace (varinit.torch.graph) runs the model on its global twin: every
  parameter and buffer a plain meta tensor of its global shape, and
  the forward hooks torch.distributed put on the modules (FSDP2's all-gather
  and reshard, tensor parallelism's redistribution of inputs and outputs) set
  aside, so the graph is the unsharded model's and no collective runs.
- The measured pass (varinit.torch.refine) runs the real model, collectively.
  It measures what one process measures only when every module's forward
  sees whole activations: true under FSDP2, which gathers each parameter
  whole before its module runs, and false under tensor parallelism, where a
  column-parallel layer's output is split over the ranks (each would measure
  its own part) and a row-parallel one's is an all-reduced sum (other
  rounding). So the pass runs for FSDP2 models and is skipped, with a note,
  when a module is tensor parallel.
- Every rank must reach the same plan: the solved stds and the measured
  corrections are compared across the ranks of each mesh (different example
  inputs per rank would otherwise give shards of different models).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import torch

from .._arrays import is_dtensor
from .across_ranks import same_on_every_rank
from ..generator import Generator

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor
from .sharded import streams_agreed


@contextlib.contextmanager
def global_view(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Inside the block every parameter and buffer of a `model` that holds DTensors is a
    plain meta tensor of its global shape (tied ones stay tied; the plain ones too, since
    a trace cannot mix devices) and the forward hooks defined in torch.distributed are
    set aside; on exit everything is back. Any other model is left as it is."""
    tensors: list[tuple[dict[str, Any], str, torch.Tensor]] = [
        (table, name, tensor) for module in model.modules()
        for table in _tensor_tables(module) for name, tensor in table.items()
               if tensor is not None and (is_dtensor(tensor) or not tensor.is_meta)]
    swapped = tensors if any(is_dtensor(t) for _, _, t in tensors) else []
    twins: dict[int, torch.Tensor] = {}
    hook_tables: list[tuple[dict[Any, Any], dict[Any, Any]]] = []
    for _, _, tensor in swapped:
        if id(tensor) not in twins:
            twin = torch.empty(tuple(tensor.shape), dtype=tensor.dtype, device="meta")
            if isinstance(tensor, torch.nn.Parameter):
                twin = torch.nn.Parameter(twin, requires_grad=tensor.requires_grad)
            twins[id(tensor)] = twin
    for module in model.modules():
        for hooks in _hook_tables(module):
            if any(_defined_in(hook).startswith("torch.distributed.") for hook in hooks.values()):
                hook_tables.append((hooks, dict(hooks)))
    for table, name, tensor in swapped:
        table[name] = twins[id(tensor)]
    for hooks, saved in hook_tables:
        for key, hook in saved.items():
            if _defined_in(hook).startswith("torch.distributed."):
                del hooks[key]
    try:
        yield model
    finally:
        for table, name, tensor in swapped:
            table[name] = tensor
        for hooks, saved in hook_tables:
            hooks.clear()
            hooks.update(saved)   # in their order


def _tensor_tables(module: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """A module's own parameters and buffers, by name (None for an unset one)."""
    return module._parameters, module._buffers


def _hook_tables(module: torch.nn.Module) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """A module's own forward pre-hooks and forward hooks, by handle id."""
    return module._forward_pre_hooks, module._forward_hooks


def _defined_in(hook: object) -> str:
    """The module that defines a hook (through partials and bound methods)."""
    while isinstance(hook, functools.partial):
        hook = hook.func
    hook = getattr(hook, "__func__", hook)
    return getattr(hook, "__module__", None) or ""


def _tensor_parallel_modules(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules()
            if any(_defined_in(hook).startswith("torch.distributed.tensor")
                   for hooks in _hook_tables(module) for hook in hooks.values())]


def measured_pass_obstacle(model: torch.nn.Module) -> str | None:
    """None when the measured pass measures on every rank what one process measures
    (no DTensor parameter, or only FSDP2's); else the note saying why it is skipped."""
    dtensors = [(name, p) for name, p in model.named_parameters() if is_dtensor(p)]
    if not dtensors:
        return None
    parallel = _tensor_parallel_modules(model)
    if parallel:
        return (f"the measured pass was skipped: {parallel[0] or 'the model'} is tensor parallel, so its "
                "forward sees its activations split over the ranks and each rank would measure another "
                "part; the solved stds are kept, uncorrected")
    managed = {id(p) for module in _fsdp_modules(model).values() for p in module.parameters()}
    unmanaged = [name for name, p in dtensors if id(p) not in managed]
    if unmanaged:
        return (f"the measured pass was skipped: {unmanaged[0]} is a DTensor that fully_shard does not "
                "manage, so its module computes on shards; the solved stds are kept, uncorrected")
    return None


def after_measured_pass(model: torch.nn.Module) -> None:
    """Put FSDP2's sharded parameters back after the measured pass. The pass stops the
    forward with an exception once its last layer is measured, which leaves FSDP2
    mid-forward with the gathered parameters registered (and a root module keeps them
    after a whole forward too, for the backward); reset_iter_state, FSDP2's own recovery
    from an aborted forward, reshards every parameter group below each root."""
    fsdp = _fsdp_modules(model)
    for name, module in fsdp.items():
        if not any(_inside(name, other) for other in fsdp):
            module.reset_iter_state()


def _inside(name: str, other: str) -> bool:
    return name != other and (other == "" or name.startswith(other + "."))


def _fsdp_modules(model: torch.nn.Module) -> dict[str, Any]:
    """{name: module} of the modules fully_shard made FSDPModules (none unless
    torch.distributed.fsdp is loaded)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    if fsdp is None:
        return {}
    return {name: m for name, m in model.named_modules() if isinstance(m, fsdp.FSDPModule)}


def agree_across_ranks(model: torch.nn.Module, what: str, numbers: Mapping[str, float]) -> None:
    """ValueError unless {name: float} `numbers` is the same on every rank of every mesh
    of the model's DTensor parameters (collective; nothing to do without DTensors)."""
    meshes: dict[int, Any] = {}
    for p in model.parameters():
        if is_dtensor(p):
            mesh = cast("DTensor", p).device_mesh
            meshes.setdefault(id(mesh), mesh)
    if not meshes:
        return
    names = sorted(numbers)
    digest = hashlib.sha256("\0".join(names).encode("utf-8")).digest()
    keys = torch.tensor([len(names)] + [int.from_bytes(digest[i:i + 4], "little") for i in (0, 4)],
                        dtype=torch.int64)
    values = torch.tensor([numbers[n] for n in names], dtype=torch.float64)
    for mesh in meshes.values():
        if not (same_on_every_rank(mesh, keys) and same_on_every_rank(mesh, values)):
            raise ValueError(
                f"init_module: {what} differ between the ranks of the mesh {tuple(mesh.mesh.shape)}: the "
                "example inputs (or the model) are not the same on every rank; give every rank the same "
                "example_inputs")


@contextlib.contextmanager
def generator_agreed(model: torch.nn.Module, generator: Generator) -> Iterator[None]:
    """For a model with DTensor parameters: check once that every rank holds the same
    generator state (ValueError on every rank if not), then let the fills skip their
    per-fill check; for any other model, nothing."""
    if not any(is_dtensor(p) for p in model.parameters()):
        yield
        return
    seed, next_stream = generator.get_state()
    words = {f"w{i}": float((value >> (32 * j)) & 0xFFFFFFFF)
             for i, (value, j) in enumerate((v, j) for v in (seed, next_stream) for j in (0, 1))}
    try:
        agree_across_ranks(model, "the generators' states", words)
    except ValueError:
        raise ValueError(
            "init_module: the ranks' generators give different streams (their states differ, e.g. torch "
            "seeded differently per rank with generator=None), so their shards would come from different "
            "tensors; nothing was written. Seed every rank alike or pass generator=<int seed>.") from None
    with streams_agreed():
        yield
