"""A catalogue of bad inputs thrown at every public function, so that one
mistake gets one exception type everywhere.

Each case asserts the exact exception type (TypeError for types, ValueError for
values), a message naming what was wrong, and that the target is bit-identical
to the sentinel pattern it held before the call.
"""
import math

import ml_dtypes
import numpy as np
import pytest
import torch

import varinit

GOOD = (4, 6)
WHITENING_COV = np.eye(6) + 0.5 * np.ones((6, 6))
# name -> (a valid shape, valid keyword arguments)
SPECS = {
    "uniform_": (GOOD, dict(a=-1.0, b=1.0)),
    "normal_": (GOOD, dict(mean=0.0, std=1.0)),
    "trunc_normal_": (GOOD, dict(mean=0.0, std=1.0, a=-2.0, b=2.0)),
    "constant_": (GOOD, dict(val=0.5)),
    "ones_": (GOOD, {}),
    "zeros_": (GOOD, {}),
    "eye_": (GOOD, {}),
    "dirac_": ((4, 2, 3), dict(groups=1)),
    "xavier_uniform_": (GOOD, dict(gain=1.0)),
    "xavier_normal_": (GOOD, dict(gain=1.0)),
    "kaiming_uniform_": (GOOD, dict(a=0, mode="fan_in", nonlinearity="leaky_relu")),
    "kaiming_normal_": (GOOD, dict(a=0, mode="fan_in", nonlinearity="leaky_relu")),
    "orthogonal_": (GOOD, dict(gain=1.0)),
    "sparse_": (GOOD, dict(sparsity=0.5, std=0.01)),
    "variance_scaling_": (GOOD, dict(scale=1.0, mode="fan_in", distribution="truncated_normal")),
    "lecun_normal_": (GOOD, {}),
    "lecun_uniform_": (GOOD, {}),
    # architecture recipes that fill an array
    "attention_qk_": ((8, 6), dict(d_head=4)),
    "delta_orthogonal_": ((4, 4, 3, 3), dict(gain=1.0)),
    "whitening_": (GOOD, dict(cov=WHITENING_COV)),
    "identity_": (GOOD, dict(noise_std=0.01)),
    "mup_init_": (GOOD, dict(kind="hidden", base_width=4, width=8)),
    "optimistic_bias_": ((5,), dict(value=1.0)),
    "prior_bias_": ((5,), dict(prior=0.1)),
}
# these take a module (a residual branch, a norm layer), not an array
MODULE_FUNCTIONS = {"zero_gamma_", "zero_branch_output_"}
ALL = sorted(SPECS)
RANDOM = [n for n in ALL if n not in ("constant_", "ones_", "zeros_", "eye_", "dirac_",
                                     "optimistic_bias_", "prior_bias_")]
FAN_BASED = ["kaiming_normal_", "kaiming_uniform_", "lecun_normal_", "lecun_uniform_",
             "variance_scaling_", "xavier_normal_", "xavier_uniform_"]
REGION_KEYWORDS = ["kaiming_normal_", "kaiming_uniform_", "lecun_normal_", "lecun_uniform_",
                   "normal_", "trunc_normal_", "uniform_", "variance_scaling_",
                   "xavier_normal_", "xavier_uniform_"]
FAN_MESSAGE = "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"


def function(name):
    """The public function `name`: at the top level, or in varinit.recipes."""
    return getattr(varinit, name) if name in varinit.__all__ else getattr(varinit.recipes, name)


def call(name, tensor, **override):
    kwargs = dict(SPECS[name][1], **override)
    return function(name)(tensor, **kwargs)


def sentinel(shape, dtype=np.float32):
    """A recognisable pattern: any write shows up in a bytes comparison."""
    return np.array((np.arange(math.prod(shape)) * 0.5 + 0.25).reshape(shape), dtype=dtype)


