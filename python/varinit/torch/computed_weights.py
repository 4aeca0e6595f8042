"""Weights a forward pass computes from parameters alone, run again on other values.

A layer may read a weight its forward computes: weight standardization (Qiao
et al. 2019, "Micro-batch training with batch-channel normalization and
weight standardization"; timm's StdConv2d), scaled weight standardization
with a learned gain (Brock, De and Smith 2021, "Characterizing signal
propagation to close the performance gap in unnormalized ResNets"; the
NF-ResNets), an equalized learning rate's constant factor (Karras et al.
2018, "Progressive growing of GANs": w * c), a pruning mask
(torch.nn.utils.prune: w * mask), a transpose. The trace keeps each op on
parameters alone as a `Call`; `weight_response` runs the chain again on
float64 draws of its parameters and finds how the mean square of the
weight's entries answers each parameter's scale: as the square of it (the
parameter sets the weight's scale: the solve chooses it), not at all (its
scale is divided out), or otherwise (no rule).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import torch

if TYPE_CHECKING:
    from .graph import Graph

# the exponent of the mean square's answer to a parameter's scale: 2 or 0, within this
RESPONSE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Operand:
    """A tensor argument of a recorded call: node.inputs[key] ("input") or the
    parameter named in node.params[key] ("param")."""

    where: str
    key: Any


@dataclass(frozen=True, eq=False)
class Call:
    """An op on parameters alone, as recorded: its function and arguments, the
    tensors computed from parameters replaced by Operands (tensors that are
    not, held as they were), and which of its outputs the node is (None: the
    value returned)."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Optional[int]


def _mapped(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """`value` (arguments: tuples, lists and dicts of leaves) with `leaf` applied to each leaf."""
    if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
        return type(value)(_mapped(v, leaf) for v in value)
    if type(value) is dict:
        return {k: _mapped(v, leaf) for k, v in value.items()}
    return leaf(value)


def template(value: Any, refer: Callable[[torch.Tensor], Optional[Operand]]) -> Any:
    """`value` (arguments: tensors, tuples, lists, dicts and plain values) with each
    tensor `refer` maps to an Operand replaced by it."""
    def leaf(item: Any) -> Any:
        found = refer(item) if isinstance(item, torch.Tensor) else None
        return item if found is None else found
    return _mapped(value, leaf)


class NotRecomputable(Exception):
    """A node on the way is not an op on parameters alone that the trace kept."""


def recompute(graph: Graph, index: int, values: Mapping[str, torch.Tensor],
              buffers: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Node `index`'s value with the parameters in `values` (float64) in place of the
    model's; buffers by name from `buffers`. Raises NotRecomputable."""
    memo: dict[int, torch.Tensor] = {}

    def param(name: str) -> torch.Tensor:
        found = values.get(name)
        return _float64(found if found is not None else graph.params[name].detach())

    def value(i: int) -> torch.Tensor:
        if i in memo:
            return memo[i]
        node = graph.nodes[i]
        if node.kind == "param":
            result = param(node.params["param"])
        elif node.kind == "constant" and node.attrs.get("buffer") in buffers:
            result = _float64(buffers[node.attrs["buffer"]].detach())
        elif node.call is not None:
            call = node.call

            def resolve(leaf: Any) -> Any:
                if isinstance(leaf, Operand):
                    return value(node.inputs[leaf.key]) if leaf.where == "input" else param(node.params[leaf.key])
                return _float64(leaf) if isinstance(leaf, torch.Tensor) else leaf

            out = call.func(*_mapped(call.args, resolve), **_mapped(call.kwargs, resolve))
            result = out if call.output is None else out[call.output]
        else:
            raise NotRecomputable(f"{node.kind} {node.target}".strip())
        if not isinstance(result, torch.Tensor) or result.is_meta:
            raise NotRecomputable(f"{node.kind} {node.target}: no value")
        memo[i] = result
        return result

    with torch.no_grad():
        return value(index)


def _float64(t: torch.Tensor) -> torch.Tensor:
    if t.is_meta:
        raise NotRecomputable("a tensor on the meta device")
    return t.to(torch.float64) if t.is_floating_point() else t


class Response(NamedTuple):
    """How a computed weight's mean square answers its parameters.

    main: the source with the most entries; base: the mean square with main
    drawn N(0, 1) and every other source at one (or at the kept values);
    powers: per source, the exponent p of mean square ~ scale^p (2: it sets
    the scale; 0: divided out); row_sums: the mean square of an output row's
    sum over its fan_in * base (1 for independent zero-mean entries, 0 for
    rows centred to mean zero, as weight standardization does)."""

    main: str
    base: float
    powers: dict[str, float]
    row_sums: float

    def scaling(self) -> Optional[str]:
        """The source that sets the weight's scale: the main one if it does, else
        the largest of the others that does; None if every scale is divided out."""
        scaling = [n for n, p in self.powers.items() if _is(p, 2.0)]
        if self.main in scaling:
            return self.main
        return scaling[0] if scaling else None

    def ruled(self) -> bool:
        """Whether each source's scale either sets the weight's or is divided out."""
        return all(_is(p, 2.0) or _is(p, 0.0) for p in self.powers.values())


def _is(power: float, expected: float) -> bool:
    return abs(power - expected) <= RESPONSE_TOLERANCE


def weight_response(graph: Graph, index: int, sources: list[str], fixed: Mapping[str, torch.Tensor],
                    buffers: Mapping[str, torch.Tensor], rows_first: bool = True) -> Optional[Response]:
    """The Response of node `index` (a weight computed from the parameters `sources`),
    or None when the chain cannot be run again (an op the trace did not keep, a
    buffer on the meta device) or gives no finite mean square. `fixed`: values
    that stay (float64), for sources whose values are kept; rows_first: the
    weight's first dim is its outputs (False: a transposed convolution's,
    whose row sums are not measured: taken as 1)."""
    if not sources:
        return None
    params = {name: graph.params[name] for name in sources}
    main = max(sources, key=lambda n: params[n].numel())
    g = torch.Generator().manual_seed(0)
    values: dict[str, torch.Tensor] = {}
    for name, p in params.items():
        if name in fixed:
            values[name] = fixed[name]
        elif name == main:
            values[name] = torch.randn(tuple(p.shape), generator=g, dtype=torch.float64)
        else:
            values[name] = torch.ones(tuple(p.shape), dtype=torch.float64)

    def mean_square(trial: Mapping[str, torch.Tensor]) -> float:
        w = recompute(graph, index, trial, buffers)
        return float(w.to(torch.float64).pow(2).mean()) if w.is_floating_point() else math.nan

    try:
        weight = recompute(graph, index, values, buffers).to(torch.float64)
        base = float(weight.pow(2).mean())
        powers = {name: math.log2(mean_square({**values, name: 2.0 * values[name]}) / base)
                  for name in sources if name not in fixed}
    except (NotRecomputable, RuntimeError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    if not (math.isfinite(base) and base > 0 and all(math.isfinite(p) for p in powers.values())):
        return None
    rows = weight.reshape(weight.shape[0], -1) if rows_first and weight.dim() >= 2 else None
    row_sums = 1.0 if rows is None else float(rows.sum(1).pow(2).mean() / (rows.shape[1] * base))
    return Response(main, base, powers, row_sums)
