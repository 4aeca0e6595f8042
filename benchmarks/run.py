"""varinit against NumPy, torch.nn.init and the write-bandwidth ceiling, in one run.

    PYTHONPATH=python python benchmarks/run.py            # full run (about 3 minutes)
    PYTHONPATH=python python benchmarks/run.py --quick    # smoke run (about 15 s)

Every figure is the median of several timed calls after a warm-up call
(calls shorter than ~20 ms are looped and divided; a call over 2 s is timed
once); the 10x10 per-call cost is
the minimum over interleaved repeats, which is what a quiet machine shows.
All arrays are float32. One buffer serves every library (the torch tensor is
torch.from_numpy of it), so page faults are paid once, before timing.

- varinit: varinit.<fn> on the ndarray, varinit.set_num_threads(T).
- NumPy: numpy.random.Generator(PCG64).standard_normal(dtype=float32, out=)
  for normal_ (kaiming_normal_: the same, then scaled in place) and
  .random(dtype=float32, out=) for uniform_; it has no truncated normal and
  always runs on one thread.
- torch: torch.nn.init.<fn> on the tensor, torch.set_num_threads(T).
- fill: ndarray.fill(0.5), one thread: the cost of only writing the memory.

orthogonal_ runs at 256^2, 1024^2 and 2048^2 (a QR of the whole matrix:
larger sizes take seconds); NumPy's BLAS is held to T threads through
threadpoolctl when it is installed, otherwise its threads and torch's spin
against each other on a small machine. kaiming_normal_ fills 2-D arrays: 100x100,
1000x1000, 4096x4096 (1.68e7 elements, the size the speed targets are set at) and
10000x10000. The whole-model row initializes GPT-2 small's 124,439,808
parameters the way torch's modules do by default (nn.Linear: kaiming_uniform_
with a = sqrt(5) and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases; nn.Embedding:
N(0, 1); LayerNorm: ones and zeros) and with the same distributions from
varinit. Results go to stdout and to benchmarks/results/latest.md.
"""
import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit

import numpy as np
import torch

import varinit

try:  # limits NumPy's BLAS (varinit.orthogonal_'s QR) to the thread count under test
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

SIZES = (10_000, 1_000_000, 16_000_000, 100_000_000)
QUICK_SIZES = (10_000, 1_000_000)
KAIMING_SHAPES = {10_000: (100, 100), 1_000_000: (1000, 1000), 16_000_000: (4096, 4096),
                  100_000_000: (10_000, 10_000)}
ORTHOGONAL_SIDES = (256, 1024, 2048)
QUICK_ORTHOGONAL_SIDES = (256,)
TARGET_SECONDS = 0.02  # loop short calls up to this per sample
SLOW_SECONDS = 2.0


