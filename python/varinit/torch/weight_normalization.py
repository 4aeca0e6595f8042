"""Weight-norm data init (Salimans & Kingma 2016) on a torch.nn.Module whose
Linear/Conv layers use torch's weight_norm parametrization (or none); the
rule is that of varinit.layers.weight_normalization. On a model sharded by
fully_shard (FSDP2) every rank measures the whole outputs and writes its own
shards (varinit.torch.sharded_data_init)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._arrays import as_array, is_dtensor
from .._typing import Array
from ..layers.records import WeightNormRecord
from ..layers.reports import WeightNormReport
from ..layers.transaction import all_or_nothing, check_finite
from ..layers.weight_normalization import standardizers
from .sharded_data_init import (WholeCopy, check_same_batches, end_forward, has_dtensors, local_part,
                                mark_dtensors_written, refuse_sharded_compute, warn_other_precision, write_whole)


def _norm_parameters(module: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(g, v) of a weight-normalized module, or None for a plain one."""
    if torch.nn.utils.parametrize.is_parametrized(module, "weight"):
        plist = module.parametrizations.weight
        if type(plist[0]).__name__ != "_WeightNorm" or len(plist) != 1:
            raise ValueError("weight_norm_init handles weights whose only parametrization is weight_norm")
        if plist[0].dim not in (0, -plist.original1.dim()):   # v has the weight's shape
            raise ValueError("weight_norm_init needs weight_norm with dim=0 (one g per output unit)")
        return plist.original0, plist.original1
    if hasattr(module, "weight_g") and hasattr(module, "weight_v"):
        return module.weight_g, module.weight_v
    return None


def _update(current: torch.Tensor, registered: torch.Tensor, change: Callable[[Array], None]) -> None:
    """Apply `change` in place to a parameter's whole value, as a NumPy array: to the
    tensor the module holds now and to the parameter as the model registers it.

    They differ under fully_shard (FSDP2): the registered parameter is a DTensor and,
    while the module runs, it holds the whole copy gathered from the shards, which is
    changed too (a second call of the layer in this pass sees the change); each rank
    then writes its part of the changed whole into its shard. When the module holds
    no whole copy of the parameter's dtype (its own fully_shard has not gathered yet or
    has sharded again; mixed precision gathers in another dtype), the whole is
    gathered here and changed at the parameter's precision."""
    if not is_dtensor(registered):   # not sharded: the module holds the parameter
        change(as_array(registered))
        return
    gathered = not is_dtensor(current)
    if gathered:
        change(as_array(current))
    if gathered and current.dtype == registered.dtype:
        write_whole(registered, current)
    else:
        whole = WholeCopy(registered)
        change(whole.values)
        whole.write()


def _set_constant(current: torch.Tensor, registered: torch.Tensor, value: float) -> None:
    """`value` everywhere in a parameter, as `_update` would set it, with no gathering: a
    constant sits alike at every position, so each rank writes its shard as it is."""
    for tensor in {id(t): t for t in (current, registered)}.values():
        as_array(local_part(tensor))[...] = value


def _set_to(values: Any) -> Callable[[Array], None]:
    def change(array: Array) -> None:
        array[...] = np.asarray(values).astype(array.dtype)
    return change


