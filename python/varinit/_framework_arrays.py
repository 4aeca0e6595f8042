"""New NumPy arrays filled by varinit for the framework initializers
(varinit.keras, varinit.jax), in the frameworks' kernel layout.

Keras and Flax store a kernel as (*kernel, in, out): (in, out) for a dense
layer, (kh, kw, in / groups, out) for a 2-d convolution. PyTorch stores the
same weight as (out, in / groups, *kernel). With `torch_layout=True` the
array filled is the PyTorch one and the kernel returned is its transpose, so
a Keras or Flax layer holds exactly the weights of the PyTorch layer filled
from the same seed and stream (kernel = weight.permute(*range(2, n), 1, 0)).
By default the kernel is filled as it is, and equals varinit's fill of a
NumPy array of the kernel's shape.
"""
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _validate
from .init import orthogonal_


def torch_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The PyTorch (out, in, *kernel) shape of a (*kernel, in, out) kernel."""
    return (shape[-1], shape[-2]) + tuple(shape[:-2])


def from_torch_layout(weight: np.ndarray) -> np.ndarray:
    """The (*kernel, in, out) kernel of an (out, in, *kernel) weight, C-contiguous."""
    return np.ascontiguousarray(weight.transpose(tuple(range(2, weight.ndim)) + (1, 0)))


def filled(shape: tuple[int, ...], dtype: np.dtype, torch_layout: bool,
           fill: Callable[[np.ndarray], Any]) -> np.ndarray:
    """A new array of `shape` and `dtype` that fill(array) wrote.

    With torch_layout (and at least 2 axes; vectors have one layout), `fill`
    writes the PyTorch-layout weight and the result is its transpose.
    """
    if torch_layout and len(shape) >= 2:
        weight = np.empty(torch_shape(shape), dtype)
        fill(weight)
        return from_torch_layout(weight)
    out = np.empty(shape, dtype)
    fill(out)
    return out


def orthogonal_columns_(arr: np.ndarray, gain: float, generator: Any, column_axis: int = -1) -> np.ndarray:
    """Keras's and JAX's orthogonal init: the matrix (product of the other axes,
    shape[column_axis]) is varinit.orthogonal_'s fill of a matrix of that shape
    (orthonormal columns when it is tall, rows when it is wide), reshaped with
    the column axis put back in place. Fills `arr` in place and returns it."""
    if arr.ndim < 2:
        raise ValueError(f"an orthogonal init needs a shape of at least 2 dimensions, got {arr.shape}")
    (column_axis,) = _validate.axes(_validate.integer(column_axis, "column_axis"), arr.ndim, "column_axis")
    moved = np.moveaxis(arr, column_axis, -1)   # a view of arr
    columns = moved.shape[-1]
    matrix = np.empty((math.prod(moved.shape[:-1]), columns), arr.dtype)
    orthogonal_(matrix, gain, generator)
    moved[...] = matrix.reshape(moved.shape)
    return arr
