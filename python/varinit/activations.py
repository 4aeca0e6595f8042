"""Activation functions by name or as callables: f, f', their kinks, and
their Gaussian moments E[f(sqrt(q) z)^2] by quadrature (varinit.quadrature),
exact to ~1e-13, not a table. varinit.gains turns the moment into a gain.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from . import _validate
from ._typing import AnyActivation, ArrayFunction, FloatArray
from .quadrature import as_vectorized, check_breakpoints, expectation

# Klambauer et al. (2017), the fixed point (mean 0, variance 1) of SELU nets.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# Hendrycks & Gimpel (2016): the tanh form of GELU.
GELU_TANH_C = math.sqrt(2.0 / math.pi)
GELU_TANH_K = 0.044715

# torch.nn.init's names for layers followed by no nonlinearity.
LINEAR_FNS: tuple[str, ...] = (
    "linear", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
)
ALIASES: dict[str, str] = {"identity": "linear", "swish": "silu", **{name: "linear" for name in LINEAR_FNS}}
# name -> (default param or None if the name takes none, param name)
PARAMS: dict[str, tuple[float, str]] = {
    "leaky_relu": (0.01, "negative_slope"),
    "elu": (1.0, "alpha"),
    "softplus": (1.0, "beta"),
    "celu": (1.0, "alpha"),
}
# softplus(x) = log(1 + exp(beta x)) / beta and celu's exp(x / alpha) divide by their
# parameter; elu with alpha 0 is relu.
PARAM_KINDS: dict[str, _validate.Constraint] = {"softplus": _validate.POSITIVE, "celu": _validate.POSITIVE,
                                               "elu": _validate.NON_NEGATIVE}
NAMES: tuple[str, ...] = ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "gelu_tanh", "silu",
         "mish", "elu", "selu", "softplus", "hardswish", "celu", "relu6", "hardtanh",
         "hardsigmoid", "softsign")
# Where f or f' is not smooth; quadrature panels are cut there.
KINKS: dict[str, tuple[float, ...]] = {
    "relu": (0.0,), "leaky_relu": (0.0,), "elu": (0.0,), "selu": (0.0,), "celu": (0.0,),
    "hardswish": (-3.0, 3.0), "relu6": (0.0, 6.0), "hardtanh": (-1.0, 1.0),
    "hardsigmoid": (-3.0, 3.0), "softsign": (0.0,)}


def _erf(x: Any) -> FloatArray:
    try:
        from scipy.special import erf
    except ImportError:  # scipy is a test dependency only
        values: FloatArray = np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)
        return values
    result: FloatArray = erf(x)
    return result


def _sigmoid(x: Any) -> Any:
    # exp of a non-positive argument only: no overflow in either tail.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _normal_cdf(x: Any) -> Any:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _normal_pdf(x: Any) -> Any:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _softplus(x: Any, beta: float = 1.0) -> Any:
    return np.logaddexp(0.0, beta * x) / beta


def _table(name: str, p: Any) -> tuple[ArrayFunction, ArrayFunction]:
    """(f, f') for a canonical name and its parameter value."""
    if name == "linear":
        return (lambda x: np.asarray(x, np.float64) * 1.0), (lambda x: np.ones_like(x, np.float64))
    if name == "relu":
        return (lambda x: np.maximum(x, 0.0)), (lambda x: (x > 0).astype(np.float64))
    if name == "leaky_relu":
        return (lambda x: np.where(x > 0, x, p * x)), (lambda x: np.where(x > 0, 1.0, p))
    if name == "tanh":
        return np.tanh, (lambda x: 1.0 - np.tanh(x) ** 2)
    if name == "sigmoid":
        return _sigmoid, (lambda x: _sigmoid(x) * _sigmoid(-x))
    if name == "gelu":
        return ((lambda x: x * _normal_cdf(x)),
                (lambda x: _normal_cdf(x) + x * _normal_pdf(x)))
    if name == "gelu_tanh":
        def gelu_tanh_grad(x: Any) -> Any:
            t = np.tanh(GELU_TANH_C * (x + GELU_TANH_K * x ** 3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * GELU_TANH_K * x * x)
        return (lambda x: 0.5 * x * (1 + np.tanh(GELU_TANH_C * (x + GELU_TANH_K * x ** 3))),
                gelu_tanh_grad)
    if name == "silu":
        return ((lambda x: x * _sigmoid(x)),
                (lambda x: _sigmoid(x) * (1 + x * _sigmoid(-x))))
    if name == "mish":
        def mish_grad(x: Any) -> Any:
            t = np.tanh(_softplus(x))
            return t + x * (1 - t * t) * _sigmoid(x)
        return (lambda x: x * np.tanh(_softplus(x))), mish_grad
    if name == "elu":
        return ((lambda x: np.where(x > 0, x, p * np.expm1(np.minimum(x, 0.0)))),
                (lambda x: np.where(x > 0, 1.0, p * np.exp(np.minimum(x, 0.0)))))
    if name == "selu":
        return ((lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))),
                (lambda x: SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0.0)))))
    if name == "softplus":
        return (lambda x: _softplus(x, p)), (lambda x: _sigmoid(p * x))
    if name == "celu":  # Barron (2017): elu with exp(x / alpha), continuously differentiable
        return ((lambda x: np.where(x > 0, x, p * np.expm1(np.minimum(x, 0.0) / p))),
                (lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0) / p))))
    if name == "relu6":
        return (lambda x: np.clip(x, 0.0, 6.0)), (lambda x: ((x > 0) & (x < 6)).astype(np.float64))
    if name == "hardtanh":
        return (lambda x: np.clip(x, -1.0, 1.0)), (lambda x: ((x > -1) & (x < 1)).astype(np.float64))
    if name == "hardsigmoid":
        return ((lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0)),
                (lambda x: np.where((x > -3) & (x < 3), 1.0 / 6.0, 0.0)))
    if name == "softsign":
        return (lambda x: x / (1.0 + np.abs(x))), (lambda x: 1.0 / (1.0 + np.abs(x)) ** 2)
    # hardswish: x * relu6(x + 3) / 6 (Howard et al. 2019)
    return ((lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0),
            (lambda x: np.where(x < -3, 0.0, np.where(x > 3, 1.0, (2.0 * x + 3.0) / 6.0))))


