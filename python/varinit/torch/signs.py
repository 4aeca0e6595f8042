"""Which traced values keep one sign, read off the graph: the sign an elementwise
region's function keeps over its input's sign, through products and views.

A function bounded over the one sign its input keeps is a factor, not an
activation of the signal: a state-space model's decay exp(Δ A) with Δ =
softplus(·) ≥ 0 and A = −exp(A_log) ≤ 0 (Gu & Dao 2023) lies in (0, 1],
where a Gaussian with the same moments would reach exp of large positive
values. Its moments are taken over a Gamma law of the input's magnitude
with the input's mean and variance, a law on one side of 0, and the
verdicts leave it out.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from .graph import Graph
from .moment_rules import Moments

# magnitudes an input of one sign is evaluated at, and 0
GRID = np.concatenate([[0.0], np.logspace(-6, 3, 64)])
# named activations whose values are never negative
NONNEGATIVE = frozenset({"relu", "relu6", "sigmoid", "hardsigmoid"})
# named activations whose values lie in [0, 1]
UNIT_INTERVAL = frozenset({"sigmoid", "hardsigmoid"})
# a region whose values over its input's sign stay within this is bounded
BOUND = 1e3

Region = tuple[int, Union[Callable[..., Any], tuple[str, Any]], Any, float]


class Signs:
    """sign(index): 1 when a node's values are never negative, -1 when never positive,
    0 when either; found once per node. bounded_factor(index): whether a region is a bounded
    factor of an input of one sign; within_unit_interval(index): whether its values are a
    gate's."""

    def __init__(self, graph: Graph, regions: dict[int, Region]) -> None:
        self.graph, self.regions = graph, regions
        self.found: dict[int, int] = {}
        self.bounds: dict[int, bool] = {}

    def sign(self, index: int) -> int:
        if index not in self.found:
            self.found[index] = 0          # while its inputs' signs are found
            self.found[index] = self._sign(index)
        return self.found[index]

    def _sign(self, index: int) -> int:
        region = self.regions.get(index)
        if region is not None and isinstance(region[1], tuple):   # an activation known by name
            return 1 if region[1][0] in NONNEGATIVE else 0
        if region is not None:
            values = self.values(region)
            if values is None:
                return 0
            return 1 if np.all(values >= 0) else -1 if np.all(values <= 0) else 0
        node = self.graph.nodes[index]
        if node.kind == "mul" and len(node.inputs) == 2:
            return self.sign(node.inputs[0]) * self.sign(node.inputs[1])
        if node.kind in ("view", "cumsum") and node.inputs:   # a running sum keeps its terms' sign
            return self.sign(node.inputs[0])
        return 0

    def values(self, region: Region) -> np.ndarray | None:
        """The region's fused function over its input's sign (both signs when it keeps
        none), infinite where it overflows; None for an activation known by name, or when
        the function cannot be evaluated off the model."""
        source, g = region[0], region[1]
        if isinstance(g, tuple):
            return None
        side = self.sign(source)
        points = -GRID if side < 0 else GRID if side > 0 else np.concatenate([-GRID, GRID])
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(g(points), dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            return None
        return out if out.shape == points.shape and not np.any(np.isnan(out)) else None

    def bounded_factor(self, index: int) -> bool:
        """Whether the region ending at `index` reads an input of one sign over which its
        function stays within BOUND (a decay exp(dt * A) with dt * A <= 0: in (0, 1]);
        found once per region."""
        if index not in self.bounds:
            region = self.regions[index]
            values = self.values(region) if self.sign(region[0]) != 0 else None
            self.bounds[index] = values is not None and float(np.max(np.abs(values))) <= BOUND
        return self.bounds[index]


    def within_unit_interval(self, index: int) -> bool:
        """Whether the region ending at `index` keeps its values in [0, 1] over its input's
        sign (a sigmoid, 1 - sigmoid: a gate's values)."""
        g = self.regions[index][1]
        if isinstance(g, tuple):
            return g[0] in UNIT_INTERVAL
        values = self.values(self.regions[index])
        return values is not None and bool(np.all((values >= 0.0) & (values <= 1.0)))


# points of the quadrature over log(|x| / theta) for a Gamma(k, theta) magnitude
GAMMA_POINTS = 4001


def one_signed(g: Callable[..., Any], m: Moments, side: int) -> tuple[Moments, float] | None:
    """(moments of g(x), E[g'(x)^2]) for x = side * Y, Y ~ Gamma with the mean |m.mean| and
    the variance of m; None when m has no spread or no mean, or g is not finite there."""
    mean, var = abs(m.mean), m.variance
    if mean <= 0 or var <= 0:
        return None
    k, theta = mean * mean / var, var / mean
    # log t for t ~ Gamma(k, 1): density exp(k u - e^u) / Gamma(k), negligible below
    # u = -40 / k and above t = k + 40 sqrt(k) + 40
    u = np.linspace(min(-5.0, -40.0 / k), math.log(k + 40.0 * math.sqrt(k) + 40.0), GAMMA_POINTS)
    weights = np.exp(k * u - np.exp(u) - math.lgamma(k))
    weights /= weights.sum()
    x = side * theta * np.exp(u)
    step = 1e-6 * np.maximum(1.0, np.abs(x))
    with np.errstate(all="ignore"):
        values = np.asarray(g(x), dtype=np.float64)
        slopes = (np.asarray(g(x + step), dtype=np.float64) - np.asarray(g(x - step), dtype=np.float64)) / (2 * step)
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(slopes))):
        return None
    first, second = float(weights @ values), float(weights @ (values * values))
    return Moments(first, max(second, first * first)), float(weights @ (slopes * slopes))
