"""Writes to torch tensors behave as torch's in-place ops: the autograd version
counter moves, inference tensors are refused outside inference mode, and
tensors NumPy cannot view are refused with a TypeError before anything is
written."""
import numpy as np
import pytest
import torch

import varinit

FILLS = [
    lambda t: varinit.normal_(t),
    lambda t: varinit.uniform_(t, -1, 1),
    lambda t: varinit.kaiming_normal_(t),
    lambda t: varinit.xavier_uniform_(t),
    lambda t: varinit.orthogonal_(t),
    lambda t: varinit.zeros_(t),
    lambda t: varinit.constant_(t, 0.5),
    lambda t: varinit.recipes.identity_(t),
]


@pytest.mark.parametrize("fill", FILLS)
def test_a_graph_that_saved_the_old_values_refuses_to_backpropagate(fill):
    w = torch.nn.Parameter(torch.ones(3, 3))
    y = (w * w).sum()
    before = w._version
    fill(w)
    assert w._version > before
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_a_failed_fill_leaves_the_version_counter_alone():
    w = torch.ones(3, 3)
    before = w._version
    with pytest.raises(ValueError):
        varinit.normal_(w, std=-1.0)
    assert w._version == before


def test_inference_tensors_are_refused_outside_inference_mode_and_filled_inside():
    with torch.inference_mode():
        x = torch.zeros(4, 4)
    with pytest.raises(RuntimeError, match="inference tensor outside InferenceMode"):
        varinit.normal_(x)
    assert torch.equal(x, torch.zeros(4, 4))
    with torch.inference_mode():
        varinit.normal_(x, generator=1)
    assert torch.equal(x, torch.from_numpy(varinit.normal_(np.empty((4, 4), np.float32), generator=1)))


def _fake_tensor():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        return torch.empty(3, 3)


@pytest.mark.parametrize("make, words", [
    (lambda: torch.zeros(3, dtype=torch.complex64).conj().imag, "negated or conjugated"),
    (lambda: torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)]), "nested"),
    (_fake_tensor, "subclass"),
])
def test_views_numpy_cannot_share_are_a_type_error_naming_the_tensor(make, words):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nested tensors warn that they are a prototype
        t = make()
    state = varinit.default_generator.get_state()
    with pytest.raises(TypeError, match=f"tensor must be a dense CPU tensor.*{words}"):
        varinit.normal_(t)
    assert varinit.default_generator.get_state() == state


def test_overlapping_views_are_refused_before_any_write():
    base = torch.zeros(100)
    rows_overlap_by_half = base.as_strided((10, 8), (4, 1))
    with pytest.raises(ValueError, match="elements sharing memory"):
        varinit.normal_(rows_overlap_by_half, generator=3)
    assert torch.equal(base, torch.zeros(100))
    flat = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="elements sharing memory"):
        varinit.uniform_(np.lib.stride_tricks.as_strided(flat, (10, 8), (16, 4)))
    assert not flat.any()


def test_irregular_but_distinct_layouts_are_filled_like_a_contiguous_copy():
    # offsets 0, 8, 12, 20 (in float32 units 0, 2, 3, 5): distinct, though no
    # stride exceeds the span of the other axis
    memory = np.zeros(16, np.float32)
    view = np.lib.stride_tricks.as_strided(memory, (2, 2), (12, 8))
    varinit.normal_(view, generator=5)
    np.testing.assert_array_equal(view, varinit.normal_(np.empty((2, 2), np.float32), generator=5))