def snapshot(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if x.dtype == object:
        return [id(v) for v in x.flat]
    return x.tobytes()


def unchanged(x, before):
    if isinstance(x, torch.Tensor):
        return torch.equal(x, before)
    return snapshot(x) == before


def assert_refused(target, error, match, name, **override):
    before = snapshot(target)
    with pytest.raises(error, match=match):
        call(name, target, **override)
    assert unchanged(target, before)


def test_every_public_function_is_covered():
    public = {n for n in varinit.__all__ + varinit.recipes.__all__ if n.endswith("_")}
    assert public == set(SPECS) | MODULE_FUNCTIONS


# ---- targets that cannot be filled ------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
@pytest.mark.parametrize("name", ALL)
def test_read_only_array(name, dtype):
    x = sentinel(SPECS[name][0], dtype)
    x.flags.writeable = False
    assert_refused(x, ValueError, "read-only", name)


@pytest.mark.parametrize("name", ALL)
def test_read_only_view_of_writable_base(name):
    base = sentinel((8, 12, 3))
    view = np.lib.stride_tricks.as_strided(base, SPECS[name][0], writeable=False)
    assert_refused(view, ValueError, "read-only", name)
    assert np.array_equal(base, sentinel((8, 12, 3)))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16, np.bool_, np.complex64,
                                   np.complex128, np.longdouble, ml_dtypes.float8_e4m3fn, object])
@pytest.mark.parametrize("name", ALL)
def test_unsupported_dtype(name, dtype):
    x = sentinel(SPECS[name][0], np.float64).astype(dtype)
    assert_refused(x, TypeError, "dtype", name)


@pytest.mark.parametrize("name", ALL)
def test_unsupported_dtype_even_when_empty(name):
    shape = (0,) + SPECS[name][0][1:]
    assert_refused(np.empty(shape, np.int64), TypeError, "dtype", name)


@pytest.mark.parametrize("make", [
    lambda s: sentinel(s).tolist(),
    lambda s: tuple(sentinel(s).ravel()),
    lambda s: 1.5,
    lambda s: None,
    lambda s: "tensor",
    lambda s: memoryview(sentinel(s)),
    lambda s: bytearray(sentinel(s).tobytes()),
], ids=["list", "tuple", "float", "None", "str", "memoryview", "bytearray"])
@pytest.mark.parametrize("name", ALL)
def test_not_an_array(name, make):
    target = make(SPECS[name][0])
    copy = target.tolist() if isinstance(target, memoryview) else (
        bytes(target) if isinstance(target, bytearray) else repr(target))
    with pytest.raises(TypeError, match="tensor"):
        call(name, target)
    now = target.tolist() if isinstance(target, memoryview) else (
        bytes(target) if isinstance(target, bytearray) else repr(target))
    assert now == copy


@pytest.mark.parametrize("name", ALL)
def test_elements_sharing_memory(name):
    shape = SPECS[name][0]
    base = torch.from_numpy(sentinel(shape[1:]))
    expanded = base.expand(shape)  # writable, stride 0 along axis 0 (torch refuses to write it)
    before = base.clone()
    with pytest.raises(ValueError, match="zero stride"):
        call(name, expanded)
    assert torch.equal(base, before)
    x = sentinel(shape[1:])
    overlapping = np.lib.stride_tricks.as_strided(x, shape, (0,) + x.strides, writeable=True)
    assert_refused(overlapping, ValueError, "zero stride", name)


@pytest.mark.parametrize("name", ALL)
def test_meta_tensor_is_checked_and_left_alone_as_torch_does(name):
    t = torch.empty(SPECS[name][0], device="meta")
    state = varinit.default_generator.get_state()
    assert call(name, t) is t and t.is_meta
    assert varinit.default_generator.get_state() == state


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.uint8, torch.complex64])
@pytest.mark.parametrize("name", ALL)
def test_torch_tensor_of_unsupported_dtype(name, dtype):
    t = torch.from_numpy(sentinel(SPECS[name][0], np.float64)).to(dtype)
    assert_refused(t, TypeError, "dtype", name)


@pytest.mark.parametrize("name", ALL)
def test_sparse_torch_tensor(name):
    t = torch.eye(SPECS[name][0][0]).to_sparse() if len(SPECS[name][0]) == 2 else \
        torch.zeros(SPECS[name][0]).to_sparse()
    with pytest.raises(TypeError, match="tensor"):
        call(name, t)


# ---- shapes --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (5,)])
@pytest.mark.parametrize("name", FAN_BASED)
def test_fewer_than_two_dimensions_for_fans(name, shape):
    assert_refused(sentinel(shape), ValueError, FAN_MESSAGE, name)


