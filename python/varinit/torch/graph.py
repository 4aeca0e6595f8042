"""trace: the dataflow of one forward pass of a torch.nn.Module, as a Graph.

`trace(model, example_inputs)` runs the model once, under torch.no_grad(),
in the mode it is in (train or eval), with a `torch.overrides.TorchFunctionMode`
that sees every torch function and Tensor method called on a tensor the
trace follows (an example input, a parameter, or a result of such a call),
and global module hooks that say which module's forward is running. Each
call becomes a Node (its kind from graph_kinds.SPECS); Python control flow
follows the path this pass takes. Nothing needs values: a model on the meta
device with meta inputs traces the same as a real one.

Tensors are matched to nodes by identity (every mapped tensor is kept alive
until the trace ends, so an id is never reused). An in-place op (relu_,
add_, x[i] = v) makes a new node and rebinds its tensor to it. A Python
function torch dispatches that the tables do not list (F.multi_head_attention_forward,
F.normalize, Tensor.__iter__) is not a node: its body runs with the mode on,
so the ops inside it are recorded (that is how nn.MultiheadAttention's
in_proj_weight and out_proj.weight reach two "linear" nodes though out_proj
is never called). A builtin the tables do not list becomes an "opaque" node
named by its public name, listed in Graph.unknown.

The model is left as it was: hooks and the mode are removed even when the
forward raises, every buffer is restored to its bits and its object
(BatchNorm in train mode updates running statistics, spectral norm its
power-iteration vectors), F.embedding is called without max_norm (which
renormalizes the weight in place), and torch's random state is restored
(dropout and rrelu in train mode draw from it).

Because the mode makes `has_torch_function` true, the fused fast paths of
nn.MultiheadAttention and nn.TransformerEncoderLayer in eval mode
(torch._native_multi_head_attention, torch._transformer_encoder_layer_fwd)
are never taken while tracing: the decomposed path is recorded instead.
"""
from __future__ import annotations

import contextlib
import functools
import math
import numbers
import sys
import threading
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Optional, Protocol, Union, cast

import torch
import torch.nn.functional as F
from torch.nn.modules.module import (register_module_forward_hook,
                                     register_module_forward_pre_hook)
from torch.overrides import TorchFunctionMode

from .computed_weights import Call, Operand, template
from .graph_kinds import IGNORE, SPECS, OpSpec, is_inplace_name, public_name
from .repeats import traced_once
from .sharded_model import global_view

KINDS = (
    "input", "param", "constant",
    "linear", "conv", "conv_transpose", "embedding", "embedding_bag", "bilinear",
    "elementwise", "add", "sub", "mul", "div", "scale", "shift", "pow",
    "matmul", "softmax", "log_softmax", "attention", "norm", "dropout", "addcmul",
    "avg_pool", "max_pool", "adaptive_avg_pool", "adaptive_max_pool", "mean", "sum", "var", "std", "cumsum",
    "logsumexp", "cat", "view", "interpolate", "max_unpool", "local_response_norm", "rnn", "scatter", "vector_norm",
    "opaque",
)
# the kinds that look rows up in a table
EMBEDDINGS = ("embedding", "embedding_bag")


@dataclass
class Node:
    """One recorded op (or a source: an input, a parameter, a constant).

    inputs: the nodes whose outputs are this op's tensor operands, in order.
    For kinds with weights (linear, conv, conv_transpose, embedding,
    bilinear, norm, rnn, elementwise PReLU) the activations come first
    (inputs[0]; bilinear inputs[0:2]; rnn the sequence then the initial
    states), and parameters read directly are in `params`, not `inputs`; a
    weight computed inside forward (a weight-norm parametrization,
    `self.weight.t()`) is a further input, and attrs["weight_from"]
    (["bias_from"], ...) names the parameters it is computed from. For
    "view", inputs[0] is the tensor moved or selected, further inputs are
    index tensors. An op that returns several tensors (chunk, split, LSTM's
    (output, h_n, c_n), max pooling with indices) gives one node per tensor,
    attrs["output"] = its position; a view that splits also records
    attrs["dim"] and attrs["slice"] = (start, stop) along it.
    replay: for elementwise / add / sub / mul / div / scale / shift / pow, a
    function of tensors (one per input, same order) that recomputes the op
    out of place; None otherwise.
    call: for an op on parameters alone (not in place), the call as recorded,
    to run it again on other parameter values (`computed_weights`).
    """

    index: int
    kind: str
    target: str
    inputs: list[int]
    params: dict[str, str]
    attrs: dict[str, Any]
    shape: tuple[int, ...]
    dtype: torch.dtype
    module: str
    replay: Callable[..., torch.Tensor] | None = None
    call: Call | None = None


@dataclass
class Graph:
    """The dataflow of one forward pass; nodes in execution (topological) order.

    params: every parameter of the model by its canonical name (the first in
    named_parameters order); tied: canonical name -> the other names of the
    same tensor, for tensors with several; uses: canonical name -> the nodes
    that read it (its "param" node, the nodes naming it in params, and layer
    nodes whose weight is computed from it, attrs["*_from"]), [] if none;
    unknown: the "opaque" nodes; computed: the nodes computed from parameters
    alone (not the signal: a weight made inside forward, a view of a parameter);
    fixed: the nodes computed from neither the example's floating values nor a
    parameter (constants, integer inputs and what is computed from them alone: a
    graph's node degrees), whose attrs["values"] hold `value_stats` where the trace
    ran on real tensors.
    """

    nodes: list[Node]
    inputs: list[int]       # per example input its "input" node (a tensor passed twice: one node, twice)
    outputs: list[int]
    params: dict[str, torch.nn.Parameter]
    tied: dict[str, list[str]]
    uses: dict[str, list[int]]
    unknown: list[int]
    computed: frozenset[int] = frozenset()
    fixed: frozenset[int] = frozenset()
    _readers: Optional[dict[int, list[Node]]] = field(default=None, init=False, repr=False, compare=False)

    def readers(self, index: int) -> list[Node]:
        """The nodes that read node `index`'s value, each once, in execution order."""
        if self._readers is None:
            self._readers = {}
            for node in self.nodes:
                for i in dict.fromkeys(node.inputs):
                    self._readers.setdefault(i, []).append(node)
        return self._readers.get(index, [])


# What a model is called with: a tensor, a tuple or list of tensors, or keyword tensors
ExampleInputs = Union[torch.Tensor, Sequence[torch.Tensor], dict[str, torch.Tensor]]
# What a kind's handler returns: kind, inputs, params, attrs, replay
Recorded = tuple[str, list[int], dict[str, str], dict[str, Any], Union[Callable[..., torch.Tensor], None]]
# The tensors an op returned, with their positions among its outputs
Outputs = list[tuple[int, torch.Tensor]]


def trace(model: torch.nn.Module, example_inputs: ExampleInputs, *, repeats: bool = True) -> Graph:
    """Record the dataflow of one forward pass of `model` on `example_inputs`, as a Graph.

    The model runs once, under ``torch.no_grad()``, in the mode it is in, with
    a ``torch.overrides.TorchFunctionMode`` that sees every torch function and
    tensor method applied to a traced tensor (an input, a parameter, or a
    result of such a call) and module hooks that say which module runs it.
    It follows Python control flow (the path this pass takes), sees
    functional calls, operators and views wherever they are written, records
    a module called twice as two uses of its parameters, and works on meta
    tensors. The model, its buffers and torch's random state are left as they
    were.

    On the meta device, a block that is an exact copy of one already traced
    (same class, shapes, attributes and kind of arguments: a transformer's
    repeated layers) is not run again: the first call's nodes are copied
    under its names (`varinit.torch.repeats`); the graph is the same.

    Parameters
    ----------
    model : torch.nn.Module
        The model (real or on the meta device).
    example_inputs : torch.Tensor, tuple, list or dict
        A tensor (the one positional argument), a tuple or list of tensors (the
        positional arguments) or a dict of str to tensor (the keyword
        arguments); real or meta tensors.
    repeats : bool, default True
        Copy the record of repeated blocks on the meta device. False runs every
        call, for a forward that reads state kept outside its modules and
        arguments (a global counter), which the copy cannot see.

    Returns
    -------
    varinit.torch.graph.Graph
        Its ``nodes`` in execution order, each with a ``kind``; the parameters,
        the tied parameters, the nodes that use each parameter, and the
        ``unknown`` ops no rule covers.

    Examples
    --------
    >>> import torch, varinit
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    >>> [node.kind for node in varinit.torch.trace(net, torch.zeros(2, 4)).nodes]
    ['input', 'linear', 'elementwise']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model = uncompiled(model)
    args, kwargs = example_call(example_inputs)
    with global_view(model):   # DTensor parameters (FSDP2, tensor parallel) as their global shapes
        return _trace(model, args, kwargs, repeats)


def _trace(model: torch.nn.Module, args: tuple[torch.Tensor, ...], kwargs: dict[str, torch.Tensor],
           repeats: bool) -> Graph:
    recorder = _Recorder(model)
    tensors = [*args, *kwargs.values(), *model.parameters(), *model.buffers()]
    once = traced_once(recorder, model) if repeats and all(t.is_meta for t in tensors) else contextlib.nullcontext()
    devices = _cuda_devices(model, list(args) + list(kwargs.values()))
    with StateGuard(model), torch.random.fork_rng(devices=devices), torch.no_grad():
        for i, tensor in enumerate(args):
            recorder.add_input(tensor, {"position": i})
        for key, tensor in kwargs.items():
            recorder.add_input(tensor, {"key": key})
        hooks = []
        try:
            hooks.append(register_module_forward_pre_hook(recorder.enter))
            hooks.append(register_module_forward_hook(recorder.leave, always_call=True))
            with once, recorder:
                output = model(*args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        return recorder.graph(model, output)


# frames above an op that are looked at for a custom autograd.Function's forward
FUNCTION_FRAMES = 6


def _custom_function_forward(frame: types.FrameType | None) -> str | None:
    """The class of the custom `torch.autograd.Function` whose forward (within
    FUNCTION_FRAMES frames of `frame`) called the op being recorded, else None: no
    TorchFunctionMode sees its apply, and the ops its forward records take its backward
    (a straight-through estimator's identity for round), not their own derivative."""
    for _ in range(FUNCTION_FRAMES):
        if frame is None:
            return None
        caller = frame.f_back
        if frame.f_code.co_name == "forward" and caller is not None and caller.f_code.co_name == "apply":
            cls = caller.f_locals.get("cls")   # Function.apply(cls, ...) runs forward (from C)
            if isinstance(cls, type) and issubclass(cls, torch.autograd.Function):
                return cls.__name__
        frame = caller
    return None


def example_call(example_inputs: object) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """(args, kwargs) to call a model with its example inputs; TypeError naming what is not a tensor."""
    if isinstance(example_inputs, torch.Tensor):
        _check_example(example_inputs, "example_inputs")
        return (example_inputs,), {}
    if isinstance(example_inputs, (tuple, list)):
        for i, value in enumerate(example_inputs):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"example_inputs[{i}] must be a torch.Tensor, "
                                f"got {type(value).__name__}")
            _check_example(value, f"example_inputs[{i}]")
        return tuple(example_inputs), {}
    if isinstance(example_inputs, dict):
        for key, value in example_inputs.items():
            if not isinstance(key, str):
                raise TypeError(f"example_inputs keys must be str (keyword argument names), "
                                f"got {type(key).__name__}")
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"example_inputs[{key!r}] must be a torch.Tensor, "
                                f"got {type(value).__name__}")
            _check_example(value, f"example_inputs[{key!r}]")
        return (), dict(example_inputs)
    raise TypeError("example_inputs must be a torch.Tensor, a tuple or list of tensors, or a "
                    f"dict of str -> tensor, got {type(example_inputs).__name__}")


