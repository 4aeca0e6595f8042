"""NumPy models described as a list of layers, their whole-model init and the
forward pass of their dense layers (used by LSUV and weight-norm data init).

A layer is a `Layer`, a dict of its fields, or a tuple
(weight, bias, activation[, param]). Arrays are filled in place; they may be
NumPy arrays or PyTorch CPU tensors.
"""
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

import numpy as np

from ._targets import as_array
from .layer_variance import ADJUSTMENT_KEYWORDS, LAYOUT_KEYWORDS
from .activations import activation_fn
from .schemes import (
    activation_gain,
    as_generator,
    check_choices,
    check_residual_scale,
    fill_constant,
    fill_weight,
    stream_for,
)


@dataclass
class Layer:
    """One layer of a NumPy model.

    weight: the weight array, (out, in, *kernel) unless `in_axis`/`out_axis`
        say otherwise ((in, out) matrices: in_axis=0, out_axis=1).
    bias: the bias array (out,) or None.
    activation: what follows the layer: a name known to varinit.activations
        ("relu", "tanh", "gelu", ...), "linear"/None, or a callable on arrays.
    param: the activation's parameter (leaky_relu's slope, elu's alpha).
    name: the layer's name in the report and for name-keyed streams
        (default: its index).
    layer, groups, stride, blocks, in_axis, out_axis: varinit.fans keywords.
    keep_prob, density, input_var, phase_balanced, dilation: the
        variance-aware keywords of the fan-based inits
        (varinit.layer_variance): inverted dropout on the inputs, the kept
        fraction of a pruned weight, the inputs' variance, equal variance for
        every output phase of a strided transposed convolution.
    g: weight-norm scale, one entry per output unit, or None. With it the layer
        computes g * (v / ||v||) x + b, v = weight, the norm taken per output
        unit (Salimans & Kingma 2016); without it, weight x + b.
    residual: True for the last layer of a residual branch: its std is
        multiplied by init_layers' residual_scale.

    Example::

        >>> Layer(np.empty((256, 784), np.float32), np.empty(256, np.float32), "relu")
    """

    weight: Any
    bias: Any = None
    activation: Any = "linear"
    param: Optional[float] = None
    name: Optional[str] = None
    layer: Optional[str] = None
    groups: int = 1
    stride: Any = 1
    blocks: int = 1
    in_axis: Any = None
    out_axis: Any = None
    keep_prob: float = 1.0
    density: float = 1.0
    input_var: float = 1.0
    phase_balanced: bool = False
    dilation: Any = 1
    g: Any = None
    residual: bool = False

    def layout(self):
        """The fan and variance keywords of this layer (those not at their default)."""
        return {key: getattr(self, key) for key in LAYOUT_KEYWORDS + ADJUSTMENT_KEYWORDS
                if getattr(self, key) != Layer.__dataclass_fields__[key].default}

    def activation_spec(self):
        """The activation as schemes.activation_gain takes it."""
        if self.activation in (None, "linear"):
            return None
        if self.param is not None:
            return (self.activation, self.param)
        return self.activation


_FIELD_NAMES = tuple(f.name for f in fields(Layer))


def as_layers(layers):
    """A list of Layer from Layers, dicts or (weight, bias, activation[, param]) tuples."""
    if isinstance(layers, (Layer, dict)) or not hasattr(layers, "__iter__"):
        raise TypeError("layers must be a list of Layer, dict or (weight, bias, activation) tuples")
    out = []
    for index, item in enumerate(layers):
        if isinstance(item, Layer):
            layer = item
        elif isinstance(item, dict):
            unknown = set(item) - set(_FIELD_NAMES)
            if unknown:
                raise ValueError(f"layers[{index}] has unknown keys {sorted(unknown)}; known: {_FIELD_NAMES}")
            layer = Layer(**item)
        elif isinstance(item, (tuple, list)) and 1 <= len(item) <= 4:
            layer = Layer(*item)
        else:
            raise TypeError(
                f"layers[{index}] must be a Layer, a dict or a (weight, bias, activation[, param]) tuple, "
                f"got {type(item).__name__}"
            )
        weight = as_array(layer.weight)
        if weight.ndim < 2:
            raise ValueError(f"layers[{index}].weight must have at least 2 dimensions, got shape {weight.shape}")
        if layer.bias is not None:
            as_array(layer.bias)
        if layer.name is None:
            layer = replace(layer, name=str(index))
        out.append(layer)
    return out


