"""init_module: a whole torch.nn.Module in one call, from its dataflow when
example inputs are given (varinit.torch.dataflow), else from its module
structure (varinit.torch.modules)."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import torch

from .. import _validate
from .. import init as fills
from .._arrays import is_dtensor, mark_written
from ..layers.records import InitRecord
from ..layers.transaction import all_or_nothing
from ..layers.schemes import as_generator, draw_with_std
from .._typing import GeneratorLike
from ..generator import Generator
from ..progress import Progress, Step, reporter
from .dataflow import RESIDUAL_RULES, Plan, ResidualRule, holds_values, plan
from .branch_balance import balance_branches
from .gradient_balance import TILT_MARGIN, Balanced, balance_gradient, band_distance, predicted_note, scale_reach
from .gradient_check import (BATCH_STATISTICS, GRADIENT_CHECK_BYTES, NOT_SOLVED, SCALE_RESET, EndCauses, Layer,
                             activation_bytes, alpha_dropout, gradient_ratio, measured_note, pooled_attention,
                             residual_streams)
from .graph import ExampleInputs, example_call, uncompiled
from .init_report import InitReport
from .modules import (DEFAULT_RESIDUAL_PATTERN, StructureKeywords, check_fillable, init_by_structure,
                      recurrent_mode, write_gate_offset, zero_padding_row)
from .norm_shift import shift_norms
from .overrides import (OverrideSpec, apply_overrides, frozen_names, parameter_names, resolve_only,
                        resolve_overrides)
from .parametrizations import refresh_spectral_norms
from .refine import Target, correction_factors
from .sharded_model import after_measured_pass, agree_across_ranks, generator_agreed, measured_pass_obstacle
from .stand_in_inputs import stand_in_inputs
from .verdicts import uncorrected_drift

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..layers.schemes import SchemeDistribution

# What only the structure-only init reads, with its default: with example_inputs the
# dataflow decides these, and a value given for them is refused rather than ignored.
STRUCTURE_ONLY: dict[str, Any] = {"scheme": "kaiming", "activation": None, "activations": None, "mode": "fan_in",
                  "residual_scale": None, "residual_pattern": DEFAULT_RESIDUAL_PATTERN, "embedding_std": 1.0,
                  "phase_balanced": False, "infer_dropout": False, "by_name": False, "gain_rule": "exact",
                  "std": None}


def init_module(model: torch.nn.Module, example_inputs: ExampleInputs | None = None, *,
                distribution: SchemeDistribution = "normal", generator: GeneratorLike = None, target: float = 1.0,
                residual: ResidualRule = "depth", measure: bool = True,
                overrides: Mapping[str, OverrideSpec] | None = None,
                only: Iterable[str] | None = None, progress: Progress = None,
                **structure: Unpack[StructureKeywords]) -> InitReport:
    """Initialize every parameter of a torch.nn.Module in place; returns the report.

    With `example_inputs` (a tensor, a tuple of positional tensors or a dict of
    keyword tensors; real or meta) the init follows the model's dataflow: one
    forward pass is traced (`trace`), the signal's mean and second moment are
    carried through every node (layers, activations by quadrature of the
    actual function, additions, products, concatenations, normalizations,
    pooling, dropout, attention, embeddings) and each weight's scale is solved
    so that the second moment at its layer's output is `target`: Var(w) =
    target / (n_eff nu_in), with n_eff the taps that land on real inputs and
    nu_in the second moment of the layer's input (`varinit.torch.dataflow`
    states the rules and their sources). A residual branch ends at the
    fraction of the stream that keeps its growth over the whole depth
    within 4-fold (below e for a branch that ends in a norm). With real
    inputs, one measured pass then corrects each solved layer called as a
    module, and where the solve cannot see the gradient one backward pass
    measures its first/last ratio: the layers of a plain model (no norms,
    attention or residual streams) or of one whose norms set the scale (batch
    statistics, or layer, group or RMS norms without attention) are tilted
    toward [1/4, 4] within the forward's room, each layer's factor undoing
    what the tilt before it does to its input through the activations'
    degrees (`varinit.torch.gradient_balance`); where the tilt's room is
    spent in a model whose norms use batch statistics, the norms' shifts move
    the activations after them toward their linear part, kept when measured
    to help (`varinit.torch.norm_shift`); and a ratio left outside the band,
    on any model, is named with its cause. Every parameter draws from
    ``generator.stream(its name)``, so a sharded copy of the model reproduces
    it piece by piece. The report lists every parameter (untouched ones with
    the reason) with a stability verdict per activation;
    ``report.assert_healthy()`` raises when an activation has no stable
    choice.

    Without example_inputs the structure is all there is to go by: the
    keywords of `varinit.torch.modules.init_by_structure` apply (`scheme`
    "kaiming", "xavier", "lecun", "orthogonal" or "normal", with each layer's
    true fans and the gain of the activation module after it), and every
    weight layer whose activation the structure does not show is named in a
    warning.

    Parameters
    ----------
    model : torch.nn.Module
        The model, on the CPU or the meta device.
    example_inputs : torch.Tensor, tuple or dict, optional
        What the model is called with: one tensor, a tuple of positional
        tensors or a dict of keyword tensors; real or meta.
    distribution : {"normal", "uniform", "truncated_normal"}, default "normal"
        The distribution of the weights, at the solved std.
    generator : None, int, Generator or torch.Generator, optional
        The seed of the whole model: each parameter takes its own stream of
        it. None: a key drawn from torch's default generator, so
        ``torch.manual_seed`` governs.
    target : float, default 1
        The second moment each solved layer's output is given (with
        example_inputs).
    residual : {"depth", "zero_gamma", "none"}, default "depth"
        The rule for residual branches (with example_inputs): "depth" bounds
        the stream's growth over the depth; "zero_gamma" sets the gamma of a
        norm that ends a branch to 0 (Goyal et al. 2017); "none" applies no
        branch rule.
    measure : bool, default True
        With real example inputs, run the measured pass: one forward pass on
        them that corrects each solved layer's scale (what the expected
        moments miss at finite width). False keeps the analytic solve (the
        inputs' moments are still read) and spares that forward pass; the
        report then names the activations whose drift nothing corrects.
    overrides : dict, optional
        ``{name or shell-style pattern: initializer}``: a number (a
        constant), a varinit fill's name, ``(fill or its name, {keyword:
        value})`` or a callable ``fn(tensor, generator)``; the first pattern
        that matches a parameter decides it, which then draws from
        ``generator.stream(its name)`` (`varinit.torch.overrides`). E.g.
        ``{"cls_token": ("trunc_normal_", {"std": 0.02})}``. In both modes;
        the dataflow solve reads the values they give.
    only : iterable of str, optional
        The parameters to initialize, e.g. the ``missing_keys`` of
        ``model.load_state_dict(state, strict=False)``; every other parameter
        keeps its values (a tied one is kept unless all its names are
        listed), and the dataflow solve reads them. None: every parameter
        but those with ``requires_grad=False`` (a fixed sinusoidal table, a
        frozen backbone), which keep their values, named in a warning.
    progress : bool or callable, optional
        True: a tqdm progress bar over the parameters written, when tqdm is
        installed (`varinit.progress`); a callable is called as
        ``progress(done, total)``.
    **structure
        Without example_inputs, the keywords of
        `varinit.torch.modules.init_by_structure`: ``scheme``, ``activation``,
        ``activations``, ``mode``, ``residual_scale``, ``residual_pattern``,
        ``embedding_std``, ``phase_balanced``, ``infer_dropout``, ``by_name``,
        ``gain_rule``, ``std``. With example_inputs the dataflow decides these,
        and a value given for one of them is refused.

    Returns
    -------
    InitReport
        A list of `varinit.layers.InitRecord`, one per parameter, with the
        verdicts and notes of the dataflow solve.

    References
    ----------
    .. [1] G. Bingham and R. Miikkulainen, "AutoInit: analytic signal-preserving
       weight initialization for neural networks", AAAI 2023 (moment rules per
       layer kind).
    .. [2] K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers",
       ICCV 2015.
    .. [3] B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein and S. Ganguli,
       "Exponential expressivity in deep neural networks through transient
       chaos", NeurIPS 2016.

    Examples
    --------
    >>> import torch, varinit
    >>> model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.GELU(), torch.nn.Linear(256, 10))
    >>> x = torch.randn(64, 784, generator=torch.Generator().manual_seed(0))
    >>> report = varinit.torch.init_module(model, x, generator=0)
    >>> print(report.summary())
    4 parameters (2 constant, 2 solved); healthy
    >>> report.assert_healthy()

    From the structure alone, with each layer's fans and the gain of the activation after it:

    >>> report = varinit.torch.init_module(model, scheme="xavier", generator=0)
    >>> report[0].name, report[0].fan_in, report[0].fan_out
    ('0.weight', 784, 256)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model = uncompiled(model)
    step = reporter(progress, "varinit: init_module", unit="parameters")
    selected = resolve_only(model, only)
    frozen = frozen_names(model) if only is None else set()
    selected -= frozen
    overridden = resolve_overrides(model, overrides, selected)
    kept = {name: "kept: not in only= (its values stay)" for name in parameter_names(model).values()
            if name not in selected}
    kept.update((name, "kept: requires_grad=False (frozen: its values stay; name it in only= to initialize "
                       "it)") for name in frozen)
    kept.update((name, f"override {o.pattern!r}") for name, o in overridden.items())
    frozen_note = ([f"parameters with requires_grad=False keep their values ({len(frozen)}; only= naming them "
                    "initializes them): " + ", ".join(sorted(frozen)[:4]) + (", ..." if len(frozen) > 4 else "")]
                   if frozen else [])
    if example_inputs is None:
        _validate.choice(residual, "residual", RESIDUAL_RULES)
        if target != 1.0:
            raise ValueError("target applies with example_inputs (the dataflow solve); got no example_inputs")
        if measure is not True:
            raise ValueError("measure applies with example_inputs (the measured pass); got no example_inputs")
        with all_or_nothing([]):   # a refused argument leaves torch's and varinit's generators as they were
            generator = as_generator(generator, True)
            with generator_agreed(model, generator):
                records = init_by_structure(model, distribution=distribution, generator=generator,
                                            skip=set(kept), progress=step, **structure)
                records += apply_overrides(model, overridden, generator)
        records += _kept_records(kept, overridden)
        refresh_spectral_norms(model, _written(records))
        structural = InitReport(_in_model_order(model, records), notes=frozen_note)
        structural.warn()
        return structural
    unknown = sorted(set(structure) - set(STRUCTURE_ONLY) - {"name_prefix"})
    if unknown:
        raise TypeError(f"init_module() got an unexpected keyword argument {unknown[0]!r}")
    given = sorted(k for k, v in structure.items() if k in STRUCTURE_ONLY and v != STRUCTURE_ONLY[k])
    if given:
        raise ValueError(f"{given[0]} applies without example_inputs (the structure-only init); with "
                         "example_inputs the dataflow decides it")
    distribution = _validate.choice(distribution, "distribution", ("normal", "uniform", "truncated_normal"))
    target = _validate.real(target, "target", _validate.POSITIVE)
    residual = _validate.choice(residual, "residual", RESIDUAL_RULES)
    measure = _validate.flag(measure, "measure")
    check_fillable(model, allow_meta=True)
    example_call(example_inputs)   # refuses what is not a tensor, and an input without elements
    zero_started = _zero_weights(model)
    # the overrides are written first (the solve reads them), undone if the solve fails
    written = [t for name, t in model.named_parameters() if name in overridden and not t.is_meta]
    with all_or_nothing(written):
        streams = as_generator(generator, True) if overridden else None
        override_records: list[InitRecord] = []
        if streams is not None:   # there are overrides
            with generator_agreed(model, streams):
                override_records = apply_overrides(model, overridden, streams)
        result = plan(model, example_inputs, target=target, residual=residual, kept=kept)
    generator = streams if streams is not None else as_generator(generator, True)
    records, notes, layers = _filled(model, example_inputs, result, generator, distribution, measure, step)
    if layers is not None and result.batch_statistics():
        runs: list[tuple[Plan, list[InitRecord], list[str]]] = []

        def solve(shifts: dict[str, float]) -> list[Layer] | None:
            shifted = plan(model, example_inputs, target=target, residual=residual, kept=kept, shifts=shifts)
            again, shifted_notes, after = _filled(model, example_inputs, shifted, generator, distribution, measure)
            runs.append((shifted, again, shifted_notes))
            return after

        shifted_note = shift_norms(result, layers, solve)
        if runs:   # the model is as the last solve left it
            result, records, notes = runs[-1]
        if shifted_note is not None:
            notes = [shifted_note] + notes
    result.notes.extend(notes)
    redrawn = [r.name for r in records
               if r.name in zero_started and not r.rule.startswith(("untouched", "constant 0:"))]
    if redrawn:
        result.notes.append(
            "weights that were all zeros before the call, a start the model sets (a spatial transformer's "
            "identity, adaLN-Zero, a zero-initialized branch end), are drawn by the solve: "
            + ", ".join(redrawn[:4]) + (", ..." if len(redrawn) > 4 else "")
            + "; to keep a start, pass overrides={name: lambda tensor, generator: None} (its bias too)")
    records += override_records + _kept_records(kept, overridden)
    refresh_spectral_norms(model, _written(records))
    report = InitReport(_in_model_order(model, records), result.verdicts, frozen_note + result.notes)
    report.warn()
    return report


