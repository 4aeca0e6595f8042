"""Spending the forward's room on the gradient, in networks without norms or residual
streams, and in networks whose norms use batch statistics.

A layer solved to keep its output's second moment multiplies the gradient's
second moment per element by fan_out / fan_in of its weights (He et al. 2015,
section 2.2), and max pooling routes each gradient to one input: through ReLU
layers and pooling the gradient's energy (its sum of squares over a layer's
output) stays about the same from layer to layer, so its std per element goes
as one over the square root of the number of elements. A CNN whose maps go
from 32 x 32 x 32 to 256 features has a first/last gradient ratio near
sqrt(256 / 32768) = 0.09, whatever one scale its layers share.

Scaling layer k's weights by c_k multiplies every later layer's output by
c_k and every earlier layer's gradient by c_k (ReLU, leaky ReLU, pooling
and the layers are positively homogeneous). So with output stds that rise
over the depth, s_1 = 1 at the first layer to s = T at the last hidden one
(and the output layer's kept), the gradient ratio is multiplied by T and the
activations' max/min by about T: the forward's flatness is traded for the
gradient's, as Glorot & Bengio (2010) trade fan_in against fan_out within a
layer. `tilt` takes T toward the band's edge (AIM inside it) as far as
ACT_ROOM allows the activations' max/min, the exponent of each layer's s_k
following where the measured gradient changes (log g_k between the first
and the last hidden layer's). `balance_gradient` measures, tilts, measures
again, and keeps the tilt only when it moved the ratio toward the band and
held the forward; a ratio left outside the band is named in a note.

Each layer's weights take its output's scale over its input's, and an input
moves with the layers before it as `scale_reach` finds: through an activation
that is not homogeneous by its degree, d log rms g(c z) / d log c at its
input's moments (tanh at unit variance passes 0.46 of a scale; taken whole,
each tanh layer undid more than its input's move and the tilt missed). A
layer read by a sigmoid gate of a product (squeeze-and-excitation) keeps its
output's scale: scaling it reshapes the gate, which no later factor undoes.
For activations that are not homogeneous the factors are first order: each
layer's output is then brought to its planned scale by a measured pass, layer
after layer, and the measured gradient decides. A ratio inside the band but
within TILT_MARGIN of its edge is tilted as well: another draw of the
gradient at the output reads it outside.

A norm with batch statistics divides its input's scale out: a layer read only
by such norms sets, by its output's std s_k, nothing downstream and its own
gradient as 1 / s_k (its reach stops at the norm, so each factor is its
own). The same tilt then trades the layers' output stds for the gradient
ratio exactly, whatever the activations: a BatchNorm chain without skips,
whose gradient grows by pi / (pi - 1) per norm after ReLU (Yang et al. 2019),
is brought toward the band as far as ACT_ROOM allows.

From shapes alone there is nothing to measure, and nothing is tilted:
`predicted_profile` carries the gradient's energy back through the plan
(a layer passes back nu_out / nu_in of it, a ReLU the share of its inputs
that are positive, or, where max pooling routes the gradient to the largest
of w elements, the chance that the largest is positive, over the offset a
channel's positions share), and `predicted_note` names a ratio far outside
the band.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import NamedTuple

import numpy as np
import torch

from . import moment_rules as rules
from .dataflow import ALPHA_DROPOUTS, HOMOGENEOUS, HOMOGENEOUS_ACTIVATIONS, LAYERS, Plan, norm_sets_scale
from .gradient_check import (EndCauses, Layer, end_cause, end_explained, gradient_ratio, in_band, measured_profile,
                             outside_band)
from .graph import ExampleInputs, Node
from .verdicts import GRADIENT_BAND

# the activations' max/min the tilt may spend (the bound the zoo and the issue check is 2)
ACT_ROOM = 1.8
# a tilt is kept when the measured activations' max/min stays within this
ACT_KEPT = 1.9
# the ratio is aimed this factor inside the band's edge
AIM = 1.25
# a ratio within the band but less than this factor inside its edge is tilted too: one draw of the
# gradient at the output is all a measure has, and another moves it (a 30-layer GELU MLP's ratio
# read 3.4 to 4.7 over the draws at one init)
TILT_MARGIN = 1.15
# a tilt smaller than this is not worth drawing the weights again
LEAST_TILT = 1.05
# the output layer's std may move this much under a tilt that is kept (none when homogeneous)
OUTPUT_HELD = 1.25
# the output layer's scale under a lift up of the hidden layers' (_lifted), within OUTPUT_HELD
LIFTED_OUTPUT = 1.2
BISECTIONS = 40
# a tilt whose factor on some weight lies beyond this either way is not drawn: the planned output
# scales move within ACT_ROOM, so only a first-order reach gone wrong asks for more (an exp of
# -((x - c) / h)^2, one-signed where the reach's Gaussian is not, asked for 3e41)
FACTOR_BOUND = 100.0
# a predicted ratio is named when it lies outside the band by more than this factor (the
# prediction misses the measured one by up to 1.4 on torchvision's AlexNet and SqueezeNet)
PREDICTION_SLACK = 2.0
# Gauss-Hermite nodes over a channel's shared offset (predicted_profile)
OFFSET_NODES = 24
# element counts this far apart explain a ratio outside the band by themselves (sqrt(16) = 4)
ELEMENTS_APART = 16
# the scale factor (and its inverse) at which an activation's degree is read
DEGREE_STEP = 1.05
# Gauss-Hermite nodes for an activation's degree
DEGREE_NODES = 48
# an activation of a layer's output, mostly its mean, with a degree below this is a gate (scale_reach)
GATE_DEGREE = 0.5


class Tilt(NamedTuple):
    """Per layer module, the factor on its weights' std and the planned factor on its
    output's std; T, the last hidden layer's output std over the first's; and the
    predicted activations' max/min and gradient ratio (exact for positively
    homogeneous chains)."""

    factors: dict[str, float]
    scales: dict[str, float]
    top: float
    act: float
    ratio: float


class Reach(NamedTuple):
    """`scale_reach`: per layer module, {layer module: w}, its input's log scale
    moving by w times that layer's output's; and the gates, layer modules read
    by a saturating function that their scale reshapes rather than scales."""

    sources: dict[str, dict[str, float]]
    gates: frozenset[str] = frozenset()


def tilt(layers: list[Layer], reach: Reach, scalable: Collection[str] | None = None) -> Tilt | None:
    """The tilt that moves a measured gradient ratio outside the band toward it,
    within ACT_ROOM; None when the ratio is in the band or no tilt of at least
    LEAST_TILT fits. `reach` (`scale_reach`): per layer module, how its input's
    log std moves with the log std of the layers it comes from, so its weights'
    factor is its output's scale over its input's; a gate keeps its output's.
    A layer not in `scalable` (None: all; an embedding, a recurrent layer) keeps its
    weights: its output moves only with its input."""
    ratio = gradient_ratio(layers)
    if band_distance(ratio, TILT_MARGIN) == 0.0:
        return None
    high = math.sqrt(GRADIENT_BAND)
    wanted = math.log((AIM / high if ratio < 1.0 else high / AIM) / ratio)
    hidden = layers[:-1]
    span = math.log(hidden[-1].grad / hidden[0].grad)
    # a layer no gradient reached in this pass (a block stochastic depth dropped, queries
    # of a softmax over one key) keeps its scale
    share = [min(max(math.log(layer.grad / hidden[0].grad) / span, 0.0), 1.0)
             if layer.grad > 0 and layer.module not in reach.gates else 0.0 for layer in hidden] + [0.0]
    share[-2] = 1.0

    def planned(t: float) -> dict[str, float]:
        """Per layer module, its output's log scale under the tilt t, in call order: a layer
        the tilt cannot scale moves with its input (DCN's embeddings, whose shares were the
        noise of their measured gradients, kept every other layer from being tilted)."""
        logs: dict[str, float] = {}
        for layer, u in zip(layers, share):
            logs[layer.module] = (t * wanted * u if scalable is None or layer.module in scalable
                                  else _reached(layer.module, logs, reach))
        return logs

    def act(t: float) -> float:
        logs = planned(t)
        moved = [math.log(layer.act) + logs[layer.module] for layer in layers if layer.act > 0]
        return math.exp(max(moved) - min(moved))

    if act(1.0) <= ACT_ROOM:
        t = 1.0
    else:
        lo, hi = 0.0, 1.0
        for _ in range(BISECTIONS):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if act(mid) <= ACT_ROOM else (lo, mid)
        t = lo
    if abs(t * wanted) < math.log(LEAST_TILT):
        return None
    logs = planned(t)
    # within float range: a factor beyond FACTOR_BOUND is refused whole (balance_gradient)
    factors = {module: math.exp(min(max(log_scale - _reached(module, logs, reach), -700.0), 700.0))
               for module, log_scale in logs.items()}
    top = math.exp(logs[layers[-2].module])
    return Tilt(factors, {module: math.exp(log_scale) for module, log_scale in logs.items()}, top, act(t),
                ratio * top)


def _reached(module: str, logs: dict[str, float], reach: Reach) -> float:
    """How far a layer's input moves in log scale with the layers it reads (`logs`)."""
    return sum(w * logs[m] for m, w in reach.sources.get(module, {}).items() if m in logs)


