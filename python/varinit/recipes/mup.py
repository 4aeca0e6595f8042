"""muP width scaling: init and learning-rate multipliers that transfer across widths.

Yang et al. (2022), Tensor Programs V, Table 3 (the muP formulation without
parameter multipliers), with widths measured against a base model so that muP
equals the standard parametrization at width == base_width:

    layer kind        init Var               SGD lr         Adam lr
    "input" (& biases) 1/fan_in               fan_out        1
    "hidden"           1/fan_in               1              1/fan_in
    "output"           1/fan_in^2             1/fan_in       1/fan_in

"input" maps a finite dimension (data, vocabulary) into the width, "output"
maps the width to a finite dimension (logits), "hidden" maps width to width.
Relative to the base model (r = width / base_width), the init variance is
the 1/fan_in rule times 1, 1 and 1/r ("output": Var = 1/(fan_in r) =
base_fan_in / fan_in^2, so the readout std falls as 1/r against the base
model's), and the learning rate is the base model's times SGD r, 1, 1/r or
Adam 1, 1/r, 1/r.
"""
from __future__ import annotations

import math
from typing import Literal, NamedTuple

from .. import _validate
from ..init import scaled_normal_
from .._arrays import as_array, writes_in_place
from .._typing import Axes, FillableT, GeneratorLike, LayerKind, PerAxis
from ..fan_rules import weight_plan

MupKind = Literal["input", "hidden", "output"]
MupOptimizer = Literal["sgd", "adam"]
KINDS: tuple[MupKind, ...] = ("input", "hidden", "output")
OPTIMIZERS: tuple[MupOptimizer, ...] = ("sgd", "adam")


class MupScales(NamedTuple):
    init_var: float
    lr: float


MupScales.__doc__ = """muP's multipliers for one layer (Yang et al. 2022, Table 3): what `mup_scales` returns.

Parameters
----------
init_var : float
    The factor on the gain^2 / fan_in variance.
lr : float
    The factor on the base model's learning rate.

References
----------
.. [1] G. Yang, E. J. Hu, I. Babuschkin, S. Sidor, X. Liu, D. Farhi, N. Ryder,
   J. Pachocki, W. Chen and J. Gao, "Tensor Programs V: tuning large neural
   networks via zero-shot hyperparameter transfer", arXiv:2203.03466, 2022.

Examples
--------
>>> import varinit
>>> varinit.recipes.mup_scales("output", 256, 1024, "sgd")
MupScales(init_var=0.25, lr=0.25)"""


def mup_scales(kind: MupKind, base_width: int, width: int, optimizer: MupOptimizer = "adam") -> MupScales:
    """muP's init-variance and learning-rate multipliers of one layer, relative to a tuned base model.

    With r = width / base_width (Yang et al. 2022, Table 3, normalized so that
    muP equals the standard 1/fan_in parametrization at width = base_width):

    ======== ============ =========== ===========
    kind     init_var     lr (SGD)    lr (Adam)
    ======== ============ =========== ===========
    input    1            r           1
    hidden   1            1           1 / r
    output   1 / r        1 / r       1 / r
    ======== ============ =========== ===========

    "input" maps a finite dimension (data, vocabulary) into the width,
    "output" maps the width to a finite dimension (logits), "hidden" maps
    width to width; biases count as "input".

    Parameters
    ----------
    kind : {"input", "hidden", "output"}
        The layer's kind.
    base_width : int
        The width the base model was tuned at.
    width : int
        This model's width.
    optimizer : {"adam", "sgd"}, default "adam"
        The optimizer the learning rate is for.

    Returns
    -------
    MupScales
        (init_var, lr).

    References
    ----------
    .. [1] G. Yang, E. J. Hu, I. Babuschkin, S. Sidor, X. Liu, D. Farhi, N. Ryder,
       J. Pachocki, W. Chen and J. Gao, "Tensor Programs V: tuning large neural
       networks via zero-shot hyperparameter transfer", arXiv:2203.03466, 2022.

    Examples
    --------
    >>> import varinit
    >>> varinit.recipes.mup_scales("hidden", 256, 1024, "adam")
    MupScales(init_var=1.0, lr=0.25)
    >>> varinit.recipes.mup_scales("input", 256, 1024, "sgd")
    MupScales(init_var=1.0, lr=4.0)
    """
    kind = _validate.choice(kind, "kind", KINDS)
    optimizer = _validate.choice(optimizer, "optimizer", OPTIMIZERS)
    ratio = _validate.integer(width, "width", minimum=1) / _validate.integer(base_width, "base_width", minimum=1)
    if kind == "input":
        return MupScales(1.0, ratio if optimizer == "sgd" else 1.0)
    if kind == "hidden":
        return MupScales(1.0, 1.0 if optimizer == "sgd" else 1.0 / ratio)
    return MupScales(1.0 / ratio, 1.0 / ratio)