def _zero_weights(model: torch.nn.Module) -> set[str]:
    """The parameters of two or more dims (weights, not biases or scalars) that hold
    only zeros, on the CPU or an accelerator (meta and sharded ones have no values
    here): one element is read from each, all of them only where that one is zero."""
    return {name for name, p in model.named_parameters()
            if p.dim() >= 2 and p.numel() and not p.is_meta and not is_dtensor(p)
            and not bool(p.detach().reshape(-1)[0] != 0) and not bool(p.detach().any())}


def _filled(model: torch.nn.Module, example_inputs: ExampleInputs, result: Plan, generator: Generator,
            distribution: SchemeDistribution, measure: bool,
            step: Step = None) -> tuple[list[InitRecord], list[str], list[Layer] | None]:
    """Fill the model from the plan; with real inputs (or N(0, 1) stand-ins for meta ones,
    stand_in_inputs), correct the solved layers by the measured pass, then measure the
    gradient and balance it where the model allows.
    Returns the records, the notes, and the last measured profile (None when the
    gradient was not measured, or not balanced)."""
    notes: list[str] = []
    layers: list[Layer] | None = None
    agree_across_ranks(model, "the solved stds", {n: p.std for n, p in result.params.items() if p.std is not None})
    with torch.no_grad(), generator_agreed(model, generator):
        records = fill(model, result, generator, distribution, step=step)
        # meta inputs to a model that holds values: measured on Gaussian stand-ins of their shapes
        inputs = example_inputs if holds_values(model, example_inputs) else stand_in_inputs(model, example_inputs)
        measured = measure and inputs is not None
        corrected: dict[str, float] = {}   # weight -> the measured pass's factor on its std
        obstacle = measured and measured_pass_obstacle(model)   # a DTensor model whose forward sees shards
        if obstacle:
            notes.append(obstacle)
        factors: dict[str, float] | None = None
        if measured and not obstacle:
            try:
                factors = correction_factors(model, cast(ExampleInputs, inputs), result.measurable)
            except Exception as error:
                if inputs is example_inputs:
                    raise
                # a forward that refuses N(0, 1) inputs (it asserts they are positive, takes their
                # log, indexes with them): the inputs were ours, so the analytic solve stands
                notes.append(f"the measured pass on N(0, 1) stand-ins for the meta example inputs raised "
                             f"{type(error).__name__}: {error}; the analytic solve stands")
            else:
                if inputs is not example_inputs:
                    notes.append("measured on N(0, 1) stand-ins of the meta example inputs' shapes (the unit "
                                 "second moment the solve assumed for them), so the realized draws are corrected")
        if factors is None:
            notes.extend(uncorrected_drift(result.drift, result.spread))
            predicted = predicted_note(result)
            notes.extend([predicted] if predicted is not None else [])
        else:
            after_measured_pass(model)
            agree_across_ranks(model, "the measured corrections", factors)
            corrected = {name: f for name, f in factors.items() if f != 1.0}
            if corrected:
                redrawn = {r.name: r for r in fill(model, result, generator, distribution, corrected)}
                records = [redrawn.get(r.name, r) for r in records]
    if factors is not None and not any(is_dtensor(p) for p in model.parameters()):
        inputs = cast(ExampleInputs, inputs)
        held = activation_bytes(result.graph)
        pooled = result.pooled_positions()
        if held > GRADIENT_CHECK_BYTES:
            notes.append(
                f"the gradient was not measured: one backward pass on the example inputs would hold about "
                f"{held / 2 ** 30:.3g} GiB of activations (more than {GRADIENT_CHECK_BYTES / 2 ** 30:g} GiB); a "
                "smaller batch of example inputs measures it")
        elif result.plain():
            dropped = result.alpha_dropouts()
            records, balanced = _balanced(model, inputs, result, generator, distribution, records,
                                          corrected, alpha_dropout(dropped) if dropped else None)
            notes.extend(balanced.notes)
            layers = balanced.layers
        elif (result.batch_statistics() or result.scale_reset()) and pooled is None:
            records, balanced = _balanced(model, inputs, result, generator, distribution, records,
                                          corrected, _gradient_cause(result, pooled))
            if (result.residual_branches and balanced.layers is not None
                    and band_distance(gradient_ratio(balanced.layers), TILT_MARGIN) > 0.0):
                # the tilt leaves the residual branches' ends (their goals are shares of the stream)
                records, balanced = _branches_balanced(model, inputs, result, generator, distribution, records,
                                                       corrected, pooled)
            notes.extend(balanced.notes)
            layers = balanced.layers
        elif result.residual_branches and pooled is None and any(t.stream is not None for t in result.measurable):
            records, balanced = _branches_balanced(model, inputs, result, generator, distribution, records,
                                                   corrected, pooled)
            notes.extend(balanced.notes)
        else:
            note = measured_note(model, inputs, _gradient_cause(result, pooled), pooled, _end_causes(result))
            notes.extend([note] if note is not None else [])
    return records, notes, layers


