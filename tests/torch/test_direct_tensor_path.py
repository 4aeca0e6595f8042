"""A CPU torch tensor is filled through its own memory (data pointer, shape,
strides, dtype: the C core reads them through torch's DLPack exchange table,
or through the tensor's attributes where torch has none), never through
Tensor.numpy(), with the values a NumPy array of the same shape gets, bit for
bit, in every layout and dtype; a __torch_function__ subclass or mode sees the
call; every refused tensor is refused before a stream is taken."""
import ml_dtypes
import numpy as np
import pytest
import torch

import varinit
from varinit import _arrays, _core

SEED = 97531
SHAPE = (6, 10)
TORCH_DTYPES = {torch.float16: np.float16, torch.bfloat16: ml_dtypes.bfloat16,
                torch.float32: np.float32, torch.float64: np.float64}
FILLS = {
    "uniform_": lambda t: varinit.uniform_(t, -0.5, 2.0, generator=SEED),
    "normal_": lambda t: varinit.normal_(t, 0.25, 1.5, generator=SEED),
    "trunc_normal_": lambda t: varinit.trunc_normal_(t, 0.0, 1.0, -1.0, 2.5, generator=SEED),
    "kaiming_uniform_": lambda t: varinit.kaiming_uniform_(t, a=5 ** 0.5, generator=SEED),
    "kaiming_normal_": lambda t: varinit.kaiming_normal_(t, mode="fan_out", generator=SEED),
    "xavier_uniform_": lambda t: varinit.xavier_uniform_(t, generator=SEED),
    "xavier_normal_": lambda t: varinit.xavier_normal_(t, generator=SEED),
    "variance_scaling_": lambda t: varinit.variance_scaling_(t, 2.0, "fan_avg", generator=SEED),
    "lecun_normal_": lambda t: varinit.lecun_normal_(t, generator=SEED),
    "sparse_": lambda t: varinit.sparse_(t, 0.3, generator=SEED),
    "orthogonal_": lambda t: varinit.orthogonal_(t, generator=SEED),
    "constant_": lambda t: varinit.constant_(t, 0.375),
    "eye_": lambda t: varinit.eye_(t),
}
# views of fresh memory whose logical shape is SHAPE
LAYOUTS = {
    "contiguous": lambda dt: torch.zeros(SHAPE, dtype=dt),
    "transposed": lambda dt: torch.zeros(SHAPE[::-1], dtype=dt).t(),
    "stepped": lambda dt: torch.zeros(2 * SHAPE[0], 3 * SHAPE[1] + 1, dtype=dt)[::2, 1::3],
    "storage_offset": lambda dt: torch.zeros(SHAPE[0] * SHAPE[1] + 7, dtype=dt)[7:].view(SHAPE),
    # strides (1, 7) over 6 x 10: no stride exceeds the other axis's span, yet no
    # two elements meet (the rule clears it only by enumeration)
    "interleaved": lambda dt: torch.zeros(80, dtype=dt).as_strided(SHAPE, (1, 7)),
    "parameter": lambda dt: torch.nn.Parameter(torch.zeros(SHAPE, dtype=dt)),
}


def bits(tensor):
    """The bits of a float tensor's values in logical order, as a NumPy array."""
    flat = tensor.detach().contiguous().view(-1)
    return np.array(flat.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()]).tolist())


def twin(fill, dtype):
    """The NumPy fill the torch fill must equal."""
    out = np.zeros(SHAPE, TORCH_DTYPES[dtype])
    FILLS[fill](out)
    return out.view({2: np.int16, 4: np.int32, 8: np.int64}[out.itemsize]).ravel()


@pytest.fixture(params=["dlpack", "attributes"])
def route(request):
    """Each test runs through both ways the C core reads a tensor's layout: torch's
    DLPack exchange table (this torch has it) and the tensor's attributes (the
    route taken on a torch without it)."""
    kinds = _arrays.torch_kinds(torch)
    assert kinds.dlpack_route, "torch 2.13 publishes __dlpack_c_exchange_api__"
    exchange = torch.Tensor.__dlpack_c_exchange_api__ if request.param == "dlpack" else None
    assert _core.set_tensor_kinds(kinds.dtypes, torch.strided, exchange) == (exchange is not None)
    yield request.param
    _core.set_tensor_kinds(kinds.dtypes, torch.strided, torch.Tensor.__dlpack_c_exchange_api__)


