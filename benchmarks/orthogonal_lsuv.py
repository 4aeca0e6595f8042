"""orthogonal_ and LSUV against torch, in one run.

    PYTHONPATH=python python benchmarks/orthogonal_lsuv.py                       # about 3 minutes
    PYTHONPATH=python python benchmarks/orthogonal_lsuv.py --unset-openblas-env  # then once more without
                                                                                 # OPENBLAS_CORETYPE/_L2_SIZE
    PYTHONPATH=python python benchmarks/orthogonal_lsuv.py --quick               # smoke run, about 20 s

Measured on the development machine: Intel Xeon (Sapphire Rapids class, KVM),
2 cores, Python 3.11.7, NumPy 2.4.6 (OpenBLAS 0.3.31), SciPy 1.17.1 (OpenBLAS
0.3.30), torch 2.13.0+cpu (MKL); results in benchmarks/results/orthogonal_lsuv.md
with the command, the BLAS libraries loaded and the load average of the
(shared) machine before and after.

What is timed, float32 unless named:

- orthogonal_ on a square matrix (256^2, 1024^2, 2048^2; 1024^2 float64) on T
  threads: varinit.orthogonal_; "previous", varinit's algorithm before it
  factored in the target's precision (a float64 Gaussian, numpy.linalg.qr in
  float64, then the sign, the gain and the cast each as a new array),
  reproduced here with public calls; and torch.nn.init.orthogonal_. Calls of
  the three alternate, each after a pause of 0.25 s (PAUSE_SECONDS), so that
  no other library's idle threads still spin. Each figure is the median; the
  ratio of the fastest calls (what a quiet machine shows) and of the median
  CPU times of the process are given beside it.
- LSUV of a 50-layer tanh MLP of width 1024 on one batch of 512 (default):
  varinit.layers.lsuv on NumPy layers and varinit.torch.lsuv on an
  nn.Sequential of nn.Linear/nn.Tanh, as they are and "previous": with the
  previous orthogonal_ patched in as the pre-initialization and, for torch,
  every measurement of a layer made by a forward pass up to it, as before
  varinit.torch.lsuv replayed a layer's call after rescaling it and ran
  one-batch LSUV in a single forward pass (the private _Watch.measured and
  _units are patched for that). The time inside the
  pre-initialization is measured apart from the rest (the forward passes, the
  moments and the rescaling); torch.nn.init.orthogonal_ of the same 50 weights
  is the reference for the former.

T threads means varinit.set_num_threads(T), torch.set_num_threads(T) and every
BLAS library loaded (NumPy's and SciPy's OpenBLAS) held to T threads through
threadpoolctl (without it the BLAS threads are not limited, and the report
says so).

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are read when OpenBLAS loads, so
--unset-openblas-env re-runs this script in a subprocess whose environment
lacks both (only that subprocess: nothing else is changed) and reports the two
runs side by side; the output names the values the environment had.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import varinit
import varinit.layers.unit_variance
import varinit.torch.unit_variance

try:  # holds NumPy's and SciPy's BLAS to the thread count under test
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None

OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
SQUARE_SIDES = ((256, "float32"), (1024, "float32"), (2048, "float32"), (1024, "float64"))
# Idle OpenBLAS threads keep spinning for a while after a call (and libgomp's, less
# long): the next library timed would share the two cores with them. A pause before
# each timed call lets them sleep first. Without it, interleaved two-thread timings
# on this machine swung several-fold (other work on the VM added to that).
PAUSE_SECONDS = 0.25
QUICK_SQUARE_SIDES = ((256, "float32"), (512, "float32"))


# ---- the previous algorithm -------------------------------------------------------
def previous_orthogonal_(tensor, gain=1, generator=None, *, blocks=1):
    """varinit.orthogonal_ as it was before the QR ran in the target's precision:
    the float64 Gaussian of the same stream, numpy.linalg.qr (float64) per block,
    Q times sign(diag(R)) into a float64 result, times gain, cast into the target."""
    arr = tensor.detach().numpy() if isinstance(tensor, torch.Tensor) else tensor
    rows, cols = arr.shape[0], arr.size // arr.shape[0]
    gaussian = varinit.normal_(np.empty((rows, cols), np.float64), generator=generator)
    result = np.empty_like(gaussian)
    step = rows // blocks
    for lo in range(0, rows, step):
        block = gaussian[lo:lo + step]
        tall = block if block.shape[0] >= block.shape[1] else block.T
        q, r = np.linalg.qr(tall)
        q *= np.sign(np.diag(r))
        result[lo:lo + step] = q if tall is block else q.T
    arr[...] = (result * gain).reshape(arr.shape)
    return tensor


class Stopwatch:
    """A function that runs `fn` and adds its time to `seconds`."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


