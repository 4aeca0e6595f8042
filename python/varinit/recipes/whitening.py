"""Whitening init: weights matched to the covariance of correlated inputs.

For inputs x with covariance Sigma (d x d) and a row w ~ N(0, Sigma^-1 / d),
the unit y = w . x has E[y^2] = E[w^T Sigma w] = tr(Sigma Sigma^-1) / d = 1,
whatever the correlations; with rows drawn independently, E[W Sigma W^T] = I,
so the outputs also start uncorrelated (in expectation over W). A plain
1/d init instead gives E[y^2] = tr(Sigma) / d, and units that all over-weight
Sigma's leading directions.
"""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .. import _core, _validate
from .._arrays import as_array, fill_array, is_torch_tensor, writes_in_place
from .._typing import FillableT, GeneratorLike
from ..generator import resolve


@writes_in_place
def whitening_(tensor: FillableT, cov: npt.ArrayLike, gain: float = 1.0, generator: GeneratorLike = None, *,
               in_axis: int = 1, eps: float = 0.0) -> FillableT:
    """Fill rows with N(0, gain^2 Sigma^-1 / d), for inputs of covariance Sigma = `cov` (d x d).

    A unit y = w . x then has E[y^2] = tr(Sigma Sigma^-1) / d = 1 whatever
    the inputs' correlations, and E[W Sigma W^T] = I: the outputs also start
    uncorrelated (a plain 1/d init gives E[y^2] = tr(Sigma) / d instead). A
    standard Gaussian G from varinit's generator is multiplied by Sigma^(-1/2)
    (eigendecomposition Sigma = U diag(lam) U^T, Sigma^(-1/2) = U diag((lam +
    eps)^(-1/2)) U^T) and by gain / sqrt(d).

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    cov : array_like
        The inputs' covariance, (d, d), finite, symmetric and positive
        definite (after adding `eps`), d the size of the weight's input axis.
    gain : float, default 1
        Multiplies the weights.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    in_axis : int, default 1
        The input axis of the 2-D weight (1: torch's (out, in); 0: (in, out)).
    eps : float, default 0
        Added to the eigenvalues: regularizes an ill-conditioned sample
        covariance.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> x = np.random.default_rng(0).standard_normal((5000, 64)) * np.sqrt(np.linspace(0.1, 3, 64))
    >>> w = varinit.recipes.whitening_(np.empty((128, 64), np.float32), np.cov(x, rowvar=False), generator=0)
    >>> print(f"{np.mean((x @ w.T) ** 2):.2f}")
    1.00
    """
    arr = as_array(tensor)
    if arr.ndim != 2:
        raise ValueError(f"whitening_ expects a 2-D weight, got {arr.ndim} dimensions")
    in_axis = _validate.integer(in_axis, "in_axis", minimum=0, maximum=1)
    gain = _validate.real(gain, "gain")
    eps = _validate.real(eps, "eps", _validate.NON_NEGATIVE)
    d = arr.shape[in_axis]
    try:
        sigma = np.asarray(cov, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("cov must be a square array of real numbers") from None
    if sigma.shape != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}) to match the weight's input axis, got {sigma.shape}")
    if not np.all(np.isfinite(sigma)) or not np.allclose(sigma, sigma.T, rtol=1e-10, atol=1e-12 * np.abs(sigma).max(initial=0.0)):
        raise ValueError("cov must be a finite symmetric matrix")
    if d == 0:  # an empty weight and an empty covariance: nothing to whiten
        return tensor
    lam, vectors = np.linalg.eigh(sigma)
    lam = lam + eps
    if lam.min() <= 1e-12 * max(lam.max(), 0.0) or lam.max() <= 0:
        raise ValueError("cov must be positive definite (pass eps > 0 to regularize a singular covariance)")
    if arr.size == 0:
        return tensor
    inverse_root = (vectors / np.sqrt(lam)) @ vectors.T
    units = arr.shape[1 - in_axis]
    gaussian = np.empty((units, d), np.float64)
    key, stream = resolve(generator, is_torch_tensor(tensor))
    fill_array(gaussian, _core.NORMAL, 0.0, 1.0, 0.0, 0.0, key, stream)
    rows = gaussian @ inverse_root * (gain / math.sqrt(d))
    arr[...] = (rows if in_axis == 1 else rows.T).astype(arr.dtype)
    return tensor
