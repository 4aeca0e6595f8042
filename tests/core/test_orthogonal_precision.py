"""orthogonal_ factors its Gaussian in the target's precision: float32 for float32,
float16 and bfloat16 targets, float64 for float64 ones (test_golden pins that path
against NumPy's QR). The Gaussian is the same in both: the float64 normal_ fill of
(rows, prod(rest)), rounded to float32 for a float32 QR, so a float32 target is
the float64 target's matrix up to float32 rounding.

The float32 result must still be the Q of that Gaussian's QR with the sign
correction (R's diagonal positive), orthogonal to float32 precision and
Haar-distributed. Statistical checks use fixed seeds; a correct implementation
fails each with probability below 1e-7 (stated at each threshold).
"""
import math
import sys
import tracemalloc

import ml_dtypes
import numpy as np
import pytest

import varinit
from varinit import init as init_module

SEED = 0x0A7B_2026


def gaussian_of(shape):
    """The standard normal matrix orthogonal_ factors for a target of this shape (in
    float64; a float32 QR factors it rounded to float32)."""
    rows, cols = shape[0], math.prod(shape[1:])
    return varinit.normal_(np.empty((rows, cols), np.float64), generator=SEED)


def haar_q(gaussian):
    """Q of the QR of `gaussian` (or of its transpose, when wide) in float64, columns
    multiplied by sign(diag(R)): the matrix orthogonal_ documents (Mezzadri 2007)."""
    g = np.asarray(gaussian, np.float64)
    tall = g if g.shape[0] >= g.shape[1] else g.T
    q, r = np.linalg.qr(tall)
    q = q * np.where(np.diagonal(r) < 0, -1.0, 1.0)
    return q if tall is g else q.T


def gram_error(m):
    m = np.asarray(m, np.float64)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    return np.abs(gram - np.eye(len(gram))).max()


@pytest.mark.parametrize("shape", [(160, 160), (200, 60), (60, 200), (32, 8, 3, 3)])
def test_float32_target_is_the_signed_qr_of_the_gaussian(shape):
    got = varinit.orthogonal_(np.empty(shape, np.float32), gain=1.0, generator=SEED)
    assert got.dtype == np.float32
    got = got.reshape(shape[0], -1).astype(np.float64)
    want = haar_q(gaussian_of(shape))
    # A float32 Householder QR gives Q to ~1e-6 relative (1.1e-6 to 1.8e-6 measured
    # from 256^2 to 4096^2); any other Gaussian or sign rule is off by O(1).
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
    # R = Q^T G is upper triangular with a positive diagonal: Q is the QR's Q, signs corrected
    g = gaussian_of(shape)
    r = got.T @ g if got.shape[0] >= got.shape[1] else got @ g.T
    scale = np.abs(r).max()
    assert np.abs(np.tril(r, -1)).max() < 1e-5 * scale
    assert (np.diagonal(r) > 0).all()


@pytest.mark.parametrize("shape,blocks", [((512, 512), 1), ((500, 200), 1), ((200, 500), 1),
                                          ((512, 128), 4), ((12, 2, 2), 3)])
def test_float32_result_is_orthogonal_to_float32_precision(shape, blocks):
    gain = 1.7
    w = varinit.orthogonal_(np.empty(shape, np.float32), gain, generator=SEED, blocks=blocks)
    m = w.reshape(shape[0], -1).astype(np.float64) / gain
    step = shape[0] // blocks
    for lo in range(0, shape[0], step):
        # measured up to 7.3e-7 (up to 4096^2); the float64 QR rounded to float32 gives ~1e-8
        assert gram_error(m[lo:lo + step]) < 5e-6


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_half_precision_targets_are_the_float32_result_rounded(dtype):
    # as for every other fill: a float16/bfloat16 value is the float32 value rounded to nearest
    for shape, blocks in [((40, 30), 1), ((30, 40), 1), ((24, 5, 2), 3)]:
        narrow = varinit.orthogonal_(np.empty(shape, dtype), 2.0, generator=SEED, blocks=blocks)
        single = varinit.orthogonal_(np.empty(shape, np.float32), 2.0, generator=SEED, blocks=blocks)
        assert narrow.tobytes() == single.astype(dtype).tobytes()


def test_float64_target_keeps_float64_precision():
    w = varinit.orthogonal_(np.empty((300, 200), np.float64), generator=SEED)
    assert gram_error(w) < 1e-13
    np.testing.assert_allclose(w, haar_q(gaussian_of((300, 200))), rtol=0, atol=1e-13)


@pytest.mark.parametrize("shape,blocks", [((256, 256), 1), ((300, 100), 1), ((100, 300), 1), ((64, 4, 3), 2)])
def test_float32_and_float64_targets_get_one_matrix(shape, blocks):
    # the same Gaussian in both precisions: the float32 matrix is the float64 one up to rounding
    single = varinit.orthogonal_(np.empty(shape, np.float32), 0.5, generator=SEED, blocks=blocks)
    double = varinit.orthogonal_(np.empty(shape, np.float64), 0.5, generator=SEED, blocks=blocks)
    assert np.linalg.norm(single - double) / np.linalg.norm(double) < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1024, 1024), (1024, 256), (256, 1024)])
