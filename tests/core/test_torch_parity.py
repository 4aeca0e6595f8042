"""Parity with torch.nn.init (torch==2.13.0): gains, fans, the std or bound each
function uses, exact outputs of the deterministic functions, error types, and
how torch tensors, Parameters and generators are handled.

Statistical checks use 6 standard errors (failure probability ~2e-9 for a
correct implementation); the shapes are large enough that using fan_out for
fan_in (or any other wrong fan, a factor >= sqrt(2) in std here) fails by far.
"""
import math
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch

import varinit

tinit = torch.nn.init

NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


def test_torch_version_is_the_pinned_one():
    assert torch.__version__.split("+")[0] == "2.13.0"


# ---- gains -----------------------------------------------------------------------
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("param", [None, 0, 1, 3, 0.2, -0.5, np.float64(0.1)])
def test_calculate_gain_matches_torch(nonlinearity, param):
    ours, theirs = varinit.calculate_gain(nonlinearity, param), tinit.calculate_gain(nonlinearity, param)
    assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize("nonlinearity,param", [
    ("leaky_relu", True), ("leaky_relu", "0.2"), ("leaky_relu", [0.2]),
    ("softmax", None), ("ReLU", None), ("", None), (None, None),
])
def test_calculate_gain_errors_match_torch(nonlinearity, param):
    with pytest.raises(ValueError) as theirs:
        tinit.calculate_gain(nonlinearity, param)
    with pytest.raises(ValueError) as ours:
        varinit.calculate_gain(nonlinearity, param)
    assert str(ours.value) == str(theirs.value)


# ---- fans ------------------------------------------------------------------------
SHAPES = [(1, 1), (3, 5), (5, 3), (64, 3, 7, 7), (16, 8, 3), (32, 16, 3, 3, 3),
          (4, 5, 1, 1), (7, 2, 1, 9, 2), (10, 20, 2, 3, 4, 5), (2, 3, 0)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch(shape):
    assert varinit.fans(shape) == tinit._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("shape", [(), (5,)])
def test_fans_error_matches_torch(shape):
    with pytest.raises(ValueError) as theirs:
        tinit._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError) as ours:
        varinit.fans(shape)
    assert str(ours.value) == str(theirs.value)


# ---- std and bound of the fan-based functions --------------------------------------
def torch_fan(shape, mode):
    return tinit._calculate_correct_fan(torch.empty(shape), mode)


def torch_xavier_std(shape, gain):
    fan_in, fan_out = tinit._calculate_fan_in_and_fan_out(torch.empty(shape))
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


KAIMING = [  # (shape, a, mode, nonlinearity)
    ((256, 128, 3, 3), 0, "fan_in", "leaky_relu"),
    ((256, 128, 3, 3), 0, "fan_out", "relu"),
    ((1024, 288), math.sqrt(5), "fan_in", "leaky_relu"),
    ((288, 1024), 0.2, "FAN_OUT", "leaky_relu"),
    ((128, 64, 5), 0, "fan_in", "tanh"),
    ((600, 500), 0, "fan_out", "selu"),
]


def uniform_sample_ok(x, bound):
    """U(-bound, bound): inside, reaching within 1e-3 of both ends (probability of
    missing an end: (1 - 5e-4)^n < 1e-60 for n >= 3e5), std within 6 SE."""
    n = x.size
    assert np.abs(x).max() <= bound
    assert x.max() > bound * (1 - 1e-3) and x.min() < -bound * (1 - 1e-3)
    std = bound / math.sqrt(3)
    # Var of x^2 for U(-b, b): b^4/5 - b^4/9 = 4 b^4 / 45
    z = (np.mean(x.astype(np.float64) ** 2) - std**2) / math.sqrt(4 * bound**4 / 45 / n)
    assert abs(z) < 6, z


def normal_sample_ok(x, std):
    n = x.size
    x = x.astype(np.float64)
    assert abs(x.mean()) < 6 * std / math.sqrt(n)
    z = (np.mean(x**2) - std**2) / math.sqrt(2 * std**4 / n)
    assert abs(z) < 6, z


@pytest.mark.parametrize("shape,a,mode,nonlinearity", KAIMING)
def test_kaiming_uniform_bound_matches_torch(shape, a, mode, nonlinearity):
    bound = math.sqrt(3.0) * tinit.calculate_gain(nonlinearity, a) / math.sqrt(torch_fan(shape, mode))
    x = varinit.kaiming_uniform_(np.empty(shape, np.float64), a, mode, nonlinearity, generator=11)
    uniform_sample_ok(x, bound)


