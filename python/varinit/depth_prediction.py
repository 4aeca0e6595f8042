"""Mean-field prediction of every layer's statistics, forward and backward.

A network is seen as a chain of steps, each of which is

- `Affine(weight_sq_mean, fan_in, fan_out, bias_sq_mean)`: y = W x + b with
  i.i.d. zero-mean weights of second moment v. Forward: the output is
  Gaussian (central limit) with mean 0 and second moment
      q_out = fan_in * v * m_in + E[b^2]          (m_in: second moment of x)
  which is sigma_w^2 m_in + sigma_b^2 with sigma_w^2 = fan_in * v, the
  variance map of Poole et al. (2016), eq. 3. Backward: each input feeds
  fan_out outputs, so  r_in = fan_out * v * r_out  (r: gradient second moment).
- `Elementwise(activation, param)`: a = f(z) with z ~ N(0, q), q = the second
  moment of the step's input. Forward: mean E[f(sqrt(q) u)], second moment
  m = E[f(sqrt(q) u)^2], u ~ N(0, 1). Backward: r_in = E[f'(sqrt(q) u)^2] r_out,
  which with the Affine step before it gives r_in = (fan_out / fan_in) chi r_out,
  chi = sigma_w^2 E[f'(sqrt(q) u)^2] (Schoenholz et al. 2017, eq. 10; the
  gradient-independence assumption, Yang 2019).
- `Opaque(name)`: anything else (normalization, pooling, attention...): no
  prediction past it forward, nor before it backward.

Expectations are varinit.gaussian's panel quadrature cut at the
activation's kinks. Past Q_CAP the map is evaluated at Q_CAP: activations
that grow with their input then predict inf (the float64 measurement
overflows there too), bounded ones their limit.
"""
import math
from dataclasses import dataclass
from typing import Optional

from .activations import resolve
from .gaussian import expectation

# Largest variance the quadrature is asked about: sqrt(Q_CAP) * 12 (the last node) squared
# stays below float64's 1.8e308.
Q_CAP = 1e300
# E[f^2] above this at Q_CAP means f grows with its input: the prediction is inf.
UNBOUNDED = 1e290


@dataclass(frozen=True)
class Affine:
    weight_sq_mean: float
    fan_in: float
    fan_out: float
    bias_sq_mean: float = 0.0


@dataclass(frozen=True)
class Elementwise:
    activation: str
    param: Optional[float] = None


@dataclass(frozen=True)
class Opaque:
    name: str


@dataclass(frozen=True)
class Prediction:
    """Predicted mean and std of a step's output, and std of the gradient with respect to it.

    None where the chain has an Opaque step in the way.
    """

    mean: Optional[float]
    std: Optional[float]
    grad_std: Optional[float]
    second_moment: Optional[float]


def _moments(activation, param, q):
    """(E[f], E[f^2], E[f'^2]) at z ~ N(0, q)."""
    spec = resolve(activation, param)
    f, df = spec.fn, spec.derivative
    q_eval = min(q, Q_CAP)
    try:
        mean = expectation(f, q_eval, spec.kinks, adaptive=spec.adaptive)
        second = expectation(lambda x: f(x) ** 2, q_eval, spec.kinks, adaptive=spec.adaptive)
        slope = expectation(lambda x: df(x) ** 2, q_eval, spec.kinks, adaptive=spec.adaptive)
    except (ValueError, OverflowError):
        return math.inf, math.inf, math.inf
    if q > Q_CAP and second > UNBOUNDED:
        return math.inf, math.inf, slope
    return mean, second, slope


def predict(steps, input_mean, input_second_moment, output_grad_second_moment):
    """A Prediction per step, from the input's moments and the output gradient's second moment."""
    forward = []
    mean, m = float(input_mean), float(input_second_moment)
    slopes = []
    known = True
    for step in steps:
        if not known or isinstance(step, Opaque):
            known = False
            forward.append((None, None))
            slopes.append(None)
            continue
        if isinstance(step, Affine):
            q = step.fan_in * step.weight_sq_mean * m + step.bias_sq_mean
            mean, m = 0.0, q
            slopes.append(step.fan_out * step.weight_sq_mean)
        else:
            mean, m, slope = _moments(step.activation, step.param, m)
            slopes.append(slope)
        forward.append((mean, m))

    grads = [None] * len(steps)
    r = float(output_grad_second_moment)
    for index in range(len(steps) - 1, -1, -1):
        if r is None or isinstance(steps[index], Opaque):
            break
        grads[index] = r
        slope = slopes[index]
        if slope is None:
            slope = _backward_slope(steps[index])
        r = _product(slope, r)

    out = []
    for (mean, m), r in zip(forward, grads):
        std = None if m is None else _std(mean, m)
        out.append(Prediction(mean, std, None if r is None else math.sqrt(r), m))
    return out


def _backward_slope(step):
    """The backward factor of a step whose forward input is unknown (past an Opaque step)."""
    if isinstance(step, Affine):
        return step.fan_out * step.weight_sq_mean
    return None


def _product(slope, r):
    if slope is None:
        return None
    if r == 0.0 or slope == 0.0:
        return 0.0
    return slope * r


def _std(mean, second):
    if math.isinf(second):
        return math.inf
    return math.sqrt(max(second - mean * mean, 0.0))
