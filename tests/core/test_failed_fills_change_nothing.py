"""Fills either finish or change nothing: a distribution the dtype cannot hold is
refused naming its arguments, and every allocation comes before the stream is
taken, so a failure leaves the target and the generator as they were."""
import ml_dtypes
import numpy as np
import pytest

import varinit
import varinit.init as init_module
from varinit import _arrays


@pytest.mark.parametrize("call, dtype, names", [
    (lambda t: varinit.uniform_(t, -1e308, 1.0), np.float32, "a and b"),
    (lambda t: varinit.uniform_(t, -3e38, 3e38), np.float32, "a and b"),
    (lambda t: varinit.uniform_(t, 0.0, 1e5), np.float16, "a and b"),
    (lambda t: varinit.uniform_(t, -1e308, 1e308), np.float64, "a and b|finite width"),
    (lambda t: varinit.normal_(t, 0.0, 1e4), np.float16, "mean and std"),
    (lambda t: varinit.normal_(t, 3.4e38, 1.0), ml_dtypes.bfloat16, "mean and std"),
    (lambda t: varinit.trunc_normal_(t, 0.0, 1e10, -1e6, 1e6), np.float16, "mean, std, a and b"),
    (lambda t: varinit.kaiming_uniform_(t, density=1e-300), np.float32, "the gain and the fans"),
    (lambda t: varinit.xavier_normal_(t, gain=1e39), np.float32, "gain and the fans"),
    (lambda t: varinit.variance_scaling_(t, 1e30, density=1e-30), np.float16, "scale and the fans"),
    (lambda t: varinit.recipes.optimistic_bias_(t, 1e5), np.float16, "value"),
    (lambda t: varinit.recipes.optimistic_bias_(t, max_reward=1e3, discount=0.99), np.float16,
     "max_reward / \\(1 - discount\\)"),
    (lambda t: varinit.constant_(t, 1e5), np.float16, "val"),
])
def test_a_distribution_the_dtype_cannot_hold_is_refused(call, dtype, names):
    target = np.full((4, 6), 0.25, dtype)
    state = varinit.default_generator.get_state()
    with pytest.raises(ValueError, match=names):
        call(target)
    assert np.all(target == dtype(0.25)) and varinit.default_generator.get_state() == state


def test_distributions_that_fit_are_filled_in_every_dtype():
    for dtype in (np.float16, ml_dtypes.bfloat16, np.float32, np.float64):
        t = varinit.uniform_(np.empty(1000, dtype), -1000.0, 1000.0, generator=1)
        assert np.all(np.isfinite(t.astype(np.float64)))
    assert np.all(np.isfinite(varinit.normal_(np.empty(1000, np.float16), 0.0, 5000.0, generator=2)))


def _failing_allocation(monkeypatch, module, when):
    """Make np.empty raise MemoryError on its `when`-th call from `module`."""
    real = np.empty
    calls = []

    def empty(*args, **kwargs):
        calls.append(args)
        if len(calls) == when:
            raise MemoryError("simulated")
        return real(*args, **kwargs)

    monkeypatch.setattr(module.np, "empty", empty)


def test_phase_balanced_fill_that_cannot_allocate_writes_nothing_and_keeps_the_stream(monkeypatch):
    w = np.full((4, 4, 3, 3), 0.5, np.float32)
    state = varinit.default_generator.get_state()
    _failing_allocation(monkeypatch, init_module, 2)   # the float64 buffer for the tap scaling
    with pytest.raises(MemoryError):
        varinit.kaiming_normal_(w, layer="conv_transpose", stride=2, phase_balanced=True)
    assert np.all(w == 0.5) and varinit.default_generator.get_state() == state


def test_byte_swapped_target_whose_staging_copy_fails_keeps_the_stream(monkeypatch):
    w = np.full((8, 8), 0.5, np.dtype(np.float32).newbyteorder())
    state = varinit.default_generator.get_state()
    _failing_allocation(monkeypatch, _arrays, 1)
    with pytest.raises(MemoryError):
        varinit.normal_(w)
    assert np.all(w == 0.5) and varinit.default_generator.get_state() == state
    monkeypatch.undo()
    np.testing.assert_array_equal(varinit.normal_(w, generator=3),
                                  varinit.normal_(np.empty((8, 8), np.float32), generator=3))


def test_sparse_that_cannot_rank_writes_nothing(monkeypatch):
    w = np.full((10, 6), 0.5, np.float32)
    _failing_allocation(monkeypatch, init_module, 1)   # the ranks of the zeroed rows
    state = varinit.default_generator.get_state()
    with pytest.raises(MemoryError):
        varinit.sparse_(w, 0.5)
    assert np.all(w == 0.5) and varinit.default_generator.get_state() == state


def test_sparse_values_are_unchanged_by_the_reordering():
    w = varinit.sparse_(np.empty((10, 6), np.float32), 0.3, generator=4)
    dense = varinit.normal_(np.empty((10, 6), np.float32), 0.0, 0.01, generator=4)
    kept = w != 0
    np.testing.assert_array_equal(w[kept], dense[kept])
    assert np.all((~kept).sum(axis=0) == 3)
