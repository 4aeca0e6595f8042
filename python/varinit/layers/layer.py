"""The one layer type of NumPy models, and the forward and backward pass of
a list of them.

A model is a list whose items are `Layer`s, dicts of Layer fields, or tuples
(weight, bias, activation[, param]). Every whole-model function on NumPy
models (init_layers, lsuv, weight_norm_init, varinit.propagate,
varinit.diagnostics.mlp_spec) takes and gives this type. Arrays are
changed in place; they may be NumPy arrays or PyTorch CPU tensors.

Layer l computes z_l = W_l a_{l-1} + b_l (or g v/||v|| a_{l-1} + b_l with
weight norm) and a_l = f_l(z_l), a_0 being the input batch (batch, in).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

from .. import _validate
from .._arrays import as_array
from ..activations import resolve
from .._typing import Axes, Fillable, FloatArray, LayerKind, Nonlinearity, PerAxis
from ..fan_rules import ADJUSTMENT_KEYWORDS, LAYOUT_KEYWORDS


@dataclass
class Layer:
    """One layer of a NumPy model: a weight, its bias and the activation after it.

    A NumPy model is a list of them (or of dicts of these fields, or of
    (weight, bias, activation[, param]) tuples), which every whole-model
    function on NumPy models takes: `init_layers`, `lsuv`, `weight_norm_init`,
    `varinit.propagate`, and `varinit.diagnostics.mlp_spec` builds one. Layer
    l computes z_l = W_l a_(l-1) + b_l (or g v / ||v|| a_(l-1) + b_l with
    weight norm) and a_l = f_l(z_l). The arrays are changed in place by the
    init functions; they may be NumPy arrays or PyTorch CPU tensors.

    Parameters
    ----------
    weight : ndarray or torch.Tensor
        The weight, ``(out, in, *kernel)`` unless `in_axis` / `out_axis` say
        otherwise ((in, out) matrices: in_axis=0, out_axis=1).
    bias : ndarray or torch.Tensor, optional
        The bias, (out,).
    activation : str, callable or None, default "linear"
        What follows the layer: a name known to `varinit.gain` ("relu",
        "tanh", "gelu", ...), "linear" or None, or a function of an array.
    param : float, optional
        The activation's parameter (leaky_relu's slope, elu's alpha).
    name : str, optional
        The layer's name in reports and for name-keyed streams (default: its
        index in the list).
    layer, groups, stride, blocks, in_axis, out_axis
        The fan keywords of `varinit.fans`.
    keep_prob, density, input_var, phase_balanced, dilation
        The variance adjustments of the fan-based inits: inverted dropout on
        the inputs, the kept fraction of a pruned weight, the inputs'
        variance, equal variance for every output phase of a strided
        transposed convolution (see `varinit.kaiming_normal_`).
    g : ndarray or torch.Tensor, optional
        The weight-norm scale, one entry per output unit. With it the layer
        computes g (v / ||v||) x + b with v = weight, the norm taken per output
        unit (Salimans and Kingma 2016); without it, weight x + b.
    residual : bool, default False
        True for the last layer of a residual branch: its std is multiplied by
        `init_layers`' residual_scale.
    init : str, optional
        A label for how the weight was initialized, shown in reports
        (`mlp_spec` sets it).

    Examples
    --------
    >>> import numpy as np, varinit
    >>> layer = varinit.layers.Layer(np.empty((256, 784), np.float32), np.empty(256, np.float32), "relu")
    >>> layer.in_features, layer.out_features
    (784, 256)
    >>> t = varinit.layers.Layer(np.empty((784, 256), np.float32), in_axis=0, out_axis=1)   # (in, out)
    >>> t.in_features
    784
    """

    weight: Fillable
    bias: Optional[Fillable] = None
    activation: Optional[Nonlinearity] = "linear"
    param: Optional[float] = None
    name: Optional[str] = None
    layer: Optional[LayerKind] = None
    groups: int = 1
    stride: PerAxis = 1
    blocks: int = 1
    in_axis: Optional[Axes] = None
    out_axis: Optional[Axes] = None
    keep_prob: float = 1.0
    density: float = 1.0
    input_var: float = 1.0
    phase_balanced: bool = False
    dilation: PerAxis = 1
    g: Optional[Fillable] = None
    residual: bool = False
    init: Optional[str] = None

    @property
    def in_features(self) -> int:
        """Inputs of a dense layer: the size of its input axis."""
        return self.weight.shape[0 if _is_in_out(self) else 1]

    @property
    def out_features(self) -> int:
        """Outputs of a dense layer: the size of its out axis."""
        return self.weight.shape[1 if _is_in_out(self) else 0]

    @property
    def activation_name(self) -> str:
        """The activation's name for reports ("linear" for None, the callable's name)."""
        if self.activation in (None, "linear"):
            return "linear"
        if callable(self.activation):
            return getattr(self.activation, "__name__", type(self.activation).__name__)
        return str(self.activation)

    def layout(self) -> dict[str, Any]:
        """The fan and variance keywords of this layer (those not at their default)."""
        return {key: getattr(self, key) for key in LAYOUT_KEYWORDS + ADJUSTMENT_KEYWORDS
                if getattr(self, key) != Layer.__dataclass_fields__[key].default}

    def activation_spec(self) -> Nonlinearity | tuple[Nonlinearity, float] | None:
        """The activation as varinit.gains.gain_for takes it."""
        if self.activation in (None, "linear"):
            return None
        if self.param is not None:
            return (self.activation, self.param)
        return self.activation


_FIELD_NAMES = tuple(f.name for f in fields(Layer))
# What a NumPy model's list holds: Layers, dicts of Layer fields, (weight, bias, activation[, param]) tuples
LayerSpec = Union[Layer, Mapping[str, Any], Sequence[Any]]


def as_layers(layers: Iterable[LayerSpec]) -> list[Layer]:
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
        if layer.activation not in (None, "linear"):
            resolve(layer.activation, layer.param)  # an unknown name or a bad param fails here
        _validate.flag(layer.residual, f"layers[{index}].residual")
        if layer.name is None:
            layer = replace(layer, name=str(index))
        out.append(layer)
    return out


def _is_in_out(layer: Layer) -> bool:
    """True for a dense weight stored (in, out) rather than torch's (out, in)."""
    return layer.in_axis in (0, -2) and layer.out_axis in (None, 1, -1)


