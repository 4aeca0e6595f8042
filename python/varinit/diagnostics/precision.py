"""Low-precision range checks: would a layer's values overflow or underflow float16, bfloat16, int8?

For a tensor whose entries are x ~ N(mu, sigma^2) (pre-activations are, by
the central limit theorem over fan_in terms; gradients nearly so), with
Phi the standard normal CDF:

- overflow fraction   P(|x| > T) = Phi(-(T + mu) / sigma) + Phi(-(T - mu) / sigma)
- underflow fraction  P(|x| < t) = Phi((t - mu) / sigma) - Phi((-t - mu) / sigma)

where, per format,

- float16: T = 65520 (= 65504 + half an ulp: from there values round to inf),
  t = 2^-14 = 6.1e-5, the smallest normal number (below it values become
  subnormal, losing precision, or flush to zero on hardware that flushes);
- bfloat16: T = 3.3961e38 (max + half an ulp), t = 2^-126 = 1.18e-38;
- int8, symmetric per-tensor scale s = clip / 127 (codes -127..127): T = clip
  (values beyond are clipped), t = s / 2 (values that round to code 0).

The measured fractions come from the actual cast (NumPy float16, ml_dtypes
bfloat16, round-and-clip for int8) of the float64 values; exact zeros are
exact in every format and never count as underflow.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from .. import _validate
from ..activations import resolve
from ..quadrature import expectation
from .._typing import AnyActivation, FloatArray, Nonlinearity
from .mean_field import excess_kurtosis

PrecisionFormat = Literal["float16", "bfloat16", "int8"]

FLOAT16_SMALLEST_NORMAL = 2.0 ** -14
FLOAT16_OVERFLOW = 65504.0 + 16.0
BFLOAT16_SMALLEST_NORMAL = 2.0 ** -126
BFLOAT16_OVERFLOW = (2.0 - 2.0 ** -7) * 2.0 ** 127 + 2.0 ** 119
INT8_LEVELS = 127
# Default int8 clipping range: a fixed-point format that holds a unit-variance
# signal to 4 standard deviations (saturation 6.3e-5); layers whose std drifts
# away from 1 show up as saturation (too hot) or zero codes (too cold).
DEFAULT_INT8_CLIP = 4.0
FORMATS: tuple[PrecisionFormat, ...] = ("float16", "bfloat16", "int8")


@dataclass(frozen=True)
class RangeCheck:
    """Predicted (Gaussian) and measured overflow and underflow fractions of one tensor in one format."""

    format: str
    predicted_overflow: float
    measured_overflow: float
    predicted_underflow: float
    measured_underflow: float


def _normal_cdf(x: float) -> float:
    if x == math.inf:
        return 1.0
    if x == -math.inf:
        return 0.0
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def thresholds(fmt: str, int8_clip: float = DEFAULT_INT8_CLIP) -> tuple[float, float]:
    """(T, t): overflow and underflow thresholds of a format (see the module docstring)."""
    if fmt == "float16":
        return FLOAT16_OVERFLOW, FLOAT16_SMALLEST_NORMAL
    if fmt == "bfloat16":
        return BFLOAT16_OVERFLOW, BFLOAT16_SMALLEST_NORMAL
    if fmt == "int8":
        clip = _validate.real(int8_clip, "int8_clip", _validate.POSITIVE)
        return clip, clip / INT8_LEVELS / 2.0
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def predicted_fractions(mean: float, std: float, fmt: str, int8_clip: float = DEFAULT_INT8_CLIP) -> tuple[float, float]:
    """(overflow, underflow) fractions of N(mean, std^2) in a format."""
    big, small = thresholds(fmt, int8_clip)
    if not (math.isfinite(mean) and math.isfinite(std)):
        return 1.0, 0.0
    if std == 0.0:
        return float(abs(mean) > big), float(0.0 < abs(mean) < small)
    over = _normal_cdf(-(big + mean) / std) + _normal_cdf(-(big - mean) / std)
    # erf differences keep full relative precision when small / std is tiny.
    root2 = math.sqrt(2.0) * std
    under = 0.5 * (math.erf((small - mean) / root2) + math.erf((small + mean) / root2))
    return min(over, 1.0), max(under, 0.0)


def quantize_int8(x: npt.ArrayLike, clip: float = DEFAULT_INT8_CLIP) -> npt.NDArray[np.int8]:
    """Symmetric per-tensor int8 codes: clip(round(x / s), -127, 127), s = clip / 127.

    Parameters
    ----------
    x : array_like
        The values.
    clip : float, default 4
        The clipping range, > 0: values beyond +-clip saturate.

    Returns
    -------
    ndarray
        int8 codes of x's shape.

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and training of neural networks for
       efficient integer-arithmetic-only inference", CVPR 2018.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> varinit.diagnostics.quantize_int8(np.array([-5.0, -0.01, 0.02, 1.0, 4.0]))
    array([-127,    0,    1,   32,  127], dtype=int8)
    """
    clip = _validate.real(clip, "clip", _validate.POSITIVE)
    scale = clip / INT8_LEVELS
    with np.errstate(invalid="ignore", over="ignore"):
        codes = np.clip(np.rint(np.asarray(x, np.float64) / scale), -INT8_LEVELS, INT8_LEVELS)
    quantized: npt.NDArray[np.int8] = np.nan_to_num(codes, nan=0.0).astype(np.int8)
    return quantized


def measured_fractions(x: FloatArray, fmt: str, int8_clip: float = DEFAULT_INT8_CLIP) -> tuple[float, float]:
    """(overflow, underflow) fractions of the values x after a cast to the format."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return 0.0, 0.0
    big, small = thresholds(fmt, int8_clip)
    nonzero = x != 0
    with np.errstate(over="ignore", invalid="ignore"):
        if fmt == "int8":
            overflow = ~(np.abs(x) <= big)
            underflow = nonzero & (quantize_int8(x, int8_clip) == 0) & ~overflow
        else:
            if fmt == "float16":
                cast = x.astype(np.float16)
            else:
                import ml_dtypes

                cast = x.astype(ml_dtypes.bfloat16)
            magnitude = np.abs(cast.astype(np.float64))
            overflow = ~np.isfinite(magnitude)
            underflow = nonzero & (magnitude < small)
    n = x.size
    return float(np.count_nonzero(overflow)) / n, float(np.count_nonzero(underflow)) / n


