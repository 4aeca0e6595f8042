"""Block fills (global_shape=/start=) from a stateful generator warn: their blocks do not fit together."""
import warnings

import numpy as np
import pytest

import varinit
from varinit.scale_out.blocks import fill_in_blocks

MATCH = r"do not fit together.*generator\.stream\(name\) or an int seed"


def _stateful_generators():
    gens = [None, varinit.Generator(1), np.random.default_rng(1)]
    try:
        import torch
    except ImportError:
        return gens
    return gens + [torch.Generator().manual_seed(1)]


@pytest.mark.parametrize("generator", _stateful_generators(), ids=lambda g: type(g).__name__)
@pytest.mark.parametrize("init", [varinit.normal_, varinit.kaiming_uniform_, varinit.lecun_normal_])
def test_block_fill_from_a_stateful_generator_warns_at_the_callers_line(generator, init):
    block = np.empty((2, 3), np.float32)
    with pytest.warns(UserWarning, match=MATCH) as record:
        init(block, generator=generator, global_shape=(4, 3), start=(2, 0))
    assert [w.filename for w in record] == [__file__]
    assert np.isfinite(block).all()   # a warning, not a refusal


def test_torch_default_generator_warns_for_a_torch_block():
    torch = pytest.importorskip("torch")
    with pytest.warns(UserWarning, match=MATCH):
        varinit.normal_(torch.empty(2, 3), global_shape=(4, 3), start=(0, 0))


def test_the_warning_is_true_blocks_from_a_generator_do_not_fit():
    g = varinit.Generator(9)
    whole = varinit.normal_(np.empty((4, 3)), generator=varinit.Generator(9))
    top, bottom = np.empty((2, 3)), np.empty((2, 3))
    with pytest.warns(UserWarning, match=MATCH):
        varinit.normal_(top, generator=g, global_shape=(4, 3), start=(0, 0))
    with pytest.warns(UserWarning, match=MATCH):
        varinit.normal_(bottom, generator=g, global_shape=(4, 3), start=(2, 0))
    np.testing.assert_array_equal(top, whole[:2])   # the first call took the whole fill's stream
    assert not (bottom == whole[2:]).any()          # the second took the next one


def test_fixed_streams_whole_regions_and_block_helpers_do_not_warn():
    g = varinit.Generator(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        varinit.normal_(np.empty((2, 3)), generator=5, global_shape=(4, 3), start=(2, 0))
        varinit.normal_(np.empty((2, 3)), generator=g.stream("w"), global_shape=(4, 3), start=(2, 0))
        varinit.normal_(np.empty((4, 3)), generator=g, global_shape=(4, 3), start=(0, 0))  # the whole
        varinit.normal_(np.empty((0, 3)), generator=g, global_shape=(4, 3), start=(1, 0))  # nothing drawn
        varinit.normal_(np.empty((2, 3)), generator=g)
        # fill_in_blocks resolves a stateful generator once and fills every block from that stream
        fill_in_blocks(np.empty((8, 8)), varinit.normal_, g, block_bytes=64)
        fill_in_blocks(np.empty((8, 8)), varinit.normal_, None, block_bytes=64)


def test_with_warnings_as_errors_the_call_changes_nothing():
    g = varinit.Generator(4)
    block = np.full((2, 3), 7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match=MATCH):
            varinit.normal_(block, generator=g, global_shape=(4, 3), start=(2, 0))
    assert (block == 7.0).all() and g.get_state() == (4, 0)
