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
held the forward (for activations that are not homogeneous, such as tanh,
the trade is not exact); a ratio left outside the band is named in a note.

A norm with batch statistics divides its input's scale out: a layer read only
by such norms sets, by its output's std s_k, nothing downstream and its own
gradient as 1 / s_k (its sources stop at the norm, so each factor is its
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
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from . import moment_rules as rules
from .dataflow import ALPHA_DROPOUTS, LAYERS, Plan
from .gradient_check import Layer, gradient_ratio, in_band, measured_profile, outside_band
from .graph import ExampleInputs, Node
from .verdicts import GRADIENT_BAND

# the activations' max/min the tilt may spend (the bound the zoo and the issue check is 2)
ACT_ROOM = 1.8
# a tilt is kept when the measured activations' max/min stays within this
ACT_KEPT = 1.9
# the ratio is aimed this factor inside the band's edge
AIM = 1.25
# a tilt smaller than this is not worth drawing the weights again
LEAST_TILT = 1.05
# the output layer's std may move this much under a tilt that is kept (none when homogeneous)
OUTPUT_HELD = 1.25
BISECTIONS = 40
# a predicted ratio is named when it lies outside the band by more than this factor (the
# prediction misses the measured one by up to 1.4 on torchvision's AlexNet and SqueezeNet)
PREDICTION_SLACK = 2.0
# Gauss-Hermite nodes over a channel's shared offset (predicted_profile)
OFFSET_NODES = 24
# element counts this far apart explain a ratio outside the band by themselves (sqrt(16) = 4)
ELEMENTS_APART = 16


class Tilt(NamedTuple):
    """Per layer module, the factor on its weights' std; T, the last hidden
    layer's output std over the first's; and the predicted activations' max/min
    and gradient ratio (exact for positively homogeneous chains)."""

    factors: dict[str, float]
    top: float
    act: float
    ratio: float


def tilt(layers: list[Layer], sources: dict[str, list[str]]) -> Tilt | None:
    """The tilt that moves a measured gradient ratio outside the band toward it,
    within ACT_ROOM; None when the ratio is in the band or no tilt of at least
    LEAST_TILT fits. `sources`: per layer module, the layer modules its input
    comes from (its weights' factor is its output's scale over theirs; over
    several, as a concatenation of them, their geometric mean)."""
    ratio = gradient_ratio(layers)
    if in_band(ratio):
        return None
    high = math.sqrt(GRADIENT_BAND)
    wanted = math.log((AIM / high if ratio < 1.0 else high / AIM) / ratio)
    hidden = layers[:-1]
    span = math.log(hidden[-1].grad / hidden[0].grad)
    # a layer no gradient reached in this pass (a block stochastic depth dropped, queries
    # of a softmax over one key) keeps its scale
    share = [min(max(math.log(layer.grad / hidden[0].grad) / span, 0.0), 1.0) if layer.grad > 0 else 0.0
             for layer in hidden] + [0.0]
    share[-2] = 1.0

    def act(t: float) -> float:
        logs = [math.log(layer.act) + t * wanted * u for layer, u in zip(layers, share) if layer.act > 0]
        return math.exp(max(logs) - min(logs))

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
    logs = {layer.module: t * wanted * u for layer, u in zip(layers, share)}
    factors = {}
    for module, log_scale in logs.items():
        before = [logs[m] for m in sources.get(module, []) if m in logs]
        factors[module] = math.exp(log_scale - (sum(before) / len(before) if before else 0.0))
    top = math.exp(logs[layers[-2].module])
    return Tilt(factors, top, act(t), ratio * top)


def balance_gradient(model: torch.nn.Module, example_inputs: ExampleInputs, weights: dict[str, str],
                     sources: dict[str, list[str]], redraw: Callable[[dict[str, float]], None],
                     cause: str | None = None) -> list[str]:
    """Measure the gradient on the example inputs and, when its first/last ratio is
    outside the band, tilt the layers' output stds (`tilt`): ``redraw({weight:
    factor})`` draws the named weights again at the measured pass's std times
    the factor. The tilt is measured and undone (``redraw`` with factor 1) when
    it did not help. `weights` maps each solved layer module to its weight,
    `sources` each to the layer modules its input comes from; `cause`: why a ratio
    left outside the band stays (by default, from the element counts).
    Returns the notes: a ratio left outside the band, or a failed backward."""
    layers = measured_profile(model, example_inputs)
    if layers is None or isinstance(layers, str):
        return [layers] if isinstance(layers, str) else []
    ratio = gradient_ratio(layers)
    if in_band(ratio):
        return []
    names = [layer.module for layer in layers]
    acts = [layer.act for layer in layers]
    plan = tilt(layers, sources)
    if len(set(names)) != len(names) or plan is not None and not all(
            m in weights or abs(f - 1.0) < 1e-12 for m, f in plan.factors.items()):
        done = "; a tilt of the layers' scales needs every layer it scales solved and called once"
        return [_note(layers, ratio, done, cause)]
    if plan is None:
        done = (f"; the activations' max/min is {max(acts) / min(acts):.3g} already, which leaves no room (up to "
                f"{ACT_ROOM:g}) to tilt the layers' scales for it")
        return [_note(layers, ratio, done, cause)]
    scaled = {weights[m]: f for m, f in plan.factors.items() if m in weights}
    redraw(scaled)
    after = measured_profile(model, example_inputs)
    if not (isinstance(after, list) and _better(layers, after)):
        redraw(dict.fromkeys(scaled, 1.0))
        done = ("; a tilt of the layers' scales was measured and undone: it moved the output's std or brought the "
                "ratio no closer (activations that are not positively homogeneous)")
        return [_note(layers, ratio, done, cause)]
    tilted = [layer.act for layer in after]
    if in_band(gradient_ratio(after)):
        return []
    done = (f", from {ratio:.3g} before the solved layers' output std was tilted from x1 at {names[0]} to "
            f"x{plan.top:.3g} at {names[-2]}, which spent the forward's room (the activations' max/min is now "
            f"{max(tilted) / min(tilted):.3g}, up to {ACT_ROOM:g} allowed)")
    return [_note(after, gradient_ratio(after), done, cause)]


def _note(layers: list[Layer], ratio: float, done: str, cause: str | None = None) -> str:
    """A measured ratio outside the band, what was done about it, and why it stays."""
    first, last = layers[0], layers[-2]
    if cause is not None:
        return f"{outside_band(layers, ratio)}{done}. {cause}"
    if max(first.elements, last.elements) >= ELEMENTS_APART * min(first.elements, last.elements):
        why = _energy_kept(first, last)
    else:
        why = ("the layers' outputs have about as many elements, so the activations' slopes move the gradient "
               "where the forward is held (each activation's verdict gives chi_1, its factor per layer)")
    return f"{outside_band(layers, ratio)}{done}. The cause: {why}"


def _better(before: list[Layer], after: list[Layer]) -> bool:
    """Whether a measured tilt moved the ratio toward the band, kept the activations'
    max/min within ACT_KEPT and the output layer's std within OUTPUT_HELD."""
    if [layer.module for layer in before] != [layer.module for layer in after]:
        return False
    acts = [layer.act for layer in after]
    held = abs(math.log(after[-1].act / before[-1].act)) <= math.log(OUTPUT_HELD)
    return held and max(acts) <= ACT_KEPT * min(acts) and _distance(gradient_ratio(after)) < _distance(
        gradient_ratio(before))


def _distance(ratio: float) -> float:
    """How far, in log, a gradient ratio lies outside the band (0 inside)."""
    return max(0.0, abs(math.log(ratio)) - 0.5 * math.log(GRADIENT_BAND))


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