def _canonical(name: str) -> str:
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in NAMES:
        raise ValueError(
            f"activation {name!r} is not known; use one of {NAMES} (or 'identity', 'swish', "
            "a torch conv name) or pass a callable"
        )
    return key


def _param(key: str, param: object) -> float | None:
    if key not in PARAMS:
        if param is not None:
            raise ValueError(f"activation {key!r} takes no param, got param={param!r}")
        return None
    default, pname = PARAMS[key]
    if param is None:
        return default
    return _validate.real(param, f"param ({pname} of {key})", PARAM_KINDS.get(key, _validate.FINITE))


def _central_difference(fn: ArrayFunction, breakpoints: Iterable[float]) -> ArrayFunction:
    """f' by a 5-point central difference whose stencil never straddles a kink.

    Step h = min(1e-3 max(1, |x|), 0.4 d), d = distance to the nearest kink:
    truncation error ~h^4 f^(5), rounding ~eps |f| / h; both < 1e-11 here.
    """
    kinks = np.asarray(breakpoints, dtype=np.float64)

    def derivative(x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        h = 1e-3 * np.maximum(1.0, np.abs(x))
        if kinks.size:
            d = np.min(np.abs(x[..., None] - kinks), axis=-1)
            h = np.where(d > 0, np.minimum(h, 0.4 * d), h)
        stencil = (fn(x - 2 * h) - 8 * fn(x - h) + 8 * fn(x + h) - fn(x + 2 * h)) / (12 * h)
        return stencil

    return derivative


class Activation(NamedTuple):
    """f and f' on float64 arrays, the x where they kink, and whether
    expectations must refine adaptively (a callable's kinks are only a guess)."""

    fn: ArrayFunction
    derivative: ArrayFunction
    kinks: tuple[float, ...]
    adaptive: bool


def resolve(activation: AnyActivation, param: float | None = None,
            breakpoints: Iterable[float] | None = None) -> Activation:
    """Activation(f, f', kinks, adaptive) for a name or a callable.

    A callable's derivative is its own `elementwise_derivative` where it has one
    (float64 array in, array out: a fused region of a traced model gives autograd's),
    else a central difference; its kinks default to (0,) and its expectations are
    adaptive. A name's kinks are exact, so its expectations use the fixed panel rule
    (three times fewer evaluations).
    """
    if isinstance(activation, str):
        key = _canonical(activation)
        if breakpoints is not None:
            raise ValueError("breakpoints apply to callables only; named activations know theirs")
        f, df = _table(key, _param(key, param))
        return Activation(f, df, KINKS.get(key, ()), False)
    if callable(activation):
        if param is not None:
            raise ValueError("param applies to named activations; bind it into the callable instead")
        kinks = (0.0,) if breakpoints is None else tuple(check_breakpoints(breakpoints))
        f = as_vectorized(activation, "activation")
        own = getattr(activation, "elementwise_derivative", None)   # arrays in and out already
        return Activation(f, own if callable(own) else _central_difference(f, kinks), kinks, True)
    raise TypeError(f"activation must be a name (str) or a callable, got {type(activation).__name__}")


def activation_fn(activation: AnyActivation, param: float | None = None) -> ArrayFunction:
    """The NumPy function for an activation name (float64 in, float64 out).

    Example::

        >>> import numpy as np, varinit
        >>> varinit.activations.activation_fn("leaky_relu", 0.2)(np.array([-1.0, 2.0]))
        array([-0.2,  2. ])
    """
    return resolve(activation, param).fn


def activation_derivative(activation: AnyActivation, param: float | None = None) -> ArrayFunction:
    """f' for an activation name (closed form) or a callable (5-point central difference).

    Example::

        >>> import numpy as np, varinit
        >>> varinit.activations.activation_derivative("tanh")(np.zeros(2))
        array([1., 1.])
    """
    return resolve(activation, param).derivative


def second_moment(activation: AnyActivation, q: float = 1.0, param: float | None = None, *,
                  breakpoints: Iterable[float] | None = None) -> float:
    """E[f(sqrt(q) z)^2], z ~ N(0, 1): the second moment of f at pre-activation variance q.

    Example::

        >>> import numpy as np, varinit
        >>> varinit.activations.second_moment("relu", q=4.0)     # q / 2
        2.0
    """
    spec = resolve(activation, param, breakpoints)
    return mean_square(spec.fn, q, spec)


def mean_square(g: ArrayFunction, q: float, spec: Activation) -> float:
    """E[g(sqrt(q) z)^2] with the panels (and adaptivity) of the activation `spec`."""
    return expectation(lambda x: g(x) ** 2, q, spec.kinks, adaptive=spec.adaptive)
