"""Repeated blocks traced once: on the meta device, a module that is a copy of
one already traced (same class, same parameter and buffer shapes, same
attributes, called with the same kind of arguments) is not run again; the
nodes the first call recorded are copied, with the parameter, buffer and
module names moved to it, and its outputs are new meta tensors of the
recorded shapes.

torch's meta kernels run largely in Python (decompositions, shape checks):
about 0.1 ms an op, so the trace of GPT-2 small's 12 blocks is 12 times one
block's. With this, it is one block's, and the graph is the same node for
node (tests/torch/test_trace_repeats.py compares the two).

The copy is taken only where it is the call's record for sure; anything else
runs the real forward:
- the two modules' whole subtrees match: classes, the names, shapes, dtypes
  and types of parameters and buffers, and every attribute, plain values by
  value and other objects by identity (a per-layer index, a sliding-window
  flag, a different activation object: no copy);
- no parameter or buffer of the subtree is shared with another module;
- no module of the subtree has forward hooks of its own, and no global
  module hooks other than the trace's are registered;
- the call's arguments match the first call's: tensor shapes, strides,
  dtypes, which are the same object, which are already traced; every
  non-tensor argument equal by value (a mask flag, a layer number); tuples
  of those, but no list, dict or other object (the call may fill a cache);
- the first call used nothing from outside but its arguments and
  parameters or buffers, wrote into no argument, set no attribute, made no
  replay that holds a parameter (PReLU's slopes), and returned tensors,
  tuples, lists, dicts and plain values only.
What it cannot see is a forward that reads state kept outside the modules
(a global counter); `trace(..., repeats=False)` runs every call.
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
import types
from collections.abc import Iterator
from typing import Any, Callable, NamedTuple, Optional, Protocol

import torch
from torch.nn.modules import module as module_hooks

# Module.__dict__ entries that are torch's own tables, compared through their contents
_TABLES = frozenset(torch.nn.Module().__dict__) - {"training"}
# the registry of torch.distributed's composable APIs (fully_shard, replicate): read by their
# hooks only, which a module with hooks (no copy) or the global view of a sharded model (hooks
# set aside, sharded_model.global_view) leaves out of the forward
_COMPOSABLE_STATE = "__composable_api_state_key"
_PLAIN = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size,
          enum.Enum)


class Recording(Protocol):
    """What the copy needs of the trace's recorder (graph._Recorder)."""

    nodes: list[Any]
    node_of: dict[int, int]
    param_name: dict[int, str]
    alive: list[torch.Tensor]
    constant_ids: set[int]

    def append(self, node: Any, tensor: Optional[torch.Tensor], from_params: Optional[tuple[str, ...]]) -> int: ...

    def node_for(self, tensor: torch.Tensor) -> int: ...

    def from_params_of(self, inputs: list[int], params: dict[str, str]) -> Optional[tuple[str, ...]]: ...


class _First(NamedTuple):
    """The record of a group's first call with one kind of arguments."""

    prefix: str
    start: int
    end: int
    arg_nodes: list[Optional[int]]      # per tensor argument, its node when called
    arg_constants: dict[int, int]       # constant node made in the call for an argument -> its position
    output: Any                         # the return value with tensors as _Out


class _Out(NamedTuple):
    """A returned tensor: how to give the copy's call its own."""

    how: str                  # "node" (recorded in the call), "arg", "param", "fresh" (no node)
    ref: Any                  # node index, argument position, or name
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    dtype: torch.dtype


_NOT_YET = object()
# attrs (graph.Node) whose value is a buffer's name; "*_from" hold parameter names
_NAMED_ATTRS = frozenset({"buffer", "running_mean", "running_var"})


