"""The meta-device recipe: each simulated rank materializes and fills only its shard,
and the shards put together equal the unsharded init, bit for bit."""
import math

import numpy as np
import pytest

import varinit

torch = pytest.importorskip("torch")
nn = torch.nn

SEED = 1234
WORLD_SIZE = 3  # does not divide 64 or 200: uneven shards, offsets off any vector width


def _build():
    return nn.Sequential(nn.Linear(64, 200), nn.GELU(), nn.Linear(200, 64), nn.LayerNorm(64))


def _init_param(tensor, name, generator, **region):
    """The model's init rule: kaiming-uniform weights as torch's Linear, zero biases, unit norm weights."""
    if name.startswith("3."):  # LayerNorm
        return varinit.ones_(tensor) if name.endswith("weight") else varinit.zeros_(tensor)
    if name.endswith("bias"):
        return varinit.zeros_(tensor)
    return varinit.kaiming_uniform_(tensor, a=math.sqrt(5), generator=generator.stream(name), **region)


def _shard_dim(name, param):
    """Megatron-style plan: first Linear column-parallel (rows of W split), second row-parallel
    (columns of W split); biases follow their rows; the rest is replicated."""
    if name.startswith("0."):
        return 0
    if name == "2.weight":
        return 1
    return None


def _local_shard(meta_param, name, rank, generator):
    global_shape = tuple(meta_param.shape)
    dim = _shard_dim(name, meta_param)
    if dim is None:
        local = torch.empty(global_shape)
        return _init_param(local, name, generator)
    # torch.chunk sizes: ceil(n / world) per rank, the last ones smaller
    step = -(-global_shape[dim] // WORLD_SIZE)
    lo = min(rank * step, global_shape[dim])
    hi = min(lo + step, global_shape[dim])
    local_shape = list(global_shape)
    local_shape[dim] = hi - lo
    start = [0] * len(global_shape)
    start[dim] = lo
    local = torch.empty(local_shape)
    return _init_param(local, name, generator, global_shape=global_shape, start=tuple(start))


def test_shards_equal_unsharded_init():
    generator = varinit.Generator(SEED)
    with torch.device("meta"):
        meta_model = _build()
    shards = {name: [_local_shard(p, name, rank, generator) for rank in range(WORLD_SIZE)]
              for name, p in meta_model.named_parameters()}
    assert all(p.is_meta for p in meta_model.parameters())

    full = _build()
    with torch.no_grad():
        # reversed creation order on purpose: name-keyed streams do not care
        for name, p in reversed(list(full.named_parameters())):
            _init_param(p, name, generator)
    for name, p in full.named_parameters():
        dim = _shard_dim(name, p)
        if dim is None:
            for local in shards[name]:
                assert torch.equal(local, p.detach())
            continue
        together = torch.cat(shards[name], dim=dim)
        assert together.shape == p.shape
        np.testing.assert_array_equal(together.numpy().view(np.uint32), p.detach().numpy().view(np.uint32))
    # a sanity check that the weights are really random and scaled by the global fan_in
    w = full[0].weight.detach().numpy()
    assert np.abs(w).max() <= 1 / math.sqrt(64) and w.std() > 0.5 / math.sqrt(3 * 64)


def test_shard_materialized_from_meta_with_to_empty():
    """The other habit: model.to_empty(device="cpu") then fill each parameter's local view."""
    generator = varinit.Generator(SEED)
    with torch.device("meta"):
        model = nn.Linear(64, 200)
    model.to_empty(device="cpu")
    rank, rows = 1, -(-200 // WORLD_SIZE)
    local = model.weight.detach()[rank * rows:(rank + 1) * rows]  # a view: filled in place
    varinit.kaiming_uniform_(local, a=math.sqrt(5), generator=generator.stream("0.weight"),
                             global_shape=(200, 64), start=(rank * rows, 0))
    whole = varinit.kaiming_uniform_(torch.empty(200, 64), a=math.sqrt(5), generator=generator.stream("0.weight"))
    assert torch.equal(model.weight.detach()[rank * rows:(rank + 1) * rows], whole[rank * rows:(rank + 1) * rows])
