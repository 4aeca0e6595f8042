"""The part of a signal common to every position (kappa, varinit.torch.moment_rules):
attention averages positions, so what it passes on depends on how much of its
input every token shares. Each rule against Monte Carlo with real torch ops,
with the conventions of test_moment_rules.py (TAIL = 1e-9 per check; a wrong
rule lies two acceptance bounds away). attention_common is an approximation
(the uniform-attention share of two queries' weights) and is held to 5%.
"""
import math

import pytest
from scipy import stats

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from varinit.torch import moment_rules as mr  # noqa: E402
from varinit.torch.moment_rules import Moments  # noqa: E402

TAIL = 1e-9
F64 = torch.float64


def agrees(samples, predicted, what, wrong=()):
    x = torch.as_tensor(samples, dtype=F64).detach().ravel()
    n = x.numel()
    mean, se = x.mean().item(), x.std().item() / math.sqrt(n)
    bound = stats.t.isf(TAIL, n - 1) * se
    print(f"{what}: MC {mean:.6g} +- {se:.2g}, rule {predicted:.6g}")
    assert abs(mean - predicted) < bound, (what, mean, predicted, se)
    for w in wrong:
        assert abs(predicted - w) > 2 * bound, (what, "a wrong rule would pass", w, predicted, se)


def shared_and_own(replicas, positions, width, mean, kappa, second, gen):
    """c + e: c ~ N(mean, kappa - mean^2) the same at every position, e ~ N(0, second - kappa) each its own."""
    c = mean + math.sqrt(kappa - mean * mean) * torch.randn((replicas, 1, 1, width), dtype=F64, generator=gen)
    e = math.sqrt(second - kappa) * torch.randn((replicas, 1, positions, width), dtype=F64, generator=gen)
    return c + e


def cross_positions(x):
    """Per replica, the mean of x_t * x_t' over pairs of different positions t != t' (dim -2)."""
    t = x.shape[-2]
    total = x.sum(dim=-2)
    return ((total * total - (x * x).sum(dim=-2)) / (t * (t - 1))).mean(dim=tuple(range(1, x.dim() - 1)))


@pytest.mark.parametrize("causal", [False, True])
def test_attention_passes_the_common_part_whole(causal):
    gen = torch.Generator().manual_seed(31)
    r, t, d = 12000, 64, 16
    q = shared_and_own(r, t, d, 0.0, 0.0, 1.0, gen)
    k = shared_and_own(r, t, d, 0.3, 2.5, 3.0, gen)
    v = shared_and_own(r, t, d, 0.2, 0.6, 1.0, gen)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    mq, mk, mv = Moments(0.0, 1.0), Moments(0.3, 3.0), Moments(0.2, 1.0)
    rule = mr.attention(mq, mk, mv, t, d, causal=causal, k_common=2.5, v_common=0.6)
    independent = mr.attention(mq, mk, mv, t, d, causal=causal)       # kappa = mu^2 for both
    k_only = mr.attention(mq, mk, mv, t, d, causal=causal, v_common=0.6)  # k's common part left in the logits
    agrees((out * out).mean(dim=(1, 2, 3)), rule.second, f"attention causal={causal}: second",
           wrong=[independent.second, k_only.second])
    shared = mr.attention_common(mv, t, causal=causal, v_common=0.6)
    measured = cross_positions(out).mean().item()
    assert shared == pytest.approx(measured, rel=0.05)
    assert abs(mr.attention_common(mv, t, causal=causal) - measured) > 0.3 * measured


@pytest.mark.parametrize("activation", ["gelu", "tanh", "relu"])
def test_an_activation_keeps_its_share_of_the_common_part(activation):
    gen = torch.Generator().manual_seed(32)
    r, t, d = 4000, 16, 64
    mean, kappa, second = 0.1, 0.5, 1.2
    z = shared_and_own(r, t, d, mean, kappa, second, gen)
    y = getattr(torch, activation)(z) if activation != "gelu" else F.gelu(z)
    rule = mr.elementwise_common(activation, Moments(mean, second), kappa)
    out, _ = mr.elementwise(activation, Moments(mean, second))
    agrees(cross_positions(y), rule, f"{activation}: kappa out",
           wrong=[out.mean ** 2, out.second])


def test_a_callable_activation_and_the_limits():
    def swish(x):
        return x * torch.sigmoid(1.5 * torch.as_tensor(x))

    gen = torch.Generator().manual_seed(33)
    z = shared_and_own(3000, 16, 64, 0.0, 0.7, 1.0, gen)
    agrees(cross_positions(swish(z)), mr.elementwise_common(swish, Moments(0.0, 1.0), 0.7), "swish: kappa out")
    out, _ = mr.elementwise("gelu", Moments(0.2, 1.3))
    assert mr.elementwise_common("gelu", Moments(0.2, 1.3), 0.04) == pytest.approx(out.mean ** 2, rel=1e-6)
    assert mr.elementwise_common("gelu", Moments(0.2, 1.3), 1.3) == pytest.approx(out.second, rel=1e-3)


def test_common_parts_outside_their_range_are_refused():
    with pytest.raises(ValueError, match="v_common"):
        mr.attention(Moments(0, 1), Moments(0, 1), Moments(0, 1), 8, 8, v_common=2.0)
    with pytest.raises(ValueError, match="common"):
        mr.elementwise_common("relu", Moments(0, 1), 1.5)
    with pytest.raises(ValueError, match="k_common"):
        mr.attention(Moments(0, 1), Moments(0, 1), Moments(0, 1), 8, 8, k_common=-0.1)
