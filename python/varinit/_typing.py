"""The types of varinit's signatures: what can be filled, where a stream comes
from, and the string choices as Literal types, so that a type checker refuses
``kaiming_normal_(w, mode=3)`` or ``mode="fan_avg"`` before the call raises.

Annotations only: PyTorch and the generator classes are imported for the type
checker alone (TYPE_CHECKING), so importing this module imports neither torch
nor anything else of varinit. Each Literal lists the same strings as the
runtime table that validates the argument (tests/typing/test_literal_choices.py
compares them).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

    from .generator import Generator, Stream

Array: TypeAlias = npt.NDArray[Any]
"""A NumPy array of any dtype."""
FloatArray: TypeAlias = npt.NDArray[np.float64]
"""A float64 NumPy array (measurements, multipliers)."""
Fillable: TypeAlias = Union[npt.NDArray[Any], "torch.Tensor"]
"""What the initializers fill in place: a NumPy array or a PyTorch tensor."""
FillableT = TypeVar("FillableT", bound=Fillable)
"""An initializer returns the object it filled, with its own type."""
GeneratorLike: TypeAlias = Union[None, int, np.integer[Any], "Generator", "Stream", np.random.Generator,
                                 "torch.Generator"]
"""The ``generator=`` argument (varinit.generator.resolve)."""
ArrayFunction: TypeAlias = Callable[[FloatArray], FloatArray]
"""A function evaluated elementwise on float64 arrays (an activation, its derivative)."""
Shape: TypeAlias = Sequence[int]
"""A shape or a corner: a tuple (or other sequence) of ints."""
Axes: TypeAlias = Union[int, Sequence[int]]
"""One axis or several (negative counts from the end)."""
PerAxis: TypeAlias = Union[int, Sequence[int]]
"""A convolution's stride or dilation: one int for every axis, or one per axis."""

FanMode: TypeAlias = Literal["fan_in", "fan_out"]
ScalingMode: TypeAlias = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
ScalingDistribution: TypeAlias = Literal["truncated_normal", "normal", "untruncated_normal", "uniform"]
LayerKind: TypeAlias = Literal["linear", "conv", "conv_transpose"]
GainRule: TypeAlias = Literal["exact", "torch"]
TorchGainName: TypeAlias = Literal[
    # torch.nn.init.calculate_gain's table (varinit.gains.TORCH_GAIN_NAMES)
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "sigmoid", "tanh", "relu", "leaky_relu", "selu",
]
ActivationName: TypeAlias = Literal[
    # varinit.activations.NAMES
    "linear", "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "gelu_tanh", "silu", "mish", "elu",
    "selu", "softplus", "hardswish", "celu", "relu6", "hardtanh", "hardsigmoid", "softsign",
    # its aliases, and torch.nn.init's names for layers followed by no nonlinearity
    "identity", "swish", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d",
]
Nonlinearity: TypeAlias = Union[ActivationName, Callable[..., Any]]
"""An activation by name, or as a function (NumPy-vectorized, scalar, or a torch function or module)."""
AnyActivation: TypeAlias = Union[str, Callable[..., Any]]
"""An activation as varinit's own helpers pass it around: a name checked at run time, or a function."""
