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
import math

import torch

from .graph import BufferGuard

MEASURED = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
            torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)


class _AllMeasured(Exception):
    """Raised from the last hook: every measured layer has its factor."""


def correction_factors(model, example_inputs, targets):
    """{weight name: factor} that brings each module's measured output second
    moment to targets[weight name], measured in one forward pass."""
    modules = dict(model.named_modules())
    factors, handles = {}, []

    def hook(name, goal):
        def correct(module, args, output):
            if name in factors or not isinstance(output, torch.Tensor):
                return None
            second = float(output.detach().to(torch.float64).pow(2).mean())
            factor = math.sqrt(goal / second) if second > 0 and math.isfinite(second) else 1.0
            factors[name] = factor
            if len(factors) == len(handles):
                raise _AllMeasured  # the rest of the forward pass (a large head) is not needed
            return output * factor
        return correct

    for weight, goal in targets.items():
        module_name = weight.rsplit(".", 1)[0] if "." in weight else ""
        module = modules.get(module_name)
        if isinstance(module, MEASURED) and weight.endswith(".weight"):
            handles.append(module.register_forward_hook(hook(weight, goal)))
    if not handles:
        return factors
    rng = torch.get_rng_state()
    try:
        with torch.no_grad(), BufferGuard(model):
            if isinstance(example_inputs, dict):
                model(**example_inputs)
            elif isinstance(example_inputs, (tuple, list)):
                model(*example_inputs)
            else:
                model(example_inputs)
    except _AllMeasured:
        pass
    finally:
        for h in handles:
            h.remove()
        torch.set_rng_state(rng)
    return factors
