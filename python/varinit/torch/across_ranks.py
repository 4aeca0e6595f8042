"""One question asked of the ranks of a DeviceMesh: do they all hold the same numbers?

Shards fit together only when every rank drew from the same stream and
solved the same plan; a rank that did not would silently hold a shard of
another tensor. The check is collective: every rank of the mesh calls it.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh


def same_on_every_rank(mesh: DeviceMesh, values: torch.Tensor) -> bool:
    """True when the 1-D tensor `values` is the same on every rank of `mesh`: the
    maximum of (values, -values) over the mesh, one all-reduce per mesh dimension of
    size > 1 (each rank is linked to all others through them), gives back -minimum."""
    both = torch.cat([values, -values]).to(mesh.device_type)
    for mesh_dim in range(mesh.ndim):
        if mesh.size(mesh_dim) > 1:
            dist.all_reduce(both, op=dist.ReduceOp.MAX, group=mesh.get_group(mesh_dim))
    both = both.cpu()
    n = len(values)
    return bool(torch.equal(both[:n], -both[n:]))
