"""Plots: PNG files of sane size, and a clear message without matplotlib."""
import sys

import numpy as np
import pytest

import varinit
from varinit.diagnostics.plots import target_density

PNG = b"\x89PNG\r\n\x1a\n"
pytest.importorskip("matplotlib")


def test_propagation_plot_is_a_png(tmp_path):
    import matplotlib.pyplot as plt

    reports = [varinit.propagate(varinit.diagnostics.mlp_spec(depth=10, width=32, init=i), batch=16)
               for i in ("naive", "xavier_normal", "kaiming_normal")]
    path = tmp_path / "std.png"
    fig = varinit.diagnostics.plot_propagation(reports, path)
    left, right = fig.axes
    assert left.get_yscale() == "log" and right.get_yscale() == "log"
    assert len(left.get_lines()) == 6           # measured and mean field per report
    measured = left.get_lines()[4].get_ydata()   # kaiming_normal, measured
    assert np.allclose(measured, [layer.act_std for layer in reports[2].layers])
    plt.close(fig)
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000


def test_weight_histograms_overlay_target_densities(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "hist.png"
    inits = ("xavier_uniform", "kaiming_normal", "lecun_normal", "orthogonal")
    fig = varinit.diagnostics.plot_weight_histograms(inits, shape=(128, 64), path=path)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4
    for ax, init in zip(visible, inits):
        heights = np.array([patch.get_height() for patch in ax.patches])
        centers = np.array([patch.get_x() + patch.get_width() / 2 for patch in ax.patches])
        _, pdf = target_density(init, (128, 64), "relu")
        inside = pdf(centers) > 0.3 * pdf(np.zeros(1))[0]
        # 8192 weights in 80 bins: ~100+ per central bin, Poisson sd ~10%: 35% is > 3 sd per bin and
        # the median over bins would need most bins off to fail.
        assert np.median(np.abs(heights[inside] / pdf(centers[inside]) - 1)) < 0.35
    plt.close(fig)
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000


def test_target_densities_integrate_to_one():
    for init in ("naive", "small", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
                 "lecun_normal", "lecun_uniform", "orthogonal", 0.3):
        _, pdf = target_density(init, (256, 128), "relu")
        grid = np.linspace(-6, 6, 2_000_001)
        values = pdf(grid)
        area = float(np.sum(values[1:] + values[:-1]) / 2 * (grid[1] - grid[0]))   # trapezoid rule
        assert area == pytest.approx(1.0, abs=2e-3), init


def test_without_matplotlib_the_message_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        varinit.diagnostics.plot_weight_histograms(("kaiming_normal",))
