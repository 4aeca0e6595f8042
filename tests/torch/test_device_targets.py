"""A tensor on a device other than the CPU is filled in host memory (pinned
when the device is torch's available accelerator) and copied in with copy_:
it holds the values a CPU fill of its shape and dtype gets, its version
counter moves, and a refused call changes nothing and takes no stream.

Each test runs on every device present: CUDA, XPU and MPS wherever torch sees
one (skipped, naming the device, where it does not), and on torch's "lazy"
device everywhere. Lazy tensors (torch._lazy, the TorchScript backend) live
off the CPU as far as torch's dispatch is concerned (is_cpu is False, their
data pointer is not host memory, writes reach them only through torch ops)
but compute on the CPU, so the copy path runs for real on a machine without
an accelerator.
"""
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch

import varinit
from varinit import _arrays

SEED = 8642
SHAPE = (7, 12)
DTYPES = {torch.float16: np.float16, torch.bfloat16: ml_dtypes.bfloat16,
          torch.float32: np.float32, torch.float64: np.float64}
FILLS = {
    "normal_": lambda t, g: varinit.normal_(t, 0.5, 2.0, generator=g),
    "uniform_": lambda t, g: varinit.uniform_(t, -1.0, 3.0, generator=g),
    "trunc_normal_": lambda t, g: varinit.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, generator=g),
    "kaiming_uniform_": lambda t, g: varinit.kaiming_uniform_(t, a=5 ** 0.5, generator=g),
    "xavier_normal_": lambda t, g: varinit.xavier_normal_(t, generator=g),
    "orthogonal_": lambda t, g: varinit.orthogonal_(t, generator=g),
    "sparse_": lambda t, g: varinit.sparse_(t, 0.25, generator=g),
    "zeros_": lambda t, g: varinit.zeros_(t),
    "eye_": lambda t, g: varinit.eye_(t),
}


def _lazy_device():
    try:
        import torch._lazy
        import torch._lazy.ts_backend
    except ImportError as exc:
        pytest.skip(f"torch's lazy device is missing from this build ({exc})")
    if not getattr(_lazy_device, "ready", False):
        torch._lazy.ts_backend.init()
        _lazy_device.ready = True
    return "lazy"


def _accelerator(kind):
    def present():
        if kind == "cuda" and not torch.cuda.is_available():
            pytest.skip("no CUDA device: torch.cuda.is_available() is False")
        if kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
            pytest.skip("no XPU device: torch.xpu.is_available() is False")
        if kind == "mps" and not torch.backends.mps.is_available():
            pytest.skip("no MPS device: torch.backends.mps.is_available() is False")
        return kind
    return present


DEVICES = {"cuda": _accelerator("cuda"), "xpu": _accelerator("xpu"), "mps": _accelerator("mps"),
           "lazy": _lazy_device}


@pytest.fixture(params=sorted(DEVICES))
def device(request):
    return DEVICES[request.param]()


def on_cpu(fill, shape, dtype, generator):
    return FILLS[fill](torch.empty(shape, dtype=dtype), generator)


def same_bits(a, b):
    a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
    width = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return a.dtype == b.dtype and torch.equal(a.view(width), b.view(width))


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
@pytest.mark.parametrize("fill", sorted(FILLS))
def test_a_device_tensor_holds_the_cpu_fills_values(device, fill, dtype):
    if device == "mps" and dtype == torch.float64:
        pytest.skip("MPS has no float64")
    target = torch.zeros(SHAPE, dtype=dtype, device=device)
    before = target._version
    assert FILLS[fill](target, SEED) is target
    assert target.device.type == device
    assert same_bits(target, on_cpu(fill, SHAPE, dtype, SEED))
    assert target._version > before


def test_torchs_generator_keys_a_device_fill_as_it_keys_a_cpu_one(device):
    torch.manual_seed(11)
    target = varinit.kaiming_normal_(torch.empty(SHAPE, device=device))
    after_device = torch.rand(3)
    torch.manual_seed(11)
    expected = varinit.kaiming_normal_(torch.empty(SHAPE))
    assert same_bits(target, expected)
    assert torch.equal(torch.rand(3), after_device)  # the generator moved alike


def test_a_non_contiguous_view_on_a_device_gets_its_logical_values(device):
    base = torch.zeros(2 * SHAPE[1], SHAPE[0], device=device)
    view = base.t()[:, ::2]                      # (7, 12), transposed and stepped
    varinit.normal_(view, 0.5, 2.0, generator=SEED)
    assert same_bits(view, on_cpu("normal_", SHAPE, torch.float32, SEED))
    assert torch.all(base.t()[:, 1::2].cpu() == 0)