@pytest.mark.parametrize("shape,a,mode,nonlinearity", KAIMING)
def test_kaiming_normal_std_matches_torch(shape, a, mode, nonlinearity):
    std = tinit.calculate_gain(nonlinearity, a) / math.sqrt(torch_fan(shape, mode))
    x = varinit.kaiming_normal_(np.empty(shape, np.float32), a, mode, nonlinearity, generator=12)
    normal_sample_ok(x, std)


@pytest.mark.parametrize("shape,gain", [((512, 256), 1.0), ((64, 32, 3, 3), math.sqrt(2)),
                                        ((100, 3000), 0.5)])
def test_xavier_matches_torch(shape, gain):
    std = torch_xavier_std(shape, gain)
    uniform_sample_ok(varinit.xavier_uniform_(np.empty(shape, np.float64), gain, generator=13),
                      math.sqrt(3) * std)
    normal_sample_ok(varinit.xavier_normal_(np.empty(shape, np.float32), gain, generator=14), std)


def test_wrong_fan_would_be_caught():
    # Power check for normal_sample_ok: fan_out instead of fan_in (std / sqrt(2)) fails.
    shape = (256, 128, 3, 3)
    x = varinit.kaiming_normal_(np.empty(shape, np.float32), mode="fan_out", generator=12)
    normal_sample_ok(x, tinit.calculate_gain("leaky_relu", 0) / math.sqrt(torch_fan(shape, "fan_out")))
    with pytest.raises(AssertionError):
        normal_sample_ok(x, tinit.calculate_gain("leaky_relu", 0) / math.sqrt(torch_fan(shape, "fan_in")))


# ---- deterministic fills: exact outputs ---------------------------------------------
@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 7), (0, 3)])
def test_eye_matches_torch(shape):
    ours = varinit.eye_(np.full(shape, 7.0, np.float32))
    np.testing.assert_array_equal(ours, tinit.eye_(torch.full(shape, 7.0)).numpy())


@pytest.mark.parametrize("shape,groups", [
    ((4, 2, 3), 1), ((2, 5, 4), 1), ((6, 4, 3, 3), 1), ((6, 4, 3, 3), 2), ((6, 4, 3, 3), 3),
    ((6, 2, 2, 4), 6), ((4, 4, 3, 3, 3), 2), ((8, 3, 2, 5, 4), 4), ((3, 3, 1, 1), 1),
])
def test_dirac_matches_torch(shape, groups):
    ours = varinit.dirac_(np.full(shape, 7.0, np.float64), groups)
    np.testing.assert_array_equal(ours, tinit.dirac_(torch.full(shape, 7.0, dtype=torch.float64), groups).numpy())


TORCH_DTYPES = {np.float16: torch.float16, np.float32: torch.float32, np.float64: torch.float64,
                ml_dtypes.bfloat16: torch.bfloat16}


def bits(x):
    """Raw bytes of a NumPy array or a torch tensor (bfloat16 through an int16 view)."""
    if isinstance(x, torch.Tensor):
        x = (x.view(torch.int16) if x.dtype == torch.bfloat16 else x).numpy()
    return x.tobytes()


@pytest.mark.parametrize("dtype", sorted(TORCH_DTYPES, key=str))
@pytest.mark.parametrize("val", [0.3, -2.5, 1e-6, 7e4, 1e30, 1e40, float("inf"), float("-inf"),
                                 float("nan"), 3, np.float32(0.1)])
def test_constant_matches_torch(dtype, val):
    shape = (3, 4, 2)
    ours = np.full(shape, 7.0, dtype)
    before = ours.tobytes()
    try:
        theirs = tinit.constant_(torch.full(shape, 7.0, dtype=TORCH_DTYPES[dtype]), val)
    except RuntimeError:  # torch: "value cannot be converted ... without overflow"
        with pytest.raises(ValueError, match="val"):
            varinit.constant_(ours, val)
        assert ours.tobytes() == before
        return
    assert bits(varinit.constant_(ours, val)) == bits(theirs)


@pytest.mark.parametrize("dtype", sorted(TORCH_DTYPES, key=str))
def test_ones_zeros_match_torch(dtype):
    shape = (3, 4, 2)
    t = TORCH_DTYPES[dtype]
    assert bits(varinit.ones_(np.full(shape, 7.0, dtype))) == bits(tinit.ones_(torch.full(shape, 7.0, dtype=t)))
    assert bits(varinit.zeros_(np.full(shape, 7.0, dtype))) == bits(tinit.zeros_(torch.full(shape, 7.0, dtype=t)))


