"""LSUV (Mishkin & Matas 2016) on a torch.nn.Module: every Linear and Conv
layer the forward pass calls, watched through forward hooks, in call order.
The algorithm and its records are those of varinit.layers.unit_variance."""
from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .._arrays import as_array
from ..init import orthogonal_
from ..layers.schemes import as_generator, fill_constant, stream_for
from ..layers.transaction import all_or_nothing, check_finite
from ..layers.unit_variance import Moments, as_batches, check_options, rescale_to_unit_variance
from .._typing import GeneratorLike
from ..generator import Generator
from ..layers.reports import LsuvReport
from ..progress import Progress, reporter
from .graph import expand


# The functions whose weight argument LSUV rescales: every layer of a model
# reaches one of them, called as a module or not (nn.MultiheadAttention hands
# its packed in_proj_weight and out_proj.weight to F.linear directly).
_WEIGHTED: dict[Callable[..., Any], str] = {F.linear: "linear", F.conv1d: "conv", F.conv2d: "conv", F.conv3d: "conv",
             F.conv_transpose1d: "conv", F.conv_transpose2d: "conv", F.conv_transpose3d: "conv"}
_RECURRENT: dict[Callable[..., Any], int] = {torch._VF.lstm: 4, torch._VF.gru: 3, torch._VF.rnn_tanh: 1,
                                             torch._VF.rnn_relu: 1}


class _StopForward(Exception):
    """Raised once the watched weight's output has been measured."""


class _Unit:
    """One weight LSUV rescales: its parameter, its bias, where its output is measured."""

    def __init__(self, name: str, weight: torch.Tensor, bias: torch.Tensor | None, axis: int,
                 recurrent: int | None = None) -> None:
        self.name, self.weight, self.bias, self.axis = name, weight, bias, axis
        self.recurrent = recurrent   # a recurrent layer's gate count (its orthogonal blocks), or None


def _bound(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
           names: Sequence[str]) -> dict[str, Any]:
    values = dict(zip(names, args))
    values.update(kwargs)
    return values


