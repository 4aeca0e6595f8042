"""What can be filled: NumPy arrays of floating dtypes and PyTorch tensors.

A PyTorch CPU tensor is filled through a NumPy view of its memory that the C
core builds from the tensor's data pointer, shape, strides and dtype (no
Tensor.numpy(), no copy, no autograd history); a tensor on another device
through host memory and copy_; a meta tensor not at all (its arguments are
checked). `as_array` refuses what cannot be filled (dtype, read-only,
overlapping elements) before anything is written or a stream is taken;
`fill_array` makes the one call into the C core and stages the rare
byte-swapped or misaligned array through a native copy.
"""
from __future__ import annotations

import functools
import math
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from . import _core
from ._typing import Array
from ._validate import unknown_keyword

if TYPE_CHECKING:
    import torch as torch_module
    from torch.distributed.tensor import DTensor

_Fill = TypeVar("_Fill", bound=Callable[..., Any])


def is_torch_tensor(obj: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_dtensor(obj: object) -> bool:
    dtensor = sys.modules.get("torch.distributed.tensor")
    return dtensor is not None and isinstance(obj, dtensor.DTensor)


class _TorchKinds:
    """What the torch direct path compares against, looked up once per process."""

    def __init__(self, torch: ModuleType) -> None:
        import ml_dtypes

        self.dtypes: dict[Any, np.dtype[Any]] = {
            torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64),
            torch.float16: np.dtype(np.float16), torch.bfloat16: np.dtype(ml_dtypes.bfloat16)}
        # a Parameter is a plain tensor to every rule here; other subclasses take the slow route
        self.plain: tuple[type, ...] = (torch.Tensor, torch.nn.Parameter)
        # torch.autograd.graph.increment_version without its Python wrapper (which
        # costs more than the bump): it takes a tuple of tensors
        self.increment_version: Callable[[tuple[torch_module.Tensor, ...]], None] = \
            torch._C._increment_version
        self.has_torch_function: Callable[[object], bool] = torch.overrides.has_torch_function_unary
        self.handle_torch_function: Callable[..., Any] = torch.overrides.handle_torch_function
        # the one-call path of writes_in_place takes Tensor and Parameter in C (see fast_fill)
        _core.set_torch_calls(torch.Tensor, torch.nn.Parameter, self.has_torch_function, self.increment_version)
        # the C core reads a tensor's memory layout through torch's DLPack exchange table
        # where torch has one (DLPack >= 1.3), else through the tensor's attributes
        self.dlpack_route = _core.set_tensor_kinds(
            self.dtypes, torch.strided, getattr(torch.Tensor, "__dlpack_c_exchange_api__", None))


_torch_kinds: _TorchKinds | None = None


def torch_kinds(torch: ModuleType) -> _TorchKinds:
    global _torch_kinds
    if _torch_kinds is None:
        _torch_kinds = _TorchKinds(torch)
    return _torch_kinds


def _torch_view(tensor: torch_module.Tensor, torch: ModuleType) -> Array:
    """The ndarray sharing a CPU tensor's memory, built by the C core from the
    tensor's data pointer, shape, strides and dtype (Tensor.numpy() costs more
    than a small fill); an exception for anything unfillable."""
    torch_kinds(torch)  # on first use, tells the C core torch's dtypes
    view = _core.tensor_view(tensor, 0)
    if type(view) is np.ndarray:
        return view
    return cast(Array, cleared(tensor, torch, view))


def cleared(tensor: torch_module.Tensor, torch: ModuleType, reason: Array | str | None,
            flags: int = 0) -> Array | None:
    """What tensor_view returns for `tensor` once the rules the C core left to
    Python (`reason`) hold: an inference tensor inside inference mode, a layout
    the stride rule cannot clear whose elements are distinct all the same. Raises
    for a rule broken. `flags` as for _core.tensor_view (TV_CHECK_ONLY: None)."""
    kinds = torch_kinds(torch)
    if isinstance(reason, str) and reason == "inference" and torch.is_inference_mode_enabled():
        flags |= _core.TV_ALLOW_INFERENCE
        reason = _core.tensor_view(tensor, flags)
    if isinstance(reason, str) and reason == "irregular":
        flags |= _core.TV_ALLOW_IRREGULAR
        reason = _core.tensor_view(tensor, flags)
        if not isinstance(reason, str):
            itemsize = kinds.dtypes[tensor.dtype].itemsize
            if _elements_overlap(tuple(tensor.shape), [s * itemsize for s in tensor.stride()], itemsize):
                raise _overlap_error()
    if isinstance(reason, str):
        raise tensor_refusal(tensor, reason)
    return reason


