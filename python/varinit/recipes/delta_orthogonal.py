"""Delta-orthogonal init of convolutions (Xiao et al. 2018, Algorithm 2).

The kernel is zero except at its spatial center, where it holds an
orthogonal matrix H (C_out x C_in, C_out >= C_in: orthonormal columns). The
convolution then maps each position's channel vector by H: norms are
preserved exactly (||H x|| = ||x||) and the input-output Jacobian of a deep
stack is orthogonal, which makes very deep vanilla CNNs (10,000 layers in the
paper, with tanh at the critical point) trainable.
"""
from __future__ import annotations

import numpy as np

from .. import _validate
from .._arrays import as_array, is_torch_tensor, writes_in_place
from ..generator import Generator, resolve
from .._typing import FillableT, GeneratorLike
from ..init import orthogonal_


@writes_in_place
def delta_orthogonal_(tensor: FillableT, gain: float = 1.0, generator: GeneratorLike = None) -> FillableT:
    """Xiao et al.'s delta-orthogonal init: gain * H at the kernel's center tap, zeros elsewhere.

    H is a Haar-distributed orthogonal C_out x C_in matrix (`varinit.orthogonal_`
    on varinit's generator): the convolution maps each position's channel
    vector by H, so norms are preserved exactly when C_out >= C_in and the
    input-output Jacobian of a deep stack is orthogonal. With C_out < C_in, H
    has orthonormal rows instead (a projection; norms are then not
    preserved). The center of a kernel axis k is k // 2.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        A 3-, 4- or 5-D convolution weight ``(C_out, C_in, *kernel)``, filled in
        place.
    gain : float, default 1
        Multiplies H.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz and J. Pennington,
       "Dynamical isometry and a mean field theory of CNNs: how to train
       10,000-layer vanilla convolutional neural networks", ICML 2018,
       Algorithm 2.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.recipes.delta_orthogonal_(np.empty((64, 64, 3, 3)), generator=0)
    >>> center = w[:, :, 1, 1]
    >>> bool(np.allclose(center @ center.T, np.eye(64))), float(abs(w[:, :, 0, 0]).max())
    (True, 0.0)
    """
    gain = _validate.real(gain, "gain")
    arr = as_array(tensor)
    if arr.ndim not in (3, 4, 5):
        raise ValueError(f"delta_orthogonal_ expects a conv weight with 3, 4 or 5 dimensions, got {arr.ndim}")
    if arr.size == 0:  # before the stream is taken: an empty fill consumes none
        return tensor
    center = np.zeros(arr.shape[:2], np.float64)
    # the key comes from the target's side (torch's generator for a torch tensor, as
    # every varinit fill), then the NumPy staging matrix is filled from that stream
    key, stream = resolve(generator, is_torch_tensor(tensor))
    orthogonal_(center, gain, Generator(key).set_state((key, stream)))
    arr[...] = 0
    arr[(slice(None), slice(None)) + tuple(k // 2 for k in arr.shape[2:])] = center.astype(arr.dtype)
    return tensor
