"""Running a job on N local processes joined by torch.distributed (gloo on
127.0.0.1), and the jobs of the distributed tests.

`run_on_ranks(world_size, job, *args)` starts one process per rank from a
forkserver that has torch, DTensor, FSDP2 and varinit imported already (a
fresh interpreter would spend seconds importing them per rank), joins them
in a gloo process group through a TCPStore that the test process holds on a
port the OS picked, and returns each rank's result. The first rank that
raises fails the call with its traceback; a group that takes longer than its
timeout fails too; in every case each process is killed and joined before
run_on_ranks returns or raises.

A job is a module-level function `job(rank, world_size, *args)` that returns
plain data (lists, dicts, strings, NumPy arrays): it compares its own shards
with the one-process result the test passed in and reports what it found, so
the test can assert on every comparison.
"""
import datetime
import math
import os
import queue
import socket
import time
import traceback
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import varinit

# Modules imported once in the forkserver, so that each rank starts with them.
PRELOAD = ["torch", "torch._dynamo", "torch.distributed.tensor", "torch.distributed.fsdp",
           "torch.distributed.tensor.parallel", "numpy", "varinit", "varinit.torch",
           "varinit.torch.sharded", "distributed_workers"]
GROUP_TIMEOUT = 240.0                            # seconds for a whole group, start to finish
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=120)


def run_on_ranks(world_size, job, *args, timeout=GROUP_TIMEOUT):
    """[job(rank, world_size, *args) for each rank], each run in its own process."""
    if not dist.is_available() or not dist.is_gloo_available():
        raise RuntimeError("torch.distributed with the gloo backend is required by this test")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)   # effective when the forkserver starts (once)
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                          timeout=COLLECTIVE_TIMEOUT)
    results = context.Queue()
    processes = [context.Process(target=_rank_main, args=(job, rank, world_size, store.port, results, args),
                                 daemon=True)
                 for rank in range(world_size)]
    found, failures = {}, {}
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.start()
        while len(found) + len(failures) < world_size and time.monotonic() < deadline:
            try:
                rank, ok, value = results.get(timeout=0.2)
            except queue.Empty:
                dead = [(r, p.exitcode) for r, p in enumerate(processes)
                        if p.exitcode not in (None, 0) and r not in found and r not in failures]
                if dead:
                    failures[dead[0][0]] = f"died with exit code {dead[0][1]} before reporting"
                continue
            if ok:
                found[rank] = value
            elif not failures:
                failures[rank] = value
                # the others fail in turn (a peer gone) or wait in a collective for ever:
                # a moment to hear from them, then they are stopped below
                deadline = min(deadline, time.monotonic() + 2.0)
            else:
                failures[rank] = value
        if failures:
            raise AssertionError("\n".join(f"rank {r}: {failures[r]}" for r in sorted(failures)))
        if len(found) < world_size:
            raise AssertionError(f"the {world_size}-process group did not finish in {timeout:.0f} s "
                                 f"(ranks that reported: {sorted(found)})")
        return [found[rank] for rank in range(world_size)]
    finally:
        finished = len(found) == world_size   # else some rank may be stuck in a collective
        for process in processes:
            if process.is_alive():
                process.join(timeout=5 if finished else 0)
            if process.is_alive():
                process.kill()
            if process.pid is not None:
                process.join()
        results.close()
        results.join_thread()


def _loopback_interface():
    names = {name for _, name in socket.if_nameindex()}
    return next((name for name in ("lo", "lo0") if name in names), None)


