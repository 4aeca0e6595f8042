"""Whole-model init: varinit's graph-aware init_module against torch's default
init and the peer anyinit (analytic and empirical), in one run.

    PYTHONPATH=python python benchmarks/whole_model.py            # zoo table + GPT-2 small timing
    PYTHONPATH=python python benchmarks/whole_model.py --quick    # zoo table only

For every architecture of tests/torch/zoo.py: one init call with no hints,
then one forward and backward pass (tests/torch/zoo.profile): the max/min
ratio of the weight layers' output stds ("act"), the output std ("out"), the
first/last hidden gradient std ratio ("grad") and the time of the call.
anyinit is optional (pip install anyinit): its rows are left out without it.

"shapes only" passes the example inputs as meta tensors: the analytic solve
alone, without the measured pass that real inputs add.

GPT-2 small (12 pre-LN blocks, d = 768, 12 heads, tied 50257-token head,
124M parameters, float32, input (1, 128) token ids): the time of the graph-aware
init (on meta ids: trace + solve + fill; on real ids with measure=False: + the
moments of the rows the ids pick; on real ids: + one measured forward pass
over the 128 tokens and the gradient check, one forward and backward pass)
against filling the same parameters plainly
(init_module without example_inputs, name-keyed streams) and torch's own
reset_parameters.
Results go to stdout and benchmarks/results/whole_model.md.
"""
import argparse
import os
import platform
import sys
import time
import warnings

import torch

import varinit

from model_rows import anyinit, anyinit_call, measure

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "torch"))
from zoo import UNSTABLE, ZOO, PreLNBlock  # noqa: E402


METHODS = {
    "torch default": lambda model, x: None,
    "varinit, structure only": lambda model, x: varinit.torch.init_module(model, generator=0),
    "varinit, dataflow": lambda model, x: varinit.torch.init_module(model, x, generator=0),
    "varinit, dataflow, shapes only": lambda model, x: varinit.torch.init_module(model, x.to("meta"), generator=0),
}
if anyinit is not None:
    METHODS["anyinit analytic"] = anyinit_call("analytic")
    METHODS["anyinit empirical"] = anyinit_call("empirical")


def zoo_rows():
    rows = []
    for name, make in {**ZOO, **UNSTABLE}.items():
        for method, run in METHODS.items():
            v, seconds = measure(make, run, seed=None)
            if seconds is None:
                rows.append((name, method, v, "", "", ""))
                continue
            rows.append((name, method, f"{v['act_ratio']:.3g}", f"{v['output_std']:.3g}",
                         f"{v['grad_ratio']:.3g}", f"{seconds * 1000:.0f} ms"))
    return rows


class GPT2Small(torch.nn.Module):
    def __init__(self, vocab=50257, d=768, heads=12, layers=12, context=1024):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(context, d)
        self.blocks = torch.nn.ModuleList(PreLNBlock(d, heads) for _ in range(layers))
        self.ln = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gpt2_rows():
    torch.manual_seed(0)
    model = GPT2Small()
    ids = torch.randint(0, 50257, (1, 128))
    params = sum(p.numel() for p in model.parameters())

    def reset():
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    meta_ids = ids.to("meta")
    with torch.device("meta"):
        meta_model = GPT2Small()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = best_of(lambda: varinit.torch.init_module(model, generator=0, by_name=True))
        shapes = best_of(lambda: varinit.torch.init_module(model, meta_ids, generator=0))
        measured = best_of(lambda: varinit.torch.init_module(model, ids, generator=0))
        unmeasured = best_of(lambda: varinit.torch.init_module(model, ids, generator=0, measure=False))
        trace = best_of(lambda: varinit.torch.trace(meta_model, meta_ids))
        solve = best_of(lambda: varinit.torch.dataflow.plan(meta_model, meta_ids)) - trace
    torch_time = best_of(reset)
    rows = [("torch reset_parameters", f"{torch_time:.3f} s", f"{torch_time / plain:.2f}"),
            ("varinit, plain fill (structure only)", f"{plain:.3f} s", "1.00"),
            ("varinit, dataflow on meta ids (trace + solve + fill)", f"{shapes:.3f} s", f"{shapes / plain:.2f}"),
            ("  of which the trace", f"{trace:.3f} s", f"{trace / plain:.2f}"),
            ("  of which the solve", f"{solve:.3f} s", f"{solve / plain:.2f}"),
            ("varinit, dataflow on real ids, measure=False (+ the ids' moments)", f"{unmeasured:.3f} s",
             f"{unmeasured / plain:.2f}"),
            ("varinit, dataflow on real ids (+ measured pass and gradient check)", f"{measured:.3f} s",
             f"{measured / plain:.2f}")]
    if anyinit is not None:
        for mode in ("analytic", "empirical"):
            torch.manual_seed(0)
            a = GPT2Small()
            start = time.perf_counter()
            anyinit.initialize(a, mode, ids, seed=0)
            seconds = time.perf_counter() - start
            rows.append((f"anyinit {mode}", f"{seconds:.3f} s", f"{seconds / plain:.2f}"))
    return params, rows


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the zoo table only")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    varinit.set_num_threads(2)
    out = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
           f"torch {torch.__version__}, varinit {varinit.__version__}"
           + (f", anyinit {anyinit.__version__}" if anyinit is not None else ", anyinit not installed"),
           "", "## Architectures: one call, no hints, then one forward and backward pass", "",
           table(("model", "init", "act max/min", "out std", "grad first/last", "time"), zoo_rows())]
    if not args.quick:
        params, rows = gpt2_rows()
        out += ["", f"## GPT-2 small ({params / 1e6:.1f}M parameters), best of 3", "",
                table(("init", "time", "x plain fill"), rows)]
    text = "\n".join(out)
    print(text)
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "whole_model.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