class _Draws:
    """The weights a balance draws again from their streams: each at the measured
    pass's std (`corrected`: weight -> its factor) times a factor, with the records
    of the last draw of each."""

    def __init__(self, model: torch.nn.Module, result: Plan, generator: Generator,
                 distribution: SchemeDistribution, records: list[InitRecord], corrected: dict[str, float]) -> None:
        self.model, self.result, self.generator, self.distribution = model, result, generator, distribution
        self.corrected = corrected
        self.by_name = {r.name: r for r in records}
        self.drawn: dict[str, float] = {}   # weight -> its factor over the measured pass's std, as last drawn

    def draw(self, factors: dict[str, float]) -> None:
        """Draw `factors`' weights at the measured pass's std times theirs, and the
        weights drawn before and not named here back at the measured pass's."""
        factors = {**dict.fromkeys(self.drawn, 1.0), **factors}
        undone = all(f == 1.0 for f in factors.values())
        source = "the measured pass" + ("" if undone else " and the gradient's balance")
        with torch.no_grad():
            self.by_name.update((r.name, r) for r in fill(
                self.model, self.result, self.generator, self.distribution,
                {w: self.corrected.get(w, 1.0) * f for w, f in factors.items()}, source=source))
        self.drawn = {} if undone else dict(factors)

    def measure_to(self, example_inputs: ExampleInputs, targets: list[Target], factors: dict[str, float]) -> None:
        """After drawing `factors`, bring each target layer's output to its goal by a
        measured pass, layer after layer (refine.correction_factors)."""
        self.draw(factors)
        again = {w: f for w, f in correction_factors(self.model, example_inputs, targets).items() if f != 1.0}
        if again:
            self.draw({w: factors.get(w, 1.0) * f for w, f in {**dict.fromkeys(factors, 1.0), **again}.items()})

    def records(self, records: list[InitRecord]) -> list[InitRecord]:
        return [self.by_name[r.name] for r in records]


