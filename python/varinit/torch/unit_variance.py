"""LSUV (Mishkin & Matas 2016) on a torch.nn.Module: every Linear and Conv
layer the forward pass calls, watched through forward hooks, in call order.
The algorithm and its records are those of varinit.layers.unit_variance."""
import types

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .._arrays import as_array
from ..init import orthogonal_
from ..layers.schemes import as_generator, fill_constant, stream_for
from ..layers.transaction import all_or_nothing, check_finite
from ..layers.unit_variance import Moments, as_batches, check_options, rescale_to_unit_variance
from .graph import expand


# The functions whose weight argument LSUV rescales: every layer of a model
# reaches one of them, called as a module or not (nn.MultiheadAttention hands
# its packed in_proj_weight and out_proj.weight to F.linear directly).
_WEIGHTED = {F.linear: "linear", F.conv1d: "conv", F.conv2d: "conv", F.conv3d: "conv",
             F.conv_transpose1d: "conv", F.conv_transpose2d: "conv", F.conv_transpose3d: "conv"}
_RECURRENT = {torch._VF.lstm: 4, torch._VF.gru: 3, torch._VF.rnn_tanh: 1, torch._VF.rnn_relu: 1}


class _StopForward(Exception):
    """Raised once the watched weight's output has been measured."""


class _Unit:
    """One weight LSUV rescales: its parameter, its bias, where its output is measured."""

    def __init__(self, name, weight, bias, axis, recurrent=None):
        self.name, self.weight, self.bias, self.axis = name, weight, bias, axis
        self.recurrent = recurrent   # a recurrent layer's gate count (its orthogonal blocks), or None


def _bound(func, args, kwargs, names):
    values = dict(zip(names, args))
    values.update(kwargs)
    return values


class _Watch(TorchFunctionMode):
    """Sees every weighted call of one forward pass: records the order in which
    weights are first used, or measures one weight's output and stops."""

    def __init__(self, param_names, target=None):
        super().__init__()
        self.param_names, self.target = param_names, target
        self.order, self.seen, self.output = [], set(), None
        self.expanding = []

    def __torch_function__(self, func, arg_types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _WEIGHTED:
            values = _bound(func, args, kwargs, ("input", "weight", "bias"))
            weight, bias = values.get("weight"), values.get("bias")
            if id(weight) in self.param_names:
                axis = -1 if _WEIGHTED[func] == "linear" else 1
                self.note(_Unit(self.param_names[id(weight)], weight, bias, axis))
                if self.target is not None and self.target.weight is weight:
                    self.output = func(*args, **kwargs)
                    raise _StopForward
        elif func in _RECURRENT:
            self.recurrent(func, args, kwargs)
        elif type(func) is types.FunctionType and func not in self.expanding:
            # a Python function torch dispatches (F.multi_head_attention_forward):
            # run its body under the watch, so the weights it uses are seen
            return expand(self, func, args, kwargs)
        return func(*args, **kwargs)

    def note(self, unit):
        if id(unit.weight) not in self.seen:
            self.seen.add(id(unit.weight))
            self.order.append(unit)

    def recurrent(self, func, args, kwargs):
        """The input weights of a recurrent layer: weight_ih of each layer and
        direction, measured as W_ih x_l + b_ih on that layer's actual input."""
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
                self.output = F.linear(inputs, weight, bias)
                raise _StopForward


def _run(model, batches, watch, stop=False):
    with watch:
        for x in batches:
            try:
                model(x)
            except _StopForward:
                if not stop:
                    raise


def _units(model, batches):
    """The weights the forward pass uses, in the order it first uses them."""
    names = {id(p): name for name, p in model.named_parameters()}
    watch = _Watch(names)
    _run(model, batches[:1], watch)
    return watch.order


def _unit_moments(model, unit, batches, names):
    """Pooled moments of the unit's output on every batch (the rest of each forward pass is skipped)."""
    moments = Moments()
    for x in batches:
        watch = _Watch(names, unit)
        _run(model, [x], watch, stop=True)
        if watch.output is None:
            raise ValueError(f"layer {unit.name}: the forward pass did not use it on every batch")
        moments.add(watch.output.detach().cpu().numpy(), unit.axis)
    return moments


def _check_plain_weights(model):
    for name, module in model.named_modules():
        if torch.nn.utils.parametrize.is_parametrized(module, "weight") or hasattr(module, "weight_v"):
            raise ValueError(f"layer {name} has a weight-norm parametrization; use varinit.torch.weight_norm_init")


def lsuv(model, data, *, tol=0.1, max_iter=10, mean_correction=False, orthogonal_init=True,
                by_name=False, generator=None):
    """LSUV for a torch.nn.Module: every weight the forward pass hands to a
    linear or convolution function, in the order it first does, called as a
    module or not (nn.MultiheadAttention's packed in_proj_weight and its
    out_proj.weight), and the input weights of LSTM/GRU/RNN layers (measured
    as W_ih x + b_ih on each layer's actual input).

    `data` is an input tensor or a list of them (several batches); the model
    runs in eval mode (dropout off, batch norm on its running statistics)
    under torch.no_grad(), and its training flags are restored afterwards. A
    layer called several times per forward pass is measured at its first call.
    Returns a list of LsuvRecord(name, iterations, variance, converged).

    Example::

        >>> model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
        >>> report = varinit.torch.lsuv(model, torch.randn(256, 32), generator=0)
    """
    tol, max_iter, mean_correction, orthogonal_init, by_name = check_options(
        tol, max_iter, mean_correction, orthogonal_init, by_name)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batches = as_batches(data)
    check_finite(batches)
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            _check_plain_weights(model)
            order = _units(model, batches)
            generator = as_generator(generator, True) if orthogonal_init else None
            changed = [t for unit in order for t in (unit.weight, unit.bias) if isinstance(t, torch.nn.Parameter)]
            with all_or_nothing(changed, [generator] if generator is not None else []):
                return _lsuv(model, batches, order, tol, max_iter, mean_correction, generator, by_name)
    finally:
        for m, flag in training.items():
            m.training = flag


def _lsuv(model, batches, order, tol, max_iter, mean_correction, generator, by_name):
    names = {id(p): name for name, p in model.named_parameters()}
    if generator is not None:
        for unit in order:
            orthogonal_(unit.weight, generator=stream_for(generator, unit.name, by_name),
                        blocks=unit.recurrent or 1)
            if isinstance(unit.bias, torch.nn.Parameter):
                fill_constant(unit.bias, names[id(unit.bias)], 0.0)
    report = []
    for unit in order:
        weight = as_array(unit.weight)
        bias = as_array(unit.bias) if isinstance(unit.bias, torch.nn.Parameter) else None
        label = unit.name[:-len(".weight")] if unit.name.endswith(".weight") else unit.name
        report.append(rescale_to_unit_variance(
            label, lambda unit=unit: _unit_moments(model, unit, batches, names), [weight], bias, tol, max_iter,
            mean_correction))
    return report
