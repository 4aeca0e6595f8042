"""LSUV (Mishkin & Matas 2016) on a torch.nn.Module: every Linear and Conv
layer the forward pass calls, watched through a torch function mode, in call
order. The algorithm and its records are those of varinit.layers.unit_variance.
On one batch, unsharded, LSUV runs inside a single forward pass (each layer
rescaled at its first call, before the layers after it run); otherwise each
layer is measured by a forward pass up to it (then by replaying its call). On
a model sharded by fully_shard (FSDP2) every rank measures the whole outputs
and scales its own shards (varinit.torch.sharded_data_init)."""
from __future__ import annotations

import contextlib
import functools
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .._arrays import as_array, is_dtensor
from .._typing import GeneratorLike
from ..generator import Generator, user_frame
from ..init import orthogonal_
from ..layers.reports import LsuvReport
from ..layers.schemes import as_generator, fill_constant, stream_for
from ..layers.transaction import all_or_nothing, check_finite
from ..layers.unit_variance import Moments, as_batches, check_options, rescale_to_unit_variance
from ..progress import Progress, reporter
from .graph import expand, uncompiled
from .modules import write_lstm_gate_offsets
from .sharded import streams_agreed
from .sharded_data_init import (WholeCopy, check_same_batches, check_same_generator, end_forward, has_dtensors,
                                local_part, mark_dtensors_written, refuse_sharded_compute, warn_other_precision)


# The functions whose weight argument LSUV rescales: every layer of a model
# reaches one of them, called as a module or not (nn.MultiheadAttention hands
# its packed in_proj_weight and out_proj.weight to F.linear directly).
_WEIGHTED: dict[Callable[..., Any], str] = {F.linear: "linear", F.conv1d: "conv", F.conv2d: "conv", F.conv3d: "conv",
             F.conv_transpose1d: "conv", F.conv_transpose2d: "conv", F.conv_transpose3d: "conv"}
# the gate count of each recurrent function: the layer (nn.LSTM/GRU/RNN) and the one step of
# its cell (nn.LSTMCell/GRUCell/RNNCell: input, hx, w_ih, w_hh, b_ih, b_hh)
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_RECURRENT: dict[Callable[..., Any], int] = {getattr(torch._VF, name): n for name, n in _GATES.items()}
_CELLS: dict[Callable[..., Any], int] = {getattr(torch._VF, f"{name}_cell"): n for name, n in _GATES.items()}
# Reads of a tensor's metadata, not its values (nn.MultiheadAttention reads
# in_proj_weight.dtype before its call): a weight read so does not make a
# later input depend on it.
_METADATA: frozenset[Callable[..., Any]] = frozenset(
    getattr(torch.Tensor, name).__get__ for name in ("dtype", "device", "shape", "layout", "is_nested",
                                                     "requires_grad", "ndim"))


class _StopForward(Exception):
    """Raised once the watched weight's output has been measured."""


