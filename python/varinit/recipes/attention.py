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
import math

from .. import _validate
from ..init import normal_
from .._arrays import as_array, writes_in_place


def attention_qk_std(d_model, d_head, target_logit_var=1.0, input_var=1.0, scaled=True):
    """Std of W_Q and W_K entries giving attention logits of variance target_logit_var.

    std = (T / c)^(1/4) / sqrt(d_model * input_var), c = 1 if scaled (logits
    divided by sqrt(d_head), Vaswani et al. 2017) else d_head; derivation in
    the module docstring.

    Example::

        >>> std = varinit.recipes.attention_qk_std(512, 64, target_logit_var=1.0)
        >>> wq = varinit.normal_(np.empty((512, 512), np.float32), 0.0, std)
    """
    d_model = _validate.integer(d_model, "d_model", minimum=1)
    d_head = _validate.integer(d_head, "d_head", minimum=1)
    target = _validate.real(target_logit_var, "target_logit_var", _validate.POSITIVE)
    input_var = _validate.real(input_var, "input_var", _validate.POSITIVE)
    scaled = _validate.flag(scaled, "scaled")
    per_logit = target if scaled else target / d_head
    return per_logit ** 0.25 / math.sqrt(d_model * input_var)


@writes_in_place
def attention_qk_(tensor, d_head, target_logit_var=1.0, input_var=1.0, scaled=True, generator=None,
                  *, in_axis=1):
    """Fill a query or key projection (out, d_model) with N(0, attention_qk_std(...)^2).

    d_model is the size of `in_axis` (torch's Linear layout (out, in) by
    default; in_axis=0 for (in, out)). Call it for W_Q and for W_K; for a
    packed in_proj (3E, E) fill the views in_proj[:E] and in_proj[E:2E].

    Example::

        >>> wq = varinit.recipes.attention_qk_(np.empty((512, 512), np.float32), d_head=64)
    """
    arr = as_array(tensor)
    if arr.ndim != 2:
        raise ValueError(f"attention_qk_ expects a 2-D projection, got {arr.ndim} dimensions")
    in_axis = _validate.integer(in_axis, "in_axis", minimum=-2, maximum=1)
    std = attention_qk_std(arr.shape[in_axis], d_head, target_logit_var, input_var, scaled)
    return normal_(tensor, 0.0, std, generator)