def _balanced(model: torch.nn.Module, example_inputs: ExampleInputs, result: Plan, generator: Generator,
              distribution: SchemeDistribution, records: list[InitRecord],
              corrected: dict[str, float], cause: str | None = None) -> tuple[list[InitRecord], Balanced]:
    """The records after `gradient_balance.balance_gradient` on a plain model (no norms,
    attention or residual streams) or on one whose norms set the scale (batch statistics,
    or layer, group or RMS norms without attention: they divide a layer's scale out, so
    its output's std sets only its own gradient's):
    each weight the balance scales drawn again from its stream at the measured pass's
    std times its factor, then measured again layer by layer to its planned output
    scale; and its notes, with `cause` for a ratio left outside."""
    goals = {t.module: t for t in result.measurable if not t.functional and t.goal is not None}
    weights = {module: t.weight for module, t in goals.items()}
    draws = _Draws(model, result, generator, distribution, records, corrected)

    def redraw(factors: dict[str, float], scales: dict[str, float]) -> None:
        # each layer's output brought to its planned scale, layer after layer: where the activations
        # are not homogeneous the factors are first order, and an unstable fixed point (GELU's,
        # chi_q 1.1 per layer) carries a first-order miss along the depth (a 30-layer GELU MLP planned
        # to 0.68 at the top measured 1.6 there and 2.7 at the output)
        draws.measure_to(example_inputs, [goals[m]._replace(goal=cast(float, goals[m].goal) * scale ** 2)
                                          for m, scale in scales.items()], factors)

    # a plain model whose activations are not homogeneous (slope 1: E[g^2] goes as the input's second
    # moment, as ReLU's) works at a scale that moves chi_1; behind a norm that sets it, no lift does
    lift = result.plain() and not all(abs(v.slope - 1.0) <= 1e-3 for v in result.verdicts)
    balanced = balance_gradient(model, example_inputs, weights, scale_reach(result), redraw, cause,
                                _end_causes(result), lift)
    return draws.records(records), balanced


