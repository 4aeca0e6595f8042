"""A plain NumPy network for diagnostics: dense layers, their forward and backward pass.

A network is a list of layers; each layer is a `DenseLayer(weight, bias,
activation, param)` or a tuple `(weight, bias, activation)` /
`(weight, bias, activation, param)`:

- weight: array (out_features, in_features), torch.nn.Linear's layout;
- bias: array (out_features,) or None;
- activation: a name known to varinit.activation_fn ("relu", "tanh", "gelu",
  ...) or None for the identity; param its parameter (leaky_relu's slope...).

Layer l computes z_l = a_{l-1} W_l^T + b_l and a_l = f_l(z_l), a_0 being the
input batch (batch, in_features). `mlp_spec` builds such a list with
varinit's initializers, so "depth 50, Xavier vs He vs N(0, 1)" is one call.
"""
import math
from dataclasses import dataclass
from numbers import Real
from typing import Optional

import numpy as np

from . import arguments
from .activations import gain, resolve
from .gains import TORCH_GAIN_NAMES, calculate_gain
from .generator import Generator
from .init import (
    lecun_normal_, lecun_uniform_, normal_, orthogonal_, uniform_, xavier_normal_, xavier_uniform_,
)

# Standard deviation of the "small" init: the N(0, 0.01^2) of many tutorials
# (and of Glorot & Bengio's "standard" baseline family), too small at depth.
SMALL_STD = 0.01