@contextlib.contextmanager
def traced_once(recorder: Recording, model: torch.nn.Module) -> Iterator[None]:
    """Inside the block, every module of `model` in a group of identical ones
    copies the record of the group's first call with the same arguments."""
    if len(module_hooks._global_forward_pre_hooks) > 1 or len(module_hooks._global_forward_hooks) > 1:
        yield       # someone else's global hooks must see every module run
        return
    groups = _groups(model)
    copier = _Copier(recorder, model)
    wrapped = []
    try:
        for group, members in enumerate(groups):
            for prefix, module in members:
                module.__dict__["forward"] = copier.forward(group, prefix, module.forward)
                wrapped.append(module)
        yield
    finally:
        for module in wrapped:
            module.__dict__.pop("forward", None)


def _groups(model: torch.nn.Module) -> list[list[tuple[str, torch.nn.Module]]]:
    """Modules of `model` that are copies of one another, two or more to a group."""
    owners: dict[int, int] = {}
    for table in (model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False)):
        for _, tensor in table:
            owners[id(tensor)] = owners.get(id(tensor), 0) + 1
    by_key: dict[Any, list[tuple[str, torch.nn.Module]]] = {}
    for prefix, module in model.named_modules():
        if not prefix or "forward" in module.__dict__ or isinstance(module, torch.jit.ScriptModule):
            continue
        key = _subtree_key(module, owners)
        if key is not None:
            by_key.setdefault(key, []).append((prefix, module))
    return [members for members in by_key.values() if len(members) > 1]


def _subtree_key(module: torch.nn.Module, owners: dict[int, int]) -> Any:
    """A hashable description of everything a forward of `module` can read from
    its subtree; None if the subtree has hooks, shares a tensor, or holds an
    attribute that cannot be described."""
    parts = []
    for name, sub in module.named_modules(remove_duplicate=False):
        if sub._forward_hooks or sub._forward_pre_hooks or "forward" in sub.__dict__:
            return None
        tensors = []
        for kind, table in (("p", sub._parameters), ("b", sub._buffers)):
            for key, tensor in table.items():
                if tensor is not None and owners.get(id(tensor), 0) != 1:
                    return None
                tensors.append((kind, key) if tensor is None else
                               (kind, key, tuple(tensor.shape), tensor.dtype, type(tensor), tensor.requires_grad))
        try:
            attrs = tuple(sorted((k, _value_key(v)) for k, v in sub.__dict__.items()
                                 if k not in _TABLES and not k.startswith(_COMPOSABLE_STATE)))
            hash(attrs)
        except TypeError:
            return None
        parts.append((name, type(sub), tuple(tensors), tuple(sub._modules), attrs,
                      tuple(sorted(sub._non_persistent_buffers_set))))
    return tuple(parts)


def _value_key(value: Any) -> Any:
    """Plain values by value, containers by their items, anything else by identity."""
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_value_key(v) for v in value))
    if isinstance(value, dict):
        return (type(value), tuple((_value_key(k), _value_key(v)) for k, v in value.items()))
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))
    return ("object", id(value))


