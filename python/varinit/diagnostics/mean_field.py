"""Mean-field signal propagation: the variance fixed point q* and the slope chi1.

A wide fully connected net with weights N(0, sigma_w^2 / fan_in) and biases
N(0, sigma_b^2) maps the pre-activation variance of one layer to the next by
(Poole et al. 2016, eq. 3)

    q_{l+1} = V(q_l) = sigma_w^2 E[f(sqrt(q_l) z)^2] + sigma_b^2,   z ~ N(0, 1).

Its stable fixed point q* is the variance deep layers settle at. The slope of
the correlation map at c = 1 (Poole et al. 2016, eq. 7; Schoenholz et al.
2017) is

    chi1 = sigma_w^2 E[f'(sqrt(q*) z)^2];

chi1 < 1: ordered (correlations converge, gradients vanish), chi1 > 1: chaotic
(gradients explode); chi1 = 1 is the edge of chaos that deep nets train at.

Per-layer prediction (`predict`): mean-field prediction of every layer's statistics, forward and backward.

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

Expectations are varinit.quadrature's panel quadrature cut at the
activation's kinks. Past Q_CAP the map is evaluated at Q_CAP: activations
that grow with their input then predict inf (the float64 measurement
overflows there too), bounded ones their limit.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

import numpy as np

from .. import _validate
from ..activations import mean_square, resolve
from .._typing import AnyActivation, Nonlinearity
from ..activations import Activation
from ..quadrature import expectation


class Criticality(NamedTuple):
    q_star: float
    chi1: float


Criticality.__doc__ = """The mean-field fixed point and its slope: what `criticality` returns.

Parameters
----------
q_star : float
    The pre-activation variance deep layers settle at; 0.0 when the signal
    dies, math.inf when it grows without bound (no positive finite stable
    fixed point in the direction the map moves).
