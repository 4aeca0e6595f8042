"""Delta-orthogonal init of convolutions (Xiao et al. 2018, Algorithm 2).

The kernel is zero except at its spatial center, where it holds an
orthogonal matrix H (C_out x C_in, C_out >= C_in: orthonormal columns). The
convolution then maps each position's channel vector by H: norms are
preserved exactly (||H x|| = ||x||) and the input-output Jacobian of a deep
stack is orthogonal, which makes very deep vanilla CNNs (10,000 layers in the
paper, with tanh at the critical point) trainable.
"""
import numpy as np

from .. import _validate
from .._arrays import as_array, is_torch_tensor, writes_in_place
from ..generator import Generator, resolve
from ..init import orthogonal_


@writes_in_place
def delta_orthogonal_(tensor, gain=1.0, generator=None):
    """Fill a conv weight (C_out, C_in, *k) with gain * H at the center tap, zeros elsewhere.

    H is Haar-distributed orthogonal (varinit.orthogonal_ on varinit's
    generator). With C_out < C_in, H has orthonormal rows instead (a
    projection; norms are then not preserved, as in the paper's condition
    C_out >= C_in). The center of an even kernel axis k is k // 2.

    Example::

        >>> w = varinit.recipes.delta_orthogonal_(np.empty((64, 64, 3, 3), np.float32), generator=0)
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