class _Watch(TorchFunctionMode):
    """Sees every weighted call of one forward pass: records the order in which
    weights are first used, or measures one weight's output and stops.

    When measuring, `replay` is then the watched call itself with the inputs it
    had: the weight's output again, from the weight and bias as they are at
    replay time. It stays None when the weight or bias reached any function
    before the watched call (a tied weight, e.g. an embedding shared with an
    output head), since the inputs then depend on them."""

    def __init__(self, param_names: dict[int, str], target: _Unit | None = None) -> None:
        super().__init__()
        self.param_names, self.target = param_names, target
        self.order: list[_Unit] = []
        self.seen: set[int] = set()
        self.output: torch.Tensor | None = None
        self.replay: Callable[[], torch.Tensor] | None = None
        self.target_used = False
        self.expanding: list[Callable[..., Any]] = []

    def __torch_function__(self, func: Any, arg_types: Any, args: Any = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        inputs_are_free = not self.target_used
        if func in _WEIGHTED:
            values = _bound(func, args, kwargs, ("input", "weight", "bias"))
            weight: Any = values.get("weight")   # a tensor, or None when not given
            bias: Any = values.get("bias")
            if id(weight) in self.param_names:
                axis = -1 if _WEIGHTED[func] == "linear" else 1
                self.note(_Unit(self.param_names[id(weight)], weight, bias, axis))
                if self.target is not None and self.target.weight is weight:
                    self.measured(functools.partial(func, *args, **kwargs), inputs_are_free)
        elif func in _RECURRENT:
            self.recurrent(func, args, kwargs, inputs_are_free)
        elif type(func) is types.FunctionType and func not in self.expanding:
            # a Python function torch dispatches (F.multi_head_attention_forward):
            # run its body under the watch, so the weights it uses are seen
            return expand(self, func, args, kwargs)
        if self.target is not None and _mentions(self.target, args, kwargs):
            self.target_used = True
        return func(*args, **kwargs)

    def measured(self, call: Callable[[], torch.Tensor], inputs_are_free: bool) -> None:
        self.output = call()
        if inputs_are_free:
            self.replay = call
        raise _StopForward

    def note(self, unit: _Unit) -> None:
        if id(unit.weight) not in self.seen:
            self.seen.add(id(unit.weight))
            self.order.append(unit)

    def recurrent(self, func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
                  inputs_are_free: bool) -> None:
        """The input weights of a recurrent layer: weight_ih of each layer and
        direction, measured as W_ih x_l + b_ih on that layer's actual input (the
        layers below it run without it)."""
        x, hx, params, has_biases, num_layers, _, _, bidirectional, batch_first = args[:9]
        per = len(params) // (num_layers * (2 if bidirectional else 1))
        for index in range(0, len(params), per):
            weight = params[index]
            if id(weight) not in self.param_names:
                continue
            bias = params[index + 2] if has_biases else None
            unit = _Unit(self.param_names[id(weight)], weight, bias, -1, _RECURRENT[func])
            self.note(unit)
            if self.target is not None and self.target.weight is weight:
                layer = index // (per * (2 if bidirectional else 1))
                inputs = x
                if layer:
                    done = layer * per * (2 if bidirectional else 1)
                    hidden = (tuple(h[:layer * (2 if bidirectional else 1)] for h in hx)
                              if isinstance(hx, (tuple, list)) else hx[:layer * (2 if bidirectional else 1)])
                    inputs = func(x, hidden, params[:done], has_biases, layer, 0.0, False, bidirectional,
                                  batch_first)[0]
                self.measured(functools.partial(F.linear, inputs, weight, bias), inputs_are_free)


def _mentions(unit: _Unit, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """Whether the unit's weight or bias is among a call's arguments (or in a list of them)."""
    mine = (unit.weight, unit.bias)
    for value in (*args, *kwargs.values()):
        items = value if isinstance(value, (list, tuple)) else (value,)
        if any(item is tensor for item in items for tensor in mine if tensor is not None):
            return True
    return False


def _run(model: torch.nn.Module, batches: Sequence[Any], watch: _Watch, stop: bool = False) -> None:
    with watch:
        for x in batches:
            try:
                model(x)
            except _StopForward:
                if not stop:
                    raise


def _units(model: torch.nn.Module, batches: Sequence[Any]) -> list[_Unit]:
    """The weights the forward pass uses, in the order it first uses them."""
    names = {id(p): name for name, p in model.named_parameters()}
    watch = _Watch(names)
    _run(model, batches[:1], watch)
    return watch.order


class _UnitMoments:
    """Called, the pooled moments of the unit's output on every batch.

    The first call runs each batch's forward pass up to the unit's call (the
    rest is skipped). Later calls, after LSUV changed the unit's weight or bias,
    replay that call on the inputs it had, which gives the outputs a new
    forward pass would give: the layers before it are unchanged, and its inputs
    do not depend on its own weight and bias unless those reached a function
    before it, in which case the forward pass runs again. On a chain of L layers,
    each measured before and after its one rescaling, the forward passes cost
    about L^2 / 2 layer calls instead of L^2."""

    def __init__(self, model: torch.nn.Module, unit: _Unit, batches: Sequence[Any], names: dict[int, str]) -> None:
        self.model, self.unit, self.batches, self.names = model, unit, batches, names
        self.replays: list[Callable[[], torch.Tensor] | None] = [None] * len(batches)

    def __call__(self) -> Moments:
        moments = Moments()
        for index, x in enumerate(self.batches):
            replay = self.replays[index]
            output = replay() if replay is not None else self.forward(index, x)
            moments.add(output.detach().cpu().numpy(), self.unit.axis)
        return moments

    def forward(self, index: int, x: Any) -> torch.Tensor:
        watch = _Watch(self.names, self.unit)
        _run(self.model, [x], watch, stop=True)
        if watch.output is None:
            raise ValueError(f"layer {self.unit.name}: the forward pass did not use it on every batch")
        self.replays[index] = watch.replay
        return watch.output


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
    out_proj.weight), and the input weights of LSTM/GRU/RNN layers (measured
    as W_ih x + b_ih on each layer's actual input). The model runs in eval
    mode (dropout off, batch norm on its running statistics) under
    ``torch.no_grad()``, and its training flags are restored afterwards; a
    layer called several times per pass is measured at its first call. The
    algorithm and the records are those of `varinit.layers.lsuv`.

    Parameters
    ----------
    model : torch.nn.Module
        The model, on the CPU.
    data : torch.Tensor or list of torch.Tensor
        An input batch, or a list of batches.
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
    batches = as_batches(data)
    check_finite(batches)
    step = reporter(progress, "varinit: lsuv", unit="layers")
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            _check_plain_weights(model)
            order = _units(model, batches)
            generator = as_generator(generator, True) if orthogonal_init else None
            changed = [t for unit in order for t in (unit.weight, unit.bias) if isinstance(t, torch.nn.Parameter)]
            with all_or_nothing(changed, [generator] if generator is not None else []):
                return _lsuv(model, batches, order, tol, max_iter, mean_correction, generator, by_name, step)
    finally:
        for m, flag in training.items():
            m.training = flag


def _lsuv(model: torch.nn.Module, batches: Sequence[Any], order: list[_Unit], tol: float, max_iter: int,
          mean_correction: bool, generator: Generator | None, by_name: bool,
          step: Callable[[int, int], object] | None = None) -> LsuvReport:
    names = {id(p): name for name, p in model.named_parameters()}
    if generator is not None:
        for unit in order:
            orthogonal_(unit.weight, generator=stream_for(generator, unit.name, by_name),
                        blocks=unit.recurrent or 1)
            if isinstance(unit.bias, torch.nn.Parameter):
                fill_constant(unit.bias, names[id(unit.bias)], 0.0)
    report = LsuvReport()
    for unit in order:
        weight = as_array(unit.weight)
        bias = as_array(unit.bias) if isinstance(unit.bias, torch.nn.Parameter) else None
        label = unit.name[:-len(".weight")] if unit.name.endswith(".weight") else unit.name
        report.append(rescale_to_unit_variance(
            label, _UnitMoments(model, unit, batches, names), [weight], bias, tol, max_iter, mean_correction))
        if step is not None:
            step(len(report), len(order))
    return report