chi1 : float
    sigma_w^2 E[f'(sqrt(q*) z)^2]: below 1 ordered (gradients vanish),
    above 1 chaotic (gradients explode).

References
----------
.. [1] B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein and S. Ganguli,
   "Exponential expressivity in deep neural networks through transient chaos",
   NeurIPS 2016, arXiv:1606.05340.
.. [2] S. S. Schoenholz, J. Gilmer, S. Ganguli and J. Sohl-Dickstein, "Deep
   information propagation", ICLR 2017, arXiv:1611.01232.

Examples
--------
>>> import varinit
>>> q_star, chi1 = varinit.diagnostics.criticality("tanh", 1.5, 0.05)
>>> print(f"q* {q_star:.3f}, chi1 {chi1:.3f}")
q* 0.798, chi1 1.137"""

# q* outside [Q_DEAD, Q_EXPLODED] is reported as 0 / inf: at those scales a net
# of any practical depth has lost its signal or overflowed float32 long before.
Q_DEAD = 1e-30
Q_EXPLODED = 1e30
# chi1 at q* = 0 or inf is the limit of chi1(q) there, evaluated at these q.
Q_LIMIT_LOW = 1e-24
Q_LIMIT_HIGH = 1e24
# |V(q) - q| <= MARGINAL_RTOL q counts as V(q) = q: ReLU at sigma_w = sqrt(2),
# sigma_b = 0 has V(q) = q for every q, up to the rounding of sigma_w^2.
MARGINAL_RTOL = 1e-12
SEARCH_FACTOR = 8.0
# A sign change of V(q)/q - 1 smaller than this is rounding in the quadrature, not a root.
ROUNDING_EXCESS = 1e-12
# chi1 is continuous in sigma_w along one branch of fixed points; a change of more
# than JUMP_TOLERANCE across +-JUMP_PROBE (relative) of the root means the root is
# a switch between branches (GELU, SiLU, Mish at sigma_b = 0.1 jump by 0.27 to 0.73),
# not an edge of chaos. Softplus reaches chi1 = 1 only as q* -> inf, where chi1
# converges slowly (3e-4 short at 1e-9 below the root): not a jump.
JUMP_PROBE = 1e-9
JUMP_TOLERANCE = 1e-2


def _illinois(fn: Callable[[float], float], lo: float, hi: float, f_lo: float, f_hi: float,
              rtol: float) -> float:
    """Root of fn in [lo, hi], f_lo and f_hi of opposite signs (Illinois regula falsi)."""
    side = 0
    for _ in range(200):
        mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        if not lo < mid < hi:
            mid = 0.5 * (lo + hi)
        f_mid = fn(mid)
        if f_mid == 0:
            return mid
        if (f_mid > 0) == (f_hi > 0):
            hi, f_hi = mid, f_mid
            if side == 1:
                f_lo *= 0.5
            side = 1
        else:
            lo, f_lo = mid, f_mid
            if side == -1:
                f_hi *= 0.5
            side = -1
        if hi - lo <= rtol * max(abs(lo), abs(hi)):
            break
    return 0.5 * (lo + hi)


def _fixed_point(spec: Activation, sigma_w: float, sigma_b: float, q0: float) -> float:
    """The fixed point of V reached from q0 (V is increasing in q for the usual f)."""
    sw2, sb2 = sigma_w * sigma_w, sigma_b * sigma_b

    def excess(log_q: float) -> float:  # V(q) / q - 1: same sign as V(q) - q, well scaled at any q
        q = math.exp(log_q)
        return (sw2 * mean_square(spec.fn, q, spec) + sb2) / q - 1.0

    t0 = math.log(q0)
    e0 = excess(t0)
    if abs(e0) <= MARGINAL_RTOL:
        return q0
    step = math.log(SEARCH_FACTOR) if e0 > 0 else -math.log(SEARCH_FACTOR)
    t, e = t0, e0
    while (e > 0) == (e0 > 0):
        t_next = t + step
        if t_next > math.log(Q_EXPLODED):
            return math.inf
        if t_next < math.log(Q_DEAD):
            return 0.0
        t_prev, e_prev = t, e
        t, e = t_next, excess(t_next)
    lo, hi, f_lo, f_hi = (t_prev, t, e_prev, e) if step > 0 else (t, t_prev, e, e_prev)
    if sb2 == 0.0 and step < 0 and abs(e) <= ROUNDING_EXCESS:
        # V(q)/q - 1 only reached rounding level on the way down: V(q) < q all the
        # way to 0, which is the fixed point (tanh at sigma_w = 1 creeps there as
        # q - q^2, so the search meets rounding before it meets Q_DEAD).
        return 0.0
    return math.exp(_illinois(excess, lo, hi, f_lo, f_hi, 1e-15))


def _chi1(spec: Activation, sigma_w: float, q_star: float) -> float:
    q = min(max(q_star, Q_LIMIT_LOW), Q_LIMIT_HIGH)
    return sigma_w * sigma_w * mean_square(spec.derivative, q, spec)


def criticality(activation: Nonlinearity, sigma_w: float, sigma_b: float = 0.0, param: float | None = None, *,
                q0: float = 1.0, breakpoints: Iterable[float] | None = None) -> Criticality:
    """The mean-field fixed point q* and the slope chi1 = sigma_w^2 E[f'(sqrt(q*) z)^2].

    A wide network with weights N(0, sigma_w^2 / fan_in) and biases N(0,
    sigma_b^2) maps one layer's pre-activation variance to the next by q ->
    sigma_w^2 E[f(sqrt(q) z)^2] + sigma_b^2, z ~ N(0, 1) (Poole et al. 2016).
    q* is its fixed point reached from q0 (the input variance), in the
    direction the map moves: the variance deep layers settle at. chi1 < 1 is
    the ordered phase (gradients vanish over depth), chi1 > 1 the chaotic one
    (they explode); chi1 = 1 is the edge of chaos (Schoenholz et al. 2017).
    q* = 0.0 when the signal dies (ReLU with sigma_w < sqrt(2), sigma_b = 0),
    math.inf when it grows without bound (ReLU with sigma_w > sqrt(2)); chi1 is
    then the limit at q -> 0 or inf. When every q is a fixed point (ReLU,
    sigma_w = sqrt(2), sigma_b = 0), q* = q0. f' is in closed form for named
    activations and a 5-point central difference for callables.

    Parameters
    ----------
    activation : str or callable
        The activation: a name known to `varinit.gain` or a function of an
        array.
    sigma_w : float
        The weight scale, > 0 (weights of variance sigma_w^2 / fan_in).
    sigma_b : float, default 0
        The bias std, >= 0.
    param : float, optional
        The activation's parameter.
    q0 : float, default 1
        The input's variance, where the search for q* starts.
    breakpoints : sequence of float, optional
        The kinks of a callable activation (default (0,)).

    Returns
    -------
    Criticality
        (q_star, chi1).

    References
    ----------
    .. [1] B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein and S. Ganguli,
       "Exponential expressivity in deep neural networks through transient chaos",
       NeurIPS 2016, arXiv:1606.05340.
    .. [2] S. S. Schoenholz, J. Gilmer, S. Ganguli and J. Sohl-Dickstein, "Deep
       information propagation", ICLR 2017, arXiv:1611.01232.

    Examples
    --------
    >>> import varinit
    >>> q_star, chi1 = varinit.diagnostics.criticality("tanh", 1.5, 0.05)
    >>> print(f"q* {q_star:.3f}, chi1 {chi1:.3f}")                # chaotic
    q* 0.798, chi1 1.137
    >>> print(f"{varinit.diagnostics.criticality('relu', 2 ** 0.5).chi1:.6f}")
    1.000000
    """
    sigma_w = _validate.real(sigma_w, "sigma_w", _validate.POSITIVE)
    sigma_b = _validate.real(sigma_b, "sigma_b", _validate.NON_NEGATIVE)
    q0 = _validate.real(q0, "q0", _validate.POSITIVE)
    spec = resolve(activation, param, breakpoints)
    q_star = _fixed_point(spec, sigma_w, sigma_b, q0)
    return Criticality(q_star, _chi1(spec, sigma_w, q_star))


def critical_sigma_w(activation: Nonlinearity, sigma_b: float = 0.0, param: float | None = None, *,
                     q0: float = 1.0, breakpoints: Iterable[float] | None = None) -> float:
    """The sigma_w at which chi1 = 1 (the edge of chaos) for this sigma_b.

    Solved by bracketing and regula falsi in sigma_w, each step solving q*
    (see `criticality`). relu: sqrt(2) for any sigma_b; tanh with sigma_b = 0:
    1. Where chi1 - 1 only touches 0 quadratically (tanh, sigma_b = 0, from
    above) the answer is accurate to about 1e-7 instead of 1e-12.

    Parameters
    ----------
    activation : str or callable
        The activation: a name known to `varinit.gain` or a function of an
        array.
    sigma_b : float, default 0
        The bias std, >= 0.
    param : float, optional
        The activation's parameter.
    q0 : float, default 1
        The input's variance.
    breakpoints : sequence of float, optional
        The kinks of a callable activation (default (0,)).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When chi1 jumps over 1 instead of crossing it: for ReLU-like smooth
        activations (GELU, SiLU, Mish) at small sigma_b, the stable fixed point
        disappears (meeting an unstable one) while chi1 is still below 1, and
        the signal then explodes; or when chi1 stays below 1 up to sigma_w =
        1e6.

    References
    ----------
    .. [1] B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein and S. Ganguli,
       "Exponential expressivity in deep neural networks through transient chaos",
       NeurIPS 2016, arXiv:1606.05340.
    .. [2] S. S. Schoenholz, J. Gilmer, S. Ganguli and J. Sohl-Dickstein, "Deep
       information propagation", ICLR 2017, arXiv:1611.01232.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> sw = varinit.diagnostics.critical_sigma_w("tanh", sigma_b=0.05)
    >>> print(f"{sw:.4f}")
    1.1225
    >>> w = varinit.normal_(np.empty((512, 512)), 0.0, sw / 512 ** 0.5, generator=0)
    >>> print(f"{varinit.diagnostics.critical_sigma_w('relu'):.6f}")
    1.414214
    """
    sigma_b = _validate.real(sigma_b, "sigma_b", _validate.NON_NEGATIVE)
    q0 = _validate.real(q0, "q0", _validate.POSITIVE)
    spec = resolve(activation, param, breakpoints)

    def excess(sigma_w: float) -> float:
        return _chi1(spec, sigma_w, _fixed_point(spec, sigma_w, sigma_b, q0)) - 1.0

    lo = hi = 1.0
    f_lo = f_hi = excess(1.0)
    if f_hi == 0:
        return 1.0
    while f_hi < 0:
        lo, f_lo, hi = hi, f_hi, hi * 2.0
        if hi > 1e6:
            raise ValueError("chi1 stays below 1 for sigma_w up to 1e6: this activation has no critical sigma_w")
        f_hi = excess(hi)
    while f_lo > 0:
        hi, f_hi, lo = lo, f_lo, lo / 2.0
        if lo < 1e-6:
            raise ValueError("chi1 stays above 1 for sigma_w down to 1e-6: this activation has no critical sigma_w")
        f_lo = excess(lo)
    if f_lo == 0:
        return lo
    if f_hi == 0:
        return hi
    root = _illinois(excess, lo, hi, f_lo, f_hi, 1e-13)
    below, above = excess(root * (1 - JUMP_PROBE)), excess(root * (1 + JUMP_PROBE))
    if above - below > JUMP_TOLERANCE:
        raise ValueError(
            f"chi1 jumps from {below + 1:.6g} to {above + 1:.6g} at sigma_w = {root:.10g}: the variance "
            f"map's fixed point reached from q0 = {q0:g} switches there (a stable and an unstable fixed "
            "point), so no sigma_w puts a stable fixed point at chi1 = 1 for this sigma_b; "
            "try another sigma_b or q0"
        )
    return root


# ---- per-layer prediction along a chain of steps ------------------------------
# Largest variance the quadrature is asked about: sqrt(Q_CAP) * 12 (the last node) squared
# stays below float64's 1.8e308.
Q_CAP = 1e300
# E[f^2] above this at Q_CAP means f grows with its input: the prediction is inf.
UNBOUNDED = 1e290


@dataclass(frozen=True)
class Affine:
    """y = W x + b; `units` is how many outputs one example has (the width the
    finite-width band needs), None where the outputs are not independent units
    (a convolution's positions share inputs)."""

    weight_sq_mean: float
    fan_in: float
    fan_out: float
    bias_sq_mean: float = 0.0
    units: Optional[int] = None


@dataclass(frozen=True)
class Elementwise:
    activation: AnyActivation
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
    # Where one network's measured std falls, at finite width: (low, high), see
    # predict(); None where no width is known.
    std_band: Optional[tuple[float, float]] = None


# One step of a chain whose moments `predict` carries
Step = Union[Affine, Elementwise, Opaque]


def excess_kurtosis(activation: AnyActivation, param: float | None, q: float) -> float | None:
    """E[f^4] / E[f^2]^2 - 1 at z ~ N(0, q): the relative variance of one unit's f(z)^2."""
    spec = resolve(activation, param)
    f = spec.fn
    q_eval = min(q, Q_CAP)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # an unbounded f at huge q: no band
            second = expectation(lambda x: f(x) ** 2, q_eval, spec.kinks, adaptive=spec.adaptive)
            fourth = expectation(lambda x: f(x) ** 4, q_eval, spec.kinks, adaptive=spec.adaptive)
    except (ValueError, OverflowError):
        return None
    if not (second > 0 and math.isfinite(fourth)):
        return None
    return fourth / (second * second) - 1.0


def _moments(activation: AnyActivation, param: float | None, q: float) -> tuple[float, float, float]:
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


def predict(steps: Sequence[Step], input_mean: float, input_second_moment: float,
            output_grad_second_moment: float) -> list[Prediction]:
    """A Prediction per step, from the input's moments and the output gradient's second moment."""
    forward: list[tuple[float | None, float | None, float | None]] = []
    mean, m = float(input_mean), float(input_second_moment)
    slopes: list[float | None] = []
    known = True
    # Finite width: a layer of N units passes on (1/N) sum_i f(z_i)^2, whose
    # relative variance is kappa / N (kappa = E[f^4]/E[f^2]^2 - 1; ReLU: 5).
    # Over layers, log of the second moment is a sum of independent terms:
    # variance log_var = sum kappa_l / N_l and mean -log_var / 2, so the median
    # network sits below the mean field (Hanin & Rolnick 2018).
    log_var: float | None = 0.0
    units: int | None = None
    for step in steps:
        if not known or isinstance(step, Opaque):
            known = False
            forward.append((None, None, None))
            slopes.append(None)
            continue
        if isinstance(step, Affine):
            q = step.fan_in * step.weight_sq_mean * m + step.bias_sq_mean
            mean, m = 0.0, q
            slopes.append(step.fan_out * step.weight_sq_mean)
            units = step.units
        else:
            if units is None or log_var is None:
                log_var = None
            else:
                kappa = excess_kurtosis(step.activation, step.param, m)
                log_var = None if kappa is None else log_var + kappa / units
            mean, m, slope = _moments(step.activation, step.param, m)
            slopes.append(slope)
        forward.append((mean, m, log_var if isinstance(step, Elementwise) else None))

    grads: list[float | None] = [None] * len(steps)
    r: float | None = float(output_grad_second_moment)
    for index in range(len(steps) - 1, -1, -1):
        if r is None or isinstance(steps[index], Opaque):
            break
        grads[index] = r
        backward = slopes[index]
        if backward is None:
            backward = _backward_slope(steps[index])
        r = _product(backward, r)

    out = []
    for (step_mean, step_m, spread), grad in zip(forward, grads):
        std = None if step_mean is None or step_m is None else _std(step_mean, step_m)
        out.append(Prediction(step_mean, std, None if grad is None else math.sqrt(grad), step_m, _band(std, spread)))
    return out


def _band(std: float | None, log_var: float | None) -> tuple[float, float] | None:
    """(low, high): two standard deviations of log std around its finite-width median.

    log std = log q / 2 has mean -log_var / 4 and standard deviation sqrt(log_var) / 2.
    """
    if std is None or log_var is None or not math.isfinite(std):
        return None
    centre = std * math.exp(-log_var / 4.0)
    spread = math.exp(math.sqrt(log_var))
    return centre / spread, centre * spread


def _backward_slope(step: Step) -> float | None:
    """The backward factor of a step whose forward input is unknown (past an Opaque step)."""
    if isinstance(step, Affine):
        return step.fan_out * step.weight_sq_mean
    return None


def _product(slope: float | None, r: float) -> float | None:
    if slope is None:
        return None
    if r == 0.0 or slope == 0.0:
        return 0.0
    return slope * r


def _std(mean: float, second: float) -> float:
    if math.isinf(second):
        return math.inf
    return math.sqrt(max(second - mean * mean, 0.0))