def range_checks(x: npt.ArrayLike, formats: Sequence[PrecisionFormat] = FORMATS,
                 int8_clip: float = DEFAULT_INT8_CLIP) -> list[RangeCheck]:
    """Predicted and measured overflow and underflow fractions of values x, per low-precision format.

    For x ~ N(mu, sigma^2) with the values' own mean and std, and Phi the
    standard normal CDF: overflow P(abs(x) > T) = Phi(-(T + mu) / sigma) +
    Phi(-(T - mu) / sigma), underflow P(abs(x) < t) = Phi((t - mu) / sigma) -
    Phi((-t - mu) / sigma); float16: T = 65520, t = 2^-14; bfloat16: T =
    3.3962e38, t = 2^-126; int8 with scale s = int8_clip / 127: T =
    int8_clip, t = s / 2. The measured fractions come from the actual cast
    (NumPy float16, ml_dtypes bfloat16, round-and-clip for int8); exact zeros
    never count as underflow.

    Parameters
    ----------
    x : array_like
        The values (any shape).
    formats : tuple of str, default ("float16", "bfloat16", "int8")
        The formats to check.
    int8_clip : float, default 4
        The int8 clipping range, > 0.

    Returns
    -------
    list of RangeCheck
        One per format: (format, predicted_overflow, measured_overflow,
        predicted_underflow, measured_underflow).

    References
    ----------
    .. [1] P. Micikevicius et al., "Mixed precision training", ICLR 2018.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> x = varinit.normal_(np.empty((64, 512)), 0.0, 3.0, generator=0)
    >>> int8 = varinit.diagnostics.range_checks(x, formats=("int8",))[0]
    >>> print(f"int8 saturates {int8.predicted_overflow:.3f} predicted, {int8.measured_overflow:.3f} measured")
    int8 saturates 0.183 predicted, 0.181 measured
    """
    chosen = _validate.choices(formats, "formats", FORMATS)
    int8_clip = _validate.real(int8_clip, "int8_clip", _validate.POSITIVE)
    values = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = bool(np.all(np.isfinite(values)))
        mean = float(np.mean(values)) if finite else math.nan
        std = float(_stable_std(values)) if finite else math.inf
    out = []
    for fmt in chosen:
        p_over, p_under = predicted_fractions(mean, std, fmt, int8_clip)
        m_over, m_under = measured_fractions(values, fmt, int8_clip)
        out.append(RangeCheck(fmt, p_over, m_over, p_under, m_under))
    return out


def _stable_std(x: FloatArray) -> float:
    """std without overflowing the squares of huge values: scaled by max|x| first."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return 0.0
    return peak * float(np.std(x / peak))


def int8_input_scale(std: float, clip: float = DEFAULT_INT8_CLIP, max_saturation: float = 1e-4) -> float:
    """The factor a such that a * x, x ~ N(0, std^2), leaves the int8 range [-clip, clip] with probability max_saturation.

    P(abs(a x) > clip) = 2 Phi(-clip / (a std)) = p gives a = clip / (std z),
    z = -Phi^-1(p / 2), the two-sided Gaussian quantile (3.89 for p = 1e-4).
    Any smaller a saturates less, and spends fewer of the 255 codes.

    Parameters
    ----------
    std : float
        The inputs' standard deviation, > 0.
    clip : float, default 4
        The int8 clipping range, > 0.
    max_saturation : float, default 1e-4
        p, the fraction allowed to saturate, in (0, 1).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, varinit
    >>> a = varinit.diagnostics.int8_input_scale(3.0, clip=4.0, max_saturation=1e-3)
    >>> print(f"{a:.4f}")
    0.4052
    >>> x = varinit.normal_(np.empty((64, 512)), 0.0, 3.0, generator=0)
    >>> codes = varinit.diagnostics.quantize_int8(a * x, clip=4.0)
    """
    std = _validate.real(std, "std", _validate.POSITIVE)
    clip = _validate.real(clip, "clip", _validate.POSITIVE)
    p = _validate.real(max_saturation, "max_saturation", _validate.BOUNDED_GT_0_LT_1)
    z = -NormalDist().inv_cdf(p / 2.0)
    return clip / (std * z)


def _layer_rms(activation: AnyActivation, param: float | None, q: float) -> tuple[float, float]:
    """RMS of f(z), z ~ N(0, q), and the next layer's input second moment."""
    spec = resolve(activation, param)
    second = expectation(lambda x: spec.fn(x) ** 2, q, spec.kinks, adaptive=spec.adaptive)
    return math.sqrt(second), second


