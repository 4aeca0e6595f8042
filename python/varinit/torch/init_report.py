"""InitReport: what init_module did, parameter by parameter, and whether the
model it leaves can be trusted to keep its signal over depth."""
import html
import math
import warnings

from ..diagnostics.report import STATUS_COLORS


class UnhealthyInitError(RuntimeError):
    """An activation of the model has no stable initialization (see InitReport.verdicts)."""


class InitReport(list):
    """A list of InitRecord (one per parameter, untouched ones with the reason),
    with the graph-aware init's verdicts (varinit.torch.verdicts.Verdict, one per
    activation) and notes (ops without a rule, assumptions made)."""

    def __init__(self, records, verdicts=(), notes=()):
        super().__init__(records)
        self.verdicts = list(verdicts)
        self.notes = list(notes)

    @property
    def healthy(self):
        return all(v.healthy for v in self.verdicts)

    def assert_healthy(self):
        """Raise UnhealthyInitError naming every activation without a stable choice."""
        bad = [v.message for v in self.verdicts if not v.healthy]
        if bad:
            raise UnhealthyInitError("; ".join(bad))

    def warn(self):
        for verdict in self.verdicts:
            if not verdict.healthy:
                warnings.warn(verdict.message, UserWarning, stacklevel=3)
        for note in self.notes:
            warnings.warn(f"varinit.torch.init_module: {note}", UserWarning, stacklevel=3)

    def counts(self):
        """How many parameters each kind of rule got."""
        out = {}
        for record in self:
            kind = record.rule.split(":", 1)[0].split(" ", 1)[0]
            out[kind] = out.get(kind, 0) + 1
        return out

    def summary(self):
        """One line: parameters per rule and the verdict."""
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts().items()))
        state = "healthy" if self.healthy else "NOT healthy: " + ", ".join(
            v.activation for v in self.verdicts if not v.healthy)
        return f"{len(self)} parameters ({counts}); {state}"

    def to_text(self):
        width = max((len(r.name) for r in self), default=4)
        lines = [self.summary()]
        lines += [f"  {v.message}" for v in self.verdicts]
        lines += [f"  note: {n}" for n in self.notes]
        for r in self:
            std = "" if r.std is None or math.isnan(r.std) else f"std {r.std:.4g}  "
            lines.append(f"{r.name:<{width}}  {std}{r.rule}")
        return "\n".join(lines)

    def __str__(self):
        return self.to_text()

    def __repr__(self):
        return f"InitReport({self.summary()!r})"

    def _repr_html_(self):
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