# ---- timing -------------------------------------------------------------------------
def set_threads(threads):
    varinit.set_num_threads(threads)
    torch.set_num_threads(threads)
    if threadpool_limits is not None:
        threadpool_limits(limits=threads, user_api="blas")


def interleaved_timings(calls, repeats):
    """{name: {"median": s, "best": s, "cpu": s}}: the median and the minimum of the
    wall-clock seconds and the median CPU seconds of the process, with the calls
    alternating (a warm-up call each first), so that a drift of the shared
    machine's speed reaches every one alike. The minimum is what a quiet machine
    shows; CPU time is what a busy one changes least on one thread (on two it
    also counts BLAS threads spinning)."""
    for fn in calls.values():
        fn()
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            time.sleep(PAUSE_SECONDS)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: {"median": statistics.median(wall[name]), "best": min(wall[name]),
                   "cpu": statistics.median(cpu[name])} for name in calls}


def bench_orthogonal(sides, thread_counts, quick):
    rows = []
    for side, dtype in sides:
        arr = np.zeros((side, side), dtype)
        ten = torch.from_numpy(np.zeros((side, side), dtype))
        repeats = 3 if quick else (5 if side >= 2048 else 9)
        for threads in thread_counts:
            set_threads(threads)
            timings = interleaved_timings({
                "varinit": lambda: varinit.orthogonal_(arr),
                "previous": lambda: previous_orthogonal_(arr),
                "torch": lambda: torch.nn.init.orthogonal_(ten),
            }, repeats)
            times = {name: t["median"] for name, t in timings.items()}
            rows.append({"side": side, "dtype": dtype, "threads": threads, **times,
                         **{f"{name}_best": t["best"] for name, t in timings.items()},
                         **{f"{name}_cpu": t["cpu"] for name, t in timings.items()}})
            print(f"orthogonal_ {side}x{side} {dtype} T={threads}: varinit {times['varinit'] * 1e3:.1f} ms, "
                  f"previous {times['previous'] * 1e3:.1f} ms, torch {times['torch'] * 1e3:.1f} ms "
                  f"(varinit / torch {times['varinit'] / times['torch']:.2f})", flush=True)
    return rows


def mlp_layers(depth, width):
    return [(np.zeros((width, width), np.float32), np.zeros(width, np.float32), "tanh") for _ in range(depth)]


def mlp_module(depth, width):
    return torch.nn.Sequential(*[m for _ in range(depth) for m in (torch.nn.Linear(width, width), torch.nn.Tanh())])


def measured_by_forward_passes(watch, call, inputs_are_free):
    """varinit.torch.lsuv's measurement before it replayed a layer's call: no replay
    is kept, so every measurement runs the forward pass up to the layer."""
    watch.output = call()
    raise varinit.torch.unit_variance._StopForward


def units_without_one_pass(units):
    """varinit.torch.lsuv's choice of layers, never taking the single forward pass."""
    def choose(*args):
        order, _ = units(*args)
        return order, False
    return choose


