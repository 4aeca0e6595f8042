"""What can be filled: NumPy arrays of floating dtypes and PyTorch CPU tensors.

A PyTorch tensor is filled through a NumPy view of its memory, so no copy is
made and no autograd history is recorded. `as_array` refuses what cannot be
filled (dtype, read-only, overlapping elements) before anything is written or a
stream is taken; `fill_array` makes the one call into the C core and stages
the rare byte-swapped or misaligned array through a native copy.
"""
import functools
import sys
import threading

import numpy as np

from . import _core


def is_torch_tensor(obj):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _torch_view(tensor, torch):
    """The ndarray sharing a CPU tensor's memory; TypeError for anything unfillable."""
    if tensor.is_inference() and not torch.is_inference_mode_enabled():
        # torch's own rule and words: an inference tensor has no version
        # counter, so a write outside inference mode could corrupt a graph.
        raise RuntimeError(
            "Inplace update to inference tensor outside InferenceMode is not allowed. "
            "You can make a clone to get a normal tensor before doing inplace update."
        )
    dtype = tensor.dtype
    numpy_dtype = dtype is torch.float32 or dtype is torch.float64 or dtype is torch.float16
    if numpy_dtype and tensor.is_cpu and tensor.layout is torch.strided:  # the common case first
        try:
            # numpy() refuses a tensor that requires grad (a Parameter);
            # force=True detaches in C++, cheaper than .detach() from Python.
            # It would also copy a negative-bit view, whose writes would then
            # be lost, so such a tensor is refused below.
            return tensor.numpy(force=tensor.requires_grad and not tensor.is_neg())
        except RuntimeError:
            raise TypeError(_unfillable_reason(tensor, torch)) from None
    if not tensor.is_cpu:
        raise TypeError(
            f"tensor must be a CPU tensor; got one on device '{tensor.device}' "
            "(move it with .cpu() or initialize on the CPU and copy)"
        )
    if tensor.layout is not torch.strided:
        raise TypeError(f"tensor must be a dense (strided) tensor; got layout {tensor.layout}")
    if dtype is torch.bfloat16:
        import ml_dtypes

        try:
            return tensor.detach().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        except RuntimeError:
            raise TypeError(_unfillable_reason(tensor, torch)) from None
    raise TypeError(
        "tensor must have a floating dtype (float16, bfloat16, float32, float64), "
        f"got {tensor.dtype}"
    )


def _unfillable_reason(tensor, torch):
    """Why Tensor.numpy() refused a CPU float tensor, in the words of this API."""
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        what = f"a tensor subclass ({type(tensor).__module__}.{type(tensor).__qualname__})"
    elif tensor.is_nested:
        what = "a nested tensor"
    elif tensor.is_neg() or tensor.is_conj():
        what = "a lazily negated or conjugated view (e.g. z.conj().imag); call .resolve_neg() first"
    else:
        what = "a tensor whose memory NumPy cannot view"
    return f"tensor must be a dense CPU tensor; got {what}"


def mark_written(tensor):
    """Bump a torch tensor's autograd version counter after varinit wrote to it,
    as an in-place torch op does: a graph that saved the old values then
    raises at backward instead of computing wrong gradients."""
    if type(tensor) is not np.ndarray and is_torch_tensor(tensor):
        from torch.autograd.graph import increment_version

        increment_version(tensor)


def writes_in_place(fn):
    """Decorator for a public function that fills its first argument in place:
    a torch target's version counter is bumped once the fill has succeeded, and
    a meta tensor (shape and dtype, no memory) has its arguments checked and is
    returned unchanged, as torch.nn.init does, so modules built on the meta
    device with varinit as their init work."""
    @functools.wraps(fn)
    def fill(tensor, *args, **kwargs):
        if type(tensor) is not np.ndarray and is_torch_tensor(tensor) and tensor.is_meta:
            return _check_on_meta(fn, tensor, args, kwargs)
        result = fn(tensor, *args, **kwargs)
        mark_written(tensor)
        return result

    return fill


class DryRun(Exception):
    """Raised where a fill would take its stream, during a check on a meta tensor."""