class Balanced(NamedTuple):
    """`balance_gradient`'s notes, and the last measured profile (None when the
    backward pass could not run)."""

    notes: list[str]
    layers: list[Layer] | None


def balance_gradient(model: torch.nn.Module, example_inputs: ExampleInputs, weights: dict[str, str],
                     reach: Reach, redraw: Callable[[dict[str, float], dict[str, float]], None],
                     cause: str | None = None, ends: EndCauses | None = None,
                     lift: bool = False) -> Balanced:
    """Measure the gradient on the example inputs and, when its first/last ratio is
    outside the band, tilt the layers' output stds (`tilt`): ``redraw({weight:
    factor}, {layer module: output scale})`` draws the named weights again at the
    measured pass's std times the factor, then brings each layer's output to its
    planned scale by a measured pass (the factors are first order where the
    activations are not homogeneous). The tilt is measured and undone (``redraw``
    with no factors and no scales) when it did not help. `weights` maps each
    solved layer module to its weight, `reach` how the layers it reads reach its
    input (`scale_reach`); `cause`: why a ratio left outside the band stays (by
    default, from the element counts), or, where an end of it is a layer in `ends`
    (`end_cause`), that. A ratio inside the band within TILT_MARGIN of its edge is
    tilted as well, and is left unnamed when the tilt does not help. With `lift` (a
    plain model whose activations are not homogeneous), a ratio the tilt leaves
    outside TILT_MARGIN is measured under lifts of the hidden layers' scales
    (`_lifted`), kept where one does better than the tilt. The notes name a ratio
    left outside the band, or a failed backward."""
    layers = measured_profile(model, example_inputs)
    if layers is None or isinstance(layers, str):
        return Balanced([layers] if isinstance(layers, str) else [], None)
    ratio = gradient_ratio(layers)
    if band_distance(ratio, TILT_MARGIN) == 0.0:
        return Balanced([], layers)

    def left(done: str, profile: list[Layer] = layers) -> Balanced:
        """A ratio the tilt left where it was, named when it is outside the band."""
        kept = gradient_ratio(profile)
        return Balanced([] if in_band(kept) else [_note(profile, kept, done, cause, ends)], profile)

    explained = end_explained(layers, ratio, ends)
    if explained is not None and in_band(explained[1]):
        # what sets an end's gradient whatever the scales (an SE gate's broadcast over 256
        # positions): a tilt would spend the forward's room on it (SE-ResNeXt: act 1.8 for
        # 0.117 -> 0.177) and leave the ratio outside
        return left("; the layers' scales are not tilted for a factor no scale changes")
    names = [layer.module for layer in layers]
    if len(set(names)) != len(names):
        return left("; a tilt of the layers' scales needs every layer it scales solved and called once")
    acts = [layer.act for layer in layers]
    plan = tilt(layers, reach, weights)   # a layer not in weights keeps its factor of 1
    tilted_draw = ({} if plan is None else {weights[m]: f for m, f in plan.factors.items() if m in weights},
                   {} if plan is None else {m: f for m, f in plan.scales.items() if m in weights})
    worst = max(tilted_draw[0].values(), key=lambda f: abs(math.log(f)), default=1.0)
    if plan is None:
        done = (f"; the activations' max/min is {max(acts) / min(acts):.3g} already, which leaves no room (up to "
                f"{ACT_ROOM:g}) to tilt the layers' scales for it")
        kept = layers
    elif abs(math.log(worst)) > math.log(FACTOR_BOUND):
        done = (f"; a tilt of the layers' scales would multiply a weight by {worst:.3g}, beyond x{FACTOR_BOUND:g} "
                "either way: the first-order reach of a layer's scale through the activations to the next is not "
                "to be trusted there, and the tilt was not drawn")
        kept = layers
    else:
        redraw(*tilted_draw)
        after = measured_profile(model, example_inputs)
        if isinstance(after, list) and _closer_to_band(layers, after):
            tilted = [layer.act for layer in after]
            done = (f", from {ratio:.3g} before the solved layers' output std was tilted from x1 at {names[0]} to "
                    f"x{plan.top:.3g} at {names[-2]}, which spent the forward's room (the activations' max/min is "
                    f"now {max(tilted) / min(tilted):.3g}, up to {ACT_ROOM:g} allowed)")
            kept = after
        else:
            redraw({}, {})
            done = ("; a tilt of the layers' scales was measured and undone: it moved the output's std or brought "
                    "the ratio no closer (activations that are not positively homogeneous)")
            kept = layers
    if not lift or band_distance(gradient_ratio(kept), TILT_MARGIN) == 0.0:
        return left(done, kept)
    lifted = _lifted(model, example_inputs, weights, redraw, layers, kept)
    if lifted is None:   # the tilt's state, or the untilted one, is drawn again
        redraw(*(tilted_draw if kept is not layers else ({}, {})))
        return left(done, kept)
    profile, hidden = lifted
    return left(f", from {ratio:.3g} before the hidden layers' output stds were lifted x{hidden:.3g} together over "
                f"the output layer's (the activations' max/min is now "
                f"{max(x.act for x in profile) / min(x.act for x in profile):.3g})", profile)


