"""Model scale: varinit's init_module on a 1.06-billion-parameter LLaMA-style
decoder in bfloat16, built on the meta device, sharded with FSDP2 over 2 and 4
gloo processes on 127.0.0.1 and materialized with to_empty (the torchtitan
sequence), against one process and against torch's own reset_parameters.

    PYTHONPATH=python python benchmarks/model_scale.py --profile 20   # the full run (3 to 5 min here)
    PYTHONPATH=python python benchmarks/model_scale.py --tiny         # a 2-block, d = 64 smoke run

Machine: the development box (x86_64, 2 cores shared with other jobs, 24 GiB,
no GPU, torch 2.13.0+cpu); the header of the results file records the load.

The model (CONFIG): d = 2048, 18 pre-norm blocks of RMSNorm, attention with
16 heads (separate bias-free wq/wk/wv/wo, rotary positions, causal
scaled_dot_product_attention), RMSNorm and a SwiGLU MLP of width 5632
(w1, w3: 2048 -> 5632, w2: 5632 -> 2048); a 32000-token embedding, a final
RMSNorm and an untied 32000-token head: 1,055,991,808 parameters, 1.97 GiB in
bfloat16. Every dimension is a multiple of 4, so FSDP2's Shard(0) splits every
parameter evenly over 2 and 4 ranks and each rank's shard is whole quarters of
its rows.

For 1 (unsharded, plain tensors), 2 and 4 processes, each process builds the
model on torch.device("meta"), applies fully_shard to every block and to the
root (not for 1 process), calls to_empty(device="cpu") and zero-fills its
memory once (so that no timed fill pays for the first touch of its pages).
Then, timed on every rank between two barriers (the best of --repeats rounds,
each round calling the three in turn; wall and CPU time of the process):

- "varinit structure": ``varinit.torch.init_module(model, generator=SEED)``;
- "varinit graph (meta inputs)": ``init_module(model, tokens, generator=SEED)``
  with token ids of shape (1, 128) on the meta device: the dataflow plan
  (a traced forward of the global model), then the fills. The trace runs on
  meta twins of the parameters (in the one process too) and copies the
  first block's record for the 17 others;
- "torch reset_parameters": ``torch.manual_seed(SEED)``, then every module's
  reset_parameters(): torch's default init, drawn by torch's random ops on the
  DTensors, as torchtitan's init_weights draws (reset_parameters for its
  norms, torch.nn.init for the rest).

After each, every rank hashes (SHA-256) each quarter of the rows of each
parameter it holds, and the one process hashes all quarters: a sharded fill is
the one-process fill exactly when every quarter's digest agrees. Four values
of one row of SHOWN (row 3d/4: on rank 1 of 2 and rank 3 of 4) are shown for
each case. Peak RSS per process is resource.getrusage's ru_maxrss at the end
(and after materializing). Processes use cores // processes threads each (at
least 1), for varinit (set_num_threads) and torch alike. Results go to stdout and to
benchmarks/results/model_scale.md; --profile N writes the top N functions of
each init on rank 0 (one more call, cProfile, cumulative) there too.
"""
import argparse
import cProfile
import dataclasses
import datetime
import hashlib
import io
import os
import platform
import pstats
import queue
import resource
import socket
import time
import traceback
import warnings

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import varinit

SEED = 1234
QUARTERS = 4                   # digests per parameter: Shard(0) over 2 or 4 ranks is whole quarters
SHOWN = "layers.0.attention.wq.weight"
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=600)
GROUP_TIMEOUT = 900.0


@dataclasses.dataclass(frozen=True)
class Config:
    dim: int = 2048
    layers: int = 18
    heads: int = 16
    hidden: int = 5632
    vocab: int = 32000
    seq: int = 128             # the example inputs' length (graph-aware mode)


CONFIG = Config()
TINY = Config(dim=64, layers=2, heads=4, hidden=176, vocab=320, seq=16)


# ---- the model -----------------------------------------------------------------------

