"""One measured pass after the analytic solve, when the example inputs are real.

The solve works with expected moments: a finite-width network's drawn weights
and activations move each layer's second moment by a few percent, and an
activation whose moment map is steeper than linear (GELU, SiLU: about 1.14
per layer) multiplies that error on the way down (Hanin & Rolnick 2018).
With real example inputs, one forward pass measures each solved layer's
output and scales it to the layer's target as it goes, so every later layer
sees corrected inputs (LSUV's rescaling, Mishkin & Matas 2016, in one pass
over the traced order). Each corrected weight is then drawn again from its
own stream with std * factor, so its values still equal
varinit.normal_(p, std=record.std, generator=g.stream(name)).

Only layers called as modules (their output is hookable), used once, and not
the end of a residual branch (whose target follows the stream) are
measured; the model's buffers and torch's random state are left as they were.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, cast

import torch

from .graph import BufferGuard, ExampleInputs, example_call

# Modules whose output is their weight's layer output: leaf layers, and
# MultiheadAttention, whose output is that of its out_proj weight.
MEASURED_MODULES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
                    torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d,
                    torch.nn.MultiheadAttention)


# A correction of the std within this fraction is left out: one batch's output second
# moment moves about that much with the batch (sqrt(2 / n) for n values of a 768-wide
# layer's token), and leaving it out spares drawing the weight again.
NOISE = 0.02


class Target(NamedTuple):
    """One layer for the measured pass: the weight, the module whose output is
    its output, and the goal: a fixed second moment, or `alpha` times the
    second moment of the residual stream read at the input of `stream`."""

    weight: str
    module: str
    goal: Optional[float]
    stream: Optional[str]
    alpha: Optional[float]


class _AllMeasured(Exception):
    """Raised from the last hook: every measured layer has its factor."""


def correction_factors(model: torch.nn.Module, example_inputs: ExampleInputs,
                       targets: Sequence[Target]) -> dict[str, float]:
    """{weight name: factor} that brings each target layer's measured output
    second moment to its goal, measured in one forward pass in which every
    corrected output is passed on corrected; a factor within NOISE of 1 is 1."""
    modules = dict(model.named_modules())
    factors: dict[str, float] = {}
    streams: dict[str, float] = {}
    handles: list[Any] = []
    weight_hooks = 0

    def read_stream(name: str) -> Callable[[torch.nn.Module, tuple[Any, ...]], None]:
        def pre_hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if name not in streams and args and isinstance(args[0], torch.Tensor):
                streams[name] = float(args[0].detach().to(torch.float64).pow(2).mean())
        return pre_hook

    def hook(target: Target) -> Callable[[torch.nn.Module, tuple[Any, ...], Any], Any]:
        def correct(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            out = output[0] if isinstance(output, tuple) else output
            if target.weight in factors or not isinstance(out, torch.Tensor):
                return None
            # a goal, or alpha and the stream it multiplies
            goal = (cast(float, target.goal) if target.stream is None
                    else cast(float, target.alpha) * streams.get(target.stream, math.nan))
            second = float(out.detach().to(torch.float64).pow(2).mean())
            ok = second > 0 and math.isfinite(second) and math.isfinite(goal)
            factor = math.sqrt(goal / second) if ok else 1.0
            if abs(factor - 1.0) <= NOISE:
                factor = 1.0
            factors[target.weight] = factor
            if len(factors) == weight_hooks:
                raise _AllMeasured  # the rest of the forward pass (a large head) is not needed
            return (out * factor,) + tuple(output[1:]) if isinstance(output, tuple) else out * factor
        return correct

    for target in targets:
        module = modules.get(target.module)
        if not isinstance(module, MEASURED_MODULES):
            continue
        if target.stream is not None:
            reader = modules.get(target.stream)
            if reader is None:
                continue
            handles.append(reader.register_forward_pre_hook(read_stream(target.stream)))
        handles.append(module.register_forward_hook(hook(target)))
        weight_hooks += 1
    if not handles:
        return factors
    rng = torch.get_rng_state()
    try:
        args, kwargs = example_call(example_inputs)
        with torch.no_grad(), BufferGuard(model):
            model(*args, **kwargs)
    except _AllMeasured:
        pass
    finally:
        for h in handles:
            h.remove()
        torch.set_rng_state(rng)
    return factors