def _lifted(model: torch.nn.Module, example_inputs: ExampleInputs, weights: dict[str, str],
            redraw: Callable[[dict[str, float], dict[str, float]], None], layers: list[Layer],
            best: list[Layer]) -> tuple[list[Layer], float] | None:
    """Where the activations are not homogeneous, the hidden layers' output stds moved
    together over the output layer's: their gradient factor per layer depends on the
    scale they work at (a 30-layer GELU MLP's first/last ratio measured 6.0, 4.2, 2.4
    and 1.7 with every layer at std 0.5, 1, 2 and 4; tanh's goes the other way), which
    a tilt from the first layer's scale leaves out. From the untilted state `layers`
    measured, a lift up (the hidden layers by ACT_ROOM * LIFTED_OUTPUT, the output layer
    by LIFTED_OUTPUT) and one down (the hidden layers by 1 / ACT_ROOM) are measured; the
    one that brings the ratio closer to the band than `best` (the tilt's), by LEAST_TILT
    at least, and holds the forward is kept, and drawn. Returns its profile and the
    hidden layers' lift, or None when neither is kept (the caller draws its state again)."""
    output = layers[-1].module
    first = weights.get(layers[0].module)
    found: tuple[list[Layer], dict[str, float], dict[str, float], float] | None = None
    drawn = 1.0
    for hidden, out in ((ACT_ROOM * LIFTED_OUTPUT, LIFTED_OUTPUT), (1.0 / ACT_ROOM, 1.0)):
        # the first layer's weights take the lift, the output layer's its input's back; the measured
        # pass then brings every layer's output to its scale
        factors = {**({first: hidden} if first is not None else {}),
                   **({weights[output]: out / hidden} if output in weights else {})}
        scales = {m: out if m == output else hidden for m in weights}
        redraw(factors, scales)
        drawn = hidden
        measured = measured_profile(model, example_inputs)
        # by LEAST_TILT at least: a gated MLP with no stable choice moved 4.8e3 -> 4.6e3 for act 1.8
        if (isinstance(measured, list) and forward_held(layers, measured)
                and comes_closer(gradient_ratio(best), gradient_ratio(measured), LEAST_TILT)):
            best, found = measured, (measured, factors, scales, hidden)
    if found is None:
        return None
    if drawn != found[3]:
        redraw(found[1], found[2])
    return found[0], found[3]


