"""The reports of the data-driven whole-model calls (lsuv, weight_norm_init), for
NumPy and torch models alike: a list of records with a one-line summary, a text
table (print) and an HTML table (a notebook shows it)."""
from __future__ import annotations

import html
from typing import Generic, TypeVar

import numpy as np

from .records import LsuvRecord, WeightNormRecord


R = TypeVar("R", LsuvRecord, WeightNormRecord)


class _RecordTable(list[R], Generic[R]):
    """A list of records that prints as a table."""

    columns: tuple[str, ...] = ()

    def summary(self) -> str:
        raise NotImplementedError

    def row(self, record: R) -> tuple[str, ...]:
        raise NotImplementedError

    def to_text(self) -> str:
        rows = [self.columns] + [self.row(r) for r in self]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        lines = [self.summary()]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in self.row(r)) + "</tr>"
                       for r in self)
        return (f"<div><p>{html.escape(self.summary())}</p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table></div>")


class LsuvReport(_RecordTable[LsuvRecord]):
    """What lsuv did: a list of LsuvRecord, one per layer (name, rescalings,
    output variance after the last one, converged within tol), that prints as a
    table after a one-line summary and shows as an HTML table in a notebook.

    Parameters
    ----------
    iterable : iterable of LsuvRecord, optional
        The records, one per layer.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> rng = np.random.default_rng(0)
    >>> layers = [(np.empty((64, 32)), np.empty(64), "tanh"), (np.empty((10, 64)), np.empty(10), None)]
    >>> report = varinit.layers.lsuv(layers, rng.standard_normal((256, 32)), generator=0)
    >>> print(report.summary())
    2 layers, 2 rescalings; output variance 1 to 1; all converged
    >>> print(report)
    2 layers, 2 rescalings; output variance 1 to 1; all converged
      layer  rescalings  output variance  converged
      0      1           1                yes
      1      1           1                yes
    """

    columns = ("layer", "rescalings", "output variance", "converged")

    def summary(self) -> str:
        done = sum(1 for r in self if r.converged)
        if not self:
            return "0 layers"
        variances = [r.variance for r in self]
        state = "all converged" if done == len(self) else (
            "NOT converged: " + ", ".join(r.name for r in self if not r.converged))
        return (f"{len(self)} layers, {sum(r.iterations for r in self)} rescalings; output variance "
                f"{min(variances):.4g} to {max(variances):.4g}; {state}")

    def row(self, record: LsuvRecord) -> tuple[str, ...]:
        return (record.name, str(record.iterations), f"{record.variance:.4g}", "yes" if record.converged else "NO")


class WeightNormReport(_RecordTable[WeightNormRecord]):
    """What weight_norm_init did: a list of WeightNormRecord, one per layer (the
    mean and std on the data of each unit's normalized pre-activation before the
    init), that prints as a table after a one-line summary and shows as an HTML
    table in a notebook.

    Parameters
    ----------
    iterable : iterable of WeightNormRecord, optional
        The records, one per layer.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> rng = np.random.default_rng(0)
    >>> layers = [varinit.layers.Layer(rng.standard_normal((64, 32)), np.zeros(64), "relu", g=np.ones(64)),
    ...           varinit.layers.Layer(rng.standard_normal((10, 64)), np.zeros(10), None, g=np.ones(10))]
    >>> report = varinit.layers.weight_norm_init(layers, rng.standard_normal((256, 32)))
    >>> print(report.summary())
    2 layers, 74 units set to zero mean and unit variance on the data
    """

    columns = ("layer", "units", "mean before (mean of |.|)", "std before (min to max)")

    def summary(self) -> str:
        units = sum(int(np.size(r.std)) for r in self)
        return f"{len(self)} layers, {units} units set to zero mean and unit variance on the data"

    def row(self, record: WeightNormRecord) -> tuple[str, ...]:
        std = np.asarray(record.std, dtype=np.float64)
        mean = np.asarray(record.mean, dtype=np.float64)
        spread = f"{std.min():.4g} to {std.max():.4g}" if std.size else "-"
        centre = f"{float(np.abs(mean).mean()):.4g}" if mean.size else "-"
        return (record.name, str(std.size), centre, spread)