def _rank_main(job, rank, world_size, port, results, args):
    try:
        interface = _loopback_interface()
        if interface is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = interface   # gloo talks over 127.0.0.1
        store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=COLLECTIVE_TIMEOUT)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size,
                                timeout=COLLECTIVE_TIMEOUT)
        try:
            value = job(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        results.put((rank, True, value))
    except BaseException:
        results.put((rank, False, traceback.format_exc()))


# ---- comparing bits --------------------------------------------------------------

def as_bits(tensor):
    """The tensor's bytes as a NumPy array (float dtypes seen as integers of their size)."""
    tensor = tensor.detach().contiguous().cpu()
    view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
    return tensor.view(view).numpy()


def from_bits(bits, dtype):
    return torch.from_numpy(np.ascontiguousarray(bits)).view(dtype)


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(as_bits(a), as_bits(b))


# ---- DTensor fills -----------------------------------------------------------------

SEED = 2718
MATRIX, CONV, BIAS, TINY = (13, 11), (6, 4, 3, 3), (7,), (3, 2)

# (case, function path under varinit, global shape, dtype, args, kwargs); random
# functions get generator=varinit.Generator(SEED).stream(case).
FILL_CASES = [
    ("uniform", "uniform_", MATRIX, "float64", (-0.5, 0.25), {}),
    ("uniform_bias", "uniform_", BIAS, "float32", (-0.1, 0.1), {}),
    ("normal", "normal_", MATRIX, "float32", (0.1, 0.5), {}),
    ("normal_bf16", "normal_", MATRIX, "bfloat16", (0.0, 0.02), {}),
    ("normal_tiny", "normal_", TINY, "float32", (), {}),
    ("trunc_normal", "trunc_normal_", MATRIX, "float32", (), {"std": 0.5, "a": -0.6, "b": 0.9}),
    ("xavier_uniform", "xavier_uniform_", MATRIX, "float32", (1.3,), {}),
    ("xavier_normal", "xavier_normal_", CONV, "float16", (), {}),
    ("kaiming_uniform", "kaiming_uniform_", MATRIX, "float32", (), {"a": math.sqrt(5)}),
    ("kaiming_normal", "kaiming_normal_", CONV, "float32", (), {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_phase_balanced", "kaiming_normal_", (4, 6, 4, 4), "float32", (),
     {"layer": "conv_transpose", "stride": 2, "phase_balanced": True}),
    ("variance_scaling_trunc", "variance_scaling_", MATRIX, "float32", (2.0, "fan_in", "truncated_normal"), {}),
    ("variance_scaling_uniform", "variance_scaling_", CONV, "bfloat16", (1.0, "fan_avg", "uniform"), {}),
    ("variance_scaling_normal", "variance_scaling_", MATRIX, "float64", (0.5, "fan_out", "normal"), {}),
    ("lecun_normal", "lecun_normal_", MATRIX, "float32", (), {}),
    ("lecun_uniform", "lecun_uniform_", CONV, "float32", (), {}),
    ("sparse", "sparse_", MATRIX, "float32", (0.3,), {"std": 0.2}),
    ("orthogonal", "orthogonal_", MATRIX, "float32", (), {"gain": 2.0}),
    ("orthogonal_blocks", "orthogonal_", (12, 5), "float64", (), {"blocks": 3}),
    ("identity_noise", "recipes.identity_", MATRIX, "float32", (), {"noise_std": 0.01}),
    # an int seed: delta_orthogonal_ cannot take a named stream (Generator.set_state refuses its id)
    ("delta_orthogonal", "recipes.delta_orthogonal_", CONV, "float32", (), {"generator": 99}),
    ("constant", "constant_", MATRIX, "float32", (0.25,), {}),
    ("ones", "ones_", BIAS, "float32", (), {}),
    ("zeros", "zeros_", CONV, "bfloat16", (), {}),
    ("eye", "eye_", MATRIX, "float32", (), {}),
    ("dirac", "dirac_", CONV, "float32", (), {"groups": 2}),
]
NON_RANDOM = {"constant_", "ones_", "zeros_", "eye_", "dirac_"}
# functions without a region form: a sharded DTensor is built whole on every rank, with a warning
WHOLE_BUILDS = {"orthogonal_", "eye_", "dirac_", "recipes.identity_", "recipes.delta_orthogonal_"}

# (config, mesh, placements): ("S", d) Shard(d), ("SS", d, k) _StridedShard(d, split_factor=k), ("R",)
FILL_CONFIGS = {
    4: [("world S0", "world", (("S", 0),)), ("world S1", "world", (("S", 1),)),
        ("world R", "world", (("R",),)), ("world S3", "world", (("S", 3),)),
        ("tp S0", "tp", (("S", 0),)), ("tp S1", "tp", (("S", 1),)),
        ("2d S0 S1", "2d", (("S", 0), ("S", 1))), ("2d S0 S0", "2d", (("S", 0), ("S", 0))),
        ("2d SS0 S0", "2d", (("SS", 0, 2), ("S", 0))), ("2d R S1", "2d", (("R",), ("S", 1))),
        ("2d S1 R", "2d", (("S", 1), ("R",))), ("2d SS1 S1", "2d", (("SS", 1, 2), ("S", 1))),
        ("2d R R", "2d", (("R",), ("R",)))],
}


def fill_plan(world_size):
    """Every (config, case) the fill job checks: each config with each case it can shard."""
    return [(config, case) for config, _, placements in FILL_CONFIGS[world_size]
            for case, _, shape, *_ in FILL_CASES
            if all(p[0] == "R" or p[1] < len(shape) for p in placements)]


def function(path):
    target = varinit
    for part in path.split("."):
        target = getattr(target, part)
    return target


def case_call(case, path, args, kwargs):
    """(args, kwargs) of a case's call, with its named stream for a random function."""
    if path in NON_RANDOM or "generator" in kwargs:
        return args, dict(kwargs)
    return args, dict(kwargs, generator=varinit.Generator(SEED).stream(case))


def fill_references():
    """{case: bits of the one-process fill of the whole tensor}: run in the test process."""
    refs = {}
    for case, path, shape, dtype, args, kwargs in FILL_CASES:
        whole = torch.full(shape, math.nan, dtype=getattr(torch, dtype))
        a, k = case_call(case, path, args, kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            function(path)(whole, *a, **k)
        refs[case] = as_bits(whole)
    return refs


def _meshes(world_size):
    from torch.distributed.device_mesh import init_device_mesh

    meshes = {"world": init_device_mesh("cpu", (world_size,))}
    if world_size == 4:
        meshes["2d"] = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
        meshes["tp"] = meshes["2d"]["tp"]
    return meshes


def _placements(spec):
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.placement_types import _StridedShard

    made = {"S": lambda d: Shard(d), "SS": lambda d, k: _StridedShard(d, split_factor=k), "R": Replicate}
    return [made[p[0]](*p[1:]) for p in spec]


def _nan_dtensor(shape, dtype, mesh, placements):
    from torch.distributed.tensor import distribute_tensor

    # src_data_rank=None: each rank keeps its own split of the tensor, no communication
    return distribute_tensor(torch.full(shape, math.nan, dtype=dtype), mesh, placements, src_data_rank=None)


def local_shard_ok(dtensor, reference):
    """Whether this rank's shard is torch's own split of the one-process tensor for this
    rank. Every rank checks its own, so together they check the whole tensor.

    full_tensor() is not called: torch 2.13's functional all_gather over gloo now and then
    corrupts a rank's heap (munmap_chunk(): invalid pointer, a segfault) inside wait_tensor.
    Reproduced with fills by torch alone, no varinit call: 1 group of 4 ranks in 20 running
    about 3,000 full_tensor() calls each."""
    from torch.distributed.tensor import distribute_tensor

    expected = distribute_tensor(reference, dtensor.device_mesh, dtensor.placements, src_data_rank=None)
    return same_bits(dtensor.to_local(), expected.to_local())


def fill_job(rank, world_size, references, extra_references):
    """Every (config, case) of fill_plan: [(config, case, local ok, warned, part held)];
    then the generator and bad-input checks."""
    torch.set_num_threads(1)
    meshes = _meshes(world_size)
    configs = {config: (meshes[mesh], _placements(spec)) for config, mesh, spec in FILL_CONFIGS[world_size]}
    cases = {case: (path, shape, getattr(torch, dtype), args, kwargs)
             for case, path, shape, dtype, args, kwargs in FILL_CASES}
    rows = []
    for config, case in fill_plan(world_size):
        mesh, placements = configs[config]
        path, shape, dtype, args, kwargs = cases[case]
        dtensor = _nan_dtensor(shape, dtype, mesh, placements)
        a, k = case_call(case, path, args, kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            returned = function(path)(dtensor, *a, **k)
        assert returned is dtensor
        warned = any("no region form" in str(w.message) for w in caught)
        local_ok = local_shard_ok(dtensor, from_bits(references[case], dtype))
        # a rank builds the whole tensor (and warns) when it holds part of it, not all, not nothing
        builds_whole = 0 < dtensor.to_local().numel() < dtensor.numel()
        rows.append((config, case, local_ok, warned, builds_whole))
    return {"rows": rows, "generators": _generator_checks(rank, meshes["world"], extra_references),
            "bad_input": _bad_input_checks(rank, meshes["world"])}


def generator_references():
    """One-process fills drawn from stateful generators (the test process's side of
    _generator_checks): torch's default generator, then a varinit.Generator's sequence."""
    torch.manual_seed(5)
    from_torch = varinit.normal_(torch.empty(MATRIX), 0.0, 0.3)
    g = varinit.Generator(11)
    first = varinit.kaiming_normal_(torch.empty(CONV), generator=g)
    second = varinit.sparse_(torch.empty(MATRIX), 0.5, generator=g)
    return {"torch_default": as_bits(from_torch), "generator_first": as_bits(first),
            "generator_second": as_bits(second)}


def _generator_checks(rank, mesh, refs):
    from torch.distributed.tensor import Shard

    found = {}
    torch.manual_seed(5)
    dtensor = _nan_dtensor(MATRIX, torch.float32, mesh, [Shard(0)])
    varinit.normal_(dtensor, 0.0, 0.3)
    found["torch_default"] = local_shard_ok(dtensor, from_bits(refs["torch_default"], torch.float32))
    g = varinit.Generator(11)
    first = _nan_dtensor(CONV, torch.float32, mesh, [Shard(1)])
    varinit.kaiming_normal_(first, generator=g)
    second = _nan_dtensor(MATRIX, torch.float32, mesh, [Shard(1)])
    varinit.sparse_(second, 0.5, generator=g)
    found["generator_first"] = local_shard_ok(first, from_bits(refs["generator_first"], torch.float32))
    found["generator_second"] = local_shard_ok(second, from_bits(refs["generator_second"], torch.float32))
    # ranks whose torch generators are in different states: refused on every rank, nothing written
    torch.manual_seed(100 + rank)
    dtensor = _nan_dtensor(MATRIX, torch.float32, mesh, [Shard(0)])
    try:
        varinit.normal_(dtensor)
        found["mismatch"] = "not raised"
    except ValueError as error:
        found["mismatch"] = ("different streams" in str(error), bool(torch.isnan(dtensor.to_local()).all()))
    return found


def _bad_input_checks(rank, mesh):
    """{check: (raised the expected exception with the expected words, shard unchanged, stream kept)}."""
    from torch.distributed.tensor import DTensor, Partial, Shard, distribute_tensor

    found = {}

    def attempt(name, call, dtensor, exception, words):
        g = varinit.Generator(3)
        before = dtensor.to_local().clone()
        try:
            call(dtensor, g)
            found[name] = ("not raised", False, False)
            return
        except exception as error:
            message = str(error)
        found[name] = (all(w in message for w in words), same_bits(dtensor.to_local(), before),
                       g.get_state() == (3, 0))

    nan = _nan_dtensor(MATRIX, torch.float32, mesh, [Shard(0)])
    attempt("negative std", lambda t, g: varinit.normal_(t, 0.0, -1.0, generator=g), nan, ValueError, ["std"])
    attempt("bad layout keyword", lambda t, g: varinit.kaiming_normal_(t, generator=g, layer="lstm"), nan,
            ValueError, ["layer"])
    attempt("global_shape given", lambda t, g: varinit.normal_(t, generator=g, global_shape=MATRIX, start=(0, 0)),
            nan, ValueError, ["global_shape", "DTensor"])
    partial = DTensor.from_local(torch.zeros(MATRIX), mesh, [Partial()])
    attempt("partial", lambda t, g: varinit.normal_(t, generator=g), partial, ValueError, ["Partial"])
    integer = distribute_tensor(torch.zeros(MATRIX, dtype=torch.int32), mesh, [Shard(0)], src_data_rank=None)
    attempt("integer dtype", lambda t, g: varinit.uniform_(t, generator=g), integer, TypeError, ["floating dtype"])
    attempt("sparse 3-D", lambda t, g: varinit.sparse_(t, 0.5, generator=g),
            _nan_dtensor(CONV, torch.float32, mesh, [Shard(0)]), ValueError, ["2 dimensions"])
    # a meta DTensor (a model built on torch.device("meta") and sharded): checked, not written
    with torch.device("meta"):
        meta = distribute_tensor(torch.empty(MATRIX), mesh, [Shard(0)], src_data_rank=None)
    found["meta no-op"] = (varinit.kaiming_uniform_(meta, a=math.sqrt(5)) is meta and meta.is_meta, True, True)
    try:
        varinit.trunc_normal_(meta, std=-2.0)
        found["meta bad argument"] = ("not raised", True, True)
    except ValueError as error:
        found["meta bad argument"] = ("std" in str(error), True, True)
    return found


# ---- whole models --------------------------------------------------------------------

MODEL_SEED = 1234
VOCAB, WIDTH, HIDDEN, BLOCKS = 37, 10, 26, 2   # 37 and 26 split unevenly over 2 and 4 ranks


class Block(torch.nn.Module):
    """A pre-norm residual MLP block, as in a transformer."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(WIDTH)
        self.up = torch.nn.Linear(WIDTH, HIDDEN)
        self.act = torch.nn.GELU()
        self.down = torch.nn.Linear(HIDDEN, WIDTH)

    def forward(self, x):
        return x + self.down(self.act(self.up(self.norm(x))))


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, WIDTH, padding_idx=0)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(BLOCKS))
        self.norm = torch.nn.LayerNorm(WIDTH)
        self.head = torch.nn.Linear(WIDTH, VOCAB, bias=False)

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def example_tokens():
    return torch.randint(1, VOCAB, (4, 6), generator=torch.Generator().manual_seed(0))


MODES = ("structure", "graph meta", "graph real")


def _init(model, mode, tokens):
    if mode == "structure":
        return varinit.torch.init_module(model, generator=MODEL_SEED)
    inputs = tokens.to("meta") if mode == "graph meta" else tokens
    return varinit.torch.init_module(model, inputs, generator=MODEL_SEED)


def _records(report):
    return [(r.name, r.rule, r.fan_in, r.fan_out, repr(r.std)) for r in report]


def model_references():
    """{mode: (bits per parameter name, records)} of the one-process init_module, and
    "graph real, analytic" (the dataflow plan without the measured pass): run in the test process."""
    from varinit.layers.schemes import as_generator
    from varinit.torch.dataflow import plan
    from varinit.torch.initialize import fill

    tokens = example_tokens()
    refs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mode in MODES:
            model = TinyLM()
            report = _init(model, mode, tokens)
            refs[mode] = ({n: as_bits(p) for n, p in model.named_parameters()}, _records(report))
        model = TinyLM()
        with torch.no_grad():
            records = fill(model, plan(model, tokens), as_generator(MODEL_SEED, True))
        order = list(dict(model.named_parameters()))
        records = sorted(records, key=lambda r: order.index(r.name))   # the report's order: the model's
        refs["graph real, analytic"] = ({n: as_bits(p) for n, p in model.named_parameters()}, _records(records))
    return refs


def _tensor_parallel_plan():
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan = {}
    for i in range(BLOCKS):
        plan[f"blocks.{i}.up"] = ColwiseParallel()    # weight and bias split by rows (Shard(0))
        plan[f"blocks.{i}.down"] = RowwiseParallel()  # weight split by columns (Shard(1)), bias replicated
    return plan


def sharded_lm(layout, meshes, materialize=True):
    """TinyLM built on the meta device, sharded as `layout` says, materialized with
    to_empty: the torchtitan sequence, before the init."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import parallelize_module

    with torch.device("meta"):
        model = TinyLM()
    if layout == "fsdp":
        dp = meshes["world"]
    elif layout == "fsdp+tp":
        parallelize_module(model, meshes["2d"]["tp"], _tensor_parallel_plan())
        dp = meshes["2d"]["dp"]
    else:  # "tp"
        parallelize_module(model, meshes["world"], _tensor_parallel_plan())
        dp = None
    if dp is not None:
        for block in model.blocks:
            fully_shard(block, mesh=dp)
        fully_shard(model, mesh=dp)
    if materialize:
        model.to_empty(device="cpu")
    return model


def _compare(model, bits):
    """{parameter name: (local ok, placements)} against the one-process bits."""
    from torch.distributed.tensor import DTensor

    found = {}
    for name, p in model.named_parameters():
        reference = from_bits(bits[name], p.dtype)
        if isinstance(p, DTensor):
            found[name] = (local_shard_ok(p, reference), str(tuple(p.placements)))
        else:
            found[name] = (same_bits(p, reference), "plain")
    return found


def model_job(rank, world_size, layouts, references, tokens_bits):
    """For each layout and mode: the comparison of every parameter, the records and notes;
    then the checks that ranks which disagree are refused."""
    torch.set_num_threads(1)
    meshes = _meshes(world_size)
    tokens = torch.from_numpy(tokens_bits)
    found = {}
    for layout in layouts:
        for mode in MODES:
            model = sharded_lm(layout, meshes)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                report = _init(model, mode, tokens)
            expected = "graph real, analytic" if mode == "graph real" and "tp" in layout else mode
            bits, records = references[expected]
            found[layout, mode] = {
                "parameters": _compare(model, bits),
                "records equal": _records(report) == records,
                "skipped note": any("measured pass was skipped" in n for n in getattr(report, "notes", ())),
                "warnings": sorted({str(w.message)[:80] for w in caught}),
            }
        for mode in ("structure", "graph meta"):
            # still on the meta device: the plan (every record) without values
            model = sharded_lm(layout, meshes, materialize=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = _init(model, mode, tokens)
            found[layout, mode, "meta"] = (_records(report) == references[mode][1],
                                           all(p.is_meta for p in model.parameters()))
    if "fsdp" in layouts:
        found["disagreements"] = _disagreement_checks(rank, meshes, tokens)
    return found


def _disagreement_checks(rank, meshes, tokens):
    """Ranks that would build shards of different models are refused on every rank."""
    checks = {}
    model = sharded_lm("fsdp", meshes)
    torch.manual_seed(100 + rank)   # generator=None: the key comes from torch's generator, per rank
    try:
        varinit.torch.init_module(model)
        checks["unseeded"] = "not raised"
    except ValueError as error:
        checks["unseeded"] = "different streams" in str(error)
    model = sharded_lm("fsdp", meshes)
    other = (tokens + 5 * rank) % (VOCAB - 1) + 1   # different example inputs on each rank
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            varinit.torch.init_module(model, other, generator=MODEL_SEED)
        checks["different inputs"] = "not raised"
    except ValueError as error:
        checks["different inputs"] = "differ between the ranks" in str(error)
    return checks