def scale_reach(plan: Plan) -> Reach:
    """For each layer module of the forward pass (its first call), {layer module: w}:
    its input's log scale moves by w times that layer's output's log scale, to
    first order, with std and root mean square taken alike ({} when it reads the
    inputs, or only what norms that set the scale give it); and the gates.

    A layer reaches its own output whole; a view, pooling or mean passes its
    input's; a product adds its factors'; a quotient takes the divisor's away; a
    sum averages its terms' by their share of its second moment, a concatenation
    its parts' by their share of its energy; a shift by a constant takes the share
    of its output's second moment that moves; an activation multiplies by its
    degree d log rms g(c z) / d log c at its input's moments (1 for ReLU, near 0 for
    a sigmoid gate, whose output's mean the factor scarcely moves). Anything else
    (attention, a norm that sets the scale) stops it. A layer whose output goes
    through an activation of degree below GATE_DEGREE, one whose output is mostly
    its mean (a sigmoid, not a tanh), into a product with another signal (a
    squeeze-and-excitation) is a gate: its scale changes the gate's shape, which
    no factor after it undoes."""
    nodes, moments = plan.graph.nodes, plan.moments
    reach: dict[int, dict[str, float]] = {}
    found: dict[str, dict[str, float]] = {}
    gating: dict[int, list[str]] = {}   # an activation that may gate -> the layers it reads
    gates: set[str] = set()
    for node in plan.signal_nodes():
        if node.kind in LAYERS and node.module and node.module not in found and node.inputs:
            found[node.module] = dict(reach.get(node.inputs[0], {}))
        reach[node.index], degree = _reach(node, nodes, moments, reach)
        out = moments.get(node.index)
        if degree < GATE_DEGREE and out is not None and out.mean ** 2 > 0.5 * out.second:
            gating[node.index] = [m for m, w in reach.get(node.inputs[0], {}).items() if w > 1.0 - GATE_DEGREE]
        elif node.kind == "view" and node.inputs[0] in gating:
            gating[node.index] = gating[node.inputs[0]]
        elif node.kind == "mul" and len(node.inputs) == 2:
            gates.update(m for i in node.inputs for m in gating.get(i, []))
    return Reach(found, frozenset(gates))