class _Names:
    """The model's parameter names, by the tensors a forward pass hands to functions.

    Outside a forward pass those are the parameters as the model registers them.
    Under fully_shard (FSDP2), while a module runs, each of its parameters is
    replaced by the whole tensor gathered from the shards (the same object at
    every pass): a tensor not known yet is looked up again among the model's
    parameters as they are at that moment (`search`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.sharded = has_dtensors(model)
        self.known: dict[int, tuple[str, torch.Tensor]] = {}
        self.look_up()

    def look_up(self) -> None:
        self.known.update((id(p), (name, p)) for name, p in self.model.named_parameters())

    def __call__(self, tensor: object, search: bool = False) -> str | None:
        """The name of the parameter `tensor` is, or None for any other object."""
        if not isinstance(tensor, torch.Tensor):
            return None
        entry = self.known.get(id(tensor))
        if entry is None and search and self.sharded:
            self.look_up()
            entry = self.known.get(id(tensor))
        return entry[0] if entry is not None and entry[1] is tensor else None


class _Unit:
    """One weight LSUV rescales: its parameter's name, its bias's (None when the
    call's bias is not a parameter of the model), where its output is measured.
    `seen` is the weight as the forward pass first handed it over: the parameter,
    its gathered whole copy under FSDP2, or a DTensor when the layer computes on
    shards."""

    def __init__(self, name: str, bias: str | None, axis: int, seen: torch.Tensor,
                 recurrent: int | None = None) -> None:
        self.name, self.bias, self.axis, self.seen = name, bias, axis, seen
        self.recurrent = recurrent   # a recurrent layer's gate count (its orthogonal blocks), or None


def _bound(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
           names: Sequence[str]) -> dict[str, Any]:
    values = dict(zip(names, args))
    values.update(kwargs)
    return values


class _Watch(TorchFunctionMode):
    """Sees every weighted call of one forward pass: records the order in which
    weights are first used, or measures one weight's output and stops.
    `read_early` names the units whose weight or bias some call read before
    the unit's own first call (a tied weight).

    When measuring, `replay` is then the watched call itself with the inputs it
    had: the weight's output again, from the weight and bias as they are at
    replay time. It stays None when the weight or bias reached any function
    before the watched call (a tied weight, e.g. an embedding shared with an
    output head), since the inputs then depend on them, and on a sharded model,
    whose call holds the copies fully_shard gathered (and frees after)."""

    def __init__(self, names: _Names, target: _Unit | None = None) -> None:
        super().__init__()
        self.names, self.target = names, target
        self.order: list[_Unit] = []
        self.seen: set[str] = set()
        self.output: torch.Tensor | None = None
        self.replay: Callable[[], torch.Tensor] | None = None
        self.target_used = False
        self.read: set[str] = set()
        self.read_early: set[str] = set()
        self.expanding: list[Callable[..., Any]] = []
        self.computed: list[str] = []   # layer calls whose weight is no parameter (computed in forward)

    def __torch_function__(self, func: Any, arg_types: Any, args: Any = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        # the call can be replayed later: its inputs do not depend on the unit, and it
        # holds the model's own tensors (not the copies fully_shard gathers and frees)
        replayable = not self.target_used and not self.names.sharded
        if func in _WEIGHTED:
            values = _bound(func, args, kwargs, ("input", "weight", "bias"))
            weight: Any = values.get("weight")   # a tensor, or None when not given
            name = self.names(weight, search=True)
            if name is None and isinstance(weight, torch.Tensor):
                self.computed.append(f"{func.__name__} with a {tuple(weight.shape)} weight")
            if name is not None:
                axis = -1 if _WEIGHTED[func] == "linear" else 1
                self.note(_Unit(name, self.names(values.get("bias"), search=True), axis, weight))
                if self.target is not None and self.target.name == name:
                    self.measured(functools.partial(func, *args, **kwargs), replayable)
        elif func in _RECURRENT:
            self.recurrent(func, args, kwargs, replayable)
        elif func in _CELLS:
            self.cell(func, args, kwargs, replayable)
        elif type(func) is types.FunctionType and func not in self.expanding:
            # a Python function torch dispatches (F.multi_head_attention_forward):
            # run its body under the watch, so the weights it uses are seen
            return expand(self, func, args, kwargs)
        read = _reads(func, self.names, args, kwargs)
        if self.target is not None and {self.target.name, self.target.bias} & read:
            self.target_used = True
        self.read |= read
        return func(*args, **kwargs)

    def measured(self, call: Callable[[], torch.Tensor], replayable: bool) -> None:
        self.output = call()
        if replayable:
            self.replay = call
        raise _StopForward

    def note(self, unit: _Unit) -> None:
        if unit.name not in self.seen:
            self.seen.add(unit.name)
            self.order.append(unit)
            if {unit.name, unit.bias} & self.read:
                self.read_early.add(unit.name)

    def recurrent(self, func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
                  replayable: bool) -> None:
        """The input weights of a recurrent layer: weight_ih of each layer and
        direction, measured as W_ih x_l + b_ih on that layer's actual input (the
        layers below it run without it)."""
        x, hx, params, has_biases, num_layers, _, _, bidirectional, batch_first = args[:9]
        per = len(params) // (num_layers * (2 if bidirectional else 1))
        for index in range(0, len(params), per):
            weight = params[index]
            name = self.names(weight, search=True)
            if name is None:
                continue
            bias = params[index + 2] if has_biases else None
            self.note(_Unit(name, self.names(bias, search=True), -1, weight, _RECURRENT[func]))
            if self.target is not None and self.target.name == name:
                layer = index // (per * (2 if bidirectional else 1))
                inputs = x
                if layer:
                    done = layer * per * (2 if bidirectional else 1)
                    hidden = (tuple(h[:layer * (2 if bidirectional else 1)] for h in hx)
                              if isinstance(hx, (tuple, list)) else hx[:layer * (2 if bidirectional else 1)])
                    inputs = func(x, hidden, params[:done], has_biases, layer, 0.0, False, bidirectional,
                                  batch_first)[0]
                self.measured(functools.partial(F.linear, inputs, weight, bias), replayable)


    def cell(self, func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], replayable: bool) -> None:
        """The input weight of a recurrent cell, measured as W_ih x + b_ih at its first
        step (a cell is called once per step; its later inputs come from the same data)."""
        values = _bound(func, args, kwargs, ("input", "hx", "w_ih", "w_hh", "b_ih", "b_hh"))
        name = self.names(values.get("w_ih"), search=True)
        if name is None:
            return
        bias = values.get("b_ih")
        self.note(_Unit(name, self.names(bias, search=True), -1, values["w_ih"], _CELLS[func]))
        if self.target is not None and self.target.name == name:
            self.measured(functools.partial(F.linear, values["input"], values["w_ih"], bias), replayable)

def _reads(func: Callable[..., Any], names: _Names, args: Sequence[Any], kwargs: dict[str, Any]) -> set[str]:
    """The names of the parameters among a call's arguments (or in a list of
    them), unless the call reads only their metadata."""
    if func in _METADATA:
        return set()
    found: set[str] = set()
    for value in (*args, *kwargs.values()):
        items = value if isinstance(value, (list, tuple)) else (value,)
        found.update(name for name in map(names, items) if name is not None)
    return found


class _InOnePass(TorchFunctionMode):
    """LSUV inside one forward pass: at the first call of each unit's weight,
    `rescale(unit, call)` runs the unit's whole LSUV loop, measuring by
    replaying that call (its inputs come from the layers before it, already
    rescaled); the pass then goes on with the call's output from the final
    weight and bias. A later call of the same weight runs as it is. On a
    chain of L layers this is about L + (rescalings) layer calls, where
    measuring each layer by a forward pass up to it costs about L^2 / 2.
    Only for units measured at a weighted call whose inputs do not depend on
    their weight or bias (`_Watch.read_early` empty), on an unsharded model."""

    def __init__(self, names: _Names, order: list[_Unit],
                 rescale: Callable[[_Unit, Callable[[], torch.Tensor]], None]) -> None:
        super().__init__()
        self.names, self.rescale = names, rescale
        self.pending = {unit.name: unit for unit in order}
        self.expanding: list[Callable[..., Any]] = []

    def __torch_function__(self, func: Any, arg_types: Any, args: Any = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _WEIGHTED:
            name = self.names(_bound(func, args, kwargs, ("input", "weight", "bias")).get("weight"))
            unit = self.pending.pop(name, None) if name is not None else None
            if unit is not None:
                call = functools.partial(func, *args, **kwargs)
                self.rescale(unit, call)
                return call()
        elif type(func) is types.FunctionType and func not in self.expanding:
            return expand(self, func, args, kwargs)   # as _Watch does
        return func(*args, **kwargs)


def _run(model: torch.nn.Module, batches: Sequence[Any], watch: _Watch | _InOnePass, stop: bool = False) -> None:
    try:
        with watch:
            for x in batches:
                try:
                    model(x)
                except _StopForward:
                    if not stop:
                        raise
    finally:
        if watch.names.sharded:
            end_forward(model)


def _units(model: torch.nn.Module, batches: Sequence[Any], names: _Names) -> tuple[list[_Unit], bool]:
    """The weights the forward pass uses, in the order it first uses them, and
    whether LSUV can run in one forward pass (`_InOnePass`: one batch, an
    unsharded model, no recurrent unit, no unit whose weight or bias a call
    reads before its own); a ValueError for a layer that computes on shards of
    its weight, a warning for layers that compute in another dtype than their
    parameters'."""
    watch = _Watch(names)
    _run(model, batches[:1], watch)
    for unit in watch.order:
        refuse_sharded_compute("lsuv", _label(unit), unit.seen)
    if watch.computed:
        _, depth = user_frame()
        warnings.warn(
            f"lsuv: {len(watch.computed)} layer call(s) read a weight computed in forward, not a parameter "
            f"(weight standardization, a scale, a mask), and are not rescaled: {', '.join(watch.computed[:4])}"
            + (", ..." if len(watch.computed) > 4 else "") + "; varinit.torch.init_module(model, x) solves "
            "the parameter that sets such a weight's scale", UserWarning, stacklevel=depth)
    params = dict(model.named_parameters())
    warn_other_precision("lsuv", [(_label(unit), unit.seen.dtype, params[unit.name].dtype) for unit in watch.order
                                  if unit.seen.dtype != params[unit.name].dtype])
    in_one_pass = (len(batches) == 1 and not names.sharded and not watch.read_early
                   and all(unit.recurrent is None for unit in watch.order))
    return watch.order, in_one_pass