# ---- orthogonal_ and sparse_ ---------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 5), (5, 8), (6, 6), (3, 5, 2), (40, 3, 3), (1, 4), (4, 1)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_orthogonal_is_orthogonal(shape, dtype, tol):
    gain = 1.7
    w = varinit.orthogonal_(np.empty(shape, dtype), gain, generator=21).reshape(shape[0], -1)
    m = w.astype(np.float64) / gain
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=tol * 5)
    # torch builds the same kind of matrix: same shape, same Gram identity
    t = tinit.orthogonal_(torch.empty(shape, dtype=torch.float64), gain).reshape(shape[0], -1) / gain
    tg = t.T @ t if t.shape[0] >= t.shape[1] else t @ t.T
    np.testing.assert_allclose(tg.numpy(), np.eye(gram.shape[0]), atol=1e-12)


@pytest.mark.parametrize("rows,cols", [(10, 7), (100, 30), (7, 100), (1, 5)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.33, 0.5, 0.9, 1.0])
def test_sparse_zero_count_per_column(rows, cols, sparsity):
    w = varinit.sparse_(np.empty((rows, cols), np.float32), sparsity, std=0.01, generator=31)
    want = math.ceil(sparsity * rows)
    np.testing.assert_array_equal((w == 0).sum(axis=0), np.full(cols, want))
    theirs = tinit.sparse_(torch.empty(rows, cols), sparsity, std=0.01)
    np.testing.assert_array_equal((theirs == 0).sum(dim=0).numpy(), np.full(cols, want))


def test_sparse_nonzeros_have_the_std():
    w = varinit.sparse_(np.empty((1000, 600), np.float64), 0.25, std=0.05, generator=32)
    normal_sample_ok(w[w != 0], 0.05)
    # zero positions differ between columns (a per-column permutation, not one mask)
    assert len({tuple(np.flatnonzero(w[:, j] == 0)) for j in range(w.shape[1])}) == w.shape[1]


# ---- errors ------------------------------------------------------------------------
ERROR_CASES = [  # (id, call(init module, make tensor)); torch raises -> ours raises ValueError
    ("eye_3d", lambda m, t: m.eye_(t(2, 2, 2))),
    ("eye_1d", lambda m, t: m.eye_(t(4))),
    ("dirac_2d", lambda m, t: m.dirac_(t(3, 3))),
    ("dirac_6d", lambda m, t: m.dirac_(t(2, 2, 1, 1, 1, 1))),
    ("dirac_groups_not_dividing", lambda m, t: m.dirac_(t(6, 2, 3), groups=4)),
    ("dirac_groups_zero", lambda m, t: m.dirac_(t(6, 2, 3), groups=0)),
    ("kaiming_uniform_1d", lambda m, t: m.kaiming_uniform_(t(5))),
    ("kaiming_normal_0d", lambda m, t: m.kaiming_normal_(t())),
    ("kaiming_bad_mode", lambda m, t: m.kaiming_normal_(t(3, 4), mode="fan_avg")),
    ("kaiming_bad_nonlinearity", lambda m, t: m.kaiming_uniform_(t(3, 4), nonlinearity="no_such_fn")),
    ("kaiming_bad_slope", lambda m, t: m.kaiming_uniform_(t(3, 4), a="x")),
    ("xavier_uniform_1d", lambda m, t: m.xavier_uniform_(t(5))),
    ("xavier_normal_1d", lambda m, t: m.xavier_normal_(t(5))),
    ("xavier_uniform_negative_gain", lambda m, t: m.xavier_uniform_(t(3, 4), gain=-1.0)),
    ("xavier_normal_negative_gain", lambda m, t: m.xavier_normal_(t(3, 4), gain=-1.0)),
    ("orthogonal_1d", lambda m, t: m.orthogonal_(t(5))),
    ("sparse_1d", lambda m, t: m.sparse_(t(5), 0.5)),
    ("sparse_3d", lambda m, t: m.sparse_(t(2, 3, 4), 0.5)),
    ("sparse_negative_std", lambda m, t: m.sparse_(t(4, 3), 0.5, std=-1.0)),
    ("uniform_a_greater_than_b", lambda m, t: m.uniform_(t(3, 4), 2.0, 1.0)),
    ("normal_negative_std", lambda m, t: m.normal_(t(3, 4), 0.0, -1.0)),
    ("trunc_normal_a_greater_than_b", lambda m, t: m.trunc_normal_(t(3, 4), 0.0, 1.0, 2.0, -2.0)),
]
TORCH_BAD_VALUE_ERRORS = (ValueError, RuntimeError, ZeroDivisionError)


