"""The measurement the model benchmarks share: one init call per model and method,
then tests/torch/zoo.py's forward and backward pass; rows for a Markdown table."""
import os
import platform
import sys
import time
import warnings

import torch

import varinit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "torch"))
from zoo import WEIGHT_LAYERS, profile, verdict  # noqa: E402,F401  (WEIGHT_LAYERS: for the scripts)

try:
    import anyinit
except ImportError:
    anyinit = None

HEADER = ("model", "init", "act max/min", "out std", "grad first/last", "all three in bounds", "time")


def anyinit_call(mode):
    """anyinit.initialize in `mode` ("analytic": the input's shape for float inputs)."""
    def run(model, x):
        spec = x if mode == "empirical" or not x.is_floating_point() else tuple(x.shape)
        anyinit.initialize(model, mode, spec, seed=0)
    return run


def methods(quick):
    """torch's default, varinit with real and with meta example inputs, and anyinit's
    modes when it is installed (its analytic mode left out with quick)."""
    found = {
        "torch default": lambda model, x: None,
        "varinit": lambda model, x: varinit.torch.init_module(model, x, generator=0),
        "varinit, shapes only": lambda model, x: varinit.torch.init_module(model, x.to("meta"), generator=0),
    }
    if anyinit is not None:
        found["anyinit empirical"] = anyinit_call("empirical")
        if not quick:
            found["anyinit analytic"] = anyinit_call("analytic")
    return found


def passes(v):
    return v["act_ratio"] <= 2 and 0.5 <= v["output_std"] <= 2 and 0.25 <= v["grad_ratio"] <= 4


def measure(make, run, layers=WEIGHT_LAYERS, seed=1):
    """One init call `run(model, x)` on a fresh `make()`, then zoo's forward and backward
    pass (its random draws from torch.manual_seed(seed), unless seed is None): the
    verdict and the call's seconds, or the error's name and None."""
    torch.manual_seed(0)
    model, x = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        try:
            run(model, x)
        except Exception as error:  # a peer that cannot handle a model: say so in the table
            return f"error: {type(error).__name__}", None
        seconds = time.perf_counter() - start
    if seed is not None:
        torch.manual_seed(seed)
    return verdict(*profile(model, x, layers=layers)), seconds


def rows(models, quick, layers=WEIGHT_LAYERS):
    """One row per model and method, printed as it is measured; `layers`: the module
    classes whose outputs are measured (zoo.profile)."""
    found = []
    for name, make in models.items():
        for method, run in methods(quick).items():
            v, seconds = measure(make, run, layers)
            if seconds is None:
                found.append((name, method, v, "", "", "", ""))
            else:
                found.append((name, method, f"{v['act_ratio']:.3g}", f"{v['output_std']:.3g}",
                              f"{v['grad_ratio']:.3g}", "yes" if passes(v) else "no", f"{seconds * 1000:.0f} ms"))
            print(" | ".join(found[-1]), flush=True)
    return found


def write(name, found, versions=""):
    """benchmarks/results/<name>.md: the machine, the versions and the rows."""
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
             f"varinit {varinit.__version__}, anyinit {getattr(anyinit, '__version__', 'absent')}{versions}", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in found]
    out = os.path.join(os.path.dirname(__file__), "results", f"{name}.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written: {out}")
