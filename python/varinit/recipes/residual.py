"""Residual networks: depth scaling, zero-initialized branches, branch merges, identity starts.

A residual stack x_{l+1} = x_l + F_l(x_l) with unit-variance branches doubles
its variance per block (2^L after L blocks). The recipes here shrink the
branches so the sum stays O(1) at any depth.
"""
import math
from collections import namedtuple

import numpy as np

from .. import _validate
from .._arrays import as_array, fill_array, is_torch_tensor, writes_in_place
from .. import _core
from ..generator import resolve

DEPTH_SCHEMES = ("gpt2", "fixup", "t-fixup", "deepnorm")

TFixupScales = namedtuple("TFixupScales", ["encoder", "decoder", "embedding"])
TFixupScales.__doc__ = """T-Fixup multipliers (Huang et al. 2020, section 3.3), applied to
Xavier-initialized weights: `encoder` = 0.67 N^(-1/4) for each encoder attention block's
value and output projections (v_e, w_e) and each encoder MLP weight; `decoder` =
(9 N)^(-1/4) for v_d, w_d and the decoder MLP weights; `embedding` = (9 N)^(-1/4) for the
input embeddings of encoder and decoder, which are first drawn from N(0, d^(-1/2))."""

DeepNormScales = namedtuple("DeepNormScales", ["alpha", "beta"])
DeepNormScales.__doc__ = """DeepNet (Wang et al. 2022, Table 1): `alpha` multiplies the
residual stream, x_{l+1} = LN(alpha x_l + G(x_l)); `beta` is the Xavier gain of the
feed-forward weights and of the attention value and output projections (queries and keys
keep gain 1)."""

DeepNormEncoderDecoder = namedtuple("DeepNormEncoderDecoder", ["encoder", "decoder"])


def depth_scale(scheme, num_layers, *, layers_per_branch=2, num_decoder_layers=None):
    """Depth-dependent init multipliers for residual networks.

    - "gpt2" (Radford et al. 2019): 1 / sqrt(2 L), L = num_layers transformer
      blocks of two residual branches each; multiply the std of each
      branch's output projection (GPT-2 uses 0.02 / sqrt(2 L)). The stream
      then grows by (1 + 1/(2L))^(2L) <= e in variance over the whole stack.
    - "fixup" (Zhang et al. 2019): L^(-1/(2m-2)), L = num_layers residual
      branches of m = layers_per_branch (>= 2) weight layers; multiply every
      weight layer in a branch but the last, which starts at zero
      (zero_branch_output_).
    - "t-fixup" (Huang et al. 2020): TFixupScales(encoder = 0.67 N^(-1/4),
      decoder = (9 N)^(-1/4), embedding = (9 N)^(-1/4)) with N = num_layers;
      a decoder with another depth passes num_decoder_layers (its N in the
      decoder and embedding factors).
    - "deepnorm" (Wang et al. 2022): DeepNormScales(alpha = (2N)^(1/4),
      beta = (8N)^(-1/4)) for an encoder-only or decoder-only stack of N =
      num_layers layers; with num_decoder_layers M: DeepNormEncoderDecoder(
      encoder = (0.81 (N^4 M)^(1/16), 0.87 (N^4 M)^(-1/16)),
      decoder = ((3M)^(1/4), (12M)^(-1/4))).

    Example::

        >>> s = varinit.recipes.depth_scale("gpt2", 12)
        >>> w = varinit.normal_(np.empty((768, 3072), np.float32), 0.0, 0.02 * s)
    """
    scheme = _validate.choice(scheme, "scheme", DEPTH_SCHEMES)
    n = _validate.integer(num_layers, "num_layers", minimum=1)
    m = None if num_decoder_layers is None else _validate.integer(num_decoder_layers, "num_decoder_layers",
                                                                    minimum=1)
    per_branch = _validate.integer(layers_per_branch, "layers_per_branch", minimum=2)
    if scheme == "gpt2":
        return 1.0 / math.sqrt(2 * n)
    if scheme == "fixup":
        return n ** (-1.0 / (2 * per_branch - 2))
    if scheme == "t-fixup":
        n_dec = n if m is None else m
        return TFixupScales(0.67 * n ** -0.25, (9 * n_dec) ** -0.25, (9 * n_dec) ** -0.25)
    if m is None:
        return DeepNormScales((2 * n) ** 0.25, (8 * n) ** -0.25)
    return DeepNormEncoderDecoder(
        DeepNormScales(0.81 * (n ** 4 * m) ** (1 / 16), 0.87 * (n ** 4 * m) ** (-1 / 16)),
        DeepNormScales((3 * m) ** 0.25, (12 * m) ** -0.25),
    )


