"""init_module's recipe keywords: which parameters it initializes, and which get a rule by name.

- overrides: {pattern: initializer}. A pattern is a parameter name or a
  shell-style pattern ("*.cls_token", "blocks.*.attn.proj.weight"); the first
  pattern that matches a parameter decides it. An initializer is a number
  (constant_), the name of a varinit fill ("trunc_normal_", "zeros_"), a
  (name or varinit fill, {keyword: value}) pair, or any callable
  fn(tensor, generator). Each overridden parameter draws from
  generator.stream(its name), as every other parameter does.
- only: the names of the parameters to initialize (e.g. the missing_keys
  that model.load_state_dict(state, strict=False) returns); every other
  parameter keeps its values, loaded from a checkpoint. A tied parameter is
  initialized only when all its names are in `only`.

Everything is checked before anything is written: a pattern that matches no
parameter, an unknown fill, and keywords the fill refuses (tried on a meta
twin of each parameter, which takes no stream) are errors that name them.
"""
from __future__ import annotations

import fnmatch
import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any, Callable, NamedTuple, Union

import torch

from .. import init as fills
from ..generator import Generator
from ..layers.records import InitRecord

# the varinit fills an override may name
FILLS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
         "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
         "variance_scaling_", "lecun_normal_", "lecun_uniform_")


class Override(NamedTuple):
    pattern: str
    fill: Callable[..., Any]
    kwargs: dict[str, Any]
    label: str
    takes_generator: bool


# What an overrides entry gives a parameter: a constant, a fill's name, a callable
# fn(tensor, generator), or (fill or its name, {keyword: value})
OverrideSpec = Union[float, str, Callable[..., Any], tuple[Union[str, Callable[..., Any]], dict[str, Any]]]


def parameter_names(model: torch.nn.Module) -> dict[str, str]:
    """{every name of every parameter: its canonical name (the first, as named_parameters gives it)}."""
    first: dict[int, str] = {}
    canonical: dict[str, str] = {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        canonical[name] = first.setdefault(id(tensor), name)
    return canonical


def resolve_only(model: torch.nn.Module, only: Iterable[str] | None) -> set[str]:
    """The canonical names to initialize: all of them for only=None."""
    canonical = parameter_names(model)
    if only is None:
        return set(canonical.values())
    if isinstance(only, (str, bytes)) or not hasattr(only, "__iter__"):
        raise TypeError(f"only must be an iterable of parameter names, got {type(only).__name__}")
    names = list(only)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"only must hold parameter names (str), got {type(name).__name__}")
        if name not in canonical:
            raise ValueError(f"only names {name!r}, which is not a parameter of the model")
    given = set(names)
    every_name: dict[str, list[str]] = {}
    for name, first in canonical.items():
        every_name.setdefault(first, []).append(name)
    return {first for first, names_of in every_name.items() if all(n in given for n in names_of)}


def frozen_names(model: torch.nn.Module) -> set[str]:
    """The canonical names of the parameters that hold values and do not require a gradient:
    a fixed table (Whisper's sinusoidal positions) or a frozen, loaded backbone. A call with
    only=None keeps them; naming them in only= initializes them."""
    canonical = parameter_names(model)
    return {canonical[name] for name, p in model.named_parameters() if not p.requires_grad and not p.is_meta}