# ---- timing -----------------------------------------------------------------
def median_seconds(fn, repeats):
    """Median seconds per call of fn, after a warm-up call.

    A call slower than SLOW_SECONDS is timed once, warm-up included (its
    start-up costs are lost in it): torch's trunc_normal_ of 1e8 elements
    takes over ten seconds.
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > SLOW_SECONDS:
        return first
    loops = max(1, int(TARGET_SECONDS / max(first, 1e-9)))  # calls per sample
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


def repeats_for(n, quick):
    if quick:
        return 3
    return 3 if n >= 50_000_000 else 5


def set_threads(threads):
    varinit.set_num_threads(threads)
    torch.set_num_threads(threads)
    if threadpool_limits is not None:
        threadpool_limits(limits=threads, user_api="blas")


# ---- the competitors ----------------------------------------------------------
KAIMING_GAIN = math.sqrt(2.0 / (1 + 0.01**2))  # kaiming_normal_'s default: leaky_relu, slope 0.01


def fill_cases(buf, n):
    """{fn name: {library: callable}} for n elements of buf."""
    flat = buf[:n]
    flat_t = torch.from_numpy(flat)
    rows, cols = KAIMING_SHAPES[n]
    mat = buf[: rows * cols].reshape(rows, cols)
    mat_t = torch.from_numpy(mat)
    rng = np.random.Generator(np.random.PCG64(0))
    kaiming_scale = np.float32(KAIMING_GAIN / math.sqrt(cols))

    def numpy_kaiming():
        rng.standard_normal(dtype=np.float32, out=mat)
        np.multiply(mat, kaiming_scale, out=mat)

    return {
        "normal_": {
            "varinit": lambda: varinit.normal_(flat, 0.0, 0.02),
            "numpy": lambda: rng.standard_normal(dtype=np.float32, out=flat),
            "torch": lambda: torch.nn.init.normal_(flat_t, 0.0, 0.02),
        },
        "uniform_": {
            "varinit": lambda: varinit.uniform_(flat, -0.1, 0.1),
            "numpy": lambda: rng.random(dtype=np.float32, out=flat),
            "torch": lambda: torch.nn.init.uniform_(flat_t, -0.1, 0.1),
        },
        "trunc_normal_": {
            "varinit": lambda: varinit.trunc_normal_(flat, 0.0, 0.02, -0.04, 0.04),
            "torch": lambda: torch.nn.init.trunc_normal_(flat_t, 0.0, 0.02, -0.04, 0.04),
        },
        "kaiming_normal_": {
            "varinit": lambda: varinit.kaiming_normal_(mat),
            "numpy": numpy_kaiming,
            "torch": lambda: torch.nn.init.kaiming_normal_(mat_t),
        },
    }


def gpt2_small_shapes(blocks=12, vocab=50257, context=1024, width=768):
    """(name, shape, kind) of GPT-2 small's parameters, nn.Linear layout (out, in)."""
    params = [("wte", (vocab, width), "embedding"), ("wpe", (context, width), "embedding")]
    linears = (("attn.c_attn", 3 * width, width), ("attn.c_proj", width, width),
               ("mlp.c_fc", 4 * width, width), ("mlp.c_proj", width, 4 * width))
    for b in range(blocks):
        params += [(f"h{b}.ln_1.weight", (width,), "ones"), (f"h{b}.ln_1.bias", (width,), "zeros")]
        for name, out, inp in linears[:2]:
            params += [(f"h{b}.{name}.weight", (out, inp), "linear"), (f"h{b}.{name}.bias", (out,), f"bias:{inp}")]
        params += [(f"h{b}.ln_2.weight", (width,), "ones"), (f"h{b}.ln_2.bias", (width,), "zeros")]
        for name, out, inp in linears[2:]:
            params += [(f"h{b}.{name}.weight", (out, inp), "linear"), (f"h{b}.{name}.bias", (out,), f"bias:{inp}")]
    params += [("ln_f.weight", (width,), "ones"), ("ln_f.bias", (width,), "zeros")]
    return params


def init_model(lib, params):
    """torch's default init of every parameter, by torch.nn.init or by varinit."""
    sqrt5 = math.sqrt(5.0)
    for kind, tensor in params:
        if kind == "linear":
            lib.kaiming_uniform_(tensor, a=sqrt5)
        elif kind == "embedding":
            lib.normal_(tensor)
        elif kind == "ones":
            lib.ones_(tensor)
        elif kind == "zeros":
            lib.zeros_(tensor)
        else:  # bias:<fan_in>
            bound = 1.0 / math.sqrt(int(kind.split(":")[1]))
            lib.uniform_(tensor, -bound, bound)


# ---- sections -------------------------------------------------------------------
def bench_fills(sizes, thread_counts, quick):
    rows = []
    buf = np.empty(max(max(sizes), max(r * c for r, c in (KAIMING_SHAPES[n] for n in sizes))), np.float32)
    buf.fill(0.0)  # fault every page in before timing
    for n in sizes:
        cases = fill_cases(buf, n)
        repeats = repeats_for(n, quick)
        ceiling = median_seconds(lambda: buf[:n].fill(0.5), repeats)
        for threads in thread_counts:
            set_threads(threads)
            for fn_name, libs in cases.items():
                elements = math.prod(KAIMING_SHAPES[n]) if fn_name == "kaiming_normal_" else n
                times = {lib: median_seconds(call, repeats) for lib, call in libs.items()}
                rows.append({"fn": fn_name, "n": elements, "threads": threads, "fill": ceiling, **times})
                print(format_fill_row(rows[-1]), flush=True)
    return rows


def bench_orthogonal(sides, thread_counts, quick):
    rows = []
    for side in sides:
        arr = np.empty((side, side), np.float32)
        ten = torch.empty(side, side)
        repeats = 3 if quick or side >= 2048 else 5
        for threads in thread_counts:
            set_threads(threads)
            row = {"fn": "orthogonal_", "n": side * side, "threads": threads,
                   "varinit": median_seconds(lambda: varinit.orthogonal_(arr), repeats),
                   "torch": median_seconds(lambda: torch.nn.init.orthogonal_(ten), repeats)}
            rows.append(row)
            print(format_fill_row(row), flush=True)
    return rows


