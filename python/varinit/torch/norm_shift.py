"""Shifting the activations after norms with batch statistics, for the gradient.

In a chain of layers, each followed by a norm with batch statistics and an
activation g, the gradient's second moment grows by gamma^2 E[g'(z)^2] / Var g(z)
per norm, z ~ N(beta, gamma^2) the norm's output: the next norm divides by the
std the activation's variance gives its layer's output, while the gradient
passes back through g'. After ReLU at beta = 0 that is pi / (pi - 1) = 1.47
(Yang et al. 2019, "A mean field theory of batch normalization"). No scale of
the layers changes it, since the norms divide their input's scale out; the
norm's shift does: it moves z toward where g is nearly linear, and the growth
toward 1 (ReLU: 1.18 at beta = 0.5, 1.06 at 1.5), at the cost of some of the
activation's curvature at init, which training then sets (beta is a parameter
like any other). Deep kernel shaping makes the same trade with the
activation's own shape (Martens et al. 2021; Zhang et al. 2022).

An activation may read one such norm, or a sum of them (the branches of a
RepVGG or MobileOne block, each a conv and a norm, and a norm of the
block's input): its input is then N(sum of betas, sum of gamma^2), and the
mean is shared among the norms.

`shift_norms` searches one number, the factor c on every such activation's
growth (its input's mean solves growth(mean) = c growth(0) by bisection on
[0, SHIFT_MAX input stds], where the growth falls for every activation in
SHIFTABLE): the measured first/last ratio R goes as R0 c^k, k = L / 2 over
L activations if every one sat on the gradient's path, less where skips and
concatenations pass around some. Each round aims c at AIM inside the
band's edge with the k the last round measured, solves the model again with
those shifts and measures it, until the ratio is sqrt(AIM) inside the edge
(a measure on another batch, another stochastic-depth draw, moves it) or
SHIFT_ROUNDS rounds; the measured state nearest the band, then the aim,
that held the forward is kept, else the model is solved again without
shifts.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple, Optional

from . import moment_rules as rules
from .dataflow import Plan, named_activation, summed_batch_norms
from .gradient_balance import AIM, band_distance, forward_held
from .gradient_check import Layer, gradient_ratio
from .graph import Node
from .verdicts import GRADIENT_BAND

# the activations whose growth falls as their input's mean rises from 0 to SHIFT_MAX stds
SHIFTABLE = ("relu", "relu6", "leaky_relu", "silu", "gelu", "gelu_tanh", "hardswish", "elu", "celu", "mish")
SHIFT_MAX = 1.5
# measured rounds of the search
SHIFT_ROUNDS = 3
BISECTIONS = 40


def growth(activation: tuple[str, float | None], beta: float, gamma: float) -> float:
    """gamma^2 E[g'(z)^2] / Var g(z) for z ~ N(beta, gamma^2): the factor on the
    gradient's second moment per norm with batch statistics followed by g (the
    norm passes the gradient back times gamma over its input's std, which the
    next norm's division by Var g sets)."""
    name, param = activation
    moments, slope = rules.elementwise(name, rules.Moments(beta, gamma * gamma + beta * beta), param=param)
    return gamma * gamma * slope / max(moments.second - moments.mean ** 2, 1e-300)


class Group(NamedTuple):
    """An activation whose input is a norm's output, or a sum of norms' outputs (the
    branches of a RepVGG or MobileOne block): the norms' shift parameters, the
    activation (name, param), and the std of its input (sqrt of the sum of gamma^2)."""

    betas: tuple[str, ...]
    activation: tuple[str, Optional[float]]
    std: float

    def growth(self, mean: float) -> float:
        """The growth per norm with the activation's input at this mean."""
        return growth(self.activation, mean, self.std)


def shift_norms(plan: Plan, layers: list[Layer],
                solve: Callable[[dict[str, float]], list[Layer] | None]) -> str | None:
    """With `layers` measured on the model `plan` solved, whose first/last gradient
    ratio lies above the band: search the norms' shifts (module docstring), each
    round ``solve(shifts)`` solving, filling and measuring the model again. The
    model is left as the last ``solve`` made it: the best shifts, or none.
    Returns the note, or None when no norm qualifies (nothing is solved)."""
    start = gradient_ratio(layers)
    edge = math.sqrt(GRADIENT_BAND)
    groups = shiftable(plan)
    if start <= edge or not groups:
        return None
    aim = edge / AIM
    best: tuple[float, dict[str, float]] = (start, {})
    slope = 0.5 * len(groups)   # d log R / d log c, as if every activation were on the gradient's path
    tried: list[str] = []
    values: dict[str, float] = {}
    for _ in range(SHIFT_ROUNDS):
        wanted = _shifts(groups, math.exp(math.log(aim / start) / slope))
        if wanted == values:   # every shift at its most already
            break
        values = wanted
        after = solve(values)
        cut = _achieved(groups, values)
        if after is None:
            break
        ratio = gradient_ratio(after)
        tried.append(f"{_range(values.values())} gave {ratio:.3g}")
        if forward_held(layers, after) and _rank(ratio) < _rank(best[0]):
            best = (ratio, values)
        if ratio <= edge / math.sqrt(AIM) or cut >= 1.0 or ratio >= start:
            break
        slope = math.log(ratio / start) / math.log(cut)
    if best[1] is not values:
        solve(best[1])
    described = (f"after the tilt the gradient std at the first layer was {start:.3g} times the one at the last "
                 f"hidden one; {len(groups)} activations read norms with batch statistics (or a sum of them), "
                 f"which multiply the gradient's second moment by gamma^2 E[g'^2] / Var g each "
                 f"({_range(g.growth(0.0) for g in groups)} here; pi / (pi - 1) after ReLU, Yang et al. 2019), "
                 f"less as the norms' shifts (beta) move the activations toward their linear part: shifts "
                 f"{'; '.join(tried)}")
    if not best[1]:
        return described + " (measured and undone: no shift brought the ratio nearer the band and held the forward)"
    kept = best[1]
    return described + (f"; the shifts {_range(kept.values())} kept, for a growth of "
                        f"{_range(g.growth(sum(kept[b] for b in g.betas)) for g in groups)} per activation")


def shiftable(plan: Plan) -> list[Group]:
    """The activations `shift_norms` may shift the input of: a named activation in
    SHIFTABLE that alone reads a norm with batch statistics, or a sum of such norms
    (through views), each read by nothing else and each shift set to zero by the solve."""
    graph = plan.graph
    groups = []
    for node in plan.signal_nodes():
        if node.kind != "elementwise" or len(node.inputs) != 1:
            continue
        activation = named_activation(graph, node, node.inputs[0])
        norms = _summed_norms(plan, node.inputs[0]) if activation and activation[0] in SHIFTABLE else None
        if activation is None or not norms:
            continue
        gains = [plan.params.get(norm.params.get("weight", "")) for norm in norms]
        square = sum(1.0 if g is None or g.value is None else g.value ** 2 for g in gains)
        groups.append(Group(tuple(norm.params["bias"] for norm in norms), activation, math.sqrt(square)))
    return groups


def _summed_norms(plan: Plan, index: int) -> list[Node] | None:
    """`summed_batch_norms` read by nothing else on the way, when the solve sets each
    norm's shift to zero; else None."""
    norms = summed_batch_norms(plan.graph, index, alone=True)
    for norm in norms or []:
        beta = norm.params.get("bias", "")
        record = plan.params.get(beta)
        uses = plan.graph.uses.get(beta, ())
        if record is None or record.rule != "constant" or record.value != 0.0 or len(uses) != 1:
            return None
    return norms


def _shifts(groups: list[Group], cut: float) -> dict[str, float]:
    """Each norm's shift for a growth of `cut` times its activation's at mean 0, the
    mean shared among the norms summed (SHIFT_MAX input stds where even that leaves
    the growth above)."""
    values = {}
    for group in groups:
        goal = cut * group.growth(0.0)
        lo, hi = 0.0, SHIFT_MAX * group.std
        if group.growth(hi) <= goal:
            for _ in range(BISECTIONS):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if group.growth(mid) > goal else (lo, mid)
        values.update(dict.fromkeys(group.betas, hi / len(group.betas)))
    return values


def _rank(ratio: float) -> tuple[float, float]:
    """How far a ratio lies outside the band, then from the aim AIM inside its edge (in log)."""
    return band_distance(ratio), abs(math.log(ratio * AIM) - 0.5 * math.log(GRADIENT_BAND))


def _achieved(groups: list[Group], values: dict[str, float]) -> float:
    """The geometric mean over the activations of their growth at their input's new mean
    over at 0."""
    logs = [math.log(g.growth(sum(values[b] for b in g.betas)) / g.growth(0.0)) for g in groups]
    return math.exp(sum(logs) / len(logs))


def _range(values: Iterable[float]) -> str:
    """'x' or 'x to y' for the smallest and largest of some values."""
    found = sorted(values)
    low, high = f"{found[0]:.3g}", f"{found[-1]:.3g}"
    return low if low == high else f"{low} to {high}"
