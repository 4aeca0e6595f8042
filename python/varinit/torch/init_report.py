"""InitReport: what init_module did, parameter by parameter, and whether the
model it leaves can be trusted to keep its signal over depth."""
from __future__ import annotations

import html
import math
import warnings
from collections.abc import Iterable

from ..diagnostics.report import STATUS_COLORS
from ..generator import user_frame
from ..layers.records import InitRecord
from .verdicts import Verdict


class UnhealthyInitError(RuntimeError):
    """An activation of the model has no stable initialization: raised by `InitReport.assert_healthy`.

    The message names each such activation and why (see `InitReport`).

    Examples
    --------
    A square activation multiplies any relative error of the second moment by
    2 per layer: no scale keeps it over depth.

    >>> import warnings, torch, varinit
    >>> class Square(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x * x
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), Square(), torch.nn.Linear(64, 64), Square(),
    ...                             torch.nn.Linear(64, 64))
    >>> x = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     report = varinit.torch.init_module(model, x, generator=0)
    >>> report.assert_healthy()
    Traceback (most recent call last):
    ...
    varinit.torch.init_report.UnhealthyInitError: mul: no stable choice: ...
    """


class InitReport(list[InitRecord]):
    """What `init_module` did, parameter by parameter: a list of `varinit.layers.InitRecord`.

    Beside the records (one per parameter, untouched ones with the reason),
    the dataflow init's verdicts (one per activation: chi_1, the gradient's
    per-layer factor where the solve puts it, and whether a relative error of
    the second moment grows over depth) and notes (ops without a rule,
    assumptions made). ``str(report)`` is a text table; in Jupyter the report
    shows as an HTML table.

    Parameters
    ----------
    records : iterable of varinit.layers.InitRecord
        One per parameter.
    verdicts : iterable, optional
        One ``varinit.torch.verdicts.Verdict`` per activation.
    notes : iterable of str, optional
        What the init assumed or could not model.

    Examples
    --------
    >>> import torch, varinit
    >>> model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    >>> x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    >>> report = varinit.torch.init_module(model, x, generator=0)
    >>> report.healthy, len(report), report.counts()
    (True, 4, {'solved': 2, 'constant': 2})
    """

    def __init__(self, records: Iterable[InitRecord], verdicts: Iterable[Verdict] = (),
                 notes: Iterable[str] = ()) -> None:
        super().__init__(records)
        self.verdicts = list(verdicts)
        self.notes = list(notes)

    @property
    def healthy(self) -> bool:
        """True when every activation has a stable choice."""
        return all(v.healthy for v in self.verdicts)

    def assert_healthy(self) -> None:
        """Raise UnhealthyInitError naming every activation without a stable choice."""
        bad = [v.message for v in self.verdicts if not v.healthy]
        if bad:
            raise UnhealthyInitError("; ".join(bad))

    def warn(self) -> None:
        """Issue a UserWarning for every unhealthy verdict and every note."""
        for verdict in self.verdicts:
            if not verdict.healthy:
                warnings.warn(verdict.message, UserWarning, stacklevel=user_frame()[1])
        for note in self.notes:
            warnings.warn(f"varinit.torch.init_module: {note}", UserWarning, stacklevel=user_frame()[1])

    def counts(self) -> dict[str, int]:
        """How many parameters each kind of rule got."""
        out: dict[str, int] = {}
        for record in self:
            kind = record.rule.split(":", 1)[0].split(" ", 1)[0].rstrip(",")   # "zeros, forget-gate block 1"
            out[kind] = out.get(kind, 0) + 1
        return out

    def summary(self) -> str:
        """One line: parameters per rule and the verdict."""
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts().items()))
        state = "healthy" if self.healthy else "NOT healthy: " + ", ".join(
            v.activation for v in self.verdicts if not v.healthy)
        return f"{len(self)} parameters ({counts}); {state}"

    def to_text(self) -> str:
        """The text table: the summary, the verdicts and notes, then one line per parameter.

        Returns
        -------
        str
        """
        width = max((len(r.name) for r in self), default=4)
        lines = [self.summary()]
        lines += [f"  {v.message}" for v in self.verdicts]
        lines += [f"  note: {n}" for n in self.notes]
        for r in self:
            std = "" if r.std is None or math.isnan(r.std) else f"std {r.std:.4g}  "
            lines.append(f"{r.name:<{width}}  {std}{r.rule}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"InitReport({self.summary()!r})"

    def _repr_html_(self) -> str:
        color = STATUS_COLORS["healthy" if self.healthy else "exploding"]
        verdicts = "".join(
            f'<li style="color:{STATUS_COLORS["healthy" if v.healthy else "exploding"]}">'
            f"{html.escape(v.message)}</li>" for v in self.verdicts)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{'' if r.std is None or math.isnan(r.std) else f'{r.std:.4g}'}"
            f"</td><td>{html.escape(r.rule)}</td></tr>" for r in self)
        return (f'<div class="varinit-init-report"><b style="color:{color}">{html.escape(self.summary())}</b>'
                f"<ul>{verdicts}{notes}</ul><table><thead><tr><th>parameter</th><th>std</th><th>rule</th>"
                f"</tr></thead><tbody>{rows}</tbody></table></div>")
