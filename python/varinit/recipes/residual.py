"""Residual networks: depth scaling, zero-initialized branches, branch merges, identity starts.

A residual stack x_{l+1} = x_l + F_l(x_l) with unit-variance branches doubles
its variance per block (2^L after L blocks). The recipes here shrink the
branches so the sum stays O(1) at any depth.
"""
from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, TypeVar, overload

import numpy as np

from .. import _validate
from .._arrays import as_array, fill_array, is_torch_tensor, writes_in_place
from .. import _core
from .._typing import FillableT, GeneratorLike
from ..generator import resolve

DepthScheme = Literal["gpt2", "fixup", "t-fixup", "deepnorm"]
DEPTH_SCHEMES: tuple[DepthScheme, ...] = ("gpt2", "fixup", "t-fixup", "deepnorm")
# an array, a tensor, or a module with .weight (and .bias)
_Target = TypeVar("_Target")


class TFixupScales(NamedTuple):
    encoder: float
    decoder: float
    embedding: float


TFixupScales.__doc__ = """T-Fixup's multipliers (Huang et al. 2020, section 3.3), for Xavier-initialized weights.

What ``depth_scale("t-fixup", N)`` returns. Multiply the Xavier std of
the weights each factor names.

Parameters
----------
encoder : float
    0.67 N^(-1/4): each encoder attention block's value and output
    projections (v_e, w_e) and each encoder MLP weight.
decoder : float
    (9 N)^(-1/4): the decoder's v_d, w_d and MLP weights.
embedding : float
    (9 N)^(-1/4): the input embeddings of encoder and decoder, which are
    first drawn from N(0, d^(-1/2)).

References
----------
.. [1] X. S. Huang, F. Perez, J. Ba and M. Volkovs, "Improving transformer
   optimization through better initialization", ICML 2020.

Examples
--------
>>> import varinit
>>> s = varinit.recipes.depth_scale("t-fixup", 6)
>>> print(f"{s.encoder:.4f} {s.decoder:.4f} {s.embedding:.4f}")
0.4281 0.3689 0.3689"""



class DeepNormScales(NamedTuple):
    alpha: float
    beta: float


DeepNormScales.__doc__ = """DeepNet's constants (Wang et al. 2022, Table 1): x_(l+1) = LN(alpha x_l + G(x_l)).

What ``depth_scale("deepnorm", N)`` returns (and each half of
`DeepNormEncoderDecoder`).

Parameters
----------
alpha : float
    Multiplies the residual stream before the branch is added.
beta : float
    The Xavier gain of the feed-forward weights and of the attention value
    and output projections (queries and keys keep gain 1).

References
----------
.. [1] H. Wang, S. Ma, L. Dong, S. Huang, D. Zhang and F. Wei, "DeepNet: scaling
   transformers to 1,000 layers", arXiv:2203.00555, 2022.

Examples
--------
>>> import numpy as np, varinit
>>> alpha, beta = varinit.recipes.depth_scale("deepnorm", 200)
>>> print(f"alpha {alpha:.4f}, beta {beta:.4f}")
alpha 4.4721, beta 0.1581
>>> ffn = varinit.xavier_normal_(np.empty((2048, 512), np.float32), gain=beta, generator=0)"""



class DeepNormEncoderDecoder(NamedTuple):
    encoder: DeepNormScales
    decoder: DeepNormScales


DeepNormEncoderDecoder.__doc__ = """DeepNet's constants for an encoder-decoder (Wang et al. 2022, Table 1).

What ``depth_scale("deepnorm", N, num_decoder_layers=M)`` returns.

Parameters
----------
encoder : DeepNormScales
    (0.81 (N^4 M)^(1/16), 0.87 (N^4 M)^(-1/16)) for the N encoder layers.
decoder : DeepNormScales
    ((3M)^(1/4), (12M)^(-1/4)) for the M decoder layers.

References
----------
.. [1] H. Wang, S. Ma, L. Dong, S. Huang, D. Zhang and F. Wei, "DeepNet: scaling
   transformers to 1,000 layers", arXiv:2203.00555, 2022.

Examples
--------
>>> import varinit
>>> scales = varinit.recipes.depth_scale("deepnorm", 6, num_decoder_layers=6)
>>> print(f"{scales.encoder.alpha:.4f} {scales.encoder.beta:.4f}")
1.4179 0.4970
"""


@overload
def depth_scale(scheme: Literal["gpt2", "fixup"], num_layers: int, *, layers_per_branch: int = 2,
                num_decoder_layers: int | None = None) -> float: ...
@overload
def depth_scale(scheme: Literal["t-fixup"], num_layers: int, *, layers_per_branch: int = 2,
                num_decoder_layers: int | None = None) -> TFixupScales: ...
@overload
def depth_scale(scheme: Literal["deepnorm"], num_layers: int, *, layers_per_branch: int = 2,
                num_decoder_layers: None = None) -> DeepNormScales: ...
