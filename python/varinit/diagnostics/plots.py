"""Plots: std per layer for several inits, and weight histograms against their target densities.

matplotlib is optional: without it these functions raise ImportError with
the command that installs it. Without a display (no DISPLAY, no MPLBACKEND,
on Linux) the Agg backend is selected, so saving to a file works headless;
in Jupyter, the notebook's own backend shows the figure.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Union, cast

import numpy as np

from .. import _validate
from ..activations import resolve
from ..generator import Generator, check_seed
from ..gains import gain_for
from .._typing import FloatArray, Nonlinearity
from .mlp import SMALL_STD, SpecInit, check_init, init_weight

if TYPE_CHECKING:
    from os import PathLike

    from matplotlib.figure import Figure

    from .report import PropagationReport

# a density: float64 values in, float64 densities out
Density = Callable[[FloatArray], FloatArray]

DEFAULT_HISTOGRAM_INITS: tuple[SpecInit, ...] = ("xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
                           "lecun_normal", "orthogonal")
# Keras/JAX truncated normal: cut at +-2 s, s = sqrt(Var) / TRUNCATED_STD (varinit.init).
TRUNCATION = 2.0


def pyplot() -> ModuleType:
    """matplotlib.pyplot, on the Agg backend when headless; ImportError naming the fix if missing."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("varinit's plots need matplotlib, which is not installed: pip install matplotlib") from None
    headless = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("MPLBACKEND"))
    if headless and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _positive_or_nan(values: Iterable[float | None]) -> FloatArray:
    out = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out[~(out > 0) | ~np.isfinite(out)] = np.nan
    return out


def plot_propagation(reports: Union[PropagationReport, Sequence[PropagationReport]],
                     path: str | PathLike[str] | None = None, title: str | None = None) -> Figure:
    """Plot the std of the activations (left) and of the gradients (right) per layer, on a log scale.

    Solid lines with dots are measured, dashed lines the mean-field
    prediction, the grey band the healthy range; one color per report. Gaps
    are values that overflowed float64. Needs matplotlib (``pip install
    ".[plots]"``); headless, the Agg backend is used.

    Parameters
    ----------
    reports : PropagationReport or sequence of them
        What `varinit.propagate` returned.
    path : str or path-like, optional
        Where to save the figure (any format matplotlib writes).
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        Without matplotlib, naming the command that installs it.

    Examples
    --------
    >>> import os, tempfile, varinit
    >>> reports = [varinit.propagate(varinit.diagnostics.mlp_spec(depth=20, width=128, init=i))
    ...            for i in ("naive", "xavier_normal", "kaiming_normal")]
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     fig = varinit.diagnostics.plot_propagation(reports, os.path.join(folder, "std_by_depth.png"))
    ...     os.listdir(folder)
    ['std_by_depth.png']
    """
    plt = pyplot()
    if not isinstance(reports, (list, tuple)):
        reports = [cast("PropagationReport", reports)]
    if not reports:
        raise ValueError("reports must hold at least one PropagationReport")
    fig: Figure
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for k, report in enumerate(reports):
        color = f"C{k % 10}"
        x = [layer.index for layer in report.layers]
        short = report.label.split(",")[0]
        left.plot(x, _positive_or_nan(l.act_std for l in report.layers), "o-", ms=3, color=color,
                  label=f"{short} (measured)")
        left.plot(x, _positive_or_nan(l.pred_std for l in report.layers), "--", color=color, alpha=0.7,
                  label=f"{short} (mean field)")
        bands = [l.pred_std_band or (math.nan, math.nan) for l in report.layers]
        left.fill_between(x, _positive_or_nan(b[0] for b in bands), _positive_or_nan(b[1] for b in bands),
                          color=color, alpha=0.15, label=f"{short} (finite-width band, 95%)")
        right.plot(x, _positive_or_nan(l.grad_std for l in report.layers), "o-", ms=3, color=color,
                   label=f"{short} (measured)")
        right.plot(x, _positive_or_nan(l.pred_grad_std for l in report.layers), "--", color=color,
                   alpha=0.7, label=f"{short} (mean field)")
    for ax, what in ((left, "activation std"), (right, "gradient std (w.r.t. layer output)")):
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel(what)
        ax.axhspan(1e-2, 1e2, color="0.92", zorder=0, label="healthy band (x 1e-2 .. 1e2)")
        ax.grid(True, which="major", alpha=0.3)
    left.legend(fontsize=7, loc="best")
    common = reports[0].label.split(",", 1)[1].strip() if "," in reports[0].label else ""
    fig.suptitle(title or f"signal propagation: {common}")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _normal_pdf(std: float) -> Density:
    return lambda x: np.exp(-0.5 * (x / std) ** 2) / (std * math.sqrt(2.0 * math.pi))


def _uniform_pdf(bound: float) -> Density:
    return lambda x: np.where(np.abs(x) <= bound, 0.5 / bound, 0.0)