@pytest.fixture
def no_tensor_numpy(monkeypatch):
    """Tensor.numpy() raises while the test runs: the fill must not need it."""
    varinit.normal_(torch.empty(1))  # this thread's key buffer exists before numpy() goes away

    def refuse(self, *args, **kwargs):
        raise AssertionError("Tensor.numpy() called")

    monkeypatch.setattr(torch.Tensor, "numpy", refuse)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", list(TORCH_DTYPES), ids=str)
@pytest.mark.parametrize("fill", sorted(FILLS))
def test_every_layout_and_dtype_gets_the_numpy_values(route, no_tensor_numpy, fill, dtype, layout):
    target = LAYOUTS[layout](dtype)
    before = target._version
    assert FILLS[fill](target) is target
    np.testing.assert_array_equal(bits(target), twin(fill, dtype))
    assert target._version > before


def test_memory_around_a_view_is_left_alone(route):
    base = torch.zeros(2 * SHAPE[0], 3 * SHAPE[1] + 1)
    view = base[::2, 1::3]
    varinit.normal_(view, generator=SEED)
    untouched = torch.ones_like(base, dtype=torch.bool)
    untouched[::2, 1::3] = False
    assert torch.all(base[untouched] == 0)
    assert torch.all(view != 0)


def test_region_fills_of_views_give_the_whole_tensors_blocks(route):
    whole = varinit.kaiming_normal_(np.empty((12, 20), np.float32), generator=SEED)
    target = torch.zeros(20, 12).t()[4:10, 5:15]  # a transposed, offset view
    varinit.kaiming_normal_(target, generator=SEED, global_shape=(12, 20), start=(4, 5))
    np.testing.assert_array_equal(target.contiguous().numpy(), whole[4:10, 5:15])


def test_a_misaligned_tensor_is_filled_through_a_staging_copy(route):
    # offset 2 bytes into the buffer: float32 elements off their 4-byte alignment
    target = torch.frombuffer(bytearray(4 * 60 + 2), dtype=torch.float32, offset=2, count=60).view(SHAPE)
    assert target.data_ptr() % 4
    FILLS["normal_"](target)
    np.testing.assert_array_equal(bits(target), twin("normal_", torch.float32))


def test_a_lazy_clone_is_written_after_its_memory_is_its_own(route):
    original = torch.zeros(SHAPE)
    clone = torch._lazy_clone(original)  # copy-on-write: shares memory until written
    FILLS["normal_"](clone)
    assert torch.all(original == 0)
    np.testing.assert_array_equal(bits(clone), twin("normal_", torch.float32))


def test_a_parameter_keeps_its_identity_and_autograd_state(route):
    param = torch.nn.Parameter(torch.zeros(SHAPE))
    address = param.data_ptr()
    assert varinit.xavier_uniform_(param, generator=SEED) is param
    assert param.data_ptr() == address and param.requires_grad and param.is_leaf
    assert param.grad_fn is None


def test_empty_tensors_are_no_ops_that_take_no_stream(route):
    state, torch_state = varinit.default_generator.get_state(), torch.get_rng_state()
    for target in (torch.empty(0, 5), torch.empty(3, 0)[:, ::2], torch.empty(0)):
        varinit.normal_(target)
        varinit.uniform_(target, generator=varinit.default_generator)
    assert varinit.default_generator.get_state() == state
    assert torch.equal(torch.get_rng_state(), torch_state)


def _fake_tensor():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        return torch.empty(3, 3)


def _freed_storage():
    t = torch.zeros(3, 3)
    t.untyped_storage().resize_(0)  # as FSDP frees a parameter's memory
    return t