def min_weight_std(depth: int, width: int, activation: Nonlinearity = "relu", param: float | None = None, *,
                   input_rms: float = 1.0, floor: float = FLOAT16_SMALLEST_NORMAL,
                   fraction: float | None = None) -> float:
    """The smallest weight std that keeps every layer's output RMS at or above `floor` (float16's 6.1e-5).

    For `depth` dense layers of `width` inputs each, weights N(0, s^2), no
    bias, inputs of RMS `input_rms`: the mean-field map gives layer l's
    pre-activation variance q_l = width s^2 m_(l-1) and output second moment
    m_l = E[f(sqrt(q_l) z)^2], m_0 = input_rms^2. The RMS grows with s, so s
    is found by bisection on log s, to 1e-12 relative. For ReLU it is closed
    form: m_l = (width s^2 / 2)^l m_0, so below He's s = sqrt(2 / width) the
    last layer is the smallest and s = sqrt(2 / width) (floor /
    input_rms)^(1 / depth).

    With fraction=None this is an expected-value bound, an average over
    infinitely wide networks: one network of finite width scatters around it
    (its log second moment drifts down by log_var / 2 and spreads by
    sqrt(log_var), log_var = the sum over layers of kappa / width, kappa =
    E[f^4] / E[f^2]^2 - 1, 5 for ReLU; Hanin and Rolnick 2018), so about half
    of all networks fall below the floor somewhere. fraction=p adds that
    margin: the floor then holds in a fraction p of networks.

    Parameters
    ----------
    depth : int
        The number of layers.
    width : int
        Their width (fan_in).
    activation : str or callable, default "relu"
        The activation after every layer.
    param : float, optional
        The activation's parameter.
    input_rms : float, default 1
        The inputs' RMS.
    floor : float, default 2^-14
        The smallest RMS allowed (float16's smallest normal number).
    fraction : float, optional
        The fraction of finite-width networks the floor must hold in, in (0, 1).

    Returns
    -------
    float

    References
    ----------
    .. [1] B. Hanin and D. Rolnick, "How to start training: the effect of
       initialization and architecture", NeurIPS 2018, arXiv:1803.01719.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> s = varinit.diagnostics.min_weight_std(50, 512, "relu")
    >>> print(f"{s:.4f} (He: {np.sqrt(2 / 512):.4f})")
    0.0515 (He: 0.0625)
    >>> print(f"{varinit.diagnostics.min_weight_std(50, 512, 'relu', fraction=0.99):.4f}")
    0.0524
    """
    depth = _validate.integer(depth, "depth", minimum=1)
    width = _validate.integer(width, "width", minimum=1)
    input_rms = _validate.real(input_rms, "input_rms", _validate.POSITIVE)
    floor = _validate.real(floor, "floor", _validate.POSITIVE)
    z = 0.0 if fraction is None else NormalDist().inv_cdf(
        _validate.real(fraction, "fraction", _validate.BOUNDED_GT_0_LT_1))
    resolve(activation, param)  # an unknown name or a bad param fails before the search

    def smallest_rms(log_s: float) -> float:
        """The lowest RMS over the layers, lowered by the finite-width margin for `fraction`."""
        s2 = math.exp(2.0 * log_s)
        m = input_rms * input_rms
        lowest, log_var = math.inf, 0.0
        for _ in range(depth):
            q = width * s2 * m
            rms, m = _layer_rms(activation, param, q)
            if fraction is not None:
                kappa = excess_kurtosis(activation, param, q)
                log_var += (kappa if kappa is not None else 0.0) / width
                rms *= math.exp(-(log_var / 2.0 + z * math.sqrt(log_var)) / 2.0)
            lowest = min(lowest, rms)
            if lowest < floor:
                break
        return lowest

    lo, hi = math.log(1e-30), math.log(1.0 / math.sqrt(width))
    while smallest_rms(hi) < floor:
        lo, hi = hi, hi + math.log(4.0)
        if hi > math.log(1e30):
            raise ValueError(f"no weight std keeps the RMS of {activation} layers above {floor}")
    if smallest_rms(lo) >= floor:
        return math.exp(lo)
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if smallest_rms(mid) >= floor:
            hi = mid
        else:
            lo = mid
    return math.exp(hi)
