"""Philox4x32-10 known-answer vectors, and the word layout of csrc/dist/sample.h
re-derived in Python from those words.

The Python twins below follow the *documented* layout (the comment at the top
of csrc/dist/sample.h) using only the Philox words and the sampling formulas,
so they pin the contract independently of the C walker and kernels: uniforms
bit for bit, normals and truncated normals to the accuracy of libm/SciPy.
"""
import math

import numpy as np
import pytest
from scipy import special

import varinit
from varinit import _core

MASK32 = 0xFFFFFFFF

# Random123's kat_vectors for philox4x32_10: (counter, key, expected output).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

KEY = 0x0123456789ABCDEF      # both key words non-zero
STREAM = (7 << 32) | 5        # both stream words non-zero
N = 1100                      # several float32 (64) and float64 (32) groups plus a ragged tail


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected):
    assert _core.philox4x32_10(counter, key) == expected


def block_words(key, stream, block):
    """Words of Philox block `block` of `stream`: counter (block lo, hi, stream lo, hi)."""
    counter = (block & MASK32, block >> 32, stream & MASK32, stream >> 32)
    return _core.philox4x32_10(counter, (key & MASK32, key >> 32))


def f32_word(key, stream, i):
    """Word of float32 element i: element 64g + 16w + l <- word w of block 16g + l."""
    g, j = divmod(i, 64)
    return block_words(key, stream, 16 * g + j % 16)[j // 16]


def f64_word(key, stream, i):
    """64-bit word of float64 element i: element 32g + 16h + l <- (w[2h+1] << 32) | w[2h]."""
    g, j = divmod(i, 32)
    w = block_words(key, stream, 16 * g + j % 16)
    h = j // 16
    return (w[2 * h + 1] << 32) | w[2 * h]


def fill_core(dtype, dist, p, n=N, key=KEY, stream=STREAM, global_shape=None, start=None):
    out = np.empty(n, dtype)
    _core.fill(out, dist, *p, key, stream, global_shape, start)
    return out


def test_uniform_f32_matches_documented_layout_bit_for_bit():
    lo, hi = -0.75, 2.5
    got = fill_core(np.float32, _core.UNIFORM, (lo, hi, 0.0, 0.0))
    lo_f, scale_f = np.float32(lo), np.float32(hi - lo)
    want = np.array([lo_f + scale_f * (np.float32(f32_word(KEY, STREAM, i) >> 8) * np.float32(2.0**-24))
                     for i in range(N)], np.float32)
    assert got.tobytes() == want.tobytes()


def test_uniform_f64_matches_documented_layout_bit_for_bit():
    lo, hi = -0.75, 2.5
    got = fill_core(np.float64, _core.UNIFORM, (lo, hi, 0.0, 0.0))
    want = np.array([lo + (hi - lo) * ((f64_word(KEY, STREAM, i) >> 11) * 2.0**-53) for i in range(N)])
    assert got.tobytes() == want.tobytes()


def test_block_index_high_word_is_used():
    # Elements past 2**38 use Philox blocks >= 2**32: the counter's second word.
    first = 2**39 + 5
    got = fill_core(np.float64, _core.UNIFORM, (0.0, 1.0, 0.0, 0.0), n=100,
                    global_shape=(2**40,), start=(first,))
    want = np.array([(f64_word(KEY, STREAM, first + k) >> 11) * 2.0**-53 for k in range(100)])
    assert got.tobytes() == want.tobytes()


def test_public_api_uses_seed_as_key_and_call_count_as_stream():
    g = varinit.Generator(KEY)
    for _ in range(3):
        varinit.uniform_(np.empty(1, np.float32), generator=g)
    got = varinit.uniform_(np.empty(N, np.float64), generator=g)     # stream 3
    want = np.array([(f64_word(KEY, 3, i) >> 11) * 2.0**-53 for i in range(N)])
    assert got.tobytes() == want.tobytes()


def angle_in_turns(quadrant, t, bits):
    return (quadrant + t / 2.0**bits) / 4.0


def test_normal_f32_pairs_follow_documented_layout():
    # Pair (w[2h], w[2h+1]) of block 16g + l: cosine at 64g + 32h + l, sine at + 16.
    got = fill_core(np.float32, _core.NORMAL, (0.0, 1.0, 0.0, 0.0), n=4 * 64)
    want = np.empty_like(got, dtype=np.float64)
    for g in range(4):
        for l in range(16):
            w = block_words(KEY, STREAM, 16 * g + l)
            for h in range(2):
                radius = math.sqrt(-2.0 * math.log((((w[2 * h] >> 1) | 1) * 2.0**-31)))
                turn = angle_in_turns(w[2 * h + 1] >> 30, (w[2 * h + 1] >> 6) & 0xFFFFFF, 24)
                want[64 * g + 32 * h + l] = radius * math.cos(2 * math.pi * turn)
                want[64 * g + 32 * h + 16 + l] = radius * math.sin(2 * math.pi * turn)
    # float32 polynomials: a few ulps of |z| <= 6.6
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=4e-6)