@pytest.mark.parametrize("name,shape,message", [
    ("eye_", (5,), "Only tensors with 2 dimensions are supported"),
    ("eye_", (2, 3, 4), "Only tensors with 2 dimensions are supported"),
    ("eye_", (), "Only tensors with 2 dimensions are supported"),
    ("dirac_", (4, 2), "Only tensors with 3, 4, or 5 dimensions are supported"),
    ("dirac_", (2, 2, 1, 1, 1, 1), "Only tensors with 3, 4, or 5 dimensions are supported"),
    ("sparse_", (5,), "Only tensors with 2 dimensions are supported"),
    ("sparse_", (2, 3, 4), "Only tensors with 2 dimensions are supported"),
    ("orthogonal_", (5,), "Only tensors with 2 or more dimensions are supported"),
    ("orthogonal_", (), "Only tensors with 2 or more dimensions are supported"),
])
def test_wrong_dimensionality(name, shape, message):
    assert_refused(sentinel(shape), ValueError, message, name)


# ---- values --------------------------------------------------------------------------
NAN, INF = float("nan"), float("inf")
VALUE_ERRORS = [  # (function, keyword overrides, pattern of the message)
    ("uniform_", dict(a=2.0, b=1.0), "a <= b"),
    ("uniform_", dict(a=NAN), "a"),
    ("uniform_", dict(b=INF), "b"),
    ("uniform_", dict(a=-1e308, b=1e308), "b - a"),
    ("normal_", dict(std=-1.0), "std"),
    ("normal_", dict(std=NAN), "std"),
    ("normal_", dict(std=INF), "std"),
    ("normal_", dict(mean=NAN), "mean"),
    ("normal_", dict(mean=-INF), "mean"),
    ("trunc_normal_", dict(a=2.0, b=-2.0), "a <= b"),
    ("trunc_normal_", dict(std=-0.5), "std"),
    ("trunc_normal_", dict(std=NAN), "std"),
    ("trunc_normal_", dict(mean=NAN), "mean"),
    ("trunc_normal_", dict(a=NAN), "a"),
    ("trunc_normal_", dict(b=NAN), "b"),
    ("trunc_normal_", dict(a=40.0, b=41.0), "probability"),
    ("constant_", dict(val=1e39), "val"),
    ("dirac_", dict(groups=3), "divisible by groups"),
    ("dirac_", dict(groups=0), "groups"),
    ("dirac_", dict(groups=-2), "groups"),
    ("xavier_uniform_", dict(gain=-1.0), "gain"),
    ("xavier_normal_", dict(gain=NAN), "gain"),
    ("kaiming_uniform_", dict(mode="fan_avg"), "Mode fan_avg not supported"),
    ("kaiming_normal_", dict(mode="in"), "Mode in not supported"),
    ("kaiming_uniform_", dict(nonlinearity="no_such_fn"), "Unsupported nonlinearity no_such_fn"),
    ("kaiming_normal_", dict(nonlinearity="ReLU"), "Unsupported nonlinearity ReLU"),
    ("kaiming_normal_", dict(a="x"), "negative_slope"),
    ("orthogonal_", dict(gain=NAN), "gain"),
    ("orthogonal_", dict(blocks=3), "blocks"),
    ("sparse_", dict(sparsity=NAN), "sparsity"),
    ("sparse_", dict(sparsity=1.5), "sparsity"),
    ("sparse_", dict(std=-0.01), "std"),
    ("variance_scaling_", dict(scale=0.0), "scale"),
    ("variance_scaling_", dict(scale=-1.0), "scale"),
    ("variance_scaling_", dict(scale=NAN), "scale"),
    ("variance_scaling_", dict(mode="fan_max"), "mode"),
    ("variance_scaling_", dict(distribution="gaussian"), "distribution"),
]


@pytest.mark.parametrize("name,override,match", VALUE_ERRORS,
                         ids=[f"{n}-{'-'.join(map(str, o))}" for n, o, _ in VALUE_ERRORS])
def test_bad_values(name, override, match):
    dtype = np.float16 if name == "constant_" else np.float32
    assert_refused(sentinel(SPECS[name][0], dtype), ValueError, match, name, **override)


TYPE_ERRORS = [
    ("uniform_", dict(a="0")), ("normal_", dict(std="1")), ("normal_", dict(mean=None)),
    ("trunc_normal_", dict(b=[2.0])), ("constant_", dict(val="1")), ("constant_", dict(val=None)),
    ("xavier_uniform_", dict(gain="1")), ("orthogonal_", dict(gain=None)),
    ("sparse_", dict(sparsity="0.5")), ("variance_scaling_", dict(scale="2")), ("dirac_", dict(groups=1.5)),
]


