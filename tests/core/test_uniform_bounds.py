"""uniform_ returns values in [a, b) in every dtype, never b (stream version 2).

a + (b - a) u is computed in float32 (float64 for float64) and clamped to the
dtype's smallest value >= a and largest value < b. Before the clamp, rounding
returned b itself: for U(0, 1) about 2e-3 of bfloat16 values and 2.5e-4 of
float16 values were 1.0, and float32 U(1, 2) gave 2.0 once in 2^24 values.
These tests are exact (no statistics): the fixed seeds below produced values
outside [a, b) before the clamp.
"""
import math

import ml_dtypes
import numpy as np
import pytest

import varinit

DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
INTERVALS = [(0.0, 1.0), (-1.0, 1.0), (-0.5, 1.5), (1.0, 2.0), (0.3, 0.31), (1.0001, 1.01),
             (-3.0, -1e-30), (0.7, 0.7 + 1e-7)]
N = 1 << 20


def seeded(seed=20261122):
    return varinit.Generator(seed)


def largest_below(dtype, b):
    value = dtype(b)
    while float(value) >= b:
        value = np.nextafter(value, dtype(-math.inf))
    return value


def smallest_at_or_above(dtype, a):
    value = dtype(a)
    while float(value) < a:
        value = np.nextafter(value, dtype(math.inf))
    return value


def representable(dtype, a, b):
    return float(smallest_at_or_above(dtype, a)) < b


@pytest.mark.parametrize("dtype,a,b", [
    pytest.param(dtype, a, b, id=f"{np.dtype(dtype).name}-U({a},{b})")
    for dtype in DTYPES for a, b in INTERVALS
    if representable(dtype, a, b)  # the others: test_empty_interval_is_refused
])
def test_values_in_half_open_interval(dtype, a, b):
    x = varinit.uniform_(np.empty(N, dtype), a, b, generator=seeded()).astype(np.float64)
    assert x.min() >= a
    assert x.max() < b


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=lambda d: np.dtype(d).name)
def test_half_precision_is_the_float32_sample_clamped_then_rounded(dtype):
    # The rule, value by value: the float32 sample of the same (seed, stream, index),
    # clamped to [smallest value >= a, largest value < b] of the dtype, rounded to nearest.
    # Only the values that rounded to b (or below a) change, and they move by one step.
    a, b = 0.0, 1.0
    x = varinit.uniform_(np.empty(1 << 22, dtype), a, b, generator=seeded(0))
    f32 = varinit.uniform_(np.empty(1 << 22, np.float32), a, b, generator=seeded(0))
    lo, hi = smallest_at_or_above(dtype, a), largest_below(dtype, b)
    expected = np.clip(f32, np.float32(lo), np.float32(hi)).astype(dtype)
    assert x.view(np.uint16).tobytes() == expected.view(np.uint16).tobytes()
    # what the clamp changed: the values that rounded to 1.0 under stream version 1 (8361
    # of these 4,194,304 in bfloat16, 1039 in float16), now the largest value below 1
    rounded_to_b = int((f32.astype(dtype).astype(np.float64) == b).sum())
    assert rounded_to_b == (8361 if dtype is ml_dtypes.bfloat16 else 1039)
    assert int((x == hi).sum()) >= rounded_to_b


def test_float32_u12_never_returns_2():
    # Int seed 0 (key 0, stream 0): element 9320232 of float32 U(1, 2) was 2.0 under stream
    # version 1 (its word's top 24 bits are all ones: 1 + (1 - 2^-24) rounds to 2).
    hit = 9320232
    x = varinit.uniform_(np.empty(1 << 24, np.float32), 1.0, 2.0, generator=0)
    assert x.max() < 2.0 and x.min() >= 1.0
    assert x[hit] == np.nextafter(np.float32(2.0), np.float32(0.0))
    # a pure function of (seed, stream, index): the block around it agrees
    block = varinit.uniform_(np.empty(100, np.float32), 1.0, 2.0, generator=0,
                             global_shape=(1 << 24,), start=(hit - 37,))
    assert block.tobytes() == x[hit - 37:hit + 63].tobytes()


def test_float32_values_never_below_a():
    # float32(0.7) < 0.7: U(0.7, 0.7 + 1e-7) rounded half of its values to it before the clamp
    x = varinit.uniform_(np.empty(N, np.float32), 0.7, 0.7 + 1e-7, generator=seeded())
    assert x.astype(np.float64).min() >= 0.7
    assert set(np.unique(x).tolist()) == {float(smallest_at_or_above(np.float32, 0.7))}


def test_float64_far_from_zero():
    # doubles near 1e15 are 1/8 apart: 1e15 + 0.25 u rounded to b = 1e15 + 0.25 for a quarter
    x = varinit.uniform_(np.empty(N, np.float64), 1e15, 1e15 + 0.25, generator=seeded())
    assert x.min() >= 1e15 and x.max() < 1e15 + 0.25
    assert set(np.unique(x).tolist()) == {1e15, 1e15 + 0.125}


@pytest.mark.parametrize("dtype,a,b", [
    (np.float16, 1.0001, 1.0002),
    (ml_dtypes.bfloat16, 1.001, 1.007),
    (np.float32, 1.0 + 1e-12, 1.0 + 2e-12),
    (np.float32, 0.7, 0.70000002),  # float32(0.7) < 0.7 and the next float32 is above b
])
def test_empty_interval_is_refused(dtype, a, b):
    g = seeded()
    target = np.full(8, 0.5, dtype)
    with pytest.raises(ValueError, match=r"no \w+ value lies in \[a, b\)") as info:
        varinit.uniform_(target, a, b, generator=g)
    assert repr(a) in str(info.value) and repr(b) in str(info.value)
    assert (target == dtype(0.5)).all()
    assert g.get_state() == seeded().get_state()  # no stream taken


def test_interval_holding_one_value():
    # [1, next double after 1) holds 1.0 alone: every value is 1.0, nothing refused
    x = varinit.uniform_(np.empty(1000, np.float64), 1.0, float(np.nextafter(1.0, 2.0)), generator=seeded())
    assert (x == 1.0).all()


def test_equal_bounds_give_the_constant():
    # torch.nn.init.uniform_(t, a, a) fills with a; so does varinit, in every dtype
    for dtype in DTYPES:
        x = varinit.uniform_(np.empty(100, dtype), 0.25, 0.25, generator=seeded())
        assert (x == dtype(0.25)).all()


def test_torch_bfloat16_tensor():
    torch = pytest.importorskip("torch")
    t = varinit.uniform_(torch.empty(N, dtype=torch.bfloat16), 0.0, 1.0, generator=seeded())
    assert float(t.max()) < 1.0 and float(t.min()) >= 0.0