def test_normal_f64_pairs_follow_documented_layout():
    # u1 from the 64-bit word h = 0, the angle from h = 1: cosine at 32g + l, sine at 32g + 16 + l.
    got = fill_core(np.float64, _core.NORMAL, (0.0, 1.0, 0.0, 0.0), n=4 * 32)
    want = np.empty_like(got)
    for g in range(4):
        for l in range(16):
            w = block_words(KEY, STREAM, 16 * g + l)
            v0, v1 = (w[1] << 32) | w[0], (w[3] << 32) | w[2]
            radius = math.sqrt(-2.0 * math.log(((v0 >> 11) | 1) * 2.0**-53))
            turn = angle_in_turns(v1 >> 62, (v1 >> 9) & ((1 << 53) - 1), 53)
            want[32 * g + l] = radius * math.cos(2 * math.pi * turn)
            want[32 * g + 16 + l] = radius * math.sin(2 * math.pi * turn)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def trunc_reference(u, alpha, beta):
    """Inverse CDF from whichever side of [alpha, beta] has the smaller probability."""
    pa, qb = special.ndtr(alpha), special.ndtr(-beta)
    width = special.ndtr(beta) - pa if beta <= 0 else special.ndtr(-alpha) - qb
    below, above = pa + u * width, qb + (1.0 - u) * width
    return special.ndtri(below) if below <= above else -special.ndtri(above)


@pytest.mark.parametrize("alpha,beta", [(-2.0, 2.0), (4.0, 5.0), (-math.inf, -6.0)])
def test_trunc_normal_f64_is_inverse_cdf_of_documented_word(alpha, beta):
    got = fill_core(np.float64, _core.TRUNC_NORMAL, (0.0, 1.0, alpha, beta), n=200)
    want = [trunc_reference(((f64_word(KEY, STREAM, i) >> 11) | 1) * 2.0**-53, alpha, beta)
            for i in range(200)]
    # AS 241 (PPND16) and the core's CDF are good to ~1e-15; SciPy to ~1e-16.
    np.testing.assert_allclose(got, want, rtol=1e-11)


@pytest.mark.parametrize("alpha,beta", [(-2.0, 2.0), (4.0, 5.0)])
def test_trunc_normal_f32_is_inverse_cdf_of_documented_word(alpha, beta):
    got = fill_core(np.float32, _core.TRUNC_NORMAL, (0.0, 1.0, alpha, beta), n=200)
    want = [trunc_reference(((f32_word(KEY, STREAM, i) >> 8) | 1) * 2.0**-24, alpha, beta)
            for i in range(200)]
    # PPND7 is good to ~1e-7 relative; float32 probabilities add a few ulps near the mode.
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