def _label(unit: _Unit) -> str:
    return unit.name.removesuffix(".weight")


class _UnitMoments:
    """Called, the pooled moments of the unit's output on every batch.

    The first call runs each batch's forward pass up to the unit's call (the
    rest is skipped). Later calls, after LSUV changed the unit's weight or bias,
    replay that call on the inputs it had, which gives the outputs a new
    forward pass would give: the layers before it are unchanged, and its inputs
    do not depend on its own weight and bias unless those reached a function
    before it, in which case the forward pass runs again. On a chain of L layers,
    each measured before and after its one rescaling, the forward passes cost
    about L^2 / 2 layer calls instead of L^2. On a sharded model every
    measurement is a forward pass, and a sharded bias is changed as a whole copy
    (`whole_bias`) whose part each rank writes into its shard before measuring."""

    def __init__(self, model: torch.nn.Module, unit: _Unit, batches: Sequence[Any], names: _Names,
                 whole_bias: WholeCopy | None = None) -> None:
        self.model, self.unit, self.batches, self.names = model, unit, batches, names
        self.whole_bias = whole_bias
        self.replays: list[Callable[[], torch.Tensor] | None] = [None] * len(batches)

    def __call__(self) -> Moments:
        if self.whole_bias is not None:
            self.whole_bias.write()
        moments = Moments()
        for index, x in enumerate(self.batches):
            replay = self.replays[index]
            _add(moments, replay() if replay is not None else self.forward(index, x), self.unit.axis)
        return moments

    def forward(self, index: int, x: Any) -> torch.Tensor:
        watch = _Watch(self.names, self.unit)
        _run(self.model, [x], watch, stop=True)
        if watch.output is None:
            raise ValueError(f"layer {self.unit.name}: the forward pass did not use it on every batch")
        self.replays[index] = watch.replay
        return watch.output