def _check_example(tensor: torch.Tensor, name: str) -> None:
    """A ValueError for an example input with values but no elements: its moments are unknown."""
    if tensor.numel() == 0 and not tensor.is_meta:
        raise ValueError(f"{name} has no elements (shape {tuple(tensor.shape)}): its moments cannot be "
                         "read; pass at least one example, or meta tensors for the shapes alone")


def uncompiled(model: torch.nn.Module) -> torch.nn.Module:
    """The module a `torch.compile` wrapper holds (its parameters are that module's, named
    without the wrapper's `_orig_mod.` prefix), else `model`: the trace and the fills see
    the eager module, and a compiled model initializes as the same model uncompiled."""
    if type(model).__name__ == "OptimizedModule" and type(model).__module__.startswith("torch._dynamo"):
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, torch.nn.Module):
            return inner
    return model


def _cuda_devices(model: torch.nn.Module, inputs: list[torch.Tensor]) -> list[int]:
    tensors = list(model.parameters()) + list(model.buffers()) + inputs
    return sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})


def _functorch_wrapped(tensor: torch.Tensor) -> bool:
    """Whether a tensor is a functorch wrapper (a vmap's batched tensor, a grad transform's
    level), whose `.item()` raises: Hugging Face's masks built by vmap over an index
    function (`and_mask_function` with a padding mask: T5Gemma2's encoder)."""
    return bool(torch._C._functorch.is_functorch_wrapped_tensor(tensor))


class StateGuard:
    """Puts the model's state back when a trace or a measured pass ends: every buffer
    (same object, same bits), and every tensor a module holds as a plain attribute,
    alone or in a list, tuple or dict.

    A plain attribute is what Meta's Llama reference code keeps `freqs_cis` and its
    key/value caches in, and its forward reassigns it (`self.freqs_cis =
    self.freqs_cis.to(h.device)`; torchvision's AnchorGenerator does the same with its
    list `cell_anchors`): under a trace of meta parameters that left meta tensors
    there, and every later forward raised. An attribute that held tensors, or holds
    them at the end, gets its earlier value back (removed where there was none): the
    same object, with its earlier items, and each tensor with its bits where it had
    values and is state, not a weight computed from parameters (the old
    `weight_norm`'s `weight`, recomputed before each forward)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.saved = [(module, name, buffer, buffer.detach().clone())
                      for module in model.modules()
                      for name, buffer in module.named_buffers(recurse=False)]
        # per module: its attributes as they were, and the items of those that held tensors
        self.attributes = [(module, dict(module.__dict__), {name: _items(value) for name, value in
                                                            module.__dict__.items() if _holds_tensors(value)})
                           for module in model.modules()]
        self.values = {id(t): t.detach().clone() for _, before, held in self.attributes
                       for name, items in held.items() for t in _tensors_held(before[name], items)
                       if not t.is_meta and not t.requires_grad}

    def __enter__(self) -> StateGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for module, name, buffer, copy in self.saved:
                if getattr(module, name) is not buffer:
                    setattr(module, name, buffer)
                buffer.copy_(copy)
            for module, before, held in self.attributes:
                now = module.__dict__
                for name in [n for n, v in now.items() if n not in before and _holds_tensors(v)]:
                    del now[name]
                for name in [n for n, v in now.items() if n in before and n not in held and _holds_tensors(v)]:
                    now[name] = before[name]   # a lazy attribute made in forward (a mask, from None)
                for name, items in held.items():
                    value = now[name] = before[name]
                    if isinstance(value, list) and items is not None:
                        value[:] = items
                    elif isinstance(value, dict) and items is not None:
                        value.clear()
                        value.update(items)
                    for t in _tensors_held(value, items):
                        if id(t) in self.values:
                            t.copy_(self.values[id(t)])


def _holds_tensors(value: object) -> bool:
    """A tensor, or a list, tuple or dict with a tensor among its items."""
    if isinstance(value, torch.Tensor):
        return True
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return any(isinstance(v, torch.Tensor) for v in items)


def _tensors_held(value: object, items: Any) -> list[torch.Tensor]:
    """The tensors an attribute held: itself, or its container's `items` (_items)."""
    if items is None:
        return [value] if isinstance(value, torch.Tensor) else []
    return [t for t in (items.values() if isinstance(items, dict) else items) if isinstance(t, torch.Tensor)]


def _items(value: object) -> Any:
    """A container's items as they are now (a copy, since the forward may change them in
    place); None for a tensor."""
    if isinstance(value, dict):
        return dict(value)
    return list(value) if isinstance(value, (list, tuple)) else None


