"""Whole-model initialization, one parameter at a time: a scheme, the gain of
the activation that follows the layer and the layer's fan keywords give one
fill and one line of the report. Shared by `varinit.layers.init_layers` (NumPy) and
`varinit.torch.init_module` (PyTorch).

With g the gain of the activation that follows the layer
(varinit.gains.gain_for by the caller's `gain_rule`, g = 1 for none) and s the residual scale (1
unless the layer closes a residual branch), each weight entry has variance:

- "kaiming"    (He et al. 2015):          Var = (s g)^2 / fan, fan = fan_in or fan_out (`mode`)
- "xavier"     (Glorot & Bengio 2010):    Var = (s g)^2 * 2 / (fan_in + fan_out)
- "lecun"      (LeCun et al. 1998):       Var = s^2 / fan_in, the activation ignored (as Keras and
                                          JAX; the self-normalizing rule of Klambauer et al. 2017)
- "orthogonal" (Saxe et al. 2014):        a Haar-orthogonal matrix per block times s g; each
                                          entry then has Var = (s g)^2 / max(rows, cols)

drawn from `distribution` "normal", "uniform" or "truncated_normal" (cut at
+-2 of its own std, rescaled so the sample std is sqrt(Var), as Keras). The
variance-aware keywords of the fan-based inits (keep_prob, density,
input_var, phase_balanced; varinit.fan_rules) apply on top: fans are
multiplied by density and Var by keep_prob / input_var.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Literal

from .. import _validate
from ..fan_rules import weight_plan
from ..gains import DEFAULT_GAIN_RULE, check_gain_rule, gain_for
from ..generator import Generator, default_generator, resolve
from ..init import (TRUNCATED_STD, TRUNCATION, constant_, normal_, orthogonal_, trunc_normal_, uniform_,
                    variance_scaling_)
from .._typing import FanMode, Fillable, FillableT, GainRule, GeneratorLike, Nonlinearity, ScalingMode
from .records import InitRecord

Scheme = Literal["kaiming", "xavier", "lecun", "orthogonal"]
SchemeDistribution = Literal["normal", "uniform", "truncated_normal"]
# an activation as gain_and_label takes it: None, a name or callable, or (name, param)
ActivationSpec = Nonlinearity | tuple[Nonlinearity, float] | None
SCHEMES: tuple[Scheme, ...] = ("kaiming", "xavier", "lecun", "orthogonal")
MODES: tuple[FanMode, ...] = ("fan_in", "fan_out")
DISTRIBUTIONS: tuple[SchemeDistribution, ...] = ("normal", "uniform", "truncated_normal")


def check_choices(scheme: object, mode: object, distribution: object) -> None:
    """Validate the scheme keywords shared by every whole-model entry point."""
    _validate.choice(scheme, "scheme", SCHEMES)
    _validate.choice(mode, "mode", MODES)
    _validate.choice(distribution, "distribution", DISTRIBUTIONS)


def check_residual_scale(residual_scale: float | None) -> float:
    return 1.0 if residual_scale is None else _validate.real(residual_scale, "residual_scale", _validate.POSITIVE)


def as_generator(generator: GeneratorLike, target_is_torch: bool) -> Generator:
    """One varinit.Generator for a whole model, so that each parameter takes
    its own stream (an int seed alone would give every parameter stream 0).

    None: the default generator, or for torch a fresh Generator keyed from
    torch's default generator (so torch.manual_seed governs, as for single
    tensors). An int, numpy.random.Generator or torch.Generator gives a
    Generator keyed by it.
    """
    if isinstance(generator, Generator):
        return generator
    if generator is None and not target_is_torch:
        return default_generator
    key, _ = resolve(generator, target_is_torch)
    return Generator(key)


def stream_for(generator: Generator, name: str, by_name: bool) -> GeneratorLike:
    """The generator= for the parameter `name`: its own named stream with
    by_name (independent of the order of the walk), else the next stream."""
    return generator.stream(name) if by_name else generator


@functools.lru_cache(maxsize=256)
def _named_gain(name: Any, param: float | None, gain_rule: GainRule) -> float:
    # A gain is a quadrature (~20 ms): computed once per activation, not per layer.
    return gain_for(name, param, gain_rule)


def gain_and_label(activation: ActivationSpec, gain_rule: GainRule = DEFAULT_GAIN_RULE) -> tuple[float, str]:
    """(gain, label) for an activation spec by `gain_rule` (varinit.gains): None or
    "linear" (gain 1), a name, a (name, param) pair, or a callable f."""
    check_gain_rule(gain_rule)
    if activation is None:
        return 1.0, "linear"
    if isinstance(activation, tuple):
        if len(activation) != 2 or not isinstance(activation[0], str):
            raise ValueError(f"an activation given as a tuple must be (name, param), got {activation!r}")
        name, param = activation
        return _named_gain(name, param, gain_rule), f"{name}({param})"
    if isinstance(activation, str):
        return _named_gain(activation, None, gain_rule), activation
    if callable(activation):
        label = getattr(activation, "__name__", type(activation).__name__)
        return gain_for(activation, None, gain_rule), label
    raise TypeError(
        "activation must be None, a name, a (name, param) pair or a callable, "
        f"got {type(activation).__name__}"
    )


def _whole(fan: float) -> int | float:
    """A fan as an int when it is one (density and stride can make it fractional)."""
    return int(fan) if float(fan).is_integer() else float(fan)


def fill_weight(tensor: Fillable, name: str, *, scheme: Scheme, activation: ActivationSpec, mode: FanMode,
                distribution: SchemeDistribution, residual_scale: float, generator: GeneratorLike,
                layout: dict[str, Any], gain_rule: GainRule = DEFAULT_GAIN_RULE) -> InitRecord:
    """Fill one weight by the scheme; `layout` holds its varinit.fans keywords."""
    g, label = gain_and_label(activation, gain_rule)
    scale = residual_scale * g
    blocks = layout.get("blocks", 1)
    residual = f", residual x{residual_scale:.6g}" if residual_scale != 1.0 else ""
    if scheme == "orthogonal":
        # Orthogonal rows keep norms, so only keep_prob / input_var can change the scale.
        scale *= math.sqrt(layout.get("keep_prob", 1.0) / layout.get("input_var", 1.0))
        orthogonal_(tensor, gain=scale, generator=generator, blocks=blocks)
        rows, cols = tensor.shape[0] // blocks, math.prod(tensor.shape[1:])
        rule = f"orthogonal, gain({label})={g:.6g}" + (f", {blocks} blocks" if blocks > 1 else "")
        return InitRecord(name, rule + residual, None, None, scale / math.sqrt(max(rows, cols)))
    plan = weight_plan(tuple(tensor.shape), **layout)
    fan_in, fan_out = _whole(plan.fan_in), _whole(plan.fan_out)
    variance_mode: ScalingMode
    if scheme == "kaiming":
        variance_mode, denominator, variance_scale = mode, (fan_in if mode == "fan_in" else fan_out), scale**2
        what = f"kaiming {distribution} {mode}, gain({label})={g:.6g}"
    elif scheme == "xavier":
        variance_mode, denominator, variance_scale = "fan_avg", (fan_in + fan_out) / 2.0, scale**2
        what = f"xavier {distribution}, gain({label})={g:.6g}"
    else:
        variance_mode, denominator, variance_scale = "fan_in", fan_in, residual_scale**2
        what = f"lecun {distribution}"
    variance_scaling_(tensor, variance_scale, variance_mode, distribution, generator, **layout)
    if blocks > 1:
        what += f", {blocks} blocks"
    for key in ("keep_prob", "density", "input_var"):
        if layout.get(key, 1.0) != 1.0:
            what += f", {key}={layout[key]:.6g}"
    if layout.get("phase_balanced"):
        what += ", phase-balanced taps"
    # An empty weight (a zero fan) is a no-op fill; its std is reported as 0.
    std = math.sqrt(variance_scale * plan.variance_factor / denominator) if denominator else 0.0
    return InitRecord(name, what + residual, fan_in, fan_out, std)


def fill_orthogonal(tensor: Fillable, name: str, *, blocks: int, generator: GeneratorLike) -> InitRecord:
    """Each of `blocks` row blocks a Haar-orthogonal matrix (gain 1)."""
    orthogonal_(tensor, gain=1.0, generator=generator, blocks=blocks)
    rows, cols = tensor.shape[0] // blocks, math.prod(tensor.shape[1:])
    rule = "orthogonal" + (f" per block ({blocks} blocks)" if blocks > 1 else "")
    return InitRecord(name, rule, None, None, 1.0 / math.sqrt(max(rows, cols)))


def fill_constant(tensor: Fillable, name: str, value: float) -> InitRecord:
    constant_(tensor, value)
    rule = {0.0: "zeros", 1.0: "ones"}.get(float(value), f"constant {value:g}")
    return InitRecord(name, rule, None, None, 0.0)


def fill_normal(tensor: Fillable, name: str, *, std: float, generator: GeneratorLike) -> InitRecord:
    normal_(tensor, 0.0, std, generator)
    return InitRecord(name, f"normal(0, {std:g}^2)", None, None, float(std))


def draw_with_std(tensor: FillableT, distribution: SchemeDistribution, std: float,
                  generator: GeneratorLike) -> FillableT:
    """Entries of std `std` from `distribution`: "normal" N(0, std^2), "uniform"
    U(-sqrt(3) std, sqrt(3) std), "truncated_normal" cut at +-2 of its own std and
    rescaled so the std is `std` (as Keras)."""
    if distribution == "normal":
        normal_(tensor, 0.0, std, generator)
    elif distribution == "uniform":
        bound = math.sqrt(3.0) * std
        uniform_(tensor, -bound, bound, generator)
    else:
        s = std / TRUNCATED_STD
        trunc_normal_(tensor, 0.0, s, -TRUNCATION * s, TRUNCATION * s, generator)
    return tensor