def _branches_balanced(model: torch.nn.Module, example_inputs: ExampleInputs, result: Plan, generator: Generator,
                       distribution: SchemeDistribution, records: list[InitRecord], corrected: dict[str, float],
                       pooled: str | None) -> tuple[list[InitRecord], Balanced]:
    """The records after `branch_balance.balance_branches` on a model with residual
    streams: the branches' last layers measured again at a smaller share of their
    stream where that brings the gradient's ratio into the band; and its notes."""
    branches = [t for t in result.measurable if t.stream is not None and t.alpha is not None]
    draws = _Draws(model, result, generator, distribution, records, corrected)

    def resize(stds: dict[str, float]) -> None:
        draws.measure_to(example_inputs, [t._replace(goal=stds[t.module] ** 2, stream=None, alpha=None)
                                          for t in result.measurable if t.module in stds], {})

    scores = result.score_layers() & {t.module for t in result.measurable}
    balanced = balance_branches(model, example_inputs, {t.module for t in branches}, scores, resize,
                                _gradient_cause(result, pooled), pooled, _end_causes(result))
    return draws.records(records), balanced


def _end_causes(result: Plan) -> EndCauses:
    """The layers whose gradient a broadcast or a constant factor sets (gradient_check.end_cause),
    and where the output averages over positions."""
    return EndCauses(result.broadcast_layers(), result.scaled_layers(), result.averaged_positions())


