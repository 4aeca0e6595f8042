"""The propagation report: per-layer measurements beside their mean-field predictions.

`PropagationReport` prints as a text table (`str(report)`), shows as an HTML
table in Jupyter (`_repr_html_`), and plots with varinit.diagnostics.plots. Columns:

- mean, std, max|x|: of the layer's outputs over the batch (all entries);
- mf std: the mean-field prediction of that std (varinit.diagnostics.mean_field):
  the mean over infinitely wide networks;
- width band: where one network of this finite width measures that std, 95%
  of the time (log-variance drift and spread, Hanin & Rolnick 2018): a
  measured std below mf std but inside the band is what finite width predicts;
- dead: fraction of output units that are exactly 0 for every input of the batch;
- sat: fraction of outputs at a rail of a bounded activation (varinit.diagnostics.statuses);
- grad std, grad max|x|: of the gradient with respect to the layer's outputs,
  for a random unit-variance gradient injected at the network's output;
- mf grad: its mean-field prediction;
- status: healthy / vanishing / exploding / saturated (varinit.diagnostics.statuses).
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional

from .. import _validate
from .statuses import ORDER, Status

if TYPE_CHECKING:
    from .precision import RangeCheck

STATUS_COLORS = {
    "healthy": "#1a7f37",
    "vanishing": "#0550ae",
    "exploding": "#cf222e",
    "saturated": "#8250df",
}


@dataclass
class LayerStats:
    """Measured and predicted statistics of one layer: one row of a `PropagationReport`.

    Parameters
    ----------
    index : int
        The layer's position, from 1.
    name : str
        Its kind ("dense", or a torch module's class and name).
    activation : str
        The activation after it.
    width : int
        Its number of output units.
    act_mean, act_std, act_max : float
        Mean, std and largest absolute value of its outputs over the batch.
    act_finite : bool
        Whether every output is finite.
    dead_fraction : float
        The fraction of output units that are 0 for every input of the batch.
    saturated_fraction : float
        The fraction of a bounded activation's outputs at a rail.
    grad_mean, grad_std, grad_max : float or None
        The same for the gradient with respect to its outputs.
    grad_finite : bool
        Whether every gradient entry is finite.
    pred_mean, pred_std, pred_grad_std : float or None
        The mean-field predictions (None where an unmodelled layer is in the
        way).
    status : str
        "healthy", "vanishing", "exploding" or "saturated".
    reasons : list of str
        Why the status is not "healthy".
    precision : dict, optional
        With ``propagate(..., precision=True)``: {"activation": [RangeCheck,
        ...], "gradient": [...]}, one check per format.
    pred_std_band : tuple of float, optional
        Where 95% of networks of this finite width measure act_std.

    Examples
    --------
    >>> import varinit
    >>> report = varinit.propagate(varinit.diagnostics.mlp_spec(depth=3, width=64))
    >>> row = report.layers[0]
    >>> row.index, row.activation, row.width, row.status
    (1, 'relu', 64, 'healthy')
    """

    index: int
    name: str
    activation: str
    width: int
    act_mean: float
    act_std: float
    act_max: float
    act_finite: bool
    dead_fraction: float
    saturated_fraction: float
    grad_mean: Optional[float]
    grad_std: Optional[float]
    grad_max: Optional[float]
    grad_finite: bool
    pred_mean: Optional[float]
    pred_std: Optional[float]
    pred_grad_std: Optional[float]
    status: Status
    reasons: List[str] = field(default_factory=list)
    precision: Optional[dict[str, list[RangeCheck]]] = None
    pred_std_band: Optional[tuple[float, float]] = None


@dataclass
class PropagationReport:
    """Per-layer statistics of one forward and backward pass: what `varinit.propagate` returns.

    ``str(report)`` is the text table (`to_text`); in Jupyter the report
    shows as an HTML table with the statuses in color; `plot_propagation`
    draws it. Columns: mean, std, max|x| of each layer's outputs; mf std,
    their mean-field prediction; width band, where 95% of networks of this
    finite width measure (Hanin and Rolnick 2018); dead and sat, the
    fractions of dead and saturated units; grad std, mf grad, grad max, for
    the gradient with respect to the outputs; status.

    Parameters
    ----------
    label : str
        The title.
    layers : list of LayerStats
        One per layer, in order.
    batch : int
        The batch size.
    input_mean, input_std : float
        Of the inputs.
    output_grad_std : float
        Of the gradient injected at the output.
    input_grad_std : float, optional
        Of the gradient with respect to the inputs.
    notes : list of str
        Lines printed under the title (the mean-field fixed point and chi1).

    Examples
    --------
    >>> import varinit
    >>> report = varinit.propagate(varinit.diagnostics.mlp_spec(depth=20, width=256, init="naive"))
    >>> report.status, report.depth
    ('exploding', 20)
    >>> print(report.summary())
    naive, relu, depth 20, width 256: exploding from layer 1
    """

    label: str
    layers: List[LayerStats]
    batch: int
    input_mean: float
    input_std: float
    output_grad_std: float
    input_grad_std: Optional[float] = None
    notes: List[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        """The worst status over the layers (exploding > vanishing > saturated > healthy)."""
        return min((layer.status for layer in self.layers), key=ORDER.index, default="healthy")

    @property
    def depth(self) -> int:
        """The number of layers."""
        return len(self.layers)

    def first_layer_with(self, status: Status) -> int | None:
        """The index (from 1) of the first layer with that status, or None.

        Parameters
        ----------
        status : str
            "healthy", "vanishing", "exploding" or "saturated".

        Returns
        -------
        int or None
        """
        return next((layer.index for layer in self.layers if layer.status == status), None)

    def _shown(self, every: int) -> list[LayerStats]:
        every = _validate.integer(every, "every", minimum=1)
        return [layer for layer in self.layers
                if layer.index == 1 or layer.index == self.depth or layer.index % every == 0]

    def summary(self) -> str:
        """One line: the label, the overall status and the layer where it starts.

        Returns
        -------
        str
        """
        status = self.status
        where = "" if status == "healthy" else f" from layer {self.first_layer_with(status)}"
        return f"{self.label}: {status}{where}"

    def to_text(self, every: int = 1) -> str:
        """The text table.

        Parameters
        ----------
        every : int, default 1
            Show layers 1, every, 2 * every, ... and the last.

        Returns
        -------
        str
        """
        header = ("layer", "kind", "width", "mean", "std", "mf std", "width band", "max|x|", "dead", "sat",
                  "grad std", "mf grad", "grad max", "status")
        rows = [header]
        for layer in self._shown(every):
            rows.append((
                str(layer.index), layer.name, str(layer.width), _num(layer.act_mean),
                _num(layer.act_std), _num(layer.pred_std), _band(layer.pred_std_band),
                _num(layer.act_max), _pct(layer.dead_fraction), _pct(layer.saturated_fraction), _num(layer.grad_std),
                _num(layer.pred_grad_std), _num(layer.grad_max), layer.status,
            ))
        lines = [self.summary(),
                 f"batch {self.batch}, input mean {_num(self.input_mean)} std {_num(self.input_std)}, "
                 f"output gradient std {_num(self.output_grad_std)}, "
                 f"input gradient std {_num(self.input_grad_std)}"]
        lines += self.notes
        lines += _align(rows, left=(1, 13))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        head = ("layer", "kind", "width", "mean", "std", "mf std", "width band", "max|x|", "dead", "sat",
                "grad std", "mf grad", "grad max", "status")
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = []
        for layer in self.layers:
            values = (layer.index, layer.name, layer.width, _num(layer.act_mean), _num(layer.act_std),
                      _num(layer.pred_std), _band(layer.pred_std_band), _num(layer.act_max),
                      _pct(layer.dead_fraction),
                      _pct(layer.saturated_fraction), _num(layer.grad_std),
                      _num(layer.pred_grad_std), _num(layer.grad_max))
            tds = "".join(f"<td>{html.escape(str(v))}</td>" for v in values)
            color = STATUS_COLORS.get(layer.status, "#000")
            title = html.escape("; ".join(layer.reasons), quote=True)
            tds += f'<td style="color:{color};font-weight:bold" title="{title}">{layer.status}</td>'
            body.append(f"<tr>{tds}</tr>")
        notes = "".join(f"<br>{html.escape(n)}" for n in self.notes)
        caption = (f"<b>{html.escape(self.summary())}</b><br>batch {self.batch}, input std "
                   f"{_num(self.input_std)}, output gradient std {_num(self.output_grad_std)}, "
                   f"input gradient std {_num(self.input_grad_std)}{notes}")
        return (f'<table class="varinit-report"><caption style="text-align:left">{caption}</caption>'
                f"<thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def precision_text(self, every: int = 1) -> str:
        """The low-precision table: predicted / measured overflow and underflow per layer and format.

        Needs ``propagate(..., precision=True)``.

        Parameters
        ----------
        every : int, default 1
            Show layers 1, every, 2 * every, ... and the last.

        Returns
        -------
        str
        """
        layers = [layer for layer in self._shown(every) if layer.precision]
        if not layers:
            return "no low-precision checks: run varinit.propagate(..., precision=True)"
        header = ["layer", "tensor"]
        formats = [check.format for check in (layers[0].precision or {})["activation"]]
        for fmt in formats:
            header += [f"{fmt} over", f"{fmt} under"]
        rows = [tuple(header)]
        for layer in layers:
            for tensor, checks in (layer.precision or {}).items():
                row = [str(layer.index), tensor]
                for check in checks:
                    row.append(f"{_frac(check.predicted_overflow)} / {_frac(check.measured_overflow)}")
                    row.append(f"{_frac(check.predicted_underflow)} / {_frac(check.measured_underflow)}")
                rows.append(tuple(row))
        lines = [f"{self.label}: fractions predicted (Gaussian with the tensor's mean and std) / measured",
                 "activation: the pre-activation of a dense layer (NumPy networks) or the module's output "
                 "(torch); gradient: with respect to the layer's output"]
        return "\n".join(lines + _align(rows, left=(1,)))


def compare_text(reports: Sequence[PropagationReport], every: int = 1) -> str:
    """Several reports side by side: std, mean-field std, gradient std and status per layer.

    Parameters
    ----------
    reports : sequence of PropagationReport
        At least one.
    every : int, default 1
        Show layers 1, every, 2 * every, ... and the last.

    Returns
    -------
    str
        The reports' summaries, then one table.

    Examples
    --------
    >>> import varinit
    >>> reports = [varinit.propagate(varinit.diagnostics.mlp_spec(depth=20, width=128, init=i))
    ...            for i in ("xavier_normal", "kaiming_normal")]
    >>> print(varinit.diagnostics.compare_text(reports, every=10))   # doctest: +ELLIPSIS
    xavier_normal, relu, depth 20, width 128: vanishing from layer 1
    kaiming_normal, relu, depth 20, width 128: healthy
                         xavier_normal                          kaiming_normal
    layer        std     mf std  grad std     status     std  mf std  grad std   status
        1     0.5797     0.5835  0.001282  vanishing  0.8198  0.8252    0.9285  healthy
    ...
    """
    if not reports:
        raise ValueError("compare_text needs at least one report")
    every = _validate.integer(every, "every", minimum=1)
    depth = max(r.depth for r in reports)
    rows = [tuple(["layer"] + ["std", "mf std", "grad std", "status"] * len(reports))]
    for i in range(1, depth + 1):
        if not (i == 1 or i == depth or i % every == 0):
            continue
        row = [str(i)]
        for r in reports:
            if i > r.depth:
                row += ["", "", "", ""]
                continue
            layer = r.layers[i - 1]
            row += [_num(layer.act_std), _num(layer.pred_std), _num(layer.grad_std), layer.status]
        rows.append(tuple(row))
    widths = _widths(rows)
    title = [" " * widths[0]]
    for k, r in enumerate(reports):
        block = sum(widths[1 + 4 * k:5 + 4 * k]) + 2 * 3
        title.append(r.label.split(",")[0][:block].center(block))
    return "\n".join([r.summary() for r in reports] + ["  ".join(title).rstrip()] + _align(rows))


def _widths(rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]


def _align(rows: Sequence[Sequence[str]], left: tuple[int, ...] = ()) -> list[str]:
    widths = _widths(rows)
    out = []
    for row in rows:
        cells = [cell.ljust(w) if c in left else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
    return out


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _band(band: tuple[float, float] | None) -> str:
    return "" if band is None else f"{_num(band[0])}..{_num(band[1])}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _frac(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.2g}"