def dense_matrix(layer: Layer, apply_g: bool = True) -> FloatArray:
    """The layer's effective weight as an (in, out) float64 matrix; with a
    weight-norm g and apply_g=False, only the normalized direction v/||v||."""
    weight = as_array(layer.weight)
    if weight.ndim != 2:
        raise ValueError(f"layer {layer.name}: the NumPy forward pass handles dense (2-D) weights, "
                         f"got shape {weight.shape}")
    matrix = np.asarray(weight, np.float64)
    matrix = matrix if _is_in_out(layer) else matrix.T
    if layer.g is not None:
        matrix = matrix / np.linalg.norm(matrix, axis=0)
        if apply_g:
            matrix = matrix * np.asarray(as_array(layer.g), np.float64).reshape(-1)
    return matrix


def pre_activation(layer: Layer, x: Any) -> FloatArray:
    """W x + b (or g v/||v|| x + b) for a batch x of shape (batch, in), in float64."""
    z = np.asarray(x, np.float64) @ dense_matrix(layer)
    if layer.bias is not None:
        z += np.asarray(as_array(layer.bias), np.float64)
    return z


def activate(layer: Layer, z: FloatArray) -> FloatArray:
    """The layer's activation applied to its pre-activation z."""
    if layer.activation in (None, "linear"):
        return z
    return np.asarray(resolve(layer.activation, layer.param).fn(z), np.float64)


