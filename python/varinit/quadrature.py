"""Expectations E[f(sqrt(q) z)] over a standard normal z, to ~1e-13 relative.

Plain Gauss-Hermite quadrature is exact for polynomials but converges slowly
for the kinked functions of deep learning (ReLU, ELU, hardswish): its error
for a kink decays only like n^(-3/2), and for tanh at large q (poles close to
the real axis) it needs thousands of nodes. So the normal density is kept as
an explicit factor and the line is cut into panels whose edges include every
kink of f (0 by default); each panel gets a 20-point Gauss-Legendre rule, and
the integrand phi(z) f(sqrt(q) z) is smooth on each panel, so each panel
converges geometrically. Panels whose rule disagrees with the rule on their
two halves are halved again (adaptive), which also handles kinks nobody
declared. Edges lie on two grids: a fixed one in z (width 0.5
over [-12, 12], where phi falls below 2e-32) and a fixed one in x = sqrt(q) z
(width 0.25 over [-16, 16]), so that f's own features stay resolved whether
q is 1e-12 or 1e12.

Equivalent statement: this is Gauss-Hermite's weight (the normal density)
integrated by a composite rule whose pieces are half-lines cut at the kinks,
which is what Gauss-Hermite needs to converge for non-smooth f.
"""
from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np

from . import _validate
from ._typing import ArrayFunction, FloatArray

# phi(12) = 2.1e-32: mass and moments beyond |z| = 12 are below double precision
# for any f of polynomial growth.
Z_LIMIT = 12.0
Z_PANEL = 0.5
# Activation features (tanh's poles at +-i pi/2, hardswish's kinks at +-3,
# the softplus elbow) live at |x| < ~10; resolve them whatever q is.
X_LIMIT = 16.0
X_PANEL = 0.25
NODES_PER_PANEL = 20
_LEGENDRE_NODES, _LEGENDRE_WEIGHTS = np.polynomial.legendre.leggauss(NODES_PER_PANEL)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def as_vectorized(fn: Callable[..., Any], name: str = "activation") -> ArrayFunction:
    """A function of a float64 NumPy array returning a float64 array of the same shape.

    `fn` may be vectorized over NumPy arrays, a PyTorch function or module
    (called on a tensor), or accept only Python floats (called per element).
    """
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    probe = np.array([-2.5, -0.5, 0.0, 0.75, 3.0])
    expected = _scalar_results(fn, probe)
    candidates: tuple[ArrayFunction | None, ...] = (_numpy_call(fn), _torch_call(fn))
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            got = candidate(probe)
        except ShapeMismatch:  # it took the array but reduced it: evaluate per element
            break
        except Exception:  # the callable does not take this kind of argument: try the next
            continue
        if expected is None or np.allclose(got, expected, rtol=1e-12, atol=1e-300, equal_nan=True):
            return candidate
        break  # it took the array but computed something else than per element
    if expected is None:
        raise TypeError(
            f"{name} could not be evaluated: it accepts neither a NumPy array, a torch "
            "tensor, nor a Python float"
        )
    return _scalar_call(fn)


class ShapeMismatch(ValueError):
    """A function returned an array of another shape than its input."""


def _checked(values: object, shape: tuple[int, ...]) -> FloatArray:
    given = np.asarray(values)
    if np.iscomplexobj(given):
        raise TypeError("the function returned complex values; it must be real-valued")
    out = given.astype(np.float64, copy=False)
    if out.shape != shape:
        raise ShapeMismatch(f"the function returned shape {out.shape} for input of shape {shape}")
    return out


def _numpy_call(fn: Callable[..., Any]) -> ArrayFunction:
    return lambda x: _checked(fn(x), x.shape)


def _torch_call(fn: Callable[..., Any]) -> ArrayFunction | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if isinstance(fn, torch.nn.Module) and any(p.dtype != torch.float64 for p in fn.parameters()):
        # torch does not promote a module's float32 parameters against a float64
        # input (PReLU's slope): evaluate a float64 copy, leaving the user's module alone.
        fn = copy.deepcopy(fn).to(torch.float64)

    def call(x: FloatArray) -> FloatArray:
        with torch.no_grad():
            out = fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)))
        return _checked(out.detach().cpu().numpy(), x.shape)

    return call


def _scalar_call(fn: Callable[..., Any]) -> ArrayFunction:
    def call(x: FloatArray) -> FloatArray:
        flat = [float(fn(float(v))) for v in np.ravel(x)]
        return np.array(flat, dtype=np.float64).reshape(x.shape)

    return call


def _scalar_results(fn: Callable[..., Any], probe: FloatArray) -> FloatArray | None:
    try:
        return np.array([float(fn(float(v))) for v in probe])
    except Exception:  # vectorized-only callables (e.g. torch functions) land here
        return None


def check_breakpoints(breakpoints: object) -> list[float]:
    if isinstance(breakpoints, (str, bytes)) or not hasattr(breakpoints, "__iter__"):
        raise TypeError(f"breakpoints must be a sequence of real numbers, got {type(breakpoints).__name__}")
    return [_validate.real(b, "breakpoints") for b in cast("Iterable[object]", breakpoints)]


