"""Region fills: a block filled alone equals the same slice of the whole fill, bit for bit."""
import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import varinit

DTYPES = (np.float16, ml_dtypes.bfloat16, np.float32, np.float64)
BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}
# name -> (function, keyword arguments, needs at least 2 dimensions for fans)
INITIALIZERS = {
    "uniform_": (varinit.uniform_, {"a": -0.3, "b": 0.7}, False),
    "normal_": (varinit.normal_, {"mean": 0.1, "std": 2.0}, False),
    "trunc_normal_": (varinit.trunc_normal_, {"mean": 0.0, "std": 1.0, "a": 0.5, "b": 3.0}, False),
    "kaiming_uniform_": (varinit.kaiming_uniform_, {"nonlinearity": "relu"}, True),
    "kaiming_normal_": (varinit.kaiming_normal_, {"mode": "fan_out"}, True),
    "xavier_uniform_": (varinit.xavier_uniform_, {"gain": 1.5}, True),
    "xavier_normal_": (varinit.xavier_normal_, {}, True),
    "variance_scaling_": (varinit.variance_scaling_, {"scale": 2.0, "mode": "fan_avg"}, True),
    "lecun_normal_": (varinit.lecun_normal_, {}, True),
    "lecun_uniform_": (varinit.lecun_uniform_, {}, True),
}
LAYOUTS = ("C", "F", "strided", "reversed", "permuted")


def _bits(a):
    return np.ascontiguousarray(a).view(BITS[a.dtype.itemsize])


def _block_buffer(shape, dtype, layout, rng):
    """An uninitialized writable array of `shape` in the given memory layout, pre-filled with NaN."""
    if layout == "C":
        return np.full(shape, np.nan, dtype)
    if layout == "F":
        return np.asfortranarray(np.full(shape, np.nan, dtype))
    steps = tuple(int(rng.integers(1, 4)) for _ in shape)
    base = np.full(tuple(n * s + 1 for n, s in zip(shape, steps)), np.nan, dtype)
    view = base[tuple(slice(0, n * s, s) for n, s in zip(shape, steps))]
    if layout == "reversed":
        # negative strides: logical element 0 sits at the end of the buffer
        view = view[tuple(slice(None, None, -1) for _ in shape)]
    if layout == "permuted":
        # axes stored in a random order (a transposed array generalised)
        perm = rng.permutation(len(shape))
        view = np.full(tuple(shape[p] for p in perm), np.nan, dtype).transpose(np.argsort(perm))
    assert view.shape == tuple(shape)
    return view


