"""mlp_spec: a ready-made NumPy MLP (a list of varinit.layers.Layer) drawn by
one of the common initializations, so "depth 50, Xavier vs He vs N(0, 1)" is
one call. Its init names are the torch.nn.init functions, so kaiming_* and
orthogonal use torch's gain table where torch knows the name (varinit.gains).
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .. import _validate
from ..activations import resolve
from ..gains import gain_for
from ..generator import Generator
from .._typing import FillableT, GeneratorLike, Nonlinearity
from ..layers.layer import Layer
from ..init import (
    lecun_normal_, lecun_uniform_, normal_, orthogonal_, uniform_, xavier_normal_, xavier_uniform_,
)

# Standard deviation of the "small" init: the N(0, 0.01^2) of many tutorials
# (and of Glorot & Bengio's "standard" baseline family), too small at depth.
SMALL_STD = 0.01

SpecInit = Literal["naive", "small", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
                   "lecun_normal", "lecun_uniform", "orthogonal"]
SPEC_INITS: dict[SpecInit, str] = {
    "naive": "N(0, 1) whatever the width",
    "small": f"N(0, {SMALL_STD}^2) whatever the width",
    "xavier_normal": "N(0, 2 / (fan_in + fan_out)), gain 1 (Glorot & Bengio 2010)",
    "xavier_uniform": "U(-a, a), a = sqrt(6 / (fan_in + fan_out)), gain 1",
    "kaiming_normal": "N(0, gain^2 / fan_in), gain of the activation (He et al. 2015)",
    "kaiming_uniform": "U(-b, b), b = gain * sqrt(3 / fan_in)",
    "lecun_normal": "truncated normal, Var = 1 / fan_in (LeCun et al. 1998)",
    "lecun_uniform": "U(-sqrt(3 / fan_in), sqrt(3 / fan_in))",
    "orthogonal": "Haar-orthogonal times the activation's gain (Saxe et al. 2013)",
}


def check_init(init: SpecInit | float) -> SpecInit | float:
    """A SPEC_INITS name, or a std (a finite number >= 0) for N(0, std^2)."""
    if isinstance(init, str):
        return _validate.choice(init, "init", tuple(SPEC_INITS))
    return _validate.real(init, "init given as a std", _validate.NON_NEGATIVE)


def init_weight(weight: FillableT, init: SpecInit | float, activation: Nonlinearity | None = None,
                param: float | None = None, generator: GeneratorLike = None) -> FillableT:
    """Fill an (out, in) weight in place by a spec init name (see SPEC_INITS) or a std (a number)."""
    init = check_init(init)
    if not isinstance(init, str):
        return normal_(weight, 0.0, init, generator)
    if init == "naive":
        return normal_(weight, 0.0, 1.0, generator)
    if init == "small":
        return normal_(weight, 0.0, SMALL_STD, generator)
    if init == "xavier_normal":
        return xavier_normal_(weight, 1.0, generator)
    if init == "xavier_uniform":
        return xavier_uniform_(weight, 1.0, generator)
    if init in ("kaiming_normal", "kaiming_uniform"):
        std = gain_for(activation, param, "torch") / math.sqrt(weight.shape[1])
        if init == "kaiming_normal":
            return normal_(weight, 0.0, std, generator)
        bound = math.sqrt(3.0) * std
        return uniform_(weight, -bound, bound, generator)
    if init == "lecun_normal":
        return lecun_normal_(weight, generator)
    if init == "lecun_uniform":
        return lecun_uniform_(weight, generator)
    return orthogonal_(weight, gain_for(activation, param, "torch"), generator)


def mlp_spec(depth: int = 50, width: int = 512, activation: Nonlinearity | None = "relu",
             init: SpecInit | float = "kaiming_normal", seed: int = 0, *, in_features: int | None = None,
             param: float | None = None, bias_std: float = 0.0) -> list[Layer]:
    """A NumPy MLP of `depth` dense layers of `width` units, each followed by `activation`.

    Weights (float64, layout (out, in)) are drawn by `init` from
    ``varinit.Generator(seed)``, one stream per layer in order; biases are N(0,
    bias_std^2) from the streams after them (zeros when bias_std is 0). The
    init names are the torch.nn.init functions, so kaiming_* and orthogonal
    use the activation's gain by torch's table (`calculate_gain`) for the
    names torch knows, `varinit.gain` for the others.

    Parameters
    ----------
    depth : int, default 50
        The number of layers.
    width : int, default 512
        Their width.
    activation : str or callable, default "relu"
        The activation after every layer.
    init : str or float, default "kaiming_normal"
        "naive" (N(0, 1)), "small" (N(0, 0.01^2)), "xavier_normal",
        "xavier_uniform" (gain 1), "kaiming_normal", "kaiming_uniform",
        "lecun_normal", "lecun_uniform", "orthogonal"; or a number s for
        N(0, s^2).
    seed : int, default 0
        The seed of the weights and biases.
    in_features : int, optional
        The first layer's inputs (default `width`).
    param : float, optional
        The activation's parameter.
    bias_std : float, default 0
        The biases' std.

    Returns
    -------
    list of varinit.layers.Layer

    Examples
    --------
    >>> import varinit
    >>> net = varinit.diagnostics.mlp_spec(depth=4, width=64, activation="tanh", init="xavier_normal")
    >>> len(net), net[0].weight.shape, net[0].activation
    (4, (64, 64), 'tanh')
    >>> print(varinit.propagate(net).summary())
    xavier_normal, tanh, depth 4, width 64: healthy
    """
    depth = _validate.integer(depth, "depth", minimum=1)
    width = _validate.integer(width, "width", minimum=1)
    in_features = width if in_features is None else _validate.integer(in_features, "in_features", minimum=1)
    if activation is not None:
        resolve(activation, param)
    init = check_init(init)
    bias_std = _validate.real(bias_std, "bias_std", _validate.NON_NEGATIVE)
    generator = Generator(seed)
    label = init if isinstance(init, str) else f"N(0, {init:g}^2)"
    layers: list[Layer] = []
    fan_in = in_features
    for _ in range(depth):
        weight = init_weight(np.empty((width, fan_in)), init, activation, param, generator)
        layers.append(Layer(weight, None, activation, param, name=str(len(layers)), init=label))
        fan_in = width
    for layer in layers:
        bias = np.zeros(width)
        if bias_std > 0:
            normal_(bias, 0.0, bias_std, generator)
        layer.bias = bias
    return layers
