"""Weight-norm data init (Salimans & Kingma 2016) on a torch.nn.Module whose
Linear/Conv layers use torch's weight_norm parametrization (or none); the
rule is that of varinit.layers.weight_normalization."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._arrays import as_array
from ..layers.records import WeightNormRecord
from ..layers.reports import WeightNormReport
from ..layers.transaction import all_or_nothing, check_finite
from ..layers.weight_normalization import standardizers


def _norm_parameters(module: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(g, v) of a weight-normalized module, or None for a plain one."""
    if torch.nn.utils.parametrize.is_parametrized(module, "weight"):
        plist = module.parametrizations.weight
        if type(plist[0]).__name__ != "_WeightNorm" or len(plist) != 1:
            raise ValueError("weight_norm_init handles weights whose only parametrization is weight_norm")
        if plist[0].dim not in (0, -module.weight.dim()):
            raise ValueError("weight_norm_init needs weight_norm with dim=0 (one g per output unit)")
        return plist.original0, plist.original1
    if hasattr(module, "weight_g") and hasattr(module, "weight_v"):
        return module.weight_g, module.weight_v
    return None


def weight_norm_init(model: torch.nn.Module, x: torch.Tensor) -> WeightNormReport:
    """The weight-norm data init of a torch.nn.Module on the batch x, in place.

    For a weight-normalized unit y = g (v . x) / ||v|| + b and t = (v . x) /
    ||v|| on the batch: g = 1 / std(t), b = -mean(t) / std(t) per output
    unit, per channel for convolutions (Salimans and Kingma 2016, section 3),
    so every pre-activation has mean 0 and std 1 on the batch. Every Linear
    and Conv1d/2d/3d layer that the forward pass calls is initialized at its
    first call, in call order, so later layers see the already standardized
    outputs: layers with ``torch.nn.utils.parametrizations.weight_norm`` (or
    the older ``torch.nn.utils.weight_norm``) get g and b, plain layers get
    their weight rows divided by std(W x) and b = -mean(W x) / std(W x). Runs
    one forward pass under ``torch.no_grad()`` in eval mode (training flags
    restored). The rule is that of `varinit.layers.weight_norm_init`.

    Parameters
    ----------
    model : torch.nn.Module
        The model, on the CPU.
    x : torch.Tensor
        The batch the model is called with.

    Returns
    -------
    varinit.layers.WeightNormReport
        One per initialized layer: (name, mean, std), the mean and std of t
        per output unit before the init.

    References
    ----------
    .. [1] T. Salimans and D. P. Kingma, "Weight normalization: a simple
       reparameterization to accelerate training of deep neural networks",
       NeurIPS 2016, arXiv:1602.07868.

    Examples
    --------
    >>> import torch, varinit
    >>> from torch.nn.utils.parametrizations import weight_norm
    >>> model = torch.nn.Sequential(weight_norm(torch.nn.Linear(32, 64)), torch.nn.ReLU())
    >>> x = torch.randn(512, 32, generator=torch.Generator().manual_seed(0))
    >>> records = varinit.torch.weight_norm_init(model, x)
    >>> with torch.no_grad():
    ...     z = model[0](x)
    >>> print(f"{z.std(0, correction=0).mean():.4f}")
    1.0000
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]
    done: list[str] = []
    report = WeightNormReport()
    handles: list[Any] = []

    def before(name: str) -> Callable[[Any, tuple[Any, ...]], None]:
        def pre_hook(mod: Any, args: tuple[Any, ...]) -> None:
            if name in done:
                return
            # t = (v . x)/||v||: run the layer with g = 1 and b = 0.
            norm = _norm_parameters(mod)
            if norm is not None:
                as_array(norm[0])[...] = 1
            if mod.bias is not None:
                as_array(mod.bias)[...] = 0
        return pre_hook

    def after(name: str) -> Callable[[Any, tuple[Any, ...], torch.Tensor], torch.Tensor | None]:
        def hook(mod: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
            if name in done:
                return None
            done.append(name)
            axis = -1 if isinstance(mod, torch.nn.Linear) else 1
            t = output.detach().numpy().astype(np.float64)
            inv_sigma, mu = standardizers(t, axis, name)
            report.append(WeightNormRecord(name, mu, 1.0 / inv_sigma))
            norm = _norm_parameters(mod)
            if norm is not None:
                g = as_array(norm[0])
                g[...] = inv_sigma.reshape(g.shape)
            else:
                weight = as_array(mod.weight)
                weight *= inv_sigma.reshape((-1,) + (1,) * (weight.ndim - 1)).astype(weight.dtype)
            unit_shape = [1] * t.ndim
            unit_shape[axis] = -1
            if mod.bias is not None:
                bias = as_array(mod.bias)
                bias[...] = (-mu * inv_sigma).astype(bias.dtype)
                t = t - mu.reshape(unit_shape)
            # What the layer now computes, passed on so later layers see it.
            return torch.from_numpy(t * inv_sigma.reshape(unit_shape)).to(output.dtype)
        return hook

    for name, module in targets:
        handles.append(module.register_forward_pre_hook(before(name), prepend=True))
        handles.append(module.register_forward_hook(after(name)))
    check_finite([x], "x")
    changed: list[torch.Tensor | None] = []
    for _, module in targets:
        norm = _norm_parameters(module)
        changed += [module.bias] + ([norm[0]] if norm is not None else [module.weight])
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), all_or_nothing(changed):
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, flag in training.items():
            m.training = flag
    return report