@writes_in_place
def mup_init_(
    tensor: FillableT, kind: MupKind, base_width: int, width: int, gain: float = 1.0,
    generator: GeneratorLike = None, *,
    layer: LayerKind | None = None, groups: int = 1, stride: PerAxis = 1, blocks: int = 1,
    in_axis: Axes | None = None, out_axis: Axes | None = None, batch_axis: Axes | None = (),
    keep_prob: float = 1.0, density: float = 1.0, input_var: float = 1.0,
    phase_balanced: bool = False, dilation: PerAxis = 1,
) -> FillableT:
    """Fill with N(0, gain^2 / fan_in), times base_width / width for an "output" layer (muP).

    fan_in comes from `varinit.fans` with the layout keywords. At width ==
    base_width this is LeCun's (gain 1) or He's (gain sqrt(2)) init; for wider
    models the readout variance is 1 / fan_in^2 up to the base constant, so the
    logits of the wide model start as small as muP prescribes.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        The array to fill in place: a NumPy array of float16, bfloat16,
        float32 or float64 in any memory layout, or a PyTorch CPU tensor (a
        meta tensor has its arguments checked and nothing written).
    kind : {"input", "hidden", "output"}
        The layer's kind (see `mup_scales`).
    base_width : int
        The width the base model was tuned at.
    width : int
        This model's width.
    gain : float, default 1
        The activation's gain, >= 0.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    layer : {None, "linear", "conv", "conv_transpose"}, optional
        The kind of layer that owns the weight, as for `fans`; None is
        torch's rule for the ``(out, in, *kernel)`` layout.
    groups, blocks : int, default 1
        A convolution's groups; the number of equal blocks fused along the
        output axis (QKV: 3, LSTM: 4), each its own layer.
    stride : int or tuple of int, default 1
        A convolution's stride, one for every spatial axis or one per axis.
    in_axis, out_axis, batch_axis : int or tuple of int, optional
        Another layout, with JAX's semantics: the input and output axes (the
        others are the receptive field), and the axes of stacked independent
        layers, which count in neither fan (default: none).
    keep_prob, density, input_var : float, default 1
        Variance adjustments: inverted dropout with keep probability p on the
        inputs (Var times p), the fraction d of weights a pruning mask keeps
        (both fans times d), inputs of variance v (Var divided by v).
    phase_balanced : bool, default False
        With ``layer="conv_transpose"``: every output phase of a strided
        transposed convolution gets the same variance (see
        `varinit.fan_rules.phase_scale`).
    dilation : int or tuple of int, default 1
        The convolution's dilation, which phase balancing reads.

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] G. Yang, E. J. Hu, I. Babuschkin, S. Sidor, X. Liu, D. Farhi, N. Ryder,
       J. Pachocki, W. Chen and J. Gao, "Tensor Programs V: tuning large neural
       networks via zero-shot hyperparameter transfer", arXiv:2203.03466, 2022.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> w_out = varinit.recipes.mup_init_(np.empty((10, 1024), np.float32), "output", 256, 1024, generator=0)
    >>> print(f"std {w_out.std():.4f}, target sqrt(256 / 1024) / sqrt(1024) = {0.5 / 32:.4f}")
    std 0.0158, target sqrt(256 / 1024) / sqrt(1024) = 0.0156
    """
    gain = _validate.real(gain, "gain", _validate.NON_NEGATIVE)
    var_factor = mup_scales(kind, base_width, width).init_var
    arr = as_array(tensor)
    plan = weight_plan(arr.shape, layer=layer, groups=groups, stride=stride, blocks=blocks, in_axis=in_axis,
                       out_axis=out_axis, batch_axis=batch_axis, keep_prob=keep_prob, density=density,
                       input_var=input_var, phase_balanced=phase_balanced, dilation=dilation)
    if arr.size == 0:  # nothing to fill (and a zero fan_in)
        return tensor
    std = gain * math.sqrt(plan.variance_factor * var_factor / plan.fan_in)
    if not math.isfinite(std):
        raise ValueError(f"gain={gain} gives an std that overflows a float")
    scaled_normal_(tensor, std, plan.tap_scale, generator, "gain and the widths")
    return tensor