def run_lsuv(which, previous, depth, width, batch):
    """(total seconds, seconds in the orthogonal pre-initialization) of one LSUV call,
    as it is or (previous=True) as it was."""
    module = varinit.layers.unit_variance if which == "numpy" else varinit.torch.unit_variance
    watch = Stopwatch(previous_orthogonal_ if previous else varinit.orthogonal_)
    data = np.random.default_rng(0).standard_normal((batch, width)).astype(np.float32)
    if which == "numpy":
        model, data = mlp_layers(depth, width), data
        lsuv = varinit.layers.lsuv
    else:
        model, data = mlp_module(depth, width), torch.from_numpy(data)
        lsuv = varinit.torch.lsuv
    torch_lsuv = varinit.torch.unit_variance
    saved = module.orthogonal_, torch_lsuv._Watch.measured, torch_lsuv._units
    module.orthogonal_ = watch
    if previous and which == "torch":
        torch_lsuv._Watch.measured = measured_by_forward_passes
        torch_lsuv._units = units_without_one_pass(saved[2])
    try:
        start = time.perf_counter()
        report = lsuv(model, data, generator=0)
        total = time.perf_counter() - start
    finally:
        module.orthogonal_, torch_lsuv._Watch.measured, torch_lsuv._units = saved
    assert all(r.converged for r in report), "LSUV did not converge: the timing would not be comparable"
    return total, watch.seconds


def bench_lsuv(threads, depth, width, batch, repeats):
    set_threads(threads)
    rows = []
    for which in ("numpy", "torch"):
        samples = {"varinit": [], "previous": []}
        for _ in range(repeats):
            for name in samples:
                time.sleep(PAUSE_SECONDS)
                samples[name].append(run_lsuv(which, name == "previous", depth, width, batch))
        for name, runs in samples.items():
            total = statistics.median(t for t, _ in runs)
            pre = statistics.median(p for _, p in runs)
            rows.append({"lsuv": which, "version": name, "threads": threads, "total": total,
                         "pre_init": pre, "rest": statistics.median(t - p for t, p in runs)})
            print(f"LSUV {which}, {name}: {total:.2f} s, of which orthogonal pre-init {pre:.2f} s", flush=True)
    weights = [torch.empty(width, width) for _ in range(depth)]

    def torch_pre_init():
        for w in weights:
            torch.nn.init.orthogonal_(w)

    reference = interleaved_timings({"torch": torch_pre_init}, repeats)["torch"]["median"]
    print(f"torch.nn.init.orthogonal_ of the {depth} weights: {reference:.2f} s", flush=True)
    return rows, reference


# ---- the report ----------------------------------------------------------------------
def load_average():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def blas_libraries():
    if threadpool_info is None:
        return ["threadpoolctl is not installed: BLAS threads were not limited"]
    return [f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}, "
            f"{os.path.basename(lib.get('filepath', ''))}, {lib.get('num_threads')} threads)"
            for lib in threadpool_info() if lib.get("user_api") == "blas"]


def openblas_environment():
    return ", ".join(f"{name}={os.environ[name]!r}" if name in os.environ else f"{name} not set"
                     for name in OPENBLAS_VARIABLES)


def run_once(args):
    started = time.perf_counter()
    load_before = load_average()
    thread_counts = [int(t) for t in args.threads.split(",")]
    varinit.orthogonal_(np.empty((8, 8), np.float32))   # loads SciPy's LAPACK, so threadpoolctl sees it
    orth_rows = bench_orthogonal(QUICK_SQUARE_SIDES if args.quick else SQUARE_SIDES, thread_counts, args.quick)
    depth, width, batch = (10, 256, 128) if args.quick else (args.lsuv_depth, args.lsuv_width, args.lsuv_batch)
    lsuv_rows, torch_pre_init = bench_lsuv(max(thread_counts), depth, width, batch, 1 if args.quick else 3)
    return {"environment": openblas_environment(), "blas": blas_libraries(), "load_before": load_before,
            "load_after": load_average(), "seconds": time.perf_counter() - started, "orthogonal": orth_rows,
            "lsuv": lsuv_rows, "torch_pre_init": torch_pre_init, "mlp": [depth, width, batch]}


