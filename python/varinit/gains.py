"""Gains: the factor by which the weights before a nonlinearity are scaled.

Two rules, and where each applies:

- "torch": `calculate_gain`, torch's table, kept value for value. The
  torch.nn.init functions (kaiming_*, xavier_*, orthogonal_, and
  mlp_spec's init names, which are those functions) use it for the names
  torch knows (linear/conv, sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu
  sqrt(2 / (1 + s^2)), selu 3/4): they are a drop-in for torch.
- "exact": `gain`, 1 / sqrt(E[f(z)^2]) for z ~ N(0, 1), by quadrature of
  the actual function: the weight scale that keeps the second moment of the
  next layer's pre-activations at that of this layer's (He et al. 2015's
  derivation, for any f). It differs from torch's table where torch uses
  another criterion: tanh 1.5925 (torch: 5/3, a heuristic), selu 1 (torch
  3/4 trades the self-normalizing fixed point for steadier gradients),
  sigmoid 1.8462 (torch 1; sigmoid is not centred).

Every other path that needs a gain (init_layers, varinit.torch.init_module,
gain_for) takes `gain_rule="torch" | "exact"`, default DEFAULT_GAIN_RULE =
"exact": a whole-model init should keep the variance the theory says,
whatever name the activation has. With "torch", names torch does not know
(gelu, silu, ...) and callables fall back to "exact", since torch has no value
for them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

from . import _validate
from ._typing import GainRule, Nonlinearity, TorchGainName
from .activations import LINEAR_FNS, second_moment

TORCH_GAIN_NAMES: tuple[str, ...] = LINEAR_FNS + ("sigmoid", "tanh", "relu", "leaky_relu", "selu")
GAIN_RULES: tuple[GainRule, ...] = ("torch", "exact")
DEFAULT_GAIN_RULE: GainRule = "exact"


def calculate_gain(nonlinearity: TorchGainName, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity: torch.nn.init.calculate_gain's table, value for value.

    linear, conv1d/2d/3d, conv_transpose1d/2d/3d, sigmoid: 1; tanh: 5/3; relu:
    sqrt(2); leaky_relu: sqrt(2 / (1 + negative_slope^2)); selu: 3/4. A slope
    that is not a finite number raises torch's ``ValueError`` (torch itself
    returns NaN for a NaN slope); NumPy scalars are accepted. For a gain that
    preserves the second moment of any activation, see `gain`.

    Parameters
    ----------
    nonlinearity : str
        One of the names above.
    param : float, optional
        leaky_relu's negative slope (default 0.01); ignored otherwise.

    Returns
    -------
    float or int
        The gain (1 for the linear names and sigmoid, as torch returns it).

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers:
       surpassing human-level performance on ImageNet classification", ICCV 2015
       (the relu and leaky_relu gains).

    Examples
    --------
    >>> import varinit
    >>> varinit.calculate_gain("relu")
    1.4142135623730951
    >>> varinit.calculate_gain("leaky_relu", 0.2)
    1.3867504905630728
    >>> varinit.calculate_gain("tanh")
    1.6666666666666667
    """
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        else:
            try:
                value = _validate.real(param, "negative_slope")
            except (TypeError, ValueError):  # torch's type and words for any bad slope
                text = _validate.shown(param) if isinstance(param, int) else param
                raise ValueError(f"negative_slope {text} not a valid number") from None
            slope = param if isinstance(param, int) else value  # torch squares an int slope exactly
        try:
            return math.sqrt(2.0 / (1 + slope**2))
        except OverflowError:  # |slope| > 1e154: the gain's limit, 0
            return 0.0
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def gain(activation: Nonlinearity, param: float | None = None, *,
         breakpoints: Sequence[float] | None = None) -> float:
    """The gain that preserves the second moment: 1 / sqrt(E[f(z)^2]), z ~ N(0, 1).

    He et al.'s argument for any activation f: weights of variance gain^2 /
    fan_in keep the second moment of the next layer's pre-activations at that
    of this layer's. The expectation is a quadrature with the normal density
    as weight, cut into Gauss-Legendre panels at the kinks of f and refined
    where a panel disagrees with its halves (`varinit.quadrature`), accurate
    to about 1e-13. relu: sqrt(2); leaky_relu: sqrt(2 / (1 + s^2)); selu: 1;
    tanh: 1.5925 (torch's table says 5/3); sigmoid: 1.8462 (torch: 1). The
    `varinit.gains` module docstring says where each rule applies.

    Parameters
    ----------
    activation : str or callable
        A name: linear/identity, relu, leaky_relu, tanh, sigmoid, gelu (erf),
        gelu_tanh, silu/swish, mish, elu, selu, softplus, hardswish, celu,
        relu6, hardtanh, hardsigmoid, softsign; or a function (NumPy-vectorized,
        a torch function or module, or scalar-only).
    param : float, optional
        The activation's parameter: leaky_relu's slope (default 0.01), elu's
        and celu's alpha (default 1), softplus's beta (default 1).
    breakpoints : sequence of float, optional
        The kinks of a callable, where the quadrature cuts its panels (default
        (0,)).

    Returns
    -------
    float
        The gain.

    Raises
    ------
    ValueError
        When E[f(z)^2] is 0: no gain preserves the second moment.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers:
       surpassing human-level performance on ImageNet classification", ICCV 2015.

    Examples
    --------
    >>> import math, numpy as np, varinit
    >>> print(f"{varinit.gain('relu'):.4f} {varinit.gain('gelu'):.4f} {varinit.gain('tanh'):.4f}")
    1.4142 1.5335 1.5925
    >>> print(f"{varinit.gain(lambda x: x * np.tanh(x)):.4f}")        # any function
    1.1487
    >>> w = varinit.kaiming_normal_(np.empty((256, 256), np.float32), nonlinearity="gelu", generator=0)
    >>> print(f"std {w.std():.4f}, target {varinit.gain('gelu') / 16:.4f}")
    std 0.0958, target 0.0958
    """
    moment = second_moment(activation, 1.0, param, breakpoints=breakpoints)
    if not moment > 0:
        raise ValueError("E[f(z)^2] is 0 for this activation: no gain preserves the second moment")
    return 1.0 / math.sqrt(moment)


def check_gain_rule(gain_rule: object) -> GainRule:
    return _validate.choice(gain_rule, "gain_rule", GAIN_RULES)


def gain_for(activation: Nonlinearity | None, param: float | None = None,
             gain_rule: GainRule = DEFAULT_GAIN_RULE) -> float:
    """The gain of `activation` by `gain_rule`: torch's table or the exact second-moment gain.

    Parameters
    ----------
    activation : None, str or callable
        None for linear, a name, or a function.
    param : float, optional
        The activation's parameter.
    gain_rule : {"exact", "torch"}, default "exact"
        "torch": `calculate_gain` for the names torch knows, `gain` for the
        others; "exact": `gain`.

    Returns
    -------
    float

    Examples
    --------
    >>> import varinit
    >>> varinit.gains.gain_for("tanh", gain_rule="torch"), varinit.gains.gain_for("tanh")
    (1.6666666666666667, 1.5925...)
    """
    check_gain_rule(gain_rule)
    name = "linear" if activation is None else activation
    if gain_rule == "torch" and isinstance(name, str) and name in TORCH_GAIN_NAMES:
        return float(calculate_gain(cast("TorchGainName", name), param))
    return gain(name, None if param is None else _validate.real(param, "param"))