def test_a_region_fill_on_a_device_gives_the_whole_tensors_block(device):
    whole = varinit.xavier_uniform_(torch.empty(20, 16), generator=SEED)
    block = torch.zeros(5, 8, device=device)
    varinit.xavier_uniform_(block, generator=SEED, global_shape=(20, 16), start=(10, 4))
    assert same_bits(block, whole[10:15, 4:12])


def test_a_device_parameter_keeps_its_identity_and_its_graph_refuses_backward(device):
    param = torch.nn.Parameter(torch.ones(SHAPE, device=device))
    loss = (param * param).sum()
    assert varinit.kaiming_uniform_(param, generator=SEED) is param
    assert param.requires_grad and param.is_leaf and param.grad_fn is None
    assert param.device.type == device
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("make, error, words", [
    (lambda d: torch.zeros(3, 4, dtype=torch.int64, device=d), TypeError, "floating dtype"),
    (lambda d: torch.zeros(3, 4, device=d), ValueError, "std must be"),           # std=-1 below
    (lambda d: torch.zeros(4, device=d), ValueError, "fewer than 2 dimensions"),   # kaiming on 1-D
])
def test_refused_device_fills_take_no_stream_and_write_nothing(device, make, error, words):
    target = make(device)
    state, torch_state = varinit.default_generator.get_state(), torch.get_rng_state()
    version = target._version
    with pytest.raises(error, match=words):
        if words == "std must be":
            varinit.normal_(target, std=-1.0)
        elif "dimensions" in words:
            varinit.kaiming_normal_(target, generator=varinit.default_generator)
        else:
            varinit.normal_(target)
    assert varinit.default_generator.get_state() == state
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert target._version == version and torch.all(target.cpu() == 0)


def test_inference_tensors_on_a_device_follow_torchs_rule(device):
    with torch.inference_mode():
        target = torch.zeros(SHAPE, device=device)
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="inference tensor outside InferenceMode"):
        varinit.normal_(target)
    assert torch.equal(torch.get_rng_state(), state) and torch.all(target.cpu() == 0)
    with torch.inference_mode():
        varinit.normal_(target, 0.5, 2.0, generator=SEED)
    assert same_bits(target, on_cpu("normal_", SHAPE, torch.float32, SEED))


def test_an_int_seed_reused_for_two_device_tensors_is_warned_about(device):
    first, second = torch.empty(SHAPE, device=device), torch.empty(SHAPE, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):  # the same tensor again: what an int seed is for
            varinit.normal_(first, generator=5)
    with pytest.warns(UserWarning, match="fills another tensor from the same line"):
        for target in (first, second):
            varinit.normal_(target, generator=5)


def test_the_host_buffer_is_pinned_exactly_when_the_device_is_the_accelerator(device, monkeypatch):
    seen = []
    make = _arrays._host_buffer

    def spy(torch_module, tensor):
        host = make(torch_module, tensor)
        seen.append(host)
        return host

    monkeypatch.setattr(_arrays, "_host_buffer", spy)
    varinit.normal_(torch.empty(SHAPE, device=device), generator=SEED)
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    expect_pinned = accelerator is not None and accelerator.type == device
    assert len(seen) == 1 and seen[0].device.type == "cpu"
    assert seen[0].is_pinned() == expect_pinned


def test_pinning_that_fails_warns_and_the_fill_goes_through_pageable_memory(monkeypatch):
    """Run here by pretending the lazy device is the accelerator: torch then
    refuses pin_memory=True (there is no pinned allocator on a machine
    without one), which is the failure this path answers."""
    device = _lazy_device()
    if torch.accelerator.is_available():
        pytest.skip("this machine can pin memory: the failure cannot be provoked")
    monkeypatch.setattr(_arrays, "_accelerator_type", lambda torch_module: device)
    target = torch.zeros(SHAPE, device=device)
    with pytest.warns(RuntimeWarning, match="pinned host memory is unavailable"):
        varinit.normal_(target, 0.5, 2.0, generator=SEED)
    assert same_bits(target, on_cpu("normal_", SHAPE, torch.float32, SEED))


def test_meta_tensors_are_still_checked_not_filled():
    target = torch.empty(SHAPE, device="meta")
    state = torch.get_rng_state()
    assert varinit.normal_(target) is target
    assert torch.equal(torch.get_rng_state(), state)
