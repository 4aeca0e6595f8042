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

Layers used once and not at the end of a residual branch (whose target
follows the stream) are measured: a layer called as a module through a forward
hook, and a layer function (F.linear, F.conv2d, ...) called in a forward()
with a parameter as its weight (Swin's window attention, hand-written blocks)
through a torch function mode that sees that parameter. The model's buffers
and torch's random state are left as they were.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, cast

import torch
from torch.overrides import TorchFunctionMode

from .graph import ExampleInputs, StateGuard, _bind, example_call
from .graph_kinds import SPECS

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
    second moment of the residual stream read at the input of `stream`, at
    most `cap`."""

    weight: str
    module: str
    goal: Optional[float]
    stream: Optional[str]
    alpha: Optional[float]
    functional: bool = False   # called as a layer function with the weight, not as a module
    # the most `alpha` times the measured stream may ask: a branch's end adds at most the
    # layers' target to its stream (dataflow's _Walk.goal), measured as solved
    cap: float = math.inf


# the layer functions whose output the functional measurement sees
LAYER_KINDS = ("linear", "conv", "conv_transpose", "addmm")


class _LayerCalls(TorchFunctionMode):
    """Calls `correct(target, output)` on the output of each layer function
    called with a target's weight, and passes on what it returns."""

    def __init__(self, targets: dict[int, Target],
                 correct: Callable[[Target, torch.Tensor], Optional[torch.Tensor]]) -> None:
        super().__init__()
        self.targets, self.correct = targets, correct

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            spec = SPECS.get(func)
        except TypeError:   # an unhashable callable: not a layer function
            return out
        if spec is None or spec.kind not in LAYER_KINDS or not isinstance(out, torch.Tensor):
            return out
        bound, _ = _bind(spec.names, args, kwargs)
        target = self.targets.get(id(bound.get("mat2" if spec.kind == "addmm" else "weight")))
        if target is None:
            return out
        corrected = self.correct(target, out)
        return out if corrected is None else corrected


class _AllMeasured(Exception):
    """Raised from the last hook: every measured layer has its factor."""


def correction_factors(model: torch.nn.Module, example_inputs: ExampleInputs,
                       targets: Sequence[Target]) -> dict[str, float]:
    """{weight name: factor} that brings each target layer's measured output
    variance to its goal, measured in one forward pass in which every corrected
    output is passed on corrected; a factor within NOISE of 1 is 1."""
    modules = dict(model.named_modules())
    factors: dict[str, float] = {}
    streams: dict[str, float] = {}
    handles: list[Any] = []
    weight_hooks = 0

    def read_stream(name: str) -> Callable[[torch.nn.Module, tuple[Any, ...]], None]:
        def pre_hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if name not in streams and args and isinstance(args[0], torch.Tensor):
                streams[name] = float(args[0].detach().float().pow(2).mean())
        return pre_hook

    def measure(target: Target, out: torch.Tensor) -> Optional[torch.Tensor]:
        """The corrected output of a target layer at its first call (None after)."""
        if target.weight in factors:
            return None
        # a goal, or alpha and the stream it multiplies
        goal = (cast(float, target.goal) if target.stream is None
                else min(cast(float, target.alpha) * streams.get(target.stream, math.nan), target.cap))
        # the spread about the output's mean, which a layer's std measures: zero in expectation,
        # that mean is far from zero in a layer of few units whose channels take offsets (a
        # squeeze-and-excitation's 4-channel reduction of pooled features, an std of 0.33 at a
        # second moment of 1 in Hugging Face's EfficientNet), and elsewhere negligible; unbiased,
        # as torch's std is: an output of a few elements (one unit over a batch of 2) is otherwise
        # corrected to sqrt(n / (n - 1)) of the target by the std a user reads
        second = float(out.detach().float().var()) if out.numel() > 1 else 0.0
        ok = second > 0 and math.isfinite(second) and math.isfinite(goal)
        factor = math.sqrt(goal / second) if ok else 1.0
        if abs(factor - 1.0) <= NOISE:
            factor = 1.0
        factors[target.weight] = factor
        if len(factors) == weight_hooks:
            raise _AllMeasured  # the rest of the forward pass (a large head) is not needed
        return out * factor

    def hook(target: Target) -> Callable[[torch.nn.Module, tuple[Any, ...], Any], Any]:
        def correct(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            out = output[0] if isinstance(output, tuple) else output
            if not isinstance(out, torch.Tensor):
                return None
            corrected = measure(target, out)
            if corrected is None:
                return None
            return (corrected,) + tuple(output[1:]) if isinstance(output, tuple) else corrected
        return correct

    params = dict(model.named_parameters())
    functional: dict[int, Target] = {}
    for target in targets:
        module = modules.get(target.module)
        weight = params.get(target.weight)
        if not (isinstance(weight, torch.Tensor) if target.functional else isinstance(module, MEASURED_MODULES)):
            continue
        if target.stream is not None:
            reader = modules.get(target.stream)
            if reader is None:
                continue
            handles.append(reader.register_forward_pre_hook(read_stream(target.stream)))
        if target.functional:
            functional[id(weight)] = target
        elif module is not None:
            handles.append(module.register_forward_hook(hook(target)))
        weight_hooks += 1
    if not handles and not functional:
        return factors
    # the function mode is on only inside the modules that make those calls: under a mode
    # every op of the forward pass goes through Python (GPT-2 small: 0.05 s of 0.13 s)
    calls: Any = _LayerCalls(functional, measure)   # torch's mode methods are untyped
    depth = [0]

    def enter(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if depth[0] == 0:
            calls.__enter__()
        depth[0] += 1

    def leave(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        depth[0] -= 1
        if depth[0] == 0:
            calls.__exit__(None, None, None)

    for name in dict.fromkeys(t.module for t in functional.values()):
        caller = modules.get(name)
        if caller is not None:
            handles.append(caller.register_forward_pre_hook(enter))
            handles.append(caller.register_forward_hook(leave, always_call=True))
    rng = torch.get_rng_state()
    try:
        args, kwargs = example_call(example_inputs)
        with torch.no_grad(), StateGuard(model):
            model(*args, **kwargs)
    except _AllMeasured:
        pass
    finally:
        if depth[0]:
            calls.__exit__(None, None, None)
        for h in handles:
            h.remove()
        torch.set_rng_state(rng)
    return factors