def target_density(init: SpecInit | float, shape: tuple[int, ...], activation: Nonlinearity | None = "relu",
                   param: float | None = None) -> tuple[str, Density]:
    """(description, pdf) of the distribution a spec init draws a weight of this (out, in) shape from."""
    fan_out, fan_in = shape
    init = check_init(init)
    if not isinstance(init, str):
        return f"N(0, {init:g}^2)", _normal_pdf(init)
    if init == "naive":
        return "N(0, 1)", _normal_pdf(1.0)
    if init == "small":
        return f"N(0, {SMALL_STD}^2)", _normal_pdf(SMALL_STD)
    if init == "xavier_normal":
        std = math.sqrt(2.0 / (fan_in + fan_out))
        return f"N(0, {std:.4g}^2)", _normal_pdf(std)
    if init == "xavier_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return f"U(-{bound:.4g}, {bound:.4g})", _uniform_pdf(bound)
    gain = gain_for(activation, param, "torch")
    if init == "kaiming_normal":
        std = gain / math.sqrt(fan_in)
        return f"N(0, {std:.4g}^2)", _normal_pdf(std)
    if init == "kaiming_uniform":
        bound = gain * math.sqrt(3.0 / fan_in)
        return f"U(-{bound:.4g}, {bound:.4g})", _uniform_pdf(bound)
    if init == "lecun_uniform":
        bound = math.sqrt(3.0 / fan_in)
        return f"U(-{bound:.4g}, {bound:.4g})", _uniform_pdf(bound)
    if init == "lecun_normal":
        unit = NormalDist()
        mass = unit.cdf(TRUNCATION) - unit.cdf(-TRUNCATION)
        cut_std = math.sqrt(1.0 - 2 * TRUNCATION * unit.pdf(TRUNCATION) / mass)
        s = math.sqrt(1.0 / fan_in) / cut_std
        inner = _normal_pdf(s)
        return (f"N(0, {s:.4g}^2) cut at +-{TRUNCATION * s:.4g}",
                lambda x: np.where(np.abs(x) <= TRUNCATION * s, inner(x) / mass, 0.0))
    std = gain / math.sqrt(max(fan_in, fan_out))  # orthogonal
    return f"~ N(0, {std:.4g}^2) (entries of a scaled Haar matrix)", _normal_pdf(std)


def plot_weight_histograms(inits: Sequence[SpecInit | float] = DEFAULT_HISTOGRAM_INITS,
                           shape: tuple[int, int] = (512, 512), activation: Nonlinearity | None = "relu",
                           param: float | None = None, seed: int = 0,
                           path: str | PathLike[str] | None = None) -> Figure:
    """Histograms of weights filled by varinit for several inits, each with its target density.

    Each panel holds one (out, in) = `shape` float64 weight filled by an init
    of `mlp_spec` (normal, uniform, truncated normal at +-2s, Haar-orthogonal
    entries), as a density histogram, and the density it should follow as a
    line. Needs matplotlib.

    Parameters
    ----------
    inits : tuple of str, optional
        Names of `mlp_spec`'s inits; default xavier_normal, xavier_uniform,
        kaiming_normal, kaiming_uniform, lecun_normal, orthogonal.
    shape : tuple of int, default (512, 512)
        The weight's shape.
    activation : str, default "relu"
        The activation whose gain the kaiming and orthogonal inits use.
    param : float, optional
        The activation's parameter.
    seed : int, default 0
        The seed of the weights.
    path : str or path-like, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import varinit
    >>> fig = varinit.diagnostics.plot_weight_histograms(("xavier_uniform", "kaiming_normal"), shape=(64, 64))
    >>> len(fig.axes)
    2
    """
    chosen = [check_init(init) for init in inits]
    if not chosen:
        raise ValueError("inits must name at least one initializer")
    dims = _validate.index_tuple(shape, "shape", minimum=1)
    if len(dims) != 2:
        raise ValueError(f"shape must be (out, in), got {dims!r}")
    check_seed(seed)
    if activation is not None:  # an unknown name or a bad param fails before any figure is made
        resolve(activation, param)
    plt = pyplot()
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig: Figure
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False,
                             constrained_layout=True)
    generator = Generator(seed)
    for ax, init in zip(axes.ravel(), chosen):
        description, pdf = target_density(init, dims, activation, param)
        weight = init_weight(np.empty(dims), init, activation, param, generator).ravel()
        ax.hist(weight, bins=80, density=True, color="0.7", label="varinit sample")
        lim = float(np.max(np.abs(weight))) * 1.05
        grid = np.linspace(-lim, lim, 801)
        ax.plot(grid, pdf(grid), color="C3", lw=1.5, label="target density")
        ax.set_title(f"{init}: {description}", fontsize=8)
        ax.set_xlim(-lim, lim)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(chosen):]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"weights {dims[0]}x{dims[1]} for {activation}: histogram vs target density")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
