"""init_layers: the analytic whole-model init of a NumPy model (a list of Layers)."""
import math

from .. import _validate
from .._arrays import as_array
from ..fan_rules import weight_plan
from ..gains import DEFAULT_GAIN_RULE, check_gain_rule
from .layer import as_layers
from .transaction import all_or_nothing
from .schemes import (
    gain_and_label,
    as_generator,
    check_choices,
    check_residual_scale,
    fill_constant,
    fill_weight,
    stream_for,
)


def init_layers(layers, *, scheme="kaiming", mode="fan_in", distribution="normal", residual_scale=None,
                by_name=False, generator=None, gain_rule=DEFAULT_GAIN_RULE):
    """Initialize a NumPy model described as a list of layers, in place.

    Each weight follows `scheme` with the gain of its layer's activation (see
    varinit.layers.schemes; the gain by `gain_rule`, see varinit.gains: kaiming Var = g^2/fan, xavier Var = 2 g^2/(fan_in + fan_out),
    lecun Var = 1/fan_in, orthogonal); biases are zero; a weight-norm scale g is set to the norm the scheme gives each unit's
    weights (the gain, for kaiming fan_in); layers marked
    residual=True have their std multiplied by `residual_scale` (e.g.
    1/sqrt(2 L) for GPT-2, Radford et al. 2019). With by_name=True each
    parameter draws from generator.stream(f"{name}.weight") so its values do
    not depend on its position in the list.

    Returns the report: a list of InitRecord(name, rule, fan_in, fan_out, std).

    Example::

        >>> layers = [(np.empty((256, 784), np.float32), np.empty(256, np.float32), "relu"),
        ...           (np.empty((10, 256), np.float32), np.empty(10, np.float32), "linear")]
        >>> report = varinit.layers.init_layers(layers, generator=0)
    """
    check_choices(scheme, mode, distribution)
    check_gain_rule(gain_rule)
    residual = check_residual_scale(residual_scale)
    by_name = _validate.flag(by_name, "by_name")
    layers = as_layers(layers)
    for layer in layers:  # bad activations and layer keywords fail before anything is filled
        gain_and_label(layer.activation_spec(), gain_rule)
        weight_plan(as_array(layer.weight).shape, **layer.layout())
    generator = as_generator(generator, False)
    # A failure past the checks above (a std the dtype cannot hold, say) restores
    # every layer and the generator: the model is never left half initialized.
    with all_or_nothing([t for layer in layers for t in (layer.weight, layer.bias, layer.g)], [generator]):
        return _fill(layers, scheme, mode, distribution, residual, generator, by_name, gain_rule)


def _fill(layers, scheme, mode, distribution, residual, generator, by_name, gain_rule):
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
