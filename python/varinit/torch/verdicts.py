"""The verdict on each activation of a model after the graph-aware solve:
whether any initialization can keep its signal over the model's depth.

chi (chi_1 of Poole et al. 2016 at the point the solve puts the activation) is
the per-layer factor of the gradient's second moment; the slope
d log E[g^2] / d log q is the per-layer factor of a relative error of the
forward second moment. A slope of UNSTABLE_SLOPE or more (relu^2: 2; a gate
times a value without normalization: about 2) has no stable choice; chi that
moves gradients out of GRADIENT_BAND over the depth (tanh: 1.178 per layer)
is a trade-off no scale escapes.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple
from dataclasses import dataclass

if TYPE_CHECKING:
    from .graph import Graph

# A second moment growing faster than q^1.5 cannot be held by any scale (relu^2: q^2).
UNSTABLE_SLOPE = 1.5
# Over the depth, gradients' second moment may change by this factor either way (std x4).
GRADIENT_BAND = 16.0
# Without a measured pass, a finite-width error of the second moment that may grow more than this
# over the depth is named (each layer's draw misses its expected moment by about sqrt(2 / width)).
DRIFT_NOTED = 2.0
# ... and so is a spread of the layers' log second moments above this (std x1.4 at one sd)
SPREAD_NOTED = 0.7


@dataclass
class Verdict:
    """One activation's stability at the point the solve puts it.

    chi: the per-layer factor of the gradient's second moment (chi_1 of Poole
    et al. 2016 at this point); slope: d log E[g^2] / d log q, the factor by
    which a relative error of the second moment grows per layer; depth: how
    many times the model applies it in sequence; gradient_target: on a trade-off,
    the `target` of init_module at which its chi_1 keeps the gradients in band
    (None where there is none, or no trade-off)."""

    activation: str
    chi: float
    slope: float
    depth: int
    healthy: bool
    message: str
    gradient_target: float | None = None


class Tally(NamedTuple):
    """Per label: the largest chi_1 and slope, and the (residual branch, layer) pairs it
    follows."""

    chi: float
    slope: float
    layers: frozenset[tuple[object, int]]

    def depth(self, ancestors: Sequence[int]) -> int:
        """How many of them a gradient passes in series: the longest chain of their layers
        (node indices; `ancestors`: per node, the bits of the nodes it is computed from)
        each computed from the one before, within one residual branch (the stream passes
        the gradient around each branch) or on the path outside every branch. Layers side
        by side (the two calls of a siamese network's tower, an Inception block's branches)
        are not in series."""
        per_branch: dict[object, list[int]] = {}
        for branch, layer in self.layers:
            per_branch.setdefault(branch, []).append(layer)
        deepest = 0
        for layers in per_branch.values():
            chain: dict[int, int] = {}
            for layer in sorted(layers):
                chain[layer] = 1 + max((n for j, n in chain.items() if (ancestors[layer] >> j) & 1), default=0)
            deepest = max(deepest, max(chain.values()))
        return deepest


def tally(by_label: dict[str, Tally], label: str, chi: float, slope: float, layer: int,
          branch: object = None) -> None:
    """Count one activation (or product) after `layer`, inside residual `branch` (None: on no
    branch): the same layer's output stepped through it again and again (a recurrence
    unrolled in forward) counts once."""
    entry = by_label.get(label)
    key = (branch, layer)
    by_label[label] = Tally(chi, slope, frozenset([key])) if entry is None else Tally(
        max(entry.chi, chi), max(entry.slope, slope), entry.layers | {key})


def operand_label(graph: Graph, index: int) -> str:
    node = graph.nodes[index]
    while node.kind == "view" and node.inputs:
        node = graph.nodes[node.inputs[0]]
    label: str = node.attrs.get("op", node.kind) if node.kind == "elementwise" else node.kind
    return label


def _power(base: float, depth: int) -> float:
    """base ** depth, infinite where it overflows (an op repeated at each step of a long
    unrolled recurrence)."""
    try:
        return float(base) ** depth
    except OverflowError:
        return math.inf


def in_gradient_band(chi: float, depth: int) -> bool:
    """Whether chi_1 per layer keeps the gradient's second moment within GRADIENT_BAND
    over `depth` layers in series."""
    return 1 / GRADIENT_BAND <= _power(chi, depth) <= GRADIENT_BAND


def gradient_keeping_scale(chi_at: Callable[[float], float], chi: float, depth: int) -> tuple[float, float] | None:
    """(s, chi_1 there): the factor on the activation's input variance nearest 1, among
    powers of 2, at which its chi_1 (`chi_at(s)`; `chi` at s = 1) keeps the gradient in
    GRADIENT_BAND over `depth` layers: smaller inputs where chi_1 > 1 (toward the
    activation's linear part at 0: tanh, sin(30 x)), larger where chi_1 < 1. None when
    no such power of 2 within 2^-30 .. 2^20 exists (ReLU's chi_1 is the same at every
    scale)."""
    powers = range(-1, -31, -1) if chi > 1 else range(1, 21)
    for k in powers:
        s = 2.0 ** k
        c = chi_at(s)
        if math.isfinite(c) and in_gradient_band(c, depth):
            return s, c
    return None


def verdict(label: str, chi: float, slope: float, depth: int,
            keeping: Callable[[], tuple[float, float] | None] | None = None) -> Verdict:
    """The Verdict of an activation (`label`) with chi_1 `chi` and slope `slope`, applied
    `depth` times in series; on a trade-off, `keeping()` gives (the target, chi_1 there),
    the layer outputs' second moment at which gradients stay in the band, or None."""
    growth = _power(chi, depth)
    if slope >= UNSTABLE_SLOPE:
        return Verdict(label, chi, slope, depth, False,
                       f"{label}: no stable choice: E[g^2] grows like q^{slope:.2f}, so a relative error of "
                       f"the second moment grows x{slope:.2f} per layer (x{_power(slope, depth):.3g} over {depth}); "
                       "no initialization holds it over depth: use fewer layers, a normalization, or a "
                       "degree-one activation")
    if not in_gradient_band(chi, depth):
        kept = None if keeping is None else keeping()
        scale = "" if kept is None else (
            f"; at layer outputs of second moment {kept[0]:.3g} (init_module(..., target={kept[0]:.3g})) "
            f"chi_1 = {kept[1]:.4g} and the gradients stay within x{math.sqrt(GRADIENT_BAND):g}")
        return Verdict(label, chi, slope, depth, False,
                       f"{label}: trade-off: at the variance-preserving scale chi_1 = {chi:.4g}, so gradients "
                       f"change x{math.sqrt(growth):.3g} in std over its {depth} layers; no scale keeps both the "
                       f"target's forward variance and the gradients{scale}",
                       None if kept is None else kept[0])
    return Verdict(label, chi, slope, depth, True,
                   f"{label}: chi_1 = {chi:.4g}, gradients change x{math.sqrt(growth):.3g} in std over "
                   f"{depth} layers; forward error factor {slope:.3g} per layer")


def region_label(graph: Graph, source: int, end: int) -> str:
    ops: list[str] = []
    seen: set[int] = set()
    stack = [end]
    while stack:
        index = stack.pop()
        if index in seen or index == source:
            continue
        seen.add(index)
        node = graph.nodes[index]
        ops.append(node.attrs.get("op", node.kind) if node.kind == "elementwise" else node.kind)
        stack.extend(node.inputs)
    return "+".join(reversed(ops)) or graph.nodes[end].target


def uncorrected_drift(drift: dict[str, float], spread: tuple[float, str]) -> list[str]:
    """Notes for what one draw's finite width moves when no measured pass corrects
    it (meta example inputs, measure=False, a forward that sees shards): each
    activation after which a layer's error can grow past DRIFT_NOTED before a
    norm resets it (dataflow's Plan.drift); else, when the layers are narrow
    enough that their errors add up past SPREAD_NOTED (Plan.spread), that."""
    notes = [f"{label}: an error of one layer's second moment can grow x{growth:.3g} through the layers "
             "after it before a norm resets it, and without a measured pass (real example inputs) nothing "
             "corrects the few percent each finite-width draw misses by: layer stds may drift"
             for label, growth in drift.items() if growth > DRIFT_NOTED]
    sd, where = spread
    if not notes and sd > SPREAD_NOTED:
        notes.append(f"layers of few units (each draw misses its expected second moment by about "
                     f"sqrt(2 / units)) add up without a norm between them: at {where} one draw's std may "
                     f"sit a factor {math.exp(sd / 2):.2g} from the solve's (one standard deviation), and "
                     "without a measured pass (real example inputs) nothing corrects it: layer stds may drift")
    return notes