def _reach(node: Node, nodes: list[Node], moments: dict[int, rules.Moments | None],
           reach: dict[int, dict[str, float]]) -> tuple[dict[str, float], float]:
    """`scale_reach`'s weights for one node's output, from its inputs', and the
    degree of an activation (1 for any other node)."""
    if node.kind in LAYERS:
        return ({node.module: 1.0} if node.module else {}), 1.0
    if not node.inputs or node.kind == "norm" and norm_sets_scale(node):
        return {}, 1.0
    parts = [reach.get(i, {}) for i in node.inputs]
    if node.kind in ("add", "sub", "cat"):
        shares = [_share(moments.get(i), nodes[i].shape if node.kind == "cat" else ()) for i in node.inputs]
        total = sum(shares)
        return (_combined(parts, [s / total for s in shares]) if total > 0 else {}), 1.0
    if node.kind in HOMOGENEOUS:   # a view, a pooling or a mean passes its one signal input's scale whole
        return parts[0], 1.0
    if node.kind in ("mul", "matmul"):
        return _combined(parts, [1.0] * len(parts)), 1.0
    if node.kind == "div" and len(node.inputs) == 2:
        return _combined(parts, [1.0, -1.0]), 1.0
    out, x = moments.get(node.index), moments.get(node.inputs[0])
    if len(node.inputs) != 1 or out is None or x is None or out.second <= 0:
        return {}, 1.0
    if node.kind == "shift":
        return _combined(parts, [(x.second + (out.mean - x.mean) * x.mean) / out.second]), 1.0
    if node.kind in ("elementwise", "pow") and node.replay is not None:
        homogeneous = node.attrs.get("op") in HOMOGENEOUS_ACTIVATIONS or node.attrs.get("op") == "prelu"
        degree = 1.0 if homogeneous else _degree(node.replay, x)
        return _combined(parts, [degree]), degree
    return {}, 1.0


