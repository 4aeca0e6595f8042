"""What can be filled: NumPy arrays of floating dtypes and PyTorch CPU tensors.

A PyTorch tensor is filled through a NumPy view of its memory, so no copy is
made and no autograd history is recorded. The C core checks the array itself
(dtype, writability); this module only turns supported objects into arrays
and stages the rare byte-swapped or misaligned array through a native copy.
"""
import sys

import numpy as np

from . import _core

_TORCH_FLOAT_VIEWS = ("float32", "float64", "float16")


def is_torch_tensor(obj):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _torch_view(tensor):
    torch = sys.modules["torch"]
    if tensor.device.type != "cpu":
        raise TypeError(
            f"tensor must be a CPU tensor; got one on device '{tensor.device}' "
            "(move it with .cpu() or initialize on the CPU and copy)"
        )
    if tensor.layout != torch.strided:
        raise TypeError(f"tensor must be a dense (strided) tensor; got layout {tensor.layout}")
    data = tensor.detach()
    name = str(tensor.dtype).rsplit(".", 1)[-1]
    if name in _TORCH_FLOAT_VIEWS:
        return data.numpy()
    if name == "bfloat16":
        import ml_dtypes

        return data.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    raise TypeError(
        "tensor must have a floating dtype (float16, bfloat16, float32, float64), "
        f"got {tensor.dtype}"
    )


def as_array(tensor):
    """The ndarray sharing `tensor`'s memory; TypeError for anything unfillable."""
    if isinstance(tensor, np.ndarray):
        return tensor
    if is_torch_tensor(tensor):
        return _torch_view(tensor)
    raise TypeError(
        "tensor must be a NumPy array or a PyTorch CPU tensor, "
        f"got {type(tensor).__module__}.{type(tensor).__qualname__}"
    )


def fill_array(arr, dist, p0, p1, p2, p3, key, stream, global_shape=None, start=None):
    """One call into the C core; byte-swapped or misaligned arrays go through a copy."""
    try:
        _core.fill(arr, dist, p0, p1, p2, p3, key, stream, global_shape, start)
    except _core.LayoutError:
        staged = np.empty(arr.shape, dtype=arr.dtype.newbyteorder("="))
        _core.fill(staged, dist, p0, p1, p2, p3, key, stream, global_shape, start)
        arr[...] = staged


def dtype_named(dtype):
    """A NumPy dtype from a dtype or its name ("bfloat16" included); TypeError otherwise."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from exc
