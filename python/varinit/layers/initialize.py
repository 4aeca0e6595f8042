"""init_layers: the analytic whole-model init of a NumPy model (a list of Layers)."""
from __future__ import annotations

import math
from collections.abc import Iterable

from .. import _validate
from .._arrays import as_array
from ..fan_rules import weight_plan
from ..gains import DEFAULT_GAIN_RULE, check_gain_rule
from .._typing import FanMode, GainRule, GeneratorLike
from ..generator import Generator
from .layer import Layer, LayerSpec, as_layers
from .records import InitRecord
from .transaction import all_or_nothing
from .schemes import (
    gain_and_label,
    as_generator,
    check_choices,
    check_residual_scale,
    fill_constant,
    Scheme,
    SchemeDistribution,
    fill_weight,
    stream_for,
)


def init_layers(layers: Iterable[LayerSpec], *, scheme: Scheme = "kaiming", mode: FanMode = "fan_in",
                distribution: SchemeDistribution = "normal", residual_scale: float | None = None,
                by_name: bool = False, generator: GeneratorLike = None,
                gain_rule: GainRule = DEFAULT_GAIN_RULE) -> list[InitRecord]:
    """Initialize a NumPy model, a list of layers, in place; returns the report.

    Each weight follows `scheme` with the gain g of its layer's activation (by
    `gain_rule`) and its layer's fans and adjustments (the `Layer` fields),
    and s = `residual_scale` for layers marked ``residual=True`` (else 1):

    - "kaiming": Var = (s g)^2 / fan, fan = fan_in or fan_out (`mode`);
    - "xavier": Var = (s g)^2 2 / (fan_in + fan_out);
    - "lecun": Var = s^2 / fan_in, the activation ignored (as Keras and JAX);
    - "orthogonal": a Haar-orthogonal matrix per block times s g.

    Biases are zero; a weight-norm scale g is set to the norm the scheme gives
    each unit's weights (the gain, for kaiming fan_in). A failed call changes
    no array and no generator.

    Parameters
    ----------
    layers : list
        The model: `Layer` objects, dicts of Layer fields, or (weight, bias,
        activation[, param]) tuples, in forward order.
    scheme : {"kaiming", "xavier", "lecun", "orthogonal"}, default "kaiming"
        The rule.
    mode : {"fan_in", "fan_out"}, default "fan_in"
        kaiming's fan.
    distribution : {"normal", "uniform", "truncated_normal"}, default "normal"
        The distribution of the weights ("truncated_normal" is cut at +-2 of
        its own std and rescaled so the sample std is sqrt(Var), as Keras).
    residual_scale : float, optional
        Multiplies the std of the layers marked residual=True (GPT-2: 1 /
        sqrt(2 L), `varinit.recipes.depth_scale`).
    by_name : bool, default False
        Draw each weight from ``generator.stream(f"{name}.weight")``, so its
        values do not depend on its position in the list (biases are zero).
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next streams, one per parameter.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    gain_rule : {"exact", "torch"}, default "exact"
        "exact": `varinit.gain`, 1 / sqrt(E[f(z)^2]); "torch": torch's table
        (`varinit.calculate_gain`) where it has the name.

    Returns
    -------
    list of InitRecord
        One per parameter: (name, rule, fan_in, fan_out, std).

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers",
       ICCV 2015.
    .. [2] X. Glorot and Y. Bengio, "Understanding the difficulty of training deep
       feedforward neural networks", AISTATS 2010.
    .. [3] A. M. Saxe, J. L. McClelland and S. Ganguli, "Exact solutions to the
       nonlinear dynamics of learning in deep linear neural networks", ICLR 2014.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> layers = [(np.empty((256, 784), np.float32), np.empty(256, np.float32), "relu"),
    ...           (np.empty((10, 256), np.float32), np.empty(10, np.float32), "linear")]
    >>> for record in varinit.layers.init_layers(layers, generator=0):
    ...     print(record.name, record.rule, record.fan_in, f"{record.std:.4f}")
    0.weight kaiming normal fan_in, gain(relu)=1.41421 784 0.0505
    0.bias zeros None 0.0000
    1.weight kaiming normal fan_in, gain(linear)=1 256 0.0625
    1.bias zeros None 0.0000
    """
    check_choices(scheme, mode, distribution)
    check_gain_rule(gain_rule)
    residual = check_residual_scale(residual_scale)
    by_name = _validate.flag(by_name, "by_name")
    model = as_layers(layers)
    for layer in model:  # bad activations and layer keywords fail before anything is filled
        gain_and_label(layer.activation_spec(), gain_rule)
        weight_plan(as_array(layer.weight).shape, **layer.layout())
    source = as_generator(generator, False)
    # A failure past the checks above (a std the dtype cannot hold, say) restores
    # every layer and the generator: the model is never left half initialized.
    with all_or_nothing([t for layer in model for t in (layer.weight, layer.bias, layer.g)], [source]):
        return _fill(model, scheme, mode, distribution, residual, source, by_name, gain_rule)


def _fill(layers: list[Layer], scheme: Scheme, mode: FanMode, distribution: SchemeDistribution, residual: float,
          generator: Generator, by_name: bool, gain_rule: GainRule) -> list[InitRecord]:
    report = []
    for layer in layers:
        weight_name = f"{layer.name}.weight"
        weight_record = fill_weight(
            layer.weight, weight_name, scheme=scheme, activation=layer.activation_spec(), mode=mode,
            distribution=distribution, residual_scale=residual if layer.residual else 1.0,
            generator=stream_for(generator, weight_name, by_name), layout=layer.layout(),
            gain_rule=gain_rule,
        )
        report.append(weight_record)
        if layer.bias is not None:
            report.append(fill_constant(layer.bias, f"{layer.name}.bias", 0.0))
        if layer.g is not None:
            # The layer computes g v/||v||: each unit's weights have norm g, so g
            # takes the norm the scheme gives a unit, std * sqrt(inputs per unit)
            # (Salimans & Kingma 2016 with He's or Glorot's variance).
            g = as_array(layer.g)
            norm = weight_record.std * math.sqrt(as_array(layer.weight).size / g.size)
            report.append(fill_constant(layer.g, f"{layer.name}.g", norm))
    return report