@pytest.mark.parametrize("name,override", TYPE_ERRORS,
                         ids=[f"{n}-{'-'.join(map(str, o))}" for n, o in TYPE_ERRORS])
def test_bad_argument_types(name, override):
    assert_refused(sentinel(SPECS[name][0]), TypeError, next(iter(override)), name, **override)


# ---- seeds and generators -----------------------------------------------------------
@pytest.mark.parametrize("generator,error", [
    (-1, ValueError), (2**64, ValueError), (1.5, TypeError), (True, TypeError),
    (object(), TypeError), ("0", TypeError), (np.random.RandomState(0), TypeError),
])
@pytest.mark.parametrize("name", RANDOM)
def test_bad_generator(name, generator, error):
    assert_refused(sentinel(SPECS[name][0]), error, "generator", name, generator=generator)


@pytest.mark.parametrize("name", RANDOM)
def test_failed_call_does_not_advance_the_generator(name):
    g = varinit.Generator(1)
    x = sentinel(SPECS[name][0])
    x.flags.writeable = False
    assert_refused(x, ValueError, "read-only", name, generator=g)
    assert_refused(sentinel(SPECS[name][0]).astype(np.int32), TypeError, "dtype", name, generator=g)
    assert g.get_state() == (1, 0)


def test_empty_truncation_interval_does_not_advance_the_generator():
    g = varinit.Generator(1)
    assert_refused(sentinel(GOOD), ValueError, "probability", "trunc_normal_", a=40.0, b=41.0, generator=g)
    assert_refused(sentinel(GOOD), ValueError, "probability", "trunc_normal_", mean=1.0, std=0.01,
                   a=-3.0, b=-2.0, generator=g)
    assert g.get_state() == (1, 0)


# ---- layout keywords of fan-based functions and region keywords -------------------------
FAN_KEYWORD_ERRORS = [
    (dict(in_axis=5, out_axis=0), ValueError, "in_axis"),
    (dict(in_axis=0, out_axis=0), ValueError, "different axes"),
    (dict(in_axis="0", out_axis=1), TypeError, "in_axis"),
    (dict(layer="rnn"), ValueError, "layer"),
    (dict(layer="conv", groups=3), ValueError, "divisible"),
    (dict(blocks=0), ValueError, "blocks"),
    (dict(stride=2), ValueError, "stride"),
    (dict(not_a_keyword=1), TypeError, "not_a_keyword"),
]


@pytest.mark.parametrize("override,error,match", FAN_KEYWORD_ERRORS,
                         ids=[next(iter(o)) + str(i) for i, (o, _, _) in enumerate(FAN_KEYWORD_ERRORS)])
@pytest.mark.parametrize("name", FAN_BASED)
def test_bad_fan_keywords(name, override, error, match):
    assert_refused(sentinel(GOOD), error, match, name, **override)


REGION_ERRORS = [
    (dict(global_shape=(4,)), ValueError, "global_shape"),
    (dict(global_shape=(3, 6)), ValueError, "does not fit"),
    (dict(global_shape=(8, 12), start=(5, 0)), ValueError, "does not fit"),
    (dict(global_shape=(8, 12), start=(-1, 0)), ValueError, "start"),
    (dict(global_shape=(8, 12), start=(0.5, 0)), TypeError, "start"),
]


@pytest.mark.parametrize("override,error,match", REGION_ERRORS,
                         ids=[str(i) for i in range(len(REGION_ERRORS))])
@pytest.mark.parametrize("name", REGION_KEYWORDS)
def test_bad_region(name, override, error, match):
    assert_refused(sentinel(GOOD), error, match, name, **override)


# ---- odd but valid targets are filled correctly (never refused wrongly, never a crash) ----
@pytest.mark.parametrize("name", ALL)
def test_byte_swapped_and_misaligned_are_filled_like_native(name):
    shape = SPECS[name][0]
    want = call(name, np.zeros(shape, np.float32), **({"generator": 8} if name in RANDOM else {}))
    swapped = np.zeros(shape, np.dtype(np.float32).newbyteorder())
    buf = np.zeros(math.prod(shape) * 4 + 1, np.uint8)
    misaligned = buf[1:].view(np.float32).reshape(shape)
    for target in (swapped, misaligned):
        out = call(name, target, **({"generator": 8} if name in RANDOM else {}))
        assert out is target
        assert target.astype(np.float32).tobytes() == want.tobytes()