def _gradient_cause(result: Plan, pooled: str | None) -> str:
    """Why a measured gradient ratio outside the band stays there, for a model that is not
    plain: a mean over the positions attention mixes (in `pooled`), batch statistics,
    residual streams, norms that set the scale, or a solve that keeps the forward only."""
    if pooled is not None:
        return pooled_attention(pooled)
    if result.batch_statistics():
        return BATCH_STATISTICS
    if result.residual_branches:
        return residual_streams(result.residual_branches)
    return SCALE_RESET if result.scale_reset() else NOT_SOLVED


def _written(records: list[InitRecord]) -> list[str]:
    """The names of the parameters a list of records says were written."""
    return [r.name for r in records if not r.rule.startswith(("untouched", "kept"))]


def _kept_records(kept: dict[str, str], overridden: Mapping[str, object]) -> list[InitRecord]:
    return [InitRecord(name, reason, None, None, float("nan")) for name, reason in kept.items()
            if name not in overridden]


def _in_model_order(model: torch.nn.Module, records: list[InitRecord]) -> list[InitRecord]:
    order = {name: i for i, name in enumerate(parameter_names(model))}
    return sorted(records, key=lambda r: order.get(r.name, len(order)))


def _real_parts(tensor: torch.Tensor, std: float) -> tuple[torch.Tensor, float]:
    """(the tensor, std), or for a complex one its real and imaginary parts as one real
    view and std / sqrt(2) for each, so that E|w|^2 = std^2: the moment rules read a
    complex value's second moment as E|x|^2 (an FNO's spectral weights, zongyi-li's
    `torch.rand(..., dtype=torch.cfloat)`). The values are then those of
    `varinit.normal_(torch.view_as_real(p), std=std / sqrt(2), generator=g.stream(name))`."""
    if tensor.is_complex():
        return torch.view_as_real(tensor), std / math.sqrt(2.0)
    return tensor, std