@contextlib.contextmanager
def meta_view(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Inside the block, every parameter and buffer of `model` is a meta tensor of
    the same shape (tied tensors stay tied); on exit the real ones are back.

    A trace needs shapes, not values: tracing through this view costs no
    arithmetic (GPT-2 small's 50257-token head alone is 5 GFLOP for 128 tokens)."""
    swapped: list[tuple[dict[str, Any], str, torch.Tensor]] = []
    twins: dict[int, torch.Tensor] = {}
    for module in model.modules():
        tables: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
        for table in tables:
            for name, tensor in table.items():
                if tensor is None or tensor.is_meta:
                    continue
                twin = twins.get(id(tensor))
                if twin is None:
                    twin = tensor.detach().to("meta")
                    if isinstance(tensor, torch.nn.Parameter):
                        twin = torch.nn.Parameter(twin, requires_grad=tensor.requires_grad)
                    twins[id(tensor)] = twin
                swapped.append((table, name, tensor))
                table[name] = twin
    try:
        yield model
    finally:
        for table, name, tensor in swapped:
            table[name] = tensor


class ExpandingMode(Protocol):
    """A TorchFunctionMode that expands Python functions (see `expand`)."""

    expanding: list[Callable[..., Any]]

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...


def expand(mode: ExpandingMode, func: types.FunctionType, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """Run the Python function `func` with `mode` on for the calls in its body
    (an `unguarded` copy); `mode.expanding` holds the functions being expanded,
    so one that still dispatches to the mode is not expanded again."""
    mode.expanding.append(func)
    try:
        with mode:
            return unguarded(func)(*args, **kwargs)
    finally:
        mode.expanding.pop()


def _never(*args: object) -> bool:
    return False


@functools.lru_cache(maxsize=None)
def unguarded(func: types.FunctionType) -> types.FunctionType:
    """A copy of the Python function `func` whose own __torch_function__ check
    is off, so its body runs under the mode and the calls inside it are
    recorded. Calling `func` itself with the mode on would dispatch straight
    back to the mode (its first line is `if has_torch_function(...): return
    handle_torch_function(func, ...)`), for ever. The copy reads the names
    torch.nn.functional and torch._tensor check with from its own globals;
    the module's globals are not touched."""
    namespace = dict(func.__globals__)
    namespace.update(has_torch_function=_never, has_torch_function_unary=_never,
                     has_torch_function_variadic=_never)
    copy = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__,
                              func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    return copy


def _int_dims(dim: object) -> list[int] | None:
    """A reduction's dim argument as a list of ints (one int, or a list or tuple of them);
    None for anything else (no dim: the whole tensor; a tensor: max(a, b)'s other operand)."""
    dims = list(dim) if isinstance(dim, (list, tuple)) else [dim]
    return [d for d in dims if isinstance(d, int)] if dims and all(isinstance(d, int) for d in dims) else None


def _tensors(values: Iterable[object]) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(_tensors(value))
    return found


def _bind(names: Sequence[str], args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Sequence[Any]]:
    """The arguments by name (positional ones by `names`), and the positional ones beyond."""
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound, args[len(names):]


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, torch.Tensor)


def _ntuple(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        ints = tuple(int(v) for v in value)
        return ints * n if len(ints) == 1 else ints
    return (int(value),) * n


def _dims(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """A reduction's dims as sorted non-negative ints; None (all) stays None."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(d % ndim for d in dims)) if ndim else dims


def _index(index: Any) -> Any:
    """A __getitem__ index with its tensors replaced by "tensor" (they are inputs)."""
    if isinstance(index, torch.Tensor):
        return "tensor"
    if isinstance(index, (tuple, list)):
        return type(index)(_index(i) for i in index)
    return index


def einsum_terms(equation: str) -> tuple[list[str], str]:
    """An einsum equation's operand terms and its output term (without "->", the
    letters used once, as einsum takes them)."""
    lhs, arrow, out = equation.replace(" ", "").partition("->")
    if not arrow:
        out = "".join(letter for letter in lhs if letter.isalpha() and lhs.count(letter) == 1)
    return lhs.split(","), out


def _einsum_inner(equation: str, a: torch.Tensor, b: torch.Tensor) -> int:
    """The product of the sizes einsum sums over: letters of the two operands
    absent from the output."""
    terms, out = einsum_terms(equation)
    sizes: dict[str, int] = {}
    for term, operand in zip(terms, (a, b)):
        shape = tuple(operand.shape)
        if "..." in term:
            head, tail = term.split("...")
            sizes.update(zip(head, shape[:len(head)]))
            sizes.update(zip(tail, shape[len(shape) - len(tail):]))
        else:
            sizes.update(zip(term, shape))
    inner = 1
    for letter, size in sizes.items():
        if letter not in out:
            inner *= int(size)
    return inner


def _operands(spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any]) -> list[Any]:
    """The non-weight tensor arguments: named ones in order, then the positional
    ones beyond the names, then keyword ones the names do not list."""
    named = [bound[n] for n in spec.names if n in bound and n not in spec.roles]
    other = [v for k, v in bound.items() if k not in spec.names and k != "out"]
    return named + list(extra) + other


def _with_argument(names: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any], name: str,
                   value: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """args, kwargs with the argument `name` (positional or keyword) set to value."""
    position = names.index(name)
    if name not in kwargs and position < len(args):
        return args[:position] + (value,) + args[position + 1:], kwargs
    return args, {**kwargs, name: value}


class _Recorder(TorchFunctionMode):
    """The mode and hooks of one trace, and the nodes they record."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.nodes: list[Node] = []
        # per node: parameters it is computed from; None: from an input
        self.from_params: list[tuple[str, ...] | None] = []
        # per node: whether it is fixed, computed from neither the example's floating
        # values nor a parameter (a constant, integer inputs: a graph's degrees)
        self.fixed: list[bool] = []
        self.node_of: dict[int, int] = {}          # id(tensor) -> node index
        self.alive: list[torch.Tensor] = []        # every mapped tensor, so its id is never reused during the trace
        self.constant_ids: set[int] = set()
        self.zeros_made: set[int] = set()          # the tensors torch.zeros(_like) made in forward
        self.param_name: dict[int, str] = {}
        self.buffer_name: dict[int, str] = {}
        self.module_name: dict[int, str] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            self.param_name.setdefault(id(param), name)
        for name, buffer in model.named_buffers(remove_duplicate=False):
            self.buffer_name.setdefault(id(buffer), name)
        for name, module in model.named_modules(remove_duplicate=False):
            self.module_name.setdefault(id(module), name)
        self.inputs: list[int] = []
        self.stack: list[str] = []
        self.expanding: list[Callable[..., Any]] = []
        self.decomposing: list[str] = []   # the public names of the _DECOMPOSED ops being recorded
        self.thread = threading.get_ident()

    # -------------------------------------------------------------- modules

    @property
    def module(self) -> str:
        return self.stack[-1] if self.stack else ""

    # The hooks are global: a module running in another thread meanwhile is not ours.

    def enter(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if threading.get_ident() == self.thread:
            # a module built inside forward() is not in the model: it counts as its caller
            self.stack.append(self.module_name.get(id(module), self.module))

    def leave(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if threading.get_ident() == self.thread:
            self.stack.pop()

    # -------------------------------------------------------------- sources

    def _new_node(self, kind: str, target: str, inputs: list[int], params: dict[str, str], attrs: dict[str, Any],
                  tensor: torch.Tensor, replay: Callable[..., torch.Tensor] | None = None,
                  from_params: tuple[str, ...] | None = None) -> int:
        node = Node(len(self.nodes), kind, target, inputs, params, attrs, tuple(tensor.shape),
                    tensor.dtype, self.module, replay)
        return self.append(node, tensor, from_params)

    def append(self, node: Node, tensor: torch.Tensor | None, from_params: tuple[str, ...] | None) -> int:
        """Add `node` (its index the next one), the node of `tensor` from now on if given.
        A fixed node's floating values, where they are real, are summed up in
        attrs["values"] (`value_stats`)."""
        # (x.expand_as(y), x.type_as(y): y gives a shape or a dtype, not values)
        read = node.inputs[:1] if node.kind == "view" and node.attrs.get("op") in _SHAPED_LIKE else node.inputs
        fixed = (node.kind == "constant" or (node.kind == "input" and not node.dtype.is_floating_point)
                 or (node.kind not in ("input", "param") and not node.params and bool(read)
                     and all(self.fixed[i] for i in read)))
        self.nodes.append(node)
        self.from_params.append(from_params)
        self.fixed.append(fixed)
        if (fixed and tensor is not None and type(tensor) is torch.Tensor and tensor.is_floating_point()
                and tensor.layout == torch.strided and not tensor.is_meta):
            # (before the tensor is mapped: the mode lets the ops reading it pass unrecorded)
            node.attrs = {**node.attrs, "values": value_stats(tensor)}
        if tensor is not None:
            self.node_of[id(tensor)] = node.index
            self.alive.append(tensor)
            if node.kind == "constant":
                self.constant_ids.add(id(tensor))
            else:       # a constant written into by an op on traced tensors is traced from then on
                self.constant_ids.discard(id(tensor))
        return node.index

    def add_input(self, tensor: torch.Tensor, attrs: dict[str, Any]) -> None:
        # The same tensor passed twice (self-attention's query, key, value) is
        # one node, listed twice in Graph.inputs: the model must see the very
        # objects it was given, or it may take another path (MultiheadAttention
        # packs its projections only when query is key is value).
        index = self.node_of.get(id(tensor))
        if index is None:
            index = self._new_node("input", "", [], {}, attrs, tensor)
        self.inputs.append(index)

    def node_for(self, tensor: torch.Tensor) -> int:
        """The node of an operand: its producer, or a new param / constant node."""
        index = self.node_of.get(id(tensor))
        if index is not None:
            return index
        name = self.param_name.get(id(tensor))
        if name is not None:
            return self._new_node("param", "", [], {"param": name}, {}, tensor,
                                  from_params=(name,))
        attrs: dict[str, Any] = {}
        if id(tensor) in self.buffer_name:
            attrs["buffer"] = self.buffer_name[id(tensor)]
        if tensor.numel() == 1 and tensor.device.type != "meta" and not _functorch_wrapped(tensor):
            attrs["value"] = tensor.item()
        if id(tensor) in self.zeros_made:
            attrs["zeros"] = True   # a state that starts at zeros (x.new_zeros(...), on meta too)
        return self._new_node("constant", "", [], {}, attrs, tensor, from_params=())

    def traced(self, tensor: torch.Tensor) -> bool:
        key = id(tensor)
        return key in self.param_name or (key in self.node_of and key not in self.constant_ids)

    # -------------------------------------------------------------- dispatch

    def __torch_function__(self, func: Any, arg_types: Any = (), args: Any = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        try:
            spec = SPECS.get(func)
        except TypeError:                # an unhashable callable: not in the tables
            spec = None
        if spec is not None and spec.kind == IGNORE:
            made = func(*args, **kwargs)
            if spec.op in _ZEROS and isinstance(made, torch.Tensor):   # known zeros, on meta too
                self.zeros_made.add(id(made))
                self.alive.append(made)
            return made
        operands = _tensors(args) + _tensors(v for k, v in kwargs.items() if k != "out")
        if not any(self.traced(t) for t in operands):
            return func(*args, **kwargs)
        if spec is None and type(func) is types.FunctionType and func not in self.expanding:
            return self._expand(func, args, kwargs)
        decomposed = _DECOMPOSED.get(func) if spec is None and "out" not in kwargs else None
        if decomposed is not None:   # an op without a rule that equals a few with rules: record those
            self.decomposing.append(public_name(func))
            try:
                with self:
                    return decomposed(*args, **kwargs)
            finally:
                self.decomposing.pop()
        first = len(self.nodes)
        out = self._record(func, spec, args, kwargs, operands)
        function = _custom_function_forward(sys._getframe(1))
        if function is not None:   # its gradient is the Function's backward, not the ops' derivative
            for node in self.nodes[first:]:
                node.attrs = {**node.attrs, "custom_backward": function}
        return out

    def _expand(self, func: types.FunctionType, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        # If the copy still dispatches to the mode (a check the copy does not
        # switch off), `func` is found in `expanding` and recorded as opaque.
        return expand(self, func, args, kwargs)

    def _record(self, func: Any, spec: OpSpec | None, args: tuple[Any, ...], kwargs: dict[str, Any],
                operands: list[torch.Tensor]) -> Any:
        # an op recorded for a decomposed one (torch.where for torch.maximum) is named by both
        target = public_name(func) + (f" (in {self.decomposing[0]})" if self.decomposing else "")
        bound: dict[str, Any]
        extra: Sequence[Any]
        bound, extra = _bind(spec.names, args, kwargs) if spec else ({}, ())
        if spec is not None and spec.kind in EMBEDDINGS and bound.get("max_norm") is not None:
            # max_norm renormalizes the looked-up rows of the weight in place
            args, kwargs = _with_argument(spec.names, args, kwargs, "max_norm", None)
        if spec is not None and spec.kind == "scatter":
            # read before the write: whether the written tensor is zeros made in forward (the
            # torch.zeros_like a mixture of experts writes its experts' rows into)
            bound["zeros_before"] = self._made_zeros(bound.get("input"))
        inplace = ((spec.inplace if spec else is_inplace_name(func))
                   or bound.get("inplace") is True or "out" in kwargs)
        if inplace:     # a constant written into is recorded as it was before the write
            for t in operands:
                if not self.traced(t):
                    self.node_for(t)
        if spec is not None and spec.kind == "grouped_mm" and any(t.is_meta for t in operands):
            # torch's meta kernel takes bfloat16 only (the CUDA kernel's restriction): the shape
            out = _grouped_mm_on_meta(bound, func, args, kwargs)
        else:
            out = func(*args, **kwargs)
        outs: Outputs
        if spec is not None and spec.op == "__setitem__":
            outs = [(0, args[0])]
        elif isinstance(out, torch.Tensor):
            outs = [(0, out)]
        elif isinstance(out, (list, tuple)):
            outs = [(k, o) for k, o in enumerate(out) if isinstance(o, torch.Tensor)]
        else:
            return out
        if not outs:   # sizes, flags (nanoGPT's LayerNorm reads its weight's .shape): no dataflow
            return out
        kind: str
        inputs: list[int]
        params: dict[str, str]
        attrs: dict[str, Any]
        replay: Callable[..., torch.Tensor] | None
        if spec is None or spec.kind == "opaque":
            kind, inputs, params, attrs, replay = (
                "opaque", [self.node_for(t) for t in operands], {}, {}, None)
        else:
            kind, inputs, params, attrs, replay = getattr(self, "_" + spec.kind)(
                spec, bound, extra, outs)
        if isinstance(out, torch.Tensor) and not inplace and any(out is t for t in operands):
            if kind == "view":          # x.contiguous(), x.float() returning x: nothing moved
                return out
            # F.dropout(x, training=False) returns x itself: a new tensor object
            # keeps the dropout node from replacing x's node for x's other uses
            out = out.view_as(out)
            outs = [(0, out)]
        from_params = self.from_params_of(inputs, params)
        several = isinstance(out, (list, tuple))
        for k, tensor in outs:
            node_attrs = attrs if len(outs) == 1 else {**attrs, "output": k,
                                                       **self._part(spec, extra, kwargs, outs, k)}
            index = self._new_node(kind, target, list(inputs), dict(params), node_attrs, tensor,
                                   replay if len(outs) == 1 else None, from_params)
            if from_params and not inplace:
                self.nodes[index].call = self._call(func, args, kwargs, inputs, params, k if several else None)
        return out

    def _call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], inputs: list[int],
              params: dict[str, str], output: int | None) -> Call | None:
        """The Call of an op on parameters alone, or None if one of its tensor operands is
        neither among the node's inputs nor its params."""
        roles = {name: role for role, name in params.items()}
        missing = False

        def refer(tensor: torch.Tensor) -> Operand | None:
            nonlocal missing
            name = self.param_name.get(id(tensor))
            if name is not None and name in roles:
                return Operand("param", roles[name])
            index = self.node_of.get(id(tensor))
            if index is not None and index in inputs:
                return Operand("input", inputs.index(index))
            missing = missing or bool(self.params_behind(tensor))
            return None

        made = Call(func, template(args, refer), template(kwargs, refer), output)
        return None if missing else made

    def params_behind(self, tensor: torch.Tensor) -> tuple[str, ...]:
        """The parameters a tensor is computed from alone: (its name) for a parameter; () for
        a tensor computed from an input, a constant, or one the trace does not follow."""
        name = self.param_name.get(id(tensor))
        if name is not None:
            return (name,)
        index = self.node_of.get(id(tensor))
        return (self.from_params[index] or ()) if index is not None else ()

    def from_params_of(self, inputs: list[int], params: dict[str, str]) -> tuple[str, ...] | None:
        """The parameters a node with these inputs and params is computed from; None: from an input."""
        names: dict[str, None] = {}
        for i in inputs:
            source = self.from_params[i]
            if source is None:
                return None
            names.update(dict.fromkeys(source))
        names.update(dict.fromkeys(params.values()))
        return tuple(names)

    def _wire(self, operands: Iterable[object],
              roles: Iterable[tuple[str, object]]) -> tuple[list[int], dict[str, str], dict[str, Any]]:
        """inputs, params and *_from attrs for activation operands and (role, value) weights."""
        inputs = [self.node_for(t) for t in _tensors(operands)]
        params: dict[str, str] = {}
        attrs: dict[str, Any] = {}
        for role, value in roles:
            if not isinstance(value, torch.Tensor):
                continue
            if role.startswith("running_"):
                attrs[role] = self.buffer_name.get(id(value))
                continue
            name = self.param_name.get(id(value))
            if name is not None:
                params[role] = name
                continue
            index = self.node_for(value)
            inputs.append(index)
            source = self.from_params[index]
            if source is not None:
                attrs[f"{role}_from"] = list(source)
        return inputs, params, attrs

    def _wire_spec(self, spec: OpSpec, bound: dict[str, Any],
                   extra: Sequence[Any]) -> tuple[list[int], dict[str, str], dict[str, Any]]:
        return self._wire(_operands(spec, bound, extra), [(r, bound.get(r)) for r in spec.roles])

    # -------------------------------------------------------------- kinds

    def _layer(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        inputs, params, attrs = self._wire_spec(spec, bound, extra)
        return spec.kind, inputs, params, attrs, None

    _linear = _bilinear = _layer

    def _where(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """where(condition, x, number) (or number, x): the kept entries of x pass (a "view"
        with op "masked_fill" and the number as its value); where(condition, x, y) of three
        tensors: an "elementwise" op of (x, y, condition), so one computed from x alone
        (torch.where(x > 0, x, 0.1 * x)) is a function of x; anything else has no rule."""
        condition, a, b = bound.get("condition"), bound.get("input"), bound.get("other")
        for kept, filled in ((a, b), (b, a)):
            value = _scalar_value(filled)
            if isinstance(filled, torch.Tensor) and isinstance(kept, torch.Tensor) and self._made_zeros(filled) \
                    and filled.shape == kept.shape:
                value = 0.0   # torch.where(x > 0, x, torch.zeros_like(x)): a ReLU written out
            if isinstance(kept, torch.Tensor) and kept.dim() > 0 and isinstance(value, (int, float)):
                by_itself = self._masked_by_itself("where", kept, condition, value, kept is a)
                if by_itself is not None:
                    return by_itself
                inputs = [self.node_for(kept)] + [self.node_for(t) for t in _tensors([condition])]
                return "view", inputs, {}, {"op": "masked_fill", "value": float(value)}, None
        operands = _tensors([a, b, condition])
        if len(operands) == 3:
            return "elementwise", [self.node_for(t) for t in operands], {}, {"op": "where"}, _where_replay
        return "opaque", [self.node_for(t) for t in _tensors([condition, a, b])], {}, {}, None

    def _logical(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """and / or / xor / not of boolean masks: an "elementwise" op of them."""
        operands = _tensors([bound.get("input"), bound.get("other")])
        if not all(t.dtype == torch.bool for t in operands):
            return "opaque", [self.node_for(t) for t in operands], {}, {}, None
        return "elementwise", [self.node_for(t) for t in operands], {}, {"op": spec.op}, getattr(torch, spec.op)

    def _compare(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """x > number, x < y, ... of floating tensors: an "elementwise" op (a mask that is a
        function of x per element); of integers (indices), no rule."""
        a, b = bound.get("input"), bound.get("other")
        operands = _tensors([a, b])
        if not isinstance(a, torch.Tensor) or not all(t.is_floating_point() for t in operands):
            return "opaque", [self.node_for(t) for t in operands], {}, {}, None
        compare = getattr(torch, spec.op)
        if isinstance(b, torch.Tensor) and len(operands) == 2 and self._made_zeros(b) and b.shape == a.shape:
            b, operands = 0.0, [a]   # x <= torch.zeros_like(x): against the number 0
        if len(operands) == 2:
            return "elementwise", [self.node_for(t) for t in operands], {}, {"op": spec.op}, compare
        return "elementwise", [self.node_for(operands[0])], {}, {"op": spec.op, "other": b}, functools.partial(
            _compared, compare, b)

    def _addmm(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """beta * input + alpha * (mat1 @ mat2) with a parameter mat2: a linear layer whose
        weight is stored (in, out) (attrs["weight_layout"]); otherwise an op without a rule."""
        weight, bias = bound.get("mat2"), bound.get("input")
        plain = bound.get("beta", 1) == 1 and bound.get("alpha", 1) == 1
        if not (plain and isinstance(weight, torch.Tensor) and weight.dim() == 2
                and id(weight) in self.param_name):
            return "opaque", [self.node_for(t) for t in _tensors([bias, bound.get("mat1"), weight])], {}, {}, None
        inputs, params, attrs = self._wire([bound.get("mat1")], [("weight", weight), ("bias", bias)])
        attrs["weight_layout"] = "in_out"
        return "linear", inputs, params, attrs, None

    def _masked_by_itself(self, op: str, kept: torch.Tensor, mask: Any, value: float,
                          kept_first: bool) -> Recorded | None:
        """where(mask, kept, value) (where(mask, value, kept) when not kept_first) with the
        mask computed from kept alone (torch.where(x > 0, x, 0), x.masked_fill(x < 0, 0),
        x[x < 0] = 0: a ReLU written out): one function of kept per element, an
        "elementwise" node of it and the mask; else None (a mask laid over kept: an
        attention mask, padding)."""
        if not (isinstance(mask, torch.Tensor) and self.traced(mask)):
            return None
        kept_node = self.node_for(kept)
        source = self._elementwise_of(self.node_for(mask), kept_node)
        if source is None:
            return None
        replay = functools.partial(_where_number, float(value), kept_first)
        # the mask's own source: kept, or what kept copies (x.clone().masked_fill_(x < 0, 0))
        return "elementwise", [source, self.node_for(mask)], {}, {"op": op, "value": float(value)}, replay

    def _elementwise_of(self, index: int, source: int) -> int | None:
        """The node from which node `index` is computed alone through elementwise ops
        (comparisons, activations, arithmetic with numbers), when that is `source` or what
        `source` copies through same-shape views (x.clone()): a mask made from it; else None."""
        sources = [source]
        while self.nodes[sources[-1]].kind == "view" and len(self.nodes[sources[-1]].inputs) == 1 \
                and self.nodes[self.nodes[sources[-1]].inputs[0]].shape == self.nodes[sources[-1]].shape:
            sources.append(self.nodes[sources[-1]].inputs[0])
        stack, seen, reached = [index], set(), set()
        while stack:
            i = stack.pop()
            if i in sources:
                reached.add(i)
                continue
            if i in seen:
                continue
            seen.add(i)
            node = self.nodes[i]
            if node.kind not in ("elementwise", "scale", "shift") or not node.inputs:
                return None
            stack.extend(node.inputs)
        return reached.pop() if len(reached) == 1 else None

    def _made_zeros(self, tensor: Any) -> bool:
        """Whether `tensor` is a tensor made in forward (not traced) that holds only zeros:
        read off its values, or on meta, made by torch.zeros(_like) or new_zeros."""
        if not isinstance(tensor, torch.Tensor) or self.traced(tensor):
            return False
        return id(tensor) in self.zeros_made if tensor.is_meta else not bool(tensor.any())

    def _scatter(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """x[index] = value with a tensor value, x.scatter(dim, index, src) and x.copy_(src):
        inputs (x before the write, value), attrs "share" the fraction of x's elements
        written. x.index_add(dim, index, source), x.scatter_add(dim, index, src) and
        x.scatter_reduce(dim, index, src, reduce) with reduce sum, mean, amax or amin:
        inputs (x, the source, the index), attrs `landing` (how many source elements land
        on an element of x), "alpha", "reduce", "include_self";
        "zeros_before": x was zeros made in forward (read before the write). Anything
        else (a number written, an index that cannot be read, a product) has no rule."""
        base = bound["input"]
        if spec.op in ("copy_", "scatter", "__setitem__"):
            value, index = bound.get("value" if spec.op == "__setitem__" else "src"), bound.get("index")
            share: float | None = 1.0 if spec.op == "copy_" else None
            if spec.op == "__setitem__":
                share = _written_share(base, index)
            elif spec.op == "scatter" and isinstance(index, torch.Tensor) and base.dim() and index.dim():
                # on meta, a write's index taken as distinct positions (one overwriting another is rare)
                share = (min(index.numel() / max(base.numel(), 1), 1.0) if index.is_meta else
                         landing(base, int(bound.get("dim", 0)) % base.dim(), index, whole_rows=False)["written"])
            number = _scalar_value(value)
            if spec.op == "__setitem__" and isinstance(number, (int, float)) and base.is_floating_point() \
                    and isinstance(index, torch.Tensor) and index.dtype == torch.bool and index.shape == base.shape:
                # x[x < 0] = 0 on a clone: where(x < 0, 0, x), a ReLU written out (as masked_fill_)
                by_itself = self._masked_by_itself("setitem", base, index, number, False)
                if by_itself is not None:
                    return by_itself
            if isinstance(value, torch.Tensor) and share is not None:
                return "scatter", [self.node_for(base), self.node_for(value)], {}, {
                    "op": "setitem", "share": share, "zeros_before": bound["zeros_before"]}, None
            # a number written (a router's mask), or an index that cannot be read
            return "opaque", [self.node_for(t) for t in _tensors([base, value])], {}, {}, None
        source = bound.get("source" if spec.op == "index_add" else "src")
        index, alpha = bound.get("index"), bound.get("alpha", 1)
        reduce = bound.get("reduce", "sum")
        if not (isinstance(source, torch.Tensor) and isinstance(index, torch.Tensor) and _is_number(alpha)
                and reduce in ("sum", "mean", "amax", "amin") and base.dim() and index.dim()):
            return "opaque", [self.node_for(t) for t in _tensors([base, source])], {}, {}, None
        dim = int(bound.get("dim", 0)) % base.dim()
        return "scatter", [self.node_for(base), self.node_for(source), self.node_for(index)], {}, {
            "op": "scatter_reduce" if spec.op == "scatter_reduce" else "index_add",
            **landing(base, dim, index, whole_rows=spec.op == "index_add"),
            "alpha": float(alpha), "reduce": reduce, "include_self": bool(bound.get("include_self", True)),
            "zeros_before": bound["zeros_before"]}, None

    def _addcmul(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """input + value * tensor1 * tensor2, its three operands tensors; else an op without a rule."""
        operands = [bound.get("input"), bound.get("tensor1"), bound.get("tensor2")]
        tensors = [t for t in operands if isinstance(t, torch.Tensor)]
        value = bound.get("value", 1)
        if not (len(tensors) == len(operands) and _is_number(value)):
            return "opaque", [self.node_for(t) for t in _tensors(operands)], {}, {}, None
        return "addcmul", [self.node_for(t) for t in tensors], {}, {"value": float(value)}, None

    def _embedding(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        inputs, params, attrs = self._wire_spec(spec, bound, extra)
        attrs.update(padding_idx=bound.get("padding_idx"), max_norm=bound.get("max_norm"),
                     norm_type=bound.get("norm_type", 2.0))
        return "embedding", inputs, params, attrs, None

    def _embedding_bag(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any],
                       outs: Outputs) -> Recorded:
        """The rows of a table reduced per bag: attrs["bag"] is the average number of
        ids in a bag (a 2-d input's rows, or the ids over the offsets' bags)."""
        inputs, params, attrs = self._wire_spec(spec, bound, extra)
        ids, offsets = bound["input"], bound.get("offsets")
        bags = offsets.shape[0] - bool(bound.get("include_last_offset", False)) if offsets is not None else 0
        bag = ids.shape[1] if ids.dim() == 2 else ids.numel() / max(bags, 1)
        attrs.update(mode=bound.get("mode", "mean"), bag=float(bag),
                     weighted=bound.get("per_sample_weights") is not None, max_norm=bound.get("max_norm"))
        return "embedding_bag", inputs, params, attrs, None

    def _conv(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        inputs, params, attrs = self._wire_spec(spec, bound, extra)
        n = spec.dims
        kernel = tuple(bound["weight"].shape[2:])
        dilation = _ntuple(bound.get("dilation", 1), n)
        padding = bound.get("padding", 0)
        if isinstance(padding, str):
            # torch pads "same" by dilation*(k-1) in total, the odd one on the right
            total = ((0,) * n if padding == "valid"
                     else tuple(d * (k - 1) for d, k in zip(dilation, kernel)))
            padding, right = tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
            if right != padding:
                attrs["padding_right"] = right
        attrs.update(stride=_ntuple(bound.get("stride", 1), n), padding=_ntuple(padding, n),
                     dilation=dilation, groups=int(bound.get("groups", 1)), kernel_size=kernel)
        return "conv", inputs, params, attrs, None

    def _conv_transpose(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any],
                        outs: Outputs) -> Recorded:
        inputs, params, attrs = self._wire_spec(spec, bound, extra)
        n = spec.dims
        attrs.update(stride=_ntuple(bound.get("stride", 1), n),
                     padding=_ntuple(bound.get("padding", 0), n),
                     output_padding=_ntuple(bound.get("output_padding", 0), n),
                     dilation=_ntuple(bound.get("dilation", 1), n),
                     groups=int(bound.get("groups", 1)),
                     kernel_size=tuple(bound["weight"].shape[2:]))
        return "conv_transpose", inputs, params, attrs, None

    def _norm(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        inputs, params, attrs = self._wire_spec(spec, bound, extra)
        which = spec.op
        attrs["which"] = which
        attrs["eps"] = bound.get("eps", None if which == "rms_norm" else 1e-5)
        if which in ("layer_norm", "rms_norm"):
            attrs["normalized_shape"] = _ntuple(bound["normalized_shape"], 1)
        elif which == "group_norm":
            attrs["num_groups"] = int(bound["num_groups"])
        else:
            # batch / instance norm: normalized by the batch's own statistics
            # (training) or by the running ones (eval; the names in attrs)
            attrs["training"] = bool(bound.get("training", bound.get("use_input_stats",
                                                                      which == "instance_norm")))
            attrs["momentum"] = bound.get("momentum", 0.1)
            attrs.setdefault("running_mean", None)
            attrs.setdefault("running_var", None)
        return "norm", inputs, params, attrs, None

    def _elementwise(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        inputs, params, attrs = self._wire_spec(spec, bound, extra)
        if len(_tensors(_operands(spec, bound, extra))) != 1:      # clamp(x, min=tensor)
            return "opaque", inputs, params, {}, None
        if spec.op == "exp" and len(inputs) == 1 and (softmax := self._log_space_softmax(inputs[0])) is not None:
            return "softmax", [softmax[0]], {}, {"dim": softmax[1]}, None
        named = {n: bound[n] for n in spec.names[1:]
                 if n in bound and n != "inplace" and n not in spec.roles}
        attrs.update(op=spec.op, **named)
        if spec.op == "prelu":
            replay = _prelu_replay(bound["weight"]) if "weight" in params else None
        else:
            same = cast(Callable[..., torch.Tensor], spec.replay)   # every elementwise spec has one
            replay = functools.partial(same, **named) if named else same
        return "elementwise", inputs, params, attrs, replay

    def _log_space_softmax(self, index: int) -> tuple[int, int] | None:
        """(the logits, the dim) when node `index` is x - logsumexp(x, dim, keepdim=True) (through
        views): its exp is a softmax written in log space (Reformer's attention), recorded as one;
        else None."""
        def through_views(i: int) -> int:
            while self.nodes[i].kind == "view" and self.nodes[i].inputs:
                i = self.nodes[i].inputs[0]
            return i

        difference = self.nodes[index]
        if difference.kind != "sub" or len(difference.inputs) != 2 or difference.attrs.get("alpha", 1) != 1:
            return None
        total = self.nodes[through_views(difference.inputs[1])]
        dims = total.attrs.get("dim")
        if total.kind != "logsumexp" or not total.attrs.get("keepdim") or dims is None or len(dims) != 1 \
                or through_views(total.inputs[0]) != through_views(difference.inputs[0]):
            return None
        return difference.inputs[0], dims[0]

    def _binary(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        a: Any = bound.get("input")   # a tensor or a number, as b
        b: Any = bound.get("other", bound.get("exponent"))
        if spec.reflected:
            a, b = b, a
        # a number made a tensor in forward (Gemma's torch.tensor(sqrt(hidden)) normalizer) is a number
        a, b = self._number(a), self._number(b)
        op = spec.op
        alpha = bound.get("alpha", 1)
        rounding = "floor" if op == "floordiv" else bound.get("rounding_mode")
        op = "div" if op == "floordiv" else op
        a_tensor, b_tensor = isinstance(a, torch.Tensor), isinstance(b, torch.Tensor)
        if a_tensor and b_tensor and op != "pow":
            inputs = [self.node_for(a), self.node_for(b)]
            attrs: dict[str, Any] = {}
            if op in ("add", "sub") and alpha != 1:
                attrs["alpha"] = alpha
            if op == "div" and rounding is not None:
                attrs["rounding_mode"] = rounding
            return op, inputs, {}, attrs, _binary_replay(op, alpha, rounding)
        if a_tensor and _is_number(b):
            inputs = [self.node_for(a)]
            if op in ("add", "sub"):
                shift = alpha * b if op == "add" else -alpha * b
                return "shift", inputs, {}, {"scalar": shift}, _shifted(shift)
            if op == "mul":
                return "scale", inputs, {}, {"scalar": b}, _scaled(b)
            if op == "div" and rounding is None and b != 0:
                return "scale", inputs, {}, {"scalar": 1.0 / b}, _divided(b)
            if op == "pow":
                return "pow", inputs, {}, {"exponent": b}, _powered(b)
            attrs = {"op": "div", "scalar": b, "rounding_mode": rounding}
            return "elementwise", inputs, {}, attrs, _rounded_div(b, rounding)
        if _is_number(a) and b_tensor:
            inputs = [self.node_for(b)]
            if op == "add":
                return "shift", inputs, {}, {"scalar": a}, _shifted(a)
            if op == "mul":
                return "scale", inputs, {}, {"scalar": a}, _scaled(a)
            return ("elementwise", inputs, {}, {"op": "r" + op, "scalar": a, "alpha": alpha,
                                                "rounding_mode": rounding},
                    _number_first(op, a, alpha, rounding))
        return "opaque", [self.node_for(t) for t in _tensors((a, b))], {}, {}, None

    def _number(self, value: Any) -> Any:
        """A 0-d floating tensor the trace does not follow, with a value (not meta), as a
        Python float; anything else as it is."""
        if (isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point()
                and not value.is_meta and not self.traced(value)):
            return float(value.item())
        return value

    def _matmul(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        a: Any
        b: Any
        if spec.op == "einsum":
            operands = _tensors(extra)
            if len(operands) != 2:
                return "opaque", [self.node_for(t) for t in operands], {}, {}, None
            a, b = operands
            layer = self._einsum_layer(bound["equation"], a, b)
            if layer is not None:
                return layer
            inner = _einsum_inner(bound["equation"], a, b)
            attrs: dict[str, Any] = {"op": "einsum", "equation": bound["equation"], "inner": inner}
        else:
            a, b = bound.get("input"), bound.get("other")
            if spec.reflected:
                a, b = b, a
            fixed = self._fixed_mix(a, b)
            if fixed is not None:
                return "matmul", [self.node_for(a), self.node_for(b)], {}, fixed, None
            if isinstance(a, torch.Tensor) and a.dim() >= 1 and self.from_params[self.node_for(a)] is None:
                layer = self._product_layer(a, b)
                if layer is not None:
                    return layer
            attrs = {"op": spec.op, "inner": int(a.shape[-1]) if a.dim() else 1}
        return "matmul", [self.node_for(a), self.node_for(b)], {}, attrs, None

    def _product_layer(self, x: torch.Tensor, w: Any) -> Recorded | None:
        """x @ W with W a 2-D parameter, its transpose, or computed from one parameter alone:
        a linear layer (x @ self.weight.T in Falcon's FalconLinear, torch.mm(x, self.W) in a
        graph attention layer, x @ embedding.weight.T in a head tied to the embedding)."""
        if not isinstance(w, torch.Tensor) or w.dim() != 2 or len(self.params_behind(w)) != 1:
            return None
        transposed = self._transposed_param(w)
        if transposed is not None:   # W.T with W stored (out, in): the parameter, as a linear layer reads it
            return "linear", [self.node_for(x)], {"weight": transposed}, {}, None
        inputs, params, attrs = self._wire([x], [("weight", w)])
        attrs["weight_layout"] = "in_out"   # read as (in, out)
        return "linear", inputs, params, attrs, None

    def _transposed_param(self, tensor: torch.Tensor) -> str | None:
        """The name of the 2-D parameter `tensor` is the transpose of, else None."""
        index = self.node_of.get(id(tensor))
        node = self.nodes[index] if index is not None else None
        if node is None or node.kind != "view" or node.attrs.get("op") not in _TRANSPOSES or len(node.inputs) != 1:
            return None
        source = self.nodes[node.inputs[0]]
        name = source.params.get("param") if source.kind == "param" else None
        shape = tuple(source.shape)
        return name if name is not None and len(shape) == 2 and tuple(tensor.shape) == shape[::-1] else None

    def _einsum_layer(self, equation: str, a: torch.Tensor, b: torch.Tensor) -> Recorded | None:
        """einsum of the signal and a parameter that it sums over along some of the signal's
        letters (a mixture of experts' stacked matrices: "bd,edh->beh"): a linear layer whose
        weight, as one matrix, is (fan_out, fan_in) = (the parameter's letters the output
        keeps and the signal lacks, the letters summed over) (attrs["matrix"]); a letter
        of all three (an expert index the signal already carries) is in neither."""
        terms, out = einsum_terms(equation)
        if len(terms) != 2:
            return None
        for x, w, x_term, w_term in ((a, b, terms[0], terms[1]), (b, a, terms[1], terms[0])):
            name = self.param_name.get(id(w))
            if name is None or self.from_params[self.node_for(x)] is not None:
                continue
            if "..." in w_term or len(set(w_term)) != len(w_term) or len(w_term) != w.dim():
                return None
            sizes = dict(zip(w_term, w.shape))
            summed = [c for c in w_term if c in x_term and c not in out]
            kept = [c for c in w_term if c in out and c not in x_term]
            if not summed or any(c not in out and c not in x_term for c in w_term):
                return None
            matrix = (math.prod(sizes[c] for c in kept), math.prod(sizes[c] for c in summed))
            # summed over the signal's last letter (its features), or only over others (positions)
            features = x_term.split("...")[-1][-1:] in summed
            return "linear", [self.node_for(x)], {"weight": name}, {"einsum": equation, "matrix": matrix,
                                                                     "over_features": features}, None
        return None

    def _grouped_mm(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """grouped_mm(x, W) with x's rows grouped by expert and W (experts, in, out) computed
        from parameters alone (a transposed view of a 3-D weight): a "linear" node, grouped
        (attrs["grouped"]: the weight's first dim is the experts), read as (in, out)."""
        a, b = bound.get("mat_a"), bound.get("mat_b")
        weight_like = isinstance(b, torch.Tensor) and b.dim() == 3 and bool(self.params_behind(b))
        if not (weight_like and isinstance(a, torch.Tensor) and a.dim() == 2
                and self.from_params[self.node_for(a)] is None and bound.get("bias") is None):
            return "opaque", [self.node_for(t) for t in _tensors([a, b])], {}, {}, None
        inputs, params, attrs = self._wire([a], [("weight", b)])
        attrs.update(weight_layout="in_out", grouped=True)
        return "linear", inputs, params, attrs, None

    def _topk(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """The k largest entries of a floating tensor along a dim (a router's choice of
        experts): a "view" with op "topk" of it (its values, then their indices)."""
        x = bound["input"]
        if not x.is_floating_point():
            return "opaque", [self.node_for(x)], {}, {}, None
        dim = int(bound.get("dim", -1)) % max(x.dim(), 1)
        return "view", [self.node_for(x)], {}, {"op": "topk", "dim": dim, "k": int(bound["k"])}, None

    def _largest(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """The largest entry of a floating tensor along one dim (torch.max(x, dim), amax):
        the top 1 of them (`_topk`); opaque for two tensors' elementwise max, a whole
        tensor's max or several dims."""
        x, dim = bound.get("input"), bound.get("dim")
        dims = _int_dims(dim)
        if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() > 0 and dims and len(dims) == 1):
            return "opaque", [self.node_for(t) for t in _tensors([x, dim])], {}, {}, None
        return "view", [self.node_for(x)], {}, {"op": "topk", "dim": dims[0] % x.dim(), "k": 1}, None

    def _vector_norm(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        """The 2-norm of a floating tensor along given dims (F.normalize's divisor): a
        "vector_norm" node with its dims; opaque for another order or the whole tensor."""
        x, dims = bound.get("input"), _int_dims(bound.get("dim"))
        order = bound.get("ord", bound.get("p", 2))
        if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() > 0 and order in (2, 2.0, "fro")
                and dims):
            return "opaque", [self.node_for(t) for t in _tensors([x])], {}, {}, None
        return "vector_norm", [self.node_for(x)], {}, {"dim": [d % x.dim() for d in dims]}, None

    def _fixed_mix(self, a: Any, b: Any) -> dict[str, Any] | None:
        """attrs of A @ x (or x @ A) with A a 2-D tensor the trace does not follow, with values
        (a graph's adjacency, dense or sparse, any fixed mixing matrix) and x traced: which
        operand is fixed, and the means over its outputs of the sum of their weights, of its
        square and of the sum of their squares (moment_rules.fixed_mix); else None."""
        for fixed, other, side in ((a, b, "left"), (b, a, "right")):
            if not (isinstance(fixed, torch.Tensor) and isinstance(other, torch.Tensor) and fixed.dim() == 2
                    and not self.traced(fixed) and self.traced(other) and fixed.is_floating_point()):
                continue
            buffer = self.buffer_name.get(id(fixed))
            if buffer is not None:   # its values are read from the model by the walk (a meta twin here)
                return {"op": "fixed_mix", "side": side, "buffer": buffer}
            return {"op": "fixed_mix", "side": side, **fixed_mix_stats(fixed, side)} if not fixed.is_meta else None
        return None

    def _softmax(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        x = bound["input"]
        dim = bound.get("dim")
        attrs = {"dim": None if dim is None else dim % max(x.dim(), 1)}
        return spec.kind, [self.node_for(x)], {}, attrs, None

    _log_softmax = _softmax

    def _attention(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        inputs, params, _ = self._wire_spec(spec, bound, extra)
        attrs = {"dropout_p": bound.get("dropout_p", 0.0),
                 "is_causal": bound.get("is_causal", False),
                 "scale": bound.get("scale"), "enable_gqa": bound.get("enable_gqa", False),
                 "has_mask": isinstance(bound.get("attn_mask"), torch.Tensor)}
        return "attention", inputs, params, attrs, None

    def _dropout(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        inputs, params, _ = self._wire_spec(spec, bound, extra)
        training = bound.get("training", bound.get("train", spec.op in ("dropout", "dropout1d",
                                                                         "dropout2d", "dropout3d")))
        attrs = {"op": spec.op, "p": bound.get("p", 0.5), "training": bool(training)}
        return "dropout", inputs, params, attrs, None

    def _avg_pool(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        n = spec.dims
        kernel = _ntuple(bound["kernel_size"], n)
        stride = bound.get("stride")
        attrs: dict[str, Any] = {"kernel_size": kernel, "stride": kernel if not stride else _ntuple(stride, n),
                 "padding": _ntuple(bound.get("padding", 0), n),
                 "ceil_mode": bool(bound.get("ceil_mode", False))}
        if spec.kind == "avg_pool":
            attrs.update(count_include_pad=bool(bound.get("count_include_pad", True)),
                         divisor_override=bound.get("divisor_override"))
        else:
            attrs.update(dilation=_ntuple(bound.get("dilation", 1), n))
        return spec.kind, [self.node_for(bound["input"])], {}, attrs, None

    _max_pool = _avg_pool

    def _adaptive_avg_pool(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any],
                           outs: Outputs) -> Recorded:
        attrs = {"output_size": tuple(outs[0][1].shape[-spec.dims:])}
        return spec.kind, [self.node_for(bound["input"])], {}, attrs, None

    _adaptive_max_pool = _adaptive_avg_pool

    def _mean(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        x = bound["input"]
        attrs = {"dim": _dims(bound.get("dim"), x.dim()),
                 "keepdim": bool(bound.get("keepdim", False))}
        return spec.kind, [self.node_for(x)], {}, attrs, None

    _sum = _mean
    _logsumexp = _mean

    def _var(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        x, dim, unbiased = bound["input"], bound.get("dim"), bound.get("unbiased")
        if isinstance(dim, bool):   # x.var(False): the older spelling's unbiased, by position
            dim, unbiased = None, dim
        correction = bound.get("correction")
        if correction is None:
            correction = 0 if unbiased is False else 1
        attrs = {"dim": _dims(dim, x.dim()), "keepdim": bool(bound.get("keepdim", False)),
                 "correction": float(correction)}
        return spec.kind, [self.node_for(x)], {}, attrs, None

    _std = _var

    def _cumsum(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        x, dim = bound["input"], bound.get("dim")
        if not isinstance(dim, int):   # a named dim (named tensors): no rule
            return "opaque", [self.node_for(x)], {}, {}, None
        return spec.kind, [self.node_for(x)], {}, {"dim": dim % x.dim() if x.dim() else 0}, None

    def _local_response_norm(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any],
                             outs: Outputs) -> Recorded:
        attrs = {"size": int(bound["size"]), "alpha": float(bound.get("alpha", 1e-4)),
                 "beta": float(bound.get("beta", 0.75)), "k": float(bound.get("k", 1.0))}
        return "local_response_norm", [self.node_for(bound["input"])], {}, attrs, None

    def _interpolate(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        mode = {"upsample_nearest": "nearest", "upsample_bilinear": "bilinear"}.get(spec.op, bound.get("mode"))
        attrs = {"mode": mode or "nearest",
                 "align_corners": bool(bound.get("align_corners") or spec.op == "upsample_bilinear"),
                 "antialias": bool(bound.get("antialias", False))}
        return "interpolate", [self.node_for(bound["input"])], {}, attrs, None

    def _max_unpool(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        return "max_unpool", [self.node_for(bound["input"])], {}, {}, None   # the indices are no signal

    def _cat(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        dim = bound.get("dim", bound.get("axis", 0))
        attrs = {"op": spec.op, "dim": dim % outs[0][1].dim()}
        return "cat", [self.node_for(t) for t in _tensors([bound["tensors"]])], {}, attrs, None

    def _view(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        if spec.op == "masked_fill":   # x.masked_fill(mask, value): where(mask, value, x)
            x, value = bound.get("input"), _scalar_value(bound.get("value"))
            if isinstance(x, torch.Tensor) and x.is_floating_point() and isinstance(value, (int, float)):
                by_itself = self._masked_by_itself("masked_fill", x, bound.get("mask"), value, False)
                if by_itself is not None:
                    return by_itself
        inputs, params, _ = self._wire_spec(spec, bound, extra)
        attrs: dict[str, Any] = {"op": spec.op}
        if spec.op == "__getitem__":
            attrs["index"] = _index(bound["index"])
        else:
            attrs.update({n: bound[n] for n in spec.names[1:] if n in bound})
            attrs.update({k: _index(v) for k, v in bound.items() if k not in spec.names})
            if extra:
                attrs["args"] = _index(tuple(extra))
        return "view", inputs, params, attrs, None

    def _part(self, spec: OpSpec | None, extra: Sequence[Any], kwargs: dict[str, Any], outs: Outputs,
              k: int) -> dict[str, Any]:
        """dim and slice of output k of a view that splits (chunk, split, unbind ...)."""
        if spec is None or spec.kind != "view":
            return {}
        if spec.op == "unbind":
            return {"dim": kwargs.get("dim", extra[0] if extra else 0), "slice": (k, k + 1)}
        dim = _SPLIT_DIMS.get(spec.op)
        if dim is None:
            return {}
        ndim = outs[0][1].dim()
        if isinstance(dim, int):
            dim = kwargs.get("dim", extra[dim] if len(extra) > dim else 0)
        else:
            dim = dim(ndim)
        dim %= max(ndim, 1)
        start = sum(o.shape[dim] for _, o in outs[:k])
        return {"dim": dim, "slice": (start, start + outs[k][1].shape[dim])}

    def _rnn(self, spec: OpSpec, bound: dict[str, Any], extra: Sequence[Any], outs: Outputs) -> Recorded:
        if spec.names:                       # one step of a cell: input, hx, w_ih, w_hh, b_ih, b_hh
            roles = [(_CELL_ROLES[r], bound.get(r)) for r in spec.roles]
            inputs, params, attrs = self._wire([bound["input"], bound.get("hx")], roles)
            attrs.update(mode=spec.op, cell=True, num_layers=1, bidirectional=False,
                         hidden_size=int(bound["w_hh"].shape[1]))
            return "rnn", inputs, params, attrs, None
        args = tuple(extra)          # nn.RNNBase passes every argument positionally
        packed = len(args) > 3 and isinstance(args[3], (list, tuple))
        # (data, batch_sizes, hx, weights, has_biases, layers, dropout, train, bidirectional)
        # or (input, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first)
        if packed:
            data, _, hx, weights, has_biases, layers, dropout, train, bidirectional = args[:9]
            batch_first = False
        else:
            data, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first = (
                args[:9])
        names = _rnn_roles(len(weights), layers, bidirectional, has_biases)
        inputs, params, attrs = self._wire([data, hx], list(zip(names, weights)))
        hidden = int(weights[0].shape[0]) // _GATES[spec.op]
        recurrent = int(weights[1].shape[1])       # weight_hh_l0: (gates * hidden, proj or hidden)
        attrs.update(mode=spec.op, cell=False, num_layers=int(layers),
                     bidirectional=bool(bidirectional), hidden_size=hidden,
                     proj_size=recurrent if recurrent != hidden else 0,
                     batch_first=bool(batch_first), dropout=float(dropout), training=bool(train),
                     packed=packed)
        return "rnn", inputs, params, attrs, None

    # -------------------------------------------------------------- result

    def graph(self, model: torch.nn.Module, output: object) -> Graph:
        outputs = [self.node_for(t) for t in output_tensors(output)]
        params: dict[str, torch.nn.Parameter] = {}
        tied: dict[str, list[str]] = {}
        canonical: dict[int, str] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            first = canonical.setdefault(id(param), name)
            if first == name:
                params[name] = param
            else:
                tied.setdefault(first, []).append(name)
        uses: dict[str, list[int]] = {name: [] for name in params}
        for node in self.nodes:
            read = dict.fromkeys(node.params.values())
            for key, value in node.attrs.items():
                if key.endswith("_from"):
                    read.update(dict.fromkeys(value))
            for name in read:
                uses[name].append(node.index)
        return Graph(nodes=self.nodes,
                     inputs=self.inputs,
                     outputs=outputs, params=params, tied=tied, uses=uses,
                     unknown=[n.index for n in self.nodes if n.kind == "opaque"],
                     computed=frozenset(n.index for n, source in zip(self.nodes, self.from_params)
                                        if source and n.kind not in ("param", "constant")),
                     fixed=frozenset(n.index for n, fixed in zip(self.nodes, self.fixed) if fixed))


_GATES: dict[str, int] = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_CELL_ROLES: dict[str, str] = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
# position of the dim among the arguments after the tensor, or a function of ndim
_SPLIT_DIMS: dict[str, int | Callable[[int], int]] = {"chunk": 1, "split": 1, "split_with_sizes": 1, "tensor_split": 1,
               "hsplit": lambda ndim: 1 if ndim > 1 else 0, "vsplit": lambda ndim: 0,
               "dsplit": lambda ndim: 2}


_ZEROS = ("zeros", "zeros_like", "new_zeros")
# views that transpose a matrix
_TRANSPOSES = ("t", "T", "mT", "H", "mH", "transpose", "swapaxes", "swapdims", "permute")
# views whose second operand gives a shape or a dtype only
_SHAPED_LIKE = ("expand_as", "view_as", "reshape_as", "type_as")


def _glu(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """F.glu as its definition (Dauphin et al. 2017): the first half times the sigmoid
    of the second, so the trace holds the split, the gate and the product."""
    if input.dim() == 0 or input.shape[dim] % 2:
        size = input.shape[dim] if input.dim() else 0
        raise RuntimeError(f"glu: Halving dimension must be even, but dimension {dim} is size {size}")
    value, gate = input.chunk(2, dim)
    return value * torch.sigmoid(gate)


def _maximum(input: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """torch.maximum as a choice per element (a leaky ReLU written torch.maximum(x, 0.1 x)
    is then one function of x): where(input >= other, input, other)."""
    return torch.where(input >= other, input, other)


def _minimum(input: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """torch.minimum as where(input <= other, input, other)."""
    return torch.where(input <= other, input, other)


# builtins without a rule, run as the ops they equal (F.glu, nn.GLU call torch._C._nn.glu); a
# NaN, which maximum passes and where does not, has no moments either way
_DECOMPOSED: dict[Any, Callable[..., torch.Tensor]] = {
    torch._C._nn.glu: _glu,
    **dict.fromkeys((torch.maximum, torch.Tensor.maximum, torch.fmax, torch.Tensor.fmax), _maximum),
    **dict.fromkeys((torch.minimum, torch.Tensor.minimum, torch.fmin, torch.Tensor.fmin), _minimum),
}


def _written_share(base: torch.Tensor, index: Any) -> float | None:
    """The fraction of `base`'s elements that base[index] = ... writes: read off a
    boolean copy of its shape; on meta, from the selection's size (None when that
    depends on values, as a boolean mask's does)."""
    total = base.numel()
    if not total:
        return None
    try:
        if base.is_meta:
            return torch.empty(base.shape, dtype=torch.bool, device="meta")[index].numel() / total
        written = torch.zeros(base.shape, dtype=torch.bool, device=base.device)
        written[index] = True
        return float(written.sum()) / total
    except (RuntimeError, IndexError, TypeError, NotImplementedError):
        return None


def _rnn_roles(count: int, layers: int, bidirectional: bool, has_biases: bool) -> list[str]:
    """The names nn.RNNBase gives its flat weights, in their order: per layer, per
    direction, weight_ih, weight_hh[, bias_ih, bias_hh][, weight_hr] + _l{k}[_reverse]."""
    directions = 2 if bidirectional else 1
    per = count // (layers * directions) if layers * directions else 0
    base = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_biases else [])
    if per == len(base) + 1:
        base.append("weight_hr")
    if per != len(base) or per * layers * directions != count:
        return [f"weight{i}" for i in range(count)]
    return [f"{role}_l{layer}{'_reverse' if d else ''}"
            for layer in range(layers) for d in range(directions) for role in base]


def output_tensors(value: object) -> Iterator[torch.Tensor]:
    """The tensors in a forward pass's output: a tensor, or those in its lists, tuples,
    dicts (Hugging Face's ModelOutput) and dataclasses, in order."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from output_tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from output_tensors(item)
    elif is_dataclass(value) and not isinstance(value, type):
        for field in fields(value):
            yield from output_tensors(getattr(value, field.name))


# -------------------------------------------------------------- replays

def landing(base: torch.Tensor, dim: int, index: torch.Tensor, whole_rows: bool) -> dict[str, Any]:
    """How many source elements an index writes onto each element of `base`, c, over
    base's elements: "sizes" ((k, P(c = k)) for each k >= 1, at most MAX_SIZES of them),
    and from them "counts" E[c], "counts_sq" E[c^2], "written" P(c > 0) and "inverse"
    E[1/c; c > 0]. `whole_rows`: index_add's 1-D index of rows along `dim`; else
    scatter's index, one per source element, along `dim`. Read off a real index; on meta,
    each source element lands on a row drawn uniformly (binomial counts)."""
    rows = max(base.shape[dim], 1)
    sizes: list[tuple[float, float]] = []
    if not index.is_meta:
        idx = index.long().cpu()
        if whole_rows:
            c = torch.bincount(idx.reshape(-1), minlength=rows).double()
        else:
            c = torch.zeros(tuple(base.shape), dtype=torch.float64).scatter_add_(
                dim, idx, torch.ones(tuple(idx.shape), dtype=torch.float64))
        values, times = torch.unique(c, return_counts=True)
        sizes = [(float(k), float(t) / c.numel()) for k, t in zip(values.tolist(), times.tolist()) if k > 0]
    else:
        n = index.numel() if whole_rows else index.shape[dim]
        covered = 1.0 if whole_rows else min(index.numel() / max(index.shape[dim], 1) * rows / max(base.numel(), 1),
                                             1.0)
        if rows == 1:   # one row takes every element
            sizes = [(float(n), covered)] if n else []
        else:           # the binomial(n, 1/rows) terms up to where they vanish
            p, mean = 1.0 / rows, n / rows
            log_pmf = n * math.log1p(-p)
            for k in range(1, min(n, math.ceil(mean + 12.0 * math.sqrt(mean) + 30.0)) + 1):
                log_pmf += math.log((n - k + 1) / k) + math.log(p) - math.log1p(-p)
                sizes.append((float(k), covered * math.exp(log_pmf)))
    counts = sum(k * w for k, w in sizes)
    return {"counts": counts, "counts_sq": sum(k * k * w for k, w in sizes),
            "written": min(sum(w for _, w in sizes), 1.0), "inverse": min(sum(w / k for k, w in sizes), 1.0),
            "sizes": tuple(_fewer(sizes))}


# the sizes a scatter's extreme is averaged over (amax of c sources per element)
MAX_SIZES = 32


def _fewer(sizes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """`sizes` ((k, share), in increasing k) merged into at most MAX_SIZES groups of equal
    share, each at its share-weighted size."""
    total = sum(w for _, w in sizes)
    if len(sizes) <= MAX_SIZES or total <= 0:
        return [(k, w) for k, w in sizes if w > 0]
    groups: list[tuple[float, float]] = []
    k_sum = w_sum = 0.0
    for k, w in sizes:
        k_sum, w_sum = k_sum + k * w, w_sum + w
        if w_sum >= total / MAX_SIZES:
            groups.append((k_sum / w_sum, w_sum))
            k_sum = w_sum = 0.0
    if w_sum > 0:
        groups.append((k_sum / w_sum, w_sum))
    return groups


def value_stats(tensor: torch.Tensor) -> tuple[float, float, float | None, float | None] | None:
    """(mean, second moment, mean of the reciprocal, its second moment) of a tensor's values
    (the reciprocal's None where a value is 0); None where one is not finite."""
    x = tensor.detach().to(torch.float64)
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return None
    if bool((x == 0).any()):
        return float(x.mean()), float((x * x).mean()), None, None
    r = 1.0 / x
    return float(x.mean()), float((x * x).mean()), float(r.mean()), float((r * r).mean())


def fixed_mix_stats(fixed: torch.Tensor, side: str) -> dict[str, float]:
    """For a fixed 2-D matrix applied from `side` ("left": A @ x, "right": x @ A), the means
    over its outputs of the sum of their weights, of its square and of the sum of their
    squares (moment_rules.fixed_mix); dense or sparse."""
    with torch.no_grad():
        matrix = fixed if side == "left" else fixed.t()     # its rows are the outputs' weights
        if matrix.is_sparse:
            sums = torch.sparse.sum(matrix, dim=1).to_dense().double()
            squares = torch.sparse.sum(matrix * matrix, dim=1).to_dense().double()
        else:
            sums, squares = matrix.double().sum(1), matrix.double().pow(2).sum(1)
    return {"sums": float(sums.mean()), "sums_sq": float(sums.pow(2).mean()), "squares": float(squares.mean())}


def _grouped_mm_on_meta(bound: dict[str, Any], func: Callable[..., Any], args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
    """grouped_mm's output on the meta device: (rows, out) for 2-D rows and a 3-D weight of
    (experts, in, out), in the rows' dtype; any other layout as torch computes it."""
    a, b = bound.get("mat_a"), bound.get("mat_b")
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dim() == 2 and b.dim() == 3:
        return torch.empty((a.shape[0], b.shape[-1]), dtype=bound.get("out_dtype") or a.dtype, device="meta")
    return func(*args, **kwargs)


def _where_replay(a: torch.Tensor, b: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    return torch.where(condition.bool(), a, b)


def _scalar_value(value: Any) -> Any:
    """A 0-d tensor with values (not meta), traced or not, as its Python number; anything
    else as it is (`_Recorder._number` converts only floats the trace does not follow)."""
    return value.item() if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_meta else value


def _where_number(value: float, kept_first: bool, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """where(condition, x, value), or where(condition, value, x) when not kept_first."""
    filled = torch.full_like(x, value)
    return torch.where(condition.bool(), x, filled) if kept_first else torch.where(condition.bool(), filled, x)


def _compared(compare: Callable[..., torch.Tensor], other: Any, x: torch.Tensor) -> torch.Tensor:
    return compare(x, other)


def _prelu_replay(weight: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    # reads the parameter when called (after it is initialized), in the caller's dtype
    return lambda x: F.prelu(x, weight.detach().to(dtype=x.dtype, device=x.device))


def _binary_replay(op: str, alpha: float, rounding: str | None) -> Callable[..., torch.Tensor]:
    if op == "add":
        return lambda a, b: torch.add(a, b, alpha=alpha)
    if op == "sub":
        return lambda a, b: torch.sub(a, b, alpha=alpha)
    if op == "mul":
        return torch.mul
    return lambda a, b: torch.div(a, b, rounding_mode=rounding)


def _shifted(c: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: x + c


def _scaled(c: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: x * c


def _divided(c: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: x / c


def _powered(c: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: torch.pow(x, c)


def _rounded_div(c: float, rounding: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: torch.div(x, c, rounding_mode=rounding)


def _number_first(op: str, c: float, alpha: float, rounding: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """c - alpha x, c / x, c ** x: a function of x alone."""
    if op == "sub":
        return lambda x: c - alpha * x
    if op == "pow":
        return lambda x: torch.pow(c, x)
    return lambda x: torch.div(torch.full_like(x, c), x, rounding_mode=rounding)
