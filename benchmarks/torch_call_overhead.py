"""Per-call cost of varinit on a small torch tensor, against torch.nn.init, in one run.

    PYTHONPATH=python python benchmarks/torch_call_overhead.py            # about 2 minutes
    PYTHONPATH=python python benchmarks/torch_call_overhead.py --quick    # about 20 s

A model has many small tensors (biases, norms, small projections), so what a
call costs before it writes anything decides how fast a whole model is
initialized. Every row fills a 10x10 float32 CPU target with default
arguments:

- torch: torch.nn.init.<fn>(tensor);
- varinit, tensor / Parameter: varinit.<fn> on a torch.Tensor and on an
  nn.Parameter, drawing its key from torch's default generator as it does
  when generator=None (what makes torch.manual_seed govern it);
- varinit, named stream: the same on the tensor with generator=
  varinit.Generator(0).stream("w"), the streams varinit.torch.init_module uses;
- varinit, NumPy: varinit.<fn> on a float32 ndarray (varinit's default generator).

Below the table, the two torch calls a varinit fill of a torch tensor makes
and torch.nn.init's does not, timed alone: drawing the 64-bit key from
torch's generator (Tensor.random_(2**32) on two int64 words, which is what
keeps torch.manual_seed in charge) and bumping the version counter
(torch.autograd.graph.increment_version); their sum over torch.nn.init.normal_'s
time is a floor no varinit call with generator=None can go below.

Times are the thread's CPU time (time.thread_time), so other processes on a
busy machine do not inflate them; the callables are timed in turn, round
after round, and each one's figure is its minimum over the rounds (what a
quiet machine shows). Ratios divide by torch's figure of the same run.
Results go to stdout and to benchmarks/results/torch_call_overhead.md.
"""
import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np
import torch

import varinit

FUNCTIONS = ("normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
             "xavier_uniform_", "xavier_normal_", "zeros_")
SHAPE = (10, 10)


def per_call_seconds(fn, calls):
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


def measure(name, rounds, calls):
    """{variant: seconds per call} for one function, every variant timed in each round."""
    tensor = torch.empty(SHAPE)
    parameter = torch.nn.Parameter(torch.empty(SHAPE))
    array = np.empty(SHAPE, np.float32)
    ours, theirs = getattr(varinit, name), getattr(torch.nn.init, name)
    stream = varinit.Generator(0).stream("w")
    variants = {
        "torch": lambda: theirs(tensor),
        "varinit, tensor": lambda: ours(tensor),
        "varinit, Parameter": lambda: ours(parameter),
        "varinit, named stream": (lambda: ours(tensor)) if name == "zeros_"
        else (lambda: ours(tensor, generator=stream)),
        "varinit, NumPy": lambda: ours(array),
    }
    best = {}
    for fn in variants.values():  # warm-up: first-use imports and caches
        per_call_seconds(fn, 50)
    for _ in range(rounds):
        for key, fn in variants.items():
            best[key] = min(best.get(key, float("inf")), per_call_seconds(fn, calls))
    return best


def fixed_costs(rounds, calls):
    """The key draw and the version bump alone, against torch.nn.init.normal_."""
    from torch.autograd.graph import increment_version

    tensor, words = torch.empty(SHAPE), torch.empty(2, dtype=torch.int64)
    variants = {"torch": lambda: torch.nn.init.normal_(tensor), "key": lambda: words.random_(1 << 32),
                "bump": lambda: increment_version(tensor)}
    best = {}
    for _ in range(rounds):
        for key, fn in variants.items():
            best[key] = min(best.get(key, float("inf")), per_call_seconds(fn, calls))
    key, bump = best["key"] / best["torch"], best["bump"] / best["torch"]
    return (f"Fixed torch calls, against torch.nn.init.normal_ ({best['torch'] * 1e6:.2f} µs): key draw "
            f"{key:.2f}× ({best['key'] * 1e6:.2f} µs), version bump {bump:.2f}× ({best['bump'] * 1e6:.2f} µs); "
            f"together {key + bump:.2f}×.")


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}, "
            f"NumPy {np.__version__}, varinit {getattr(varinit, '__version__', '?')} "
            f"(kernels: {varinit.isa() if hasattr(varinit, 'isa') else '?'})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    args = parser.parse_args()
    rounds, calls = (5, 500) if args.quick else (25, 2000)
    lines = [
        "# Per-call cost on a 10x10 float32 CPU target",
        "",
        f"{datetime.date.today()}; {machine()}",
        "",
        f"`{' '.join(['python'] + [os.path.relpath(sys.argv[0])] + sys.argv[1:])}`: thread CPU time, "
        f"minimum of {rounds} interleaved rounds of {calls} calls. Ratios are to torch.nn.init's "
        "figure of the same run (lower is faster).",
        "",
        "| function | torch µs | varinit tensor | Parameter | named stream | NumPy |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines))
    for name in FUNCTIONS:
        best = measure(name, rounds, calls)
        torch_s = best["torch"]
        cells = [f"{best[key] / torch_s:.2f}× ({best[key] * 1e6:.2f} µs)"
                 for key in ("varinit, tensor", "varinit, Parameter", "varinit, named stream", "varinit, NumPy")]
        row = f"| {name} | {torch_s * 1e6:.2f} | " + " | ".join(cells) + " |"
        print(row)
        lines.append(row)
    lines += ["", fixed_costs(rounds, calls)]
    print(lines[-1])
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "torch_call_overhead.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"\nwritten to {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
