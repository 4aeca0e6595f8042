"""Output-head biases: optimistic value heads and class-prior logits."""
from __future__ import annotations

import math

from .. import _validate
from .._arrays import as_array, writes_in_place
from .._typing import FillableT
from ..init import check_fits


@writes_in_place
def optimistic_bias_(bias: FillableT, value: float | None = None, *, max_reward: float | None = None,
                     discount: float | None = None) -> FillableT:
    """Fill a value head's bias with an optimistic constant.

    Either `value` directly, or the largest possible discounted return
    max_reward / (1 - discount) (optimistic initial values): every state
    starts out looking at least as good as it can be, so a greedy agent
    tries everything.

    Parameters
    ----------
    bias : ndarray or torch.Tensor
        The bias, filled in place.
    value : float, optional
        The constant; give either it or `max_reward` and `discount`.
    max_reward : float, optional
        The largest reward per step.
    discount : float, optional
        The discount factor, in [0, 1).

    Returns
    -------
    ndarray or torch.Tensor
        `bias`, filled in place.

    References
    ----------
    .. [1] R. S. Sutton and A. G. Barto, "Reinforcement learning: an introduction",
       2nd edition, MIT Press, 2018, section 2.6.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> varinit.recipes.optimistic_bias_(np.empty(1, np.float32), max_reward=1.0, discount=0.99)
    array([100.], dtype=float32)
    """
    if (value is None) == (max_reward is None):
        raise ValueError("give either value or max_reward (with discount), not both")
    if value is None:
        if discount is None:
            raise ValueError("max_reward needs discount (in [0, 1))")
        max_reward = _validate.real(max_reward, "max_reward")
        discount = _validate.real(discount, "discount", _validate.BOUNDED_LT_0_1)
        value = max_reward / (1.0 - discount)
        if not math.isfinite(value):
            raise ValueError(f"max_reward / (1 - discount) overflows a float: max_reward={max_reward}, "
                             f"discount={discount}")
        name = "max_reward / (1 - discount)"
    else:
        value, name = _validate.real(value, "value"), "value"
    arr = as_array(bias)
    check_fits(value, arr.dtype, name)
    arr[...] = value
    return bias


@writes_in_place
def prior_bias_(bias: FillableT, prior: float) -> FillableT:
    """Fill a sigmoid classifier's bias with log(p / (1 - p)): its first outputs equal the prior p.

    With small weights, sigmoid(b) = p at the start, so the loss of the
    frequent class does not swamp the first updates (RetinaNet uses p = 0.01
    for its rare foreground classes).

    Parameters
    ----------
    bias : ndarray or torch.Tensor
        The bias, filled in place.
    prior : float
        p, in (0, 1).

    Returns
    -------
    ndarray or torch.Tensor
        `bias`, filled in place.

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal loss for
       dense object detection", ICCV 2017.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> b = varinit.recipes.prior_bias_(np.empty(80, np.float32), 0.01)
    >>> print(f"{b[0]:.4f} -> sigmoid {1 / (1 + np.exp(-b[0])):.4f}")
    -4.5951 -> sigmoid 0.0100
    """
    p = _validate.real(prior, "prior", _validate.BOUNDED_GT_0_LT_1)
    arr = as_array(bias)
    logit = math.log(p / (1.0 - p))
    check_fits(logit, arr.dtype, "log(prior / (1 - prior))")
    arr[...] = logit
    return bias