def _scale_rows(factors: Any) -> Callable[[Array], None]:
    def change(array: Array) -> None:
        array *= factors.reshape((-1,) + (1,) * (array.ndim - 1)).astype(array.dtype)
    return change


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

    A model sharded by ``fully_shard`` (FSDP2) is called on every rank alike
    (the call is collective): FSDP2 runs each layer on its whole weight, so
    every rank measures the one-process outputs and ends with exactly its
    shards of the one-process result. Every rank must pass the same x
    (checked: a ValueError on every rank, nothing written). A layer that
    computes on shards of its weight (tensor parallelism) is refused with a
    ValueError naming it.

    Parameters
    ----------
    model : torch.nn.Module
        The model, on the CPU; its parameters may be DTensors of fully_shard.
    x : torch.Tensor
        The batch the model is called with (the same on every rank).

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
    sharded = has_dtensors(model)
    if sharded:   # first: a rank's bad batch must not leave the others waiting
        check_same_batches("weight_norm_init", model, [x], "x")
    check_finite([x], "x")
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]
    done: list[str] = []
    other_precision: list[tuple[str, torch.dtype, torch.dtype]] = []   # for warn_other_precision
    report = WeightNormReport()
    handles: list[Any] = []
    # Each layer's changed tensors: (role, name in the module, the tensor as the model
    # registers it); the role is "g", "weight" (a plain layer's) or "bias".
    changed: dict[str, list[tuple[str, str, torch.Tensor]]] = {}
    for name, module in targets:
        norm = _norm_parameters(module)
        if norm is None:
            changed[name] = [("weight", "weight", module.weight)]
        elif torch.nn.utils.parametrize.is_parametrized(module, "weight"):
            changed[name] = [("g", "parametrizations.weight.original0", norm[0])]
        else:
            changed[name] = [("g", "weight_g", norm[0])]
        if module.bias is not None:
            changed[name].append(("bias", "bias", module.bias))

    def now(mod: Any, path: str) -> torch.Tensor:
        """The tensor the module holds as `path` at this moment (FSDP2 swaps them)."""
        held: torch.Tensor = mod.get_parameter(path)
        return held

    def before(name: str) -> Callable[[Any, tuple[Any, ...]], None]:
        def pre_hook(mod: Any, args: tuple[Any, ...]) -> None:
            if name in done:
                return
            # t = (v . x)/||v||: run the layer with g = 1 and b = 0.
            for role, path, registered in changed[name]:
                if role != "weight":
                    _set_constant(now(mod, path), registered, 1.0 if role == "g" else 0.0)
        return pre_hook

    def computing(name: str) -> Callable[[Any, tuple[Any, ...]], None]:
        # the last pre-hook: the module holds the tensors its forward computes with
        def pre_hook(mod: Any, args: tuple[Any, ...]) -> None:
            if name in done:
                return
            for p in mod.parameters():
                refuse_sharded_compute("weight_norm_init", name, p)
            other_precision.extend((name, now(mod, path).dtype, registered.dtype)
                                   for _, path, registered in changed[name][:1]
                                   if now(mod, path).dtype != registered.dtype)
        return pre_hook

    def after(name: str) -> Callable[[Any, tuple[Any, ...], torch.Tensor], torch.Tensor | None]:
        def hook(mod: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
            if name in done:
                return None
            done.append(name)
            axis = -1 if isinstance(mod, torch.nn.Linear) else 1
            t = output.detach().to(torch.float64).numpy()   # exactly; NumPy has no bfloat16
            inv_sigma, mu = standardizers(t, axis, name)
            report.append(WeightNormRecord(name, mu, 1.0 / inv_sigma))
            unit_shape = [1] * t.ndim
            unit_shape[axis] = -1
            for role, path, registered in changed[name]:
                if role == "weight":
                    change = _scale_rows(inv_sigma)
                elif role == "bias":
                    change = _set_to(-mu * inv_sigma)
                else:
                    change = _set_to(inv_sigma.reshape(registered.shape))
                _update(now(mod, path), registered, change)
            if mod.bias is not None:
                t = t - mu.reshape(unit_shape)
            # What the layer now computes, passed on so later layers see it.
            return torch.from_numpy(t * inv_sigma.reshape(unit_shape)).to(output.dtype)
        return hook

    written = [registered for layer in changed.values() for _, _, registered in layer]
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for name, module in targets:
            handles.append(module.register_forward_pre_hook(before(name), prepend=True))
            handles.append(module.register_forward_pre_hook(computing(name)))
            handles.append(module.register_forward_hook(after(name)))
        with torch.no_grad(), all_or_nothing([local_part(t) for t in written]):
            try:
                model(x)
            finally:
                if sharded:
                    end_forward(model)
        mark_dtensors_written(written)
        warn_other_precision("weight_norm_init", other_precision)
    finally:
        for h in handles:
            h.remove()
        for m, flag in training.items():
            m.training = flag
    return report

