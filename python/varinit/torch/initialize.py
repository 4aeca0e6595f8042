"""init_module: a whole torch.nn.Module in one call, from its dataflow when
example inputs are given (varinit.torch.dataflow), else from its module
structure (varinit.torch.modules)."""
import dataclasses
import math

import torch

from .. import _validate
from .. import init as fills
from .._arrays import mark_written
from ..layers.records import InitRecord
from ..layers.schemes import as_generator
from .dataflow import RESIDUAL_RULES, holds_values, plan
from .init_report import InitReport
from .modules import DEFAULT_RESIDUAL_PATTERN, check_fillable, init_by_structure
from .refine import correction_factors

# What only the structure-only init reads, with its default: with example_inputs the
# dataflow decides these, and a value given for them is refused rather than ignored.
STRUCTURE_ONLY = {"scheme": "kaiming", "activation": None, "activations": None, "mode": "fan_in",
                  "residual_scale": None, "residual_pattern": DEFAULT_RESIDUAL_PATTERN, "embedding_std": 1.0,
                  "phase_balanced": False, "infer_dropout": False, "by_name": False, "gain_rule": "exact"}


def init_module(model, example_inputs=None, *, distribution="normal", generator=None, target=1.0,
                residual="depth", **structure):
    """Initialize every parameter of a torch.nn.Module in place; returns the report.

    With `example_inputs` (a tensor, a tuple of positional tensors or a dict of
    keyword tensors; real or meta) the init follows the model's dataflow: one
    forward pass is traced, the signal's mean and second moment are carried
    through every node and each weight's scale is solved so the second moment
    at its layer's output is `target` (varinit.torch.dataflow states the
    rules; `residual` is "depth", "zero_gamma" or "none"). With real inputs a
    measured pass then corrects each solved layer called as a module. Every
    parameter draws from generator.stream(its name). The report is an
    InitReport: a list of InitRecord, one per parameter (untouched ones with
    the reason), with a stability verdict per activation;
    report.assert_healthy() raises when an activation has no stable choice.

    Without example_inputs the structure is all there is to go by: the keyword
    arguments of varinit.torch.modules.init_by_structure (scheme, activation,
    activations, mode, residual_scale, residual_pattern, embedding_std,
    phase_balanced, infer_dropout, by_name, gain_rule) apply, and every weight
    layer whose activation the structure does not show is named in a warning.

    Example::

        >>> model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.GELU(), torch.nn.Linear(256, 10))
        >>> report = varinit.torch.init_module(model, torch.randn(64, 784), generator=0)
        >>> report.assert_healthy()
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if example_inputs is None:
        _validate.choice(residual, "residual", RESIDUAL_RULES)
        if target != 1.0:
            raise ValueError("target applies with example_inputs (the dataflow solve); got no example_inputs")
        return init_by_structure(model, distribution=distribution, generator=generator, **structure)
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
    check_fillable(model, allow_meta=True)
    result = plan(model, example_inputs, target=target, residual=residual)
    generator = as_generator(generator, True)
    with torch.no_grad():
        records = fill(model, result, generator, distribution)
        if holds_values(model, example_inputs):
            factors = correction_factors(model, example_inputs, result.measurable)
            corrected = {name: f for name, f in factors.items() if f != 1.0}
            if corrected:
                redrawn = {r.name: r for r in fill(model, result, generator, distribution, corrected)}
                records = [redrawn.get(r.name, r) for r in records]
    report = InitReport(records, result.verdicts, result.notes)
    report.warn()
    return report


def fill(model, result, generator, distribution="normal", factors=None):
    """Write the plan into the model: each parameter from generator.stream(name); with
    `factors`, only the weights named there, drawn again with std times factors[name]
    (a measured pass corrected them). Returns the records of what was written."""

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
            if result.params.get(record.name) is None or result.params[record.name].rule == "recurrent":
                records.append(record)
    for name, p in result.params.items():
        if factors is not None and name not in factors:
            continue
        tensor = params[name]
        note = f"; tied with {', '.join(p.tied)}" if p.tied else ""
        if p.rule == "normal":
            stream = generator.stream(name)
            factor = (factors or {}).get(name, 1.0)
            if factor != 1.0:
                p = dataclasses.replace(p, std=p.std * factor,
                                        reason=f"{p.reason}; x{factor:.4f} from the measured pass")
            if tensor.is_meta:
                pass
            elif distribution == "normal":
                fills.normal_(tensor, 0.0, p.std, stream)
            elif distribution == "uniform":
                bound = math.sqrt(3.0) * p.std
                fills.uniform_(tensor, -bound, bound, stream)
            else:
                s = p.std / fills.TRUNCATED_STD
                fills.trunc_normal_(tensor, 0.0, s, -2.0 * s, 2.0 * s, stream)
            records.append(InitRecord(name, f"solved {distribution}: {p.reason}{note}", p.fan_in, None, p.std))
        elif p.rule == "constant":
            if not tensor.is_meta:
                fills.constant_(tensor, p.value)
            records.append(InitRecord(name, f"constant {p.value:.6g}: {p.reason}", None, None, 0.0))
        elif p.rule != "recurrent":
            records.append(InitRecord(name, f"untouched: {p.reason}", None, None, float("nan")))
    for tensor in params.values():
        if not tensor.is_meta:
            mark_written(tensor)
    return records