def bench_model(thread_counts, quick):
    shapes = gpt2_small_shapes(blocks=1, vocab=5000) if quick else gpt2_small_shapes()
    params = [(kind, torch.nn.Parameter(torch.empty(shape))) for _, shape, kind in shapes]
    total = sum(p.numel() for _, p in params)
    rows = []
    for threads in thread_counts:
        set_threads(threads)
        t_torch = median_seconds(lambda: init_model(torch.nn.init, params), 3)
        t_varinit = median_seconds(lambda: init_model(varinit, params), 3)
        rows.append({"threads": threads, "params": total, "tensors": len(params),
                     "torch": t_torch, "varinit": t_varinit, "quick": quick})
        print(f"GPT-2 small{' (quick: 1 block, vocab 5000)' if quick else ''} ({total:,} parameters, {len(params)} tensors), {threads} thread(s): "
              f"torch {t_torch * 1e3:.0f} ms, varinit {t_varinit * 1e3:.0f} ms, "
              f"{t_torch / t_varinit:.2f}x", flush=True)
    return rows


def bench_per_call(rounds):
    """Microseconds per call on 10x10 float32, min over interleaved rounds."""
    set_threads(1)
    arr = np.empty((10, 10), np.float32)
    ten = torch.empty(10, 10)
    par = torch.nn.Parameter(torch.empty(10, 10))
    calls = {
        "torch.nn.init.kaiming_normal_(tensor)": lambda: torch.nn.init.kaiming_normal_(ten),
        "varinit.kaiming_normal_(ndarray)": lambda: varinit.kaiming_normal_(arr),
        "varinit.kaiming_normal_(tensor)": lambda: varinit.kaiming_normal_(ten),
        "torch.nn.init.kaiming_normal_(Parameter)": lambda: torch.nn.init.kaiming_normal_(par),
        "varinit.kaiming_normal_(Parameter)": lambda: varinit.kaiming_normal_(par),
    }
    best = dict.fromkeys(calls, math.inf)
    for _ in range(rounds):
        for name, call in calls.items():
            best[name] = min(best[name], timeit.timeit(call, number=2000) / 2000 * 1e6)
    for name, us in best.items():
        print(f"{name:44s} {us:6.2f} us", flush=True)
    return best


# ---- report -----------------------------------------------------------------------
def fmt_ms(seconds):
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def ratio(num, den):
    return "—" if num is None or den is None else f"{num / den:.2f}x"


def format_fill_row(r):
    rate = r["n"] / r["varinit"] / 1e9
    return (f"{r['fn']:16s} n={r['n']:>11,} T={r['threads']}  varinit {fmt_ms(r['varinit'])} ms "
            f"({rate:.2f} G/s)  numpy {fmt_ms(r.get('numpy'))}  torch {fmt_ms(r.get('torch'))}  "
            f"fill {fmt_ms(r.get('fill'))}  | vs numpy {ratio(r.get('numpy'), r['varinit'])}, "
            f"vs torch {ratio(r.get('torch'), r['varinit'])}")


def trunc_over_normal(threads, n, rounds):
    """varinit's trunc_normal_ time over its normal_ time (medians), the two
    timed in alternation so that a drifting machine speed cancels out of a
    ratio of two varinit calls."""
    set_threads(threads)
    a = np.empty(n, np.float32)
    times = {varinit.normal_: [], varinit.trunc_normal_: []}
    for fn in times:
        fn(a, generator=1)  # warm-up
    for _ in range(rounds):
        for fn, samples in times.items():
            start = time.perf_counter()
            fn(a, generator=1)
            samples.append(time.perf_counter() - start)
    return statistics.median(times[varinit.trunc_normal_]) / statistics.median(times[varinit.normal_])


def targets(fill_rows, model_rows, trunc_ratio):
    """The speed targets (ratios at 2 threads, 1.6e7 elements) the README reports: (what, reached, target)."""
    at = {(r["fn"], r["n"], r["threads"]): r for r in fill_rows}
    out = []
    n16 = 16_000_000
    kn = math.prod(KAIMING_SHAPES[n16])

    def add(what, value, target, higher_is_better=True):
        if value is not None:
            ok = value >= target if higher_is_better else value <= target
            out.append((what, f"{value:.2f}x", ("≥ " if higher_is_better else "≤ ") + f"{target}x", ok))

    def get(fn, n, threads, lib):
        row = at.get((fn, n, threads))
        return None if row is None or row.get(lib) is None else row[lib]

    def speedup(fn, n, threads, lib):
        other, mine = get(fn, n, threads, lib), get(fn, n, threads, "varinit")
        return None if other is None or mine is None else other / mine

    add("normal_ vs NumPy standard_normal", speedup("normal_", n16, 2, "numpy"), 15)
    add("normal_ vs torch.nn.init.normal_", speedup("normal_", n16, 2, "torch"), 4)
    add("uniform_ vs torch.nn.init.uniform_", speedup("uniform_", n16, 2, "torch"), 8)
    add("trunc_normal_ vs torch.nn.init.trunc_normal_", speedup("trunc_normal_", n16, 2, "torch"), 10)
    add("trunc_normal_ time / normal_ time (varinit, interleaved)", trunc_ratio, 1.5, higher_is_better=False)
    add("kaiming_normal_ 4096x4096 vs torch", speedup("kaiming_normal_", kn, 2, "torch"), 4)
    one, two = get("normal_", n16, 1, "varinit"), get("normal_", n16, 2, "varinit")
    add("normal_ 2 threads vs 1 thread", None if one is None or two is None else one / two, 1.7)
    two_model = [r for r in model_rows if r["threads"] == 2]
    if two_model:
        add("GPT-2 small init vs torch", two_model[0]["torch"] / two_model[0]["varinit"], 4)
    return out