REFUSED = {
    "int64": (lambda: torch.zeros(3, 3, dtype=torch.int64), TypeError, "floating dtype"),
    "bool": (lambda: torch.zeros(3, 3, dtype=torch.bool), TypeError, "floating dtype"),
    "complex": (lambda: torch.zeros(3, 3, dtype=torch.complex64), TypeError, "floating dtype"),
    "sparse": (lambda: torch.zeros(3, 3).to_sparse(), TypeError, "dense \\(strided\\)"),
    "negated": (lambda: torch.zeros(3, 3, dtype=torch.complex64).conj().imag, TypeError, "negated"),
    "negated detached": (lambda: torch._neg_view(torch.zeros(3, 3)).detach(), TypeError, "negated"),
    "fake": (_fake_tensor, TypeError, "subclass"),
    "freed storage": (_freed_storage, TypeError, "no allocated memory"),
    "expanded": (lambda: torch.zeros(3, 1).expand(3, 4), ValueError, "sharing memory"),
    "overlapping": (lambda: torch.zeros(20).as_strided((4, 5), (2, 1)), ValueError, "sharing memory"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_tensors_raise_before_a_stream_is_taken(route, case):
    make, error, words = REFUSED[case]
    target = make()
    state, torch_state = varinit.default_generator.get_state(), torch.get_rng_state()
    snapshot = target.clone() if case in ("expanded", "overlapping") else None
    with pytest.raises(error, match=words):
        varinit.normal_(target)
    with pytest.raises(error, match=words):
        varinit.normal_(target, generator=varinit.default_generator)
    assert varinit.default_generator.get_state() == state
    assert torch.equal(torch.get_rng_state(), torch_state)
    if snapshot is not None:
        assert torch.equal(target, snapshot)


class Logged(torch.Tensor):
    """A subclass that records every call torch hands to its __torch_function__."""

    calls = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_torch_function_subclass_sees_the_call_and_is_filled(route):
    Logged.calls.clear()
    target = torch.zeros(SHAPE).as_subclass(Logged)
    assert FILLS["kaiming_uniform_"](target) is target
    assert Logged.calls[0] is varinit.kaiming_uniform_
    np.testing.assert_array_equal(bits(target.as_subclass(torch.Tensor)), twin("kaiming_uniform_", torch.float32))


class Intercepted(torch.Tensor):
    """A subclass that answers varinit's fills itself, as one may answer torch.nn.init's."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is varinit.normal_:
            with torch._C.DisableTorchFunctionSubclass():
                args[0].fill_(7.0)
            return args[0]
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_subclass_can_answer_the_call_instead():
    target = torch.zeros(SHAPE).as_subclass(Intercepted)
    state, torch_state = varinit.default_generator.get_state(), torch.get_rng_state()
    assert varinit.normal_(target) is target
    assert torch.all(target.as_subclass(torch.Tensor) == 7.0)
    assert varinit.default_generator.get_state() == state
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_a_torch_function_mode_sees_the_call_on_a_plain_tensor():
    from torch.overrides import TorchFunctionMode

    class Record(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls.append(func)
            return func(*args, **(kwargs or {}))

    target = torch.nn.Parameter(torch.zeros(SHAPE))
    with Record() as mode:
        varinit.normal_(target, 0.25, 1.5, generator=SEED)
    assert mode.calls[0] is varinit.normal_
    np.testing.assert_array_equal(bits(target), twin("normal_", torch.float32))


def test_meta_tensors_under_the_meta_device_context_are_checked_not_written():
    # torch.device("meta") is a __torch_function__ mode: the call passes through it
    with torch.device("meta"):
        target = torch.empty(SHAPE)
        assert varinit.kaiming_uniform_(target, a=5 ** 0.5) is target
        with pytest.raises(ValueError, match="std"):
            varinit.normal_(target, std=-1.0)
    assert target.is_meta


def test_inference_tensors_follow_torchs_rule_on_both_routes(route):
    with torch.inference_mode():
        target = torch.zeros(SHAPE)
    with pytest.raises(RuntimeError, match="inference tensor outside InferenceMode"):
        varinit.normal_(target, 0.25, 1.5, generator=SEED)
    assert torch.all(target == 0)
    with torch.inference_mode():
        varinit.normal_(target, 0.25, 1.5, generator=SEED)
    np.testing.assert_array_equal(bits(target), twin("normal_", torch.float32))


def test_the_view_keeps_the_tensor_alive(route):
    view = _arrays.as_array(torch.zeros(1000))
    assert isinstance(view.base, torch.Tensor)
    view[...] = 1.0  # the tensor's memory, still allocated
    assert float(view.base.sum()) == 1000.0
