"""The value at each logical (row-major) index does not depend on memory layout.

Every target below is filled with the same seed and compared bit for bit with
the C-ordered fill of the same shape and dtype.
"""
import math
import os
import warnings

import ml_dtypes
import numpy as np
import pytest

import varinit

SEED = 424242
SHAPE = (13, 70)   # 910 elements: several float32/float64 groups and ragged runs
FILLS = {
    "uniform": lambda t, g: varinit.uniform_(t, -1.0, 3.0, generator=g),
    "normal": lambda t, g: varinit.normal_(t, 0.5, 2.0, generator=g),
    "trunc_normal": lambda t, g: varinit.trunc_normal_(t, 0.0, 1.0, -1.0, 2.5, generator=g),
    "trunc_normal_tail": lambda t, g: varinit.trunc_normal_(t, 0.0, 1.0, 4.0, 5.0, generator=g),
    "kaiming_normal": lambda t, g: varinit.kaiming_normal_(t, generator=g),
}
DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]


def reference(fill, shape, dtype):
    return FILLS[fill](np.empty(shape, dtype), SEED)


def misaligned(shape, dtype):
    """A writable array whose data pointer is offset by one byte from an aligned buffer."""
    itemsize = np.dtype(dtype).itemsize
    buf = np.zeros(math.prod(shape) * itemsize + 1, np.uint8)
    arr = buf[1:].view(dtype).reshape(shape)
    assert not arr.flags.aligned or itemsize == 1
    return arr


LAYOUTS = {
    "fortran": lambda s, d: np.empty(s, d, order="F"),
    "transposed": lambda s, d: np.empty(s[::-1], d).T,
    "strided": lambda s, d: np.zeros((2 * s[0], 3 * s[1] + 1), d)[::2, 1::3],
    "negative_strides": lambda s, d: np.zeros(s, d)[::-1],
    "both_axes_reversed": lambda s, d: np.zeros(s, d)[::-1, ::-1],
    "reversed_transposed_strided": lambda s, d: np.zeros((3 * s[1], s[0]), d)[::-3, :].T,
    "non_native_byte_order": lambda s, d: np.zeros(s, np.dtype(d).newbyteorder(">" if np.little_endian else "<")),
    "misaligned": misaligned,
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("fill", sorted(FILLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layout_invariance(layout, fill, dtype):
    target = LAYOUTS[layout](SHAPE, dtype)
    out = FILLS[fill](target, SEED)
    assert out is target
    assert target.shape == SHAPE
    want = reference(fill, SHAPE, dtype)
    np.testing.assert_array_equal(target, want)
    assert target.astype(np.dtype(dtype).newbyteorder("=")).tobytes() == want.tobytes()


@pytest.mark.parametrize("layout", ["fortran", "transposed", "strided", "negative_strides", "misaligned"])
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_layout_invariance_half_precision(layout, dtype):
    target = LAYOUTS[layout](SHAPE, dtype)
    FILLS["normal"](target, SEED)
    assert np.ascontiguousarray(target).tobytes() == reference("normal", SHAPE, dtype).tobytes()


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("fill", sorted(FILLS))
def test_half_precision_is_float32_rounded_to_nearest_even(fill, dtype):
    # ml_dtypes and NumPy convert float32 -> float16/bfloat16 with round-to-nearest-even.
    f32 = reference(fill, SHAPE, np.float32)
    if fill == "uniform":
        # U(-1, 3) is clamped into [-1, largest value of the dtype below 3] before rounding
        below_3 = np.nextafter(dtype(3.0), dtype(0.0))
        f32 = np.clip(f32, np.float32(-1.0), np.float32(below_3))
    assert reference(fill, SHAPE, dtype).tobytes() == f32.astype(dtype).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (1000,), (2, 3, 4, 5, 6), (3, 1, 4, 1, 5)])
def test_any_dimensionality_matches_flat_fill(shape, dtype):
    # row-major logical index: an n-d fill equals the flat fill of the same size, reshaped
    n = math.prod(shape)
    flat = FILLS["normal"](np.empty(n, dtype), SEED)
    got = FILLS["normal"](np.empty(shape, dtype), SEED)
    assert got.tobytes() == flat.tobytes()


def test_five_d_views():
    shape = (2, 3, 4, 5, 6)
    base = np.zeros((4, 3, 8, 5, 12), np.float32)
    view = base[::2, :, ::-2, :, 1::2]
    assert view.shape == shape
    FILLS["normal"](view, SEED)
    assert np.array_equal(view, reference("normal", shape, np.float32))
    permuted = np.empty(shape[::-1], np.float64).transpose(4, 3, 2, 1, 0)
    FILLS["uniform"](permuted, SEED)
    assert np.array_equal(permuted, reference("uniform", shape, np.float64))


def test_strided_fill_leaves_the_gaps_alone():
    base = np.full((2 * SHAPE[0], 3 * SHAPE[1] + 1), 7.0, np.float32)
    FILLS["normal"](base[::2, 1::3], SEED)
    mask = np.ones(base.shape, bool)
    mask[::2, 1::3] = False
    assert np.all(base[mask] == 7.0)


def test_memmap(tmp_path):
    path = os.fspath(tmp_path / "weights.bin")
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=SHAPE)
    FILLS["trunc_normal"](mm, SEED)
    mm.flush()
    del mm
    back = np.memmap(path, dtype=np.float32, mode="r", shape=SHAPE)
    assert np.array_equal(back, reference("trunc_normal", SHAPE, np.float32))
    with pytest.raises(ValueError, match="read-only"):
        FILLS["trunc_normal"](back, SEED)


