"""Checking user arguments: one vocabulary, declared at the call site.

Every public function says what each argument must be, in the manner of
NumPy's random `_common` (one set of constraint kinds, CONS_NON_NEGATIVE,
CONS_BOUNDED_0_1, ..., checked by one function), e.g.

    std = real(std, "std", NON_NEGATIVE)
    depth = integer(depth, "depth", minimum=1)
    scaled = flag(scaled, "scaled")
    mode = choice(mode, "mode", ("fan_in", "fan_out"))

so the same mistake raises the same exception everywhere, with a message
that starts with the argument's name:

- TypeError for a wrong type: a non-real where a number is expected (bool is
  never a number), a non-integer where an integer is expected (2.0
  included), a non-bool for a flag, a non-str for a choice;
- ValueError for a wrong value: NaN, an infinity where a finite number is
  needed, a value out of range, an unknown choice, an integer too large for
  the int64 the C core computes with or too large for a float.

NumPy integer and floating scalars are accepted like Python ints and floats;
every check returns a plain Python int, float or bool.
"""
from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Callable, Iterable
from numbers import Integral, Real
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import TypeIs

# Integers reach the C core as int64 (shapes, offsets, counts): anything larger is
# refused here with the argument's name instead of an OverflowError from the C API.
INT64_MAX = 2**63 - 1

_Option = TypeVar("_Option", bound="str | None")


class Constraint(NamedTuple):
    """What a real number must satisfy: `holds(float)` and the words for it."""

    phrase: str
    holds: Callable[[float], bool]


# NaN fails every comparison, so each bound below refuses it as well.
ANY = Constraint("a real number", lambda v: True)  # NaN and infinities too (constant_'s val)
NOT_NAN = Constraint("a real number other than NaN", lambda v: not math.isnan(v))
FINITE = Constraint("a finite number", math.isfinite)
NON_NEGATIVE = Constraint("a finite number >= 0", lambda v: 0.0 <= v < math.inf)
POSITIVE = Constraint("a finite number > 0", lambda v: 0.0 < v < math.inf)
BOUNDED_0_1 = Constraint("in [0, 1]", lambda v: 0.0 <= v <= 1.0)
BOUNDED_GT_0_1 = Constraint("in (0, 1]", lambda v: 0.0 < v <= 1.0)
BOUNDED_LT_0_1 = Constraint("in [0, 1)", lambda v: 0.0 <= v < 1.0)
BOUNDED_GT_0_LT_1 = Constraint("in (0, 1)", lambda v: 0.0 < v < 1.0)


def shown(value: object) -> str:
    """repr(value) for a message, with integers beyond 2**100 abbreviated, also inside
    tuples and lists (str() of an int of more than 4300 digits raises)."""
    if isinstance(value, Integral) and not isinstance(value, bool) and abs(int(value)) >= 2**100:
        return f"an integer of {abs(int(value)).bit_length()} bits"
    if isinstance(value, list):
        return f"[{', '.join(shown(v) for v in value)}]"
    if isinstance(value, tuple):
        return f"({', '.join(shown(v) for v in value)}{',' if len(value) == 1 else ''})"
    return repr(value)


def _is_bool(value: object) -> TypeIs[bool | np.bool_]:
    return isinstance(value, (bool, np.bool_))


