"""The `varinit` command line: propagate, gain, fans, bench.

    varinit propagate --depth 50 --width 512 --activation relu --init kaiming_normal
    varinit propagate --depth 50 --compare naive,xavier_normal,kaiming_normal --every 5 --plot out.png
    varinit gain gelu
    varinit fans 64 32 3 3 --layer conv --groups 32
    varinit bench

Exit status: 0 on success, 2 for usage errors (argparse), 1 for invalid
values (printed as one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, cast

import numpy as np

from . import STREAM_VERSION, __version__

from .diagnostics.mlp import SPEC_INITS

if TYPE_CHECKING:
    from .diagnostics.mlp import SpecInit

BENCH_SIZE = 1 << 20


def _init_value(text: str) -> float | str:
    """A spec init name, or a number meaning N(0, number^2)."""
    try:
        return float(text)
    except ValueError:
        return text


def _run_propagate(args: argparse.Namespace) -> int:
    from .diagnostics.mlp import mlp_spec
    from .diagnostics.propagation import propagate
    from .diagnostics.report import compare_text

    inits = [_init_value(t.strip()) for t in args.compare.split(",")] if args.compare else [_init_value(args.init)]
    if any(i == "" for i in inits):
        raise ValueError(f"--compare must be a comma-separated list of inits, got {args.compare!r}")
    if args.every < 1:
        raise ValueError(f"--every must be >= 1, got {args.every}")
    reports = []
    for init in inits:
        net = mlp_spec(args.depth, args.width, args.activation, cast("SpecInit | float", init), args.seed,
                       param=args.param,
                       bias_std=args.bias_std)
        reports.append(propagate(net, batch=args.batch, seed=args.seed, precision=args.precision,
                                 int8_clip=args.int8_clip))
    if len(reports) == 1:
        print(reports[0].to_text(every=args.every))
    else:
        print(compare_text(reports, every=args.every))
    if args.precision:
        for report in reports:
            print()
            print(report.precision_text(every=args.every))
    if args.plot:
        from .diagnostics.plots import plot_propagation

        fig = plot_propagation(reports, args.plot)
        import matplotlib.pyplot as plt

        plt.close(fig)
        print(f"plot saved to {args.plot}")
    return 0


def _run_gain(args: argparse.Namespace) -> int:
    from .gains import gain
    from .gains import calculate_gain
    from .diagnostics.mean_field import critical_sigma_w

    value = gain(args.activation, args.param)
    print(f"{args.activation}: varinit.gain = {value:.10g}  (1 / sqrt(E[f(z)^2]), z ~ N(0, 1))")
    try:
        torch_value = float(calculate_gain(args.activation, args.param))
    except ValueError:
        print(f"{' ' * len(args.activation)}  torch.nn.init.calculate_gain: not defined for {args.activation!r}")
    else:
        note = "" if math.isclose(torch_value, value, rel_tol=1e-9) else "  (torch's table, another criterion)"
        print(f"{' ' * len(args.activation)}  torch.nn.init.calculate_gain = {torch_value:.10g}{note}")
    try:
        sigma = critical_sigma_w(args.activation, 0.0, args.param)
    except ValueError as exc:
        print(f"{' ' * len(args.activation)}  critical sigma_w (sigma_b = 0): none ({exc})")
    else:
        print(f"{' ' * len(args.activation)}  critical sigma_w (sigma_b = 0, chi1 = 1) = {sigma:.10g}")
    return 0


def _axes_arg(text: str) -> int | tuple[int, ...]:
    """argparse type of --in-axis / --out-axis: an int or comma-separated ints."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or comma-separated ints, got {text!r}") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def _run_fans(args: argparse.Namespace) -> int:
    from .fan_rules import fans

    fan_in, fan_out = fans(tuple(args.shape), layer=args.layer, groups=args.groups, stride=args.stride,
                           blocks=args.blocks, in_axis=args.in_axis, out_axis=args.out_axis)
    if args.in_axis is not None or args.out_axis is not None:
        layout = f"in_axis {args.in_axis}, out_axis {args.out_axis}"
    else:
        layout = f"layer {args.layer or 'torch default (out, in, *kernel)'}, groups {args.groups}, stride {args.stride}"
    print(f"shape {tuple(args.shape)}, {layout}, blocks {args.blocks}")
    print(f"fan_in  = {fan_in}")
    print(f"fan_out = {fan_out}")

    def std(numerator: float, fan: float) -> str:  # an empty weight (a zero fan) has no std to draw from
        return f"{math.sqrt(numerator / fan):.6g}" if fan else "undefined (zero fan)"

    print(f"He (relu) std      = sqrt(2 / fan_in)            = {std(2.0, fan_in)}")
    print(f"Xavier std         = sqrt(2 / (fan_in + fan_out)) = {std(2.0, fan_in + fan_out)}")
    print(f"LeCun std          = sqrt(1 / fan_in)            = {std(1.0, fan_in)}")
    return 0