SPEC_INITS = {
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


@dataclass
class DenseLayer:
    """One dense layer: a = f(x W^T + b). `init` only labels the layer."""

    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    activation: Optional[str] = None
    param: Optional[float] = None
    init: Optional[str] = None

    @property
    def in_features(self):
        return self.weight.shape[1]

    @property
    def out_features(self):
        return self.weight.shape[0]

    @property
    def activation_name(self):
        return "linear" if self.activation is None else str(self.activation)


def as_layers(network):
    """The network as a list of DenseLayer, checked for shapes that chain."""
    if isinstance(network, (np.ndarray, str)) or not hasattr(network, "__iter__"):
        raise TypeError(
            "network must be a list of layers (DenseLayer or (weight, bias, activation) tuples) "
            f"or a torch.nn.Module, got {type(network).__name__}"
        )
    layers = []
    for index, item in enumerate(network):
        if isinstance(item, DenseLayer):
            layer = item
        elif isinstance(item, (tuple, list)) and len(item) in (3, 4):
            layer = DenseLayer(*item)
        else:
            raise TypeError(
                f"layer {index} must be a DenseLayer or a (weight, bias, activation[, param]) tuple, "
                f"got {type(item).__name__}"
            )
        weight = np.asarray(layer.weight)
        if weight.ndim != 2 or weight.size == 0 or not np.issubdtype(weight.dtype, np.number):
            raise ValueError(f"layer {index}: weight must be a non-empty numeric 2-D array (out, in), "
                             f"got shape {weight.shape}")
        bias = None if layer.bias is None else np.asarray(layer.bias)
        if bias is not None and bias.shape != (weight.shape[0],):
            raise ValueError(f"layer {index}: bias must have shape ({weight.shape[0]},), got {bias.shape}")
        if layers and layers[-1].out_features != weight.shape[1]:
            raise ValueError(
                f"layer {index}: weight expects {weight.shape[1]} inputs but layer {index - 1} "
                f"has {layers[-1].out_features} outputs"
            )
        if layer.activation is not None:
            resolve(layer.activation, layer.param)  # unknown names fail here, with their message
        layers.append(DenseLayer(weight, bias, layer.activation, layer.param, layer.init))
    if not layers:
        raise ValueError("network must have at least one layer")
    return layers


def activation_gain(activation, param=None):
    """The gain He-type inits use: torch's calculate_gain where torch knows the name, else varinit.gain."""
    name = "linear" if activation is None else activation
    if name in TORCH_GAIN_NAMES:
        return float(calculate_gain(name, param))
    return gain(name, param)


def init_weight(weight, init, activation=None, param=None, generator=None):
    """Fill an (out, in) weight in place by a spec init name (see SPEC_INITS) or a std (a number)."""
    if isinstance(init, Real) and not isinstance(init, bool):
        if not (math.isfinite(init) and init >= 0):
            raise ValueError(f"init given as a std must be finite and >= 0, got {init}")
        return normal_(weight, 0.0, float(init), generator)
    if not isinstance(init, str):
        raise TypeError(f"init must be a name or a std (float), got {type(init).__name__}")
    if init == "naive":
        return normal_(weight, 0.0, 1.0, generator)
    if init == "small":
        return normal_(weight, 0.0, SMALL_STD, generator)
    if init == "xavier_normal":
        return xavier_normal_(weight, 1.0, generator)
    if init == "xavier_uniform":
        return xavier_uniform_(weight, 1.0, generator)
    if init in ("kaiming_normal", "kaiming_uniform"):
        std = activation_gain(activation, param) / math.sqrt(weight.shape[1])
        if init == "kaiming_normal":
            return normal_(weight, 0.0, std, generator)
        bound = math.sqrt(3.0) * std
        return uniform_(weight, -bound, bound, generator)
    if init == "lecun_normal":
        return lecun_normal_(weight, generator)
    if init == "lecun_uniform":
        return lecun_uniform_(weight, generator)
    if init == "orthogonal":
        return orthogonal_(weight, activation_gain(activation, param), generator)
    raise ValueError(f"init must be one of {sorted(SPEC_INITS)} or a std (float), got {init!r}")


def mlp_spec(depth=50, width=512, activation="relu", init="kaiming_normal", seed=0, *,
             in_features=None, param=None, bias_std=0.0):
    """A NumPy MLP of `depth` dense layers of `width` units, each followed by `activation`.

    Weights (float64, layout (out, in)) are drawn by `init` (a SPEC_INITS name
    or a std for N(0, std^2)) from varinit.Generator(seed), one stream per
    layer in order; biases are N(0, bias_std^2) from the streams after them
    (zeros when bias_std is 0). kaiming_* and orthogonal use the activation's
    gain (torch's calculate_gain for names torch knows, varinit.gain else).

    Example::

        >>> net = varinit.mlp_spec(depth=50, width=512, activation="relu", init="xavier_normal")
        >>> print(varinit.propagate(net))
    """
    depth = arguments.count(depth, "depth")
    width = arguments.count(width, "width")
    in_features = width if in_features is None else arguments.count(in_features, "in_features")
    if activation is not None:
        resolve(activation, param)
    if isinstance(bias_std, bool) or not isinstance(bias_std, Real) or not (
            math.isfinite(bias_std) and bias_std >= 0):
        raise ValueError(f"bias_std must be a finite number >= 0, got {bias_std!r}")
    generator = Generator(seed)
    label = init if isinstance(init, str) else f"N(0, {init:g}^2)"
    layers = []
    fan_in = in_features
    for _ in range(depth):
        weight = init_weight(np.empty((width, fan_in)), init, activation, param, generator)
        layers.append(DenseLayer(weight, None, activation, param, label))
        fan_in = width
    for layer in layers:
        bias = np.zeros(width)
        if bias_std > 0:
            normal_(bias, 0.0, float(bias_std), generator)
        layer.bias = bias
    return layers


def forward(layers, inputs):
    """Pre-activations z_l and outputs a_l of every layer, float64, for a batch of inputs."""
    pre, post = [], []
    a = np.asarray(inputs, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in layers:
            f = resolve(layer.activation_name, layer.param).fn
            z = a @ np.asarray(layer.weight, np.float64).T
            if layer.bias is not None:
                z = z + np.asarray(layer.bias, np.float64)
            a = f(z)
            pre.append(z)
            post.append(a)
    return pre, post


def backward(layers, pre, output_grad):
    """Gradients of <output_grad, network output> with respect to every layer's output a_l.

    Backpropagation: dL/da_L = output_grad; dL/da_{l-1} = (dL/da_l * f_l'(z_l)) W_l.
    Returns [dL/da_1, ..., dL/da_L] and dL/dx (the input gradient).
    """
    grads = [None] * len(layers)
    g = np.asarray(output_grad, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for index in range(len(layers) - 1, -1, -1):
            grads[index] = g
            layer = layers[index]
            df = resolve(layer.activation_name, layer.param).derivative
            g = (g * df(pre[index])) @ np.asarray(layer.weight, np.float64)
    return grads, g