def _combined(parts: list[dict[str, float]], weights: list[float]) -> dict[str, float]:
    """The sum of the weights' multiples of the parts."""
    out: dict[str, float] = {}
    for part, w in zip(parts, weights):
        for module, v in part.items():
            out[module] = out.get(module, 0.0) + w * v
    return out


def _share(m: rules.Moments | None, shape: tuple[int, ...]) -> float:
    """A part's second moment times its element count (`shape`; () for a term of a sum)."""
    return 0.0 if m is None else max(m.second, 0.0) * math.prod(shape)


def _degree(g: Callable[[torch.Tensor], torch.Tensor], x: rules.Moments) -> float:
    """d log sqrt(E g(c z)^2) / d log c at c = 1, z ~ N(x.mean, x.variance), by central
    difference at DEGREE_STEP over Gauss-Hermite nodes; 0 where g gives zero."""
    z, w = np.polynomial.hermite_e.hermegauss(DEGREE_NODES)
    values = torch.as_tensor(x.mean + math.sqrt(max(x.variance, 0.0)) * z, dtype=torch.float64)
    weights = torch.as_tensor(w, dtype=torch.float64)
    with torch.no_grad():
        seconds = [float(torch.sum(weights * g(c * values).to(torch.float64) ** 2))
                   for c in (DEGREE_STEP, 1.0 / DEGREE_STEP)]
    if min(seconds) <= 0.0 or not all(math.isfinite(v) for v in seconds):
        return 0.0
    return math.log(seconds[0] / seconds[1]) / (4.0 * math.log(DEGREE_STEP))


def _note(layers: list[Layer], ratio: float, done: str, cause: str | None = None,
          ends: EndCauses | None = None) -> str:
    """A measured ratio outside the band, what was done about it, and why it stays."""
    first, last = layers[0], layers[-2]
    cause = end_cause(layers, ratio, ends) or cause
    if cause is not None:
        return f"{outside_band(layers, ratio)}{done}. {cause}"
    if max(first.elements, last.elements) >= ELEMENTS_APART * min(first.elements, last.elements):
        why = _energy_kept(first, last)
    else:
        why = ("the layers' outputs have about as many elements, so the activations' slopes move the gradient "
               "where the forward is held (each activation's verdict gives chi_1, its factor per layer)")
    return f"{outside_band(layers, ratio)}{done}. The cause: {why}"


def _closer_to_band(before: list[Layer], after: list[Layer]) -> bool:
    """Whether a measured tilt moved the ratio toward the band and held the forward."""
    return forward_held(before, after) and comes_closer(gradient_ratio(before), gradient_ratio(after))


def comes_closer(before: float, after: float, by: float = 1.0) -> bool:
    """Whether the gradient ratio `after` lies closer to the band narrowed by TILT_MARGIN
    than `before` does, by the factor `by` at least."""
    return band_distance(after, TILT_MARGIN) < band_distance(before, TILT_MARGIN) - math.log(by)


def forward_held(before: list[Layer], after: list[Layer]) -> bool:
    """Whether a measured change (a tilt, norm shifts) kept the activations' max/min
    within ACT_KEPT and the output layer's std within OUTPUT_HELD of `before`'s."""
    if [layer.module for layer in before] != [layer.module for layer in after]:
        return False
    acts = [layer.act for layer in after]
    held = abs(math.log(after[-1].act / before[-1].act)) <= math.log(OUTPUT_HELD)
    return held and max(acts) <= ACT_KEPT * min(acts)