_dry_run = threading.local()


def dry_run_active():
    """True while a meta tensor's fill is being checked: no stream may be taken."""
    return getattr(_dry_run, "active", False)


def _check_on_meta(fn, tensor, args, kwargs):
    """Run `fn` on a one-element stand-in of the meta tensor's shape and dtype (every
    element at one address) until it would take a stream, then return the tensor."""
    import ml_dtypes
    import torch

    dtypes = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
              torch.bfloat16: ml_dtypes.bfloat16}
    if tensor.dtype not in dtypes:
        raise TypeError("tensor must have a floating dtype (float16, bfloat16, float32, float64), "
                        f"got {tensor.dtype}")
    cell = np.zeros(1, dtypes[tensor.dtype])
    stand_in = np.lib.stride_tricks.as_strided(cell, tuple(tensor.shape), (0,) * tensor.dim())
    outer = dry_run_active()
    _dry_run.active = True
    try:
        fn(stand_in, *args, **kwargs)
    except DryRun:
        pass
    finally:
        _dry_run.active = outer
    return tensor


def _is_fillable_dtype(dtype):
    return dtype.char in "efd" or dtype.name == "bfloat16"


def as_array(tensor):
    """The ndarray sharing `tensor`'s memory; TypeError for anything unfillable.

    Dtype and writability are checked here, not only in the C core, so that
    the functions that never reach it (constant_, eye_, dirac_, ...) and
    zero-element fills refuse the same inputs: a bad target is the same error
    whichever path the call takes, never a silent no-op.
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
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous) and not dry_run_active() and _elements_overlap(arr):
        # Two elements at one address would be written by two threads with two
        # different values: the result would depend on the thread schedule.
        # torch refuses to write such views (expand, overlapping as_strided) too.
        raise ValueError(
            "tensor has elements sharing memory (a zero stride, as from expand, or overlapping "
            "strides, as from as_strided); expected a tensor whose elements are distinct "
            "(use .contiguous() or a copy)"
        )
    return arr


# Above this many elements an irregular layout that the stride rule cannot
# clear is refused rather than enumerated (the enumeration costs 8 bytes each).
OVERLAP_ENUMERATION_LIMIT = 1 << 24


def _elements_overlap(arr):
    """True when two elements of `arr` share a byte.

    Sufficient rule first (it clears every layout made by slicing, transposing
    and reshaping): with the axes of extent > 1 sorted by |stride|, each stride
    must exceed the span of all the smaller axes. A layout that fails it is
    checked exactly by enumerating its byte offsets, up to a size limit.
    """
    axes = sorted((abs(stride), n) for stride, n in zip(arr.strides, arr.shape) if n > 1)
    span = arr.itemsize
    for stride, n in axes:
        if stride < span:
            break
        span = stride * (n - 1) + span
    else:
        return False
    if arr.size > OVERLAP_ENUMERATION_LIMIT:
        return True
    offsets = np.zeros((), np.int64)
    for stride, n in zip(arr.strides, arr.shape):
        offsets = (offsets[..., None] + np.arange(n, dtype=np.int64) * stride)
    offsets = np.sort(offsets.ravel())
    return bool(np.any(np.diff(offsets) < arr.itemsize))


def fill_array(arr, dist, p0, p1, p2, p3, key, stream, global_shape=None, start=None):
    """One call into the C core; byte-swapped or misaligned arrays go through a copy
    (allocated by `staging_buffer` before the caller took the stream)."""
    staged = staging_buffer(arr)
    _core.fill(staged, dist, p0, p1, p2, p3, key, stream, global_shape, start)
    if staged is not arr:
        arr[...] = staged


def staging_buffer(arr):
    """`arr` itself when the C core can write it, else a native, aligned array of
    its shape and dtype to fill and copy in. Call it before taking a stream: a
    failed allocation must not use one up."""
    if arr.dtype.isnative and arr.flags.aligned:
        return arr
    return np.empty(arr.shape, dtype=arr.dtype.newbyteorder("="))


def dtype_named(dtype):
    """A NumPy dtype from a dtype or its name ("bfloat16" included); TypeError otherwise."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from exc
