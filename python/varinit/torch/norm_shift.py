"""Shifting the activations after norms with batch statistics, for the gradient.

In a chain of layers, each followed by a norm with batch statistics and an
activation g, the gradient's second moment grows by E[g'(z)^2] / Var g(z) per
norm, z ~ N(beta, gamma^2) the norm's output: the next norm divides by the
std the activation's variance gives its layer's output, while the gradient
passes back through g'. After ReLU at beta = 0 that is pi / (pi - 1) = 1.47
(Yang et al. 2019, "A mean field theory of batch normalization"). No scale of
the layers changes it, since the norms divide their input's scale out; the
norm's shift does: it moves z toward where g is nearly linear, and the growth
toward 1 (ReLU: 1.18 at beta = 0.5, 1.06 at 1.5), at the cost of some of the
activation's curvature at init, which training then sets (beta is a parameter
like any other). Deep kernel shaping makes the same trade with the
activation's own shape (Martens et al. 2021; Zhang et al. 2022).

`shift_norms` searches one number, the factor c on every such norm's growth
(each norm's beta solves growth(beta) = c growth(0) by bisection on [0,
SHIFT_MAX], where the growth falls for every activation in SHIFTABLE): the
measured first/last ratio R goes as R0 c^k, k = L / 2 over L norms if every
norm sat on the gradient's path, less where skips and concatenations pass
around some. Each round aims c at AIM inside the band's edge with the k the
last round measured, solves the model again with those shifts and measures
it; after SHIFT_ROUNDS rounds (or in the band) the best measured state is
kept, when it moved the ratio toward the band and held the forward, else
the model is solved again without shifts.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Optional

from . import moment_rules as rules
from .dataflow import Plan, batch_statistics, named_activation
from .gradient_balance import AIM, closer_to_band
from .gradient_check import Layer, gradient_ratio, in_band
from .verdicts import GRADIENT_BAND

# the activations whose growth per norm falls as their input's mean rises from 0 to SHIFT_MAX
SHIFTABLE = ("relu", "relu6", "leaky_relu", "silu", "gelu", "gelu_tanh", "hardswish", "elu", "celu", "mish")
SHIFT_MAX = 1.5
# measured rounds of the search
SHIFT_ROUNDS = 3
BISECTIONS = 40


def growth(activation: tuple[str, float | None], beta: float, gamma: float) -> float:
    """E[g'(z)^2] / Var g(z) for z ~ N(beta, gamma^2): the factor on the gradient's
    second moment per norm with batch statistics followed by g."""
    name, param = activation
    moments, slope = rules.elementwise(name, rules.Moments(beta, gamma * gamma + beta * beta), param=param)
    return slope / max(moments.second - moments.mean ** 2, 1e-300)


# per norm shift parameter: its activation (name, param) and gamma
Shiftable = dict[str, tuple[tuple[str, Optional[float]], float]]


def shift_norms(plan: Plan, layers: list[Layer],
                solve: Callable[[dict[str, float]], list[Layer] | None]) -> str | None:
    """With `layers` measured on the model `plan` solved, whose first/last gradient
    ratio lies above the band: search the norms' shifts (module docstring), each
    round ``solve(shifts)`` solving, filling and measuring the model again. The
    model is left as the last ``solve`` made it: the best shifts, or none.
    Returns the note, or None when no norm qualifies (nothing is solved)."""
    start = gradient_ratio(layers)
    edge = math.sqrt(GRADIENT_BAND)
    found = shiftable(plan)
    if start <= edge or not found:
        return None
    best: tuple[list[Layer], dict[str, float]] = (layers, {})
    slope = 0.5 * len(found)   # d log R / d log c, as if every norm were on the gradient's path
    tried: list[str] = []
    values: dict[str, float] = {}
    for _ in range(SHIFT_ROUNDS):
        values = _shifts(found, math.exp(math.log(edge / AIM / start) / slope))
        after = solve(values)
        cut = _achieved(found, values)
        if after is None:
            break
        ratio = gradient_ratio(after)
        tried.append(f"{_range(values.values())} gave {ratio:.3g}")
        if closer_to_band(best[0], after):
            best = (after, values)
        if in_band(ratio) or cut >= 1.0 or ratio >= start:
            break
        slope = math.log(ratio / start) / math.log(cut)
    if best[1] is not values:
        solve(best[1])
    described = (f"after the tilt the gradient std at the first layer was {start:.3g} times the one at the last "
                 f"hidden one; {len(found)} norms with batch statistics each pass an activation, whose gradient "
                 f"grows by E[g'^2] / Var g per norm ({_range(growth(a, 0.0, g) for a, g in found.values())} here; "
                 "pi / (pi - 1) after ReLU, Yang et al. 2019), which shifts (beta) toward the activations' linear "
                 f"part cut: shifts {'; '.join(tried)}")
    if not best[1]:
        return described + " (measured and undone: no shift brought the ratio closer and held the forward)"
    return described + (f"; the shifts {_range(best[1].values())} kept, for a growth of "
                        f"{_range(growth(a, best[1][b], g) for b, (a, g) in found.items())} per norm")


def shiftable(plan: Plan) -> Shiftable:
    """Per norm shift parameter that `shift_norms` may set: its norm uses batch
    statistics, the solve sets the shift to zero, and one named activation in
    SHIFTABLE reads the norm's output alone (through views)."""
    graph = plan.graph
    found: Shiftable = {}
    for node in plan.signal_nodes():
        beta = node.params.get("bias")
        if node.kind != "norm" or not batch_statistics(node) or beta is None or beta in found:
            continue
        record = plan.params.get(beta)
        if record is None or record.rule != "constant" or record.value != 0.0 or len(graph.uses.get(beta, ())) != 1:
            continue
        source, readers = node.index, graph.readers(node.index)
        while len(readers) == 1 and readers[0].kind == "view" and readers[0].inputs[0] == source:
            source, readers = readers[0].index, graph.readers(readers[0].index)
        activation = named_activation(graph, readers[0], source) if len(readers) == 1 else None
        if activation is None or activation[0] not in SHIFTABLE:
            continue
        gamma = plan.params.get(node.params.get("weight", ""))
        found[beta] = (activation, gamma.value if gamma is not None and gamma.value is not None else 1.0)
    return found


def _shifts(found: Shiftable, cut: float) -> dict[str, float]:
    """Each norm's shift for a growth of `cut` times its growth at 0 (SHIFT_MAX where
    even that leaves it above)."""
    values = {}
    for beta, (activation, gamma) in found.items():
        goal = cut * growth(activation, 0.0, gamma)
        lo, hi = 0.0, SHIFT_MAX
        if growth(activation, hi, gamma) > goal:
            values[beta] = hi
            continue
        for _ in range(BISECTIONS):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if growth(activation, mid, gamma) > goal else (lo, mid)
        values[beta] = hi
    return values


def _achieved(found: Shiftable, values: dict[str, float]) -> float:
    """The geometric mean over the norms of their growth at their shift over at 0."""
    logs = [math.log(growth(a, values[b], g) / growth(a, 0.0, g)) for b, (a, g) in found.items()]
    return math.exp(sum(logs) / len(logs))


def _range(values: Iterable[float]) -> str:
    """'x' or 'x to y' for the smallest and largest of some values."""
    found = sorted(values)
    low, high = f"{found[0]:.3g}", f"{found[-1]:.3g}"
    return low if low == high else f"{low} to {high}"