def _add(moments: Moments, output: torch.Tensor, axis: int) -> None:
    # in float64 already (exactly), as NumPy has no bfloat16
    moments.add(output.detach().to(torch.float64).cpu().numpy(), axis)


def _check_plain_weights(model: torch.nn.Module) -> None:
    for name, module in model.named_modules():
        if torch.nn.utils.parametrize.is_parametrized(module, "weight") or hasattr(module, "weight_v"):
            raise ValueError(f"layer {name} has a weight-norm parametrization; use varinit.torch.weight_norm_init")


def lsuv(model: torch.nn.Module, data: Any, *, tol: float = 0.1, max_iter: int = 10,
         mean_correction: bool = False, orthogonal_init: bool = True, by_name: bool = False,
         generator: GeneratorLike = None, progress: Progress = None) -> LsuvReport:
    """Layer-sequential unit variance (LSUV) for a torch.nn.Module, in place.

    Mishkin and Matas (2016): every weight layer is first made orthogonal
    (bias 0); then, layer by layer in forward order, its output z on the data
    is measured and W <- W / sqrt(Var(z)), b <- b / sqrt(Var(z)) until
    abs(Var(z) - 1) < `tol` or `max_iter` rescalings were made; Var(z) pools all
    units and all batches. A layer is every weight the forward pass hands to a
    linear or convolution function, in the order it first does, called as a
    module or not (``nn.MultiheadAttention``'s packed in_proj_weight and its
    out_proj.weight), and the input weights of LSTM/GRU/RNN layers and cells
    (measured as W_ih x + b_ih on each layer's actual input, a cell's at its
    first step; an LSTM's forget- and output-gate blocks of b_ih are
    offsets, measured at 0 and then set back to varinit's 1 and 2.5, with or
    without `mean_correction`). The model runs in eval
    mode (dropout off, batch norm on its running statistics) under
    ``torch.no_grad()``, and its training flags are restored afterwards; a
    layer called several times per pass is measured at its first call. The
    algorithm and the records are those of `varinit.layers.lsuv`.

    On one batch, LSUV runs inside a single forward pass: each layer is
    rescaled at its first call, measured by repeating that call, and the pass
    goes on from its rescaled output (about 2 L + rescalings layer calls for L
    layers). With several batches, a model sharded by ``fully_shard``, a
    recurrent layer, or a weight or bias some call reads before the layer's
    own call (a tied weight), each layer is measured by a forward pass up to
    it instead (about L^2 / 2 layer calls per batch); the results are the same
    bits either way.

    A model sharded by ``fully_shard`` (FSDP2), e.g. built on the meta device,
    sharded and materialized with ``to_empty``, is called on every rank alike
    (the call is collective): FSDP2 runs each layer on its whole weight, so
    every rank measures the one-process output and ends with exactly its shards
    of the one-process result. Every rank must pass the same data and the same
    generator state (checked: a ValueError on every rank, nothing written). A
    layer that computes on shards of its weight (tensor parallelism) is refused
    with a ValueError naming it.

    Parameters
    ----------
    model : torch.nn.Module
        The model, on the CPU; its parameters may be DTensors of fully_shard.
    data : torch.Tensor or list of torch.Tensor
        An input batch, or a list of batches (the same on every rank).
    tol : float, default 0.1
        The tolerance on Var(z), in (0, 1).
    max_iter : int, default 10
        The most rescalings per layer.
    mean_correction : bool, default False
        Before each rescaling, subtract from each unit's bias the mean of its
        output over all the batches (not in the paper).
    orthogonal_init : bool, default True
        Start from orthogonal weights and zero biases; False starts from the
        weights as they are.
    by_name : bool, default False
        Draw each orthogonal weight from ``generator.stream(its name)``.
    generator : None, int, Generator or torch.Generator, optional
        The seed of the orthogonal start; None draws a key from torch's default
        generator.
    progress : bool or callable, optional
        True: a tqdm progress bar over the layers, when tqdm is installed
        (`varinit.progress`); a callable is called as ``progress(done,
        total)`` after each layer.

    Returns
    -------
    varinit.layers.LsuvReport
        A list of `varinit.layers.LsuvRecord`, one per layer: (name,
        iterations, variance, converged), with a summary, a text table and a
        notebook HTML view.

    References
    ----------
    .. [1] D. Mishkin and J. Matas, "All you need is a good init", ICLR 2016,
       arXiv:1511.06422.

    Examples
    --------
    >>> import torch, varinit
    >>> model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    >>> data = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    >>> for record in varinit.torch.lsuv(model, data, generator=0):
    ...     print(record.name, record.iterations, f"{record.variance:.3f}", record.converged)
    0 1 1.000 True
    2 1 1.000 True
    """
    tol, max_iter, mean_correction, orthogonal_init, by_name = check_options(
        tol, max_iter, mean_correction, orthogonal_init, by_name)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model = uncompiled(model)
    batches = as_batches(data)
    if has_dtensors(model):   # first: a rank's bad batch must not leave the others waiting
        check_same_batches("lsuv", model, batches, "data")
    check_finite(batches)
    step = reporter(progress, "varinit: lsuv", unit="layers")
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            _check_plain_weights(model)
            names = _Names(model)
            order, in_one_pass = _units(model, batches, names)
            params = dict(model.named_parameters())
            written = [params[n] for unit in order for n in (unit.name, unit.bias) if n is not None]
            given = [generator] if isinstance(generator, Generator) else []
            with all_or_nothing([local_part(t) for t in written], given):
                source = as_generator(generator, True) if orthogonal_init else None
                if source is not None and names.sharded:
                    check_same_generator("lsuv", model, source)
                # the ranks agree on the generator: the orthogonal fills skip their own check
                with streams_agreed() if names.sharded else contextlib.nullcontext():
                    report = _lsuv(model, batches, order, names, tol, max_iter, mean_correction, source, by_name,
                                   step, in_one_pass)
            mark_dtensors_written(written)
            return report
    finally:
        for m, flag in training.items():
            m.training = flag


