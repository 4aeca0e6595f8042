"""Measurements shared by the NumPy and torch paths of varinit.propagate.

Inputs and the output gradient, when not given, are N(0, 1) draws of
varinit.Generator(seed) on streams INPUT_STREAM and INPUT_STREAM + 1, apart
from the streams 0, 1, 2, ... that mlp_spec(seed=...) uses for the weights.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._typing import FloatArray
from ..generator import Generator
from ..init import normal_
from .report import LayerStats
from .statuses import classify, saturated_fraction

if TYPE_CHECKING:
    from .mean_field import Prediction
    from .precision import RangeCheck

INPUT_STREAM = 1 << 40


def measure(values: Any) -> tuple[float, float, float, bool]:
    """(mean, std, max|x|, all finite) of an array, computed without overflowing float64.

    The std is max|x| * std(x / max|x|), so values near 1e300 do not overflow
    when squared; non-finite entries give (nan, inf, inf, False).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return 0.0, 0.0, 0.0, True
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.all(np.isfinite(x)):
            return math.nan, math.inf, math.inf, False
        peak = float(np.max(np.abs(x)))
        if peak == 0.0:
            return 0.0, 0.0, 0.0, True
        scaled = x / peak
        return float(np.mean(scaled)) * peak, float(np.std(scaled)) * peak, peak, True


def dead_fraction(outputs: Any) -> float:
    """Fraction of units (entries of one example) that are exactly 0 for every example of the batch."""
    x = np.asarray(outputs).reshape(len(outputs), -1)
    if x.size == 0:
        return 0.0
    return float(np.mean(np.all(x == 0, axis=0)))


def second_moment(values: Any) -> float:
    """mean(x^2) without overflow (inf when a value is not finite)."""
    mean, std, _, finite = measure(values)
    if not finite:
        return math.inf
    return std * std + mean * mean


def draw_normal(shape: tuple[int, ...], seed: int, stream: int) -> FloatArray:
    """N(0, 1) float64 array of that shape from varinit.Generator(seed), stream `stream`."""
    generator = Generator(seed).set_state((seed, stream))
    return normal_(np.empty(shape), 0.0, 1.0, generator)


def layer_stats(index: int, name: str, activation: str, outputs: Any, grads: Any, prediction: Prediction,
                references: tuple[float | None, float | None, int],
                precision: dict[str, list[RangeCheck]] | None = None) -> LayerStats:
    """LayerStats of one layer from its outputs, the gradient w.r.t. them, and the prediction.

    references: (input std, output gradient std, elements per example of the output)."""
    act_mean, act_std, act_max, act_finite = measure(outputs)
    if grads is None:
        grad_mean = grad_std = grad_max = None
        grad_finite = True
    else:
        grad_mean, grad_std, grad_max, grad_finite = measure(grads)
    saturated = saturated_fraction(activation, np.asarray(outputs))
    width = int(np.prod(np.shape(outputs)[1:]))
    input_std, output_grad_std, output_width = references
    status, reasons = classify(act_std, act_finite, grad_std, grad_finite, saturated, input_std,
                               output_grad_std, width, output_width)
    return LayerStats(
        index=index, name=name, activation=activation, width=width, act_mean=act_mean,
        act_std=act_std, act_max=act_max, act_finite=act_finite,
        dead_fraction=dead_fraction(outputs), saturated_fraction=saturated, grad_mean=grad_mean,
        grad_std=grad_std, grad_max=grad_max, grad_finite=grad_finite,
        pred_mean=prediction.mean, pred_std=prediction.std, pred_grad_std=prediction.grad_std,
        pred_std_band=prediction.std_band,
        status=status, reasons=reasons, precision=precision,
    )
