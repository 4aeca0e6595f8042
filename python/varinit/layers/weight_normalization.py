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

This file takes NumPy models (`Layer.g` holds g); varinit.torch.weight_norm_init
applies the same rule to a torch.nn.Module.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from .._arrays import as_array
from .._typing import FloatArray
from .layer import Layer, LayerSpec, activate, as_layers, check_chain, dense_matrix
from .records import WeightNormRecord
from .reports import WeightNormReport
from .transaction import all_or_nothing, check_finite


def standardizers(t: FloatArray, unit_axis: int, name: str | None) -> tuple[FloatArray, FloatArray]:
    """(1/sigma, mu) per unit of t, or a ValueError for a constant unit."""
    axes = tuple(a for a in range(t.ndim) if a != unit_axis % t.ndim)
    mu = t.mean(axis=axes)
    sigma = t.std(axis=axes)
    if np.any(sigma == 0):
        dead = int(np.flatnonzero(sigma == 0)[0])
        raise ValueError(f"layer {name}: output unit {dead} is constant on the data, so it cannot be standardized")
    return 1.0 / sigma, mu


def weight_norm_init(layers: Iterable[LayerSpec], x: npt.ArrayLike) -> WeightNormReport:
    """The weight-norm data init of a NumPy model of dense layers, in place.

    For a weight-normalized unit y = g (v . x) / ||v|| + b and t = (v . x) /
    ||v|| on the batch: g = 1 / std(t), b = -mean(t) / std(t) per output unit
    (Salimans and Kingma 2016, section 3), so every pre-activation has mean 0
    and std 1 on the batch. Layers are done in forward order, each seeing the
    outputs of those before it already initialized. A layer without g has its
    weight rows divided by std(W x) instead; a layer without bias is only
    rescaled.

    Parameters
    ----------
    layers : list
        The model: `Layer` objects, dicts of Layer fields, or (weight, bias,
        activation[, param]) tuples, in forward order. Dense layers only.
    x : array_like
        The batch, (batch, in).

    Returns
    -------
    WeightNormReport
        A list of WeightNormRecord (with a summary, a text table and a notebook
        HTML view), one per layer: (name, mean, std), the mean and std of t per output unit
        before the init.

    References
    ----------
    .. [1] T. Salimans and D. P. Kingma, "Weight normalization: a simple
       reparameterization to accelerate training of deep neural networks",
       NeurIPS 2016, arXiv:1602.07868.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> layers = [{"weight": np.empty((64, 32)), "bias": np.empty(64), "g": np.empty(64),
    ...            "activation": "relu"}]
    >>> _ = varinit.layers.init_layers(layers, generator=0)
    >>> x = np.random.default_rng(0).standard_normal((512, 32))
    >>> record = varinit.layers.weight_norm_init(layers, x)[0]
    >>> z = x @ (layers[0]["g"][:, None] * layers[0]["weight"] / np.linalg.norm(layers[0]["weight"], axis=1, keepdims=True)).T + layers[0]["bias"]
    >>> print(bool(abs(z.mean(axis=0)).max() < 1e-9), f"{z.std(axis=0).min():.4f}")
    True 1.0000
    """
    model = as_layers(layers)
    h = np.asarray(x, np.float64)
    if h.ndim != 2:
        raise ValueError(f"x must be a (batch, in) array, got shape {h.shape}")
    check_finite([h], "x")
    check_chain(model)
    with all_or_nothing([t for layer in model for t in (layer.weight, layer.bias, layer.g)]):
        return _weight_norm_init(model, h)


def _weight_norm_init(layers: list[Layer], h: FloatArray) -> WeightNormReport:
    report = WeightNormReport()
    for layer in layers:
        t = h @ dense_matrix(layer, apply_g=False)
        inv_sigma, mu = standardizers(t, -1, layer.name)
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
        report.append(WeightNormRecord(str(layer.name), mu, 1.0 / inv_sigma))
        h = activate(layer, z)
    return report
