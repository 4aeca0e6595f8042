"""The status of a layer: healthy, vanishing, exploding or saturated.

A layer's activations are compared with the network's input and its
gradients with the gradient injected at the output (unit variance by
default), so a status says how far the signal has drifted over the depth:

- exploding: a non-finite activation or gradient (float64 overflow), or an
  activation std above EXPLODING_RATIO times the input's, or a gradient
  above EXPLODING_RATIO times the output gradient (gradients are compared by
  their norm per example, std * sqrt(elements): a global average pool over P
  positions divides each element's gradient by P but the gradient's energy
  only by sqrt(P), and the energy is what reaches the weights);
- vanishing: an activation or gradient std below VANISHING_RATIO times its
  reference (a layer whose outputs are all exactly 0 vanishes too);
- saturated: more than SATURATED_FRACTION of the outputs of a bounded
  activation (tanh, sigmoid, hardtanh, hardsigmoid, softsign) lie within RAIL_MARGIN of the
  activation's range from one of its rails: the unit passes almost no gradient;
- healthy: none of the above.

The first that applies, in this order, is the status; `reasons` lists every
one that applies. Ratios within [1e-2, 1e2] are two decades either way: a
signal that has drifted further has lost (or gained) more than a factor 100,
which learning rates tuned for the first layers cannot absorb.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .._typing import FloatArray

EXPLODING_RATIO = 1e2
VANISHING_RATIO = 1e-2
SATURATED_FRACTION = 0.5
RAIL_MARGIN = 0.01
# name -> (lower rail, upper rail) of bounded activations.
RAILS = {
    "tanh": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "hardtanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "hardsigmoid": (0.0, 1.0),
}
Status = Literal["exploding", "vanishing", "saturated", "healthy"]
ORDER: tuple[Status, ...] = ("exploding", "vanishing", "saturated", "healthy")


def saturated_fraction(activation_name: str, outputs: FloatArray) -> float:
    """Fraction of outputs within RAIL_MARGIN * (upper - lower) of a rail; 0 for unbounded activations."""
    rails = RAILS.get(activation_name)
    if rails is None or outputs.size == 0:
        return 0.0
    lower, upper = rails
    margin = RAIL_MARGIN * (upper - lower)
    with np.errstate(invalid="ignore"):
        near = (outputs <= lower + margin) | (outputs >= upper - margin)
    return float(np.count_nonzero(near)) / outputs.size


def _ratio(std: float, reference: float) -> float:
    if reference == 0.0 or not math.isfinite(reference):
        return math.nan
    return std / reference


def classify(act_std: float | None, act_finite: bool, grad_std: float | None, grad_finite: bool,
             saturated: float, input_std: float | None, output_grad_std: float | None,
             width: int = 1, output_width: int = 1) -> tuple[Status, list[str]]:
    """(status, reasons) for one layer; std arguments may be None where unmeasured
    (a None reference, as for token-id inputs, skips that comparison).
    width / output_width: elements per example of this layer's output and of the
    network's output, for the gradients' norm per example."""
    reasons: list[tuple[Status, str]] = []
    if grad_std is not None and output_grad_std is not None:
        grad_std = grad_std * math.sqrt(width)
        output_grad_std = output_grad_std * math.sqrt(output_width)
    checks = (("activation", act_std, act_finite, input_std, "input"),
              ("gradient", grad_std, grad_finite, output_grad_std, "output gradient"))
    for what, std, finite, reference, ref_name in checks:
        if std is None or reference is None:
            continue
        if not finite or not math.isfinite(std):
            reasons.append(("exploding", f"{what} overflows float64 (inf/nan)"))
            continue
        ratio = _ratio(std, reference)
        if ratio > EXPLODING_RATIO:
            reasons.append(("exploding", f"{what} std {ratio:.1e} x the {ref_name}'s"))
        elif ratio < VANISHING_RATIO or std == 0.0:
            reasons.append(("vanishing", f"{what} std {ratio:.1e} x the {ref_name}'s"))
    if saturated > SATURATED_FRACTION:
        reasons.append(("saturated", f"{saturated:.0%} of the outputs at a rail"))
    status: Status = min((kind for kind, _ in reasons), key=ORDER.index, default="healthy")
    return status, [text for _, text in reasons]
