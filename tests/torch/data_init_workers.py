"""The jobs of the distributed lsuv / weight_norm_init tests, and their one-process
references (computed in the test process).

Each model is built on the meta device, sharded with fully_shard (each block,
the output layer on its own, then the root) or tensor parallelism, materialized
with to_empty and given deterministic starting values (every parameter from its
own named stream, which a DTensor fills shard by shard); then the data-dependent
init runs on every rank. A job compares its shards with the one-process bits
and reports plain data, so the test can assert on every comparison. The
process groups come from distributed_workers.run_on_ranks.
"""
import warnings

import numpy as np
import torch
from torch.nn.utils.parametrizations import weight_norm

import varinit
import varinit.torch
from distributed_workers import as_bits, from_bits, local_shard_ok, same_bits

START_SEED = 7

# run: (model, lsuv's options, stateful, inputs); an int "generator" g stands for
# varinit.Generator(g) where stateful is set, else for the int seed itself
LSUV_RUNS = {
    "default": ("lsuv", {"generator": 11}, False, ["image"]),
    "mean correction, two batches, by name": (
        "lsuv", {"generator": 12, "mean_correction": True, "by_name": True, "tol": 0.02}, True,
        ["image", "image 2"]),
    "no orthogonal start": ("lsuv", {"orthogonal_init": False, "mean_correction": True}, False, ["image"]),
    "attention and LSTM": ("sequence", {"generator": 13}, False, ["sequence"]),
}


class LsuvNet(torch.nn.Module):
    """Conv, Linear and a GELU; widths 6, 13 and 5 split unevenly over 2 and 4 ranks
    (a rank of 4 holds no row of the head)."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([
            torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.Flatten()),
            torch.nn.Sequential(torch.nn.Linear(96, 13), torch.nn.Tanh()),
            torch.nn.Sequential(torch.nn.Linear(13, 13), torch.nn.GELU()),
        ])
        self.head = torch.nn.Linear(13, 5)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class WeightNormNet(torch.nn.Module):
    """Weight-normalized layers (torch's parametrization) and a plain one between them."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([
            torch.nn.Sequential(weight_norm(torch.nn.Linear(12, 13)), torch.nn.ReLU()),
            torch.nn.Sequential(torch.nn.Linear(13, 11), torch.nn.Tanh()),
        ])
        self.head = weight_norm(torch.nn.Linear(11, 5))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class SequenceNet(torch.nn.Module):
    """Weights LSUV reaches without their module's call: MultiheadAttention's packed
    in_proj_weight (F.multi_head_attention_forward), an LSTM's input weights per layer."""

    def __init__(self):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(8, 2)
        self.lstm = torch.nn.LSTM(8, 6, num_layers=2)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.lstm(self.attention(x, x, x)[0])[0])


MODELS = {"lsuv": LsuvNet, "weight norm": WeightNormNet, "sequence": SequenceNet}


def batches():
    """{name: tensor}: the inputs every rank passes (and the test process)."""
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(16, 3, 6, 6, generator=g) + 0.5,
            "image 2": torch.randn(16, 3, 6, 6, generator=g) * 2,
            "rows": torch.randn(40, 12, generator=g) * 3 + 1,
            "sequence": torch.randn(5, 4, 8, generator=g)}


def start(model):
    """Every parameter drawn from its own named stream: the same values whether whole or sharded."""
    for name, p in model.named_parameters():
        varinit.normal_(p, 0.0, 0.3, generator=varinit.Generator(START_SEED).stream(name))
    return model


def lsuv_options(run):
    _, options, stateful, _ = LSUV_RUNS[run]
    options = dict(options)
    if stateful:
        options["generator"] = varinit.Generator(options["generator"])
    return options


def lsuv_data(run, inputs):
    """The run's batch, or its list of batches."""
    names = LSUV_RUNS[run][3]
    return [inputs[n] for n in names] if len(names) > 1 else inputs[names[0]]


