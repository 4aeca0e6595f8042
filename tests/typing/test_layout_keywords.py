"""The layout keywords are in the signatures of the fan-based initializers
(help() and IDEs show them), keyword-only, with the defaults that mean "not
given"; passing them at those defaults, or as other objects equal to them,
changes no bit; a misspelt one is refused with the closest name."""
import inspect

import numpy as np
import pytest

import varinit
from varinit.fan_rules import weight_plan
from varinit.recipes import mup_init_

LAYOUT = ("layer", "groups", "stride", "blocks", "in_axis", "out_axis", "batch_axis", "keep_prob", "density",
          "input_var", "phase_balanced", "dilation")
FAN_BASED = {
    "xavier_uniform_": varinit.xavier_uniform_, "xavier_normal_": varinit.xavier_normal_,
    "kaiming_uniform_": varinit.kaiming_uniform_, "kaiming_normal_": varinit.kaiming_normal_,
    "variance_scaling_": varinit.variance_scaling_, "lecun_normal_": varinit.lecun_normal_,
    "lecun_uniform_": varinit.lecun_uniform_, "mup_init_": mup_init_,
}
POSITIONAL = {"mup_init_": ("hidden", 64, 128)}   # mup_init_'s kind, base_width, width


def not_given():
    """weight_plan's defaults: what "not given" means for each layout keyword."""
    return {name: p.default for name, p in inspect.signature(weight_plan).parameters.items() if name in LAYOUT}


@pytest.mark.parametrize("name", sorted(FAN_BASED))
def test_the_layout_keywords_are_keyword_only_with_the_not_given_defaults(name):
    parameters = inspect.signature(FAN_BASED[name]).parameters
    for keyword, default in not_given().items():
        assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY, (name, keyword)
        assert parameters[keyword].default == default, (name, keyword)
        assert parameters[keyword].annotation is not inspect.Parameter.empty, (name, keyword)
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()), name
    assert set(LAYOUT) <= set(parameters)
    assert all(f"\n    {keyword}" in FAN_BASED[name].__doc__ or f", {keyword}" in FAN_BASED[name].__doc__
               for keyword in LAYOUT), name


def fill(name, **keywords):
    out = np.empty((48, 16, 3), np.float32)
    FAN_BASED[name](out, *POSITIONAL.get(name, ()), generator=11, **keywords)
    return out


@pytest.mark.parametrize("name", sorted(FAN_BASED))
def test_keywords_at_their_defaults_change_no_bit(name):
    plain = fill(name)
    assert np.array_equal(fill(name, **not_given()), plain)
    # objects equal to the defaults but not the defaults themselves take weight_plan's
    # checked path, which gives the same plan
    equal = dict(layer=None, groups=np.int64(1), stride=np.int64(1), blocks=np.int32(1), in_axis=None,
                 out_axis=None, batch_axis=[], keep_prob=np.float64(1.0), density=1, input_var=1,
                 phase_balanced=np.bool_(False), dilation=np.int16(1))
    assert np.array_equal(fill(name, **equal), plain)


@pytest.mark.parametrize("name", sorted(FAN_BASED))
def test_a_misspelt_keyword_names_the_closest_one(name):
    target = np.zeros((8, 4), np.float32)
    state = varinit.default_generator.get_state()
    with pytest.raises(TypeError, match=r"got an unexpected keyword argument 'dilations'; did you mean "
                                        r"'dilation'\? .* takes the keywords .*phase_balanced, dilation"):
        FAN_BASED[name](target, *POSITIONAL.get(name, ()), dilations=1)
    assert (target == 0).all() and varinit.default_generator.get_state() == state


def test_bad_values_of_the_keywords_keep_their_messages():
    target = np.zeros((8, 4, 3), np.float32)
    cases = [(dict(groups=0), ValueError, "groups must be an integer >= 1"),
             (dict(groups=True), TypeError, "groups must be an integer, got bool"),
             (dict(keep_prob=0.0), ValueError, r"keep_prob must be in \(0, 1\]"),
             (dict(layer="dense"), ValueError, "layer must be one of"),
             (dict(phase_balanced=1), TypeError, "phase_balanced must be True or False"),
             (dict(dilation=2), ValueError, "dilation applies to layer='conv' or 'conv_transpose'")]
    for keywords, error, words in cases:
        with pytest.raises(error, match=words):
            varinit.kaiming_normal_(target, **keywords)
    assert (target == 0).all()
