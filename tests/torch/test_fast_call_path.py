"""The one-call path (_core.fast_fill in csrc/_module.c, tried first by the
wrapper writes_in_place puts around uniform_, normal_, trunc_normal_,
kaiming_*, xavier_*, zeros_ and ones_) gives exactly what the Python path
gives: the same bits for every dtype and layout, the same key drawn from
torch's generator (which is left in the same state), the version counter
bumped; and every call it does not make -- bad input above all -- goes to the
Python path with nothing written and no stream taken, so the exceptions are
the Python path's own. The Python path is forced by replacing _core.fast_fill
with a function that declines every call (the wrapper looks it up per call)."""
import math
import threading
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import varinit
from varinit import _arrays, _core
from varinit import init as init_module

SHAPE = (6, 10)
# name -> calls (extra positional arguments, keywords) that the fast path makes
CALLS = {
    "uniform_": [((), {}), ((-0.5, 2.0), {}), ((), {"a": -3, "b": 3})],
    "normal_": [((), {}), ((0.25, 1.5), {}), ((), {"std": 0.02, "global_shape": None, "start": None})],
    "trunc_normal_": [((), {}), ((0.0, 0.02, -0.04, 0.04), {}), ((), {"a": -math.inf, "b": 0.5})],
    "kaiming_uniform_": [((), {}), ((), {"a": math.sqrt(5)}), ((0.2, "fan_out"), {}),
                         ((), {"nonlinearity": "relu", "layer": None, "groups": 1, "batch_axis": ()})],
    "kaiming_normal_": [((), {}), ((), {"mode": "fan_out", "nonlinearity": "relu"}),
                        ((0, "fan_in", "tanh"), {}), ((), {"nonlinearity": "linear"})],
    "xavier_uniform_": [((), {}), ((2,), {}), ((), {"gain": varinit.calculate_gain("tanh")})],
    "xavier_normal_": [((), {}), ((0.5,), {}), ((), {"gain": 0})],
    "zeros_": [((), {})],
    "ones_": [((), {})],
}
RANDOM = sorted(set(CALLS) - {"zeros_", "ones_"})
CASES = [(name, k) for name in sorted(CALLS) for k in range(len(CALLS[name]))]
TORCH_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
                torch.bfloat16: ml_dtypes.bfloat16}
TARGETS = {
    "tensor": lambda dt: torch.full(SHAPE, 7.0, dtype=dt),
    "parameter": lambda dt: torch.nn.Parameter(torch.full(SHAPE, 7.0, dtype=dt), requires_grad=False),
    "requires_grad parameter": lambda dt: torch.nn.Parameter(torch.full(SHAPE, 7.0, dtype=dt)),
    "transposed": lambda dt: torch.full(SHAPE[::-1], 7.0, dtype=dt).t(),
    "stepped": lambda dt: torch.full((2 * SHAPE[0], 3 * SHAPE[1] + 1), 7.0, dtype=dt)[::2, 1::3],
    "conv weight": lambda dt: torch.full((8, 3, 3, 3), 7.0, dtype=dt),
    "numpy": lambda dt: np.full(SHAPE, 7.0, TORCH_DTYPES[dt]),
    "numpy transposed": lambda dt: np.full(SHAPE[::-1], 7.0, TORCH_DTYPES[dt]).T,
}
GENERATORS = {
    "none": lambda: None,
    "int": lambda: 31337,
    "named stream": lambda: varinit.Generator(5).stream("encoder.0.weight"),
    "stream": lambda: varinit.Stream(11, 3),
    "generator": lambda: varinit.Generator(123),
}


def raw(target):
    """The target's bytes in logical order."""
    if isinstance(target, np.ndarray):
        return np.ascontiguousarray(target).tobytes()
    return target.detach().contiguous().view(torch.uint8).numpy().tobytes()


def version(target):
    return target._version if isinstance(target, torch.Tensor) else None


def decline(*args):
    return NotImplemented