def tensor_refusal(tensor: torch_module.Tensor, reason: str) -> Exception:
    """The exception for a tensor that breaks the rule `reason` names (the C core's
    words for them: see tensor_view in csrc/_module.c)."""
    if reason == "inference":
        # torch's own rule and words: an inference tensor has no version
        # counter, so a write outside inference mode could corrupt a graph.
        return RuntimeError(
            "Inplace update to inference tensor outside InferenceMode is not allowed. "
            "You can make a clone to get a normal tensor before doing inplace update."
        )
    if reason == "device":
        return TypeError(
            f"tensor must be a CPU tensor; got one on device '{tensor.device}' "
            "(move it with .cpu() or initialize on the CPU and copy)"
        )
    if reason == "layout":
        return TypeError(f"tensor must be a dense (strided) tensor; got layout {tensor.layout}")
    if reason == "dtype":
        return TypeError(
            "tensor must have a floating dtype (float16, bfloat16, float32, float64), "
            f"got {tensor.dtype}"
        )
    what = {
        "subclass": f"a tensor subclass ({type(tensor).__module__}.{type(tensor).__qualname__})",
        "nested": "a nested tensor",
        "negated": "a lazily negated or conjugated view (e.g. z.conj().imag); call .resolve_neg() first",
        "ndim": f"a tensor of {tensor.dim()} dimensions (at most 64 are supported)",
        "storage": "a tensor with no allocated memory (its storage freed, or never allocated)",
    }.get(reason, "a tensor whose memory cannot be viewed")
    return TypeError(f"tensor must be a dense CPU tensor; got {what}")


def _overlap_error() -> ValueError:
    # Two elements at one address would be written by two threads with two
    # different values: the result would depend on the thread schedule.
    # torch refuses to write such views (expand, overlapping as_strided) too.
    return ValueError(
        "tensor has elements sharing memory (a zero stride, as from expand, or overlapping "
        "strides, as from as_strided); expected a tensor whose elements are distinct "
        "(use .contiguous() or a copy)"
    )


def mark_written(tensor: object) -> None:
    """Bump a torch tensor's autograd version counter after varinit wrote to it,
    as an in-place torch op does: a graph that saved the old values then
    raises at backward instead of computing wrong gradients."""
    if type(tensor) is not np.ndarray and is_torch_tensor(tensor):
        torch_kinds(sys.modules["torch"]).increment_version((cast("torch_module.Tensor", tensor),))


