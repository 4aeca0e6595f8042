"""Every Literal type of the signatures lists exactly the strings the run-time
check of that argument accepts: a type checker then refuses what the call would
refuse, and accepts everything it would take."""
import typing

import pytest

import varinit
from varinit import _typing, activations, fan_rules, gains, init
from varinit.diagnostics import mlp, precision, statuses
from varinit.layers import schemes
from varinit.recipes import mup, residual


def choices(literal):
    return set(typing.get_args(literal))


@pytest.mark.parametrize("literal, accepted", [
    (_typing.FanMode, init.FAN_MODES),
    (_typing.ScalingMode, init.SCALING_MODES),
    (_typing.ScalingDistribution, init.SCALING_DISTRIBUTIONS),
    (_typing.LayerKind, fan_rules.LAYERS),
    (_typing.GainRule, gains.GAIN_RULES),
    (_typing.TorchGainName, gains.TORCH_GAIN_NAMES),
    (_typing.ActivationName, set(activations.NAMES) | set(activations.ALIASES)),
    (schemes.Scheme, schemes.SCHEMES),
    (schemes.SchemeDistribution, schemes.DISTRIBUTIONS),
    (mup.MupKind, mup.KINDS),
    (mup.MupOptimizer, mup.OPTIMIZERS),
    (residual.DepthScheme, residual.DEPTH_SCHEMES),
    (mlp.SpecInit, mlp.SPEC_INITS),
    (precision.PrecisionFormat, precision.FORMATS),
    (statuses.Status, statuses.ORDER),
])
def test_a_literal_lists_the_accepted_strings(literal, accepted):
    assert choices(literal) == set(accepted)


def test_every_activation_name_is_accepted_and_a_misspelt_one_refused():
    for name in sorted(choices(_typing.ActivationName)):
        assert varinit.gain(name) > 0
    with pytest.raises(ValueError, match="rleu"):
        varinit.gain("rleu")


def test_the_whole_model_literals_and_keywords_match_their_checks():
    pytest.importorskip("torch")
    from varinit.torch import dataflow, initialize, modules

    assert choices(dataflow.ResidualRule) == set(dataflow.RESIDUAL_RULES)
    assert choices(modules.StructureScheme) == set(schemes.SCHEMES) | {"normal"}
    # init_module's **structure: the keywords it passes on to init_by_structure
    assert set(modules.StructureKeywords.__annotations__) == set(initialize.STRUCTURE_ONLY) | {"name_prefix"}
