"""sparse_ has a region form: any block of a sparse_ fill, filled alone with
global_shape= and start=, holds the whole fill's bits there. Each column
depends on itself only (its zeroed rows come from the ranks of its own
uniforms), so column blocks (tensor-parallel and FSDP Shard(1) shards) cost
what their own values cost; row blocks draw their columns' ranks over every row."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import varinit

GLOBAL = (23, 17)


@settings(max_examples=60, deadline=None)
@given(sparsity=st.sampled_from([0.0, 0.1, 0.5, 0.93, 1.0]),
       dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
       rows=st.tuples(st.integers(0, 22), st.integers(1, 23)),
       cols=st.tuples(st.integers(0, 16), st.integers(1, 17)))
def test_any_block_is_the_whole_fill_there(sparsity, dtype, rows, cols):
    dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    (r0, rn), (c0, cn) = rows, cols
    rn, cn = min(rn, GLOBAL[0] - r0), min(cn, GLOBAL[1] - c0)
    stream = varinit.Generator(8).stream("sparse")
    whole = varinit.sparse_(np.empty(GLOBAL, dtype), sparsity, 0.3, stream)
    block = np.full((rn, cn), np.nan, dtype)
    varinit.sparse_(block, sparsity, 0.3, stream, global_shape=GLOBAL, start=(r0, c0))
    np.testing.assert_array_equal(block.view(np.uint8), whole[r0:r0 + rn, c0:c0 + cn].view(np.uint8))


def test_column_blocks_put_together_are_the_whole_fill_with_its_zero_count():
    whole = varinit.sparse_(np.empty(GLOBAL, np.float32), 0.4, generator=5)
    parts = [varinit.sparse_(np.empty((GLOBAL[0], hi - lo), np.float32), 0.4, generator=5,
                             global_shape=GLOBAL, start=(0, lo))
             for lo, hi in ((0, 6), (6, 12), (12, 17))]
    together = np.concatenate(parts, axis=1)
    assert np.array_equal(together.view(np.uint32), whole.view(np.uint32))
    assert np.all((together == 0).sum(axis=0) == np.ceil(0.4 * GLOBAL[0]))


def test_a_bad_region_raises_and_takes_no_stream():
    g = varinit.Generator(1)
    block = np.full((5, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        varinit.sparse_(block, 0.5, generator=g, global_shape=(5, 6), start=(0, 3))
    assert np.all(block == 0.5) and g.get_state() == (1, 0)


def test_a_block_from_a_stateful_generator_warns():
    with pytest.warns(UserWarning, match="do not fit together"):
        varinit.sparse_(np.empty((5, 2), np.float32), 0.5, generator=varinit.Generator(1),
                        global_shape=(5, 6), start=(0, 2))
