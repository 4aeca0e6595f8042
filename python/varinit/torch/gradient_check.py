"""The measured gradient of a model with batch statistics, after the graph-aware init.

The solve works on forward moments. A norm with batch statistics divides the
gradient by its input's per-channel std, which leaves out the offset a layer
gives an input with a mean: after an activation with a mean, each such layer
multiplies the gradient's second moment by nu / (nu - mu^2) whatever the
weights' scale (pi / (pi - 1) after ReLU; Yang et al. 2019, "A mean field
theory of batch normalization"). In residual branches the solve caps it
(dataflow's gradient budget); in a chain without a skip no scale can. So for
such a model, with real example inputs, one backward pass measures the
gradient across the weight layers, and a note names a std ratio outside
verdicts' GRADIENT_BAND (the same band for the second moment, [1/16, 16]).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .graph import BufferGuard, ExampleInputs, example_call
from .refine import MEASURED_MODULES
from .verdicts import GRADIENT_BAND


def gradient_note(model: torch.nn.Module, example_inputs: ExampleInputs) -> str | None:
    """A note when, in one forward and backward pass on the example inputs (the
    gradient at the output N(0, 1) from a fixed seed), the gradient std at the
    first weight layer's output is outside sqrt(GRADIENT_BAND) either way times the last hidden
    one's (the layers called as modules), or when autograd fails there; else
    None. Nothing is kept: no parameter's .grad, no buffer, no random state."""
    outputs: list[tuple[str, torch.Tensor]] = []

    def keep(name: str) -> Any:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            if isinstance(output, torch.Tensor) and output.requires_grad and output.is_floating_point():
                outputs.append((name, output))
                return output.clone()   # an in-place activation after it must not overwrite it
            return None
        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in model.named_modules()
               if isinstance(m, MEASURED_MODULES) and not isinstance(m, torch.nn.MultiheadAttention)]
    rng = torch.get_rng_state()
    try:
        args, kwargs = example_call(example_inputs)
        with torch.enable_grad(), BufferGuard(model):   # the buffers are put back after the backward
            output = model(*args, **kwargs)
            if not (isinstance(output, torch.Tensor) and output.requires_grad) or len(outputs) < 3:
                return None
            seed = torch.Generator(device="cpu").manual_seed(0)
            upstream = torch.randn(output.shape, generator=seed, dtype=output.dtype).to(output.device)
            hidden = [outputs[0], outputs[-2]]     # the first layer and the last before the output's
            grads = torch.autograd.grad(output, [t for _, t in hidden], upstream, allow_unused=True)
    except RuntimeError as error:   # a forward that runs without autograd but not with it
        return f"the gradient could not be measured after the init ({type(error).__name__}: {error})"
    finally:
        for handle in handles:
            handle.remove()
        torch.set_rng_state(rng)
    stds = [float(g.double().std()) if g is not None else math.nan for g in grads]
    if not all(math.isfinite(s) and s > 0 for s in stds):
        return None
    ratio = stds[0] / stds[1]
    high = math.sqrt(GRADIENT_BAND)
    low = 1.0 / high
    if low <= ratio <= high:
        return None
    return (f"measured in one backward pass on the example inputs, the gradient std at {hidden[0][0]} is "
            f"{ratio:.3g} times the one at {hidden[1][0]} (outside [{low:g}, {high:g}]). A norm with batch "
            "statistics after each layer divides the weights' scale out, and after an activation with a mean "
            "multiplies the gradient's second moment by nu / (nu - mu^2) (pi / (pi - 1) after ReLU; Yang et al. "
            "2019): the solve caps that inside residual branches, but a chain without a skip keeps it; how many "
            "layers read a feature map and how many positions it has set each element's share too")
