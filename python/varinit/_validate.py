"""Checking user arguments.

Each check names the argument and what was expected (TypeError for a wrong
type, ValueError for a wrong value) and returns the value as a plain float or
int, so every public function refuses bad input with the same words.
"""
import math
from numbers import Integral, Real


def real(value, name):
    """A real number that is not NaN (infinities allowed)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} must not be NaN")
    return value


def finite(value, name):
    value = real(value, name)
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def nonnegative(value, name):
    """A finite number >= 0 (a standard deviation, a bias variance)."""
    value = real(value, name)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def positive(value, name):
    value = real(value, name)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def fraction(value, name):
    """A number in (0, 1]: a keep probability, a density."""
    value = real(value, name)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


def probability(value, name):
    """A number in (0, 1), both ends excluded."""
    value = real(value, name)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return value


def count(value, name, minimum=1):
    """An integer >= minimum (a depth, a width, a number of layers)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
