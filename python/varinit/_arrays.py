"""What can be filled: NumPy arrays of floating dtypes and PyTorch CPU tensors.

A PyTorch tensor is filled through a NumPy view of its memory, so no copy is
made and no autograd history is recorded. `as_array` refuses what cannot be
filled (dtype, read-only, overlapping elements) before anything is written or a
stream is taken; `fill_array` makes the one call into the C core and stages
the rare byte-swapped or misaligned array through a native copy.
"""
import sys

import numpy as np

from . import _core


def is_torch_tensor(obj):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _torch_view(tensor, torch):
    """The ndarray sharing a CPU tensor's memory; TypeError for anything unfillable."""
    dtype = tensor.dtype
    numpy_dtype = dtype is torch.float32 or dtype is torch.float64 or dtype is torch.float16
    if numpy_dtype and tensor.is_cpu and tensor.layout is torch.strided:  # the common case first
        if tensor.requires_grad:
            # numpy() refuses a tensor that requires grad (a Parameter);
            # force=True detaches in C++, cheaper than .detach() from Python.
            # It would also copy a negative-bit view, whose writes would then
            # be lost, so such a tensor keeps numpy()'s error.
            return tensor.numpy(force=not tensor.is_neg())
        return tensor.numpy()
    if not tensor.is_cpu:
        raise TypeError(
            f"tensor must be a CPU tensor; got one on device '{tensor.device}' "
            "(move it with .cpu() or initialize on the CPU and copy)"
        )
    if tensor.layout is not torch.strided:
        raise TypeError(f"tensor must be a dense (strided) tensor; got layout {tensor.layout}")
    if dtype is torch.bfloat16:
        import ml_dtypes

        return tensor.detach().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    raise TypeError(
        "tensor must have a floating dtype (float16, bfloat16, float32, float64), "
        f"got {tensor.dtype}"
    )


def _is_fillable_dtype(dtype):
    return dtype.char in "efd" or dtype.name == "bfloat16"


def as_array(tensor):
    """The ndarray sharing `tensor`'s memory; TypeError for anything unfillable.

    Dtype and writability are checked here, not only in the C core, so that
    the functions that never reach it (constant_, eye_, dirac_, ...) and
    zero-element fills refuse the same inputs (issue 2, item 7).
    """
    if isinstance(tensor, np.ndarray):
        arr = tensor
    else:
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(tensor, torch.Tensor):
            raise TypeError(
                "tensor must be a NumPy array or a PyTorch CPU tensor, "
                f"got {type(tensor).__module__}.{type(tensor).__qualname__}"
            )
        arr = _torch_view(tensor, torch)
    if not _is_fillable_dtype(arr.dtype):
        raise TypeError(
            "tensor must have a floating dtype (float16, bfloat16, float32, float64), "
            f"got {arr.dtype}"
        )
    if not arr.flags.writeable:
        raise ValueError("tensor is read-only; expected a writable array")
    if 0 in arr.strides and arr.size > 1 and any(
        stride == 0 and n > 1 for stride, n in zip(arr.strides, arr.shape)
    ):
        # torch.Tensor.expand gives writable zero strides; torch refuses to write them too
        raise ValueError(
            "tensor has elements sharing one memory location (a zero stride, as from expand); "
            "expected a tensor whose elements are distinct (use .contiguous() or a copy)"
        )
    return arr


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