def _best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _run_bench(args: argparse.Namespace) -> int:
    from . import _core
    from . import init as vi
    from .generator import Generator

    n = args.size
    if n < 1:
        raise ValueError(f"--size must be >= 1, got {n}")
    rng = np.random.default_rng(0)
    gen = Generator(0)
    a32, a64 = np.empty(n, np.float32), np.empty(n, np.float64)
    w32 = a32.reshape(-1, 1024) if n % 1024 == 0 else a32.reshape(1, -1)
    cases = [
        ("normal float32", lambda: vi.normal_(a32, 0.0, 1.0, gen),
         lambda: rng.standard_normal(out=a32, dtype=np.float32)),
        ("normal float64", lambda: vi.normal_(a64, 0.0, 1.0, gen),
         lambda: rng.standard_normal(out=a64)),
        ("uniform float32", lambda: vi.uniform_(a32, -1.0, 1.0, gen),
         lambda: rng.random(out=a32, dtype=np.float32)),
        ("kaiming_normal float32", lambda: vi.kaiming_normal_(w32, nonlinearity="relu", generator=gen), None),
        ("trunc_normal float32", lambda: vi.trunc_normal_(a32, 0.0, 1.0, -2.0, 2.0, gen), None),
    ]
    torch: ModuleType | None = None
    if importlib.util.find_spec("torch") is not None and not args.no_torch:
        torch = importlib.import_module("torch")
    header = f"{'fill (' + format(n, ',') + ' values)':<28}{'varinit':>10}{'numpy':>10}"
    header += f"{'torch':>10}" if torch is not None else ""
    print(header + "   (ms, best of 3; numpy's uniform is U(0,1) without scaling)")
    for name, ours, theirs in cases:
        line = f"{name:<28}{1e3 * _best_of(ours):>10.2f}"
        line += f"{1e3 * _best_of(theirs):>10.2f}" if theirs is not None else f"{'-':>10}"
        if torch is not None:
            t = torch.from_numpy(a32 if "float32" in name else a64)
            fills = {"normal": lambda: torch.nn.init.normal_(t), "uniform": lambda: torch.nn.init.uniform_(t, -1, 1),
                     "kaiming_normal": lambda: torch.nn.init.kaiming_normal_(torch.from_numpy(w32), nonlinearity="relu"),
                     "trunc_normal": lambda: torch.nn.init.trunc_normal_(t)}
            line += f"{1e3 * _best_of(fills[name.split()[0]]):>10.2f}"
        print(line)
    print(f"varinit kernels: {_core.isa()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="varinit", description="varinit: initialization diagnostics and tools.")
    parser.add_argument("--version", action="version",
                        version=f"varinit {__version__} (stream version {STREAM_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("propagate", help="forward/backward statistics per layer of a deep MLP",
                       description="Run a batch through an MLP initialized by varinit and print, per layer, "
                                   "measured statistics beside the mean-field prediction.")
    p.add_argument("--depth", type=int, default=50, help="number of dense layers (default 50)")
    p.add_argument("--width", type=int, default=512, help="units per layer (default 512)")
    p.add_argument("--activation", default="relu", help="activation after every layer (default relu)")
    p.add_argument("--param", type=float, default=None, help="activation parameter (leaky_relu slope, elu alpha...)")
    p.add_argument("--init", default="kaiming_normal",
                   help=f"one of {', '.join(SPEC_INITS)}, or a number s for N(0, s^2) (default kaiming_normal)")
    p.add_argument("--compare", default=None, metavar="INIT,INIT,...",
                   help="several inits side by side, e.g. naive,xavier_normal,kaiming_normal")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, inputs and output gradient (default 0)")
    p.add_argument("--bias-std", type=float, default=0.0, help="biases N(0, s^2) (default 0: zero biases)")
    p.add_argument("--every", type=int, default=1, help="show layers 1, k, 2k, ..., last (default 1: all)")
    p.add_argument("--precision", action="store_true",
                   help="also print float16/bfloat16/int8 overflow and underflow fractions per layer")
    p.add_argument("--int8-clip", type=float, default=4.0, help="int8 clipping range (scale = clip/127; default 4)")
    p.add_argument("--plot", default=None, metavar="PATH", help="save the std-per-layer plot (PNG) there")
    p.set_defaults(run=_run_propagate)

    p = sub.add_parser("gain", help="variance-preserving gain of an activation",
                       description="varinit.gain (second-moment rule), torch's calculate_gain where it is "
                                   "defined, and the critical sigma_w.")
    p.add_argument("activation", help="activation name, e.g. relu, tanh, gelu, silu, leaky_relu")
    p.add_argument("--param", type=float, default=None, help="activation parameter (leaky_relu slope...)")
    p.set_defaults(run=_run_gain)

    p = sub.add_parser("fans", help="fan_in and fan_out of a weight shape",
                       description="fan_in / fan_out of a weight (varinit.fans) and the stds they give.")
    p.add_argument("shape", type=int, nargs="+", help="weight shape, e.g. 64 32 3 3 for (C_out, C_in/groups, kH, kW)")
    p.add_argument("--layer", choices=("linear", "conv", "conv_transpose"), default=None,
                   help="layer kind (default: torch's shape rule)")
    p.add_argument("--groups", type=int, default=1, help="convolution groups (default 1)")
    p.add_argument("--stride", type=int, default=1, help="convolution stride: divides a conv's fan_out and a conv_transpose's fan_in (default 1)")
    p.add_argument("--blocks", type=int, default=1, help="fused blocks along the output axis (QKV: 3; default 1)")
    p.add_argument("--in-axis", type=_axes_arg, default=None, help="input axis or axes (comma-separated), JAX layout")
    p.add_argument("--out-axis", type=_axes_arg, default=None, help="output axis or axes (comma-separated), JAX layout")
    p.set_defaults(run=_run_fans)

    p = sub.add_parser("bench", help="short fill benchmark against NumPy (and torch if installed)",
                       description="Time a few fills (best of 3) against NumPy's Generator and torch.nn.init.")
    p.add_argument("--size", type=int, default=BENCH_SIZE, help=f"values per fill (default {BENCH_SIZE})")
    p.add_argument("--no-torch", action="store_true", help="do not import torch even if it is installed")
    p.set_defaults(run=_run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `varinit` and `python -m varinit`; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
        return status
    except BrokenPipeError:
        # the reader (e.g. `| head`) left: stop quietly, as the Python docs recommend
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, ImportError, OSError) as exc:
        print(f"varinit {args.command}: error: {exc}", file=sys.stderr)
        return 1