@st.composite
def regions(draw):
    ndim = draw(st.integers(1, 4))
    # Keep the whole tensor small but let one axis be long, so runs cross
    # many 64-element vector groups at unaligned offsets.
    limit = {1: 3000, 2: 300, 3: 30, 4: 12}[ndim]
    gshape = tuple(draw(st.lists(st.integers(1, limit), min_size=ndim, max_size=ndim)))
    if math.prod(gshape) > 20000:
        gshape = gshape[:-1] + (max(1, 20000 // math.prod(gshape[:-1])),)
    start, size = [], []
    for g in gshape:
        s = draw(st.integers(0, g - 1))
        start.append(s)
        size.append(draw(st.integers(1, g - s)))
    return gshape, tuple(start), tuple(size)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    region=regions(),
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from(LAYOUTS),
    name=st.sampled_from(sorted(INITIALIZERS)),
    seed=st.integers(0, 2**64 - 1),
    named=st.booleans(),
)
def test_block_equals_slice_of_whole(region, dtype, layout, name, seed, named):
    gshape, start, size = region
    init, kwargs, needs_fans = INITIALIZERS[name]
    if needs_fans and len(gshape) < 2:
        gshape, start, size = gshape + (3,), start + (1,), size + (2,)
    generator = varinit.Generator(seed).stream("w") if named else seed
    whole = init(np.empty(gshape, dtype), generator=generator, **kwargs)
    rng = np.random.default_rng(seed % 1000)
    block = _block_buffer(size, dtype, layout, rng)
    out = init(block, generator=generator, global_shape=gshape, start=start, **kwargs)
    assert out is block
    expected = whole[tuple(slice(s, s + n) for s, n in zip(start, size))]
    np.testing.assert_array_equal(_bits(block), _bits(expected))


@settings(max_examples=60, deadline=None)
@given(region=regions(), axis_pick=st.integers(0, 3), seed=st.integers(0, 2**32))
def test_tiling_along_one_axis_reassembles_whole(region, axis_pick, seed):
    """Cutting the global tensor into slabs along any axis, at arbitrary cut points, gives it back."""
    gshape, _, _ = region
    axis = axis_pick % len(gshape)
    whole = varinit.normal_(np.empty(gshape, np.float32), generator=seed)
    rng = np.random.default_rng(seed)
    cuts = sorted(set(rng.integers(0, gshape[axis] + 1, size=3).tolist()) | {0, gshape[axis]})
    out = np.full(gshape, np.nan, np.float32)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        idx = [slice(None)] * len(gshape)
        idx[axis] = slice(lo, hi)
        start = [0] * len(gshape)
        start[axis] = lo
        block = np.empty(out[tuple(idx)].shape, np.float32)
        varinit.normal_(block, generator=seed, global_shape=gshape, start=start)
        out[tuple(idx)] = block
    np.testing.assert_array_equal(_bits(out), _bits(whole))


def test_single_elements_at_every_index():
    gshape = (3, 5, 70)
    whole = varinit.trunc_normal_(np.empty(gshape, np.float64), std=0.5, generator=9)
    for index in [(0, 0, 0), (2, 4, 69), (1, 2, 63), (1, 2, 64), (0, 3, 31), (2, 0, 1)]:
        one = np.empty((1, 1, 1), np.float64)
        varinit.trunc_normal_(one, std=0.5, generator=9, global_shape=gshape, start=index)
        assert one[0, 0, 0].tobytes() == whole[index].tobytes()


def test_torch_block_matches_numpy_whole():
    torch = pytest.importorskip("torch")
    gshape = (40, 70)
    g = varinit.Generator(3).stream("fc.weight")
    whole = varinit.kaiming_normal_(np.empty(gshape, ml_dtypes.bfloat16), generator=g)
    block = torch.empty(13, 29, dtype=torch.bfloat16)
    varinit.kaiming_normal_(block, generator=g, global_shape=gshape, start=(5, 33))
    got = block.view(torch.int16).numpy()
    np.testing.assert_array_equal(got, whole[5:18, 33:62].view(np.int16))


def test_fans_come_from_global_shape():
    # The std of a kaiming block is 1/sqrt(global fan_in), not of the block's own shape.
    g = 17
    whole = varinit.kaiming_uniform_(np.empty((8, 1000), np.float64), generator=g)
    block = varinit.kaiming_uniform_(np.empty((8, 10), np.float64), generator=g,
                                     global_shape=(8, 1000), start=(0, 500))
    np.testing.assert_array_equal(block, whole[:, 500:510])
    assert np.abs(block).max() <= math.sqrt(6 / 1000)


@pytest.mark.parametrize(
    "global_shape, start, match",
    [
        ((10, 10), (8, 0), "global_shape"),           # block sticks out along axis 0
        ((10, 10), (0, 7), "start 7 \\+ size 4"),      # ... along axis 1
        ((4, 4), (0, 0), "global_shape"),              # global smaller than block
        ((10, 10, 10), (0, 0), "global_shape must have 2 entries"),
        ((10, 10), (0,), "start must have 2 entries"),
        ((10, 10), (-1, 0), "start must hold non-negative"),
        ((10, -10), (0, 0), "global_shape must hold non-negative"),
    ],
)
@pytest.mark.parametrize("name", ["normal_", "kaiming_normal_", "variance_scaling_", "lecun_uniform_"])
def test_bad_region_raises_and_leaves_array_untouched(global_shape, start, match, name):
    init, kwargs, _ = INITIALIZERS[name]
    arr = np.full((5, 4), 7.0, np.float32)
    with pytest.raises(ValueError, match=match):
        init(arr, generator=1, global_shape=global_shape, start=start, **kwargs)
    assert (arr == 7.0).all()


@pytest.mark.parametrize(
    "global_shape, start, match",
    [((10, 10.0), (0, 0), "global_shape must hold integers"),
     ((10, 10), (0, "1"), "start must hold integers"),
     (10, (0, 0), "global_shape must be a sequence"),
     ((10, 10), (True, 0), "start must hold integers")],
)
def test_region_types_raise_type_error(global_shape, start, match):
    arr = np.full((5, 4), 7.0, np.float32)
    with pytest.raises(TypeError, match=match):
        varinit.uniform_(arr, generator=1, global_shape=global_shape, start=start)
    assert (arr == 7.0).all()


def test_start_alone_means_block_of_same_global_shape():
    # start without global_shape: global = block shape, so only start 0 fits.
    arr = np.full((3, 3), 7.0, np.float32)
    with pytest.raises(ValueError, match="global_shape"):
        varinit.normal_(arr, generator=1, start=(1, 0))
    assert (arr == 7.0).all()
    whole = varinit.normal_(np.empty((3, 3), np.float32), generator=1)
    np.testing.assert_array_equal(varinit.normal_(arr, generator=1, start=(0, 0)), whole)