@pytest.mark.parametrize("call", [c for _, c in ERROR_CASES], ids=[i for i, _ in ERROR_CASES])
def test_errors_match_torch(call):
    with pytest.raises(TORCH_BAD_VALUE_ERRORS) as theirs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(tinit, lambda *s: torch.full(s, 7.0))
    made = []

    def sentinel_array(*shape):
        made.append(np.full(shape, 7.0, np.float32))
        return made[-1]

    with pytest.raises(ValueError) as ours:
        call(varinit, sentinel_array)
    assert np.all(made[0] == 7.0)
    if theirs.type is ValueError:  # torch's ValueError messages are kept word for word
        assert str(ours.value) == str(theirs.value)


# ---- torch tensors as targets -------------------------------------------------------
RANDOM_CALLS = {
    "uniform_": lambda t, g: varinit.uniform_(t, -1, 1, generator=g),
    "normal_": lambda t, g: varinit.normal_(t, 0, 2, generator=g),
    "trunc_normal_": lambda t, g: varinit.trunc_normal_(t, 0, 0.02, -0.04, 0.04, generator=g),
    "xavier_uniform_": lambda t, g: varinit.xavier_uniform_(t, generator=g),
    "xavier_normal_": lambda t, g: varinit.xavier_normal_(t, generator=g),
    "kaiming_uniform_": lambda t, g: varinit.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
    "kaiming_normal_": lambda t, g: varinit.kaiming_normal_(t, generator=g),
    "orthogonal_": lambda t, g: varinit.orthogonal_(t, generator=g),
    "sparse_": lambda t, g: varinit.sparse_(t, 0.3, generator=g),
    "variance_scaling_": lambda t, g: varinit.variance_scaling_(t, 2.0, generator=g),
    "lecun_normal_": lambda t, g: varinit.lecun_normal_(t, generator=g),
    "lecun_uniform_": lambda t, g: varinit.lecun_uniform_(t, generator=g),
}
FIXED_CALLS = {
    "constant_": lambda t: varinit.constant_(t, 0.5),
    "ones_": varinit.ones_,
    "zeros_": varinit.zeros_,
    "eye_": varinit.eye_,
}


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS) + sorted(FIXED_CALLS) + ["dirac_"])
def test_same_tensor_returned_and_parameter_filled_in_place(name):
    shape = (6, 3, 3) if name == "dirac_" else (40, 30)
    p = torch.nn.Parameter(torch.full(shape, 7.0))
    ptr = p.data_ptr()
    if name in RANDOM_CALLS:
        out = RANDOM_CALLS[name](p, 5)
    elif name in FIXED_CALLS:
        out = FIXED_CALLS[name](p)
    else:
        out = varinit.dirac_(p)
    assert out is p
    assert p.data_ptr() == ptr and p.is_leaf and p.requires_grad and p.grad_fn is None
    assert not torch.any(p.detach() == 7.0)  # every element written
    p.sum().backward()  # still a usable leaf
    assert p.grad is not None and p.grad.shape == p.shape


@pytest.mark.parametrize("name", sorted(set(RANDOM_CALLS) - {"orthogonal_"}))
def test_torch_tensor_gets_the_numpy_values(name):
    # (orthogonal_ is excluded: its QR is LAPACK's; test_golden pins its Gaussian)
    t = RANDOM_CALLS[name](torch.empty(40, 30), 99)
    a = RANDOM_CALLS[name](np.empty((40, 30), np.float32), 99)
    assert t.numpy().tobytes() == a.tobytes()


def within_dtype_interval(f32, dtype, a, b):
    """f32 clamped to [smallest value of dtype >= a, largest value of dtype < b]: what a
    uniform fill of dtype rounds, so that it stays in [a, b)."""
    lo, hi = dtype(a), dtype(b)
    while float(lo) < a:
        lo = np.nextafter(lo, dtype(math.inf))
    while float(hi) >= b:
        hi = np.nextafter(hi, dtype(-math.inf))
    return np.clip(f32, np.float32(lo), np.float32(hi))