def band_distance(ratio: float, margin: float = 1.0) -> float:
    """How far, in log, a gradient ratio lies outside the band narrowed by `margin` at
    each edge (0 inside)."""
    return max(0.0, abs(math.log(ratio)) - 0.5 * math.log(GRADIENT_BAND) + math.log(margin))


def predicted_note(plan: Plan) -> str | None:
    """From shapes alone (no pass to measure or tilt): a note when the gradient ratio of
    `predicted_profile` lies outside the band by more than PREDICTION_SLACK, else None."""
    layers = predicted_profile(plan)
    if layers is None:
        return None
    ratio = gradient_ratio(layers)
    high = math.sqrt(GRADIENT_BAND) * PREDICTION_SLACK
    if 1.0 / high <= ratio <= high:
        return None
    first, last = layers[0], layers[-2]
    return (f"predicted from the shapes (no pass on real inputs measures it), the gradient std at {first.module} is "
            f"about {ratio:.2g} times the one at {last.module}: {_energy_kept(first, last)}. With real example "
            "inputs the layers' scales are tilted to move it toward [1/4, 4] within the forward's room")


def _energy_kept(first: Layer, last: Layer) -> str:
    """Why the gradient's std per element follows the element counts of a plain model."""
    return ("without norms or residual streams, an init that keeps the forward's second moment keeps the "
            "gradient's energy through ReLU layers and pooling, so the gradient's std per element falls where a "
            f"layer's output has more elements ({first.elements} per example at {first.module}, "
            f"{last.elements} at {last.module})")


