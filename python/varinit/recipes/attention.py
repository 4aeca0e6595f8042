"""Query and key projections whose attention logits have a chosen variance.

Derivation. Inputs x, x' in R^d (d = d_model) have iid components of variance
v (input_var); W_Q, W_K (d_head x d) have iid entries of variance s_q^2, s_k^2,
independent of each other and of the inputs. With q = W_Q x, k = W_K x':

    Var(q_i) = d s_q^2 v,   Var(k_i) = d s_k^2 v,   E[q_i k_i] = 0,

and q_i k_i for different i are uncorrelated (different rows of W_Q, W_K), so
the logit l = q . k / sqrt(d_head) (scaled=True) has

    Var(l) = d_head (d s_q^2 v)(d s_k^2 v) / d_head = (d v)^2 s_q^2 s_k^2.

With s_q = s_k = s and a target T: s^2 = sqrt(T) / (d v), i.e.
s = T^(1/4) / sqrt(d v): LeCun's 1/d with T = v = 1. Unscaled logits
(scaled=False) carry an extra factor d_head: s^2 = sqrt(T / d_head) / (d v).
For the diagonal (x' = x, a token attending to itself) E|x|^4 adds a factor
(1 + 2/d) for Gaussian inputs.
"""
from __future__ import annotations

import math

from .. import _validate
from ..init import normal_
from .._arrays import as_array, writes_in_place
from .._typing import FillableT, GeneratorLike


def attention_qk_std(d_model: int, d_head: int, target_logit_var: float = 1.0, input_var: float = 1.0,
                     scaled: bool = True) -> float:
    """The std of W_Q and W_K entries that gives attention logits the variance `target_logit_var`.

    std = (T / c)^(1/4) / sqrt(d_model * input_var), with c = 1 for scaled
    logits (q . k / sqrt(d_head), Vaswani et al. 2017) and c = d_head for
    unscaled ones: inputs of variance v and weights of std s give the logit
    the variance (d_model v)^2 s^4 / c (derivation in the module docstring).
    With T = v = 1 this is LeCun's 1 / sqrt(d_model).

    Parameters
    ----------
    d_model : int
        The input dimension of the projections.
    d_head : int
        The dimension of one head's queries and keys.
    target_logit_var : float, default 1
        T, the logits' variance, > 0.
    input_var : float, default 1
        v, the variance of the inputs' components, > 0.
    scaled : bool, default True
        Whether the logits are divided by sqrt(d_head).

    Returns
    -------
    float

    References
    ----------
    .. [1] A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez,
       L. Kaiser and I. Polosukhin, "Attention is all you need", NeurIPS 2017.

    Examples
    --------
    >>> import varinit
    >>> print(f"{varinit.recipes.attention_qk_std(512, 64):.5f}")     # 1 / sqrt(512)
    0.04419
    >>> print(f"{varinit.recipes.attention_qk_std(512, 64, target_logit_var=0.25):.5f}")
    0.03125
    """
    d_model = _validate.integer(d_model, "d_model", minimum=1)
    d_head = _validate.integer(d_head, "d_head", minimum=1)
    target = _validate.real(target_logit_var, "target_logit_var", _validate.POSITIVE)
    input_var = _validate.real(input_var, "input_var", _validate.POSITIVE)
    scaled = _validate.flag(scaled, "scaled")
    per_logit = target if scaled else target / d_head
    return float(per_logit ** 0.25) / math.sqrt(d_model * input_var)


@writes_in_place
def attention_qk_(tensor: FillableT, d_head: int, target_logit_var: float = 1.0, input_var: float = 1.0,
                  scaled: bool = True, generator: GeneratorLike = None, *, in_axis: int = 1) -> FillableT:
    """Fill a query or key projection with N(0, attention_qk_std(...)^2).

    d_model is the size of the weight's `in_axis` (torch's Linear layout
    (out, in) by default; in_axis=0 for (in, out)). Call it for W_Q and for
    W_K; for a packed in_proj (3E, E) fill the views ``in_proj[:E]`` and
    ``in_proj[E:2 * E]``.

    Parameters
    ----------
    tensor : ndarray or torch.Tensor
        A 2-D projection weight, filled in place.
    d_head : int
        The dimension of one head's queries and keys.
    target_logit_var : float, default 1
        The logits' variance, > 0.
    input_var : float, default 1
        The variance of the inputs' components, > 0.
    scaled : bool, default True
        Whether the logits are divided by sqrt(d_head).
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.
    in_axis : int, default 1
        The input axis of the weight (0 or 1, or -2, -1).

    Returns
    -------
    ndarray or torch.Tensor
        `tensor`, filled in place.

    References
    ----------
    .. [1] A. Vaswani et al., "Attention is all you need", NeurIPS 2017.

    Examples
    --------
    Logits of one 64-dimensional head of a 512-wide model, on unit-variance inputs:

    >>> import numpy as np, varinit
    >>> wq = varinit.recipes.attention_qk_(np.empty((512, 512)), d_head=64, generator=0)
    >>> wk = varinit.recipes.attention_qk_(np.empty((512, 512)), d_head=64, generator=1)
    >>> x = np.random.default_rng(0).standard_normal((512, 512))
    >>> logits = (x @ wq[:64].T) @ (x @ wk[:64].T).T / 8
    >>> print(f"{logits.var():.2f}")
    1.01
    """
    arr = as_array(tensor)
    if arr.ndim != 2:
        raise ValueError(f"attention_qk_ expects a 2-D projection, got {arr.ndim} dimensions")
    in_axis = _validate.integer(in_axis, "in_axis", minimum=-2, maximum=1)
    std = attention_qk_std(arr.shape[in_axis], d_head, target_logit_var, input_var, scaled)
    return normal_(tensor, 0.0, std, generator)
