"""Gaussian stand-ins for example inputs given on the meta device (shapes only), so
init_module's measured pass runs on a model that holds values: the analytic solve
takes a meta input to have unit second moment, and N(0, 1) draws of its shape have
it, while the pass sees what no moment rule does, the realized draws of every
layer (a deep GELU or SiLU MLP's unstable fixed point amplifies their misses:
20 SiLU layers from shapes alone drifted to std 5.2)."""
from __future__ import annotations

import torch

from .dataflow import flat_inputs, map_inputs
from .graph import ExampleInputs

# the stand-ins' own stream: the same inputs, and so the same corrections, on every call
STAND_IN_SEED = 0


def stand_in_inputs(model: torch.nn.Module, example_inputs: ExampleInputs) -> ExampleInputs | None:
    """The example inputs with each meta one replaced by N(0, 1) draws of its shape and
    dtype on the device of the model's parameters, or None unless the model holds
    values and every meta input is floating (token ids cannot be drawn: which ids a
    model accepts is not in a shape)."""
    parameters = list(model.parameters())
    meta = [t for t in flat_inputs(example_inputs) if isinstance(t, torch.Tensor) and t.is_meta]
    if (not parameters or any(p.is_meta for p in parameters) or not meta
            or not all(t.is_floating_point() for t in meta)):
        return None
    device = parameters[0].device
    generator = torch.Generator(device=device).manual_seed(STAND_IN_SEED)
    stand_ins: ExampleInputs = map_inputs(example_inputs, lambda t: torch.randn(
        t.shape, generator=generator, dtype=t.dtype, device=device) if t.is_meta else t)
    return stand_ins