@pytest.mark.parametrize("name", sorted(set(RANDOM_CALLS) - {"orthogonal_"}))
def test_half_precision_tensors_are_the_rounded_float32_fill(name, monkeypatch):
    # uniforms are clamped into the dtype's [a, b) first: the bounds come from the call
    bounds = []
    fill = varinit._core.fill

    def recording_fill(target, dist, p0, p1, *rest):
        if dist == varinit._core.UNIFORM:
            bounds.append((p0, p1))
        return fill(target, dist, p0, p1, *rest)

    monkeypatch.setattr(varinit._core, "fill", recording_fill)
    # the one-call path computes its bounds in C: the Python path shows them to _core.fill
    monkeypatch.setattr(varinit._core, "fast_fill", lambda *args: NotImplemented)
    f32 = RANDOM_CALLS[name](torch.empty(40, 30), 7).numpy()
    bf16 = RANDOM_CALLS[name](torch.empty(40, 30, dtype=torch.bfloat16), 7)
    f16 = RANDOM_CALLS[name](torch.empty(40, 30, dtype=torch.float16), 7)
    expected = {np.float16: f32, ml_dtypes.bfloat16: f32}
    if bounds and name != "sparse_":  # sparse_'s uniforms rank rows; its values are normal
        assert len(set(bounds)) == 1
        expected = {dtype: within_dtype_interval(f32, dtype, *bounds[0]) for dtype in expected}
    assert bf16.view(torch.int16).numpy().tobytes() == expected[ml_dtypes.bfloat16].astype(
        ml_dtypes.bfloat16).tobytes()
    assert f16.numpy().tobytes() == expected[np.float16].astype(np.float16).tobytes()


def test_torch_manual_seed_makes_default_generator_reproducible():
    torch.manual_seed(1234)
    a = varinit.normal_(torch.empty(50, 20))
    b = varinit.kaiming_uniform_(torch.empty(50, 20))
    torch.manual_seed(1234)
    a2 = varinit.normal_(torch.empty(50, 20))
    b2 = varinit.kaiming_uniform_(torch.empty(50, 20))
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(varinit.normal_(torch.empty(50, 20)), a)  # consecutive calls differ
    torch.manual_seed(1235)
    assert not torch.equal(varinit.normal_(torch.empty(50, 20)), a)


def test_varinit_manual_seed_does_not_govern_torch_targets():
    torch.manual_seed(5)
    varinit.manual_seed(1)
    a = varinit.normal_(torch.empty(10, 10))
    torch.manual_seed(5)
    varinit.manual_seed(2)
    assert torch.equal(varinit.normal_(torch.empty(10, 10)), a)


def test_torch_generator_advances_and_reproduces():
    g = torch.Generator().manual_seed(77)
    state = g.get_state().clone()
    a = varinit.normal_(torch.empty(10, 10), generator=g)
    assert not torch.equal(g.get_state(), state)
    b = varinit.normal_(torch.empty(10, 10), generator=g)
    assert not torch.equal(a, b)
    g2 = torch.Generator().manual_seed(77)
    assert torch.equal(varinit.normal_(torch.empty(10, 10), generator=g2), a)
    # works on NumPy targets too, with the same key
    g3 = torch.Generator().manual_seed(77)
    assert varinit.normal_(np.empty((10, 10), np.float32), generator=g3).tobytes() == a.numpy().tobytes()


def test_numpy_generator_advances_and_reproduces():
    rng = np.random.default_rng(77)
    state = rng.bit_generator.state
    a = varinit.normal_(np.empty((10, 10), np.float32), generator=rng)
    assert rng.bit_generator.state != state
    b = varinit.normal_(np.empty((10, 10), np.float32), generator=rng)
    assert not np.array_equal(a, b)
    c = varinit.normal_(torch.empty(10, 10), generator=np.random.default_rng(77))
    assert c.numpy().tobytes() == a.tobytes()


def test_non_contiguous_torch_view_is_filled_in_place():
    base = torch.full((20, 30), 7.0)
    view = base[::2, 1::3].t()
    out = varinit.normal_(view, generator=4)
    assert out is view
    want = varinit.normal_(np.empty(view.shape, np.float32), generator=4)
    assert np.array_equal(base[::2, 1::3].t().numpy(), want)
    untouched = base.clone()
    untouched[::2, 1::3] = 7.0
    assert torch.all(untouched == 7.0)
