"""batch_axis: axes that index independent stacked layers count in neither fan.

The fans of a stack are those of one layer (the shape without the batch axes),
under every layout rule; a stacked fill is one fill of the whole array (value i
from (key, stream, i)) with one layer's std; the per-tap multipliers of a
phase-balanced transposed conv repeat along the batch axes; every existing call
(no batch_axis, or batch_axis=() / None) keeps its values; bad batch axes raise
naming batch_axis, write nothing and take no stream.
"""
import math
import re

import numpy as np
import pytest

import varinit


def fresh(shape, dtype=np.float32):
    return np.full(shape, 0.25, dtype)


@pytest.mark.parametrize("shape,layout,batch_axis,layer_shape,layer_layout", [
    # stacked (in, out) dense kernels, Flax's nn.scan layout
    ((12, 128, 64), dict(in_axis=1, out_axis=2), 0, (128, 64), dict(in_axis=0, out_axis=1)),
    ((12, 128, 64), dict(in_axis=-2, out_axis=-1), 0, (128, 64), dict(in_axis=0, out_axis=1)),
    # batch axis last and in the middle, negative axes
    ((3, 3, 16, 32, 4), dict(in_axis=-3, out_axis=-2), -1, (3, 3, 16, 32), dict(in_axis=2, out_axis=3)),
    ((16, 5, 32), dict(in_axis=0, out_axis=2), 1, (16, 32), dict(in_axis=0, out_axis=1)),
    # several batch axes, tuple in/out axes
    ((2, 3, 8, 4, 6), dict(in_axis=(2, 3), out_axis=4), (0, 1), (8, 4, 6), dict(in_axis=(0, 1), out_axis=2)),
    # torch's rule and the layer rules apply to one layer's shape
    ((5, 8, 4, 3, 3), {}, 0, (8, 4, 3, 3), {}),
    ((4, 8, 16, 3, 3), dict(layer="conv", groups=2, stride=2), 0, (8, 16, 3, 3),
     dict(layer="conv", groups=2, stride=2)),
    ((16, 8, 3, 3, 2), dict(layer="conv_transpose", groups=2, stride=2), 4, (16, 8, 3, 3),
     dict(layer="conv_transpose", groups=2, stride=2)),
    ((6, 96, 32), dict(blocks=3), 0, (96, 32), dict(blocks=3)),
])
def test_fans_of_a_stack_are_those_of_one_layer(shape, layout, batch_axis, layer_shape, layer_layout):
    stacked = varinit.fans(shape, batch_axis=batch_axis, **layout)
    assert stacked == varinit.fans(layer_shape, **layer_layout)
    # the batch axes would count if they were not named: the test can fail
    if "layer" not in layout and "blocks" not in layout:
        assert stacked != varinit.fans(shape, **layout)


@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis", [
    ((12, 128, 64), -2, -1, 0),
    ((3, 3, 16, 32, 4), -3, -2, 4),
    ((2, 8, 5, 6), (1, 2), 3, 0),
])
def test_fans_match_jax_formula(shape, in_axis, out_axis, batch_axis):
    """JAX's _compute_fans: receptive = size / in / out / batch; fan = axis size * receptive."""
    def size(axes):
        return math.prod(shape[a] for a in ((axes,) if isinstance(axes, int) else axes))

    receptive = math.prod(shape) / size(in_axis) / size(out_axis) / size(batch_axis)
    fan_in, fan_out = varinit.fans(shape, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis)
    assert (fan_in, fan_out) == (size(in_axis) * receptive, size(out_axis) * receptive)


@pytest.mark.parametrize("fill,args", [
    (varinit.kaiming_normal_, {}), (varinit.kaiming_uniform_, dict(mode="fan_out")),
    (varinit.xavier_normal_, {}), (varinit.xavier_uniform_, dict(gain=2.0)),
    (varinit.variance_scaling_, dict(scale=2.0, mode="fan_avg", distribution="truncated_normal")),
    (varinit.lecun_normal_, {}), (varinit.lecun_uniform_, {}),
])
@pytest.mark.parametrize("no_batch", [(), None])
def test_no_batch_axis_changes_nothing(fill, args, no_batch):
    for layout in ({}, dict(in_axis=0, out_axis=1), dict(layer="conv", groups=2)):
        shape = (8, 6, 3) if "layer" in layout else (8, 6)
        want = fill(fresh(shape), **args, generator=11, **layout)
        got = fill(fresh(shape), **args, generator=11, batch_axis=no_batch, **layout)
        assert got.tobytes() == want.tobytes()
        assert varinit.fans(shape, batch_axis=no_batch, **layout) == varinit.fans(shape, **layout)


