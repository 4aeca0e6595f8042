"""The reports of lsuv and weight_norm_init (NumPy and torch): summary, text table,
notebook HTML; progress= with a callable, True and bad values."""
import sys

import numpy as np
import pytest

import varinit
from varinit.layers import LsuvReport, WeightNormReport


def _mlp(rng):
    return [(rng.standard_normal((64, 32)), np.zeros(64), "tanh"),
            (rng.standard_normal((64, 64)), np.zeros(64), "tanh"),
            (rng.standard_normal((10, 64)), np.zeros(10), None)]


def test_lsuv_report_views_and_progress_callable():
    rng = np.random.default_rng(0)
    calls = []
    report = varinit.layers.lsuv(_mlp(rng), rng.standard_normal((256, 32)), generator=0,
                                 progress=lambda done, total: calls.append((done, total)))
    assert isinstance(report, LsuvReport) and len(report) == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert report.summary().startswith("3 layers, ") and report.summary().endswith("all converged")
    lines = str(report).splitlines()
    assert lines[0] == report.summary() and lines[1].split() == ["layer", "rescalings", "output", "variance",
                                                                 "converged"]
    assert [line.split()[0] for line in lines[2:]] == ["0", "1", "2"]
    page = report._repr_html_()
    assert page.count("<tr>") == 4 and "<th>output variance</th>" in page


def test_lsuv_report_names_layers_that_did_not_converge():
    report = LsuvReport([varinit.layers.LsuvRecord("fc1", 10, 0.5, False),
                         varinit.layers.LsuvRecord("fc2", 1, 1.0, True)])
    assert report.summary() == "2 layers, 11 rescalings; output variance 0.5 to 1; NOT converged: fc1"
    assert str(report).splitlines()[2].split() == ["fc1", "10", "0.5", "NO"]


def test_weight_norm_report():
    rng = np.random.default_rng(2)
    layers = [varinit.layers.Layer(rng.standard_normal((64, 32)), np.zeros(64), "relu", g=np.ones(64)),
              varinit.layers.Layer(rng.standard_normal((10, 64)), np.zeros(10), None, g=np.ones(10))]
    report = varinit.layers.weight_norm_init(layers, rng.standard_normal((256, 32)))
    assert isinstance(report, WeightNormReport)
    assert report.summary() == "2 layers, 74 units set to zero mean and unit variance on the data"
    assert str(report).splitlines()[2].split()[:2] == ["0", "64"]


def test_progress_true_uses_tqdm_or_says_it_is_missing(monkeypatch):
    rng = np.random.default_rng(3)
    tqdm = pytest.importorskip("tqdm")
    assert tqdm is not None
    report = varinit.layers.lsuv(_mlp(rng), rng.standard_normal((64, 32)), generator=0, progress=True)
    assert len(report) == 3
    import varinit.progress as progress
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)     # as if tqdm were not installed
    monkeypatch.setattr(progress, "_warned_missing", False)
    with pytest.warns(UserWarning, match="pip install tqdm"):
        varinit.layers.lsuv(_mlp(rng), rng.standard_normal((64, 32)), generator=0, progress=True)


@pytest.mark.parametrize("bad", [1, "yes", 0.5])
def test_bad_progress_is_refused_before_anything_changes(bad):
    rng = np.random.default_rng(4)
    layers = _mlp(rng)
    before = [w.copy() for w, _, _ in layers]
    state = varinit.default_generator.get_state()
    with pytest.raises(TypeError, match="progress must be"):
        varinit.layers.lsuv(layers, rng.standard_normal((64, 32)), progress=bad)
    assert all(np.array_equal(w, b) for (w, _, _), b in zip(layers, before))
    assert varinit.default_generator.get_state() == state


def test_torch_lsuv_returns_the_same_report():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    calls = []
    report = varinit.torch.lsuv(model, torch.randn(128, 32, generator=torch.Generator().manual_seed(0)),
                                generator=0, progress=lambda d, t: calls.append((d, t)))
    assert isinstance(report, LsuvReport) and calls == [(1, 2), (2, 2)]
    assert report.summary().endswith("all converged")


@pytest.mark.parametrize("with_inputs", [False, True])
def test_init_module_reports_progress(with_inputs):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 10))
    calls = []
    inputs = torch.randn(64, 32) if with_inputs else None
    varinit.torch.init_module(model, inputs, generator=0, progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert calls[-1] == (total, total) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    with pytest.raises(TypeError, match="progress must be"):
        varinit.torch.init_module(model, inputs, generator=0, progress="bar")
