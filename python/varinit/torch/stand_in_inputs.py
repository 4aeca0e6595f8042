"""Gaussian stand-ins for example inputs given on the meta device (shapes only), so
init_module's measured pass runs on a model that holds values: the analytic solve
takes a meta input to have unit second moment, and N(0, 1) draws of its shape have
it, while the pass sees what no moment rule does, the realized draws of every
layer (a deep GELU or SiLU MLP's unstable fixed point amplifies their misses:
20 SiLU layers from shapes alone drifted to std 5.2)."""
from __future__ import annotations

from typing import Any

import torch

from .graph import ExampleInputs

# the stand-ins' own stream: the same inputs, and so the same corrections, on every call
STAND_IN_SEED = 0


def stand_in_inputs(model: torch.nn.Module, example_inputs: ExampleInputs) -> ExampleInputs | None:
    """The example inputs with each meta one replaced by N(0, 1) draws of its shape and
    dtype on the device of the model's parameters, or None unless the model holds
    values and every meta input is floating (token ids cannot be drawn: which ids a
    model accepts is not in a shape)."""
    parameters = list(model.parameters())
    if not parameters or any(p.is_meta for p in parameters):
        return None
    device = parameters[0].device
    generator = torch.Generator(device=device).manual_seed(STAND_IN_SEED)
    found = {"meta": False, "refused": False}

    def stand_in(value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or not value.is_meta:
            return value
        found["meta"] = True
        if not value.is_floating_point():
            found["refused"] = True
            return value
        return torch.randn(value.shape, generator=generator, dtype=value.dtype, device=device)

    if isinstance(example_inputs, dict):
        result: Any = {key: stand_in(value) for key, value in example_inputs.items()}
    elif isinstance(example_inputs, (tuple, list)):
        result = type(example_inputs)(stand_in(value) for value in example_inputs)
    else:
        result = stand_in(example_inputs)
    return result if found["meta"] and not found["refused"] else None