def without_openblas_environment(args):
    """This script's results in a subprocess without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE."""
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARIABLES}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "results.json")
        child = [sys.executable, os.path.abspath(__file__), "--threads", args.threads, "--child-json", path,
                 "--lsuv-depth", str(args.lsuv_depth), "--lsuv-width", str(args.lsuv_width),
                 "--lsuv-batch", str(args.lsuv_batch)] + (["--quick"] if args.quick else [])
        subprocess.run(child, env=env, check=True)
        with open(path) as f:
            return json.load(f)


def ms(seconds):
    return f"{seconds * 1e3:.1f}"


def section(title, result):
    depth, width, batch = result["mlp"]
    lines = [f"## {title}", "",
             f"- OpenBLAS environment: {result['environment']}",
             f"- BLAS libraries: {'; '.join(result['blas'])}",
             f"- load average (1, 5, 15 min) before: {result['load_before']}, after: {result['load_after']};"
             f" {result['seconds']:.0f} s", "",
             "| orthogonal_ | T | varinit ms | previous ms | torch ms | varinit / torch | previous / torch |"
             " previous / varinit | best: varinit / torch | CPU: varinit / torch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["orthogonal"]:
        lines.append(f"| {r['side']}x{r['side']} {r['dtype']} | {r['threads']} | {ms(r['varinit'])}"
                     f" | {ms(r['previous'])} | {ms(r['torch'])} | {r['varinit'] / r['torch']:.2f}"
                     f" | {r['previous'] / r['torch']:.2f} | {r['previous'] / r['varinit']:.2f}"
                     f" | {r['varinit_best'] / r['torch_best']:.2f} | {r['varinit_cpu'] / r['torch_cpu']:.2f} |")
    lines += ["", f"LSUV, {depth}-layer tanh MLP of width {width}, one batch of {batch}, "
                  f"T = {result['lsuv'][0]['threads']} (seconds, medians):", "",
              "| LSUV | version | total s | in orthogonal_ s | rest s |", "|---|---|---:|---:|---:|"]
    for r in result["lsuv"]:
        lines.append(f"| {r['lsuv']} | {r['version']} | {r['total']:.2f} | {r['pre_init']:.2f}"
                     f" | {r['rest']:.2f} |")
    lines += ["", f"torch.nn.init.orthogonal_ of the same {depth} weights: {result['torch_pre_init']:.2f} s.", ""]
    return lines


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(results, argv):
    lines = ["# orthogonal_ and LSUV against torch", "",
             f"- machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
             f"NumPy {np.__version__}, torch {torch.__version__}",
             f"- command: `{' '.join(['python'] + argv)}`, "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             "- times are medians of interleaved calls; ratios are times over torch's time (below 1: faster"
             " than torch); \"best\" compares the fastest calls (what a quiet machine shows), \"CPU\" the"
             " process's CPU time; \"previous\" is varinit's"
             " float64 numpy.linalg.qr orthogonal_ before this change, reproduced with public calls, and for"
             " torch's LSUV also its previous measurement (a forward pass for every measurement)", ""]
    for title, result in results:
        lines += section(title, result)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one LSUV run: a smoke run")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--lsuv-depth", type=int, default=50)
    parser.add_argument("--lsuv-width", type=int, default=1024)
    parser.add_argument("--lsuv-batch", type=int, default=512)
    parser.add_argument("--unset-openblas-env", action="store_true",
                        help="then re-run in a subprocess without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE")
    parser.add_argument("--child-json", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "results", "orthogonal_lsuv.md"))
    args = parser.parse_args()
    print(f"OpenBLAS environment: {openblas_environment()}", flush=True)
    result = run_once(args)
    if args.child_json:
        with open(args.child_json, "w") as f:
            json.dump(result, f)
        return
    results = [("With the environment as it is", result)]
    if args.unset_openblas_env:
        print("re-running in a subprocess with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset "
              "(only there)", flush=True)
        results.append(("In a subprocess with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset",
                        without_openblas_environment(args)))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(markdown(results, sys.argv))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