def _quiet(call, *args, **kwargs):
    """orthogonal_ on a shard warns that each rank builds the whole matrix: expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def _lsuv_records(report):
    return [(r.name, r.iterations, repr(r.variance), r.converged) for r in report]


def _weight_norm_records(report):
    return [(r.name, as_bits(torch.from_numpy(np.asarray(r.mean))).tolist(),
             as_bits(torch.from_numpy(np.asarray(r.std))).tolist()) for r in report]


def _output(model, x):
    with torch.no_grad():
        return as_bits(model(x))


def references():
    """{run: (bits per parameter, records, bits of the model's output after)} of the
    one-process calls, with one thread as in the ranks."""
    inputs = batches()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    refs = {}
    try:
        for run, (kind, *_, names) in LSUV_RUNS.items():
            model = start(MODELS[kind]())
            report = _quiet(varinit.torch.lsuv, model, lsuv_data(run, inputs), **lsuv_options(run))
            refs[run] = ({n: as_bits(p) for n, p in model.named_parameters()}, _lsuv_records(report),
                         _output(model, inputs[names[0]]))
        model = start(WeightNormNet())
        report = varinit.torch.weight_norm_init(model, inputs["rows"])
        refs["weight norm"] = ({n: as_bits(p) for n, p in model.named_parameters()},
                               _weight_norm_records(report), _output(model, inputs["rows"]))
    finally:
        torch.set_num_threads(threads)
    return refs


# ---- sharded models ---------------------------------------------------------------

def _meshes(world_size):
    from torch.distributed.device_mesh import init_device_mesh

    meshes = {"world": init_device_mesh("cpu", (world_size,))}
    if world_size == 4:
        meshes["2d"] = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    return meshes


def _tensor_parallel_plan(kind):
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    if kind == "lsuv":   # whole activations between the layers: the uneven splits stay inside them
        return {"blocks.1.0": ColwiseParallel(output_layouts=Replicate()),
                "blocks.2.0": RowwiseParallel(input_layouts=Replicate())}
    return {"blocks.1.0": ColwiseParallel(output_layouts=Replicate())}


def sharded(kind, layout, meshes):
    """MODELS[kind] built on meta, sharded as `layout` says ("fsdp", "tp", "fsdp+tp",
    "fsdp bf16": computing in bfloat16 by fully_shard's MixedPrecisionPolicy),
    materialized and started."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.tensor.parallel import parallelize_module

    with torch.device("meta"):
        model = MODELS[kind]()
    dp = meshes["world"]
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if layout == "fsdp bf16" else None)
    if layout == "tp":
        parallelize_module(model, meshes["world"], _tensor_parallel_plan(kind))
        dp = None
    elif layout == "fsdp+tp":
        parallelize_module(model, meshes["2d"]["tp"], _tensor_parallel_plan(kind))
        dp = meshes["2d"]["dp"]
    if dp is not None:
        units = list(model.blocks) if kind != "sequence" else [model.attention, model.lstm]
        for unit in units + [model.head]:   # the head: a measured layer that is its own FSDP unit
            fully_shard(unit, mesh=dp, mp_policy=policy)
        fully_shard(model, mesh=dp, mp_policy=policy)
    model.to_empty(device="cpu")
    return start(model)


def _compare(model, bits):
    """{parameter name: (local shard ok, placements)} against the one-process bits
    (local_shard_ok: no full_tensor())."""
    from torch.distributed.tensor import DTensor

    found = {}
    for name, p in model.named_parameters():
        reference = from_bits(bits[name], p.dtype)
        if isinstance(p, DTensor):
            found[name] = (local_shard_ok(p, reference), str(tuple(p.placements)))
        else:
            found[name] = (same_bits(p, reference), "plain")
    return found


def _local_bits(model):
    from torch.distributed.tensor import DTensor

    return {n: as_bits(p.to_local() if isinstance(p, DTensor) else p) for n, p in model.named_parameters()}


def _unchanged(model, before):
    return all(np.array_equal(before[n], bits) for n, bits in _local_bits(model).items())


def data_init_job(rank, world_size, references, input_bits, tensor_parallel):
    """Every run on FSDP2 models, compared with the one-process references; then the
    refusals (tensor parallel layouts in `tensor_parallel`, disagreeing ranks)."""
    torch.set_num_threads(1)
    meshes = _meshes(world_size)
    inputs = {name: torch.from_numpy(bits) for name, bits in input_bits.items()}
    found = {}
    for run, (kind, *_, names) in LSUV_RUNS.items():
        model = sharded(kind, "fsdp", meshes)
        report = _quiet(varinit.torch.lsuv, model, lsuv_data(run, inputs), **lsuv_options(run))
        bits, records, output = references[run]
        found[run] = {"parameters": _compare(model, bits), "records equal": _lsuv_records(report) == records,
                      "output equal": np.array_equal(_output(model, inputs[names[0]]), output)}
    model = sharded("weight norm", "fsdp", meshes)
    report = varinit.torch.weight_norm_init(model, inputs["rows"])
    bits, records, output = references["weight norm"]
    found["weight norm"] = {"parameters": _compare(model, bits),
                            "records equal": _weight_norm_records(report) == records,
                            "output equal": np.array_equal(_output(model, inputs["rows"]), output)}
    for layout in tensor_parallel:
        found["refused", layout] = _tensor_parallel_refusals(layout, meshes, inputs)
    if world_size == 2:
        found["disagreements"] = _disagreements(rank, meshes, inputs)
        found["mixed precision"] = _mixed_precision(meshes, inputs)
    return found


def _mixed_precision(meshes, inputs):
    """{function: (warned that it measures in bfloat16, the records)} on a model whose
    layers compute in bfloat16 (each rank measures on its own: the test compares the
    records across ranks)."""
    found = {}
    for kind, call, records in (
            ("lsuv", lambda m: varinit.torch.lsuv(m, inputs["image"], generator=11), _lsuv_records),
            ("weight norm", lambda m: varinit.torch.weight_norm_init(m, inputs["rows"]), _weight_norm_records)):
        model = sharded(kind, "fsdp bf16", meshes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = call(model)
        warned = any("computes with its weight in torch.bfloat16 while the parameter is torch.float32"
                     in str(w.message) for w in caught)
        found[kind] = (warned, records(report))
    return found


def _refusal(model, call, words):
    """(raised a ValueError with all `words`, every local shard unchanged) for call(model)."""
    before = _local_bits(model)
    try:
        _quiet(call, model)
        return ("not raised", _unchanged(model, before))
    except ValueError as error:
        message = str(error)
        return (all(w in message for w in words) or message, _unchanged(model, before))


def _tensor_parallel_refusals(layout, meshes, inputs):
    """Layers that compute on shards: refused by name, nothing written."""
    return {
        "lsuv": _refusal(sharded("lsuv", layout, meshes),
                         lambda m: varinit.torch.lsuv(m, inputs["image"], generator=11),
                         ["lsuv: layer blocks.1.0 computes on shards", "fully_shard", "Nothing was written"]),
        "weight norm": _refusal(sharded("weight norm", layout, meshes),
                                lambda m: varinit.torch.weight_norm_init(m, inputs["rows"]),
                                ["weight_norm_init: layer blocks.1.0 computes on shards", "Nothing was written"]),
    }


def _disagreements(rank, meshes, inputs):
    """Ranks with different batches or generators: refused on every rank, nothing written
    or drawn (the generator passed and torch's generator keep their state)."""
    checks = {}
    other = inputs["image"] + rank   # a different batch on each rank
    g = varinit.Generator(5)
    torch.manual_seed(21)
    torch_state = torch.get_rng_state()
    checks["lsuv batch"] = _refusal(sharded("lsuv", "fsdp", meshes),
                                    lambda m: varinit.torch.lsuv(m, other, generator=g),
                                    ["lsuv: data differs between the ranks", "same batch"])
    checks["lsuv batch keeps the generators"] = (g.get_state() == (5, 0),
                                                 torch.equal(torch.get_rng_state(), torch_state))
    # one rank's NaN batch: the others would wait in a collective if it raised alone
    nan = inputs["image"].clone()
    if rank == 1:
        nan[0, 0, 0, 0] = float("nan")
    checks["lsuv one NaN batch"] = _refusal(sharded("lsuv", "fsdp", meshes),
                                            lambda m: varinit.torch.lsuv(m, nan, generator=3),
                                            ["data differs between the ranks"])
    torch.manual_seed(100 + rank)   # generator=None: a key from torch's generator, different per rank
    torch_state = torch.get_rng_state()
    checks["lsuv generator"] = _refusal(sharded("lsuv", "fsdp", meshes),
                                        lambda m: varinit.torch.lsuv(m, inputs["image"]),
                                        ["lsuv: the ranks' generators differ", "Nothing was written"])
    checks["lsuv generator keeps torch's state"] = torch.equal(torch.get_rng_state(), torch_state)
    rows = inputs["rows"] * (1 + rank)
    checks["weight norm batch"] = _refusal(sharded("weight norm", "fsdp", meshes),
                                           lambda m: varinit.torch.weight_norm_init(m, rows),
                                           ["weight_norm_init: x differs between the ranks"])
    return checks