def test_a_stacked_fill_is_one_fill_with_one_layers_std():
    """Value i comes from (key, stream, i) over the whole stack, with one layer's std."""
    stack = fresh((4, 256, 64))
    varinit.kaiming_normal_(stack, generator=5, in_axis=1, out_axis=2, batch_axis=0)
    std = math.sqrt(2.0) / math.sqrt(256)   # torch's gain / sqrt(fan_in) of one (256, 64) layer
    want = varinit.normal_(fresh((4, 256, 64)), 0.0, std, generator=5)
    assert stack.tobytes() == want.tobytes()
    # without batch_axis the stack's fans would be 4 times larger (receptive field 4)
    wrong = varinit.kaiming_normal_(fresh((4, 256, 64)), generator=5, in_axis=1, out_axis=2)
    assert not np.array_equal(wrong, stack)


def test_each_stacked_layer_has_the_target_variance():
    """Var = 2 / (fan_in + fan_out) of one layer, per layer: 6-sigma bounds on the sample
    variance of n = 256 * 128 values (relative spread sqrt(2 / n) for normal values)."""
    stack = varinit.xavier_normal_(fresh((3, 256, 128)), generator=1, in_axis=1, out_axis=2,
                                   batch_axis=0)
    target = 2.0 / (256 + 128)
    bound = 6 * math.sqrt(2 / (256 * 128))
    for layer in stack:
        assert abs(layer.var() / target - 1) < bound
    # the stack taken as a receptive field of 3 would give a third of the variance
    assert bound < 1 - 1 / 3


def test_phase_balanced_multipliers_repeat_along_the_batch_axis():
    shape = (3, 8, 4, 3, 3)   # 3 stacked conv_transpose weights (C_in, C_out, k, k)
    layout = dict(layer="conv_transpose", stride=2, batch_axis=0)
    plain = varinit.kaiming_normal_(fresh(shape, np.float64), generator=2, **layout)
    balanced = varinit.kaiming_normal_(fresh(shape, np.float64), generator=2, phase_balanced=True,
                                       **layout)
    factor = varinit.fan_rules.phase_scale((3, 3), 2)
    np.testing.assert_allclose(balanced / plain, np.broadcast_to(factor, shape), rtol=1e-12)


def test_a_block_of_a_stack_is_the_slice_of_the_whole_fill():
    whole = varinit.kaiming_uniform_(fresh((4, 32, 16)), generator=varinit.Generator(3).stream("w"),
                                     in_axis=1, out_axis=2, batch_axis=0)
    block = fresh((2, 32, 8))
    varinit.kaiming_uniform_(block, generator=varinit.Generator(3).stream("w"), in_axis=1, out_axis=2,
                             batch_axis=0, global_shape=(4, 32, 16), start=(1, 0, 8))
    assert block.tobytes() == whole[1:3, :, 8:16].tobytes()


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(in_axis=0, out_axis=1, batch_axis=0), ValueError, "in_axis=0 and batch_axis both name axis 0"),
    (dict(in_axis=1, out_axis=(0, 2), batch_axis=2), ValueError, "out_axis=(0, 2) and batch_axis"),
    (dict(batch_axis=(0, 1)), ValueError, "batch_axis=(0, 1) leaves 1 of the 3 axes"),
    (dict(batch_axis=(0, 0)), ValueError, "batch_axis=(0, 0) names an axis twice"),
    (dict(batch_axis=3), ValueError, "batch_axis=3 is out of range"),
    (dict(batch_axis=-4), ValueError, "batch_axis=-4 is out of range"),
    (dict(batch_axis=1.0), TypeError, "batch_axis must be an int or a tuple of ints"),
    (dict(batch_axis="0"), TypeError, "batch_axis must be an int or a tuple of ints"),
    (dict(batch_axis=True), TypeError, "batch_axis must be an int or a tuple of ints"),
])
def test_bad_batch_axes_raise_and_change_nothing(kwargs, error, words):
    with pytest.raises(error, match=re.escape(words)):
        varinit.fans((5, 8, 4), **kwargs)
    target = fresh((5, 8, 4))
    state = varinit.default_generator.get_state()
    with pytest.raises(error, match=re.escape(words)):
        varinit.kaiming_normal_(target, **kwargs)
    assert (target == 0.25).all()
    assert varinit.default_generator.get_state() == state


def test_fan_based_inits_name_batch_axis_among_their_keywords():
    with pytest.raises(TypeError, match="batch_axis"):
        varinit.kaiming_normal_(fresh((4, 4)), batch_axes=0)