def machine():
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    features = getattr(varinit, "cpu_features", None)  # from the SIMD dispatch, where present
    detected = ""
    if features is not None:
        found = features()
        names = [name for name, present in found.items() if present] if isinstance(found, dict) else found
        detected = f" (CPU features: {', '.join(map(str, names))})"
    return {
        "cpu": model,
        "cores": f"{usable} usable of {os.cpu_count()}",
        "isa": varinit.isa() + detected,
        "versions": f"Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}",
    }


def markdown(fill_rows, orth_rows, model_rows, per_call, goals, elapsed):
    info = machine()
    lines = [
        "# varinit benchmark",
        "",
        f"- machine: {info['cpu']}, {info['cores']} cores; varinit ISA: {info['isa']}",
        f"- {info['versions']}",
        f"- command: `{' '.join(['python'] + sys.argv)}`, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {elapsed:.0f} s",
        "- times in ms, median after a warm-up; ratios are the other library's time over varinit's"
        " (higher = varinit faster); float32; NumPy and ndarray.fill run on one thread at every T",
        "",
        "## Fills",
        "",
        "| function | elements | T | varinit ms | G elem/s | NumPy ms | torch ms | fill ms | vs NumPy | vs torch | varinit / fill |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in fill_rows + orth_rows:
        lines.append(
            f"| {r['fn']} | {r['n']:,} | {r['threads']} | {fmt_ms(r['varinit'])} | {r['n'] / r['varinit'] / 1e9:.2f}"
            f" | {fmt_ms(r.get('numpy'))} | {fmt_ms(r.get('torch'))} | {fmt_ms(r.get('fill'))}"
            f" | {ratio(r.get('numpy'), r['varinit'])} | {ratio(r.get('torch'), r['varinit'])}"
            f" | {ratio(r['varinit'], r.get('fill'))} |"
        )
    if model_rows:
        quick_note = " — quick run: 1 block, vocabulary 5000" if model_rows[0]["quick"] else ""
        lines += ["", f"## Whole-model initialization (GPT-2 small, torch's default init{quick_note})", "",
                  "| T | parameters | tensors | torch ms | varinit ms | speed-up |", "|---:|---:|---:|---:|---:|---:|"]
        for r in model_rows:
            lines.append(f"| {r['threads']} | {r['params']:,} | {r['tensors']} | {fmt_ms(r['torch'])}"
                         f" | {fmt_ms(r['varinit'])} | {ratio(r['torch'], r['varinit'])} |")
    lines += ["", "## Per call, 10x10 float32 (µs, minimum over interleaved repeats)", "",
              "| call | µs |", "|---|---:|"]
    lines += [f"| `{name}` | {us:.2f} |" for name, us in per_call.items()]
    if goals:
        lines += ["", "## Speed targets (2 threads, 1.6e7 elements)", "",
                  "| ratio | reached | target | met |", "|---|---:|---:|:---:|"]
        lines += [f"| {what} | {value} | {target} | {'yes' if ok else 'no'} |" for what, value, target, ok in goals]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke run")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "results", "latest.md"))
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    started = time.perf_counter()
    fill_rows = bench_fills(QUICK_SIZES if args.quick else SIZES, thread_counts, args.quick)
    orth_rows = bench_orthogonal(QUICK_ORTHOGONAL_SIDES if args.quick else ORTHOGONAL_SIDES,
                                 thread_counts, args.quick)
    model_rows = bench_model(thread_counts, args.quick)
    per_call = bench_per_call(5 if args.quick else 20)
    trunc_ratio = trunc_over_normal(max(thread_counts), 1_000_000 if args.quick else 16_000_000,
                                    5 if args.quick else 21)
    goals = targets(fill_rows, model_rows, trunc_ratio)
    report = markdown(fill_rows, orth_rows, model_rows, per_call, goals, time.perf_counter() - started)
    for what, value, target, ok in goals:
        print(f"target {what}: {value} (target {target}) {'met' if ok else 'NOT met'}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(report)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