def init_layers(layers, *, scheme="kaiming", mode="fan_in", distribution="normal", residual_scale=None,
                by_name=False, generator=None):
    """Initialize a NumPy model described as a list of layers, in place.

    Each weight follows `scheme` with the gain of its layer's activation (see
    varinit.schemes: kaiming Var = g^2/fan, xavier Var = 2 g^2/(fan_in + fan_out),
    lecun Var = 1/fan_in, orthogonal); biases are zero; layers marked
    residual=True have their std multiplied by `residual_scale` (e.g.
    1/sqrt(2 L) for GPT-2, Radford et al. 2019). With by_name=True each
    parameter draws from generator.stream(f"{name}.weight") so its values do
    not depend on its position in the list.

    Returns the report: a list of InitRecord(name, rule, fan_in, fan_out, std).

    Example::

        >>> layers = [(np.empty((256, 784), np.float32), np.empty(256, np.float32), "relu"),
        ...           (np.empty((10, 256), np.float32), np.empty(10, np.float32), "linear")]
        >>> report = varinit.init_layers(layers, generator=0)
    """
    check_choices(scheme, mode, distribution)
    residual = check_residual_scale(residual_scale)
    layers = as_layers(layers)
    for layer in layers:
        activation_gain(layer.activation_spec())  # reject bad activations before anything is filled
    generator = as_generator(generator, False)
    report = []
    for layer in layers:
        weight_name = f"{layer.name}.weight"
        report.append(fill_weight(
            layer.weight, weight_name, scheme=scheme, activation=layer.activation_spec(), mode=mode,
            distribution=distribution, residual_scale=residual if layer.residual else 1.0,
            generator=stream_for(generator, weight_name, by_name), layout=layer.layout(),
        ))
        if layer.bias is not None:
            report.append(fill_constant(layer.bias, f"{layer.name}.bias", 0.0))
        if layer.g is not None:
            report.append(fill_constant(layer.g, f"{layer.name}.g", 1.0))
    return report


def dense_matrix(layer, apply_g=True):
    """The layer's effective weight as an (in, out) float64 matrix; with a
    weight-norm g and apply_g=False, only the normalized direction v/||v||."""
    weight = as_array(layer.weight)
    if weight.ndim != 2:
        raise ValueError(f"layer {layer.name}: the NumPy forward pass handles dense (2-D) weights, "
                         f"got shape {weight.shape}")
    transposed = layer.in_axis in (0, -2) and layer.out_axis in (None, 1, -1)
    matrix = np.asarray(weight, np.float64)
    matrix = matrix if transposed else matrix.T
    if layer.g is not None:
        matrix = matrix / np.linalg.norm(matrix, axis=0)
        if apply_g:
            matrix = matrix * np.asarray(as_array(layer.g), np.float64).reshape(-1)
    return matrix


def pre_activation(layer, x):
    """W x + b (or g v/||v|| x + b) for a batch x of shape (batch, in), in float64."""
    z = np.asarray(x, np.float64) @ dense_matrix(layer)
    if layer.bias is not None:
        z += np.asarray(as_array(layer.bias), np.float64)
    return z


def activate(layer, z):
    """The layer's activation applied to its pre-activation z."""
    spec = layer.activation
    if spec in (None, "linear"):
        return z
    if callable(spec):
        return np.asarray(spec(z), np.float64)
    return np.asarray(activation_fn(spec, layer.param)(z), np.float64)


def forward(layers, x):
    """The model's output on a batch x of shape (batch, in), in float64.

    Example::

        >>> y = varinit.layers.forward(layers, np.ones((32, 784)))
    """
    h = np.asarray(x, np.float64)
    for layer in as_layers(layers):
        h = activate(layer, pre_activation(layer, h))
    return h