def _lsuv(model: torch.nn.Module, batches: Sequence[Any], order: list[_Unit], names: _Names, tol: float,
          max_iter: int, mean_correction: bool, generator: Generator | None, by_name: bool,
          step: Callable[[int, int], object] | None = None, in_one_pass: bool = False) -> LsuvReport:
    params = dict(model.named_parameters())
    if generator is not None:
        for unit in order:
            orthogonal_(params[unit.name], generator=stream_for(generator, unit.name, by_name),
                        blocks=unit.recurrent or 1)
            if unit.bias is not None:
                fill_constant(params[unit.bias], unit.bias, 0.0)
    report = LsuvReport()

    def rescale(unit: _Unit, measure: Callable[[], Moments], whole_bias: WholeCopy | None = None) -> None:
        # W / sqrt(Var) is elementwise: each rank scales its own shard of a sharded weight
        weight = as_array(local_part(params[unit.name]))
        bias = params[unit.bias] if unit.bias is not None else None
        bias_values = whole_bias.values if whole_bias is not None else as_array(bias) if bias is not None else None
        report.append(rescale_to_unit_variance(
            _label(unit), measure, [weight], bias_values, tol, max_iter, mean_correction))
        if whole_bias is not None:
            whole_bias.write()
        if unit.recurrent == 4 and bias is not None:
            # an LSTM's b_ih: the forget- and output-gate blocks are offsets, not scales, and keep
            # varinit's values whatever the rescaling and mean correction
            write_lstm_gate_offsets(bias)
        if step is not None:
            step(len(report), len(order))

    def rescale_at_call(unit: _Unit, call: Callable[[], torch.Tensor]) -> None:
        def measure() -> Moments:
            moments = Moments()
            _add(moments, call(), unit.axis)
            return moments
        rescale(unit, measure)

    if in_one_pass:
        single = _InOnePass(names, order, rescale_at_call)
        _run(model, batches, single)
        if single.pending:
            raise ValueError(f"layer {next(iter(single.pending))}: the forward pass did not use it on every batch")
        return report
    for unit in order:
        bias = params[unit.bias] if unit.bias is not None else None
        if unit.recurrent == 4 and bias is not None:
            # the offsets would count as variance of the pooled output: measured without them
            write_lstm_gate_offsets(bias, 0.0)
        whole_bias = WholeCopy(bias) if bias is not None and is_dtensor(bias) else None
        rescale(unit, _UnitMoments(model, unit, batches, names, whole_bias), whole_bias)
    return report