def fill(model: torch.nn.Module, result: Plan, generator: Generator, distribution: SchemeDistribution = "normal",
         factors: dict[str, float] | None = None,
         step: Callable[[int, int], object] | None = None,
         source: str = "the measured pass") -> list[InitRecord]:
    """Write the plan into the model: each parameter from generator.stream(name); with
    `factors`, only the weights named there, drawn again with std times factors[name]
    (`source` corrected them: the measured pass). Returns the records of what was written."""

    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    records = []
    # recurrent modules first, by varinit's recurrent rules: the parameters of theirs
    # that the dataflow solved (input weights) are then written over below
    recurrent = sorted({name.rsplit(".", 1)[0] for name, p in result.params.items() if p.rule == "recurrent"})
    for module_name in recurrent if factors is None else ():
        module = modules.get(module_name)
        if module is None:
            continue
        for record in init_by_structure(module, generator=generator, by_name=True, name_prefix=module_name):
            p = result.params.get(record.name)
            if p is not None and p.rule == "recurrent" and p.value is not None:
                # a gate's offset, solved for the layer's gated output (dataflow._gate_offset)
                if not params[record.name].is_meta:
                    write_gate_offset(params[record.name], recurrent_mode(module), p.value)
                record = record._replace(rule=f"{record.rule}, solved {p.reason}")
            if p is None or p.rule == "recurrent":
                records.append(record)
    for done, (name, p) in enumerate(result.params.items()):
        if step is not None:
            step(done, len(result.params))
        if factors is not None and name not in factors:
            continue
        tensor = params[name]
        note = f"; tied with {', '.join(p.tied)}" if p.tied else ""
        factor = (factors or {}).get(name, 1.0)
        if factor != 1.0:   # a normal plan's std, or a gain's value that sets a computed weight's scale
            reason = f"{p.reason}; x{factor:.4f} from {source}"
            p = (dataclasses.replace(p, std=cast(float, p.std) * factor, reason=reason) if p.rule == "normal" else
                 dataclasses.replace(p, value=cast(float, p.value) * factor, reason=reason))
        if p.rule == "normal":
            stream = generator.stream(name)
            std = cast(float, p.std)   # a "normal" plan has its std
            if not tensor.is_meta:
                parts, part_std = _real_parts(tensor, std)
                draw_with_std(parts, distribution, part_std, stream)
            owner, _, leaf = name.rpartition(".")
            padding = zero_padding_row(modules.get(owner), tensor) if leaf == "weight" else None
            if padding is not None:   # as torch's Embedding keeps it: the padding token's vector is 0
                note += f"; row {padding} (padding_idx) zero"
            records.append(InitRecord(name, f"solved {distribution}: {p.reason}{note}", p.fan_in, None, std))
        elif p.rule == "orthogonal":   # under spectral norm: the scale is divided out
            if not tensor.is_meta:
                fills.orthogonal_(tensor, generator=generator.stream(name))
            records.append(InitRecord(name, f"orthogonal: {p.reason}{note}", p.fan_in, None, cast(float, p.std)))
        elif p.rule == "constant":
            value = cast(float, p.value)   # a "constant" plan has its value
            if tensor.is_complex() and not tensor.is_meta:
                parts, _ = _real_parts(tensor, 0.0)
                fills.constant_(parts, 0.0)
                fills.constant_(parts[..., 0], value)
            elif not tensor.is_meta:
                fills.constant_(tensor, value)
            records.append(InitRecord(name, f"constant {value:.6g}: {p.reason}", None, None, 0.0))
        elif p.rule not in ("recurrent", "kept"):
            records.append(InitRecord(name, f"untouched: {p.reason}", None, None, float("nan")))
    if step is not None:
        step(len(result.params), len(result.params))
    for tensor in params.values():
        if not tensor.is_meta:
            mark_written(tensor)
    return records