def writes_in_place(fn: _Fill, fast_kind: int | None = None) -> _Fill:
    """Decorator for a public function that fills its first argument in place
    (every element: a tensor on another device receives all of them).

    A NumPy array is filled as it is. A torch tensor whose type (or an active
    mode) defines __torch_function__ hands the call to it, as torch.nn.init's
    functions do, and the call comes back here with the override off. A CPU
    Tensor or Parameter is filled through its memory, then its version counter
    is bumped. Every other tensor (meta, DTensor, another device, a CPU
    subclass) takes `_fill_other_tensor`. A keyword `fn` does not take is
    refused with the keywords it does take (`_validate.unknown_keyword`).

    With `fast_kind` (a _core.FAST_ code: `fn` is one of the functions the C
    core knows), the call goes first to _core.fast_fill, which makes the
    common calls (a NumPy array, or a CPU Tensor or Parameter without a
    __torch_function__ mode; plain numbers; generator None, an int, a Generator
    or a Stream) by the same rules in one C call, and answers NotImplemented,
    having done nothing, to every other: those take the path above.
    """
    if fast_kind is not None:
        _core.fast_fill_register(fast_kind, fn)

    @functools.wraps(fn)
    def fill(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        if fast_kind is not None:
            done = _core.fast_fill(fast_kind, tensor, args, kwargs)
            if done is not NotImplemented:
                return done
        try:
            if type(tensor) is np.ndarray:
                return fn(tensor, *args, **kwargs)
            kinds = _torch_kinds
            if kinds is not None and type(tensor) in kinds.plain:  # the common torch case, kept short
                if kinds.has_torch_function(tensor):  # a mode is active
                    return kinds.handle_torch_function(fill, (tensor,), tensor, *args, **kwargs)
                if not tensor.is_cpu:
                    return _fill_other_tensor(fn, tensor, args, kwargs)
                result = fn(tensor, *args, **kwargs)
                kinds.increment_version((tensor,))
                return result
            if not is_torch_tensor(tensor):
                return fn(tensor, *args, **kwargs)  # as_array takes it or names what it is
            kinds = torch_kinds(sys.modules["torch"])
            if kinds.has_torch_function(tensor):
                return kinds.handle_torch_function(fill, (tensor,), tensor, *args, **kwargs)
            return _fill_other_tensor(fn, tensor, args, kwargs)
        except TypeError as exc:
            better = unknown_keyword(fn, exc)
            if better is None:
                raise
            raise better from None

    return cast(_Fill, fill)


def writes_in_place_fast(kind: int) -> Callable[[_Fill], _Fill]:
    """writes_in_place with the C core's one-call path for `kind` (a _core.FAST_ code)."""
    def decorate(fn: _Fill) -> _Fill:
        return writes_in_place(fn, kind)

    return decorate


def _fill_other_tensor(fn: Callable[..., Any], tensor: torch_module.Tensor, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
    """The routes of a torch tensor that is not a CPU Tensor or Parameter.

    A meta tensor (shape and dtype, no memory) has its arguments checked and
    is returned unchanged, as torch.nn.init does, so modules built on the meta
    device with varinit as their init work. A DTensor fills each rank's shard.
    A tensor on another device is filled through host memory. A CPU subclass
    is filled as a Tensor (the view refuses one whose memory torch's dispatch
    owns, FakeTensor's and the like).
    """
    if tensor.is_meta:
        return _check_on_meta(fn, tensor, args, kwargs)
    if is_dtensor(tensor):   # each rank fills its shard
        from .torch.sharded import fill_dtensor
        return fill_dtensor(fn, cast("DTensor", tensor), args, kwargs)
    if not tensor.is_cpu:
        return _fill_through_host(fn, tensor, args, kwargs)
    result = fn(tensor, *args, **kwargs)
    mark_written(tensor)
    return result


def _fill_through_host(fn: Callable[..., Any], tensor: torch_module.Tensor, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> torch_module.Tensor:
    """Fill a tensor on another device (CUDA, ...) with the values a CPU fill of
    its shape and dtype gives: `fn` fills a host tensor (pinned memory when the
    device is the available accelerator), which `copy_` then writes in, bumping
    the version counter as any in-place op. The tensor's own rules (dtype,
    layout, distinct elements, inference) are checked first and the host memory
    is allocated before `fn` takes a stream: a refused call changes nothing."""
    import torch

    torch_kinds(torch)  # on first use, tells the C core torch's dtypes
    cleared(tensor, torch, _core.tensor_view(tensor, _core.TV_CHECK_ONLY), _core.TV_CHECK_ONLY)
    host = _host_buffer(torch, tensor)
    outer = getattr(_host_stand_in, "pair", None)
    _host_stand_in.pair = (host.data_ptr(), (str(tensor.device), tensor.data_ptr() or id(tensor)))
    try:
        fn(host, *args, **kwargs)
    finally:
        _host_stand_in.pair = outer
    with torch.no_grad():
        tensor.copy_(host)
    return tensor


def _host_buffer(torch: ModuleType, tensor: torch_module.Tensor) -> torch_module.Tensor:
    """An empty CPU tensor of `tensor`'s shape and dtype: pinned (page-locked, so
    the copy to the device is one DMA) when `tensor` is on the accelerator torch
    reports available, else pageable. Pinning that fails is warned about, not fatal."""
    pin = _accelerator_type(torch) == tensor.device.type
    try:
        host: torch_module.Tensor = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=pin)
        return host
    except RuntimeError as exc:
        if not pin:
            raise
        # stacklevel 5: the caller of the public function (fill, _fill_other_tensor,
        # _fill_through_host and this one are between)
        warnings.warn(f"varinit: pinned host memory is unavailable ({exc}); a {tensor.device} tensor "
                      "is filled through pageable memory instead", RuntimeWarning, stacklevel=5)
        host = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu")
        return host


def _accelerator_type(torch: ModuleType) -> str | None:
    """The device type of the accelerator torch can use ("cuda", "xpu", ...), or None."""
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator is None:
        return "cuda" if torch.cuda.is_available() else None
    return cast("str | None", accelerator.current_accelerator().type if accelerator.is_available() else None)


# (host buffer address, device tensor identity) while a device tensor is filled through host memory
_host_stand_in = threading.local()


def written_address(arr: Array) -> object:
    """What identifies the tensor a fill of `arr` writes: `arr`'s address, or the
    device tensor's identity while `arr` is its host stand-in (so the warning on
    reused int seeds sees two device tensors as two, though one host address may
    serve both)."""
    address: int = arr.__array_interface__["data"][0]
    pair: tuple[int, object] | None = getattr(_host_stand_in, "pair", None)
    return pair[1] if pair is not None and pair[0] == address else address


class DryRun(Exception):
    """Raised where a fill would take its stream, during a check on a meta tensor."""


class _DryRunState(threading.local):
    active = False  # a class default: reading it never raises (getattr with a default did, slowly)


_dry_run = _DryRunState()


def dry_run_active() -> bool:
    """True while a meta tensor's fill is being checked: no stream may be taken."""
    return _dry_run.active


def _check_on_meta(fn: Callable[..., Any], tensor: torch_module.Tensor, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> torch_module.Tensor:
    """Run `fn` on a one-element stand-in of the meta tensor's shape and dtype (every
    element at one address) until it would take a stream, then return the tensor."""
    import ml_dtypes
    import torch

    dtypes: dict[torch.dtype, type[np.floating[Any]]] = {
        torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
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


def _is_fillable_dtype(dtype: np.dtype[Any]) -> bool:
    return dtype.char in "efd" or dtype.name == "bfloat16"


def as_array(tensor: object) -> Array:
    """The ndarray sharing `tensor`'s memory; TypeError for anything unfillable.

    Dtype and writability are checked here, not only in the C core, so that
    the functions that never reach it (constant_, eye_, dirac_, ...) and
    zero-element fills refuse the same inputs: a bad target is the same error
    whichever path the call takes, never a silent no-op.
    """
    kinds = _torch_kinds
    if kinds is not None and type(tensor) in kinds.plain:  # the C core checks dtype and layout
        view = _core.tensor_view(tensor, 0)
        if type(view) is np.ndarray:
            return view
        return cast(Array, cleared(cast("torch_module.Tensor", tensor), sys.modules["torch"], view))
    if not isinstance(tensor, np.ndarray):
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(tensor, torch.Tensor):
            raise TypeError(
                "tensor must be a NumPy array or a PyTorch CPU tensor, "
                f"got {type(tensor).__module__}.{type(tensor).__qualname__}"
            )
        return _torch_view(tensor, torch)
    arr: Array = tensor
    if not _is_fillable_dtype(arr.dtype):
        raise TypeError(
            "tensor must have a floating dtype (float16, bfloat16, float32, float64), "
            f"got {arr.dtype}"
        )
    flags = arr.flags  # a new object at each read of arr.flags
    if not flags.writeable:
        raise ValueError("tensor is read-only; expected a writable array")
    if (not (flags.c_contiguous or flags.f_contiguous) and not dry_run_active()
            and _elements_overlap(arr.shape, arr.strides, arr.itemsize)):
        raise _overlap_error()
    return arr


# Above this many elements an irregular layout that the stride rule cannot
# clear is refused rather than enumerated (the enumeration costs 8 bytes each).
OVERLAP_ENUMERATION_LIMIT = 1 << 24


def _elements_overlap(shape: Sequence[int], strides: Sequence[int], itemsize: int) -> bool:
    """True when two elements of the layout (shape, strides in bytes) share a byte.

    Sufficient rule first (it clears every layout made by slicing, transposing
    and reshaping): with the axes of extent > 1 sorted by |stride|, each stride
    must reach past the span of all the smaller axes. A layout that fails it is
    checked exactly by enumerating its byte offsets, up to a size limit.
    """
    axes = sorted((abs(stride), n) for stride, n in zip(strides, shape) if n > 1)
    span = itemsize
    for stride, n in axes:
        if stride < span:
            break
        span = stride * (n - 1) + span
    else:
        return False
    if math.prod(shape) > OVERLAP_ENUMERATION_LIMIT:
        return True
    offsets = np.zeros((), np.int64)
    for stride, n in zip(strides, shape):
        offsets = (offsets[..., None] + np.arange(n, dtype=np.int64) * stride)
    offsets = np.sort(offsets.ravel())
    return bool(np.any(np.diff(offsets) < itemsize))


def fill_array(arr: Array, dist: int, p0: float, p1: float, p2: float, p3: float, key: int, stream: int,
               global_shape: tuple[int, ...] | None = None, start: tuple[int, ...] | None = None) -> None:
    """One call into the C core; byte-swapped or misaligned arrays go through a copy
    (allocated by `staging_buffer` before the caller took the stream)."""
    staged = staging_buffer(arr)
    _core.fill(staged, dist, p0, p1, p2, p3, key, stream, global_shape, start)
    if staged is not arr:
        arr[...] = staged


def staging_buffer(arr: Array) -> Array:
    """`arr` itself when the C core can write it, else a native, aligned array of
    its shape and dtype to fill and copy in. Call it before taking a stream: a
    failed allocation must not use one up."""
    if arr.dtype.isnative and arr.flags.aligned:
        return arr
    return np.empty(arr.shape, dtype=arr.dtype.newbyteorder("="))


def dtype_named(dtype: object) -> np.dtype[Any]:
    """A NumPy dtype from a dtype or its name ("bfloat16" included); TypeError otherwise."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        import ml_dtypes

        bfloat16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bfloat16
    try:
        named: np.dtype[Any] = np.dtype(cast(Any, dtype))
        return named
    except TypeError as exc:
        raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from exc