class _PythonPath:
    """`with python_path():` -- every call inside takes the Python path."""

    def __call__(self):
        return self

    def __enter__(self):
        self.patch = pytest.MonkeyPatch()
        self.patch.setattr(_core, "fast_fill", decline)

    def __exit__(self, *exc):
        self.patch.undo()


@pytest.fixture
def python_path():
    return _PythonPath()


def refuse(tensor):
    raise AssertionError("the Python path ran")


@pytest.fixture
def fast_path_only(monkeypatch):
    """The Python path's first step raises: a call that reaches it fails the test."""
    monkeypatch.setattr(init_module, "as_array", refuse)


def run(name, target, k, generator):
    args, kwargs = CALLS[name][k]
    if name in RANDOM:
        kwargs = dict(kwargs, generator=generator)
    return getattr(varinit, name)(target, *args, **kwargs)


def outcome(name, target, k, make_generator, seed=2024):
    """(bytes, torch RNG state, varinit default generator state, version bump) of one call."""
    torch.manual_seed(seed)
    varinit.manual_seed(seed)
    before = version(target)
    assert run(name, target, k, make_generator()) is target
    after = version(target)
    return (raw(target), torch.get_rng_state(), varinit.default_generator.get_state(),
            None if before is None else after - before)


def assert_same(got, want):
    assert got[0] == want[0]
    assert torch.equal(got[1], want[1])
    assert got[2:] == want[2:]


# zeros_ and ones_ take no generator: one run each
COMBINATIONS = [(name, k, g) for name, k in CASES for g in (sorted(GENERATORS) if name in RANDOM else ["none"])]


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES), ids=str)
@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("name, k, generator", COMBINATIONS)
def test_the_fast_path_gives_the_python_paths_bits_and_state(python_path, monkeypatch, name, k, generator, target,
                                                            dtype):
    with python_path():
        want = outcome(name, TARGETS[target](dtype), k, GENERATORS[generator])
    monkeypatch.setattr(init_module, "as_array", refuse)   # from here on, the Python path may not run
    got = outcome(name, TARGETS[target](dtype), k, GENERATORS[generator])
    assert_same(got, want)
    if got[3] is not None:
        assert got[3] == 1  # the version counter, bumped once
    assert got[0] != raw(TARGETS[target](dtype))  # written


def test_the_values_are_the_numpy_fills_and_torchs_key_is_randints():
    torch.manual_seed(9)
    words = torch.randint(0, 1 << 32, (2,), dtype=torch.int64)
    key = int(words[0]) | int(words[1]) << 32
    after_randint = torch.get_rng_state()
    torch.manual_seed(9)
    t = varinit.kaiming_uniform_(torch.empty(40, 30), a=math.sqrt(5))
    assert torch.equal(torch.get_rng_state(), after_randint)
    twin = varinit.kaiming_uniform_(np.empty((40, 30), np.float32), a=math.sqrt(5), generator=varinit.Stream(key, 0))
    assert t.numpy().tobytes() == twin.tobytes()
    bound = 1 / math.sqrt(30)   # nn.Linear's own init
    assert float(t.abs().max()) <= bound


def read_only(array):
    array.flags.writeable = False
    return array


