"""LSUV (Mishkin & Matas 2016) on a torch.nn.Module: every Linear and Conv
layer the forward pass calls, watched through forward hooks, in call order.
The algorithm and its records are those of varinit.layers.unit_variance."""
import math

import torch

from .._arrays import as_array
from ..init import orthogonal_
from ..layers.schemes import as_generator, fill_constant, stream_for
from ..layers.records import LsuvRecord
from ..layers.transaction import all_or_nothing, check_finite
from ..layers.unit_variance import Moments, as_batches, check_options, rescale


def _hooked_layers(model):
    kinds = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


def _execution_order(model, batches, candidates):
    """The candidate layers in the order the forward pass first calls them;
    layers whose forward is never called (e.g. MultiheadAttention.out_proj,
    whose weight is used directly) are left out."""
    order, seen, handles = [], set(), []

    def record(name):
        def hook(module, args, output):
            if name not in seen:
                seen.add(name)
                order.append((name, module))
        return hook

    for name, module in candidates:
        handles.append(module.register_forward_hook(record(name)))
    try:
        _run(model, batches[:1])
    finally:
        for h in handles:
            h.remove()
    return order


class _StopForward(Exception):
    """Raised from a hook once the watched layer has produced its output."""


def _run(model, batches, stop=False):
    for x in batches:
        try:
            model(x)
        except _StopForward:
            if not stop:
                raise


def _unit_axis(module):
    return -1 if isinstance(module, torch.nn.Linear) else 1


def _layer_moments(model, module, batches):
    """Pooled moments of `module`'s first output per batch; the rest of the
    forward pass is skipped."""
    moments = Moments()
    axis = _unit_axis(module)

    def hook(mod, args, output):
        moments.add(output.detach().cpu().numpy(), axis)
        raise _StopForward

    handle = module.register_forward_hook(hook)
    try:
        _run(model, batches, stop=True)
    finally:
        handle.remove()
    return moments


def _check_plain_weight(name, module):
    if torch.nn.utils.parametrize.is_parametrized(module, "weight") or hasattr(module, "weight_v"):
        raise ValueError(f"layer {name} has a weight-norm parametrization; use varinit.torch.weight_norm_init")


def lsuv(model, data, *, tol=0.1, max_iter=10, mean_correction=False, orthogonal_init=True,
                by_name=False, generator=None):
    """LSUV for a torch.nn.Module: every Linear and Conv/ConvTranspose layer
    that the forward pass calls, in the order it calls them.

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
            order = _execution_order(model, batches, _hooked_layers(model))
            for name, module in order:
                _check_plain_weight(name, module)
            generator = as_generator(generator, True) if orthogonal_init else None
            changed = [t for _, module in order for t in (module.weight, module.bias)]
            with all_or_nothing(changed, [generator] if generator is not None else []):
                return _lsuv(model, batches, order, tol, max_iter, mean_correction, generator, by_name)
    finally:
        for m, flag in training.items():
            m.training = flag


def _lsuv(model, batches, order, tol, max_iter, mean_correction, generator, by_name):
    if generator is not None:
        for name, module in order:
            weight_name = f"{name}.weight" if name else "weight"
            orthogonal_(module.weight, generator=stream_for(generator, weight_name, by_name))
            if module.bias is not None:
                fill_constant(module.bias, f"{name}.bias", 0.0)
    report = []
    for name, module in order:
        weight = as_array(module.weight)
        bias = as_array(module.bias) if module.bias is not None else None
        iterations = 0
        while True:
            moments = _layer_moments(model, module, batches)
            if mean_correction and bias is not None and iterations == 0:
                bias -= moments.unit_means().astype(bias.dtype)
                moments = _layer_moments(model, module, batches)
            variance = moments.variance(name)
            converged = abs(variance - 1.0) < tol
            if converged or iterations == max_iter:
                break
            rescale([weight, bias], 1.0 / math.sqrt(variance))
            iterations += 1
        report.append(LsuvRecord(name, iterations, variance, converged))
    return report