def real(value: object, name: str, kind: Constraint = FINITE) -> float:
    """`value` as a float satisfying `kind` (FINITE unless told otherwise)."""
    if type(value) is not float:  # the common cases skip the slower ABC check
        if type(value) is not int and (_is_bool(value) or not isinstance(value, Real)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        try:
            value = float(cast(float, value))
        except OverflowError:  # an int (or Fraction) beyond float's range, e.g. 10**400
            raise ValueError(f"{name} must be {kind.phrase}, got {shown(value)}, "
                             "too large for a float") from None
    if not kind.holds(value):
        raise ValueError(f"{name} must be {kind.phrase}, got {value}")
    return value


def _bound(limit: int) -> str:
    """2**63 - 1 and 2**64 - 1 by name rather than by their 19 and 20 digits."""
    power = (limit + 1).bit_length() - 1
    return f"2**{power} - 1" if power >= 32 and limit + 1 == 1 << power else str(limit)


def integer(value: object, name: str, minimum: int | None = None, maximum: int | None = INT64_MAX) -> int:
    """`value` as an int in [minimum, maximum] (maximum: int64's largest by default)."""
    if type(value) is not int:
        if _is_bool(value) or not isinstance(value, Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
        value = int(value)
    below = minimum is not None and value < minimum
    if below or (maximum is not None and value > maximum):
        if maximum is None or (below and maximum == INT64_MAX):  # the bound that matters
            limits = f">= {minimum}"
        elif minimum is None:
            limits = f"<= {_bound(maximum)}"
        else:
            limits = f"from {minimum} to {_bound(maximum)}"
        raise ValueError(f"{name} must be an integer {limits}, got {shown(value)}")
    return value


def flag(value: object, name: str) -> bool:
    """`value` as a bool; only True and False (NumPy's included) are flags."""
    if not _is_bool(value):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def choice(value: object, name: str, options: tuple[_Option, ...]) -> _Option:
    """`value` if it is one of `options` (strings, and None where None is one)."""
    if isinstance(value, str) or (value is None and None in options):
        if value in options:
            return value
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    raise TypeError(f"{name} must be one of {options}, got {type(value).__name__}")


def choices(values: object, name: str, options: tuple[_Option, ...]) -> tuple[_Option, ...]:
    """`values` (a sequence of strings, each one of `options`) as a tuple."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of names from {options}, got {type(values).__name__}")
    return tuple(choice(value, name, options) for value in cast("Iterable[object]", values))


def index_tuple(seq: object, name: str, minimum: int = 0) -> tuple[int, ...]:
    """`seq` (a shape, an offset) as a tuple of ints, each in [minimum, 2**63 - 1]."""
    if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers, got {type(seq).__name__}")
    items = tuple(cast("Iterable[object]", seq))
    for v in items:
        if _is_bool(v) or not isinstance(v, Integral):
            raise TypeError(f"{name} must hold integers, got {type(v).__name__} in {shown(items)}")
    ints = tuple(int(cast(int, v)) for v in items)
    for v in ints:
        if not minimum <= v <= INT64_MAX:
            kind = {0: "non-negative integers", 1: "positive integers"}.get(minimum, f"integers >= {minimum}")
            raise ValueError(f"{name} must hold {kind} below 2**63, got {shown(v)}")
    return ints


def per_axis(value: object, name: str, count: int, minimum: int = 1) -> tuple[int, ...]:
    """An int, or a tuple (list) of `count` ints, each >= minimum, as a tuple of `count` ints
    (a convolution's stride or dilation, one per kernel axis)."""
    items: tuple[object, ...] = tuple(value) if isinstance(value, (tuple, list)) else (value,) * count
    if len(items) != count:
        raise ValueError(f"{name} must be an int or a tuple of {count} ints (one per kernel axis), "
                         f"got {shown(value)}")
    return tuple(integer(v, name, minimum) for v in items)


def axes(axis: object, ndim: int, name: str) -> tuple[int, ...]:
    """An axis or a tuple (list) of axes of an ndim-dimensional tensor, as a tuple of
    distinct non-negative axes (negative ones count from the end)."""
    items: tuple[object, ...] = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out: list[int] = []
    for a in items:
        if _is_bool(a) or not isinstance(a, Integral):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {shown(axis)}")
        if not -ndim <= int(a) < ndim:
            raise ValueError(f"{name}={shown(axis)} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis!r} names an axis twice")
    return tuple(out)


def unknown_keyword(fn: Callable[..., object], exc: TypeError) -> TypeError | None:
    """For Python's "fn() got an unexpected keyword argument 'x'" from a call of `fn`: the
    same TypeError naming the keywords `fn` takes, and the closest one to x (a misspelt
    layout keyword is the usual mistake); None for any other TypeError."""
    message = str(exc)
    found = re.fullmatch(rf"{re.escape(fn.__qualname__)}\(\) got an unexpected keyword argument '(\w+)'", message)
    if found is None:
        return None
    taken = [p.name for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][1:]   # the tensor is not a keyword
    close = difflib.get_close_matches(found[1], taken, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return TypeError(f"{message}; {hint}{fn.__name__} takes the keywords {', '.join(taken)}")


def regex(value: object, name: str) -> re.Pattern[str]:
    """`value` compiled as a regular expression."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a regular expression (a str), got {type(value).__name__}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"{name} is not a valid regular expression ({exc}): {value!r}") from None