def resolve_overrides(model: torch.nn.Module, overrides: Mapping[str, OverrideSpec] | None,
                      selected: set[str]) -> dict[str, Override]:
    """{canonical name: Override} for the selected parameters the patterns match, every
    initializer checked on a meta twin of each parameter it will fill."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise TypeError(f"overrides must be a dict of name pattern -> initializer, got {type(overrides).__name__}")
    parsed = [(pattern, _parse(pattern, spec)) for pattern, spec in overrides.items()]
    params = dict(model.named_parameters())
    canonical = parameter_names(model)
    resolved: dict[str, Override] = {}
    matched: set[str] = set()
    for name, first in canonical.items():
        for pattern, override in parsed:
            if name == pattern or fnmatch.fnmatchcase(name, pattern):
                matched.add(pattern)
                if first in selected and first not in resolved:
                    _dry_run(override, params[first], first)
                    resolved[first] = override
                break
    unmatched = [pattern for pattern, _ in parsed if pattern not in matched]
    if unmatched:
        raise ValueError(f"overrides[{unmatched[0]!r}] matches no parameter of the model")
    return resolved


def apply_overrides(model: torch.nn.Module, resolved: dict[str, Override],
                    generator: Generator) -> list[InitRecord]:
    """Fill each overridden parameter; one InitRecord per parameter."""
    params = dict(model.named_parameters())
    records = []
    with torch.no_grad():
        for name, override in resolved.items():
            tensor = params[name]
            kwargs = dict(override.kwargs)
            if override.takes_generator:
                kwargs["generator"] = generator.stream(name)
            override.fill(tensor, **kwargs)
            records.append(InitRecord(name, f"override {override.pattern!r}: {override.label}", None, None,
                                      _std(tensor)))
    return records


def _parse(pattern: object, spec: object) -> Override:
    if not isinstance(pattern, str):
        raise TypeError(f"overrides keys must be parameter names or patterns (str), got {type(pattern).__name__}")
    where = f"overrides[{pattern!r}]"
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Override(pattern, fills.constant_, {"val": float(spec)}, f"constant {spec:g}", False)
    kwargs: dict[str, Any] = {}
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[1], dict):
            raise TypeError(f"{where} must be (initializer, {{keyword: value}}), got a tuple of {len(spec)}")
        spec, kwargs = spec
    fill = _fill_named(spec, where) if isinstance(spec, str) else spec
    if not callable(fill):
        raise TypeError(f"{where} must be a number, a varinit fill's name, (fill, kwargs) or a callable "
                        f"fn(tensor, generator), got {type(fill).__name__}")
    name = getattr(fill, "__name__", type(fill).__name__)
    public: Callable[..., Any] | None = getattr(fills, name, None)
    if public is not None and public is fill:   # one of varinit's fills
        takes = "generator" in inspect.signature(public).parameters
        if "generator" in kwargs:
            raise ValueError(f"{where}: generator is init_module's (each parameter draws from its own stream)")
        label = f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        return Override(pattern, public, dict(kwargs), label, takes)
    if kwargs:
        raise ValueError(f"{where}: keywords apply to varinit's fills; a callable is called as fn(tensor, generator)")
    return Override(pattern, _user_fill(fill), {}, f"{name}(tensor, generator)", True)


def _fill_named(name: str, where: str) -> Callable[..., Any]:
    full = name if name.endswith("_") else f"{name}_"
    if full not in FILLS:
        raise ValueError(f"{where}: {name!r} is not a varinit fill; expected one of {', '.join(FILLS)}")
    fill: Callable[..., Any] = getattr(fills, full)
    return fill


def _user_fill(fn: Callable[..., Any]) -> Callable[[torch.Tensor, Any], None]:
    def call(tensor: torch.Tensor, generator: Any) -> None:
        fn(tensor, generator)
    call.__name__ = getattr(fn, "__name__", "fn")
    return call


def _dry_run(override: Override, tensor: torch.Tensor, name: str) -> None:
    """Let the fill check its arguments on a meta twin: it writes nothing and takes no stream."""
    if override.fill.__name__ not in FILLS:
        return
    twin = torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
    kwargs = dict(override.kwargs)
    if override.takes_generator:
        kwargs["generator"] = 0
    try:
        override.fill(twin, **kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"overrides[{override.pattern!r}] on {name}: {error}") from None


def _std(tensor: torch.Tensor) -> float:
    if tensor.is_meta or tensor.numel() < 2:
        return math.nan if tensor.is_meta else 0.0
    return float(tensor.detach().to(torch.float64).std())