# (name, extra positional arguments, keywords, target maker or None for a float32 (6, 10) tensor)
BAD = [
    ("normal_", (), {"std": -1.0}, None),
    ("normal_", (math.nan,), {}, None),
    ("normal_", (), {"std": math.inf}, None),
    ("normal_", (), {"std": True}, None),
    ("normal_", ("0",), {}, None),
    ("normal_", (), {"std": 10 ** 400}, None),
    ("normal_", (0.0, 1e5), {}, lambda: torch.empty(SHAPE, dtype=torch.float16)),
    ("normal_", (), {"generator": -1}, None),
    ("normal_", (), {"generator": 2 ** 64}, None),
    ("normal_", (), {"generator": "seed"}, None),
    ("normal_", (), {"generator": True}, None),
    ("normal_", (0.0, 1.0, None, 4), {}, None),
    ("normal_", (0.0,), {"mean": 1.0}, None),
    ("normal_", (), {"stdev": 1.0}, None),
    ("normal_", (), {}, lambda: torch.zeros(SHAPE, dtype=torch.int64)),
    ("normal_", (), {}, lambda: torch.zeros(3, 1).expand(3, 4)),
    ("normal_", (), {}, lambda: torch.zeros(SHAPE, dtype=torch.complex64).conj().imag),
    ("normal_", (), {}, lambda: np.zeros(SHAPE, np.int32)),
    ("normal_", (), {}, lambda: np.lib.stride_tricks.as_strided(np.zeros(20, np.float32), (4, 5), (8, 4))),
    ("normal_", (), {}, lambda: read_only(np.zeros(SHAPE, np.float32))),
    ("uniform_", (1.0, 0.0), {}, None),
    ("uniform_", (0.0, math.inf), {}, None),
    ("uniform_", (-1e308, 1e308), {}, None),
    ("uniform_", (1.001, 1.002), {}, lambda: torch.empty(SHAPE, dtype=torch.bfloat16)),
    ("uniform_", (-1e5, 1e5), {}, lambda: np.empty(SHAPE, np.float16)),
    ("trunc_normal_", (0.0, 1.0, 2.0, 1.0), {}, None),
    ("trunc_normal_", (0.0, 1.0, 40.0, 41.0), {}, None),
    ("trunc_normal_", (0.0, 1.0, math.nan), {}, None),
    ("trunc_normal_", (0.0, -0.5), {}, None),
    ("kaiming_uniform_", (), {"mode": "fan_avg"}, None),
    ("kaiming_uniform_", (), {"mode": 3}, None),
    ("kaiming_uniform_", (), {"nonlinearity": "no such function"}, None),
    ("kaiming_uniform_", (), {"nonlinearity": "leaky_relu", "a": math.nan}, None),
    ("kaiming_uniform_", (), {"nonlinearity": 7}, None),
    ("kaiming_uniform_", (), {}, lambda: torch.empty(10)),
    ("kaiming_normal_", (), {"groups": 0}, None),
    ("kaiming_normal_", (), {"keep_prob": 0.0}, None),
    ("kaiming_normal_", (), {"layer": "dense"}, None),
    ("xavier_uniform_", (-1.0,), {}, None),
    ("xavier_uniform_", (math.inf,), {}, None),
    ("xavier_normal_", ("1",), {}, None),
    ("xavier_normal_", (), {}, lambda: torch.empty(10, dtype=torch.float64)),
    ("zeros_", (1,), {}, None),
    ("ones_", (), {"value": 1}, None),
    ("zeros_", (), {}, lambda: torch.zeros(SHAPE, dtype=torch.int32)),
    ("ones_", (), {}, lambda: read_only(np.zeros(SHAPE, np.float64))),
    ("ones_", (), {}, lambda: torch.zeros(20).as_strided((4, 5), (2, 1))),
]


