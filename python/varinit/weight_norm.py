"""Data-dependent initialization of weight-normalized layers, Salimans &
Kingma 2016 ("Weight normalization", section 3).

A weight-normalized unit computes y = g (v . x) / ||v|| + b. On a batch, with
t = (v . x) / ||v|| and its per-unit mean mu[t] and standard deviation
sigma[t] over the batch (and spatial positions for convolutions), set

    g = 1 / sigma[t],    b = -mu[t] / sigma[t]

so every pre-activation y = (t - mu[t]) / sigma[t] has mean 0 and std 1 on the
batch. Layers are taken in forward order, each seeing the outputs of the
layers before it already initialized. A plain layer (no g) gets the same
effect by rescaling its weight: W <- W / sigma[W x], b = -mu[W x] / sigma[W x].

`weight_norm_init` takes a NumPy model (varinit.layers; `Layer.g` holds g);
`weight_norm_init_module` (exported as `varinit.torch.weight_norm_init`) a
torch.nn.Module whose Linear/Conv layers use
torch.nn.utils.parametrizations.weight_norm (or the older
torch.nn.utils.weight_norm), or plain Linear/Conv layers.
"""
import numpy as np

from ._targets import as_array
from .layers import activate, as_layers, dense_matrix


def _standardizers(t, unit_axis, name):
    """(1/sigma, mu) per unit of t, or a ValueError for a constant unit."""
    axes = tuple(a for a in range(t.ndim) if a != unit_axis % t.ndim)
    mu = t.mean(axis=axes)
    sigma = t.std(axis=axes)
    if np.any(sigma == 0):
        dead = int(np.flatnonzero(sigma == 0)[0])
        raise ValueError(f"layer {name}: output unit {dead} is constant on the data, so it cannot be standardized")
    return 1.0 / sigma, mu


def weight_norm_init(layers, x):
    """Weight-norm data init of a NumPy model of dense layers, in place.

    g = 1/std(t), b = -mean(t)/std(t), t = (v . x)/||v|| per output unit
    (Salimans & Kingma 2016); layers without g have their weight rows
    divided by std(W x) instead. A layer without bias is only rescaled.
    Returns, per layer, (name, mean, std) of t before the init.

    Example::

        >>> layers = [{"weight": np.empty((64, 32)), "bias": np.empty(64), "g": np.empty(64),
        ...            "activation": "relu"}]
        >>> varinit.init_layers(layers, generator=0)
        >>> varinit.weight_norm_init(layers, np.random.default_rng(0).standard_normal((512, 32)))
    """
    layers = as_layers(layers)
    h = np.asarray(x, np.float64)
    if h.ndim != 2:
        raise ValueError(f"x must be a (batch, in) array, got shape {h.shape}")
    report = []
    for layer in layers:
        t = h @ dense_matrix(layer, apply_g=False)
        inv_sigma, mu = _standardizers(t, -1, layer.name)
        if layer.g is not None:
            g = as_array(layer.g)
            g[...] = inv_sigma.reshape(g.shape)
        else:
            weight = as_array(layer.weight)
            transposed = layer.in_axis in (0, -2) and layer.out_axis in (None, 1, -1)
            weight *= (inv_sigma if transposed else inv_sigma[:, None]).astype(weight.dtype)
        z = (t - mu) * inv_sigma
        if layer.bias is not None:
            bias = as_array(layer.bias)
            bias[...] = (-mu * inv_sigma).astype(bias.dtype)
        else:
            z = t * inv_sigma
        report.append((layer.name, mu, 1.0 / inv_sigma))
        h = activate(layer, z)
    return report


def _norm_parameters(module):
    """(g, v) of a weight-normalized module, or None for a plain one."""
    import torch

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


def weight_norm_init_module(model, x):
    """Weight-norm data init of a torch.nn.Module on the batch x, in place.

    Every Linear and Conv1d/2d/3d layer that the forward pass calls is
    initialized at its first call, in call order, so later layers see the
    already standardized outputs: weight-normalized layers get g and b,
    plain layers get their weight rows rescaled and b set (see the module
    docstring). Runs one forward pass under torch.no_grad() in eval mode
    (training flags restored). Returns the names of the initialized layers.

    Example::

        >>> from torch.nn.utils.parametrizations import weight_norm
        >>> model = torch.nn.Sequential(weight_norm(torch.nn.Linear(32, 64)), torch.nn.ReLU())
        >>> varinit.torch.weight_norm_init(model, torch.randn(512, 32))
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]
    done, handles = [], []

    def before(name):
        def pre_hook(mod, args):
            if name in done:
                return
            # t = (v . x)/||v||: run the layer with g = 1 and b = 0.
            norm = _norm_parameters(mod)
            if norm is not None:
                as_array(norm[0])[...] = 1
            if mod.bias is not None:
                as_array(mod.bias)[...] = 0
        return pre_hook

    def after(name):
        def hook(mod, args, output):
            if name in done:
                return None
            done.append(name)
            axis = -1 if isinstance(mod, torch.nn.Linear) else 1
            t = output.detach().numpy().astype(np.float64)
            inv_sigma, mu = _standardizers(t, axis, name)
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
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, flag in training.items():
            m.training = flag
    return done