def test_blocks_of_a_virtual_tensor_match_the_whole():
    whole = reference("normal", SHAPE, np.float32)
    for r0, r1, c0, c1 in [(0, 13, 0, 70), (3, 9, 5, 64), (12, 13, 69, 70), (0, 1, 0, 70), (5, 11, 0, 1)]:
        block = varinit.normal_(np.empty((r1 - r0, c1 - c0), np.float32), 0.5, 2.0, generator=SEED,
                                global_shape=SHAPE, start=(r0, c0))
        assert block.tobytes() == np.ascontiguousarray(whole[r0:r1, c0:c1]).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), (3, 0, 2)])
def test_zero_element_arrays_are_a_noop_and_use_no_stream(shape, dtype):
    calls = {
        "uniform_": lambda t, g: varinit.uniform_(t, generator=g),
        "normal_": lambda t, g: varinit.normal_(t, generator=g),
        "trunc_normal_": lambda t, g: varinit.trunc_normal_(t, generator=g),
    }
    if len(shape) >= 2:
        calls.update({
            "xavier_uniform_": lambda t, g: varinit.xavier_uniform_(t, generator=g),
            "xavier_normal_": lambda t, g: varinit.xavier_normal_(t, generator=g),
            "kaiming_uniform_": lambda t, g: varinit.kaiming_uniform_(t, generator=g),
            "kaiming_normal_": lambda t, g: varinit.kaiming_normal_(t, generator=g),
            "variance_scaling_": lambda t, g: varinit.variance_scaling_(t, generator=g),
            "lecun_normal_": lambda t, g: varinit.lecun_normal_(t, generator=g),
            "lecun_uniform_": lambda t, g: varinit.lecun_uniform_(t, generator=g),
            "orthogonal_": lambda t, g: varinit.orthogonal_(t, generator=g),
        })
    if len(shape) == 2:
        calls["sparse_"] = lambda t, g: varinit.sparse_(t, 0.5, generator=g)
        calls["eye_"] = lambda t, g: varinit.eye_(t)
    if len(shape) == 3:
        calls["dirac_"] = lambda t, g: varinit.dirac_(t)
    for name, call in calls.items():
        g = varinit.Generator(9).set_state((9, 4))
        target = np.empty(shape, dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            assert call(target, g) is target, name
        assert g.get_state() == (9, 4), name


def test_zero_element_fill_uses_no_default_stream():
    varinit.manual_seed(123)
    varinit.normal_(np.empty((0, 4), np.float32))
    after_empty = varinit.normal_(np.empty(8, np.float32))
    varinit.manual_seed(123)
    assert np.array_equal(after_empty, varinit.normal_(np.empty(8, np.float32)))
