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
import math
from collections import namedtuple

from .. import _validate
from ..init import scaled_normal_
from .._arrays import as_array, writes_in_place
from ..fan_rules import weight_plan

KINDS = ("input", "hidden", "output")
OPTIMIZERS = ("sgd", "adam")

MupScales = namedtuple("MupScales", ["init_var", "lr"])
MupScales.__doc__ = """Multipliers for a layer of the given kind at the given width (Yang et
al. 2022, Table 3): `init_var` on the gain^2 / fan_in variance, `lr` on the base model's
learning rate."""


def mup_scales(kind, base_width, width, optimizer="adam"):
    """MupScales(init_var, lr): multipliers relative to a tuned base model.

    init_var is the factor on the gain^2 / fan_in variance (1 for "input" and
    "hidden", base_width / width for "output"); lr is the factor on the base
    model's learning rate (see the module table).

    Example::

        >>> varinit.recipes.mup_scales("hidden", 256, 1024, "adam")
        MupScales(init_var=1.0, lr=0.25)
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
def mup_init_(tensor, kind, base_width, width, gain=1.0, generator=None, **layout):
    """Fill with N(0, gain^2 / fan_in), times base_width / width for "output" layers (muP).

    fan_in comes from varinit.fans with the layout keywords (in_axis,
    out_axis, layer, ...). At width == base_width this is LeCun/He init; for
    wider models the readout variance is 1/fan_in^2 up to the base constant,
    so the logits of the wide model start as small as muP prescribes (Yang
    et al. 2022, Table 3).

    Example::

        >>> w_out = varinit.recipes.mup_init_(np.empty((10, 1024), np.float32), "output", 256, 1024)
    """
    gain = _validate.real(gain, "gain", _validate.NON_NEGATIVE)
    var_factor = mup_scales(kind, base_width, width).init_var
    arr = as_array(tensor)
    plan = weight_plan(arr.shape, **layout)
    if arr.size == 0:  # nothing to fill (and a zero fan_in)
        return tensor
    std = gain * math.sqrt(plan.variance_factor * var_factor / plan.fan_in)
    if not math.isfinite(std):
        raise ValueError(f"gain={gain} gives an std that overflows a float")
    scaled_normal_(tensor, std, plan.tap_scale, generator, "gain and the widths")
    return tensor