def check_chain(layers: Sequence[Layer]) -> None:
    """ValueError unless every layer is dense (2-D weight, bias of its outputs' size)
    and each one's inputs are the previous one's outputs."""
    for layer in layers:
        weight = as_array(layer.weight)
        if weight.ndim != 2:
            raise ValueError(f"layer {layer.name}: the NumPy forward pass handles dense (2-D) weights, "
                             f"got shape {weight.shape}")
        if layer.bias is not None and as_array(layer.bias).shape != (layer.out_features,):
            raise ValueError(f"layer {layer.name}: bias must have shape ({layer.out_features},), "
                             f"got {as_array(layer.bias).shape}")
    for index in range(1, len(layers)):
        if layers[index].in_features != layers[index - 1].out_features:
            raise ValueError(
                f"layer {layers[index].name}: weight expects {layers[index].in_features} inputs but "
                f"layer {layers[index - 1].name} has {layers[index - 1].out_features} outputs"
            )


def forward(layers: Iterable[LayerSpec], x: npt.ArrayLike) -> tuple[list[FloatArray], list[FloatArray]]:
    """Pre-activations z_l and outputs a_l of every layer on a batch, in float64.

    z_l = W_l a_(l-1) + b_l (or g v / ||v|| a_(l-1) + b_l with weight norm),
    a_l = f_l(z_l), a_0 = x; the model's output is the last a_l. Values that
    overflow float64 become inf/nan without a warning (the diagnostics report
    them as "exploding").

    Parameters
    ----------
    layers : list
        The model: `Layer` objects, dicts of Layer fields, or (weight, bias,
        activation[, param]) tuples, in forward order.
    x : array_like
        The batch, (batch, in).

    Returns
    -------
    pre, post : list of ndarray
        [z_1, ..., z_L] and [a_1, ..., a_L].

    Examples
    --------
    >>> import numpy as np, varinit
    >>> net = varinit.diagnostics.mlp_spec(depth=3, width=8)
    >>> pre, post = varinit.layers.forward(net, np.ones((2, 8)))
    >>> len(pre), post[-1].shape
    (3, (2, 8))
    """
    layers = as_layers(layers)
    check_chain(layers)
    pre, post = [], []
    h = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in layers:
            z = pre_activation(layer, h)
            h = activate(layer, z)
            pre.append(z)
            post.append(h)
    return pre, post


def backward(layers: Iterable[LayerSpec], pre: Sequence[FloatArray],
             output_grad: npt.ArrayLike) -> tuple[list[FloatArray], FloatArray]:
    """Gradients of <output_grad, model output> with respect to every layer's output, and to the input.

    Backpropagation: dL/da_L = output_grad; dL/da_(l-1) = (dL/da_l * f_l'(z_l))
    W_l, with `pre` the pre-activations from `forward`.

    Parameters
    ----------
    layers : list
        The model: `Layer` objects, dicts of Layer fields, or (weight, bias,
        activation[, param]) tuples, in forward order.
    pre : list of ndarray
        The pre-activations `forward` returned.
    output_grad : array_like
        The gradient at the output, of the output's shape.

    Returns
    -------
    grads : list of ndarray
        [dL/da_1, ..., dL/da_L].
    input_grad : ndarray
        dL/dx.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> net = varinit.diagnostics.mlp_spec(depth=3, width=8)
    >>> pre, post = varinit.layers.forward(net, np.ones((2, 8)))
    >>> grads, input_grad = varinit.layers.backward(net, pre, np.ones((2, 8)))
    >>> len(grads), input_grad.shape
    (3, (2, 8))
    """
    layers = as_layers(layers)
    last_first: list[FloatArray] = []   # dL/da_L, ..., dL/da_1
    g = np.asarray(output_grad, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for index in range(len(layers) - 1, -1, -1):
            last_first.append(g)
            layer = layers[index]
            if layer.activation not in (None, "linear"):
                g = g * resolve(layer.activation, layer.param).derivative(pre[index])
            g = g @ dense_matrix(layer).T
    return last_first[::-1], g