@overload
def depth_scale(scheme: Literal["deepnorm"], num_layers: int, *, layers_per_branch: int = 2,
                num_decoder_layers: int) -> DeepNormEncoderDecoder: ...
def depth_scale(scheme: DepthScheme, num_layers: int, *, layers_per_branch: int = 2,
                num_decoder_layers: int | None = None
                ) -> float | TFixupScales | DeepNormScales | DeepNormEncoderDecoder:
    """Depth-dependent init multipliers for residual networks.

    A residual stack x_(l+1) = x_l + F_l(x_l) with unit-variance branches
    doubles its variance per block; these rules shrink the branches so the
    sum stays O(1) at any depth.

    - "gpt2": 1 / sqrt(2 L), L = `num_layers` transformer blocks of two
      residual branches each; multiply the std of each branch's output
      projection (GPT-2 uses 0.02 / sqrt(2 L)). The stream then grows by
      (1 + 1/(2L))^(2L) <= e in variance over the whole stack.
    - "fixup": L^(-1/(2m-2)), L = `num_layers` residual branches of m =
      `layers_per_branch` (>= 2) weight layers; multiply every weight layer
      of a branch but the last, which starts at zero (`zero_branch_output_`).
    - "t-fixup": `TFixupScales` (encoder = 0.67 N^(-1/4), decoder = (9
      N)^(-1/4), embedding = (9 N)^(-1/4)), N = `num_layers`; a decoder of
      another depth passes `num_decoder_layers` (its N in the decoder and
      embedding factors).
    - "deepnorm": `DeepNormScales` (alpha = (2N)^(1/4), beta = (8N)^(-1/4))
      for an encoder-only or decoder-only stack of N = `num_layers` layers;
      with `num_decoder_layers` M, `DeepNormEncoderDecoder` (encoder = (0.81
      (N^4 M)^(1/16), 0.87 (N^4 M)^(-1/16)), decoder = ((3M)^(1/4),
      (12M)^(-1/4))).

    Parameters
    ----------
    scheme : {"gpt2", "fixup", "t-fixup", "deepnorm"}
        The rule.
    num_layers : int
        L or N above, >= 1 (the encoder's, for an encoder-decoder).
    layers_per_branch : int, default 2
        Fixup's m, >= 2.
    num_decoder_layers : int, optional
        T-Fixup's and DeepNorm's decoder depth M.

    Returns
    -------
    float, TFixupScales, DeepNormScales or DeepNormEncoderDecoder
        As listed above.

    References
    ----------
    .. [1] A. Radford, J. Wu, R. Child, D. Luan, D. Amodei and I. Sutskever,
       "Language models are unsupervised multitask learners", OpenAI, 2019.
    .. [2] H. Zhang, Y. N. Dauphin and T. Ma, "Fixup initialization: residual
       learning without normalization", ICLR 2019, arXiv:1901.09321.
    .. [3] X. S. Huang, F. Perez, J. Ba and M. Volkovs, "Improving transformer
       optimization through better initialization", ICML 2020.
    .. [4] H. Wang, S. Ma, L. Dong, S. Huang, D. Zhang and F. Wei, "DeepNet: scaling
       transformers to 1,000 layers", arXiv:2203.00555, 2022.

    Examples
    --------
    GPT-2's output projections for 12 blocks:

    >>> import numpy as np, varinit
    >>> s = varinit.recipes.depth_scale("gpt2", 12)
    >>> print(f"{s:.4f}")
    0.2041
    >>> c_proj = varinit.normal_(np.empty((768, 3072), np.float32), 0.0, 0.02 * s, generator=0)
    >>> varinit.recipes.depth_scale("fixup", 16)
    0.25
    >>> varinit.recipes.depth_scale("deepnorm", 6, num_decoder_layers=6).decoder
    DeepNormScales(alpha=2.0597671439071177, beta=0.34329452398451965)
    """
    scheme = _validate.choice(scheme, "scheme", DEPTH_SCHEMES)
    n = _validate.integer(num_layers, "num_layers", minimum=1)
    m = None if num_decoder_layers is None else _validate.integer(num_decoder_layers, "num_decoder_layers",
                                                                    minimum=1)
    per_branch = _validate.integer(layers_per_branch, "layers_per_branch", minimum=2)
    if scheme == "gpt2":
        return 1.0 / math.sqrt(2 * n)
    if scheme == "fixup":
        return float(n ** (-1.0 / (2 * per_branch - 2)))
    if scheme == "t-fixup":
        n_dec = n if m is None else m
        return TFixupScales(0.67 * n ** -0.25, (9 * n_dec) ** -0.25, (9 * n_dec) ** -0.25)
    if m is None:
        return DeepNormScales((2 * n) ** 0.25, (8 * n) ** -0.25)
    return DeepNormEncoderDecoder(
        DeepNormScales(0.81 * (n ** 4 * m) ** (1 / 16), 0.87 * (n ** 4 * m) ** (-1 / 16)),
        DeepNormScales((3 * m) ** 0.25, (12 * m) ** -0.25),
    )


