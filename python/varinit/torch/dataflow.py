"""The graph-aware init: carry the signal's moments through a traced forward
pass (varinit.torch.graph) and solve each weight's scale so the second moment
at its layer's output meets the target.

`plan(model, example_inputs)` decides every parameter (its rule, its std or
constant, and why) without writing anything, so it works on a meta model;
`varinit.torch.init_module(model, example_inputs)` plans, then fills each
parameter from its own name-keyed stream.

The walk, node by node in execution order, with moment_rules' formulas:

- a layer (linear, conv, conv transpose) whose weight this use decides gets
  Var(W) = target / (n_eff * nu_in): n_eff is the effective fan at the actual
  spatial size (zero padding counted), nu_in the second moment of its input
  (not the variance: He et al. 2015). Biases are 0. The GELU/SiLU drift of
  an unstable fixed point is corrected layer by layer, since every layer is
  solved against the moment actually arriving;
- elementwise regions (an activation module, F.relu in forward(), a custom
  x * sigmoid(1.5 x)) are fused into one function of their source and
  integrated by quadrature; additions, products, concatenations, norms,
  pooling, dropout, attention and embeddings follow their rules;
- residual branches: an addition whose one operand (the stream) is an
  ancestor of the other (the branch) through a layer is a residual, and so is
  one whose stream is a projection shortcut (one layer and a norm on the
  block's input, the branch two layers or more from it), and one that adds a
  layer's output from elsewhere to a stream a residual addition made (TNT's
  pixel stream projected onto its patch stream). The
  additions that follow each other on one stream with no normalization in
  between (through concatenations along their largest part: a class token
  beside the patches) form a chain of L; the last scalable node of each branch (a layer's
  weight, or a norm's gamma) is solved to alpha * nu_stream with alpha = 1/L,
  so the stream grows by at most (1 + 1/L)^L < e over the whole chain
  (branch variance 1/L, as Fixup and T-Fixup scale; Zhang et al. 2019, Huang et
  al. 2020). Norm-ended branches (BatchNorm ResNets) add a share that grows
  with the stream, capped for the gradient they pass back (_Walk.goal).
  residual="zero_gamma" sets a branch-final norm's gamma to 0
  instead (Goyal et al. 2017), and residual="none" solves branches like any
  layer;
- a parameter used several times (a module called twice, an embedding tied
  to the output head) is decided by its last layer use, nearest the output,
  and the walk is repeated until the earlier uses agree with that choice;
  except an embedding tied to a head that reads a norm: the embedding keeps
  rows of unit second moment and the norm's gain takes the head's scale
  (gamma^2 = target / (fan_in * std^2)), so neither the embedded tokens
  (std 1/sqrt(d) as a head would want) nor the logits (std sqrt(d)) are off;
- LSTM/GRU keep varinit's recurrent rules (orthogonal recurrent gates, the
  LSTM's forget- and output-gate offsets); their input weights are solved
  layer by layer for unit gate preactivations, and their output moments are
  measured on a copy. A gated output stays below unit std unless the gates
  saturate; where a layer's is below GATED_OUTPUT_FLOOR (a short sequence, a
  first layer), one gate's offset is solved to lift it (_gate_offset: an
  LSTM's input gate opens, a GRU's update gate closes; a cell's over the
  loop that calls it, _cell_gate_offset). The report notes
  the output's std, and the layer after is solved from it;
- an op the rules do not know ("opaque") is named in a warning, and what
  follows it is solved against an assumed unit second moment.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union, cast

import numpy as np
import torch

from ..quadrature import DivergentIntegral
from . import moment_rules as rules
from .computed_weights import Response, weight_response
from .graph import EMBEDDINGS, ExampleInputs, Graph, Node, einsum_terms, fixed_mix_stats, meta_view, trace
from .modules import SOLVED_GATES, init_by_structure, recurrent_mode, write_gate_offset
from .moment_rules import Moments
from .parametrizations import spectral_norm_of
from .refine import MEASURED_MODULES, Target
from .signs import Signs, one_signed
from .verdicts import Tally, Verdict, gradient_keeping_scale, operand_label, region_label, tally, verdict

ResidualRule = Literal["depth", "zero_gamma", "none"]
RESIDUAL_RULES: tuple[ResidualRule, ...] = ("depth", "zero_gamma", "none")
LAYERS: tuple[str, ...] = ("linear", "conv", "conv_transpose")
# through these a residual stream passes from one addition to the next unchanged in kind
STREAM_PASS = ("view", "elementwise", "dropout", "scale", "shift")
# walking back from a branch's output to its last scalable node passes these
BRANCH_PASS = ("view", "dropout", "scale")
# assumed where the walk cannot know (after an opaque op, a meta input): unit second moment
ASSUMED = Moments(0.0, 1.0)
MAX_PASSES = 6
# a signal's second moment past this is an overflow of the rules (1 / x of a Gaussian, products
# squared at each step of an iteration), not what a model computes at init: std 1e6
MAX_SECOND_MOMENT = 1e12
# a residual stream below this fraction of its chain's start is built by its branches (goal)
QUIET_STREAM = 1.0 / 16.0
TIE_RTOL = 1e-6
# bisection steps for a residual branch's alpha on [1e-6, 1] (log scale): 2% relative
GROWTH_STEPS = 12
# a chain of residual blocks that a norm or a layer reads may raise its stream's second
# moment 1 + L/3 times (each branch a third of the start), at least STREAM_BUDGET and at
# most MAX_STREAM_BUDGET (gradients x4)
STREAM_BUDGET = 4.0
MAX_STREAM_BUDGET = 16.0
# ... counted from the chain's start, but from at most CHAIN_START_CAP times the target: each
# branch then adds at most 0.45 of the target (its output's std 0.67 of the layers' inside it,
# the act bound's 0.5 with a margin for the draws). A start above the target (a token and a
# position embedding summed: 2) would grow the stream, and the gradient with it, by more than
# the act bound asks (12 nanoGPT-style blocks: gradient ratio 3.9, 3.1 from the capped start).
# A start below it (a stem's ReLU: 0.5) is counted as at least 1 / CHAIN_START_CAP of the
# target, so its branches' outputs do not fall to the act bound (a ReLU stem and 6 branches:
# std 0.5 of the layers inside them, act 2.03; from the floor 0.61, act 1.67), as far as the
# stream then grows at most MAX_STREAM_BUDGET-fold from its real start
CHAIN_START_CAP = 1.35
# a chain whose stream is the model's output raises its second moment 3-fold (std x1.73;
# the branches' measured correlation with the stream adds about 7% to the std), or up to
# 3.3-fold (std x1.82, 1.94 with that 7%) where that keeps each branch OPEN_BRANCH_SHARE of
# the start: its output's std 0.55 of the layers inside it (0.54 at 8 branches), a margin on
# the act bound's 0.5
OPEN_STREAM_BUDGET = 3.0
MAX_OPEN_STREAM_BUDGET = 3.3
OPEN_BRANCH_SHARE = 0.3
# an LSTM or GRU layer whose output has std below this (times the target's) takes a gate
# offset (_gate_offset): the layer after it, solved to the target, is then within 1.8
# times its std (the act bound 2, with a margin for the draws); the offset is at most
# GATE_OFFSET_CAP in size (a gate at sigmoid(4) = 0.98), found in OFFSET_STEPS bisection steps
# (to 0.06) on OFFSET_BATCH of the sample's sequences
GATED_OUTPUT_FLOOR = 0.55
GATE_OFFSET_CAP = 4.0
OFFSET_STEPS = 6
OFFSET_BATCH = 8
# a chain of norm-ended branches grows its stream's second moment at most e-fold
NORM_BRANCH_GROWTH = 1.0 - math.exp(-1.0)
# the norm-ended branches before a model's last one raise the gradient's second moment at
# most this many times in all (each alpha_k A_k = GRADIENT_BUDGET ** (1 / (N - 1)) - 1) ...
GRADIENT_BUDGET = 2.0
# ... but each at least this much: its layers' gradient then about sqrt(0.1) = 0.32 of the
# stream's (above 8 such branches; the ReLU after each addition masks part of the growth)
BRANCH_GRADIENT_FLOOR = 0.1
# reductions over many elements: what a function of one sees is concentrated near its mean
REDUCTIONS = ("mean", "sum", "vector_norm", "var", "std")
# a product summed over at least this many terms whose variance is at most CONCENTRATED times
# its mean's square is a statistic too, when it divides (concentrated_product): the delta
# method's E[1/d^2] = (1 + 3 var/m^2) / m^2 is then within the spread of the first-order terms
DOT_TERMS = 8
CONCENTRATED = 0.5
# ops that act on each position alone, through which an output is traced back to a pooling
POSITIONWISE = ("linear", "norm", "elementwise", "dropout", "view", "scale", "shift", "add")
# activations with g(0) = 0: zero padding stays zero through them
ZERO_AT_ZERO = ("relu", "leaky_relu", "gelu", "silu", "tanh", "elu", "celu", "selu", "mish", "relu6", "hardswish",
                "softsign", "hardtanh")
# ops through which the model's output is a degree-1 positively homogeneous function of
# the layers before it: scaling those layers' weights by f scales the output by f
HOMOGENEOUS = ("view", "dropout", "scale", "interpolate", "max_pool", "avg_pool", "adaptive_max_pool",
               "adaptive_avg_pool", "mean", "sum", "cumsum", "cat", "max_unpool")
HOMOGENEOUS_ACTIVATIONS = ("relu", "leaky_relu")
# the dropout ops that drop to SELU's saturation value and restore the moments by an affine map
# (not homogeneous, zero not kept)
ALPHA_DROPOUTS = ("alpha_dropout", "feature_alpha_dropout")
# a layer called several times whose calls' output second moments lie further apart than this
# (std x1.73: with the other layers at the target, the act ratio's 2 is near) is named (call_spread_notes)
CALL_SPREAD = 3.0
# the last layers' std moves at most this factor toward the model's output having unit
# variance (output_gains), so it stays within a factor 2 of the other layers'
MAX_OUTPUT_GAIN = 1.8
# torch's initial PReLU slope, taken when the parameter holds no values (meta)
PRELU_SLOPE = 0.25
# the factor on the second moment of q's and k's layers that brings attention scores down
# to unit variance stays within [1/MAX_SCORE_GAIN, 1]: their std within 1.8 of the other
# layers' (as MAX_OUTPUT_GAIN), inside the 2-fold the act bound allows
MAX_SCORE_GAIN = MAX_OUTPUT_GAIN ** 2


@dataclass
class ParamPlan:
    """What init_module does to one parameter: `rule` ("normal", "constant",
    "recurrent", "untouched"), its std (normal) or value (constant, or a
    recurrent bias's solved gate offset), and why."""

    name: str
    rule: str
    std: Optional[float] = None
    value: Optional[float] = None
    fan_in: Optional[float] = None
    reason: str = ""
    tied: tuple[str, ...] = ()
    goal: Optional[float] = None   # the second moment solved for at its layer's output, when it is fixed


@dataclass
class Plan:
    params: dict[str, ParamPlan]           # canonical name -> ParamPlan
    graph: Graph
    moments: dict[int, Optional[Moments]]  # node index -> Moments (None: not a signal)
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    measurable: list[Target] = field(default_factory=list)   # refine.Target per layer the measured pass corrects
    drift: dict[str, float] = field(default_factory=dict)    # activation -> growth of a draw's error (_Walk.drift)
    spread: tuple[float, str] = (0.0, "")   # (sd of log nu a finite-width draw gives, where largest): _Walk.spread
    residual_branches: int = 0   # how many residual branches the walk found (_residuals)
    # node index -> kappa, the second moment of the part of its output every position shares
    common: dict[int, float] = field(default_factory=dict)

    def batch_statistics(self) -> bool:
        """Whether a norm of the traced forward pass normalizes by the batch's statistics."""
        return any(node.kind == "norm" and batch_statistics(node) for node in self.signal_nodes())

    def scale_reset(self) -> bool:
        """Whether a norm of the forward pass sets its output's scale whatever its input's
        (batch, layer, group or RMS statistics) and no attention, softmax or recurrent layer
        mixes the signal: each layer's scale then reaches only the layers up to the next
        norm, and its output's std sets its own gradient as 1 / std."""
        nodes = list(self.signal_nodes())
        return any(node.kind == "norm" and norm_sets_scale(node) for node in nodes) and not any(
            node.kind in ("softmax", "attention", "rnn") for node in nodes)

    def alpha_dropouts(self) -> list[float]:
        """The drop probability of each AlphaDropout call in training in the traced forward pass."""
        return [float(node.attrs.get("p", 0.5)) for node in self.graph.nodes if node.kind == "dropout"
                and node.attrs.get("op") in ALPHA_DROPOUTS and node.attrs.get("training", True)]

    def pooled_positions(self) -> str | None:
        """Where the model's output averages over positions that an attention before it
        mixes (a mean over the tokens before a classifier head: every position then
        gets the same gradient, which the attention passes back whole), or None. Found
        from each output back through per-position ops; a reduction over the last
        (feature) dim is a norm's, not a pooling."""
        nodes = self.graph.nodes
        mixed = {nodes[n.inputs[0]].shape[-2] for n in nodes
                 if n.kind == "attention" and n.inputs and len(nodes[n.inputs[0]].shape) >= 2}
        mixed |= {n.shape[-2] for n in nodes if n.kind == "softmax" and len(n.shape) >= 2}
        mixed.discard(1)
        return self._averaged_over(mixed) if mixed else None

    def averaged_positions(self) -> str | None:
        """Where the model's output averages over positions of any kind (a mean over a
        point cloud's points before its head), as `pooled_positions` finds it, or None."""
        return self._averaged_over(None)

    def _averaged_over(self, sizes: set[int] | None) -> str | None:
        """The module of the first reduction over positions (a dim between the batch and
        the features, or an adaptive average pooling to one) of a size in `sizes` (any
        size: None) found from the outputs back through per-position ops, or None."""
        nodes = self.graph.nodes
        for node in _walk_back(self.graph, self.graph.outputs, lambda n: n.kind in POSITIONWISE):
            if node.kind in REDUCTIONS and node.inputs:
                shape = nodes[node.inputs[0]].shape
                dims = node.attrs.get("dim") or range(len(shape))
                if any(0 < d % len(shape) < len(shape) - 1 and shape[d] > 1 and (sizes is None or shape[d] in sizes)
                       for d in dims):
                    return node.module or "the model's forward"
            if node.kind == "adaptive_avg_pool" and node.inputs:   # over its last dims: positions
                spatial = math.prod(nodes[node.inputs[0]].shape[-len(node.attrs["output_size"]):])
                if (sizes is None and spatial > 1 or spatial in (sizes or ())) and \
                        math.prod(node.attrs["output_size"]) == 1:
                    return node.module or "the model's forward"
        return None

    def broadcast_layers(self) -> dict[str, int]:
        """Layer module -> how many positions its output is broadcast over, for the layers
        whose output reaches a sum or product as an operand of one value per example and
        channel (a diffusion U-Net's timestep embedding, DiT's adaLN modulation) and not
        the other operand: their gradient is the sum of those positions'."""
        nodes, ancestors = self.graph.nodes, _ancestors(self.graph)
        layers = sum(1 << n.index for n in nodes if n.kind in LAYERS and n.module)
        found: dict[str, int] = {}
        for node in nodes:
            if node.kind not in ("add", "mul") or len(node.inputs) != 2:
                continue
            for operand, other in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
                shape = nodes[operand].shape
                if not _over_positions(shape, node.shape):
                    continue
                positions = math.prod(node.shape) // max(math.prod(shape), 1)
                mine = (ancestors[operand] | 1 << operand) & ~(ancestors[other] | 1 << other) & layers
                while mine:
                    index = mine.bit_length() - 1
                    mine ^= 1 << index
                    module = nodes[index].module
                    found[module] = max(found.get(module, 0), positions)
        return found

    def scaled_layers(self) -> dict[str, float]:
        """Layer module -> the constant c every call's output is multiplied by before
        anything else reads it (through views), for |c| at most 1/2 or at least 2 (an
        Euler step's x + dt f(x), a branch scaled by a fixed 0.1): the gradient at its
        output is c times the one that reaches the product, whatever the weights."""
        found: dict[str, float | None] = {}
        for node in self.graph.nodes:
            if node.kind not in LAYERS + EMBEDDINGS or not node.module:   # an embedding times sqrt(d) too
                continue
            readers = self.graph.readers(node.index)
            while len(readers) == 1 and readers[0].kind == "view":
                readers = self.graph.readers(readers[0].index)
            scalars = {r.attrs.get("scalar") for r in readers if r.kind == "scale"}
            c = scalars.pop() if readers and len(scalars) == 1 and all(r.kind == "scale" for r in readers) else None
            c = float(c) if isinstance(c, (int, float)) and not 0.5 < abs(c) < 2.0 else None
            found[node.module] = c if found.get(node.module, c) == c else None
        return {module: c for module, c in found.items() if c is not None}

    def score_layers(self) -> set[str]:
        """The layer modules whose output reaches the rest of the forward pass only as
        attention scores: the query and key projections of a softmax attention, written
        out (softmax(q kᵀ)) or as F.scaled_dot_product_attention, with no norm between
        them and the scores, as a module or written out (a norm would undo their scale).
        Their scale sets how peaked the attention is, and so how much gradient passes
        back through its scores (branch_balance). A packed projection whose output is
        also the values (nn.MultiheadAttention's in_proj, GPT-2's c_attn) is not one."""
        graph, nodes = self.graph, self.graph.nodes
        ancestors, live = _ancestors(graph), _floats_reaching(graph)
        found: set[str] = set()
        for consumer in nodes:
            if consumer.kind not in ("softmax", "attention") or not consumer.inputs:
                continue
            scores = consumer.inputs[:1] if consumer.kind == "softmax" else consumer.inputs[:2]
            within = 0
            for index in scores:
                within |= ancestors[index] | 1 << index
            # back from the scores to the layers that make them, not through a norm
            for node in _walk_back(graph, scores, lambda n: not (n.kind in LAYERS and n.module) and n.kind != "norm"):
                if (node.kind in LAYERS and node.module
                        and _read_as_scores_only(graph, node.index, within, consumer, len(scores), live)):
                    found.add(node.module)
        return found

    def plain(self) -> bool:
        """Whether the forward pass has no residual branch, norm, attention or
        recurrent layer: its layers' scales alone set how the signal and the
        gradient move over the depth (varinit.torch.gradient_balance)."""
        return self.residual_branches == 0 and not any(
            node.kind in ("norm", "softmax", "attention", "rnn") for node in self.signal_nodes())

    def signal_nodes(self) -> Iterator[Node]:
        """The nodes of the forward pass but those computed from parameters alone (a weight
        standardized inside forward is normalized by a batch_norm call, not the signal)."""
        return (node for node in self.graph.nodes if node.index not in self.graph.computed)


# A fused elementwise function: a callable of arrays, or an activation's (name, param)
Fused = Union[Callable[..., Any], tuple[str, Optional[float]]]
# An elementwise region: (its source node, the function, its output's moments, E[g'^2])
Region = tuple[int, Fused, Moments, float]
# A residual branch's end: (stream node, chain length, the addition, the chain's first
# stream, whether the chain's stream is the model's output)
BranchEnd = tuple[int, int, int, int, bool]


def plan(model: torch.nn.Module, example_inputs: ExampleInputs, *, target: float = 1.0,
         residual: ResidualRule = "depth", kept: dict[str, str] | None = None,
         shifts: dict[str, float] | None = None) -> Plan:
    """Decide every parameter of `model` from the dataflow of one forward pass
    on `example_inputs` (real or meta); nothing is written. `kept` maps the
    names of parameters whose values stay (loaded, or set by an override) to
    the reason: the walk reads their values, and solves the rest around them.
    `shifts` maps norms' shift parameters to the value they take instead of 0
    (`norm_shift`)."""
    graph, traced_on_real = _trace_shapes(model, example_inputs)
    walk = _Walk(model, graph, example_inputs, target, residual, kept or {}, shifts or {})
    if traced_on_real:
        walk.notes.append(traced_on_real)
    decided: dict[str, float] = {}
    for _ in range(MAX_PASSES):
        walk.run(decided)
        new = {name: p.std for name, p in walk.plans.items() if name in walk.multi_use and p.std is not None}
        new.update((gamma, cast(float, walk.plans[gamma].value))   # a norm gain: a constant plan
                   for gamma in walk.head_gains.values() if gamma in walk.plans)
        if all(_close(new.get(k), decided.get(k)) for k in set(new) | set(decided)):
            break
        decided = new
    walk.output_gain = walk.output_gains()
    if walk.output_gain:
        walk.run(decided)
    walk.finish()
    return Plan(walk.plans, graph, walk.moments, walk.verdicts(), walk.notes, walk.measurable(), walk.drift(),
                walk.spread(), len(walk.branch_end), walk.common)


def _trace_shapes(model: torch.nn.Module, example_inputs: ExampleInputs) -> tuple[Graph, str | None]:
    """The trace, run on meta twins of the model and the inputs: the walk needs shapes
    only (it reads the inputs' and the parameters' moments itself). Meta inputs alone
    are not enough: an embedding of meta ids with a real table computes for real.
    Values computed from integer inputs, and a tensor made in forward that a layer
    reads, are read on a trace of the real model (meta inputs as zeros).

    A forward pass that cannot run on meta tensors (a mask made with torch.ones(T, T)
    in forward() lands on the CPU, .item() reads a value) is traced again on the real
    model, with the real inputs or zeros of the meta inputs' shapes; the second item
    is then the note that says so (None otherwise)."""
    meta = map_inputs(example_inputs, lambda t: t.to("meta"))
    if any(p.is_meta for p in model.parameters()):
        return trace(model, meta), None  # which also refuses what is not a tensor, by name
    try:
        with meta_view(model):
            graph = trace(model, meta)
        if not (_values_from_integers(graph) and any(
                not t.is_meta and not t.is_floating_point() for t in flat_inputs(example_inputs))
                or _constant_layer_inputs(graph)):
            return graph, None
        failure = None   # the values computed from integer inputs (a graph's degrees) are read for real
    except (RuntimeError, NotImplementedError) as error:
        failure = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    real = map_inputs(example_inputs, lambda t: torch.zeros(t.shape, dtype=t.dtype, device=device)
                       if t.is_meta else t)
    try:
        graph = trace(model, real)
    except (RuntimeError, NotImplementedError, ValueError, IndexError) as error:
        if not any(t.is_meta for t in flat_inputs(example_inputs)):
            raise
        tried = f"on meta tensors it failed ({failure}), and " if failure is not None else ""
        raise ValueError(
            f"example_inputs: the forward pass could not be traced from the shapes alone: {tried}on zeros of the "
            f"meta inputs' shapes it failed ({type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}); "
            "pass real example inputs (a batch of data: sequence lengths, token ids and masks as the model "
            "expects them)") from error
    return graph, None if failure is None else (
        f"traced on real tensors (one full forward pass): on meta tensors the forward pass failed "
        f"({failure}), as it does for a tensor made in forward() on a fixed device (torch.ones(T, T) for a "
        "mask; device=x.device follows the input) or a value read from the data (.item(), if x.sum() > 0)")


def _constant_layer_inputs(graph: Graph) -> bool:
    """Whether a layer reads, through views, a floating tensor made in forward from what the
    meta trace cannot see (a diffusion model's sinusoidal timestep embedding of a buffer):
    its values, read on a real trace, are the layer's input moments."""
    for node in graph.nodes:
        if node.kind not in LAYERS or not node.inputs:
            continue
        source = graph.nodes[_through(graph, node.inputs[0], ("view",))]
        if (source.kind == "constant" and source.dtype.is_floating_point and math.prod(source.shape) > 1
                and "values" not in source.attrs):
            return True
    return False


def _values_from_integers(graph: Graph) -> bool:
    """Whether the solve reads values computed from the integer inputs alone: floating ones
    (a graph's node degrees from its edge index, normalizing its messages) or the index of
    a scatter (how many messages each node receives)."""
    integral = {i for i in graph.inputs if i in graph.fixed} | {   # and integer buffers (an edge index kept)
        n.index for n in graph.nodes if n.kind == "constant" and "buffer" in n.attrs and not n.dtype.is_floating_point}
    for node in graph.nodes:
        if node.kind == "scatter" and len(node.inputs) > 2 and node.inputs[2] in integral:
            return True
        if node.inputs and any(i in integral for i in node.inputs) and node.index in graph.fixed:
            if node.dtype.is_floating_point:
                return True
            integral.add(node.index)
    return False


def map_inputs(example_inputs: ExampleInputs, f: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """The example inputs with f applied to each tensor, in the same container."""
    def one(x: object) -> object:
        return f(x) if isinstance(x, torch.Tensor) else x
    if isinstance(example_inputs, dict):
        return {k: one(v) for k, v in example_inputs.items()}
    if isinstance(example_inputs, (tuple, list)):
        return type(example_inputs)(one(t) for t in example_inputs)
    return one(example_inputs)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= TIE_RTOL * max(abs(a), abs(b))


class _Walk:
    def __init__(self, model: torch.nn.Module, graph: Graph, example_inputs: ExampleInputs, target: float,
                 residual: ResidualRule, kept: dict[str, str], shifts: dict[str, float]) -> None:
        self.model, self.graph, self.target, self.residual = model, graph, float(target), residual
        self.kept = kept
        self.shifts = shifts
        self.modules = dict(model.named_modules())
        self.real_params = dict(model.named_parameters())   # the graph's may be meta twins
        self.buffers = dict(model.named_buffers())
        self.example = flat_inputs(example_inputs)
        self.ancestors = _ancestors(graph)
        self.weighted = sum(1 << n.index for n in graph.nodes if n.params)   # the nodes that read parameters
        self.branch_end, self.chain_length = _residuals(graph, self.ancestors)
        self.residual_additions = {add for _, _, add, *_ in self.branch_end.values()}
        # the ends of norm-ended branches, in the order of their additions
        self.norm_ends = sorted((e for e, end in self.branch_end.items() if graph.nodes[e].kind == "norm"),
                                key=lambda e: self.branch_end[e][2])
        self.sharing = _sharing_layers(graph, self.branch_end)
        self.stream_starts = _param_stream_starts(graph, {end[3] for end in self.branch_end.values()})
        # node -> _own_sum: x / (the sum of x), a softmax or a router's shares written out; and
        # the nodes that make up those normalizations (no verdict is judged on them)
        self.own_sums = {n.index: own for n in graph.nodes if (own := _own_sum(graph, n)) is not None}
        self.normalizing = _own_sum_parts(graph, self.own_sums)
        self.deciding = _deciding_uses(graph)
        self.multi_use = {name for name, uses in graph.uses.items() if len(_layer_uses(graph, name)) > 1}
        self.parameter_free = _parameter_free(graph)
        self.head_gains = {head: gamma for head, gamma in _tied_head_gains(graph, self.deciding).items()
                           if gamma not in kept and graph.nodes[head].params.get("weight") not in kept}
        for head in self.head_gains:
            weight = cast(str, graph.nodes[head].params.get("weight"))   # a tied head reads its weight
            self.deciding[weight] = min(_layer_uses(graph, weight))
        # layer node -> how its weight computed in forward answers its parameters (None: no rule)
        self.responses = {node.index: self.response(node) for node in graph.nodes
                          if node.kind in LAYERS and self.computed(node)}
        # a weight whose scale the forward divides out: the norm before it sets its output's
        self.head_gains.update((i, gamma) for i, response in self.responses.items()
                               if response is not None and response.scaling() is None
                               and (gamma := _free_gain_before(graph, i)) is not None and gamma not in kept)
        gammas = self.head_gain_names = set(self.head_gains.values())
        self.head_gamma_nodes = {n.index: n.params["weight"] for n in graph.nodes
                                 if n.kind == "norm" and n.params.get("weight") in gammas}
        self.notes: list[str] = []
        self.alphas: dict[int, float] = {}
        # layer node -> factor on its goal that gives the model's output the target variance
        self.output_gain: dict[int, float] = {}
        self.activated_outputs: dict[int, str] = {}   # layer -> the activation of it that is a model output
        # layer node -> (factor on its goal, why): q's and k's layers of attention scores
        self.score_gains = _score_gains(graph)
        # embedding node -> (factor on its rows' second moment, why): position biases of those scores
        self.logit_biases = _logit_biases(graph, self.score_gains)
        # per pass (run)
        self.decided: dict[str, float] = {}
        self.plans: dict[str, ParamPlan] = {}
        self.moments: dict[int, Moments | None] = {}
        # per node: kappa, the second moment of the part common to every position (>= mean^2)
        self.common: dict[int, float] = {}
        # per node whose output holds zero padding: the share of its elements that are not
        # padding (its moments are theirs); what cannot carry the share reads the mixture
        self.live: dict[int, float] = {}
        # per such node whose padded positions are not zero (a padded query's attention
        # averages the values): their second moment over the real positions'
        self.padded: dict[int, float] = {}
        self.raw = False   # True while a node that carries the share reads its input
        self.causal: set[int] = set()   # softmax nodes over causally masked scores
        self.masks: list[str] = []      # the modules where a mask was taken as causal
        self.regions: dict[int, Region] = {}
        self.signs = Signs(self.graph, self.regions)
        self.slopes: dict[int, float] = {}
        self.assumed: list[str] = []
        self.opaque: list[Node] = []
        self.overflowed: list[Node] = []   # nodes whose moments came out infinite
        self.memo: dict[int, int] = {}
        # (the ops of a fused region, its input moments) -> its moments and E[g'^2]: a
        # transformer's blocks repeat the same written-out GELU at the same moments
        # (the moments, or None; whether g's moments diverge over x's Gaussian, so g is taken
        # as a function of a statistic: a normalizer, not an activation)
        self.quadratures: dict[tuple[Any, ...], tuple[tuple[Moments, float] | None, bool]] = {}
        self.normalizers: set[int] = set()   # regions whose moments diverged: g of a statistic
        # a recurrent cell's float64 copy under varinit's recurrent rules, by module: a cell
        # is called once per step, and each call is measured on it
        self.cell_probes: dict[str, torch.nn.Module] = {}
        self.cell_offsets: dict[str, tuple[float, float, float]] = {}   # a cell's gate offset, by module
        # per recurrent module, the note on its bounded output: a cell called once per step
        # has one, for its last step (finish adds them to the notes)
        self.state_notes: dict[str, str] = {}

    # ------------------------------------------------------------------ walk
    def run(self, decided: dict[str, float]) -> None:
        self.decided = decided
        self.plans, self.moments, self.regions, self.common, self.slopes = {}, {}, {}, {}, {}
        self.signs = Signs(self.graph, self.regions)
        self.assumed, self.opaque, self.live, self.causal, self.masks = [], [], {}, set(), []
        self.overflowed = []
        self.normalizers = set()
        self.padded = {}
        self.memo = {}
        self.tables: dict[str, Moments | None] = {}   # buffer name -> its values' moments (table_moments)
        for node in self.graph.nodes:
            share = self.live.get(node.inputs[0]) if node.inputs and _keeps_zero(node) else None
            self.raw = share is not None
            moments = self.moments[node.index] = self.bounded(node)
            self.raw = False
            if share is not None:
                kept = share * math.prod(self.graph.nodes[node.inputs[0]].shape)
                if abs(kept - math.prod(node.shape)) >= 0.5:   # else a crop that drops the padding
                    self.live[node.index] = share
                    if node.inputs[0] in self.padded:   # exact for the linear maps among these
                        self.padded[node.index] = self.padded[node.inputs[0]]
            elif node.kind == "matmul" and (rows := self.query_share(node)) is not None:
                self.live[node.index] = rows
            if moments is not None and node.index not in self.common:
                with np.errstate(over="ignore", invalid="ignore"):
                    common = self.node_common(node, moments)
                # a quadrature of exp that overflows (RWKV's decays) leaves the common part at its bound
                self.common[node.index] = (min(max(common, moments.mean ** 2), moments.second) if math.isfinite(common)
                                           else moments.second)

    def bounded(self, node: Node) -> Moments | None:
        """node_moments, or None where they overflow (past MAX_SECOND_MOMENT): rules that take
        factors as independent can square a moment at each step of an iteration that converges
        in fact (a Newton-Schulz pseudo-inverse, a state-space scan's decays exp(A dt) with
        A < 0 < dt)."""
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # (an overflow is named here)
                moments = self.node_moments(node)
        except OverflowError:
            moments = None
            self.overflowed.append(node)
        if moments is not None and node.index not in self.graph.fixed and not moments.second <= MAX_SECOND_MOMENT:
            moments = None
            self.overflowed.append(node)
        return moments

    def kappa(self, index: int) -> float:
        """The common part's second moment of a node's output (mean^2 when unknown)."""
        found = self.common.get(index)
        if found is None:
            return self.m(index).mean ** 2
        return found * (1.0 if self.raw else self.mixture(index))

    def mixture(self, index: int) -> float:
        """A padded node's second moment over all its elements, over the real positions'."""
        share = self.live.get(index, 1.0)
        return share + (1.0 - share) * self.padded.get(index, 0.0)

    def node_common(self, node: Node, out: Moments) -> float:
        """kappa of a node's output from its inputs': what attention averages
        over positions keeps whole. Per-position maps (layers, norms,
        activations, sums, products) carry it; a source of independent rows
        (an input, an embedding lookup, an op without a rule) has only its mean."""
        kind = node.kind
        if kind == "param":
            return out.second if len(node.shape) <= 1 else out.mean ** 2   # a bias-like vector: common
        if node.index in self.graph.fixed:   # the same for every example, not the same at every position
            return out.mean ** 2
        if not node.inputs:
            return out.mean ** 2
        x = node.inputs[0]
        if kind == "dropout" and node.attrs.get("training", True) and node.attrs.get("op") in ("dropout", None):
            # a mask of mean one drawn per element: the common part passes as it is, and the
            # second moment dropout adds differs from position to position (dropout2d's
            # mask, one per channel, keeps the ratio kappa / nu as a scale would)
            return self.kappa(x)
        if kind == "dropout" and node.attrs.get("training", True) and node.attrs.get("op") in ALPHA_DROPOUTS:
            # y = a (x d + alpha' (1 - d)) + b: what positions share is a (1 - p) times x's
            # (the constants a alpha' p + b cancel)
            p = float(node.attrs.get("p", 0.5))
            return (rules.alpha_dropout_affine(p)[0] * (1.0 - p)) ** 2 * self.kappa(x)
        if kind == "linear" and node.attrs.get("over_features") is False:
            # weights over the positions (Linformer's E K): each output row takes its own
            # combination of them, so what they shared is not shared by the rows
            return out.mean ** 2
        if kind in LAYERS or kind in ("dropout", "view", "local_response_norm"):
            kappa, second = self.kappa(x), self.m(x).second
            response = self.responses.get(node.index)
            if response is not None:    # centred rows drop the mean shared by the channels they read
                dropped = (1.0 - min(response.row_sums, 1.0)) * self.m(x).mean ** 2
                kappa, second = max(kappa - dropped, 0.0), max(second - dropped, 0.0)
            return out.second * (kappa / second if second > 0 else 0.0)
        if kind == "norm":
            m = self.m(x)
            # batch statistics subtract the per-channel offset: the common part left varies by example
            offset = max(m.mean ** 2, m.second * self.channel_offset(node))
            spread = m.second - offset
            share = min(max((self.kappa(x) - offset) / spread, 0.0), 1.0) if spread > 0 else 0.0
            return out.mean ** 2 + (out.second - out.mean ** 2) * share
        region = self.regions.get(node.index)
        if region is not None:
            source, g, _, _ = region
            name, param = g if isinstance(g, tuple) else (g, None)
            entering = self.m(source)
            if not self.of_statistic(source):
                try:
                    return rules.elementwise_common(name, entering, self.kappa(source), param=param)
                except ValueError as error:
                    if "non-finite" not in str(error):
                        raise
            # g of a concentrated statistic (_of_statistic): its varying part keeps the share
            # of the source's variance that every position holds in common
            share = ((self.kappa(source) - entering.mean ** 2) / entering.variance if entering.variance > 0
                     else 1.0)
            return out.mean ** 2 + (out.second - out.mean ** 2) * min(max(share, 0.0), 1.0)
        if kind == "scatter" and node.attrs.get("op") != "setitem":
            # two elements of x take different sources, which share their common part
            attrs, landed = node.attrs, self.m(node.inputs[1])
            base_kappa = 0.0 if attrs.get("zeros_before") else self.kappa(x)
            if attrs.get("reduce", "sum") == "sum":
                c, alpha = float(attrs["counts"]), float(attrs["alpha"])
                base_mean = 0.0 if attrs.get("zeros_before") else self.m(x).mean
                return base_kappa + 2.0 * c * alpha * base_mean * landed.mean + (c * alpha) ** 2 * self.kappa(
                    node.inputs[1])
            share = float(attrs["written"])
            return share * self.kappa(node.inputs[1]) + (1.0 - share) * base_kappa
        if kind in ("add", "sub"):
            alpha = float(node.attrs.get("alpha", 1.0)) * (-1.0 if kind == "sub" else 1.0)
            a, b = self.m(node.inputs[0]), self.m(node.inputs[1])
            return (self.operand_kappa(node, 0) + alpha * alpha * self.operand_kappa(node, 1)
                    + 2.0 * alpha * a.mean * b.mean)
        if kind == "mul":
            return self.operand_kappa(node, 0) * self.operand_kappa(node, 1)
        if kind == "addcmul":
            v = float(node.attrs.get("value", 1.0))
            base, t1, t2 = (self.m(i) for i in node.inputs[:3])
            return (self.operand_kappa(node, 0) + v * v * self.operand_kappa(node, 1) * self.operand_kappa(node, 2)
                    + 2.0 * v * base.mean * t1.mean * t2.mean)
        if kind == "scale":
            return float(node.attrs["scalar"]) ** 2 * self.kappa(x)
        if kind == "interpolate":   # weights that add to one pass what every position shares whole
            return self.kappa(x)
        if kind == "cat":
            # each part keeps its common part on its share of the result: exact along the
            # features (a U-Net's skip, Swin's patch merging), and along positions for
            # parts that share one (slices of one tensor)
            sizes = self.cat_sizes(node)
            total = sum(n for _, n in sizes)
            return sum(n * self.kappa(i) for i, n in sizes) / total if total else out.mean ** 2
        if kind == "shift":
            c = float(node.attrs["scalar"])
            return self.kappa(x) + 2.0 * c * self.m(x).mean + c * c
        return out.mean ** 2

    def operand_kappa(self, node: Node, position: int) -> float:
        """kappa of an operand of a sum or product: all its second moment when it holds
        one value for every position of the output: a parameter or constant (a
        stochastic-depth mask of shape (batch, 1, 1, 1), a layer scale of shape (C, 1, 1)),
        or a signal broadcast over the positions (DiT's shift, scale and gate of shape
        (batch, 1, C), made from its condition); else its own kappa."""
        index = node.inputs[position]
        source = self.graph.nodes[index]
        if ((source.kind == "param" or index in self.graph.fixed) and _position_free(source.shape, node.shape)
                or _over_positions(source.shape, node.shape)):
            return self.m(index).second
        return self.kappa(index)

    def m(self, index: int) -> Moments:
        """A node's output moments: over all its elements (zero padding included),
        or, while a node that carries the padding's share reads it, over the rest."""
        value = self.moments.get(index)
        if value is None:
            return ASSUMED
        share = self.live.get(index)
        if share is None or self.raw:
            return value
        return Moments(value.mean * share, value.second * self.mixture(index))

    def node_moments(self, node: Node) -> Moments | None:
        kind = node.kind
        values = node.attrs.get("values") if node.index in self.graph.fixed else None
        if values is not None:   # read off the trace: a graph's degrees, a count, a constant
            return Moments(values[0], values[1])
        handler: Callable[[Node], Moments | None] | None = getattr(self, f"_{kind}", None)
        if handler is not None:
            return handler(node)
        if kind in ("elementwise", "add", "sub", "mul", "div", "scale", "shift", "pow"):
            return self.arithmetic(node)
        if kind == "view":
            return self.view(node)
        self.opaque.append(node)
        return None

    def _input(self, node: Node) -> Moments | None:
        position = self.graph.inputs.index(node.index)
        x = self.example[position] if position < len(self.example) else None
        if x is not None and x.is_meta and x.dtype == torch.uint8:
            # image bytes given by shape: read as uniform over 0..255 (mean 127.5, E[k^2] = 255 * 511 / 6)
            self.assumed.append(f"input {position} (meta uint8: values unknown, taken as uniform over 0..255, "
                                "as image bytes are; pass a real batch for its moments)")
            return Moments(127.5, 255 * 511 / 6)
        if x is None or not x.is_floating_point():
            return None  # token ids: only an embedding reads them
        if x.is_meta:
            self.assumed.append(f"input {position} (meta: moments unknown, unit second moment assumed)")
            return ASSUMED
        x = x.detach().to(torch.float64)
        return Moments(float(x.mean()), float((x * x).mean()))

    def _constant(self, node: Node) -> Moments | None:
        """A floating number held in a tensor (its value recorded, or a one-element buffer of
        the model: Gemma's embed_scale): the number; zeros made in forward (a recurrent
        state's start, x.new_zeros(...)): 0; any other constant is not the signal."""
        if not node.dtype.is_floating_point:
            return None
        if node.attrs.get("zeros"):
            return Moments(0.0, 0.0)
        value = node.attrs.get("value")
        buffer = self.buffers.get(node.attrs.get("buffer", ""))
        if value is None and buffer is not None and buffer.numel() == 1 and not buffer.is_meta:
            value = float(buffer.item())
        if value is None and buffer is not None and buffer.numel() > 1:
            return self.table_moments(node.attrs["buffer"], buffer)
        return None if value is None else Moments(float(value), float(value) ** 2)

    def table_moments(self, name: str, buffer: torch.Tensor) -> Moments | None:
        """The mean and mean square of a floating buffer's finite values, once per buffer: a
        table of fixed values the forward reads (the sinusoidal position encoding the
        PyTorch tutorial and Informer register, added to the signal); None on meta, for
        integers, or with a non-finite value (a mask of -inf)."""
        if name not in self.tables:
            found = None
            if not buffer.is_meta and buffer.is_floating_point() and bool(torch.isfinite(buffer).all()):
                values = buffer.detach().to(torch.float64)
                found = Moments(float(values.mean()), float((values * values).mean()))
            self.tables[name] = found
        return self.tables[name]

    def _param(self, node: Node) -> Moments:
        name = node.params["param"]
        tensor = self.real_params.get(name)
        self.plans.setdefault(name, ParamPlan(
            name, "untouched", reason=f"read directly by {self.consumer_label(node)}: no rule knows its role"))
        if name in self.decided and name in self.head_gain_names:   # a written-out norm's gain (scale_head)
            value = self.decided[name]
            return Moments(value, value * value)
        if node.index in self.stream_starts and name not in self.kept and len(self.graph.uses.get(name, ())) == 1:
            # a learned array that a residual stream starts from (Perceiver's latents): the stream's
            # scale is its own, and the branches are solved as fractions of it
            std = math.sqrt(self.target)
            self.plans[name] = ParamPlan(name, "normal", std=std, reason=(
                "a learned input that starts a residual stream (a latent array): entries of unit second moment"))
            return Moments(0.0, self.target)
        if tensor is None or tensor.is_meta:
            return ASSUMED
        t = tensor.detach().to(torch.float64)
        return Moments(float(t.mean()), float((t * t).mean()))

    def consumer_label(self, node: Node) -> str:
        users = self.graph.readers(node.index)
        return users[0].target if users else "the forward pass"

    # layers ---------------------------------------------------------------
    def _linear(self, node: Node) -> Moments:
        return self.layer(node)

    _conv = _conv_transpose = _linear

    def layer(self, node: Node) -> Moments:
        x = self.m(node.inputs[0])
        if self.moments.get(node.inputs[0]) is None:
            self.assumed.append(f"{node.module or node.target}: its input's moments are unknown")
        fan_in, fan_out = self.fans(node)
        weight = node.params.get("weight") or self.weight_from(node)
        bias = node.params.get("bias") or self.bias_from(node)
        if weight is None and self.spectral(node) is not None:
            return self.spectral_layer(node, x, fan_in, bias)
        if weight is None:
            return self.computed_layer(node, x, fan_in, bias)
        goal, why = self.goal(node)
        if weight in self.kept:
            std = self.kept_rms(weight, math.sqrt(goal / (fan_in * max(x.second, 1e-300))))
        elif self.deciding.get(weight) == node.index:
            nu_in = x.second
            variance = goal / (fan_in * nu_in) if nu_in > 0 and fan_in > 0 else 1.0 / max(fan_in, 1.0)
            std = math.sqrt(variance)
            self.plan_weight(node, weight, std, fan_in, why, nu_in)
        else:
            std = self.known_std(weight, provisional=math.sqrt(goal / (fan_in * max(x.second, 1e-300))))
            if node.index in self.head_gains:
                return self.scale_head(node, x, fan_in, std, goal)
        self.zero_bias(bias)
        return rules.affine(x, fan_in, std * std)

    def zero_bias(self, bias: str | None) -> None:
        """A layer's bias is 0, unless another rule decided it (a packed bias split inside
        forward was first seen read directly, by the split: untouched until here)."""
        if bias is not None and self.plans.get(bias, ParamPlan(bias, "untouched")).rule == "untouched":
            self.plans[bias] = ParamPlan(bias, "constant", value=0.0, reason="bias: zero")

    def scale_head(self, node: Node, x: Moments, fan_in: float, std: float, goal: float) -> Moments:
        """A layer whose weight's scale is not the solve's (a head tied to an earlier
        embedding, a weight whose scale the forward divides out): the norm before it gets
        the gain that brings the layer's output to its goal (the walk repeats until the
        norm's moments used that gain); `std` is the weight's root mean square."""
        gamma = self.head_gains[node.index]
        current = self.decided.get(gamma, 1.0)
        unit = x.second / (current * current) if current > 0 else 1.0
        value = math.sqrt(goal / (fan_in * std * std * unit)) if unit > 0 and std > 0 else 1.0
        weight = node.params.get("weight")
        before = (f"the head tied to {weight}" if weight is not None
                  else f"{node.module or node.target}, whose weight's scale the forward divides out")
        self.plans[gamma] = ParamPlan(gamma, "constant", value=value, reason=(
            f"norm gain before {before}: gamma^2 = {_g(goal)} / (fan_in {_g(fan_in)} * rms {_g(std)}^2)"))
        self.zero_bias(node.params.get("bias"))
        return rules.affine(x, fan_in, std * std)

    def weight_from(self, node: Node) -> str | None:
        """The parameter a layer's weight is computed from inside forward: a weight-norm
        parametrization's direction, or the one parameter whose rows it is (the q and kv
        blocks torch splits from MultiheadAttention's packed in_proj_weight for
        cross-attention), else None."""
        names = node.attrs.get("weight_from") or []
        found = next((n for n in names if n.endswith(("original1", "weight_v"))), None)
        return found if found is not None or len(node.inputs) < 2 else self.row_block(names, node.inputs[1])

    def spectral(self, node: Node) -> str | None:
        """The parameter behind a layer module's weight under spectral normalization
        (torch.nn.utils.parametrizations.spectral_norm: W / sigma_max(W)), else None."""
        module = self.modules.get(node.module) if node.module else None
        return None if spectral_norm_of(module) is None else f"{node.module}.parametrizations.weight.original"

    def spectral_layer(self, node: Node, x: Moments, fan_in: float, bias: str | None) -> Moments:
        """A layer whose weight is W / sigma_max(W): its scale is divided out, so the solve
        cannot set it, but its spectrum's shape stays. An m x n matrix of iid entries has
        sigma_max about s (sqrt(m) + sqrt(n)) (Bai & Yin 1988): W / sigma_max keeps a mean
        square of 1 / (sqrt(m) + sqrt(n))^2 per entry. A (semi-)orthogonal W has every
        singular value equal: W / sigma_max keeps 1 / max(m, n), the most any W keeps
        (for n >= m the layer then preserves the second moment), and spectral norm's
        power iteration finds sigma_max exactly. W is drawn orthogonal."""
        original = cast(str, self.spectral(node))
        rows, columns = self.weight_shape(node)[0], math.prod(self.weight_shape(node)[1:])
        square = 1.0 / max(rows, columns, 1)
        if original not in self.kept and original in self.graph.params:
            self.plans[original] = ParamPlan(
                original, "orthogonal", std=math.sqrt(square), fan_in=fan_in,
                reason=f"{node.kind} in {node.module}: spectral norm divides the weight's scale out; "
                       "orthogonal keeps the most of the signal (every singular value is sigma_max)")
        else:
            square = 1.0 / (math.sqrt(rows) + math.sqrt(columns)) ** 2
        self.zero_bias(bias)
        if fan_in * square < 0.9:
            self.assumed.append(f"{node.module}: spectral norm caps its gain: its entries keep a mean square of "
                                f"{_g(square)} ({rows} x {columns}), which no init raises")
        return rules.affine(x, fan_in, square)

    def computed(self, node: Node) -> bool:
        """Whether a layer node's weight is computed in forward by ops that no other rule
        reads (not a weight-norm or spectral-norm parametrization, not a block of rows)."""
        return (node.params.get("weight") is None and len(node.inputs) > 1
                and self.weight_from(node) is None and self.spectral(node) is None)

    def response(self, node: Node) -> Response | None:
        """How the computed weight of a layer node answers its parameters' scales, with the
        kept ones at their values; None when it cannot be run again."""
        sources = list(node.attrs.get("weight_from") or [])
        kept = [n for n in sources if n in self.kept]
        fixed = {n: self.real_params[n].detach().to(torch.float64) for n in kept
                 if n in self.real_params and not self.real_params[n].is_meta}
        if len(fixed) < len(kept):
            return None
        rows_first = node.kind != "conv_transpose" and node.attrs.get("weight_layout") != "in_out"
        return weight_response(self.graph, node.inputs[1], sources, fixed, self.buffers, rows_first)

    def computed_layer(self, node: Node, x: Moments, fan_in: float, bias: str | None) -> Moments:
        """A layer whose weight its forward computes from parameters (computed_weights): the
        source that sets the weight's scale is solved (a std for the main one, a value for a
        gain); where the forward divides every scale out, the norm before the layer, if
        any, takes the gain that brings the output to its goal, else it is said."""
        where = f"{node.target} in {node.module or 'the model'}"
        response = self.responses.get(node.index)
        self.zero_bias(bias)   # also where the weight cannot be solved: the layer is assumed centred
        if not node.attrs.get("weight_from"):
            self.assumed.append(f"{where}: its weight is computed from the input (a hypernetwork, a dynamic "
                                "filter), not from parameters the solve can set")
            return Moments(0.0, self.target)
        if response is None or not response.ruled():
            self.assumed.append(f"{where}: its weight is computed in forward by ops varinit cannot run again, "
                                "or no one parameter's scale sets the weight's")
            return Moments(0.0, self.target)
        # the input as the weight's rows see it: a centred row drops the mean they share
        x = rules.affine_centred(x, 1.0, 1.0, response.row_sums)
        sources = response.powers
        if any(n in self.kept for n in node.attrs.get("weight_from") or ()) or \
                self.deciding.get(response.main) != node.index:
            return rules.affine(x, fan_in, response.base)
        goal, why = self.goal(node)
        scaling = response.scaling()
        for name, power in sources.items():
            if name == response.main and name != scaling:
                self.plans[name] = ParamPlan(name, "normal", std=1.0 / math.sqrt(max(fan_in, 1.0)), fan_in=fan_in,
                                             reason=f"{where}: the forward divides its scale out (any std gives "
                                                    "the same layer): 1 / sqrt(fan_in)")
            elif name != scaling:
                self.plans[name] = ParamPlan(name, "constant", value=1.0, reason=(
                    f"a factor of the weight of {where}: one" if power else f"divided out in {where}: one"))
        if scaling is None and node.index in self.head_gains:
            return self.scale_head(node, x, fan_in, math.sqrt(response.base), goal)
        if scaling is None:
            self.assumed.append(f"{where}: its weight's entries have a mean square of {_g(response.base)} "
                                "whatever the parameters' scale (the forward divides it out)")
            return rules.affine(x, fan_in, response.base)
        needed = goal / (fan_in * max(x.second, 1e-300))
        value = math.sqrt(needed / response.base)
        reason = (f"{node.kind} in {node.module or 'the model'}, weight computed in forward: mean square "
                  f"{_g(needed)} = {_g(goal)} / (n_eff {_g(fan_in)} * nu_in {_g(x.second)}){why}")
        fixed_goal = None if node.index in self.branch_end or scaling in self.multi_use else goal
        self.plans[scaling] = (ParamPlan(scaling, "normal", std=value, fan_in=fan_in, reason=reason, goal=fixed_goal)
                               if scaling == response.main else
                               ParamPlan(scaling, "constant", value=value, reason=f"gain of the {reason}",
                                         goal=fixed_goal))
        return rules.affine(x, fan_in, needed)

    def bias_from(self, node: Node) -> str | None:
        """The one parameter a layer's bias is a block of inside forward (of the packed
        in_proj_bias), else None."""
        names = node.attrs.get("bias_from") or []
        return self.row_block(names, node.inputs[-1]) if len(node.inputs) >= 2 else None

    def row_block(self, names: list[str], operand: int) -> str | None:
        """The one parameter in `names` of which node `operand` is a block of rows (same
        trailing dims, fewer rows), else None: a weight computed from all of it (spectral
        norm's W / sigma_max) keeps no scale of the parameter's."""
        if len(names) != 1:
            return None
        block, whole = self.graph.nodes[operand].shape, self.graph.params[names[0]].shape
        rows = len(block) == len(whole) >= 1 and tuple(block[1:]) == tuple(whole[1:]) and block[0] < whole[0]
        return names[0] if rows else None

    def plan_weight(self, node: Node, weight: str, std: float, fan_in: float, why: str, nu_in: float) -> None:
        reason = (f"{node.kind} in {node.module or 'the model'}: Var = {_g(self.goal(node)[0])} / "
                  f"(n_eff {_g(fan_in)} * nu_in {_g(nu_in)}){why}")
        fixed_goal = (None if node.index in self.branch_end or weight in self.multi_use
                      or _weight_norm_gain(node) is not None else self.goal(node)[0])
        self.plans[weight] = ParamPlan(weight, "normal", std=std, fan_in=fan_in, reason=reason,
                                       tied=tuple(self.graph.tied.get(weight, ())), goal=fixed_goal)
        gain_name = _weight_norm_gain(node)
        if gain_name is not None:
            # w = g v / ||v|| per unit: g takes the norm the solve gives a unit's weights
            v = self.graph.params[weight]
            g = self.graph.params[gain_name]
            value = std * math.sqrt(v.numel() / g.numel())
            self.plans[gain_name] = ParamPlan(gain_name, "constant", value=value,
                                              reason="weight-norm scale: the norm of a unit's solved weights")

    def kept_rms(self, name: str, provisional: float) -> float:
        """The root mean square of a kept parameter's values (on meta: `provisional`, noted)."""
        tensor = self.real_params.get(name)
        if tensor is None or tensor.is_meta:
            self.assumed.append(f"{name}: kept, but on the meta device (its scale taken as the solve's)")
            return provisional
        return float(tensor.detach().to(torch.float64).pow(2).mean().sqrt())

    def known_std(self, weight: str, provisional: float) -> float:
        plan = self.plans.get(weight)
        if plan is not None and plan.std is not None:
            return plan.std
        return self.decided.get(weight, provisional)

    def fans(self, node: Node) -> tuple[float, float]:
        weight_node_shape = self.weight_shape(node)
        spatial = tuple(self.graph.nodes[node.inputs[0]].shape[2:]) if node.kind != "linear" else ()
        a = node.attrs
        return rules.effective_fan(node.kind, weight_node_shape, spatial, stride=a.get("stride", 1),
                                   padding=a.get("padding", 0), dilation=a.get("dilation", 1),
                                   groups=a.get("groups", 1), output_padding=a.get("output_padding", 0))

    def weight_shape(self, node: Node) -> tuple[int, ...]:
        """(out, in, ...) of a layer node's weight: its parameter's, or the operand after
        the input (a view of a parameter: the q or kv rows of MultiheadAttention's
        packed in_proj_weight in cross-attention; the bias, when there is one, follows)."""
        if "matrix" in node.attrs:   # a parameter an einsum reads, as one (fan_out, fan_in) matrix
            return tuple(node.attrs["matrix"])
        name = node.params.get("weight")
        shape = (tuple(self.graph.params[name].shape) if name is not None
                 else tuple(self.graph.nodes[node.inputs[1 if len(node.inputs) > 1 else 0]].shape))
        if node.attrs.get("grouped"):
            shape = shape[1:]        # one expert's matrix of (experts, in, out)
        return shape[::-1] if node.attrs.get("weight_layout") == "in_out" else shape   # (out, in)

    def goal(self, node: Node) -> tuple[float, str]:
        """(target second moment at this node's output, why).

        A residual branch's end gets alpha * nu_stream with the largest alpha <= 1
        that keeps the stream's growth linear within a budget B: over a chain of
        L blocks whose first stream has second moment v_0, block k may raise
        the stream (measured after the activation that follows the addition,
        if any) from v_k by at most (B - 1) v_0 / L, so the stream ends at most
        B v_0 however deep the chain, and each branch adds the same absolute
        amount. When the stream is the model's output B = 1 + 0.3 L within [3, 3.3]
        (its std grows 1.73- to 1.82-fold, each branch's within 0.54 of the layers
        inside it up to L = 8); when a norm or a layer reads it, B = 1 + L/3 within [4, 16],
        so each branch adds a third of v_0 (its output within 0.58 of the std
        of the layers inside it) up to L = 45, with v_0 counted as at most
        CHAIN_START_CAP times the target (a start of two summed embeddings would
        double every branch and the gradient's growth with them) and at least
        1 / CHAIN_START_CAP of it (a start after a ReLU would halve every branch).

        When the stream is the model's output, or the layer reads a norm (a
        pre-LN block's MLP), a layer whose output reaches the branch's end only
        through activations and dropout (an MLP's inner layer) shares the
        branch's scale (_sharing_layers): its goal is the end's, so the end's
        weights keep about unit gain and the layers inside get gradients of
        the stream's order, as T-Fixup scales every weight of a branch and not
        its last one alone (Huang et al. 2020)."""
        end = self.branch_end.get(node.index)
        shared = self.sharing.get(node.index)
        if end is None and shared is not None and self.residual == "depth":
            goal, _ = self.goal(self.graph.nodes[shared])
            return goal, (f"; inside a residual branch: the branch's scale, as its end "
                          f"({self.graph.nodes[shared].module or 'the model'})")
        if end is None and node.index in self.score_gains:
            factor, why = self.score_gains[node.index]
            return self.target * factor, why
        if end is None or self.residual == "none":
            gain = self.output_gain.get(node.index)
            if gain is not None and node.index in self.activated_outputs:
                return self.target * gain, (f"; x{_g(gain)}: {self.activated_outputs[node.index]} of it is the "
                                            f"model's output, whose variance is to be {_g(self.target)} (least "
                                            "squares in log between the two)")
            if gain is not None and node.index in self.graph.outputs:
                return self.target * gain, (f"; x{_g(gain)}: the model's output, whose variance (without the "
                                            f"offset its channels share) is to be {_g(self.target)}")
            if gain is not None:
                return self.target * gain, (f"; x{_g(gain)}, halfway to the model's output (reached through ReLU, "
                                            f"pooling, concatenation or sums) having variance {_g(self.target)}")
            return self.target, ""
        stream, length, add, first, open_end = end
        s, s0 = self.m(stream), self.m(first)
        if s.second <= 0 or s0.second <= 0:
            return self.target, ""
        post = self.post_region(add)
        top, capped = 1.0, False   # capped: a norm-ended branch before the model's last one
        start = s0.second          # what the chain's growth is counted from
        budget = _stream_budget(length, open_end)
        if node.kind == "norm":
            # a norm-ended branch (a BatchNorm ResNet) is invariant to its input's scale: its
            # layers see the stream's gradient times gamma / std(stream), and that gradient
            # shrinks block after block on the way forward. Block k adds the fraction
            # alpha_k = (1 - 1/e) / L * v_k / v_0 of the stream, growing with the stream: the
            # stream follows v_0 / (1 - (1 - 1/e) k / L), ending below e v_0. On the way back
            # each block but the last multiplies the gradient by 1 + alpha_k A_k
            # (branch_amplification), so alpha_k is capped for the gradient (GRADIENT_BUDGET);
            # the last, whose stream only the head reads, takes what the others leave of the
            # e-fold budget, up to e - 1, so its layers see a gradient of the stream's order
            limit = 1.0 + NORM_BRANCH_GROWTH / length * s.second / s0.second
            if len(self.norm_ends) > 1:
                capped = node.index != self.norm_ends[-1]
                if not capped:
                    limit, top = max(limit, math.e * s0.second / s.second), math.e - 1.0
        else:
            # a branch's end adds at most the layers' target, also to a stream above it (a
            # projection shortcut beside a branch: 1 + 1), so it stays within the bound of the
            # layers inside it rather than above them
            top = 1.0 if s.second <= self.target * (1.0 + TIE_RTOL) else self.target / s.second
            # the floor never lets the chain grow its stream more than MAX_STREAM_BUDGET-fold (the
            # gradient's x4) from where it really starts
            floor = min(self.target / CHAIN_START_CAP, s0.second * (MAX_STREAM_BUDGET - 1.0) / (budget - 1.0))
            start = s0.second if open_end else min(max(s0.second, floor), CHAIN_START_CAP * self.target)
            limit = 1.0 + (budget - 1.0) * start / (length * s.second)
            if s.second < QUIET_STREAM * s0.second:
                # a stream far below its chain's start (a class token of values near 0 beside
                # the patches: CaiT's and VOLO's class attention): its branches build it, each
                # adding the chain's per-block amount rather than a fraction of almost nothing
                amount = (budget - 1.0) * s0.second / length
                self.alphas[node.index] = amount / s.second
                return amount, (f"; residual branch end: {_g(amount)}, a stream of {_g(s.second)} against its "
                                f"chain's {_g(s0.second)} (a class token near 0), so {length} blocks grow it at "
                                f"most {_g(budget)}-fold from {_g(s0.second)}")

        def growth(alpha: float) -> float:
            m = Moments(s.mean, s.second * (1.0 + alpha))
            if post is not None:
                m = _elementwise(post, m)[0]
            return m.second / s.second

        if growth(top) <= limit:
            alpha = top
        elif growth(1e-6) >= limit:
            alpha = (limit - 1.0)
        else:
            lo, hi = 1e-6, top
            for _ in range(GROWTH_STEPS):
                mid = math.sqrt(lo * hi)
                lo, hi = (mid, hi) if growth(mid) <= limit else (lo, mid)
            alpha = lo
        bound = ("by less than e" if node.kind == "norm"
                 else f"at most {_g(budget)}-fold from {_g(s0.second)}" if start == s0.second
                 else f"by at most {_g((budget - 1.0) * start)} from {_g(s0.second)} ({_g(budget)}-fold from "
                      f"{_g(start)}: the start counted within {_g(1 / CHAIN_START_CAP)} and "
                      f"{_g(CHAIN_START_CAP)} times the target)")
        why = f"so {length} blocks grow it {bound}"
        if node.kind != "norm" and top < 1.0 and alpha >= top:
            why += f", adding at most the layers' target {_g(self.target)}"
        if capped:
            amplification = self.branch_amplification(node, stream)
            per_branch = GRADIENT_BUDGET ** (1.0 / (len(self.norm_ends) - 1)) - 1.0
            share = max(per_branch, BRANCH_GRADIENT_FLOOR)
            if share / amplification < alpha:
                alpha = share / amplification
                passes = f"(this one passes back {_g(amplification)} times its share)"
                why = (f"so the {len(self.norm_ends) - 1} norm-ended branches before the last raise the gradient "
                       f"at most {_g(GRADIENT_BUDGET)}-fold {passes}" if per_branch >= BRANCH_GRADIENT_FLOOR else
                       f"so it raises the gradient at most {_g(1.0 + share)}-fold and its layers keep about "
                       f"{_g(math.sqrt(share))} of the stream's {passes}")
        self.alphas[node.index] = alpha
        return alpha * s.second, f"; residual branch end: {_g(alpha)} of the stream's {_g(s.second)}, {why}"

    def channel_offset(self, norm: Node) -> float:
        """The share of a norm's input second moment that batch statistics subtract as
        each channel's constant: mu^2 / nu of the input of the layer it reads (a layer
        gives an input with a mean the offset mu * sum(w) per channel); 0 for a norm
        with other statistics or one that does not read a layer."""
        layer = self.graph.nodes[norm.inputs[0]] if norm.inputs else None
        if not (batch_statistics(norm) and layer is not None and layer.kind in LAYERS and layer.inputs):
            return 0.0
        x = self.m(layer.inputs[0])
        return x.mean ** 2 / x.second if x.second > 0 else 0.0

    def branch_amplification(self, end: Node, stream: int) -> float:
        """A_k: how many times its share of the stream's second moment a norm-ended
        branch multiplies the gradient's on the way back to its stream.

        A norm with batch statistics reading a layer divides by that layer's
        per-channel std, which leaves out the offset the layer gives an input with a
        mean: a factor nu / (nu - mu^2) of the layer's input over the forward's
        (pi / (pi - 1) after ReLU: the mean-field gradient explosion of BatchNorm
        networks, Yang et al. 2019). An activation multiplies the gradient's second
        moment by E[g'(x)^2] where it multiplies the signal's by E[g(x)^2] / E[x^2]."""
        graph, anc = self.graph, self.ancestors
        origin: int | None = stream
        if not (anc[end.index] >> stream) & 1:   # a projection shortcut: the branch starts where it does
            origin = _shortcut_source(graph, stream)
        if origin is None:   # a branch from another stream (TNT's pixels): its gradient leaves this one
            return 1.0
        amplification = 1.0
        for j in _between(anc, origin, end.index):
            node = graph.nodes[j]
            if node.kind == "norm":
                offset = self.channel_offset(node)
                if offset < 1.0:
                    amplification /= 1.0 - offset
            elif j in self.regions and not any(self.regions.get(c.index, (None,))[0] == self.regions[j][0]
                                               for c in graph.readers(j)):   # a region's last node
                _, _, moments, derivative = self.regions[j]
                x = self.region_input(j)
                if moments.second > 0 and x.second > 0:
                    amplification *= derivative * x.second / moments.second
        return amplification

    def post_region(self, add: int) -> Fused | None:
        """The elementwise function applied right after a residual addition, or None."""
        graph = self.graph
        consumers = graph.readers(add)
        if len(consumers) != 1:
            return None
        found: Fused | None = None
        node = consumers[0]
        while True:
            fused = rules.fuse(graph, node.index, self.memo)
            if fused is None or fused[0] != add:
                break
            found = named_activation(graph, node, add) or fused[1]
            nxt = graph.readers(node.index)
            if len(nxt) != 1:
                break
            node = nxt[0]
        return found

    def _embedding(self, node: Node) -> Moments:
        table = node.params.get("weight")
        if table is None:
            return ASSUMED
        return rules.embedding(0.0, self.table_std(node, table) ** 2)

    def _embedding_bag(self, node: Node) -> Moments:
        """The rows of a bag summed, averaged or maxed (nn.EmbeddingBag): rows drawn
        independently, of unit second moment as an embedding's; per-sample weights are
        taken as one, as the report says."""
        table = node.params.get("weight")
        if table is None:
            return ASSUMED
        bag, mode = max(int(round(node.attrs["bag"])), 1), node.attrs["mode"]
        if node.attrs["weighted"]:
            self.assumed.append(f"{node.module or 'embedding_bag'}: its per-sample weights taken as one")

        def bagged(row: Moments) -> Moments:
            if mode == "sum":
                return rules.reduce_sum(row, bag)
            return rules.max_pool(row, bag) if mode == "max" else rules.avg_pool(row, bag)

        # rows drawn so the bag's output has the target second moment: a mean of 5 rows of
        # unit second moment has 1/5 of it
        per_row = bagged(Moments(0.0, 1.0)).second
        return bagged(Moments(0.0, self.table_std(node, table, per_row, f"a {mode} over bags of {bag}") ** 2))

    def table_std(self, node: Node, table: str, per_row: float = 1.0, bags: str = "") -> float:
        """The std of an embedding table's entries: kept, solved here (rows of unit second
        moment, or of 1 / `per_row` where the output has `per_row` times the rows' second
        moment: `bags` a bag's reduction) or decided by another use, with its plan."""
        if table in self.kept:
            std = self.kept_rms(table, math.sqrt(self.target))
        elif self.deciding.get(table) == node.index:
            std = math.sqrt(self.target)
            why = "embedding: rows of unit second moment"
            if per_row != 1.0 and per_row > 0:
                std = math.sqrt(self.target / per_row)
                why = (f"embedding bag: rows of second moment {_g(self.target / per_row)}, so {bags} has "
                       f"{_g(self.target)}")
            elif node.index in self.logit_biases:
                gain, why = self.logit_biases[node.index]
                std *= math.sqrt(gain)
            if table in self.multi_use:
                lookups = all(self.graph.nodes[i].kind in EMBEDDINGS for i in self.graph.uses.get(table, ()))
                why += ("; decided here, its first use (the head it is tied to is scaled by the norm before it)"
                        if self.graph.tied.get(table) else
                        "; decided here, its first lookup (the others read the same rows: one vocabulary for "
                        "two inputs)" if lookups else
                        "; decided here, its first use (the others read it as drawn: a VQ-VAE's distances to "
                        "its codebook)")
            self.plans[table] = ParamPlan(table, "normal", std=std, reason=why,
                                          tied=tuple(self.graph.tied.get(table, ())))
        else:
            std = self.known_std(table, provisional=math.sqrt(self.target))
            if table not in self.plans:
                self.plans[table] = ParamPlan(table, "normal", std=std, reason="tied: decided by its last use")
        return std

    def _norm(self, node: Node) -> Moments:
        x = self.m(node.inputs[0])
        gamma, beta = node.params.get("weight"), node.params.get("bias")
        shift = self.shifts.get(beta, 0.0) if beta is not None else 0.0
        if beta is not None:
            self.plans.setdefault(beta, ParamPlan(beta, "constant", value=shift, reason=(
                f"norm shift: {_g(shift)}, toward the linear part of the activation after it, whose gradient then "
                "grows less per norm (varinit.torch.norm_shift)") if shift else "norm shift: zero"))
        value = 1.0
        end = self.branch_end.get(node.index)
        if gamma in self.kept:
            value = self.kept_rms(gamma, 1.0)
        elif gamma is not None:
            if end is not None and self.residual == "zero_gamma":
                value, reason = 0.0, "last norm of a residual branch: gamma 0 (the block starts as identity)"
            elif end is not None and self.residual == "depth":
                goal, why = self.goal(node)
                value, reason = math.sqrt(goal), f"last norm of a residual branch{why}"
            elif node.index in self.head_gamma_nodes:
                value, reason = self.decided.get(gamma, 1.0), "norm gain before a tied head"
            else:
                reason = "norm gain: one"
            self.plans[gamma] = ParamPlan(gamma, "constant", value=value, reason=reason)
        which = node.attrs.get("which")
        if which in ("batch_norm", "instance_norm") and not node.attrs.get("training", True):
            return rules.affine(x, 1.0, value * value)  # running statistics 0 and 1 after the reset
        if gamma is None:
            value = 1.0
        return rules.norm(x, value * value, shift, shift * shift, rms=which == "rms_norm", gamma_mean=value)

    def layer_scale(self, node: Node, name: str, signal: int) -> Moments:
        """A per-channel gain parameter that multiplies a residual branch's output
        (ConvNeXt's and CaiT's layer scale, Touvron et al. 2021): the branch's own
        scale, set like a branch-final norm's gamma, so the layers before it are
        solved for the target and the gain alone sets the branch's share."""
        x = self.m(signal)
        if name in self.kept:
            value = self.kept_rms(name, 1.0)
        elif name in self.plans and self.plans[name].rule == "constant":
            value = float(self.plans[name].value or 0.0)   # a gain of several branches (ReZero's alpha): the first's
        else:
            if self.residual == "zero_gamma":
                value, reason = 0.0, "layer scale of a residual branch: 0 (the block starts as identity)"
            elif self.residual == "depth":
                goal, why = self.goal(node)
                value = math.sqrt(goal / x.second) if x.second > 0 else 1.0
                reason = f"layer scale of a residual branch{why}"
            else:
                value, reason = 1.0, "layer scale of a residual branch: one (residual='none')"
            self.plans[name] = ParamPlan(name, "constant", value=value, reason=reason)
        return rules.scale(x, value)

    def _scatter(self, node: Node) -> Moments | None:
        a = node.attrs
        base, value = (self.m(i) for i in node.inputs[:2])
        if a.get("zeros_before"):
            base = Moments(0.0, 0.0)
        if a["op"] == "setitem":
            return rules.scatter(base, value, a["share"])
        reduce, include_self = a.get("reduce", "sum"), a.get("include_self", True)
        kappa = self.kappa(node.inputs[1])   # what the elements landing together share
        if reduce == "sum" and (include_self or a.get("zeros_before")):
            return rules.index_add(base, value, a["counts"], a["counts_sq"], a["alpha"], kappa=kappa)
        if reduce == "sum" or include_self:   # x's own value among those reduced, or dropped
            self.opaque.append(node)
            return None
        if reduce == "mean":
            return rules.scatter_mean(base, value, a["written"], a["inverse"], kappa=kappa)
        # the extreme of as many as land on each element, weighed by how many elements take each
        # number; the others keep x's
        parts = [(w, rules.scatter_extreme(base, value, 1.0, max(round(k), 1), largest=reduce == "amax"))
                 for k, w in a["sizes"]]
        rest = 1.0 - sum(w for w, _ in parts)
        return Moments(sum(w * m.mean for w, m in parts) + rest * base.mean,
                       sum(w * m.second for w, m in parts) + rest * base.second)

    def _addcmul(self, node: Node) -> Moments:
        """input + v * t1 * t2 (timm's Affine: beta + alpha * x), the operands independent."""
        base, t1, t2 = (self.m(i) for i in node.inputs[:3])
        return rules.add(base, rules.scale(rules.mul(t1, t2), node.attrs.get("value", 1.0)))

    def _dropout(self, node: Node) -> Moments:
        a = node.attrs
        rule = rules.alpha_dropout if a.get("op") in ALPHA_DROPOUTS else rules.dropout
        return rule(self.m(node.inputs[0]), a.get("p", 0.5), a.get("training", True))

    def _avg_pool(self, node: Node) -> Moments:
        a, x = node.attrs, self.m(node.inputs[0])
        kernel = a["kernel_size"]
        sizes, outputs = self.graph.nodes[node.inputs[0]].shape[-len(kernel):], node.shape[-len(kernel):]
        real, divisor = rules.pool_windows(sizes, kernel, a["stride"], a["padding"], outputs,
                                           a.get("count_include_pad", True), a.get("divisor_override"))
        if np.all(real == math.prod(kernel)) and np.all(divisor == real):   # every window whole
            return rules.avg_pool(x, math.prod(kernel), self.correlation(node))
        return rules.avg_pool_windows(x, real, divisor, self.correlation(node))

    def _max_pool(self, node: Node) -> Moments:
        source, g = self.region(node.inputs[0])
        count = math.prod(node.attrs["kernel_size"])
        if g is not None:
            return rules.max_pool(self.m(source), count, self.correlation(node), g=g)
        return rules.max_pool(self.m(node.inputs[0]), count, self.correlation(node))

    def _adaptive_avg_pool(self, node: Node) -> Moments:
        return rules.avg_pool(self.m(node.inputs[0]), self.pooled(node), self.correlation(node))

    def _local_response_norm(self, node: Node) -> Moments:
        """x / (k + alpha * mean of x^2 over `size` channels)^beta (AlexNet's, Krizhevsky et
        al. 2012): the mean of squares over the window is about nu, so x is scaled by
        (k + alpha nu)^-beta (the window's spread is left out: alpha is 1e-4)."""
        a, x = node.attrs, self.m(node.inputs[0])
        return rules.scale(x, (a["k"] + a["alpha"] * x.second) ** -a["beta"])

    def _interpolate(self, node: Node) -> Moments:
        a, x = node.attrs, self.m(node.inputs[0])
        if len(node.shape) <= 2:   # no spatial dims: nothing is interpolated
            return x
        energy = rules.interpolation_energy(a["mode"], self.graph.nodes[node.inputs[0]].shape[2:], node.shape[2:],
                                            align_corners=a["align_corners"], antialias=a["antialias"])
        return rules.interpolate(x, energy, self.correlation(node))

    def _max_unpool(self, node: Node) -> Moments:
        """Each input value lands at one output position (where its max was) and the rest
        are zero: mean and second moment times the share of positions that hold one."""
        x = self.m(node.inputs[0])
        share = min(math.prod(self.graph.nodes[node.inputs[0]].shape) / max(math.prod(node.shape), 1), 1.0)
        self.common[node.index] = share * share * self.kappa(node.inputs[0])
        return Moments(x.mean * share, x.second * share)

    def _adaptive_max_pool(self, node: Node) -> Moments:
        return rules.max_pool(self.m(node.inputs[0]), self.pooled(node), self.correlation(node))

    def pooled(self, node: Node) -> int:
        """Input positions behind one output position of an adaptive pooling."""
        output = node.attrs["output_size"]
        spatial = self.graph.nodes[node.inputs[0]].shape[-len(output):]
        return max(int(math.prod(spatial)) // max(int(math.prod(output)), 1), 1)

    def correlation(self, node: Node) -> float:
        """Correlation of the positions entering a pooling or a reduction: the
        share of the variance every position holds in common, (kappa - mu^2) /
        sigma^2. After a conv of features with a nonzero mean (ReLU's), each
        channel carries the constant offset mu * sum(w), which pooling keeps
        whole (`affine_correlation` gives the same share for the conv's own
        output); through the activation after it, kappa's rule carries it."""
        x = self.m(node.inputs[0])
        if x.variance <= 0:
            return 0.0
        return min(max((self.kappa(node.inputs[0]) - x.mean ** 2) / x.variance, 0.0), 1.0)

    def _mean(self, node: Node) -> Moments:
        return rules.avg_pool(self.m(node.inputs[0]), self.reduced(node), self.correlation(node))

    def _sum(self, node: Node) -> Moments:
        return rules.reduce_sum(self.m(node.inputs[0]), self.reduced(node), self.correlation(node))

    def _var(self, node: Node) -> Moments:
        """The spread of x over the n reduced elements, concentrated about its mean (a
        LayerNorm or RevIN written out): x's variance less the share the elements hold
        in common (the correlation pooling reads), times (n - 1) / (n - correction);
        its relative spread about sqrt(2 / (n - 1)) for Gaussian entries."""
        x, n = self.m(node.inputs[0]), self.reduced(node)
        c = float(node.attrs.get("correction", 1.0))
        spread = max(x.variance, 0.0) * (1.0 - self.correlation(node)) * (n - 1) / max(n - c, 1.0)
        return Moments(spread, spread * spread * (1.0 + 2.0 / max(n - 1, 1)))

    def _std(self, node: Node) -> Moments:
        spread = self._var(node).mean
        return Moments(math.sqrt(spread), spread)

    def _logsumexp(self, node: Node) -> Moments | None:
        """log sum exp over the reduced elements (rules.log_sum_exp): concentrated where the
        exponentials' sum is; named as an op without a rule where a few terms rule it."""
        found = rules.log_sum_exp(self.m(node.inputs[0]), self.reduced(node), self.correlation(node))
        if found is None:
            self.opaque.append(node)
        return found

    def _cumsum(self, node: Node) -> Moments | None:
        """Running sums along one dim of n elements (rules.cumulative_sum): what the
        elements share, kappa, adds up in step, k^2 kappa at the k-th, the rest k-fold."""
        source, n = node.inputs[0], self.reduced(node)
        if self.weighted_by_position(node):
            self.opaque.append(node)   # a decayed sum written q^t cumsum(q^-j u_j): not these terms
            return None
        kappa = self.kappa(source)
        self.common[node.index] = rules.running_sum_second(kappa, kappa, n)
        return rules.cumulative_sum(self.m(source), n, self.correlation(node))

    def weighted_by_position(self, node: Node) -> bool:
        """Whether a running sum's terms are the signal times factors that change along the
        summed dim and are not the signal (Mega's EMA as exp(-j log q) u_j summed, then
        times exp(t log q)): their second moments differ by position, which the rule's
        one law for every term does not hold."""
        terms = self.graph.nodes[_through_views(self.graph, node.inputs[0])]
        if terms.kind != "mul":
            return False
        axis = node.attrs["dim"] - len(terms.shape)   # counted from the end, as broadcasting aligns
        for operand in terms.inputs:
            shape = self.graph.nodes[operand].shape
            if ((operand in self.graph.computed or operand in self.graph.fixed)
                    and len(shape) >= -axis and shape[axis] > 1):
                return True
        return False

    def _vector_norm(self, node: Node) -> Moments:
        """||x|| over n elements, S = sum x^2: concentrated about sqrt(n nu), its variance
        Var(S) / (4 E S) = nu / 2 for Gaussian entries (the delta method)."""
        x = self.m(node.inputs[0])
        summed = self.reduced(node) * x.second
        return Moments(math.sqrt(summed), summed + 0.5 * x.second)

    def reduced(self, node: Node) -> int:
        shape = self.graph.nodes[node.inputs[0]].shape
        dims = node.attrs.get("dim")
        if dims is None:
            return max(math.prod(shape), 1)
        return max(math.prod(shape[d] for d in (dims if isinstance(dims, (list, tuple)) else (dims,))), 1)

    def _cat(self, node: Node) -> Moments | None:
        parts = self.cat_sizes(node)
        # every operand empty (a detector's boxes where none passed its threshold): no moments
        return rules.cat([(self.m(i), n) for i, n in parts]) if parts else None

    def cat_sizes(self, node: Node) -> list[tuple[int, int]]:
        """(operand, its size along the joined dim) of a concatenation, or of a stack
        (whose dim is new: each operand holds one slice of it). An empty operand adds
        nothing (Hugging Face's key/value cache starts as one)."""
        dim = node.attrs.get("dim", 0)
        stacked = node.attrs.get("op") == "stack"
        return [(i, 1 if stacked or not self.graph.nodes[i].shape else self.graph.nodes[i].shape[dim])
                for i in node.inputs if math.prod(self.graph.nodes[i].shape) > 0]

    def _softmax(self, node: Node) -> Moments:
        causal = self.causal_scores(node)
        if causal:
            self.causal.add(node.index)
        return rules.softmax(self.m(node.inputs[0]), _normalized_size(node), causal=causal)

    def _log_softmax(self, node: Node) -> Moments:
        return rules.log_softmax(self.m(node.inputs[0]), _normalized_size(node))

    def causal_scores(self, softmax: Node) -> bool:
        """Whether a softmax over the last dim reads square scores masked with -inf
        (through views and scalings): a causal mask, the written-out attention of
        GPT-style models (masked_fill(mask, -inf)); the report says it was assumed."""
        shape, dim = softmax.shape, softmax.attrs.get("dim")
        if len(shape) < 2 or shape[-1] != shape[-2] or dim not in (-1, len(shape) - 1):
            return False
        node = self.graph.nodes[softmax.inputs[0]]
        while node.kind in ("view", "scale", "shift", "add", "sub") and node.inputs:
            value = node.attrs.get("value")
            if node.attrs.get("op") == "masked_fill" and isinstance(value, (int, float)) and value <= -1e4:
                self.masks.append(node.module or "the model")
                return True
            mask = _additive_mask(self.graph, node)
            if node.kind in ("add", "sub") and mask is None:
                return False
            if mask is not None and mask[1]:
                self.masks.append(node.module or "the model")
                return True
            node = self.graph.nodes[mask[0] if mask is not None else node.inputs[0]]
        return False

    def _matmul(self, node: Node) -> Moments:
        a, b = node.inputs[:2]
        if node.attrs.get("op") == "fixed_mix":
            # a fixed matrix (a graph's adjacency) mixing independent rows of the signal
            attrs = node.attrs
            x = b if attrs["side"] == "left" else a
            if "buffer" in attrs:
                matrix = self.buffers.get(attrs["buffer"])
                if matrix is None or matrix.is_meta:
                    self.assumed.append(f"{attrs['buffer']}: a fixed matrix on the meta device mixes the signal; "
                                        "its entries taken as independent of unit second moment")
                    return rules.matmul(self.m(a), self.m(b), int(self.graph.nodes[x].shape[-2 if attrs["side"]
                                                                                          == "left" else -1]))
                attrs = {**attrs, **fixed_mix_stats(matrix, attrs["side"])}
            kappa = min(max(self.kappa(x), self.m(x).mean ** 2), self.m(x).second)
            self.common[node.index] = kappa * attrs["sums_sq"]   # what every row shares stays shared
            return rules.fixed_mix(self.m(x), attrs["sums"], attrs["sums_sq"], attrs["squares"], kappa)
        inner = node.attrs.get("inner", 1)
        causal = self.softmax_rows(a)
        if causal is not None:
            # attention written out, softmax(q k^T) @ v: each output row averages the
            # values with weights that sum to one, so the part common to every key
            # (kappa: the mean, and what neighbouring tokens share) passes whole and
            # the rest by sum_j a_j^2 = inner * E[a^2]; what two queries' averages
            # share is attention_common's
            padded = None if causal else self.padded_keys(node)
            if padded is not None:
                return self.padded_attention(node, *padded)
            v = self.m(b)
            common = min(max(self.kappa(b), v.mean ** 2), v.second)
            self.common[node.index] = rules.attention_common(v, keys=inner, causal=causal,
                                                             queries=node.shape[-2], v_common=common)
            return Moments(v.mean, common + (v.second - common) * min(inner * self.m(a).second, 1.0))
        if node.attrs.get("op") == "einsum":
            dims = _einsum_contraction(node.attrs["equation"])
        else:
            dims = (-1, -2 if len(self.graph.nodes[b].shape) > 1 else None)
        a_dim, b_dim = dims or (None, None)
        return rules.matmul(self.m(a), self.m(b), inner,
                            a_shared=self.shared_along(a, a_dim) if a_dim is not None else None,
                            b_shared=self.shared_along(b, b_dim) if b_dim is not None else None)

    def shared_along(self, index: int, dim: int) -> float | None:
        """E[x_f x_g] for f != g along the trailing dim `dim` (-1 or -2) of a sum of outer
        products over positions, u_j v_j^T summed or cumsummed over j (linear attention's
        state, Katharopoulos et al. 2020): the entries of one column share v_j's value, so
        along -2 it is mu_u^2 nu_v per term, along -1 nu_u mu_v^2; of a running sum over
        positions, whose entries share the mean that grows with the position. None for
        anything else (entries taken as independent: mu^2)."""
        node = self.graph.nodes[index]
        dims = _summed_dims(node)
        if not dims:
            return None
        source = node.inputs[0]
        ndim = len(self.graph.nodes[source].shape)
        kept = node.kind == "cumsum" or bool(node.attrs.get("keepdim"))
        if ndim + dim in dims or (not kept and any(d >= ndim - 2 for d in dims)):
            return None
        # summed over the other of the last two dims: no outer product's column is left whole
        pair = self.outer_product_pairs(source, dim) if _over_positions_only(self.graph, node) else None
        if pair is None and node.kind == "sum":
            return None
        mu = self.m(source).mean
        # entries independent along `dim` share mu^2, which a running sum grows by position
        # (k mu at the k-th: z_i = sum_{j <= i} phi(k_j))
        same, other = pair or (mu * mu, mu * mu)
        n = self.reduced(node)
        # the terms at one position share `same`, at two positions `other`: over n terms,
        # n same + n (n - 1) other; over a running sum's k-th, k same + k (k - 1) other
        if node.kind == "sum":
            return n * same + n * (n - 1) * other
        return rules.running_sum_second(same, other, n)

    def linear_attention(self, node: Node) -> Moments | None:
        """phi(q) S_i / phi(q) z_i with S_i = sum over j of phi(k_j) v_j^T and z_i = sum of
        phi(k_j), summed or summed up to i (causal), divided by that normalizer (linear
        attention, Katharopoulos et al. 2020): an average of the values with the positive
        weights w_j = s_j / sum s, s_j = phi(q) . phi(k_j), as softmax attention's; so
        mu_v, kappa_v + (nu_v - kappa_v) E[sum_j w_j^2], with E[sum w^2] = E[s^2] / (t E[s]^2)
        over t keys (H_n / n averaged over a causal row's n), and attention's common part.
        None when the division `node`'s dividend is not such a product."""
        product = self.graph.nodes[_through_views(self.graph, node.inputs[0])]
        if product.kind != "matmul" or product.attrs.get("op") == "fixed_mix" or len(product.inputs) < 2:
            return None
        state = self.graph.nodes[_through_views(self.graph, product.inputs[1])]
        if not _over_positions_only(self.graph, state):
            return None
        operands = _outer_operands(self.graph, state.inputs[0])
        if operands is None:
            return None
        keys, values = operands
        scores = rules.matmul(self.m(product.inputs[0]), self.m(keys), int(product.attrs.get("inner", 1)))
        if scores.mean <= 0:
            return None
        n, causal = self.reduced(state), state.kind == "cumsum"
        per_key = scores.second / scores.mean ** 2
        squares = per_key * (rules.harmonic(n) / n if causal else 1.0 / n)
        v = self.m(values)
        kappa = min(max(self.kappa(values), v.mean ** 2), v.second)
        self.common[node.index] = rules.attention_common(v, keys=n, causal=causal, v_common=kappa)
        return Moments(v.mean, kappa + (v.second - kappa) * min(squares, 1.0))

    def outer_product_pairs(self, index: int, dim: int) -> tuple[float, float] | None:
        """For u v^T (a product of u (..., F, 1) and v (..., 1, E)), along the trailing dim
        `dim`: (E[x_f x_g] at one position, at two positions) for f != g. Along -2 a column
        shares v: mu_u^2 nu_v, and mu_u^2 kappa_v across positions (kappa what the
        positions share); along -1 a row shares u: nu_u mu_v^2, kappa_u mu_v^2. None when
        the node is not such a product."""
        operands = _outer_operands(self.graph, index)
        if operands is None:
            return None
        u, v = self.m(operands[0]), self.m(operands[1])
        ku, kv = self.kappa(operands[0]), self.kappa(operands[1])
        if dim == -2:
            return u.mean * u.mean * v.second, u.mean * u.mean * kv
        return u.second * v.mean * v.mean, ku * v.mean * v.mean

    def padded_keys(self, node: Node) -> tuple[float, float] | None:
        """For softmax(q k^T) @ v whose keys carry zero padding (Swin's windows): the
        share of real keys, and the variance of a real query's scores over them (the
        scores' moments are stored over all elements: the zeros averaged in); else None."""
        share = self.live.get(node.inputs[1])
        softmax = self.softmax_of(node.inputs[0])
        if share is None or softmax is None:
            return None
        found = _scores_matmul(self.graph, softmax)
        if found is None:
            return None
        scores, factor = found
        q, k = (self.moments[i] or ASSUMED for i in scores.inputs[:2])
        # across one query's keys only k's own part varies: q . (what every key shares) is
        # the same for the whole row, and a softmax takes it out
        varying = max(k.second - self.common.get(scores.inputs[1], k.mean ** 2), 0.0)
        across = factor * scores.attrs.get("inner", 1) * q.second * varying
        # what is added to the scores (Swin's relative position bias), over all elements
        added = max(self.m(softmax.inputs[0]).variance - factor * self.m(scores.index).variance, 0.0)
        return share, across + added

    def padded_attention(self, node: Node, share: float, variance: float) -> Moments:
        """softmax(q k^T) @ v over n keys of which a share s are real and the rest
        zero padding, whose scores are 0 and values 0 (Swin's windows, Liu et al.
        2021). A real query's scores over the real keys are ~N(0, sigma^2), so its
        weights are e^s_j / (sum over real keys of e^s + n (1 - s)), lognormal sums
        taken at their means: the real keys hold R = s n e^(sigma^2/2) / Z of the
        weight, Z = s n e^(sigma^2/2) + n (1 - s), and sum w_j^2 over them is
        s n e^(2 sigma^2) / Z^2. The part every value shares (kappa) passes as R^2,
        the rest as sum w_j^2; two queries' weights share (s n e^sigma^2) / Z^2.
        A padded query is zero: it weighs all n keys alike, and its row is the
        values' mean over them, (s^2 kappa + s (nu - kappa) / n): not zero beside
        the real rows (`padded`), since neighbouring tokens share most of kappa."""
        v, kappa = self.moments[node.inputs[1]] or ASSUMED, self.common.get(node.inputs[1], 0.0)
        keys = node.attrs.get("inner", 1)
        real = share * keys
        weight = real * math.exp(variance / 2.0)   # the real keys' sum of e^s, at its mean
        z = weight + keys - real
        held, squares = weight / z, real * math.exp(2.0 * variance) / z ** 2
        spread = max(v.second - kappa, 0.0)
        second = held * held * kappa + min(squares, held * held) * spread
        self.common[node.index] = held * held * kappa + real * math.exp(variance) / z ** 2 * spread
        if second > 0:
            self.padded[node.index] = (share * share * kappa + share * spread / keys) / second
        return Moments(v.mean * held, second)

    def query_share(self, node: Node) -> float | None:
        """The queries' share of real positions when `node` is softmax(q k^T) @ v and q
        carries zero padding (Swin's windows), else None. A padded query is zero: it
        weighs every key alike, and its average of the values (the padded ones zero)
        stays near zero beside the real rows', so the output keeps q's share, and its
        moments, from the values' over the padded keys too, are the real rows'."""
        softmax = self.softmax_of(node.inputs[0])
        found = None if softmax is None else _scores_matmul(self.graph, softmax)
        return None if found is None else self.live.get(found[0].inputs[0])

    def softmax_rows(self, index: int) -> bool | None:
        """None unless node `index` is a softmax over its last dim (softmax_of); else
        whether its scores were causally masked."""
        softmax = self.softmax_of(index)
        return None if softmax is None else softmax.index in self.causal

    def softmax_of(self, index: int) -> Node | None:
        """The softmax over the last dim that node `index` is, through dropout and views
        that keep that dim, or None."""
        node = self.graph.nodes[index]
        while node.kind in ("dropout", "view") and node.inputs and node.attrs.get("op") != "pad":
            source = self.graph.nodes[node.inputs[0]]
            if not (source.shape and node.shape and source.shape[-1] == node.shape[-1]):
                return None
            node = source
        dim = node.attrs.get("dim")
        if node.kind != "softmax" or dim is None or dim not in (-1, len(node.shape) - 1):
            return None
        return node

    def _attention(self, node: Node) -> Moments:
        q, k, v = (self.m(i) for i in node.inputs[:3])
        qs, ks = self.graph.nodes[node.inputs[0]].shape, self.graph.nodes[node.inputs[1]].shape
        if node.attrs.get("has_mask"):
            self.assumed.append(f"attention in {node.module or 'the model'}: its mask is not modelled")
        causal = bool(node.attrs.get("is_causal"))
        kv = node.inputs[1], node.inputs[2]
        self.common[node.index] = rules.attention_common(v, keys=ks[-2], causal=causal, queries=qs[-2],
                                                         v_common=self.kappa(kv[1]))
        return rules.attention(q, k, v, keys=ks[-2], head_dim=qs[-1], scale=node.attrs.get("scale"),
                               causal=causal, queries=qs[-2], dropout_p=node.attrs.get("dropout_p", 0.0),
                               k_common=self.kappa(kv[0]), v_common=self.kappa(kv[1]))

    def _rnn(self, node: Node) -> Moments | None:
        module = self.modules.get(node.module)
        if module is None:
            return None
        solved: dict[str, tuple[float, float, float]] = {}
        offsets: dict[str, tuple[float, float, float]] = {}
        out = None
        output = node.attrs.get("output", 0)
        if node.attrs.get("cell"):
            # one step of a cell (called once per step from forward(): each call is its own
            # node, so the state's moments evolve from its initial value, zeros by default)
            probe = self.cell_probes.get(node.module)
            if probe is None:
                probe = self.cell_probes[node.module] = _cell_probe(module)
                calls = sum(1 for n in self.graph.nodes if n.module == node.module and n.attrs.get("cell")
                            and n.attrs.get("output", 0) == 0)
                cell_offset = _cell_gate_offset(probe, calls, self.m(node.inputs[0]),
                                                self.graph.nodes[node.inputs[0]].shape, self.target)
                if cell_offset is not None:
                    self.cell_offsets[node.module] = cell_offset
            if node.module in self.cell_offsets:
                offsets["bias_hh"] = self.cell_offsets[node.module]
            steps, solved = _solved_cell(
                probe, [(self.m(i), self.graph.nodes[i].shape) for i in node.inputs], self.target)
            out = steps[output]
        elif output == 0:
            out, solved, offsets = _solved_rnn(module, self.m(node.inputs[0]), node, self.target)
        form = _BOUNDED_STATES.get(node.attrs.get("mode", ""))
        if output == 0 and out is not None and form is not None:
            self.state_notes[node.module] = (
                f"{node.module}: the gated output {form} has std {_g(math.sqrt(out.second))} at the solved gate "
                "preactivations; a larger one would saturate the gates, so the activation std across this layer "
                "changes by that factor by design")
        for role, name in node.params.items():
            pname = name.rsplit(".", 1)[-1]
            if pname in solved:
                std, fan_in, nu = solved[pname]
                self.plans[name] = ParamPlan(name, "normal", std=std, fan_in=fan_in, reason=(
                    f"{type(module).__name__} input weight: each gate's preactivation from the input at "
                    f"Var = {_g(self.target)} / (fan_in {_g(fan_in)} * nu_in {_g(nu)})"))
            elif pname in offsets:
                offset, before, after = offsets[pname]
                gate = SOLVED_GATES[recurrent_mode(module)][2]
                self.plans[name] = ParamPlan(name, "recurrent", value=offset, reason=(
                    f"{gate}-gate block {_g(offset)}: the layer's output on the example's sequence had std "
                    f"{_g(before)} without it, below {_g(GATED_OUTPUT_FLOOR * math.sqrt(self.target))}; "
                    f"{_g(after)} with it"))
            else:
                self.plans.setdefault(name, ParamPlan(
                    name, "recurrent", reason="LSTM/GRU: orthogonal recurrent gates, LSTM forget- and "
                                              "output-gate offsets 1 and 2.5 (varinit's recurrent rules)"))
        return out

    def view(self, node: Node) -> Moments | None:
        if node.attrs.get("op") == "pad" and node.attrs.get("mode", "constant") == "constant":
            # F.pad adds zeros: the mean square over all elements falls by the padded share.
            # Padding that leaves the last (feature) dim whole (Swin's windows, padded
            # sequences) is kept apart: layers and activations applied per position act on
            # the real positions' moments, and a later crop drops the zeros again
            source = self.graph.nodes[node.inputs[0]]
            inner = math.prod(source.shape)
            share = inner / max(math.prod(node.shape), 1)
            x = self.m(node.inputs[0])
            if node.shape and source.shape and node.shape[-1] == source.shape[-1]:
                self.live[node.index] = share * self.live.get(node.inputs[0], 1.0)
                return self.moments.get(node.inputs[0])
            return Moments(x.mean * share, x.second * share)
        if node.attrs.get("op") == "topk":
            # the k largest along a dim (its values; output 1, their indices, carries no moments)
            source = self.graph.nodes[node.inputs[0]]
            if node.attrs.get("output", 0) != 0 or not node.dtype.is_floating_point or node.attrs["k"] < 1:
                return None   # (k = 0 of no candidates: a detector's scores where none passed its threshold)
            return rules.top_k(self.m(source.index), source.shape[node.attrs["dim"]], node.attrs["k"])
        if node.attrs.get("op") in ("view_as_complex", "view_as_real") and node.inputs:
            # a complex value's moments are of z itself: E|z|^2 is the sum of its two real parts',
            # and |E z|^2 the sum of their means' squares (a complex product multiplies them)
            x, pair = self.m(node.inputs[0]), 2.0 if node.attrs["op"] == "view_as_complex" else 0.5
            self.common[node.index] = pair * self.kappa(node.inputs[0])
            return Moments(x.mean * math.sqrt(pair), x.second * pair)
        part = _cat_part(self.graph, node)
        if part is not None:   # x[:, :1] of torch.cat([cls, tokens], 1): the class token's own moments
            self.common[node.index] = self.kappa(part)
            return self.moments.get(part)
        if not node.inputs:
            return None
        origin = self.graph.nodes[node.inputs[0]]
        if (origin.kind == "input" and not origin.dtype.is_floating_point and node.dtype.is_floating_point
                and self.moments.get(origin.index) is None):
            # integers made floats by the forward pass, given by shape only (meta): no values to read
            self.assumed.append(f"input {self.graph.inputs.index(origin.index)} ({origin.dtype} on meta, read "
                                "as floats by the forward pass: moments unknown, unit second moment assumed; "
                                "pass a real batch for its moments)")
            return ASSUMED
        return self.moments.get(origin.index)

    # elementwise regions --------------------------------------------------
    def region(self, index: int) -> tuple[int, Callable[..., Any] | None]:
        fused = rules.fuse(self.graph, index, self.memo)
        return fused if fused is not None else (index, None)

    def arithmetic(self, node: Node) -> Moments | None:
        fused: tuple[int, Fused] | None = rules.fuse(self.graph, node.index, self.memo)
        if fused is None and node.inputs and (slope := self.prelu(node, node.inputs[0])) is not None:
            fused = (node.inputs[0], slope)   # a PReLU with a slope per channel: their mean's
        if fused is not None:
            source, fn = fused
            if source != node.index:
                g: Fused = named_activation(self.graph, node, source) or self.prelu(node, source) or fn
                x = self.m(source)
                found = _of_statistic(g, x) if self.of_statistic(source) else self.integrated(node.index, source, g, x)
                if found is None:   # g is not finite over the values a Gaussian reaches
                    self.opaque.append(node)
                    return None
                moments, grad = found
                self.regions[node.index] = (source, g, moments, grad)
                # a Gaussian with the input's moments reaches the other sign, which the input
                # never takes (exp of dt * A with dt * A <= 0 would overflow)
                if callable(g) and self.signs.bounded_factor(node.index) and (
                        one_sided := one_signed(g, x, self.signs.sign(source))) is not None:
                    moments, grad = one_sided
                    self.regions[node.index] = (source, g, moments, grad)
                return moments
        ins = [self.m(i) for i in node.inputs]
        a = node.attrs
        larger = _larger_of_two(self.graph, node)
        if larger is not None and all(self.moments.get(i) is not None for i in node.inputs[:2]):
            # torch.maximum / minimum of two signals, as where(x >= y, x, y)
            return rules.larger_of_two(ins[0], ins[1], larger)
        mask = _additive_mask(self.graph, node)
        if mask is not None:
            # scores plus a mask of 0 and a large negative number, made in the forward pass (its
            # values unknown on meta): the kept scores pass, the masked ones leave the softmax
            return self.m(mask[0])
        rotated = _rotation(self.graph, node)
        if rotated is not None:
            # x cos + rotate_half(x) sin (rotary position embeddings, Su et al. 2021): each pair of
            # features is turned by an angle, which keeps its norm whatever cos and sin hold
            self.common[node.index] = self.kappa(rotated)
            return self.m(rotated)
        if (kept := _cancelled(self.graph, node.index)) is not None:
            # x + (y - x).detach(), a straight-through estimator (VQ-VAE's codes, hard Gumbel
            # samples y_hard - y_soft.detach() + y_soft): the terms cancel to one, whose value it is
            source, c = kept
            self.common[node.index] = c * c * self.kappa(source)
            return rules.scale(self.m(source), c)
        if node.kind == "sub" and a.get("alpha", 1.0) == 1.0 and _own_mean(self.graph, node):
            # x less its own mean over some dims (a LayerNorm or RevIN written out): the mean
            # of (x_j - m)^2 over those elements is the mean of x_j^2 less m^2, exactly
            return Moments(ins[0].mean - ins[1].mean, max(ins[0].second - ins[1].second, 0.0))
        if node.kind == "add":
            return rules.add(ins[0], ins[1], a.get("alpha", 1.0))
        if node.kind == "sub":
            return rules.sub(ins[0], ins[1], a.get("alpha", 1.0))
        if node.kind == "mul":
            gain = _branch_gain(self.graph, node) if node.index in self.branch_end else None
            if gain is not None:
                return self.layer_scale(node, *gain)
            return rules.mul(ins[0], ins[1])
        if (own := self.own_sums.get(node.index)) is not None:
            # w / w.sum(dim, keepdim=True): shares of a sum of n positive entries (a router's top-k
            # weights renormalized, a softmax written out): mean 1 / n, and to first order in the
            # entries' spread about their mean the second moment nu / (n mu)^2; over segments, _own_sum
            x, m, q = ins[0], own[0], own[1]
            return Moments(1.0 / m, x.second / (q * x.mean * x.mean)) if x.mean > 0 else None
        if (summed := _mean_by_count(self.graph, node)) is not None:
            # a sum over the elements that land together, over how many do (PyTorch Geometric's
            # mean aggregation): their mean
            scatter = self.graph.nodes[summed]
            source, a = scatter.inputs[1], scatter.attrs
            self.common[node.index] = a["written"] * self.kappa(source)
            return rules.scatter_mean(Moments(0.0, 0.0), self.m(source), a["written"], a["inverse"],
                                      kappa=self.kappa(source))
        if node.kind == "div" and (divisor := self.statistic_divisor(node)) is not None:
            # x over a statistic of many of its elements (its norm: F.normalize, CLIP's x / ||x||),
            # whose spread is small next to its value: E[1/d] = 1/m + var/m^3, E[1/d^2] = 1/m^2 +
            # 3 var/m^4 (the delta method)
            averaged = self.linear_attention(node)
            if averaged is not None:
                return averaged
            m, var = divisor.mean, divisor.variance
            mean_inverse, square_inverse = 1.0 / m + var / m ** 3, 1.0 / m ** 2 + 3.0 * var / m ** 4
            self.common[node.index] = self.kappa(node.inputs[0]) * mean_inverse * mean_inverse
            return Moments(ins[0].mean * mean_inverse, ins[0].second * square_inverse)
        if node.kind == "div" and (inverse := self.fixed_inverse(node) or self.region_inverse(node)) is not None:
            # the signal over a fixed tensor of other values at other positions (a graph's degrees):
            # E[x / c] = E[x] E[1/c], E[(x / c)^2] = E[x^2] E[1/c^2]
            self.common[node.index] = self.kappa(node.inputs[0]) * inverse[0] ** 2
            return Moments(ins[0].mean * inverse[0], ins[0].second * inverse[1])
        if node.kind == "scale":
            return rules.scale(ins[0], a["scalar"])
        if node.kind == "shift":
            return rules.shift(ins[0], a["scalar"])
        self.opaque.append(node)
        return None

    def statistic_divisor(self, node: Node) -> Moments | None:
        """The moments of a division's divisor when it is, through views (F.normalize's
        expand_as), a reduction over many elements or a function of one (a clamp, a root:
        x / x.pow(2).sum(-1, keepdim=True).pow(0.5)) with a positive value; else None."""
        if len(node.inputs) != 2:
            return None
        divisor = _through_views(self.graph, node.inputs[1])
        source = self.regions[divisor][0] if divisor in self.regions else divisor
        moments = self.moments.get(divisor)
        if moments is None or moments.mean <= 0:
            return None
        if self.of_statistic(source) or self.concentrated_product(_through_views(self.graph, source)):
            return moments
        return None

    def concentrated_product(self, source: int) -> bool:
        """Whether a node is a product summed over many terms (a dot product, a matmul or
        einsum over DOT_TERMS or more) whose positive mean outweighs its spread (variance
        below CONCENTRATED times the mean's square): linear attention's normalizer
        phi(q) . sum_j phi(k_j), a sum of positive terms, is a statistic as a norm is."""
        node = self.graph.nodes[source]
        moments = self.moments.get(source)
        return (node.kind == "matmul" and node.attrs.get("op") != "fixed_mix"
                and int(node.attrs.get("inner", 1)) >= DOT_TERMS and moments is not None and moments.mean > 0
                and moments.variance <= CONCENTRATED * moments.mean ** 2)

    def region_inverse(self, node: Node) -> tuple[float, float] | None:
        """(E[1/g], E[1/g^2]) of a division's divisor when it is an elementwise function g of
        another signal that keeps away from zero (x / (|y| + 1), x / max(|y|, 1): an mLSTM's
        readout), by quadrature over that signal's Gaussian; the dividend taken independent
        of it, as a product's operands are. None when 1/g diverges there or g is not a
        function the trace could run again."""
        if len(node.inputs) != 2:
            return None
        divisor = _through_views(self.graph, node.inputs[1])
        region = self.regions.get(divisor)
        if region is None or not callable(region[1]) or region[0] == node.inputs[0]:
            return None
        g = region[1]
        try:
            with np.errstate(all="ignore"):
                found = _elementwise(lambda t: 1.0 / g(t), self.m(region[0]))[0]
        except (DivergentIntegral, ValueError, TypeError, ZeroDivisionError):
            return None
        return (found.mean, found.second) if math.isfinite(found.second) else None

    def fixed_inverse(self, node: Node) -> tuple[float, float] | None:
        """(E[1/c], E[1/c^2]) of a division's divisor c when it is fixed with known values
        and the dividend is not, else None."""
        if len(node.inputs) != 2 or node.inputs[0] in self.graph.fixed or node.inputs[1] not in self.graph.fixed:
            return None
        values = self.graph.nodes[node.inputs[1]].attrs.get("values")
        if values is None or values[2] is None:
            return None
        return values[2], values[3]

    def prelu(self, node: Node, source: int) -> tuple[str, float] | None:
        """("leaky_relu", its slope) when `node` is a PReLU of `source`: the slope is the
        parameter's value (the mean of its channels'), read from the model, or PReLU's
        default 0.25 when it holds none (meta), as the report says."""
        name = node.params.get("weight")
        if node.attrs.get("op") != "prelu" or node.inputs != [source] or name is None:
            return None
        self.plans.setdefault(name, ParamPlan(name, "untouched", reason="PReLU's slope: kept, and read by the solve"))
        value = self.real_params.get(name)
        if value is None or value.is_meta or value.numel() == 0:
            assumed = f"{name}: PReLU's slope {PRELU_SLOPE} (its value is unknown on meta)"
            self.assumed.extend([assumed] if assumed not in self.assumed else [])
            return ("leaky_relu", PRELU_SLOPE)
        return ("leaky_relu", float(value.detach().double().mean()))

    def output_gains(self) -> dict[int, float]:
        """{layer node: factor on its goal} that moves each model output toward the
        target variance. Two goals meet there: the layers' output second moment
        (the target) and the model output's variance (not second moment: an output
        through ReLU or pooling has a mean, and a ReLU's variance is 0.34 of its
        second moment). The factor splits the log distance between them in half
        (the least-squares compromise): a ReLU output's std goes from 0.58 to 0.76
        and its layer's from 1 to 1.31. Only where the output is a positively
        homogeneous function of the layers it is read from (ReLU, pooling,
        concatenation, sums, views, dropout in between), so a factor on their second
        moment is the same factor on its variance; at most MAX_OUTPUT_GAIN on the
        std, with a note."""
        gains: dict[int, float] = {}
        for out in dict.fromkeys(self.graph.outputs):
            moments = self.moments.get(out)
            layers = self.last_layers(out)
            activation = _through_views(self.graph, out)
            if moments is not None and not layers and activation in self.regions:
                found = self.activated_output_gain(activation, moments)
                if found is None:
                    self.bounded_output_note(activation, moments)
                elif found[0] not in gains:
                    gains[found[0]] = found[1]
            elif moments is not None and not layers:
                self.unreached_output_note(out, moments)
            if moments is None or not layers or set(layers) & set(gains):
                continue
            if layers == [out]:
                gain = self.own_output_gain(out, moments)
                if gain is not None:
                    gains[out] = gain
                continue
            variance = moments.second - moments.mean ** 2
            if variance <= 0:
                continue
            gain = math.sqrt(self.target / variance)
            capped = min(max(gain, MAX_OUTPUT_GAIN ** -2), MAX_OUTPUT_GAIN ** 2)
            if abs(capped - 1.0) <= 1e-3:
                continue
            if capped != gain:
                self.notes.append(
                    f"the model's output has variance {_g(variance * capped)}: halfway to {_g(self.target)} would "
                    f"take x{_g(math.sqrt(gain))} on the std of the layers before it, beyond the {MAX_OUTPUT_GAIN} "
                    "allowed, so they stay in line with the rest")
            gains.update(dict.fromkeys(layers, capped))
        return gains

    def unreached_output_note(self, out: int, moments: Moments) -> None:
        """A note when a model's output, which no layer's scale is solved for (a product of
        two signals: a hypernetwork's generated weights times its input), has a variance
        outside a factor 4 of the target's (its std outside the 2-fold either way)."""
        variance = moments.second - moments.mean ** 2
        node = self.graph.nodes[_through_views(self.graph, out)]
        if (self.target / 4.0 <= variance <= 4.0 * self.target or not math.isfinite(variance)
                or node.kind in ("rnn", "input", "param", "constant") or not node.dtype.is_floating_point):
            return   # a recurrent layer's state (its own note says why it is small), or no signal
        if any(n.index == out or (self.ancestors[out] >> n.index) & 1 for n in self.opaque):
            return   # moments after an op without a rule are assumed, not predicted (that note names it)
        self.notes.append(
            f"the model's output ({node.target or node.kind}) has variance {_g(variance)} by the solve's moments, "
            f"outside a factor 4 of the target {_g(self.target)}: it is not a positively homogeneous function of "
            "the layers before it (a product of two signals, a nonlinear function), so no layer's scale is solved "
            "for it")

    def activated_output_gain(self, out: int, moments: Moments) -> tuple[int, float] | None:
        """(layer, factor on its goal) for a model output that is an activation of one
        layer's output which amplifies its variance beyond the target (a mixture density
        network's sigma = exp(layer): e (e - 1) = 4.7 at a unit input): the factor f within
        [1 / MAX_OUTPUT_GAIN^2, 1] that minimizes (ln f)^2 + (ln Var g / target)^2, the
        least-squares compromise of the two goals (the homogeneous case's halfway); exp
        takes 0.57, the output's variance 1.36. None where the activation does not amplify
        (a bounded function: bounded_output_note) or the layer serves other uses."""
        source, _, _, _ = self.regions[out]
        layer = _through_views(self.graph, source)
        node = self.graph.nodes[layer]
        x = self.region_input(out)
        if moments.variance <= self.target or node.kind not in LAYERS or x.second <= 0 or not self.solved_alone(node):
            return None

        def cost(f: float) -> float:
            found = self.region_at(out, Moments(x.mean * math.sqrt(f), x.second * f))
            if found is None or found[0].variance <= 0:
                return math.inf
            return math.log(f) ** 2 + math.log(found[0].variance / self.target) ** 2

        steps = 40
        factors = [MAX_OUTPUT_GAIN ** (-2.0 * k / steps) for k in range(steps + 1)]
        best = min(factors, key=cost)
        if best == 1.0 or not math.isfinite(cost(best)):
            return None
        self.activated_outputs[layer] = region_label(self.graph, source, out)
        return layer, best

    def region_at(self, index: int, x: Moments) -> tuple[Moments, float] | None:
        """A region's (moments, E[g'^2]) at other input moments x (a what-if: no
        normalizer bookkeeping, as `integrated` does for the region's own input)."""
        source, g, _, _ = self.regions[index]
        return self.quadrature(index, source, g, x)[0]

    def bounded_output_note(self, out: int, moments: Moments) -> None:
        """A note when the model's output is an activation of a layer (sigmoid, tanh) whose
        std stays below half the target's even with MAX_OUTPUT_GAIN on its input's std:
        no scale of the layers can bring it there (a sigmoid's std is at most 0.5), and
        the layer before it keeps its own target."""
        source, g, _, _ = self.regions[out]
        x = self.region_input(out)
        if moments.variance >= self.target / 4.0 or x.second <= 0:
            return
        wider = self.integrated(out, source, g, Moments(x.mean, x.second * MAX_OUTPUT_GAIN ** 2))
        if wider is None or wider[0].variance >= self.target / 4.0:
            return
        self.notes.append(
            f"the model's output is {region_label(self.graph, source, out)} of its last layer: its std is "
            f"{_g(math.sqrt(moments.variance))}, and {_g(math.sqrt(wider[0].variance))} with x{MAX_OUTPUT_GAIN} on "
            f"that layer's std, the most the output is given; below half the target std "
            f"{_g(math.sqrt(self.target))} (a bounded function, or a small factor the model applies: a logit "
            "scale), so the layer keeps its own target")

    def own_output_gain(self, out: int, moments: Moments) -> float | None:
        """The factor on the goal of a layer whose output is the model's: its elements'
        variance, not their second moment, is what the output's std measures. An input
        with a part every position shares (ReLU's mean) gives each output channel an
        offset, the same at every position; over C channels the offsets' mean is the
        output's, and the rest of their spread is variance: nu - kappa / C. A U-Net's
        one-channel mask after ReLU features keeps a sixth of its second moment as
        variance. The goal takes the whole factor (the layer's output is the model's),
        at most MAX_OUTPUT_GAIN^2, with a note when capped; None when it is within
        1e-3 of 1."""
        node = self.graph.nodes[out]
        channels = node.shape[-1] if node.kind == "linear" or len(node.shape) < 3 else node.shape[1]
        variance = moments.second - self.kappa(out) / max(channels, 1)
        if variance <= 0 or moments.second <= 0:
            return None
        gain = moments.second / variance
        capped = min(gain, MAX_OUTPUT_GAIN ** 2)
        if capped - 1.0 <= 1e-3:
            return None
        if capped != gain:
            self.notes.append(
                f"the model's output ({node.module or 'its last layer'}) is mostly a common offset: its {channels} "
                f"channel(s) read inputs with a mean at every position, so its variance is {_g(variance / gain)} of "
                f"its second moment; unit variance would take x{_g(math.sqrt(gain))} on its std, beyond the "
                f"{MAX_OUTPUT_GAIN} allowed")
        return capped

    def solved_alone(self, node: Node) -> bool:
        """Whether a layer node's weight is decided by this use alone, so a factor on its
        goal is a factor on its output: not shared, tied, kept, a residual branch's end or
        weight-normalized."""
        weight = node.params.get("weight")
        return not (weight is None or self.deciding.get(weight) != node.index or weight in self.multi_use
                    or weight in self.kept or node.index in self.branch_end or _weight_norm_gain(node) is not None)

    def last_layers(self, out: int) -> list[int]:
        """The layer nodes whose weights this use decides and of which the node `out`
        is a positively homogeneous function, or [] when anything else lies between."""
        found: list[int] = []
        stack, seen = [out], set()
        while stack:
            index = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            node = self.graph.nodes[index]
            region = self.regions.get(index)
            values = node.attrs.get("values") if index in self.graph.fixed else None
            if node.kind == "shift" and node.inputs and node.attrs.get("scalar") == 0:
                stack.append(node.inputs[0])   # a sum started from 0 (total = 0; total = total + f(x))
            elif node.attrs.get("zeros") or values is not None and values[1] == 0:
                continue   # a sum started from zeros made in forward (N-BEATS' torch.zeros(batch, horizon))
            elif region is not None:
                source, g, _, _ = region
                if not (isinstance(g, tuple) and g[0] in HOMOGENEOUS_ACTIVATIONS):
                    return []
                stack.append(source)
            elif node.kind in LAYERS:
                if not self.solved_alone(node):
                    return []
                found.append(index)
            elif node.kind in HOMOGENEOUS and node.inputs and node.attrs.get("op") not in ALPHA_DROPOUTS and not (
                    node.kind == "view" and node.attrs.get("op") == "pad"
                    and node.attrs.get("mode", "constant") != "constant"):
                stack.extend(node.inputs)
            elif node.kind == "matmul" and len(node.inputs) == 2 and (
                    len(learned := [i for i in node.inputs if i not in self.parameter_free]) == 1):
                stack.extend(learned)   # a matrix no parameter makes (a graph's adjacency) times the signal
            elif node.kind in ("add", "sub") and len(node.inputs) == 2:
                stack.extend(node.inputs)   # a sum of layers' outputs (N-BEATS' forecasts, wide and deep)
            else:
                return []
        return found

    def measurable(self) -> list[Target]:
        """The solved layers a measured pass can correct: a leaf layer module's
        output (or nn.MultiheadAttention's, whose out_proj it is) with a fixed
        goal, or, at a residual branch's end, alpha times the stream's measured
        second moment, read at the input of a norm or layer module that reads
        the stream; and a layer function called with its parameter as the
        weight inside a forward(), with a fixed goal."""
        targets: list[Target] = []
        # the parameters that set the scale of a weight computed in forward: measured at the
        # output of the layer module that computes it
        scaling = {r.scaling() for r in self.responses.values() if r is not None}
        for name, p in self.plans.items():
            node_index = self.deciding.get(name)
            if (p.rule != "normal" and name not in scaling) or node_index is None or name in self.multi_use:
                continue
            node = self.graph.nodes[node_index]
            module = self.modules.get(node.module)
            prefix = f"{node.module}." if node.module else ""
            own = name == f"{prefix}weight" or name in scaling or (
                isinstance(module, torch.nn.MultiheadAttention) and name == f"{prefix}out_proj.weight")
            if _weight_norm_gain(node) is not None:
                continue
            # the goal is the real positions'; a measurement averages the padding in too
            live = self.mixture(node_index)
            goal = None if p.goal is None else p.goal * live
            if goal is not None and node_index in self.graph.outputs and node_index in self.output_gain:
                # the model's output, solved for a second moment whose variance is the target: the
                # measurement reads the variance itself (the spread about the mean)
                goal /= self.output_gain[node_index]
            functional = not (own and isinstance(module, MEASURED_MODULES))
            # MultiheadAttention's packed in_proj makes q, k and v at once: one factor for the
            # three would only trade their errors (its output, out_proj's, is measured)
            if functional and not (node.kind in LAYERS and node.params.get("weight") == name
                                   and not isinstance(module, torch.nn.MultiheadAttention)):
                continue
            if goal is not None:
                targets.append(Target(name, node.module, goal, None, None, functional))
            elif node_index in self.alphas and self.residual == "depth":
                stream = self.branch_end[node_index][0]
                reader = _stream_reader(self.graph, self.modules, stream)
                if reader is not None:
                    # as the solve's goal: at most the layers' target (or the amount a quiet stream's
                    # branch adds), whatever the stream measures (Swin-T's second stage had measured
                    # 1.07 where its third's ends sat at 0.54: act 1.98)
                    cap = max(self.target, self.alphas[node_index] * self.m(stream).second) * live
                    targets.append(Target(name, node.module, None, reader, self.alphas[node_index] * live,
                                          functional, cap))
        return targets

    def tied_head_notes(self) -> list[str]:
        """A note for each embedding tied to a head that decides their shared scale (no
        norm's gain before the head can take it) where that scale leaves the embedded
        tokens outside 2x the target's std: its two uses want scales sqrt(d_head * nu)
        apart (a tied LSTM language model of width 200: 8.7), and no one scale keeps
        both the tokens and the logits near the target."""
        notes = []
        for table, index in sorted(_tied_heads(self.graph, self.deciding).items()):
            head, plan = self.graph.nodes[index], self.plans.get(table)
            if index in self.head_gains or plan is None or plan.std is None or table in self.kept:
                continue
            off = plan.std / math.sqrt(self.target)
            if not 0.5 <= off <= 2.0:
                notes.append(
                    f"{table} is an embedding tied to the head {head.module or table} with no norm before the head "
                    f"whose gain could take the head's scale: one scale serves both, the head's, so the embedded "
                    f"tokens have std {_g(plan.std)} where untied rows would have {_g(math.sqrt(self.target))}; "
                    "the layers after them make up for it, but their outputs and gradients stand that far apart "
                    "from the rest (a norm before the head, or untied weights, removes the conflict)")
        return notes

    # ------------------------------------------------------------ the end
    def finish(self) -> None:
        self.notes.extend(self.state_notes.values())
        self.notes.extend(self.tied_head_notes())
        self.notes.extend(self.call_spread_notes())
        for name, reason in self.kept.items():
            plan = self.plans.get(name)
            self.plans[name] = ParamPlan(name, "kept", std=plan.std if plan is not None else None, reason=reason)
        scripted = self.scripted_owners()
        for name in self.graph.params:
            owner = scripted.get(name)
            if owner is not None and (name not in self.plans or self.plans[name].rule == "untouched"):
                self.plans[name] = ParamPlan(name, "untouched", reason=(
                    f"inside the TorchScript module {owner or 'the model'}, whose forward runs where the "
                    "trace cannot see it"))
            elif name not in self.plans:
                self.plans[name] = ParamPlan(name, "untouched", reason="not read by the traced forward pass")
        if scripted:
            owners = sorted({o or "the model" for n, o in scripted.items() if self.plans[n].rule == "untouched"})
            if owners:
                self.notes.append("TorchScript modules (torch.jit.script) run where the trace cannot see them: "
                                  "their parameters are left as they were, and what they compute is read as of "
                                  "unit second moment: " + ", ".join(owners[:4]) + (", ..." if len(owners) > 4 else "")
                                  + "; the eager module (before torch.jit.script) is initialized in full")
        inputs = sum(1 << i for i, n in enumerate(self.graph.nodes) if n.kind == "input")
        reaching = _floats_reaching(self.graph)
        # an op that reads parameters alone computes a weight (spectral norm's power iteration),
        # not the signal; an op on integers (a router's sort of expert ids, the offsets of its
        # groups) moves or counts entries: what follows them is not assumed
        signal = [n for n in self.opaque if self.ancestors[n.index] & inputs and (reaching >> n.index) & 1
                  and n.dtype.is_floating_point]
        if signal:
            names = sorted({n.target for n in signal})
            self.notes.append("ops without a moment rule (what follows them assumes a unit second moment): "
                              + ", ".join(names))
        overflowed = [n for n in self.overflowed if (reaching >> n.index) & 1]
        if overflowed:
            names = sorted({n.module or n.target for n in overflowed})
            self.notes.append("moments that overflow (what follows them assumes a unit second moment; a measured "
                              "pass with real example inputs corrects the layers after them): " + ", ".join(names[:6])
                              + (", ..." if len(names) > 6 else ""))
        unplaced = self.unplaced_matrices()
        if unplaced:
            self.notes.append(
                "parameters a matrix product reads with the signal but not as a layer's weight (not x @ W with W "
                "2-D, nor an einsum summing over the signal's letters): kept at their values, which the solve "
                "reads: " + ", ".join(unplaced[:6]) + (", ..." if len(unplaced) > 6 else ""))
        for item in dict.fromkeys(self.assumed):
            self.notes.append(f"assumed: {item}")
        self.notes.extend(_shared_branch_notes(self.graph, self.ancestors, self.branch_end))
        if self.masks:
            places = list(dict.fromkeys(self.masks))
            self.notes.append("assumed: a causal mask (row i keeps i + 1 keys; the mask's values are not read, so "
                              "a padding or adjacency mask is counted as causal), where square attention scores "
                              "are filled with a large negative number before the softmax (masked_fill, where) or "
                              f"have a square mask made in the forward pass added, in {len(places)} "
                              f"place{'s' if len(places) > 1 else ''}: " + ", ".join(places[:4])
                              + (", ..." if len(places) > 4 else ""))

    def scripted_owners(self) -> dict[str, str]:
        """{parameter: the outermost TorchScript module it belongs to} (torch.jit.script'ed
        modules run in TorchScript's interpreter, out of the trace's sight)."""
        found: dict[str, str] = {}
        for prefix, module in self.modules.items():
            if isinstance(module, torch.jit.ScriptModule):
                for name, _ in module.named_parameters(prefix=prefix):
                    found.setdefault(name, prefix)
        return found

    def unplaced_matrices(self) -> list[str]:
        """The untouched parameters a matmul or einsum reads directly: no rule gave them a role."""
        graph = self.graph
        return [name for name, plan in self.plans.items() if plan.rule == "untouched" and any(
            reader.kind == "matmul" for i in graph.uses.get(name, ()) if graph.nodes[i].kind == "param"
            for reader in graph.readers(i))]

    def verdicts(self) -> list[Verdict]:
        """A Verdict per activation (elementwise region) and per product of activations.

        The slope of a region is d log E[g^2] / d log q at its input; a product of
        two operands from the same layer adds their slopes (a gate times a value:
        2.2 for SwiGLU without normalization). Each slope multiplies the relative
        error of the second moment per layer: at 1.5 or more no scale holds it."""
        by_label: dict[str, Tally] = {}
        alone: dict[str, list[int]] = {}   # label -> its regions judged by the plain chi_1 (the target moves it)
        sens = self.sensitivities()
        unruled = sum(1 << n.index for n in self.opaque)
        for index, (source, g, moments, grad) in self.regions.items():
            x = self.region_input(index)
            if (self.ancestors[source] | 1 << source) & unruled and not (
                    _scale_free(g) and abs(x.mean) <= 1e-6 * math.sqrt(max(x.second, 0.0))):
                # its input's moments are assumed after an op without a rule (named there), and its
                # verdict depends on them: no evidence (relu(x)^2's, of degree 2 at any scale on a
                # centred input, stands; sparsemax's clamp(z - tau, 0), tau after torch.sort, does not)
                continue
            consumers = self.graph.readers(index)
            if consumers and all(c.index in self.regions for c in consumers):
                continue  # inside a longer region: judged at its end
            if self.part_of_statistic(index) or index in self.normalizing:
                continue  # part of a normalization or a softmax written out, not an activation
            if _scales_channels(self.graph, index):
                continue  # a gate that scales whole channels (squeeze-and-excitation), not the signal's path
            if self.gate(index):
                continue  # a gate (a highway layer's sigmoid): judged with the products it multiplies
            if not (self.ancestors[source] | 1 << source) & self.weighted:
                # no parameter before it (a diffusion model's sin / cos of the timestep times fixed
                # frequencies): its gradient reaches no weight, and no scale sets its input
                continue
            if not self.graph.nodes[index].dtype.is_floating_point or index in self.graph.fixed:
                continue  # index arithmetic (an MoE's sorted token order // top_k, a graph's degrees)
            if index in self.graph.computed:
                continue  # a weight's parametrization (a state-space model's A = -exp(A_log))
            if self.signs.bounded_factor(index):
                continue  # bounded over its input's one sign: a decay exp(dt * A) with dt * A <= 0
            if self.normalized_before_layers(index):
                continue  # a norm divides its scale out before a layer reads it: no error to carry
            if any("custom_backward" in self.graph.nodes[i].attrs
                   for i in rules.region_nodes(self.graph, source, index)):
                continue  # its gradient is a custom autograd.Function's backward (a straight-through estimator)
            if x.second <= 0 or moments.second <= 0 or x.variance <= 0:
                continue
            slope = self.region_slope(index)
            if _through_views(self.graph, source) in self.residual_additions:
                # on the stream, after a branch joins it (a post-activation ResNet's relu(x + f(x))):
                # no layer scales the stream between two of them, and each branch adds its own
                # gradient back, so the stream's gradient is not a product of their chi_1 over
                # the depth (ResNet-50's sixteen were a trade-off, NOT healthy, with its measured
                # first/last ratio 2.2); each is judged alone, and the gradient check measures
                tally(by_label, region_label(self.graph, source, index) + " after a residual addition",
                      grad * x.variance / moments.second, slope, _layer_before(self.graph, source),
                      ("residual addition", index))
                continue
            if summed_batch_norms(self.graph, source) is not None:
                # the next norm divides by the std the activation's variance gives, so the gradient
                # grows by E[g'^2] Var(x) / Var g per norm (pi / (pi - 1) after ReLU, Yang et al.
                # 2019), and the norms hold the forward whatever the scale: no trade-off over the
                # depth, each activation in series alone; the gradient check measures the growth
                if moments.variance > 0:
                    tally(by_label, region_label(self.graph, source, index) + " after batch statistics",
                          grad * x.variance / moments.variance, slope, _layer_before(self.graph, source),
                          ("batch statistics", index))
                continue
            label = region_label(self.graph, source, index)
            tally(by_label, label, grad * x.variance / moments.second, slope,
                  _layer_before(self.graph, source), self.branch_of(index))
            alone.setdefault(label, []).append(index)
        scores = _scores(self.graph, self.normalizing, self.own_sums)
        # an operand no layer made (a mask passed as an input) is fixed data: a layer's error
        # does not reach it, so it adds nothing to the product's slope
        layered = sum(1 << n.index for n in self.graph.nodes if _is_layer(n))
        for node in self.graph.nodes:
            if node.kind == "mul" and node.index not in self.regions and len(node.inputs) == 2 \
                    and node.index not in scores and node.dtype.is_floating_point \
                    and not any(_broadcast_factor(self.graph, node, i) for i in node.inputs) and not (
                    self.resets_scale(node) or any(self.graph.nodes[i].kind == "param" or i in self.graph.fixed
                                                   for i in node.inputs)
                    # an operand from an op without a rule: its degree is unknown (the op is named)
                    or any(self.graph.nodes[_through_views(self.graph, i)].kind == "opaque" for i in node.inputs)
                    or self.normalized_before_layers(node.index) or "custom_backward" in node.attrs):
                a, b = (sens.get(i, 0.0) if (self.ancestors[i] | 1 << i) & layered else 0.0 for i in node.inputs)
                if max(a, b) > 0:
                    label = "product " + " * ".join(operand_label(self.graph, i) for i in node.inputs)
                    tally(by_label, label, 1.0, (a + b) / max(a, b), _layer_before(self.graph, node.inputs[0]),
                          self.branch_of(node.index))
        found = []
        for label, t in by_label.items():
            depth = t.depth(self.ancestors)
            keeping = functools.partial(self.gradient_target, alone[label], t.chi, depth) if label in alone else None
            found.append(verdict(label, t.chi, t.slope, depth, keeping))
        return found

    def call_spread_notes(self) -> list[str]:
        """A note per layer called several times (a cell unrolled over a sequence, a block
        applied at every step) whose calls' output second moments lie more than
        CALL_SPREAD apart by the solve's moments: from a state that starts at zeros (a
        ConvLSTM's gates read [x, h] with h = 0 at the first step) or an input that grows
        between the calls, one scale of its weights cannot give every call the target;
        they are solved at the last call."""
        notes, named = [], set()
        for name in sorted(self.multi_use):
            uses = _layer_uses(self.graph, name)
            nodes = [self.graph.nodes[i] for i in uses]
            if len({(n.kind, n.module) for n in nodes}) != 1 or tuple(uses) in named:
                continue   # a table tied to a head: two kinds of use, each with its own goal; a bias
            named.add(tuple(uses))
            seconds = [m.second for i in uses if (m := self.moments.get(i)) is not None and m.second > 0]
            if len(seconds) < 2 or max(seconds) <= CALL_SPREAD * min(seconds):
                continue
            first, last = math.sqrt(seconds[0]), math.sqrt(seconds[-1])
            notes.append(f"{nodes[0].module or name} is called {len(uses)} times, and its output's std goes from "
                         f"{_g(first)} at the first call to {_g(last)} at the last ({_g(math.sqrt(min(seconds)))} to "
                         f"{_g(math.sqrt(max(seconds)))}) by the solve's moments: a state that starts at zeros, or "
                         "an input that grows between the calls; one scale of its weights cannot give every call "
                         "the target, and they are solved at the last")
        return notes

    def gradient_target(self, regions: list[int], chi: float, depth: int) -> tuple[float, float] | None:
        """(target, chi_1 there): the second moment of the layer outputs at which the
        regions' largest chi_1 keeps the gradient in band over `depth` layers
        (`verdicts.gradient_keeping_scale`), or None."""
        scale = gradient_keeping_scale(lambda s: max(self.chi_at_scale(i, s) for i in regions), chi, depth)
        return None if scale is None else (self.target * scale[0], scale[1])

    def chi_at_scale(self, index: int, s: float) -> float:
        """chi_1 of a region with its input's variance times s (its mean kept): where a
        smaller target puts a saturating activation (tanh, sin(30 x)) nearer its linear
        part. NaN where its moments cannot be computed there."""
        x = self.region_input(index)
        found = self.region_at(index, Moments(x.mean, x.mean * x.mean + x.variance * s))
        if found is None or found[0].second <= 0:
            return math.nan
        moments, grad = found
        return grad * x.variance * s / moments.second

    def gate(self, index: int) -> bool:
        """Whether an activation's value lies in [0, 1] and, through views and further
        activations that keep it there (1 - sigmoid), only multiplies another signal
        elementwise: a gate (a highway layer's sigmoid(T x) * H(x) + (1 - sigmoid(T x)) * x).
        The gradient reaches the layers before it through the other factor too, so the
        gate's chi_1 is not a factor of the gradient over the depth; the product's verdict
        judges the pair."""
        if index in self.regions and not self.signs.within_unit_interval(index):
            return False
        readers = self.graph.readers(index)
        return bool(readers) and all(
            self.gate(r.index) if (r.kind == "view" or r.index in self.regions) and r.inputs == [index]
            else _times_signal(self.graph, r, index) and not _broadcast_factor(self.graph, r, index)
            and all(i not in self.graph.fixed for i in r.inputs if i != index)
            for r in readers)

    def branch_of(self, index: int) -> int | None:
        """The end of the residual branch a node lies on (computed from the stream, before the
        addition that joins it), the innermost where branches nest; None off every branch.
        A branch is all that the addition reads and the stream does not: also what is summed
        with the end's layer before it joins (DeepSeek-V3's routed experts beside its shared
        ones, whose down projection the addition finds as the end)."""
        found: tuple[int, int] | None = None
        for end, (stream, _, add, *_) in self.branch_end.items():
            on_branch = (self.ancestors[add] >> index) & 1
            on_stream = stream == index or (self.ancestors[stream] >> index) & 1
            if on_branch and not on_stream and (found is None or (self.ancestors[found[1]] >> add) & 1):
                found = (end, add)
        return None if found is None else found[0]

    def integrated(self, index: int, source: int, g: Fused, x: Moments) -> tuple[Moments, float] | None:
        """_elementwise_or_none(g, x), computed once per kind of region and input moments;
        a region whose moments diverge there is a normalizer's."""
        found, diverged = self.quadrature(index, source, g, x)
        if diverged:
            self.normalizers.add(index)
        return found

    def quadrature(self, index: int, source: int, g: Fused,
                   x: Moments) -> tuple[tuple[Moments, float] | None, bool]:
        """_elementwise_or_none(g, x), cached per kind of region and input moments."""
        key = (_region_key(self.graph, source, index) if callable(g) else g, x.mean, x.second)
        if key not in self.quadratures:
            self.quadratures[key] = _elementwise_or_none(g, x)
        return self.quadratures[key]

    def of_statistic(self, source: int) -> bool:
        """Whether a region's source is a reduction over many elements (_of_statistic)."""
        return self.graph.nodes[source].kind in REDUCTIONS

    def part_of_statistic(self, index: int) -> bool:
        """Whether a region computes or transforms a statistic (x^2 read only by a mean,
        rsqrt of that mean) rather than act on the signal."""
        readers = self.graph.readers(index)
        return index in self.normalizers or self.of_statistic(self.regions[index][0]) or bool(readers) and all(
            n.kind in REDUCTIONS for n in readers)

    def resets_scale(self, node: Node) -> bool:
        """A norm that sets its output's scale, or one written out: a product with a
        function of a statistic (x * rsqrt(mean(x^2) + eps), Hugging Face's RMSNorm)."""
        if node.kind == "norm":
            return norm_sets_scale(node)
        if node.kind == "div":
            return self.statistic_divisor(node) is not None   # x / ||x||
        return node.kind == "mul" and any(i in self.regions and self.of_statistic(self.regions[i][0])
                                          for i in node.inputs)

    def normalized_before_layers(self, index: int) -> bool:
        """Whether every path from node `index` meets a norm that sets its scale before
        any weight layer or the model's output reads it: an error of its second moment
        is then divided out before it reaches a layer, at any depth (Mamba's step
        dt = softplus(x + b) feeds the scan, whose output meets a gated RMSNorm)."""
        graph, seen, stack = self.graph, set(), [index]
        outputs = set(graph.outputs)
        while stack:
            node = graph.nodes[stack.pop()]
            if node.index in seen:
                continue
            seen.add(node.index)
            if node.index in outputs:
                return False
            for reader in graph.readers(node.index):
                if self.resets_scale(reader):
                    continue
                if _is_layer(reader) or reader.kind in ("bilinear", "opaque") or (
                        reader.kind == "matmul" and any(graph.nodes[i].kind == "param" or i in graph.computed
                                                        for i in reader.inputs)):
                    return False
                stack.append(reader.index)
        return True

    def region_input(self, index: int) -> Moments:
        """The moments an elementwise region was computed from: its source's, over
        the real positions when the region carried zero padding through."""
        self.raw = index in self.live
        try:
            return self.m(self.regions[index][0])
        finally:
            self.raw = False

    def region_slope(self, index: int) -> float:
        """d log E[g^2] / d log q of a region at its input (verdicts, drift and spread ask
        for each region's: computed once per pass)."""
        slope = self.slopes.get(index)
        if slope is None:
            source, g, moments, _ = self.regions[index]
            x = self.region_input(index)
            if self.of_statistic(source):
                # a statistic scales as a whole: x1.1 on its second moment (the mean square in
                # a written-out RMSNorm gives rsqrt a slope of -1/2, which resets the scale)
                found = _of_statistic(g, Moments(x.mean * math.sqrt(1.1), x.second * 1.1))
                slope = (0.0 if found is None or moments.second <= 0
                         else math.log(found[0].second / moments.second) / math.log(1.1))
            elif x.variance <= 0 or moments.second <= 0:
                slope = 0.0   # a region of a constant (ConViT's gate: sigmoid of a parameter of ones)
            elif self.signs.bounded_factor(index):
                slope = 0.0   # its values stay in one range whatever its input's scale (a decay)
            else:
                bumped, _ = cast(tuple[Moments, float], self.integrated(
                    index, source, g, Moments(x.mean, x.mean * x.mean + x.variance * 1.1)))
                slope = math.log(bumped.second / moments.second) / math.log(
                    (x.mean * x.mean + 1.1 * x.variance) / x.second)
            self.slopes[index] = slope
        return slope

    def sensitivities(self) -> dict[int, float]:
        """Per node, d log nu(node) / d log nu(input): how a relative error of the
        second moment entering the model is carried (layers pass it on, norms
        reset it, regions multiply it by their slope, products add it)."""
        sens: dict[int, float] = {}
        for node in self.graph.nodes:
            ins = [sens.get(i, 0.0) for i in node.inputs]
            if node.kind == "input":
                value = 1.0
            elif (node.kind in ("constant", "param", "rnn", "softmax") + EMBEDDINGS or node.index in self.graph.fixed
                  or node.index in self.own_sums):
                value = 0.0
            elif self.resets_scale(node):
                # a norm, or one written out: x * rsqrt(mean(x^2)), (x - mu) / sqrt(var + eps) (NAFNet's
                # LayerNorm2d), as drift and spread reset them
                value = 0.0
            elif node.kind == "norm":
                value = ins[0]
            elif node.index in self.regions:
                source = self.regions[node.index][0]
                value = self.region_slope(node.index) * sens.get(source, 0.0)
            elif node.kind == "mul" or node.kind == "matmul":
                value = sum(ins)
            elif node.kind in ("add", "sub", "cat") and ins:
                value = self.by_part(node, ins)
            elif node.kind == "attention":
                value = ins[2] if len(ins) > 2 else 0.0
            elif node.kind == "scatter":   # what is written, or what it is written into
                value = max(ins[:2])
            else:
                value = ins[0] if ins else 0.0
            sens[node.index] = value
        return sens

    def by_part(self, node: Node, values: list[float]) -> float:
        """A sum's or a concatenation's value of a per-node quantity: its parts'
        values weighted by their second moments (the largest if they have none)."""
        weights = [self.m(i).second for i in node.inputs]
        total = sum(weights)
        return sum(w * v for w, v in zip(weights, values)) / total if total > 0 else max(values)

    def drift(self) -> dict[str, float]:
        """Per activation, the most a relative error of the second moment made by
        one layer's draw (finite width: about sqrt(2 / width)) grows before a
        norm resets it: the product of the slopes of the activations after it,
        through layers, sums (weighted by their parts) and products."""
        growth: dict[int, float] = {}
        worst: dict[str, float] = {}
        outside: set[int] = set()   # regions read by a node outside the regions: their ends
        for node in self.graph.nodes:
            if node.index not in self.regions:
                outside.update(node.inputs)
        for node in self.graph.nodes:
            ins = [growth.get(i, 1.0) for i in node.inputs]
            if self.resets_scale(node) or node.index in self.own_sums:
                value = 1.0
            elif node.index in self.regions:
                source = self.regions[node.index][0]
                value = self.region_slope(node.index) * growth.get(source, 1.0)
                if (self.part_of_statistic(node.index) or node.index in self.normalizing
                        or node.index in self.graph.computed):   # a weight's parametrization
                    value = 1.0
                elif node.index in outside or node.index in self.graph.outputs:
                    label = region_label(self.graph, source, node.index)
                    worst[label] = max(worst.get(label, 1.0), value)
            elif node.kind in ("add", "sub", "cat") and ins:
                value = self.by_part(node, ins)
            else:
                value = max(ins, default=1.0)
            growth[node.index] = value
        return worst


    def spread(self) -> tuple[float, str]:
        """(sd of log nu, the layer where it is largest): how far one draw's layer
        outputs may sit from the solve's second moments. A layer of n units
        (features or channels) misses its expected second moment by about
        sqrt(2 / n) (a mean over n units of chi-square-like gains and offsets);
        these add in variance through layers, scale by the slope of the
        activations, average over the parts of a sum, and a norm resets them."""
        variance: dict[int, float] = {}
        worst = (0.0, "")
        for node in self.graph.nodes:
            ins = [variance.get(i, 0.0) for i in node.inputs]
            if node.kind in LAYERS and len(node.shape) >= 2:
                units = node.shape[-1] if node.kind == "linear" else node.shape[1]
                value = (ins[0] if ins else 0.0) + 2.0 / max(units, 1)
                worst = max(worst, (value, node.module or node.target))
            elif self.resets_scale(node) or node.index in self.own_sums:
                value = 0.0
            elif node.index in self.regions:
                source = self.regions[node.index][0]
                value = self.region_slope(node.index) ** 2 * variance.get(source, 0.0)
            elif node.kind in ("add", "sub", "cat") and ins:
                value = self.by_part(node, ins)
            elif node.kind == "mul":
                value = sum(ins)
            elif node.kind == "attention":
                value = ins[2] if len(ins) > 2 else 0.0
            elif node.kind in ("param", "constant", "input") + EMBEDDINGS:
                value = 0.0
            else:
                value = max(ins, default=0.0)
            variance[node.index] = value
        return math.sqrt(worst[0]), worst[1]


def summed_batch_norms(graph: Graph, index: int, alone: bool = False) -> list[Node] | None:
    """The norms with batch statistics whose outputs make node `index`'s value: one,
    or a sum of them (RepVGG's branches; one started at 0 too, timm's MobileOne),
    through views; with `alone`, each node on the way read by nothing else. None
    when anything else lies between."""
    norms: list[Node] = []
    stack = [index]
    while stack:
        node = graph.nodes[stack.pop()]
        if alone and len(graph.readers(node.index)) != 1:
            return None
        if node.kind == "view" and node.inputs or node.kind == "shift" and node.attrs.get("scalar") == 0:
            stack.append(node.inputs[0])
        elif node.kind == "add" and len(node.inputs) == 2 and node.attrs.get("alpha", 1) == 1:
            stack.extend(node.inputs)
        elif node.kind == "norm" and batch_statistics(node) and all(n.index != node.index for n in norms):
            norms.append(node)
        else:
            return None
    return norms


def norm_sets_scale(node: Node) -> bool:
    """Whether a norm node sets its output's scale whatever its input's: every
    norm but batch or instance norm on running statistics (eval)."""
    return not (node.attrs.get("which") in ("batch_norm", "instance_norm") and not node.attrs.get("training", True))


def _region_key(graph: Graph, source: int, end: int) -> tuple[Any, ...]:
    """What a fused region computes, independent of where it sits: its ops in order,
    their scalar arguments, and how they are wired, relative to the source."""
    nodes = rules.region_nodes(graph, source, end)
    place = {index: k for k, index in enumerate(nodes)}
    place[source] = -1
    return tuple((graph.nodes[i].target, repr(sorted(graph.nodes[i].attrs.items())),
                  tuple(place.get(j, j) for j in graph.nodes[i].inputs)) for i in nodes)


def _elementwise_or_none(g: Fused, m: Moments) -> tuple[tuple[Moments, float] | None, bool]:
    """(_elementwise, False), or (g of a statistic (_of_statistic), whether g's moments
    diverge) when g is not finite over the Gaussian with those moments (a square root of a
    quantity that cannot be negative) or its moments diverge there (1 / (x + eps) of a
    positive normalizer: linear attention's); (None, False) when neither is finite, or
    when g cannot be evaluated. An overflow in the quadrature (exp of a wide input) gives
    infinite moments, which the callers name, rather than numpy's warnings."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return _elementwise(g, m), False
    except DivergentIntegral:
        if isinstance(g, tuple):
            raise
        return _of_statistic(g, m), True
    except ValueError as error:
        if "non-finite" not in str(error) or isinstance(g, tuple):
            raise
    except TypeError:   # a function that cannot be evaluated off the model (it reads a meta tensor)
        return None, False
    return _of_statistic(g, m), False


def _of_statistic(g: Fused, m: Moments) -> tuple[Moments, float] | None:
    """g of a statistic over many elements (the mean square of a written-out RMSNorm,
    x * rsqrt(mean(x^2) + eps), as Hugging Face's Llama and T5 write it), whose spread
    is small next to its value: E[g] = g(mu) and E[g^2] = g(mu)^2 + g'(mu)^2 var by the
    delta method, where a Gaussian's quadrature would reach values it never takes
    (negative mean squares). None when g is not finite there."""
    if isinstance(g, tuple):   # a named activation: finite everywhere, its quadrature exact
        return _elementwise(g, m)
    sd = math.sqrt(max(m.variance, 0.0))
    step = max(sd, abs(m.mean), 1e-12) * 1e-4
    with np.errstate(all="ignore"):
        values = np.asarray(g(np.array([m.mean - step, m.mean, m.mean + step])), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None
    slope = (values[2] - values[0]) / (2.0 * step)
    centre = float(values[1])
    return Moments(centre, centre * centre + slope * slope * m.variance), float(slope * slope)


def _normalized_size(node: Node) -> int:
    """The number of logits a softmax or log_softmax normalizes over: its dim's size,
    or all its elements when it has no dim."""
    dim = node.attrs.get("dim")
    return node.shape[dim] if dim is not None and node.shape else max(math.prod(node.shape), 1)


def _over_positions(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether an operand of `shape` is broadcast to `out_shape` (it has fewer elements)
    and takes one value for every position there (`_position_free`)."""
    return math.prod(shape) < math.prod(out_shape) and _position_free(shape, out_shape)


def _position_free(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether an operand of `shape`, broadcast to `out_shape`, takes one value for
    every position: besides the leading (example) axis, at most one axis, the
    channels', is longer than 1."""
    shape = tuple(shape)[-len(out_shape):] if out_shape else tuple(shape)
    padded = (1,) * (len(out_shape) - len(shape)) + shape
    return sum(1 for axis, n in enumerate(padded) if n != 1 and axis > 0) <= 1


def _cat_part(graph: Graph, node: Node) -> int | None:
    """The operand of a concatenation that a basic index of it (x[:, :1], x[:, 1:])
    selects whole or in part, when the index stays within that one operand; else None."""
    index = node.attrs.get("index")
    if node.attrs.get("op") != "__getitem__" or not node.inputs or index is None:
        return None
    source = graph.nodes[node.inputs[0]]
    if source.kind != "cat" or source.attrs.get("op") == "stack" or not source.shape:
        return None
    items = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or i is None or not isinstance(i, (slice, int)) for i in items):
        return None
    dim = source.attrs.get("dim", 0) % len(source.shape)
    if len(items) <= dim or any(i != slice(None) for i in items[:dim]):
        return None
    chosen = items[dim]
    start, stop, step = (chosen, chosen + 1, 1) if isinstance(chosen, int) else chosen.indices(source.shape[dim])
    if step != 1 or stop <= start:
        return None
    offset = 0
    for operand in source.inputs:
        shape = graph.nodes[operand].shape
        if 0 < len(shape) <= dim:
            return None       # an operand of another rank (torch.cat skips an empty 1-D tensor)
        size = shape[dim] if shape else 0
        if offset <= start and stop <= offset + size:
            return operand
        offset += size
    return None


def _keeps_zero(node: Node) -> bool:
    """Whether a node maps each position on its own and zero to zero, so zero padding
    in its input stays padding in its output (a view, dropout, a scale, a linear layer
    with its zero bias, a layer or RMS norm over the features, an activation with
    g(0) = 0)."""
    kind = node.kind
    if kind == "view":
        return node.attrs.get("op") != "pad"
    if kind == "dropout":
        return node.attrs.get("op") not in ALPHA_DROPOUTS   # alpha dropout sends dropped zeros elsewhere
    if kind in ("scale", "linear"):
        return True
    if kind == "norm":
        return node.attrs.get("which") in ("layer_norm", "rms_norm")
    return kind == "elementwise" and len(node.inputs) == 1 and node.attrs.get("op") in ZERO_AT_ZERO


def _elementwise(g: Fused, m: Moments) -> tuple[Moments, float]:
    """moment_rules.elementwise for a fused callable or a (name, param) activation."""
    if isinstance(g, tuple):
        return rules.elementwise(g[0], m, param=g[1])
    return rules.elementwise(g, m)


def named_activation(graph: Graph, node: Node, source: int) -> tuple[str, float | None] | None:
    """(name, param) when `node` is one activation varinit knows by name applied
    to `source`: its quadrature then uses the exact kinks and derivative, a tenth
    of the work of a fused callable's adaptive one."""
    if node.kind != "elementwise" or node.inputs != [source] or node.params:
        return None
    op, attrs = node.attrs.get("op"), node.attrs
    if op == "gelu":
        return ("gelu_tanh" if attrs.get("approximate", "none") == "tanh" else "gelu", None)
    if op == "leaky_relu":
        return ("leaky_relu", float(attrs.get("negative_slope", 0.01)))
    if op in ("elu", "celu"):
        return (op, float(attrs.get("alpha", 1.0)))
    if op == "hardtanh":   # nn.ReLU6 is a hardtanh on [0, 6]
        bounds = (float(attrs.get("min_val", -1.0)), float(attrs.get("max_val", 1.0)))
        return {(0.0, 6.0): ("relu6", None), (-1.0, 1.0): ("hardtanh", None)}.get(bounds)
    if op in ("relu", "tanh", "sigmoid", "silu", "mish", "selu", "hardswish", "relu6", "hardsigmoid",
              "softsign"):
        return (op, None)
    return None


def _additive_mask(graph: Graph, node: Node) -> tuple[int, bool] | None:
    """(the scores, whether the mask is causal) when `node` adds a tensor made in the
    forward pass (through views) to attention scores that a softmax over the last dim
    reads next (Hugging Face's eager attention: scores + mask), or adds or subtracts one
    made from the inputs alone ((1 - attention_mask) * -10000, BERT-era code; Funnel's
    scores - 1e6 * (1 - attention_mask)), else None. A mask whose last two dims are square
    is taken as causal; one of shape (..., 1, T) as padding."""
    if node.kind not in ("add", "sub") or len(node.inputs) != 2 or len(node.shape) < 2:
        return None
    readers = graph.readers(node.index)
    if not (len(readers) == 1 and readers[0].kind == "softmax"
            and readers[0].attrs.get("dim") in (-1, len(readers[0].shape) - 1)):
        return None
    orders = ((node.inputs[1], node.inputs[0]),) if node.kind == "sub" else (
        (node.inputs[1], node.inputs[0]), (node.inputs[0], node.inputs[1]))
    for mask, scores in orders:
        source = graph.nodes[mask]
        while source.kind == "view" and source.inputs:
            source = graph.nodes[source.inputs[0]]
        shape = graph.nodes[mask].shape
        made = source.kind == "constant" or (source.kind != "input" and _from_inputs_alone(graph, mask))
        if made and len(shape) >= 2 and graph.nodes[scores].kind != "constant":
            if shape[-2] == shape[-1] == node.shape[-1] and node.shape[-2] == node.shape[-1]:
                return scores, True
            if shape[-2] == 1:
                return scores, False
    return None


# the nodes a mask made from the inputs is followed back through (_from_inputs_alone)
MASK_NODES = 32


def _from_inputs_alone(graph: Graph, index: int) -> bool:
    """Whether node `index` is computed, within MASK_NODES nodes, from inputs and constants
    alone, by elementwise arithmetic and views: no parameter reaches it."""
    for count, node in enumerate(_walk_back(graph, [index], lambda n: True), 1):
        if count > MASK_NODES or node.params or node.kind not in (
                "input", "constant", "view", "scale", "shift", "elementwise", "add", "sub", "mul"):
            return False
    return True


# views that keep every value in its place: a sum through them can cancel a term
SAME_VALUES = ("detach", "clone", "contiguous", "to", "type", "type_as", "float", "double", "half", "bfloat16",
               "cpu", "cuda")
# nodes a linear form is followed through (_cancelled)
LINEAR_FORM_NODES = 16


def _cancelled(graph: Graph, index: int) -> tuple[int, float] | None:
    """(source, c) when a sum or difference, followed through sums, differences, scalings
    by a number and views that keep every value in its place (SAME_VALUES), is c times one
    node's value after the other terms cancel (x + (y - x).detach() is y); else None."""
    form: dict[int, float] = {}
    stack, seen = [(index, 1.0)], 0
    while stack:
        i, c = stack.pop()
        node = graph.nodes[i]
        seen += 1
        if seen > LINEAR_FORM_NODES:
            return None
        scalar = node.attrs.get("scalar")
        if node.kind in ("add", "sub") and len(node.inputs) == 2:
            alpha = float(node.attrs.get("alpha", 1.0))
            stack += [(node.inputs[0], c), (node.inputs[1], c * alpha * (1.0 if node.kind == "add" else -1.0))]
        elif node.kind == "scale" and len(node.inputs) == 1 and isinstance(scalar, (int, float)):
            stack.append((node.inputs[0], c * float(scalar)))
        elif (node.kind == "view" and node.attrs.get("op") in SAME_VALUES and len(node.inputs) == 1
              and node.shape == graph.nodes[node.inputs[0]].shape):
            stack.append((node.inputs[0], c))
        else:
            form[i] = form.get(i, 0.0) + c
    kept = [(i, c) for i, c in form.items() if abs(c) > 1e-12]
    return kept[0] if len(kept) == 1 and len(form) > 1 else None


def _own_mean(graph: Graph, node: Node) -> bool:
    """Whether a difference x - m has m, through views, the mean of x itself (through
    views) over some of its dims, kept as dims of one or leading (x - x.mean(0): a batch
    norm written out), so that it broadcasts back over the elements it averaged."""
    if len(node.inputs) != 2:
        return False
    mean = graph.nodes[_through_views(graph, node.inputs[1])]
    if mean.kind != "mean" or not mean.inputs:   # (a softmax's, a cat's or a cumsum's dim is one int)
        return False
    dims = mean.attrs.get("dim")
    back = bool(mean.attrs.get("keepdim")) or dims is None or tuple(dims) == tuple(range(len(dims)))
    return back and _through_views(graph, mean.inputs[0]) == _through_views(graph, node.inputs[0])


def _rotation(graph: Graph, node: Node) -> int | None:
    """x when `node` is x * c + r(x) * s with c and s tensors made in the forward pass
    and r(x) made from x by slices, negation and concatenation alone (rotary position
    embeddings' rotate_half), else None."""
    if node.kind != "add" or len(node.inputs) != 2:
        return None
    a, b = (_times_constant(graph, graph.nodes[i]) for i in node.inputs)
    if a is None or b is None or graph.nodes[a].shape != graph.nodes[b].shape:
        return None
    stack, seen = [b], set()
    while stack:
        index = stack.pop()
        if index == a or index in seen:
            continue
        seen.add(index)
        step = graph.nodes[index]
        rearranges = step.kind in ("view", "cat") or (step.kind == "elementwise" and step.attrs.get("op") == "neg")
        if not rearranges or not step.inputs or len(seen) > 16:
            return None
        stack.extend(step.inputs)
    return a


def _score_gains(graph: Graph) -> dict[int, tuple[float, str]]:
    """{layer node: (factor on its goal, why)} for the layers whose outputs are the
    queries and keys of attention scores whose scale s is above 1/sqrt(d) (T5 leaves
    it out, folding it into q's init): q kᵀ s, over d terms, has variance
    d s^2 nu_q nu_k, so q's and k's layers share the factor 1 / (s sqrt(d)) and the
    scores keep unit variance, down to 1/MAX_SCORE_GAIN. Unit q and k at s = 1 give
    scores of variance d, a softmax near one-hot whose gradient to q and k is
    sqrt(d) times the scaled one's (Vaswani et al. 2017, section 3.2.1). A scale
    below 1/sqrt(d) (muP's 1/d; torchvision's MaxViT, 1/sqrt(its width) over heads
    of 32) is the model's choice of a flatter softmax, which the attention rule
    follows: q and k are not raised, since a packed qkv layer would carry v and its
    output out of the forward's room with them."""
    gains: dict[int, tuple[float, str]] = {}
    for node in graph.nodes:
        if node.kind == "attention":
            head = graph.nodes[node.inputs[0]].shape[-1] if node.inputs else 0
            scale = node.attrs.get("scale")
            found = (node.inputs[:2], head, 1.0 / math.sqrt(head) if scale is None else float(scale)) if head else None
        elif node.kind == "matmul" and len(node.inputs) >= 2:
            after = _scores_scale(graph, node)
            found = None if after is None else (node.inputs[:2], int(node.attrs.get("inner", 1)), after)
        else:
            continue
        if found is None:
            continue
        operands, inner, scale = found
        layers = [_scaled_source(graph, i) for i in operands]
        if any(layer is None for layer in layers):
            continue
        for index, factor in cast("list[tuple[int, float]]", layers):
            scale *= factor
        exact = 1.0 / (abs(scale) * math.sqrt(inner)) if scale else MAX_SCORE_GAIN
        gain = min(max(exact, 1.0 / MAX_SCORE_GAIN), 1.0)
        if gain > 1.0 - 1e-3:
            continue
        bound = ("" if gain == exact else
                 f" (unit variance would take x{_g(exact)}, beyond the {MAX_SCORE_GAIN:g} allowed)")
        why = (f"; x{_g(gain)}: a query or key of attention scores scaled by {_g(scale)} over {inner} terms, not "
               f"1/sqrt({inner}), so the scores keep unit variance{bound}")
        for index, _ in cast("list[tuple[int, float]]", layers):
            gains[index] = (gain, why)
    return gains


def _scores_matmul(graph: Graph, softmax: Node) -> tuple[Node, float] | None:
    """(the matmul q k^T whose scores `softmax` reads, through an added bias or mask,
    views and scalings; the factor those scalings put on the scores' second moment),
    else None."""
    scores, factor = graph.nodes[softmax.inputs[0]], 1.0
    while scores.kind in ("add", "view", "scale") and scores.inputs:
        factor *= float(scores.attrs["scalar"]) ** 2 if scores.kind == "scale" else 1.0
        scores = graph.nodes[scores.inputs[0]]
    return (scores, factor) if scores.kind == "matmul" and len(scores.inputs) >= 2 else None


def _scores_scale(graph: Graph, matmul: Node) -> float | None:
    """The factor on q kᵀ when `matmul` makes the scores of a softmax over its last dim
    (through scalings, views, masks and an added bias), else None."""
    scale, node = 1.0, matmul
    for _ in range(16):
        readers = graph.readers(node.index)
        if len(readers) != 1:
            return None
        node = readers[0]
        if node.kind == "softmax":
            dim = node.attrs.get("dim")
            return scale if dim in (-1, len(node.shape) - 1) else None
        if node.kind == "scale":
            scale *= float(node.attrs["scalar"])
        elif node.kind not in ("view", "add", "shift"):
            return None
    return None


def _logit_biases(graph: Graph, score_gains: dict[int, tuple[float, str]]) -> dict[int, tuple[float, str]]:
    """{embedding node: (factor on its rows' second moment, why)} for the embeddings whose
    rows reach the model only as a bias added to attention scores (T5's relative position
    bias, through views and sums, to a softmax or as scaled_dot_product_attention's float
    mask) whose q's and k's layers take a factor below 1 (`_score_gains`): the bias takes
    the same, so it stays in line with the scores it is added to, and its output's std
    with q's and k's."""
    found: dict[int, tuple[float, str]] = {}
    for node in graph.nodes:
        if node.kind != "embedding":
            continue
        operands: list[int] = []   # the queries and keys of the scores it reaches
        stack, only_logits = [node.index], True
        while stack and only_logits:
            index = stack.pop()
            for reader in graph.readers(index):
                matmul = _scores_matmul(graph, reader) if reader.kind == "softmax" else None
                if matmul is not None:
                    operands += matmul[0].inputs[:2]
                elif reader.kind == "attention" and index not in reader.inputs[:3]:
                    operands += reader.inputs[:2]
                elif reader.kind in ("view", "add"):
                    stack.append(reader.index)
                else:
                    only_logits = False
        sources = [_scaled_source(graph, i) for i in operands] if only_logits else []
        gains = [score_gains[source[0]][0] for source in sources if source is not None and source[0] in score_gains]
        if gains:
            gain = min(gains)
            found[node.index] = (gain, f"embedding: rows of second moment {_g(gain)}, the factor the queries and "
                                       "keys of the attention scores it is added to take")
    return found


def _through_views(graph: Graph, index: int) -> int:
    """The node that node `index` is a view of (itself when it is not a view)."""
    while graph.nodes[index].kind == "view" and graph.nodes[index].inputs and (
            graph.nodes[index].attrs.get("op") != "pad"):
        index = graph.nodes[index].inputs[0]
    return index


def _parameter_free(graph: Graph) -> set[int]:
    """The nodes no parameter reaches: the example's inputs and what is computed from
    them and from constants alone."""
    free: set[int] = set()
    for node in graph.nodes:
        if node.kind != "param" and not node.params and all(i in free for i in node.inputs):
            free.add(node.index)
    return free


def _scaled_source(graph: Graph, index: int) -> tuple[int, float] | None:
    """(the layer node whose output node `index` is, the factor on it) through views,
    scalings, rotary embeddings and concatenations to an empty tensor (a key-value
    cache's first step), else None."""
    factor = 1.0
    for _ in range(16):
        node = graph.nodes[index]
        if node.kind in LAYERS:
            return node.index, factor
        rotated = _rotation(graph, node)
        filled = [i for i in node.inputs if math.prod(graph.nodes[i].shape or (1,)) > 0]
        if rotated is not None:
            index = rotated
        elif node.kind == "cat" and len(filled) == 1:
            index = filled[0]
        elif node.kind in ("view", "scale") and node.inputs and node.attrs.get("op") != "pad":
            factor *= float(node.attrs["scalar"]) if node.kind == "scale" else 1.0
            index = node.inputs[0]
        else:
            return None
    return None


def _times_constant(graph: Graph, node: Node) -> int | None:
    """The other operand when `node` multiplies it by a tensor made in the forward
    pass (a constant node: a random mask, a fixed factor), else None."""
    if node.kind != "mul" or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if graph.nodes[b].kind == "constant" and graph.nodes[a].kind != "constant":
        return a
    if graph.nodes[a].kind == "constant" and graph.nodes[b].kind != "constant":
        return b
    return None


def _branch_gain(graph: Graph, node: Node) -> tuple[str, int] | None:
    """(parameter name, the other operand) when `node` multiplies a signal by a
    parameter that holds one value per channel (a layer scale: shape (C,), (C, 1, 1),
    (1, 1, C)) or one value (ReZero's alpha, Bachlechner et al. 2020; SkipInit's,
    De & Smith 2020) and that nothing but such products reads (ReZero's alpha
    scales both branches of its layer), else None."""
    if node.kind != "mul" or len(node.inputs) != 2:
        return None
    for param_input, signal in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
        source = graph.nodes[param_input]
        # timm's ConvNeXt multiplies by gamma.reshape(1, -1, 1, 1): views read only here
        while source.kind == "view" and len(source.inputs) == 1 and len(graph.readers(source.index)) == 1:
            source = graph.nodes[source.inputs[0]]
        name = source.params.get("param") if source.kind == "param" else None
        if name is None or graph.nodes[signal].kind == "param":
            continue
        tensor = graph.params.get(name)
        if tensor is not None and sum(d > 1 for d in tensor.shape) <= 1 and _only_gains(graph, name):
            return name, signal
    return None


def _only_gains(graph: Graph, name: str) -> bool:
    """Whether every read of parameter `name` (through views read nowhere else) is a
    product with a signal: a gain, not a weight, a bias or a statistic's input."""
    def gain(index: int) -> bool:
        readers = graph.readers(index)
        return bool(readers) and all(
            gain(r.index) if r.kind == "view" and len(r.inputs) == 1 and len(readers) == 1
            else _times_signal(graph, r, index) for r in readers)
    uses = graph.uses.get(name, ())
    return bool(uses) and all(graph.nodes[i].kind == "param" and gain(i) for i in uses)


def _times_signal(graph: Graph, product: Node, operand: int) -> bool:
    """Whether `product` multiplies `operand` by one other operand that is no parameter."""
    return (product.kind == "mul" and len(product.inputs) == 2 and product.inputs.count(operand) == 1
            and all(graph.nodes[i].kind != "param" for i in product.inputs if i != operand))


def _shared_branch_notes(graph: Graph, anc: list[int], ends: dict[int, BranchEnd]) -> list[str]:
    """A note per weight that ends several residual branches: x + P(x) added again and
    again with the same P (CoaT's shared convolutional position encoding) compounds
    along P's largest directions, which branches solved as independent draws do not."""
    adds: dict[str, list[int]] = {}
    for index, end in sorted(ends.items()):
        name = graph.nodes[index].params.get("weight")
        if name is not None:
            adds.setdefault(name, []).append(end[2])
    notes = []
    for name, found in adds.items():
        # the additions one after another on a path: each reads what the one before wrote
        after = sum(1 for k in range(1, len(found)) if anc[found[k]] >> found[k - 1] & 1)
        if after:
            notes.append(f"the residual branch ending in {name} adds its output {after + 1} times along one "
                         "stream with the same weights: each addition's branch is correlated with the "
                         "others, so the stream's growth compounds, which the solve (each branch an "
                         "independent draw) does not model")
    return notes


def _stream_reader(graph: Graph, modules: dict[str, torch.nn.Module], stream: int) -> str | None:
    """The name of a leaf module whose input is the stream node (or a
    MultiheadAttention whose query it is), reached through views of it and
    concatenations of those (Swin's patch merging), or None."""
    sources = {stream}
    for node in graph.nodes:
        if not node.inputs or node.inputs[0] not in sources:
            continue
        module = modules.get(node.module)
        if (node.kind == "view" and node.attrs.get("op") != "pad") or (
                node.kind == "cat" and all(i in sources for i in node.inputs)):
            sources.add(node.index)   # also MultiheadAttention's batch_first transpose of the query
        elif module is not None and node.module and (
                not list(module.children())
                or (node.kind in ("norm",) + LAYERS and isinstance(module, torch.nn.MultiheadAttention))):
            # a leaf module whose forward reads the stream first: a norm or a layer, or an
            # RMSNorm written out (x.pow(2).mean(-1), Hugging Face's Llama); its input is the stream
            return node.module
    return None


def holds_values(model: torch.nn.Module, example_inputs: ExampleInputs | None) -> bool:
    """True when the model and every example input are tensors with values (none on meta)."""
    inputs = flat_inputs(example_inputs)
    return (all(isinstance(t, torch.Tensor) and not t.is_meta for t in inputs)
            and not any(p.is_meta for p in model.parameters()))


def flat_inputs(example_inputs: object) -> list[Any]:
    """The example inputs as a list: a tensor, a tuple or list of them, or a dict's values."""
    if isinstance(example_inputs, torch.Tensor):
        return [example_inputs]
    if isinstance(example_inputs, dict):
        return list(example_inputs.values())
    if isinstance(example_inputs, (tuple, list)):
        return list(example_inputs)
    return [example_inputs]


def batch_statistics(node: Node) -> bool:
    """Whether a norm node subtracts each channel's mean over the batch and positions
    (BatchNorm in training mode, InstanceNorm over positions)."""
    return node.attrs.get("which") in ("batch_norm", "instance_norm") and bool(node.attrs.get("training", True))


def _floats_reaching(graph: Graph) -> int:
    """A bit per node whose floating values reach an output through floating values: a
    router's float mask read as .bool() (DeepSeek's group mask), a histogram of expert ids
    turned into integer offsets, reach none."""
    reaching = 0
    for out in graph.outputs:
        reaching |= 1 << out
    for node in reversed(graph.nodes):
        if (reaching >> node.index) & 1 and node.dtype.is_floating_point:
            for i in node.inputs:
                reaching |= 1 << i
    return reaching


def _ancestors(graph: Graph) -> list[int]:
    """Per node, a bit set (a Python int) of the nodes it depends on."""
    anc: list[int] = []
    for node in graph.nodes:
        bits = 0
        for i in node.inputs:
            bits |= anc[i] | (1 << i)
        anc.append(bits)
    return anc


def _walk_back(graph: Graph, starts: Iterable[int], through: Callable[[Node], bool]) -> Iterator[Node]:
    """Each node reached from `starts` back through the inputs of the nodes `through`
    accepts, once."""
    stack, seen = list(starts), set()
    while stack:
        node = graph.nodes[stack.pop()]
        if node.index in seen:
            continue
        seen.add(node.index)
        yield node
        if through(node):
            stack.extend(node.inputs)


def _read_as_scores_only(graph: Graph, index: int, within: int, consumer: Node, scores: int, live: int) -> bool:
    """Whether every live use of node `index` passes through the nodes in `within` (the
    scores' ancestors), none a norm or a statistic of it, into `consumer` as one of its
    first `scores` inputs."""
    stack, seen = [index], set()
    while stack:
        here = stack.pop()
        if here in seen:
            continue
        seen.add(here)
        for reader in graph.readers(here):
            if reader.index == consumer.index:
                if here in consumer.inputs[scores:]:
                    return False
            elif (within >> reader.index) & 1:
                if reader.kind in REDUCTIONS + ("norm",):   # normalized on the way (QK-norm): its scale is undone
                    return False
                stack.append(reader.index)
            elif (live >> reader.index) & 1:
                return False
    return True


def _is_layer(node: Node) -> bool:
    return node.kind in LAYERS + EMBEDDINGS + ("norm", "rnn")


def _residuals(graph: Graph, anc: list[int]) -> tuple[dict[int, BranchEnd], dict[int, int]]:
    """(branch end node -> (stream node, chain length L, the addition, the chain's first stream))
    for every residual addition."""
    layer_bits = 0
    for node in graph.nodes:
        if _is_layer(node):
            layer_bits |= 1 << node.index
    residual: dict[int, tuple[int, int]] = {}     # add node -> (stream, branch)
    for node in graph.nodes:
        if node.kind != "add" or len(node.inputs) != 2:
            continue
        a, b = node.inputs
        # a stream has the sum's shape: an operand broadcast over it (RevIN's y * std + mean, the
        # mean of each series added back to a forecast) is no stream, however it was computed
        whole = [i for i in node.inputs if math.prod(graph.nodes[i].shape) == math.prod(node.shape)]
        for stream, branch in ((a, b), (b, a)):
            if stream not in whole:
                continue
            # a shortcut scaled per channel or by a number (timm's MetaFormer res_scale, x * gamma + f(x))
            # is the stream: the branch reads what it scales
            source = _scaled_shortcut(graph, stream)
            through_layer = anc[branch] & ~anc[source] & layer_bits or (_is_layer(graph.nodes[branch]))
            if (anc[branch] >> source) & 1 and through_layer or _projection(graph, anc, stream, branch):
                residual[node.index] = (stream, branch)
                break
        else:
            # a layer's output from elsewhere added to a residual stream (TNT adds its pixel
            # stream's projection to the patch stream in every block) grows it as a branch does
            for stream, branch in ((a, b), (b, a)):
                end = graph.nodes[_branch_end(graph, branch)]
                if (stream in whole and _chain_before(graph, residual, stream) is not None and _is_layer(end)
                        and not (anc[stream] >> branch) & 1):
                    residual[node.index] = (stream, branch)
                    break
    parent = {i: i for i in residual}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for index, (stream, _) in residual.items():
        before = _chain_before(graph, residual, stream)
        if before is not None:
            parent[find(index)] = find(before)
    sizes: dict[int, int] = {}
    # per addition, its branch's ends: parallel branches summed before the stream each count
    parts = {i: _parallel_ends(graph, anc, stream, _branch_end(graph, branch, anc, stream))
             for i, (stream, branch) in residual.items()}
    for i in residual:
        sizes[find(i)] = sizes.get(find(i), 0) + len(parts[i])
    first: dict[int, int] = {}   # chain root -> the stream entering its first block
    last: dict[int, int] = {}    # chain root -> its last addition
    for index in sorted(residual):
        first.setdefault(find(index), residual[index][0])
        last[find(index)] = index
    ends: dict[int, BranchEnd] = {}
    for index, (stream, branch) in residual.items():
        for j in parts[index]:
            if graph.nodes[j].kind in LAYERS + ("norm",) or _branch_gain(graph, graph.nodes[j]) is not None:
                root = find(index)
                ends[j] = (stream, sizes[root], index, first[root], _reaches_output(graph, last[root]))
    return ends, sizes


def _parallel_ends(graph: Graph, anc: list[int], stream: int, end: int) -> list[int]:
    """The ends of parallel branches of `stream` summed before they join it (GPT-J's and
    Falcon's attention and MLP, both read from one norm: attn(x) + mlp(x) + x), each
    through views, dropout and scalings, when every one is computed from the stream; else
    [end] (a sum with another stream's branch: CoaT's scales). Each is a branch of the
    chain, as if it were added on its own."""
    node = graph.nodes[end]
    if node.kind != "add" or len(node.inputs) != 2:
        return [end]
    found = [j for i in node.inputs for j in _parallel_ends(graph, anc, stream, _branch_end(graph, i, anc, stream))]
    return found if all((anc[j] >> stream) & 1 for j in found) else [end]


def _branch_end(graph: Graph, branch: int, anc: list[int] | None = None, stream: int | None = None) -> int:
    """The node a residual branch's output comes from, through views, dropout, scalings
    and stochastic-depth masks (Huang et al. 2016), which scale the branch they drop;
    given the stream and the ancestors, also through a gate not computed from the stream
    (DiT's adaLN-Zero: x + gate(c) * attn(x), Peebles & Xie 2023)."""
    j = branch
    while True:
        node = graph.nodes[j]
        if node.kind in BRANCH_PASS and node.inputs:
            j = node.inputs[0]
        elif (masked := _times_constant(graph, node)) is not None:
            j = masked
        elif anc is not None and stream is not None and (
                gated := _times_condition(graph, anc, stream, node)) is not None:
            j = gated
        else:
            return j


def _times_condition(graph: Graph, anc: list[int], stream: int, node: Node) -> int | None:
    """The operand computed from `stream` when `node` multiplies it by a smaller tensor,
    broadcast over it, that is not computed from the stream (a gate per sample and channel
    made from a condition), else None."""
    if node.kind != "mul" or len(node.inputs) != 2:
        return None
    for signal, factor in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
        source = graph.nodes[_through(graph, factor, ("view",))]   # a layer scale read as gamma.reshape(1, -1)
        from_stream = (anc[signal] >> stream) & 1 or signal == stream
        if (from_stream and factor != stream and not (anc[factor] >> stream) & 1
                and source.kind not in ("param", "constant") and factor not in graph.fixed
                and math.prod(graph.nodes[factor].shape) < math.prod(graph.nodes[signal].shape)):
            return signal
    return None


def _scaled_shortcut(graph: Graph, index: int) -> int:
    """The node a shortcut scales, through a product with a parameter broadcast per channel
    (`_affine_operand`) or a number, and views; `index` itself where nothing scales it."""
    j, scaled = index, False
    while True:
        node = graph.nodes[j]
        if node.kind in ("scale", "view") and len(node.inputs) == 1 and node.attrs.get("op") != "pad":
            j, scaled = node.inputs[0], scaled or node.kind == "scale"
        elif node.kind == "mul" and (through := _affine_operand(graph, node)) is not None:
            j, scaled = through, True
        else:
            return j if scaled else index


def _chain_before(graph: Graph, residual: dict[int, tuple[int, int]], stream: int) -> int | None:
    """The residual addition whose output `stream` is, through ops that pass a stream on
    (views, activations, dropout, scalings) and concatenations, along their largest
    operand (TNT's cat of the class token and the patch tokens); else None."""
    j = stream
    while j not in residual:
        node = graph.nodes[j]
        if node.kind == "cat" and node.inputs:
            j = max(node.inputs, key=lambda i: math.prod(graph.nodes[i].shape))
        elif node.kind in STREAM_PASS and node.inputs:
            j = node.inputs[0]
        elif (through := _affine_operand(graph, node)) is not None:
            j = through
        else:
            return None
    return j


# x / (the sum of x): (m, q, the nodes from the sum to the divisor), see _own_sum
OwnSum = tuple[float, float, list[int]]


def _own_sum(graph: Graph, node: Node) -> OwnSum | None:
    """For x / x.sum(dim, keepdim=True), or x over the sum of its segments gathered back
    (a softmax over each node's edges written with scatter_add and index_select: PyTorch
    Geometric's softmax): (m, q, the nodes from the sum to the divisor), else None. A share
    of a sum of n entries has mean 1/n and second moment about r/n^2 (r = nu / mu^2 of the
    entries); over segments of c_i entries, averaged over the entries, 1/m = P(c > 0) / E[c]
    and 1/q = E[1/c; c > 0] / E[c], the expectations over the segments."""
    if node.kind != "div" or len(node.inputs) != 2:
        return None
    x, total = node.inputs
    path = [total]
    summed = graph.nodes[total]
    # a segment sum comes back to the entries through an index (and a tiny guard: + 1e-16)
    while summed.kind == "view" and len(summed.inputs) > 1 or (
            summed.kind == "shift" and abs(float(summed.attrs.get("scalar", 1.0))) < 1e-6):
        summed = graph.nodes[summed.inputs[0]]
        path.append(summed.index)
    a = summed.attrs
    if summed.kind == "sum" and summed.inputs == [x] and a.get("keepdim"):
        dims = a.get("dim") or range(len(graph.nodes[x].shape))
        n = float(math.prod(graph.nodes[x].shape[d] for d in dims))
        return n, n * n, path
    if (summed.kind == "scatter" and summed.inputs[1] == x and a.get("zeros_before")
            and a.get("reduce", "sum") == "sum" and a.get("counts", 0) > 0 and a.get("inverse", 0) > 0):
        return a["counts"] / a["written"], a["counts"] / a["inverse"], path
    return None


def _own_sum_parts(graph: Graph, own_sums: dict[int, OwnSum]) -> set[int]:
    """The nodes of every x / (sum of x) (`own_sums`, by `_own_sum`): the sums and what takes
    them to the divisors, and each x read by nothing else (a softmax's exp): not activations."""
    parts: set[int] = set()
    for index, own in own_sums.items():
        parts.update(own[2])
        x = graph.nodes[index].inputs[0]
        if all(r.index == index or r.index in own[2] or (r.kind == "view" and r.inputs[0] != x)
               for r in graph.readers(x)):     # (a view that reads x's shape alone: index.expand_as(x))
            parts.add(x)
    return parts


def _layer_before(graph: Graph, index: int) -> int:
    """The layer node a node's value comes from along its first operands (itself if none):
    an activation stepped again and again over one layer's output (a recurrence unrolled in
    forward: RWKV's time steps) follows one layer."""
    node = graph.nodes[index]
    while node.kind not in LAYERS and node.inputs:
        node = graph.nodes[node.inputs[0]]
    return node.index if node.kind in LAYERS else index


def _scales_channels(graph: Graph, index: int) -> bool:
    """Whether a node's value, through views (a reshape to (B, C, 1, 1)), only multiplies
    products it broadcasts to (`_broadcast_factor`)."""
    readers = graph.readers(index)
    return bool(readers) and all(
        _scales_channels(graph, r.index) if r.kind == "view" and r.inputs[0] == index
        else _broadcast_factor(graph, r, index) for r in readers)


def _scale_free(g: Fused) -> bool:
    """Whether g is positively homogeneous, g(2 x) = 2^k g(x) for one k on both signs
    (ReLU, leaky ReLU, relu(x)^2): its verdict does not depend on its input's scale."""
    if isinstance(g, tuple):
        return g[0] in HOMOGENEOUS_ACTIVATIONS
    points = np.concatenate([-np.logspace(-3, 3, 25), np.logspace(-3, 3, 25)])
    try:
        with np.errstate(all="ignore"):
            once, twice = np.asarray(g(points), dtype=np.float64), np.asarray(g(2.0 * points), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    if once.shape != points.shape or twice.shape != points.shape:
        return False
    moved = np.abs(once) > 1e-12
    if not moved.any() or np.any(np.abs(twice[~moved]) > 1e-12):
        return False
    with np.errstate(all="ignore"):   # exp overflows at 2e3: inf / inf
        ratios = twice[moved] / once[moved]
    return bool(np.all(np.isfinite(ratios)) and np.ptp(ratios) <= 1e-6 * abs(float(ratios[0])))


def _larger_of_two(graph: Graph, node: Node) -> bool | None:
    """For where(x >= y, x, y) of two signals (torch.maximum as the trace records it; >
    too): True; for the minimum (<=, <, or the comparison's operands swapped): False;
    else None."""
    if node.kind != "elementwise" or node.attrs.get("op") != "where" or len(node.inputs) != 3:
        return None
    x, y, condition = node.inputs
    test = graph.nodes[condition]
    if test.kind != "elementwise" or test.attrs.get("op") not in ("ge", "gt", "le", "lt") or x == y:
        return None
    if test.inputs == [x, y]:
        return test.attrs["op"] in ("ge", "gt")
    if test.inputs == [y, x]:
        return test.attrs["op"] in ("le", "lt")
    return None


def _summed_dims(node: Node) -> tuple[int, ...]:
    """The dims a sum or running sum adds over (one for a cumsum), () for any other node
    or a sum over every dim."""
    if node.kind not in ("cumsum", "sum") or not node.inputs:
        return ()
    dims = node.attrs.get("dim")
    return (dims,) if isinstance(dims, int) else tuple(dims or ())


def _over_positions_only(graph: Graph, node: Node) -> bool:
    """Whether a sum or running sum adds over dims before its input's last two only (the
    positions of u_j v_j^T, whose columns it keeps whole)."""
    dims = _summed_dims(node)
    return bool(dims) and all(d < len(graph.nodes[node.inputs[0]].shape) - 2 for d in dims)


def _outer_operands(graph: Graph, index: int) -> tuple[int, int] | None:
    """(u, v) when node `index` is the product u v^T of u (..., F, 1) and v (..., 1, E),
    F and E above 1; else None."""
    node = graph.nodes[index]
    if node.kind != "mul" or len(node.inputs) != 2 or len(node.shape) < 2:
        return None
    shapes = [graph.nodes[i].shape for i in node.inputs]
    if any(len(s) < 2 for s in shapes) or node.shape[-1] < 2 or node.shape[-2] < 2:
        return None
    columns = [i for i, s in zip(node.inputs, shapes) if s[-1] == 1 and s[-2] == node.shape[-2]]
    rows = [i for i, s in zip(node.inputs, shapes) if s[-2] == 1 and s[-1] == node.shape[-1]]
    return (columns[0], rows[0]) if len(columns) == 1 and len(rows) == 1 else None


def _einsum_contraction(equation: str) -> tuple[int | None, int | None] | None:
    """For a two-operand einsum summing over one letter: that letter's place in each
    operand counted from the end when it is one of the last two (-1 or -2), else None
    for that operand; None when the sum runs over no letter or several."""
    terms, out = einsum_terms(equation)
    if len(terms) != 2:
        return None
    summed = [letter for letter in terms[0] if letter.isalpha() and letter in terms[1] and letter not in out]
    if len(summed) != 1:
        return None

    def from_end(term: str) -> int | None:
        tail = term.split("...")[-1]
        place = tail.find(summed[0]) - len(tail)
        return place if tail.find(summed[0]) >= 0 and place >= -2 else None

    return from_end(terms[0]), from_end(terms[1])


def _broadcast_factor(graph: Graph, product: Node, operand: int) -> bool:
    """Whether `operand` is a factor of the product `product` that broadcasts to it, one
    value for many of its elements (a squeeze-and-excitation gate over the positions),
    expanded to its shape or not (`y.expand_as(x)`)."""
    if product.kind != "mul" or operand not in product.inputs:
        return False
    node = graph.nodes[operand]
    while node.kind == "view" and node.attrs.get("op") in _EXPANDS and node.inputs:
        node = graph.nodes[node.inputs[0]]
    return math.prod(node.shape) < math.prod(product.shape)


# the views that repeat their input's elements without copying them
_EXPANDS = ("expand", "expand_as", "broadcast_to")


def _mean_by_count(graph: Graph, node: Node) -> int | None:
    """For s / c, s a sum of the elements that land on each element (scatter_add into
    zeros) and c (through views and a clamp) the count of them (ones scattered the same
    way: the same landing), the scatter node of s; else None."""
    if node.kind != "div" or len(node.inputs) != 2:
        return None
    summed, count = (_through(graph, i, ("view",)) for i in node.inputs)
    count = _through(graph, count, ("view", "elementwise"))
    s, c = graph.nodes[summed], graph.nodes[count]
    if not (s.kind == c.kind == "scatter" and s.attrs.get("zeros_before") and c.attrs.get("zeros_before")
            and s.attrs.get("reduce", "sum") == c.attrs.get("reduce", "sum") == "sum" and count in graph.fixed
            and summed not in graph.fixed):
        return None
    ones = graph.nodes[c.inputs[1]].attrs.get("values")
    if ones is not None and not (ones[0] == 1.0 and ones[1] == 1.0):
        return None
    same = all(math.isclose(s.attrs[k], c.attrs[k], rel_tol=1e-9, abs_tol=1e-12) for k in ("counts", "counts_sq"))
    return summed if same else None


def _through(graph: Graph, index: int, kinds: tuple[str, ...]) -> int:
    """The node `index` reads through single-input nodes of these kinds."""
    node = graph.nodes[index]
    while node.kind in kinds and len(node.inputs) == 1:
        node = graph.nodes[node.inputs[0]]
    return node.index


# the ops that take attention scores to their softmax: shapes, sums, scalings, biases, masks
_TO_SCORES = ("view", "sum", "scale", "shift", "add", "sub", "mul", "div", "elementwise", "dropout", "scatter")


def _scores(graph: Graph, normalizing: set[int], own_sums: dict[int, OwnSum]) -> set[int]:
    """The nodes whose value reaches the model only as logits of a softmax (a softmax
    node, or one written out: `_own_sum_parts`), through shapes, sums, scalings and
    biases: q_i * k_j summed over the features sets attention weights that sum to one,
    not a gate's scale."""
    found: set[int] = set()
    for node in reversed(graph.nodes):
        readers = graph.readers(node.index)
        if readers and all(r.kind == "softmax" or r.index in normalizing or r.index in found
                           or (own := own_sums.get(r.index)) is not None and node.index not in own[2]
                           or r.kind == "view" and r.inputs[0] != node.index    # reads the shape alone
                           for r in readers):
            found.add(node.index)
    return {i for i in found if graph.nodes[i].kind in _TO_SCORES + ("softmax",)}


def _affine_operand(graph: Graph, node: Node) -> int | None:
    """The operand a product or sum with parameters passes on (x * w + b with per-channel
    w and b: MobileBERT's NoNorm in place of a LayerNorm), else None."""
    if node.kind not in ("mul", "add") or len(node.inputs) != 2:
        return None
    fixed = [graph.nodes[i].kind == "param" or i in graph.computed for i in node.inputs]
    return node.inputs[fixed.index(False)] if fixed.count(True) == 1 else None


def _shortcut_source(graph: Graph, shortcut: int) -> int | None:
    """The input of the one layer that `shortcut` is (with a norm after it), else None."""
    node = graph.nodes[shortcut]
    if node.kind == "norm" and node.inputs:
        node = graph.nodes[node.inputs[0]]
    return node.inputs[0] if node.kind in LAYERS and node.inputs else None


def _projection(graph: Graph, anc: list[int], shortcut: int, branch: int) -> bool:
    """Whether `shortcut` is one layer (and a norm after it) applied to a signal from
    which `branch` goes through two layers or more: the projection shortcut of a block
    that changes the shape (He et al. 2016), the stream of its residual addition."""
    source = _shortcut_source(graph, shortcut)
    if source is None or (anc[branch] >> shortcut) & 1 or not (anc[branch] >> source) & 1:
        return False
    return sum(1 for j in _between(anc, source, branch) if graph.nodes[j].kind in LAYERS) >= 2


def _between(anc: list[int], origin: int, end: int) -> Iterator[int]:
    """The nodes on a path from `origin` (excluded) to `end` (included), in order."""
    for j in range(origin + 1, end + 1):
        if (j == end or (anc[end] >> j) & 1) and (anc[j] >> origin) & 1:
            yield j


def _reaches_output(graph: Graph, index: int) -> bool:
    """True when the node's value is a model output, through views and elementwise ops."""
    while index not in graph.outputs:
        consumers = graph.readers(index)
        if len(consumers) != 1 or (consumers[0].kind not in STREAM_PASS
                                   and _affine_operand(graph, consumers[0]) != index):
            return False
        index = consumers[0].index
    return True


def _sharing_layers(graph: Graph, ends: dict[int, BranchEnd]) -> dict[int, int]:
    """{inner layer: branch end} for layer-ended branches: the layer whose only consumer
    leads to the end layer's input through dropout, views and one elementwise region
    (an MLP's first layer), in a chain whose stream is the model's output, or reading a
    norm (a pre-LN block's MLP: the norm sets its input's scale, not the stream). A
    norm-free branch of a closed chain (a ResNet without norms) keeps its inner layer
    at the target: it reads the stream's scale, and at the branch's it would sit
    below the stream's other readers (act 1.95 -> 2.13 on the zoo's)."""
    sharing: dict[int, int] = {}
    for end, (_, _, _, _, open_end) in ends.items():
        node = graph.nodes[end]
        if node.kind not in LAYERS or not node.inputs:
            continue
        source, region = node.inputs[0], set[int]()
        while True:
            while graph.nodes[source].kind in BRANCH_PASS and graph.nodes[source].inputs:
                source = graph.nodes[source].inputs[0]
            fused = None if region else rules.fuse(graph, source)
            if fused is None:
                break
            region = set(rules.region_nodes(graph, fused[0], source))
            source = fused[0]
        # read once, or only inside the one region (CLIP's quick GELU, x * sigmoid(1.702 x), reads x twice)
        readers = {r.index for r in graph.readers(source)}
        if graph.nodes[source].kind in LAYERS and (len(readers) == 1 or (region and readers <= region)) and (
                open_end or _reads_norm(graph, source)):
            sharing[source] = end
    return sharing


def _reads_norm(graph: Graph, index: int) -> bool:
    """Whether layer node `index` reads a norm's output (through dropout, views, scalings)."""
    inputs = graph.nodes[index].inputs
    return bool(inputs) and graph.nodes[_through(graph, inputs[0], BRANCH_PASS)].kind == "norm"


def _stream_budget(length: int, open_end: bool) -> float:
    """How many times a chain of `length` residual blocks may raise its stream's second moment."""
    if open_end:
        return max(OPEN_STREAM_BUDGET, min(1.0 + OPEN_BRANCH_SHARE * length, MAX_OPEN_STREAM_BUDGET))
    return min(max(STREAM_BUDGET, 1.0 + length / 3.0), MAX_STREAM_BUDGET)


def _layer_uses(graph: Graph, name: str | None) -> list[int]:
    uses = graph.uses.get(name, ()) if name is not None else ()
    return [i for i in uses if graph.nodes[i].kind in LAYERS + EMBEDDINGS]


def _deciding_uses(graph: Graph) -> dict[str, int]:
    """Each weight's deciding use: its last layer use (nearest the output)."""
    deciding: dict[str, int] = {}
    for name in graph.params:
        uses = _layer_uses(graph, name)
        if uses:
            deciding[name] = max(uses)
    return deciding


def _free_gain_before(graph: Graph, index: int) -> str | None:
    """The gain of the norm a layer node reads through views and ReLU-like activations
    (which carry its scale), if no other node uses it, else None. The gain of a norm
    written out is the one-dimensional parameter that multiplies its output (Hugging Face's
    RMSNorm: weight * x)."""
    j = graph.nodes[index].inputs[0] if graph.nodes[index].inputs else None
    while j is not None and graph.nodes[j].inputs and (graph.nodes[j].kind == "view" or (
            graph.nodes[j].kind == "elementwise" and graph.nodes[j].attrs.get("op") in HOMOGENEOUS_ACTIVATIONS)):
        j = graph.nodes[j].inputs[0]
    if j is None:
        return None
    node = graph.nodes[j]
    if node.kind == "norm":
        gamma = node.params.get("weight")
    elif node.kind == "mul" and len(node.inputs) == 2:
        gains = [_viewed_param(graph, i) for i in node.inputs]
        gamma = gains[0] or gains[1] if (gains[0] is None) != (gains[1] is None) else None
        if gamma is not None and len(graph.params[gamma].shape) != 1:
            gamma = None
    else:
        return None
    return gamma if gamma is not None and len(graph.uses.get(gamma, ())) == 1 else None


def _param_stream_starts(graph: Graph, firsts: set[int]) -> set[int]:
    """The parameter nodes that a residual chain starts from, alone through views (an
    expand to the batch)."""
    return {first for first in (_viewed_param_node(graph, i) for i in firsts) if first is not None}


def _viewed_param_node(graph: Graph, index: int) -> int | None:
    """The parameter node a node is (through views: a cast, an expand), else None."""
    found = _through(graph, index, ("view",))
    return found if graph.nodes[found].kind == "param" else None


def _viewed_param(graph: Graph, index: int) -> str | None:
    """The parameter a node is (through views: a cast), else None."""
    found = _viewed_param_node(graph, index)
    return None if found is None else graph.nodes[found].params.get("param")


def _tied_heads(graph: Graph, deciding: dict[str, int]) -> dict[str, int]:
    """{weight: head node} for every weight first used as an embedding and decided by
    its use as a linear layer (a head tied to the embedding)."""
    heads: dict[str, int] = {}
    for name, last in deciding.items():
        uses = _layer_uses(graph, name)
        if len(uses) >= 2 and graph.nodes[min(uses)].kind == "embedding" and graph.nodes[last].kind == "linear":
            heads[name] = last
    return heads


def _tied_head_gains(graph: Graph, deciding: dict[str, int]) -> dict[int, str]:
    """{head node: gamma name} for every tied head (_tied_heads) reading a norm whose
    gain is used nowhere else."""
    gains = {head: _free_gain_before(graph, head) for head in _tied_heads(graph, deciding).values()}
    return {head: gamma for head, gamma in gains.items() if gamma is not None}


def _weight_norm_gain(node: Node) -> str | None:
    names = node.attrs.get("weight_from") or []
    return next((n for n in names if n.endswith(("original0", "weight_g"))), None)


def _solved_rnn(module: Any, x: Moments, node: Node, target: float) -> tuple[
        Moments, dict[str, tuple[float, float, float]], dict[str, tuple[float, float, float]]]:
    """A recurrent module layer by layer: each layer's input weights (every gate
    block) solved so the input's share of a gate's preactivation has second
    moment `target` for that layer's measured input, under varinit's recurrent
    rules for the rest, and a layer's gate offset where its output is low
    (_gate_offset). Returns the output moments, {weight_ih name: (std, fan_in,
    nu_in)} and {bias_hh name: (offset, the output's root mean square without
    it, with it)} for the layers that take one; measured on float64
    single-layer copies, since gates are saturating products no closed form
    follows."""
    g = torch.Generator().manual_seed(0)
    shape = list(node.shape)
    batch_axis = 0 if module.batch_first else 1
    shape[batch_axis] = min(shape[batch_axis], 64)
    shape[-1] = module.input_size
    sample = _gaussian(x, shape, g)
    directions = ("", "_reverse")[:2 if module.bidirectional else 1]
    solved: dict[str, tuple[float, float, float]] = {}
    offsets: dict[str, tuple[float, float, float]] = {}
    for layer in range(module.num_layers):
        kwargs = {"input_size": sample.shape[-1], "hidden_size": module.hidden_size, "num_layers": 1,
                  "bias": module.bias, "batch_first": module.batch_first, "bidirectional": module.bidirectional}
        if getattr(module, "proj_size", 0):
            kwargs["proj_size"] = module.proj_size
        probe = _recurrent_probe(type(module), **kwargs)
        nu = float((sample * sample).mean())
        fan_in = sample.shape[-1]
        std = _input_weight_std(target, fan_in, nu)
        with torch.no_grad():
            for suffix in directions:
                getattr(probe, f"weight_ih_l0{suffix}").normal_(0.0, std, generator=g)
                solved[f"weight_ih_l{layer}{suffix}"] = (std, fan_in, nu)
            out = probe(sample)[0]
            if module.mode in SOLVED_GATES and module.bias:
                before = _rms(out)
                offset, out = _gate_offset(probe, module.mode, sample, batch_axis, out, directions, target)
                for suffix in directions if offset else ():
                    offsets[f"bias_hh_l{layer}{suffix}"] = (offset, before, _rms(out))
            sample = out
    return Moments(float(sample.mean()), float((sample * sample).mean())), solved, offsets


def _gate_offset(probe: Any, mode: str, sample: torch.Tensor, batch_axis: int, out: torch.Tensor,
                 directions: tuple[str, ...], target: float) -> tuple[float, torch.Tensor]:
    """The offset of a recurrent layer's SOLVED_GATES gate (in bias_hh) and the
    layer's output with it: 0 when the output's root mean square (its std about
    zero) is at least GATED_OUTPUT_FLOOR * sqrt(target), else the smallest up to
    GATE_OFFSET_CAP in size that brings it there, by bisection on the probe. An LSTM's cell fills
    from c_0 = 0 as c_t = f c_(t-1) + i g, so over a short sequence, or on a
    first layer whose inputs are independent step to step, h = o * tanh(c)
    stays near std 0.3 to 0.4 at i = sigmoid(0); a GRU's h near 0.5, half of it
    the old state's. The offset opens the LSTM's input gate or closes the
    GRU's update gate, so more of the new candidate reaches h."""
    floor = GATED_OUTPUT_FLOOR * math.sqrt(target)
    if _rms(out) >= floor:
        return 0.0, out
    sign = SOLVED_GATES[mode][1]
    # the bisection on a few sequences of the sample (a long one costs a pass per step)
    part = sample.narrow(batch_axis, 0, min(OFFSET_BATCH, sample.shape[batch_axis])) if sample.dim() == 3 else sample

    def output(size: float, x: torch.Tensor) -> torch.Tensor:
        for suffix in directions:
            write_gate_offset(getattr(probe, f"bias_hh_l0{suffix}"), mode, sign * size)
        result: torch.Tensor = probe(x)[0]
        return result

    size = _smallest_offset(lambda size: _rms(output(size, part)), floor)
    return sign * size, output(size, sample)   # the probe left at the offset chosen


def _cell_gate_offset(probe: Any, steps: int, x: Moments, shape: tuple[int, ...],
                      target: float) -> tuple[float, float, float] | None:
    """A cell's _gate_offset over the loop that calls it `steps` times, on inputs drawn
    independently at each step with the first step's moments: (offset, output std
    without it, with it), or None when the output needs none. The probe keeps the
    offset, so each step is then measured with it."""
    mode = recurrent_mode(probe)
    if mode not in SOLVED_GATES or not probe.bias:
        return None
    g = torch.Generator().manual_seed(0)
    size = [min(shape[0], OFFSET_BATCH), *shape[1:]] if len(shape) > 1 else list(shape)
    inputs = [_gaussian(x, size, g) for _ in range(steps)]
    sign = SOLVED_GATES[mode][1]

    def rms_at(offset: float) -> float:
        write_gate_offset(probe.bias_hh, mode, sign * offset)
        state: Any = None
        outputs = []
        for step in inputs:
            state = probe(step, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return _rms(torch.stack(outputs))

    with torch.no_grad():
        probe.weight_ih.normal_(0.0, _input_weight_std(target, probe.input_size, float((inputs[0] ** 2).mean())),
                                generator=g)
        before = rms_at(0.0)
        floor = GATED_OUTPUT_FLOOR * math.sqrt(target)
        if before >= floor:
            return None
        offset = _smallest_offset(rms_at, floor)
        return sign * offset, before, rms_at(offset)


def _smallest_offset(rms_at: Callable[[float], float], floor: float) -> float:
    """The smallest size in [0, GATE_OFFSET_CAP] at which rms_at(size) reaches `floor`,
    by OFFSET_STEPS steps of bisection (the cap where even it does not); rms_at leaves
    the probe at the size it was last called with."""
    low, high = 0.0, GATE_OFFSET_CAP
    if rms_at(high) > floor:
        for _ in range(OFFSET_STEPS):
            middle = 0.5 * (low + high)
            if rms_at(middle) >= floor:
                high = middle
            else:
                low = middle
    return high


def _rms(t: torch.Tensor) -> float:
    return math.sqrt(float((t * t).mean()))


# what bounds a recurrent layer's output below 1 (a ReLU RNN's is not bounded)
_BOUNDED_STATES: dict[str, str] = {"LSTM": "h = o * tanh(c)", "GRU": "h = (1 - z) * n + z * h_prev, n = tanh(.)",
                                   "RNN_TANH": "h = tanh(W x + U h_prev)"}


def _recurrent_probe(cls: type[torch.nn.Module], *args: Any, **kwargs: Any) -> torch.nn.Module:
    """A float64 recurrent layer or cell of class `cls`, in eval mode, under varinit's
    recurrent rules (init_by_structure)."""
    probe = cls(*args, **kwargs).to(torch.float64).train(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        init_by_structure(probe, generator=0)
    return probe


def _cell_probe(module: Any) -> torch.nn.Module:
    """The probe of an RNNCell, GRUCell or LSTMCell: its sizes, bias and nonlinearity."""
    extra = {"nonlinearity": module.nonlinearity} if isinstance(module, torch.nn.RNNCell) else {}
    return _recurrent_probe(type(module), module.input_size, module.hidden_size, bias=module.bias, **extra)


def _gaussian(moments: Moments, size: list[int], g: torch.Generator) -> torch.Tensor:
    """float64 samples of a Gaussian with these moments."""
    return moments.mean + math.sqrt(max(moments.variance, 0.0)) * torch.randn(size, generator=g, dtype=torch.float64)


def _input_weight_std(target: float, fan_in: int, nu: float) -> float:
    """The std of input weights that give each gate's preactivation from an input of second
    moment `nu` the second moment `target` (1/sqrt(fan_in) for an input of zeros)."""
    return math.sqrt(target / (fan_in * nu)) if nu > 0 else 1.0 / math.sqrt(fan_in)


def _solved_cell(probe: Any, inputs: list[tuple[Moments, tuple[int, ...]]],
                 target: float) -> tuple[list[Moments], dict[str, tuple[float, float, float]]]:
    """One step of a cell: its input weight solved as _solved_rnn solves a layer's,
    and the step measured on `probe` (_cell_probe). `inputs`: (moments, shape) of
    the step's input, then of its state (h, or h and c), each sampled as
    independent Gaussians with those moments. Returns the moments of each output
    (h', or h' and c') and {"weight_ih": (std, fan_in, nu_in)}."""
    g = torch.Generator().manual_seed(0)
    batch = min(inputs[0][1][0], 64) if len(inputs[0][1]) > 1 else None

    x, *states = [_gaussian(m, [batch, *shape[1:]] if batch is not None else list(shape), g)
                  for m, shape in inputs]
    nu = float((x * x).mean())
    fan_in = probe.input_size
    std = _input_weight_std(target, fan_in, nu)
    state: Any = None
    if states:
        state = tuple(states) if isinstance(probe, torch.nn.LSTMCell) else states[0]
    with torch.no_grad():
        probe.weight_ih.normal_(0.0, std, generator=g)
        out = probe(x, state)
    outs = out if isinstance(out, tuple) else (out,)
    return ([Moments(float(t.mean()), float((t * t).mean())) for t in outs],
            {"weight_ih": (std, fan_in, nu)})


def _g(x: float) -> str:
    return f"{x:.4g}"