def branch_scale(num_branches):
    """1 / sqrt(B): the multiplier on each of B summed, independent, unit-variance branches.

    Var(sum_b s y_b) = B s^2 = 1 for s = 1 / sqrt(B) (Inception-style and
    multi-branch merges; ResNeXt's grouped branches). Apply it to the std of
    each branch's last layer; each branch's own layers keep their own fans.

    Example::

        >>> s = varinit.recipes.branch_scale(4)
        >>> w = varinit.kaiming_normal_(np.empty((64, 64), np.float32), nonlinearity="linear")
        >>> w *= s
    """
    return 1.0 / math.sqrt(_validate.integer(num_branches, "num_branches", minimum=1))


def _parameters(target, name):
    """(weight, bias or None) of a module-like object, or (target, None) for an array/tensor."""
    if isinstance(target, np.ndarray) or is_torch_tensor(target):
        return target, None
    weight = getattr(target, "weight", None)
    if weight is None:
        raise TypeError(f"{name} must be an array, a tensor, or a module with a .weight, got "
                        f"{type(target).__name__}")
    return weight, getattr(target, "bias", None)


def zero_branch_output_(layer):
    """Zero the last layer of a residual branch (weight and bias): the block starts as the identity.

    Fixup (Zhang et al. 2019) and SkipInit/ReZero-style starts: x + F(x) = x at
    initialization, gradients still reach F's last layer. `layer` is an array,
    a tensor, or a module with .weight (and .bias).

    Example::

        >>> w = varinit.recipes.zero_branch_output_(np.empty((256, 1024), np.float32))
    """
    weight, bias = _parameters(layer, "layer")
    as_array(weight)[...] = 0
    if bias is not None:
        as_array(bias)[...] = 0
    return layer


def zero_gamma_(norm):
    """Zero a normalization layer's scale gamma (its bias is left as is): "zero-gamma".

    Goyal et al. (2017): the last BatchNorm of each residual branch starts with
    gamma = 0, so every block starts as the identity. `norm` is the gamma
    array/tensor or a norm module (BatchNorm, LayerNorm, GroupNorm).

    Example::

        >>> g = varinit.recipes.zero_gamma_(np.empty(256, np.float32))
    """
    weight, _ = _parameters(norm, "norm")
    as_array(weight)[...] = 0
    return norm


@writes_in_place
def identity_(tensor, noise_std=0.0, generator=None, *, groups=1):
    """Identity-like init: eye (2-D) or Dirac (3- to 5-D conv), plus N(0, noise_std^2) noise.

    A layer initialized this way passes its input through (IRNN, Le et al.
    2015; identity parametrization of residual blocks, Hardt & Ma 2017); the
    small noise (e.g. 0.01) breaks the symmetry between units. The noise comes
    from varinit's generator.

    Example::

        >>> w = varinit.recipes.identity_(np.empty((256, 256), np.float32), noise_std=0.01, generator=0)
    """
    noise_std = _validate.real(noise_std, "noise_std", _validate.NON_NEGATIVE)
    groups = _validate.integer(groups, "groups", minimum=1)
    arr = as_array(tensor)
    if arr.ndim == 2:
        if groups != 1:
            raise ValueError("groups applies to conv weights (3 to 5 dimensions)")
        identity = np.eye(arr.shape[0], arr.shape[1])
    elif arr.ndim in (3, 4, 5):
        if arr.shape[0] % groups:
            raise ValueError(f"groups must divide dim 0 ({arr.shape[0]}), got {groups}")
        identity = np.zeros(arr.shape)
        per_group = arr.shape[0] // groups
        channels = np.arange(min(per_group, arr.shape[1]))
        center = tuple(k // 2 for k in arr.shape[2:])
        for g in range(groups):
            identity[(g * per_group + channels, channels) + center] = 1
    else:
        raise ValueError(f"identity_ needs a 2-D weight or a 3- to 5-D conv weight, got {arr.ndim} dimensions")
    if noise_std > 0 and arr.size:
        noise = np.empty(arr.shape, np.float64)
        key, stream = resolve(generator, is_torch_tensor(tensor))
        fill_array(noise, _core.NORMAL, 0.0, noise_std, 0.0, 0.0, key, stream)
        identity += noise
    arr[...] = identity.astype(arr.dtype)
    return tensor