def _error(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the exception itself is compared
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("case", range(len(BAD)), ids=lambda i: f"{BAD[i][0]}-{i}")
def test_bad_input_raises_the_python_paths_exception_with_nothing_written_or_drawn(python_path, case):
    name, args, kwargs, make = BAD[case]
    make = make or (lambda: torch.full(SHAPE, 7.0))
    fn = getattr(varinit, name)
    with python_path():
        target = make()
        want = _error(lambda: fn(target, *args, **kwargs))
    assert want is not None, "the Python path refuses this call"
    target = make()
    before, torch_state, state = raw(target), torch.get_rng_state(), varinit.default_generator.get_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = _error(lambda: fn(target, *args, **kwargs))
    assert got == want
    assert raw(target) == before
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert varinit.default_generator.get_state() == state


def test_calls_outside_the_fast_path_give_the_python_paths_values(python_path):
    """Keywords the C core does not take, or not at their default objects, and
    generators it leaves to Python: the same values (the Python path makes them)."""
    calls = [
        lambda t: varinit.kaiming_normal_(t, layer="linear", generator=3),
        lambda t: varinit.kaiming_normal_(t, keep_prob=1.0, generator=3),    # a new float object: Python
        lambda t: varinit.kaiming_uniform_(t, mode="FAN_OUT", generator=3),
        lambda t: varinit.kaiming_uniform_(t, nonlinearity="gelu", generator=3),
        lambda t: varinit.kaiming_uniform_(t, a=np.float32(0.1), generator=3),
        lambda t: varinit.normal_(t, np.float64(0.5), generator=np.int64(3)),
        lambda t: varinit.normal_(t, generator=np.random.default_rng(4)),
        lambda t: varinit.uniform_(t, generator=torch.Generator().manual_seed(4)),
        lambda t: varinit.xavier_normal_(t, generator=3, global_shape=(6, 10), start=(0, 0)),
    ]
    for call in calls:
        with python_path():
            want = raw(call(torch.zeros(SHAPE)))
        assert raw(call(torch.zeros(SHAPE))) == want


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_torch_function_mode_and_a_subclass_still_see_the_call(name):
    class Record(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls.append(func)
            return func(*args, **(kwargs or {}))

    fn = getattr(varinit, name)
    for target in (torch.zeros(SHAPE), torch.nn.Parameter(torch.zeros(SHAPE))):
        with Record() as mode:
            fn(target)
        assert mode.calls[:1] == [fn]

    class Logged(torch.Tensor):
        calls = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.calls.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    target = torch.zeros(SHAPE).as_subclass(Logged)
    assert fn(target) is target
    assert Logged.calls[:1] == [fn]


KINDS = {"uniform_": _core.FAST_UNIFORM, "normal_": _core.FAST_NORMAL, "trunc_normal_": _core.FAST_TRUNC_NORMAL,
         "kaiming_uniform_": _core.FAST_KAIMING_UNIFORM, "kaiming_normal_": _core.FAST_KAIMING_NORMAL,
         "xavier_uniform_": _core.FAST_XAVIER_UNIFORM, "xavier_normal_": _core.FAST_XAVIER_NORMAL,
         "zeros_": _core.FAST_ZEROS, "ones_": _core.FAST_ONES}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_meta_tensors_are_left_to_the_python_path_which_writes_nothing(name):
    target = torch.empty(SHAPE, device="meta")
    state = torch.get_rng_state()
    assert _core.fast_fill(KINDS[name], target, (), {}) is NotImplemented
    assert getattr(varinit, name)(target) is target and target.is_meta
    assert torch.equal(torch.get_rng_state(), state)


def test_a_meta_tensors_bad_arguments_are_refused():
    target = torch.empty(SHAPE, device="meta")
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        varinit.normal_(target, std=-1.0)
    assert varinit.kaiming_uniform_(target, a=math.sqrt(5)) is target and target.is_meta


def test_no_stream_is_taken_while_a_meta_fill_is_checked():
    # a check of a meta tensor runs the function up to its stream (_arrays._check_on_meta):
    # the fast path leaves that moment to the Python path, which ends the check there
    outer = _arrays._dry_run.active
    _arrays._dry_run.active = True
    try:
        for target in (np.zeros((1, 1), np.float32), torch.zeros(1, 1)):
            state, torch_state = varinit.default_generator.get_state(), torch.get_rng_state()
            with pytest.raises(_arrays.DryRun):
                varinit.normal_(target)
            assert varinit.default_generator.get_state() == state
            assert torch.equal(torch.get_rng_state(), torch_state)
            assert not np.any(np.asarray(target) != 0)
    finally:
        _arrays._dry_run.active = outer


def test_inference_tensors_follow_torchs_rule():
    with torch.inference_mode():
        target = torch.zeros(SHAPE)
    with pytest.raises(RuntimeError, match="inference tensor outside InferenceMode"):
        varinit.normal_(target, generator=1)
    assert torch.all(target == 0)
    with torch.inference_mode():
        varinit.normal_(target, generator=1)
    assert raw(target) == raw(varinit.normal_(torch.zeros(SHAPE), generator=1))


def test_a_requires_grad_leaf_stays_a_leaf_and_a_saved_value_is_caught():
    weight = torch.nn.Parameter(torch.ones(3, 3))
    out = (weight * weight).sum()   # saves weight for backward
    varinit.xavier_uniform_(weight)
    assert weight.is_leaf and weight.requires_grad and weight.grad_fn is None
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_an_int_seed_reused_from_one_line_warns_at_that_line(fast_path_only):
    targets = [torch.zeros(4, 4), torch.zeros(4, 4)]
    varinit.normal_(torch.zeros(1), generator=4242)   # another line: no warning
    with pytest.warns(UserWarning, match="generator=4242 fills another tensor from the same line") as caught:
        for target in targets:
            varinit.normal_(target, generator=4242)
    assert [w.filename for w in caught] == [__file__]
    assert torch.equal(targets[0], targets[1])


def test_the_same_tensor_refilled_from_an_int_seed_does_not_warn(fast_path_only):
    target = torch.zeros(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            varinit.normal_(target, generator=4243)


def test_draws_from_several_threads_are_the_serial_keys():
    draws, threads = 40, 3
    torch.manual_seed(31)
    serial = []
    for _ in range(threads * draws):
        words = torch.randint(0, 1 << 32, (2,), dtype=torch.int64)
        serial.append(int(words[0]) | int(words[1]) << 32)
    torch.manual_seed(31)
    got, lock, barrier = [], threading.Lock(), threading.Barrier(threads)

    def work():
        barrier.wait()
        mine = [varinit.uniform_(torch.empty(5)).numpy().tobytes() for _ in range(draws)]
        with lock:
            got.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    expected = {varinit.uniform_(np.empty(5, np.float32), generator=varinit.Stream(k, 0)).tobytes() for k in serial}
    assert len(got) == threads * draws and set(got) == expected


def test_large_fills_take_the_fast_path_too(fast_path_only):
    big = torch.empty(300, 300)
    varinit.normal_(big, generator=8)
    twin = varinit.normal_(np.empty((300, 300), np.float32), generator=8)
    assert big.numpy().tobytes() == twin.tobytes()
    varinit.zeros_(big)
    assert not torch.any(big != 0) and not torch.any(torch.signbit(big))
    varinit.ones_(big.t())
    assert torch.all(big == 1)


def test_fast_fill_refuses_a_function_whose_arguments_it_does_not_read():
    with pytest.raises(ValueError, match="does not take the arguments"):
        _core.fast_fill_register(_core.FAST_NORMAL, lambda tensor, std=1.0, mean=0.0, generator=None: tensor)
    with pytest.raises(TypeError):
        _core.fast_fill(_core.FAST_NORMAL, torch.zeros(2), [], {})
    with pytest.raises(ValueError, match="no function has kind"):
        _core.fast_fill(99, torch.zeros(2), (), {})
    # the registered functions are unchanged: their calls still take the fast path
    t = torch.zeros(SHAPE)
    assert _core.fast_fill(_core.FAST_NORMAL, t, (), {"generator": 1}) is t
    assert _core.fast_fill(_core.FAST_NORMAL, t, (), {"generator": 1, "layer": None}) is NotImplemented


def test_the_setup_calls_check_their_arguments():
    with pytest.raises(TypeError, match="set_torch_calls"):
        _core.set_torch_calls(torch.Tensor, torch.nn.Parameter, None, None)
    with pytest.raises(TypeError, match="fast_fill_setup"):
        _core.fast_fill_setup(varinit.generator, _arrays, {}, [])
    with pytest.raises(ValueError, match="limits needs"):
        _core.fast_fill_setup(varinit.generator, _arrays, {}, {np.dtype(np.float32): (1.0,) * 5})