def rotary(x, theta=10000.0):
    """Rotary position embedding (Su et al. 2021, "RoFormer"), rotate-half form, on
    x of shape (batch, seq, heads, head_dim); angles computed from the positions."""
    seq, half = x.shape[1], x.shape[-1] // 2
    freqs = theta ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.outer(torch.arange(seq, device=x.device, dtype=torch.float32), freqs)
    cos = torch.cat([angles.cos(), angles.cos()], -1)[None, :, None, :].to(x.dtype)
    sin = torch.cat([angles.sin(), angles.sin()], -1)[None, :, None, :].to(x.dtype)
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


class Attention(torch.nn.Module):
    def __init__(self, cfg, dtype):
        super().__init__()
        self.heads = cfg.heads
        self.wq, self.wk, self.wv, self.wo = (torch.nn.Linear(cfg.dim, cfg.dim, bias=False, dtype=dtype)
                                              for _ in range(4))

    def forward(self, x):
        batch, seq, dim = x.shape
        q, k, v = (w(x).view(batch, seq, self.heads, dim // self.heads) for w in (self.wq, self.wk, self.wv))
        q, k = rotary(q), rotary(k)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(batch, seq, dim))


class FeedForward(torch.nn.Module):
    """SwiGLU (Shazeer 2020): w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg, dtype):
        super().__init__()
        self.w1 = torch.nn.Linear(cfg.dim, cfg.hidden, bias=False, dtype=dtype)
        self.w2 = torch.nn.Linear(cfg.hidden, cfg.dim, bias=False, dtype=dtype)
        self.w3 = torch.nn.Linear(cfg.dim, cfg.hidden, bias=False, dtype=dtype)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(torch.nn.Module):
    def __init__(self, cfg, dtype):
        super().__init__()
        self.attention_norm = torch.nn.RMSNorm(cfg.dim, eps=1e-5, dtype=dtype)
        self.attention = Attention(cfg, dtype)
        self.ffn_norm = torch.nn.RMSNorm(cfg.dim, eps=1e-5, dtype=dtype)
        self.feed_forward = FeedForward(cfg, dtype)

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


class Decoder(torch.nn.Module):
    """A LLaMA-style decoder (Touvron et al. 2023), torchtitan's parameter names."""

    def __init__(self, cfg, dtype=torch.bfloat16):
        super().__init__()
        self.tok_embeddings = torch.nn.Embedding(cfg.vocab, cfg.dim, dtype=dtype)
        self.layers = torch.nn.ModuleList(Block(cfg, dtype) for _ in range(cfg.layers))
        self.norm = torch.nn.RMSNorm(cfg.dim, eps=1e-5, dtype=dtype)
        self.output = torch.nn.Linear(cfg.dim, cfg.vocab, bias=False, dtype=dtype)

    def forward(self, tokens):
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.output(self.norm(x))


def parameter_count(cfg):
    block = 4 * cfg.dim * cfg.dim + 3 * cfg.dim * cfg.hidden + 2 * cfg.dim
    return cfg.layers * block + 2 * cfg.vocab * cfg.dim + cfg.dim


# ---- one process of a group ----------------------------------------------------------

def sharded_decoder(cfg, world_size):
    """The torchtitan sequence up to the init: the decoder on the meta device, every
    block and the root fully_shard-ed over all ranks (none for one process),
    to_empty(device="cpu"), its memory touched once."""
    with torch.device("meta"):
        model = Decoder(cfg)
    if world_size > 1:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world_size,))
        for layer in model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            local(p).zero_()
    return model


def local(p):
    return p.to_local() if hasattr(p, "to_local") else p


def torch_reset(model):
    """torch's own init: every module's reset_parameters, after seeding torch alike on every rank."""
    torch.manual_seed(SEED)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def row_offset(p, rank, world_size):
    """The first global row of this rank's shard (FSDP2 shards dim 0 as torch.chunk)."""
    if not hasattr(p, "to_local"):
        return 0
    from torch.distributed.tensor import Shard

    if tuple(p.placements) != (Shard(0),):
        raise RuntimeError(f"expected FSDP2's (Shard(0),), got {p.placements}")
    _, offset = Shard.local_shard_size_and_offset(p.shape[0], world_size, rank)
    return offset