def branch_scale(num_branches: int) -> float:
    """1 / sqrt(B): the multiplier on each of B summed, independent, unit-variance branches.

    Var(sum_b s y_b) = B s^2 = 1 for s = 1 / sqrt(B) (Inception-style and
    multi-branch merges; ResNeXt's grouped branches). Apply it to the std of
    each branch's last layer; each branch's own layers keep their own fans.

    Parameters
    ----------
    num_branches : int
        B, >= 1.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, varinit
    >>> s = varinit.recipes.branch_scale(4)
    >>> s
    0.5
    >>> last = varinit.kaiming_normal_(np.empty((64, 64), np.float32), nonlinearity="linear", generator=0)
    >>> last *= s
    """
    return 1.0 / math.sqrt(_validate.integer(num_branches, "num_branches", minimum=1))


def _parameters(target: object, name: str) -> tuple[Any, Any]:
    """(weight, bias or None) of a module-like object, or (target, None) for an array/tensor."""
    if isinstance(target, np.ndarray) or is_torch_tensor(target):
        return target, None
    weight = getattr(target, "weight", None)
    if weight is None:
        raise TypeError(f"{name} must be an array, a tensor, or a module with a .weight, got "
                        f"{type(target).__name__}")
    return weight, getattr(target, "bias", None)


def zero_branch_output_(layer: _Target) -> _Target:
    """Zero the last layer of a residual branch, weight and bias: the block starts as the identity.

    Fixup's and SkipInit/ReZero-style starts: x + F(x) = x at initialization,
    and gradients still reach F's last layer.

    Parameters
    ----------
    layer : ndarray, torch.Tensor or module
        The weight itself, or a module with ``.weight`` (and ``.bias``, zeroed
        too when it is not None), such as ``torch.nn.Linear``.

    Returns
    -------
    ndarray, torch.Tensor or module
        `layer`.

    References
    ----------
    .. [1] H. Zhang, Y. N. Dauphin and T. Ma, "Fixup initialization: residual
       learning without normalization", ICLR 2019, arXiv:1901.09321.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.recipes.zero_branch_output_(np.ones((4, 8), np.float32))
    >>> float(abs(w).max())
    0.0
    """
    weight, bias = _parameters(layer, "layer")
    as_array(weight)[...] = 0
    if bias is not None:
        as_array(bias)[...] = 0
    return layer


def zero_gamma_(norm: _Target) -> _Target:
    """Zero a normalization layer's scale gamma ("zero-gamma"); its bias is left as is.

    Goyal et al. (2017): the last BatchNorm of each residual branch starts
    with gamma = 0, so every block starts as the identity.

    Parameters
    ----------
    norm : ndarray, torch.Tensor or module
        The gamma array or tensor, or a normalization module (BatchNorm,
        LayerNorm, GroupNorm) whose ``.weight`` is zeroed.

    Returns
    -------
    ndarray, torch.Tensor or module
        `norm`.

    References
    ----------
    .. [1] P. Goyal, P. Dollar, R. Girshick, P. Noordhuis, L. Wesolowski, A. Kyrola,
       A. Tulloch, Y. Jia and K. He, "Accurate, large minibatch SGD: training
       ImageNet in 1 hour", arXiv:1706.02677, 2017.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> gamma = varinit.recipes.zero_gamma_(np.ones(4, np.float32))
    >>> gamma
    array([0., 0., 0., 0.], dtype=float32)
    """
    weight, _ = _parameters(norm, "norm")
    as_array(weight)[...] = 0
    return norm


@writes_in_place
def identity_(tensor: FillableT, noise_std: float = 0.0, generator: GeneratorLike = None, *,
              groups: int = 1) -> FillableT:
    """An identity start: eye (2-D) or Dirac (3- to 5-D convolution), plus N(0, noise_std^2) noise.

    A layer initialized this way passes its input through (IRNN, Le et al.
    2015; the identity parametrization of residual blocks, Hardt and Ma
    2017); a little noise (e.g. 0.01) breaks the symmetry between units. The
    noise comes from varinit's generator.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    noise_std : float, default 0
        The standard deviation of the added noise, >= 0.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    groups : int, default 1
        A convolution's groups (3- to 5-D weights only); each group passes its
        own channels.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] Q. V. Le, N. Jaitly and G. E. Hinton, "A simple way to initialize
       recurrent networks of rectified linear units", arXiv:1504.00941, 2015.
    .. [2] M. Hardt and T. Ma, "Identity matters in deep learning", ICLR 2017.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w = varinit.recipes.identity_(np.empty((256, 256), np.float32), noise_std=0.01, generator=0)
    >>> print(f"{abs(w - np.eye(256)).max():.3f} {(w - np.eye(256)).std():.4f}")
    0.044 0.0100
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