class _Copier:
    def __init__(self, recorder: Recording, model: torch.nn.Module) -> None:
        self.rec = recorder
        self.root = model
        self.params: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
        self.buffers: dict[str, torch.Tensor] = dict(model.named_buffers(remove_duplicate=False))
        self.firsts: dict[tuple[int, Any], Any] = {}

    def forward(self, group: int, prefix: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def forward(*args: Any, **kwargs: Any) -> Any:
            key = self._call_key(args, kwargs)
            if key is None:
                return original(*args, **kwargs)
            first = self.firsts.get((group, key), _NOT_YET)
            if first is _NOT_YET:
                output, record = self._first(prefix, original, args, kwargs)
                self.firsts[(group, key)] = record
                return output
            if first is None:
                return original(*args, **kwargs)
            return self._copy(first, prefix, args, kwargs)
        return forward

    # -------------------------------------------------------------- arguments

    def _call_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The arguments' description, or None where a copy cannot follow them."""
        seen: dict[int, int] = {}
        try:
            key = (tuple(self._arg_key(a, seen) for a in args),
                   tuple(sorted((k, self._arg_key(v, seen)) for k, v in kwargs.items())))
            hash(key)
        except (TypeError, _Unfollowable):
            return None
        return key

    def _arg_key(self, value: Any, seen: dict[int, int]) -> Any:
        if isinstance(value, torch.Tensor):
            if not value.is_meta or not (type(value) is torch.Tensor or isinstance(value, torch.nn.Parameter)):
                raise _Unfollowable       # a real tensor, or a subclass that may dispatch elsewhere
            if id(value) in self.rec.param_name and id(value) not in self.rec.node_of:
                raise _Unfollowable       # a parameter passed in: its name would not move
            same = seen.setdefault(id(value), len(seen))
            traced = id(value) in self.rec.node_of and id(value) not in self.rec.constant_ids
            return ("T", tuple(value.shape), value.stride(), value.storage_offset(), value.dtype, same, traced)
        if type(value) is tuple:
            return (tuple, tuple(self._arg_key(v, seen) for v in value))
        if isinstance(value, _PLAIN) or isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            return (type(value), value)
        raise _Unfollowable       # a list or dict the call may fill (a cache), or an object

    # -------------------------------------------------------------- the first call

    def _first(self, prefix: str, original: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> tuple[Any, Optional[_First]]:
        rec = self.rec
        tensors = _tensors((args, kwargs))
        arg_nodes = [rec.node_of.get(id(t)) for t in tensors]
        state = self._state(prefix)
        start = len(rec.nodes)
        output = original(*args, **kwargs)
        end = len(rec.nodes)
        after = [rec.node_of.get(id(t)) for t in tensors]
        # an untraced argument (a rotary table computed once) became a constant node when first read
        arg_constants = {index: k for k, (old, index) in enumerate(zip(arg_nodes, after))
                         if old is None and index is not None and index >= start
                         and rec.nodes[index].kind == "constant"}
        changed = any(old != new and not (old is None and new in arg_constants)
                      for old, new in zip(arg_nodes, after))
        if changed or self._state(prefix) != state:
            return output, None        # wrote into an argument, or set an attribute
        inside = set(arg_nodes)
        for node in rec.nodes[start:end]:
            if node.replay is not None and node.params:
                return output, None        # a replay that holds a parameter (PReLU's slopes)
            for i in node.inputs:
                if i < start and i not in inside and not self._named_source(rec.nodes[i]):
                    return output, None    # read a tensor from outside
        try:
            template = self._template(output, tensors, start, end)
        except _Unfollowable:
            return output, None
        return output, _First(prefix, start, end, arg_nodes, arg_constants, template)

    def _state(self, prefix: str) -> Any:
        """Every attribute and table entry of the subtree, by identity."""
        root = self._module(prefix)
        return [(sorted((k, id(v)) for k, v in sub.__dict__.items() if k not in _TABLES),
                 [(k, id(v)) for table in (sub._parameters, sub._buffers, sub._modules) for k, v in table.items()])
                for sub in root.modules()]

    def _module(self, prefix: str) -> torch.nn.Module:
        module = self.root
        for part in prefix.split("."):
            module = module._modules[part]  # type: ignore[assignment]
        return module

    @staticmethod
    def _named_source(node: Any) -> bool:
        return node.kind == "param" or (node.kind == "constant" and "buffer" in node.attrs)

    def _template(self, value: Any, tensors: list[torch.Tensor], start: int, end: int) -> Any:
        if isinstance(value, torch.Tensor):
            shape = (tuple(value.shape), tuple(value.stride()), int(value.storage_offset()), value.dtype)
            for k, t in enumerate(tensors):
                if value is t:
                    return _Out("arg", k, *shape)
            index = self.rec.node_of.get(id(value))
            if index is None:
                return _Out("fresh", None, *shape)
            if start <= index < end:
                return _Out("node", index, *shape)
            node = self.rec.nodes[index]
            if node.kind == "param":
                return _Out("param", node.params["param"], *shape)
            raise _Unfollowable
        if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
            return type(value)(self._template(v, tensors, start, end) for v in value)
        if type(value) is dict:
            return {k: self._template(v, tensors, start, end) for k, v in value.items()}
        if isinstance(value, _PLAIN):
            return value
        raise _Unfollowable

    # -------------------------------------------------------------- the copies

    def _copy(self, first: _First, prefix: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        rec = self.rec
        tensors = _tensors((args, kwargs))
        moved = _Renamer(first.prefix, prefix)
        index: dict[int, int] = {}
        for old, t in zip(first.arg_nodes, tensors):
            if old is not None and old not in index:
                index[old] = rec.node_for(t)     # its node, or a constant node as the first call had
        for node in rec.nodes[first.start:first.end]:
            for i in node.inputs:
                if i < first.start and i not in index:
                    index[i] = self._source(rec.nodes[i], moved)
            if node.index in first.arg_constants:     # where the first call first read the argument
                index[node.index] = rec.node_for(tensors[first.arg_constants[node.index]])
                continue
            if self._named_source(node):
                index[node.index] = self._source(node, moved)
                continue
            inputs = [index[i] for i in node.inputs]
            params = {role: moved(name) for role, name in node.params.items()}
            copy = dataclasses.replace(node, index=len(rec.nodes), inputs=inputs, params=params,
                                       attrs=moved.attrs(node.attrs), module=moved(node.module))
            index[node.index] = rec.append(copy, None, rec.from_params_of(inputs, params))
        made: dict[int, torch.Tensor] = {}
        return self._build(first.output, tensors, index, moved, made)

    def _source(self, node: Any, moved: _Renamer) -> int:
        """This call's node for a parameter or buffer node of the first call."""
        rec = self.rec
        if node.kind == "param":
            name = moved(node.params["param"])
            tensor = self.params[name]
            found = rec.node_of.get(id(tensor))
            if found is not None:
                return found
            copy = dataclasses.replace(node, index=len(rec.nodes), params={"param": name},
                                       module=moved(node.module))
            return rec.append(copy, tensor, (name,))
        name = moved(node.attrs["buffer"])
        tensor = self.buffers[name]
        found = rec.node_of.get(id(tensor))
        if found is not None:
            return found
        copy = dataclasses.replace(node, index=len(rec.nodes), attrs={**node.attrs, "buffer": name},
                                   module=moved(node.module))
        return rec.append(copy, tensor, ())

    def _build(self, template: Any, tensors: list[torch.Tensor], index: dict[int, int], moved: _Renamer,
               made: dict[int, torch.Tensor]) -> Any:
        if isinstance(template, _Out):
            if template.how == "arg":
                return tensors[template.ref]
            if template.how == "param":
                return self.params[moved(template.ref)]
            key = id(template)
            if key not in made:
                out = torch.empty_strided(template.shape, template.stride, dtype=template.dtype, device="meta")
                if template.offset:
                    out = out.as_strided(template.shape, template.stride, template.offset)
                if template.how == "node":
                    self.rec.node_of[id(out)] = index[template.ref]
                    self.rec.alive.append(out)
                made[key] = out
            return made[key]
        if isinstance(template, (tuple, list)):
            return type(template)(self._build(t, tensors, index, moved, made) for t in template)
        if isinstance(template, dict):
            return {k: self._build(v, tensors, index, moved, made) for k, v in template.items()}
        return template


class _Renamer:
    """Moves a name under the first call's module to the same place under this one."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def __call__(self, name: str) -> str:
        if name == self.old:
            return self.new
        if name.startswith(self.old + "."):
            return self.new + name[len(self.old):]
        return name

    def attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A node's attrs with the names in them moved: buffers and the parameters a weight is computed from."""
        moved = dict(attrs)
        for key, value in attrs.items():
            if key.endswith("_from"):
                moved[key] = [self(name) for name in value]
            elif key in _NAMED_ATTRS and isinstance(value, str):
                moved[key] = self(value)
        return moved


class _Unfollowable(Exception):
    """An argument or a returned value a copy cannot reproduce."""


def _tensors(value: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            found.extend(_tensors(v))
    elif isinstance(value, dict):
        for v in value.values():
            found.extend(_tensors(v))
    return found