def test_diagonal_signs_are_fair_coins(shape, dtype):
    # For Haar Q, D Q is Haar for every fixed diagonal D = diag(+-1), so the signs of
    # Q's diagonal entries are independent fair coins: their count of + is exactly
    # Binomial(n, 1/2). Without the sign correction LAPACK's Q has 243 of 1024 (square)
    # and 21 of 256 (tall) positive on this seed.
    n = min(shape)
    w = varinit.orthogonal_(np.empty(shape, dtype), generator=SEED)
    positives = int((np.diagonal(w) > 0).sum())
    # |z| < 5.45: two-sided tail of the normal approximation below 5.1e-8
    assert abs(positives - n / 2) < 5.45 * math.sqrt(n) / 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 8), (12, 5), (5, 12)])
def test_fixed_projections_have_the_haar_law(shape, dtype):
    # For Haar Q (or its first rows/columns) and fixed unit vectors u, v,
    # t = u^T Q v is one coordinate of a uniform point on the sphere S^(d-1),
    # d = max(rows, cols): (t + 1) / 2 ~ Beta((d - 1) / 2, (d - 1) / 2) exactly.
    stats = pytest.importorskip("scipy.stats")
    gain = 1.7
    rows, cols = shape
    d = max(rows, cols)
    generator = varinit.Generator(SEED)
    samples = np.stack([varinit.orthogonal_(np.empty(shape, dtype), gain, generator).astype(np.float64) / gain
                        for _ in range(3000)])
    u = np.ones(rows) / math.sqrt(rows)
    v = np.arange(1.0, cols + 1) / np.linalg.norm(np.arange(1.0, cols + 1))
    law = stats.beta((d - 1) / 2, (d - 1) / 2)
    for t in (samples[:, 0, 0], np.einsum("i,kij,j->k", u, samples, v)):
        # each KS p-value is uniform under the law: P(p < 5e-8) = 5e-8
        assert stats.kstest((t + 1) / 2, law.cdf).pvalue > 5e-8


def test_without_scipy_numpy_factors_the_same_gaussian(monkeypatch):
    with_scipy = varinit.orthogonal_(np.empty((200, 120), np.float32), generator=SEED)
    monkeypatch.setitem(sys.modules, "scipy.linalg", None)   # `from scipy.linalg import ...` fails
    init_module._householder_routines.cache_clear()
    try:
        assert init_module._householder_routines(np.dtype(np.float32)) is None
        without = varinit.orthogonal_(np.empty((200, 120), np.float32), generator=SEED)
        wide = varinit.orthogonal_(np.empty((12, 40), np.float32), generator=SEED, blocks=3)
    finally:
        init_module._householder_routines.cache_clear()
    assert without.dtype == np.float32
    # NumPy's QR runs in float64 on the Gaussian rounded to float32: that Q, rounded once
    rounded = gaussian_of((200, 120)).astype(np.float32)
    np.testing.assert_allclose(without, haar_q(rounded), rtol=0, atol=1e-7)
    assert np.linalg.norm(without - with_scipy) / np.linalg.norm(without) < 1e-5
    for lo in range(0, 12, 4):
        block = gaussian_of((12, 40)).astype(np.float32)[lo:lo + 4]
        np.testing.assert_allclose(wide[lo:lo + 4], haar_q(block), rtol=0, atol=1e-7)


def test_scipy_path_factors_in_the_gaussian_buffer():
    # The float32 Gaussian (2 MiB here, drawn through a 1 MiB float64 chunk) is
    # factored in its own memory and Q is formed in the target's: with LAPACK's
    # workspace (512 KiB) 1.75x the target. The previous float64 path held a float64
    # Gaussian (4 MiB), NumPy's float64 copies of it and of Q, and the scaled
    # result: 8x or more.
    pytest.importorskip("scipy.linalg")
    target = np.empty((1024, 512), np.float32)
    varinit.orthogonal_(target, generator=SEED)   # SciPy imported, LAPACK loaded
    tracemalloc.start()
    try:
        varinit.orthogonal_(target, generator=SEED)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * target.nbytes


def test_a_failed_block_leaves_the_target_untouched(monkeypatch):
    factor = init_module._factor
    calls = []

    def fail_on_second_block(*args):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no room for the second block")
        return factor(*args)

    monkeypatch.setattr(init_module, "_factor", fail_on_second_block)
    target = np.full((8, 4), 7.0, np.float32)
    with pytest.raises(MemoryError):
        varinit.orthogonal_(target, generator=SEED, blocks=2)
    assert (target == 7.0).all()


def test_torch_tensor_gets_the_ndarray_values_on_this_machine():
    torch = pytest.importorskip("torch")
    for dtype, torch_dtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        t = varinit.orthogonal_(torch.empty(60, 3, 5, dtype=torch_dtype), generator=SEED)
        a = varinit.orthogonal_(np.empty((60, 3, 5), dtype), generator=SEED)
        assert t.numpy().tobytes() == a.tobytes()