def panel_edges(q: float, breakpoints: Iterable[float] = (0.0,)) -> tuple[FloatArray, FloatArray]:
    """(lo, hi): the initial panels in z for E[f(sqrt(q) z)], q > 0, cut at the kinks."""
    root = math.sqrt(q)
    edges = [np.arange(-Z_LIMIT, Z_LIMIT + Z_PANEL / 2, Z_PANEL)]
    x_edges = np.arange(-X_LIMIT, X_LIMIT + X_PANEL / 2, X_PANEL) / root
    edges.append(x_edges[np.abs(x_edges) < Z_LIMIT])
    kinks = np.array(check_breakpoints(breakpoints), dtype=np.float64) / root
    edges.append(kinks[np.abs(kinks) < Z_LIMIT])
    cuts = np.unique(np.concatenate(edges))
    cuts = cuts[np.concatenate(([True], np.diff(cuts) > 1e-13))]
    return cuts[:-1], cuts[1:]


def _panel_rule(lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray]:
    half = ((hi - lo) / 2)[:, None]
    z = ((lo + hi) / 2)[:, None] + half * _LEGENDRE_NODES
    return z, half * _LEGENDRE_WEIGHTS * np.exp(-0.5 * z * z) * _INV_SQRT_2PI


# A panel is accepted when its 20-point and 2 x 20-point sums agree to this
# fraction of sum |panel integrals|; ~50 initial panels keep the total error
# near 1e-14 relative. Panels that straddle an undeclared kink (error ~h^2 or
# ~h for a jump) are halved until they agree: 40 halvings reach 2^-40 widths.
PANEL_RTOL = 2e-16
MAX_HALVINGS = 40
# A kink keeps about two panels halving per step; more than this many at once is an
# integrand that does not converge (E[1/x^2] across a pole: the Gaussian stand-in of a
# positive normalizer), which would double its panels 40 times
MAX_OPEN_PANELS = 1024


class DivergentIntegral(OverflowError):
    """An expectation whose panels keep disagreeing: the integral diverges (a pole)."""


def expectation(call: ArrayFunction, q: float, breakpoints: Iterable[float] = (0.0,),
                adaptive: bool = True, strict: bool = False) -> float:
    """E[call(sqrt(q) z)] by panel Gauss-Legendre; `call` maps float64 arrays.

    Starts from the panels of panel_edges; adaptive=True halves every panel
    whose one-panel and two-half-panel estimates differ, so kinks missing
    from `breakpoints` still converge (to ~1e-14) instead of capping the
    accuracy (at ~1e-7). adaptive=False is for exactly known kinks. Where
    more than MAX_OPEN_PANELS panels disagree at once the integral diverges:
    strict=True raises DivergentIntegral, else the estimate so far is returned.
    """
    q = _validate.real(q, "q", _validate.NON_NEGATIVE)
    if q == 0.0:
        values = call(np.zeros(1))
        return float(_finite(values, np.zeros(1))[0])
    root = math.sqrt(q)

    def panel_sums(lo: FloatArray, hi: FloatArray) -> FloatArray:
        z, w = _panel_rule(lo, hi)
        x = root * z.ravel()
        values = _finite(call(x), x).reshape(z.shape)
        sums: FloatArray = np.sum(w * values, axis=1)
        return sums

    lo, hi = panel_edges(q, breakpoints)
    coarse = panel_sums(lo, hi)
    if not adaptive:
        return float(np.sum(coarse))
    tolerance = PANEL_RTOL * max(float(np.sum(np.abs(coarse))), 1e-300)
    total = 0.0
    for _ in range(MAX_HALVINGS):
        mid = (lo + hi) / 2
        left, right = panel_sums(lo, mid), panel_sums(mid, hi)
        fine = left + right
        done = np.abs(fine - coarse) <= tolerance
        total += float(np.sum(fine[done]))
        if done.all():
            return total
        keep = ~done
        lo, hi = np.concatenate((lo[keep], mid[keep])), np.concatenate((mid[keep], hi[keep]))
        coarse = np.concatenate((left[keep], right[keep]))
        if lo.size > MAX_OPEN_PANELS:
            if strict:
                raise DivergentIntegral(f"E[f(sqrt(q) z)] at q = {q:.6g} does not converge: {lo.size} panels "
                                        "still disagree (a pole of f)")
            break
    return total + float(np.sum(coarse))


def _finite(values: FloatArray, x: FloatArray) -> FloatArray:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"the function returned a non-finite value at x = {x[~np.isfinite(values)][0]!r}")
    return values


def gaussian_expectation(fn: Callable[..., Any], q: float = 1.0, *,
                         breakpoints: Iterable[float] = (0.0,)) -> float:
    """E[fn(sqrt(q) z)] for z ~ N(0, 1), by adaptive panel Gauss-Legendre quadrature.

    The normal density is the weight; panels are cut at the `breakpoints` (x
    values where fn or fn' kinks; 0 by default, where ReLU-like functions
    do) and halved wherever a 20-point rule and its two halves disagree.
    Accurate to ~1e-13 relative for fn of at most polynomial growth (~1e-12
    with an undeclared kink). `fn` is vectorized over NumPy arrays, a torch
    function, or scalar-only.

    Example::

        >>> import numpy as np, varinit
        >>> varinit.quadrature.gaussian_expectation(lambda x: np.maximum(x, 0) ** 2)   # E[relu(z)^2]
        0.5
    """
    return expectation(as_vectorized(fn, "fn"), q, breakpoints)