def predicted_profile(plan: Plan) -> list[Layer] | None:
    """The weight layers of a plain plan (`Plan.plain`) whose activations are ReLU or
    leaky ReLU, in call order, with the output std its moments give and the gradient
    std the backward energy gives: N(0, 1) per element at the outputs, carried back
    node by node (a layer passes back nu_out / nu_in of its output's energy, an
    activation its E[g'^2], max pooling all, average pooling over w positions 1/w, a
    concatenation each part its share). None for any other node or a layer called
    twice, and when the plan is not plain."""
    if not plan.plain():
        return None
    nodes, moments = plan.graph.nodes, plan.moments
    energy: dict[int, float] = {}
    # the part of a node's energy that max pooling routed to the largest of w elements: a
    # ReLU before it passes that part where the largest is positive, 1 - 2^-w of it, not half
    routed: dict[int, list[tuple[float, int]]] = {}
    for out in plan.graph.outputs:
        energy[out] = energy.get(out, 0.0) + math.prod(nodes[out].shape)
    for node in reversed(nodes):
        e = energy.get(node.index)
        if not e or node.kind in ("input", "param", "constant"):
            continue
        passed = _passed_back(node, plan, e, routed.get(node.index, []))
        if passed is None:
            return None
        for index, part in passed:
            energy[index] = energy.get(index, 0.0) + part
        arrived = routed.get(node.index, [])
        if arrived and node.kind in ("view", "cat"):   # the routed parts go on to the elements they came from
            size = math.prod(node.shape)
            for index in node.inputs if node.kind == "cat" else node.inputs[:1]:
                share = math.prod(nodes[index].shape) / size if node.kind == "cat" else 1.0
                routed.setdefault(index, []).extend((part * share, w) for part, w in arrived)
        if node.kind in ("max_pool", "adaptive_max_pool"):
            window = (math.prod(node.attrs["kernel_size"]) if node.kind == "max_pool"
                      else max(math.prod(nodes[node.inputs[0]].shape) // max(math.prod(node.shape), 1), 1))
            routed.setdefault(node.inputs[0], []).append((e, window))
    layers: list[Layer] = []
    for node in nodes:
        if node.kind not in LAYERS:
            continue
        m = moments.get(node.index)
        if not node.module or any(layer.module == node.module for layer in layers) or m is None:
            return None
        count = math.prod(node.shape)
        per_example = count // max(node.shape[0], 1) if len(node.shape) > 1 else count
        layers.append(Layer(node.module, math.sqrt(max(m.second - m.mean ** 2, 0.0)),
                            math.sqrt(energy.get(node.index, 0.0) / count), per_example))
    if len(layers) < 3 or not all(layer.act > 0 and layer.grad > 0 for layer in layers):
        return None
    return layers


def _passed_back(node: Node, plan: Plan, e: float,
                 routed: list[tuple[float, int]]) -> list[tuple[int, float]] | None:
    """The energy `e` of the gradient at `node`'s output, shared among its inputs, or
    None for a node outside the rules of `predicted_profile`. `routed`: the parts of e
    that max pooling over w elements sent to the largest, as (energy, w)."""
    nodes, moments = plan.graph.nodes, plan.moments
    first = node.inputs[0] if node.inputs else None
    kind, a = node.kind, node.attrs
    if first is None:
        return None
    if kind in LAYERS:
        out, x = moments.get(node.index), moments.get(first)
        return None if out is None or x is None or x.second <= 0 else [(first, e * out.second / x.second)]
    if kind == "elementwise" and a.get("op") in ("relu", "leaky_relu"):
        x = moments.get(first)
        if x is None or x.second - x.mean ** 2 <= 0:
            return None
        slope = float(a.get("negative_slope", 0.01)) if a.get("op") == "leaky_relu" else 0.0
        rest = e - sum(part for part, _ in routed)
        positive = _positive(x.mean, x.second - x.mean ** 2, 1)
        passed = rest * (positive + slope * slope * (1.0 - positive))
        kappa = min(max(plan.common.get(first, x.mean ** 2), x.mean ** 2), x.second)
        for part, w in routed:
            p = _positive(x.mean, x.second - x.mean ** 2, w, kappa - x.mean ** 2)
            passed += part * (p + slope * slope * (1.0 - p))
        return [(first, passed)]
    if kind in ("max_pool", "adaptive_max_pool", "view", "shift", "log_softmax"):   # log_softmax: all but 1/n
        return [(first, e)]
    if kind == "dropout":
        p = float(a.get("p", 0.5)) if a.get("training", True) else 0.0
        if a.get("op") in ALPHA_DROPOUTS:   # the gradient passes where kept, times a: a^2 (1 - p) of its energy
            return [(first, e * rules.alpha_dropout_affine(p)[0] ** 2 * (1.0 - p))]
        return [(first, e / (1.0 - p))] if p < 1.0 else None
    if kind == "scale":
        return [(first, e * float(a["scalar"]) ** 2)]
    size_in, size_out = math.prod(nodes[first].shape), math.prod(node.shape)
    if kind == "avg_pool":
        return [(first, e / math.prod(a["kernel_size"]))]
    if kind in ("adaptive_avg_pool", "mean"):   # an average of w inputs passes 1/w; a copy passes all
        return [(first, e * min(size_out / size_in, 1.0))]
    if kind == "sum":
        return [(first, e * size_in / size_out)]
    if kind == "cumsum":   # the j-th of n inputs gets the sum of the n - j + 1 gradients after it
        return [(first, e * (node.shape[a["dim"]] + 1) / 2 if node.shape else e)]
    if kind == "cat":
        return [(i, e * math.prod(nodes[i].shape) / size_out) for i in node.inputs]
    return None


def _positive(mean: float, variance: float, w: int, shared: float = 0.0) -> float:
    """The probability that the largest of w Gaussian elements of this mean and variance
    is positive, when a part of variance `shared` is common to them (a channel's offset
    at every position: Gauss-Hermite quadrature over it)."""
    own = max(variance - shared, 1e-12)
    if shared <= 0.0:
        return 1.0 - (0.5 * math.erfc(mean / math.sqrt(2.0 * own))) ** w
    z, weights = np.polynomial.hermite_e.hermegauss(OFFSET_NODES)
    negative = np.array([0.5 * math.erfc((mean + math.sqrt(shared) * t) / math.sqrt(2.0 * own)) for t in z])
    return float(1.0 - np.sum(weights * negative ** w) / math.sqrt(2.0 * math.pi))