def quarter_digests(model, rank, world_size):
    """{(parameter, quarter): SHA-256 of that quarter of its rows} for the quarters this rank holds."""
    found = {}
    for name, p in model.named_parameters():
        rows = p.shape[0] // QUARTERS
        data = local(p).detach().contiguous()
        bits = data.view(torch.int16).numpy().reshape(data.shape[0], -1)
        first = row_offset(p, rank, world_size)
        for lo in range(0, data.shape[0], rows):
            found[name, (first + lo) // rows] = hashlib.sha256(bits[lo:lo + rows].data).hexdigest()
    return found


def shown_values(model, rank, world_size, row):
    """Four values of SHOWN at the global row `row`, if this rank holds it."""
    p = dict(model.named_parameters())[SHOWN]
    first = row_offset(p, rank, world_size)
    data = local(p).detach()
    if first <= row < first + data.shape[0]:
        return [float(v) for v in data[row - first, :4].float()]
    return None


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def profile_text(call, top):
    profiler = cProfile.Profile()
    profiler.runcall(call)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def rank_job(rank, world_size, cfg, repeats, profile_top):
    """One rank: materialize, time each init (best of `repeats` rounds), digest what it
    holds after each; returns plain data for the report."""
    threads = max(1, len(os.sched_getaffinity(0)) // world_size)
    torch.set_num_threads(threads)
    varinit.set_num_threads(threads)
    barrier = dist.barrier if world_size > 1 else (lambda: None)
    found = {"threads": threads}
    start = time.perf_counter()
    model = sharded_decoder(cfg, world_size)
    found["materialize s"] = time.perf_counter() - start
    found["rss after materialize MiB"] = peak_rss_mib()
    found["local parameters"] = sum(local(p).numel() for p in model.parameters())
    tokens = torch.zeros((1, cfg.seq), dtype=torch.long, device="meta")
    cases = {
        "varinit structure": lambda: varinit.torch.init_module(model, generator=SEED),
        "varinit graph (meta inputs)": lambda: varinit.torch.init_module(model, tokens, generator=SEED),
        "torch reset_parameters": lambda: torch_reset(model),
    }
    # rounds of every init in turn, so that a change in the machine's load falls on all of them
    times = {case: ([], [], set()) for case in cases}
    for round_ in range(repeats):
        for case, call in cases.items():
            walls, cpus, messages = times[case]
            barrier()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                wall, cpu = time.perf_counter(), time.process_time()
                call()
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            messages.update(str(w.message)[:160] for w in caught)
            barrier()
            if round_ == repeats - 1:
                found[case] = {"wall": min(walls), "cpu": min(cpus), "warnings": sorted(messages),
                               "digests": quarter_digests(model, rank, world_size),
                               "shown": shown_values(model, rank, world_size, 3 * cfg.dim // 4)}
    if profile_top:   # on every rank: varinit's DTensor fills are collective; rank 0's is kept
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            profiles = {}
            for case in CASES:
                barrier()
                profiles[case] = profile_text(cases[case], profile_top)
            if rank == 0:
                found["profiles"] = profiles
    barrier()
    found["peak RSS MiB"] = peak_rss_mib()
    return found


def rank_main(rank, world_size, port, results, args):
    try:
        if world_size > 1:
            names = {name for _, name in socket.if_nameindex()}
            loopback = next((n for n in ("lo", "lo0") if n in names), None)
            if loopback is not None:
                os.environ["GLOO_SOCKET_IFNAME"] = loopback
            store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=COLLECTIVE_TIMEOUT)
            dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size,
                                    timeout=COLLECTIVE_TIMEOUT)
        try:
            value = rank_job(rank, world_size, *args)
        finally:
            if world_size > 1:
                dist.destroy_process_group()
        results.put((rank, True, value))
    except BaseException:
        results.put((rank, False, traceback.format_exc()))


def run_group(world_size, *args):
    """[rank_job(rank, world_size, *args) for every rank], each in a fresh process (so that
    its peak RSS is its own); every process is joined, or killed, before this returns."""
    context = mp.get_context("spawn")
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=COLLECTIVE_TIMEOUT)
    results = context.Queue()
    processes = [context.Process(target=rank_main, args=(rank, world_size, store.port, results, args))
                 for rank in range(world_size)]
    found, failures = {}, {}
    deadline = time.monotonic() + GROUP_TIMEOUT
    try:
        for process in processes:
            process.start()
        while len(found) + len(failures) < world_size and time.monotonic() < deadline:
            try:
                rank, ok, value = results.get(timeout=1.0)
            except queue.Empty:
                dead = [r for r, p in enumerate(processes) if p.exitcode not in (None, 0)
                        and r not in found and r not in failures]
                for r in dead:
                    failures[r] = f"exited with code {processes[r].exitcode} before reporting"
                continue
            (found if ok else failures)[rank] = value
            if failures:
                deadline = min(deadline, time.monotonic() + 5.0)
        if failures or len(found) < world_size:
            raise RuntimeError(f"{world_size} processes: " + "\n".join(
                f"rank {r}: {failures.get(r, 'no report in time')}" for r in range(world_size) if r not in found))
        return [found[rank] for rank in range(world_size)]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()


# ---- the report ----------------------------------------------------------------------

CASES = ("varinit structure", "varinit graph (meta inputs)", "torch reset_parameters")


def seconds(values):
    return " / ".join(f"{v:.2f}" for v in values)


def comparison(groups, case):
    """(quarters equal to one process, quarters, random (2-D) parameters whose shards
    are equal on every rank, random parameters) per world size > 1."""
    reference = groups[1][0][case]["digests"]
    rows = {}
    for world_size, ranks in groups.items():
        if world_size == 1:
            continue
        merged = {}
        for r in ranks:
            merged.update(r[case]["digests"])
        equal = sum(merged[key] == reference[key] for key in reference)
        names = sorted({name for name, _ in reference if ".weight" in name and "norm" not in name})
        alike = sum(len({tuple(d for (n, _), d in sorted(r[case]["digests"].items()) if n == name)
                         for r in ranks}) == 1 for name in names)
        rows[world_size] = (equal, len(reference), alike, len(names))
    return rows


def report(groups, cfg, repeats, load):
    lines = [
        "# Model scale: a 1B LLaMA-style decoder, FSDP2 over gloo processes",
        "",
        (f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
         f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB, torch {torch.__version__}, "
         f"varinit {varinit.__version__} ({varinit.isa()}), load average before the run {load[0]:.2f} "
         f"(1 min) {load[1]:.2f} (5 min)"),
        "",
        (f"model: d = {cfg.dim}, {cfg.layers} blocks, {cfg.heads} heads, SwiGLU {cfg.hidden}, RMSNorm, "
         f"vocab {cfg.vocab}, untied head; {parameter_count(cfg):,} parameters, bfloat16 "
         f"({parameter_count(cfg) * 2 / 2**30:.2f} GiB); graph mode's example inputs: token ids (1, {cfg.seq}) "
         f"on meta; seed {SEED}; best of {repeats}"),
        "",
        ("Seconds per rank (rank 0 / rank 1 / ...), wall clock, between two barriers; "
         "CPU seconds of each process in brackets."),
        "",
        "| | " + " | ".join(f"{w} process{'es' if w > 1 else ''}" for w in groups) + " |",
        "|---|" + "---|" * len(groups),
        "| threads per process | " + " | ".join(str(ranks[0]["threads"]) for ranks in groups.values()) + " |",
        "| parameters per rank | " + " | ".join(
            f"{ranks[0]['local parameters']:,}" for ranks in groups.values()) + " |",
        "| meta → fully_shard → to_empty, s | " + " | ".join(
            seconds(r["materialize s"] for r in ranks) for ranks in groups.values()) + " |",
    ]
    for case in CASES:
        lines.append(f"| {case}, s | " + " | ".join(
            f"{seconds(r[case]['wall'] for r in ranks)} [{seconds(r[case]['cpu'] for r in ranks)}]"
            for ranks in groups.values()) + " |")
    for case in CASES[:2]:
        lines.append(f"| {case} / torch, slowest rank's wall [CPU] | " + " | ".join(
            f"{max(r[case]['wall'] for r in ranks) / max(r[CASES[2]]['wall'] for r in ranks):.2f}× "
            f"[{max(r[case]['cpu'] for r in ranks) / max(r[CASES[2]]['cpu'] for r in ranks):.2f}×]"
            for ranks in groups.values()) + " |")
    for label, key in (("peak RSS after to_empty", "rss after materialize MiB"),
                       ("peak RSS at the end", "peak RSS MiB")):
        lines.append(f"| {label}, MiB per process | " + " | ".join(
            " / ".join(f"{r[key]:.0f}" for r in ranks) for ranks in groups.values()) + " |")
    lines += ["", "## The same values whatever the sharding?", "",
              (f"Each parameter's rows in {QUARTERS} quarters, SHA-256 of each: how many of the sharded "
               "quarters equal the one-process quarter, and for how many of the random parameters (the "
               "embedding, the linear weights and the head; the norms' ones are alike anyway) every rank "
               "holds the same shard: a shard drawn without regard to its place in the whole."), "",
              "| init | " + " | ".join(f"{w} processes: quarters = 1 process | {w} processes: ranks hold equal shards"
                                     for w in groups if w > 1) + " |",
              "|---|" + "---|---|" * (len(groups) - 1)]
    for case in CASES:
        cells = []
        for equal, total, alike, names in comparison(groups, case).values():
            cells += [f"{equal} / {total}", f"{alike} / {names}"]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    row = 3 * cfg.dim // 4
    lines += ["", f"`{SHOWN}[{row}, :4]` (rank that holds it):", "",
              "| init | " + " | ".join(f"{w} process{'es' if w > 1 else ''}" for w in groups) + " |",
              "|---|" + "---|" * len(groups)]
    for case in CASES:
        cells = []
        for ranks in groups.values():
            rank, values = next((i, r[case]["shown"]) for i, r in enumerate(ranks) if r[case]["shown"] is not None)
            cells.append(f"rank {rank}: " + ", ".join(f"{v:+.5f}" for v in values))
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    messages = sorted({m for ranks in groups.values() for r in ranks for case in CASES for m in r[case]["warnings"]})
    if messages:
        lines += ["", "Warnings raised by the timed calls (first 160 characters):", ""]
        lines += [f"- {m}" for m in messages]
    for world_size, ranks in groups.items():
        for case, text in ranks[0].get("profiles", {}).items():
            lines += ["", f"### Profile: {case}, {world_size} process{'es' if world_size > 1 else ''}, rank 0",
                      "", "```", text.strip(), "```"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a 2-block, d = 64 model (a smoke run)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile one more call per init on rank 0, top N functions")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "model_scale.md"))
    args = parser.parse_args()
    if args.processes[0] != 1:
        parser.error("--processes must start with 1 (the reference of every comparison)")
    cfg = TINY if args.tiny else CONFIG
    if any(n % QUARTERS for n in (cfg.dim, cfg.hidden, cfg.vocab)):
        parser.error(f"every dimension must be a multiple of {QUARTERS}")
    load = os.getloadavg()
    groups = {}
    for world_size in args.processes:
        start = time.perf_counter()
        groups[world_size] = run_group(world_size, cfg, args.repeats, args.profile)
        print(f"{world_size} process(es): {time.perf_counter() - start:.1f} s", flush=True)
    text = report(groups, cfg, args.repeats, load)
    print(text)
    if not args.tiny:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
