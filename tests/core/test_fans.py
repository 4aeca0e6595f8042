"""Layer-aware fans checked on real torch modules: the signal a layer actually passes.

He init with gain 1 (nonlinearity="linear") and the right fan gives output variance 1
on unit-variance input (mode="fan_in") and input-gradient variance 1 for unit-variance
output gradients (mode="fan_out"). One weight draw fixes sum(w^2) per output unit; its
relative spread averaged over the C_out units is sqrt(2 / (fan_in * C_out)) (Var(w^2) =
2 Var(w)^2 for normal w). Tolerances are 6 of those spreads plus 6 of the sampling spread
of the variance estimate over the outputs (sqrt(2 / n), n outputs): a correct fan fails
with probability < 1e-8; torch's fan is off by factors of 2 or more here.
"""
import math

import numpy as np
import pytest

import varinit

torch = pytest.importorskip("torch")
nn = torch.nn


def tolerance(fan, units, outputs):
    return 6 * math.sqrt(2 / (fan * units)) + 6 * math.sqrt(2 / outputs)


def forward_variance(module, in_shape, crop, seed=0):
    """Variance of module(x) for x ~ N(0, 1), over positions where every tap lands (crop)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(in_shape, generator=g, dtype=torch.float32)
    with torch.no_grad():
        y = module.float()(x)
    index = (slice(None), slice(None)) + tuple(slice(c, y.shape[2 + a] - c) for a, c in enumerate(crop))
    y = y[index]
    return float(y.pow(2).mean()), y.numel()


def backward_variance(module, in_shape, crop, seed=0):
    """Variance of d(sum(y * u))/dx for u ~ N(0, 1): the backward signal, interior inputs only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(in_shape, generator=g, dtype=torch.float32, requires_grad=True)
    y = module.float()(x)
    u = torch.randn(y.shape, generator=g, dtype=torch.float32)
    (grad,) = torch.autograd.grad(y, x, u)
    index = (slice(None), slice(None)) + tuple(slice(c, grad.shape[2 + a] - c) for a, c in enumerate(crop))
    grad = grad[index]
    return float(grad.pow(2).mean()), grad.numel()


@pytest.mark.parametrize("c_in,c_out,groups,k", [
    (64, 128, 4, 3),     # grouped
    (96, 96, 96, 5),     # depthwise: fan_in = fan_out = k*k
    (256, 128, 1, 1),    # pointwise: fan_in = C_in
])
def test_grouped_conv2d_forward_and_backward(c_in, c_out, groups, k):
    conv = nn.Conv2d(c_in, c_out, k, groups=groups, bias=False)
    fan_in, fan_out = varinit.fans(conv.weight.shape, layer="conv", groups=groups)
    assert (fan_in, fan_out) == (c_in // groups * k * k, c_out // groups * k * k)
    shape, crop = (4, c_in, 20, 20), (k - 1,) * 2

    varinit.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear", layer="conv",
                            groups=groups, generator=1)
    var, n = forward_variance(conv, shape, (0, 0))
    assert abs(var - 1) < tolerance(fan_in, c_out, n)

    varinit.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="linear", layer="conv",
                            groups=groups, generator=2)
    var, n = backward_variance(conv, shape, crop)
    assert abs(var - 1) < tolerance(fan_out, c_in, n)

    if groups > 1:  # torch's fan_out counts all C_out channels: the backward signal shrinks by g
        torch.manual_seed(3)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="linear")
        var, n = backward_variance(conv, shape, crop)
        assert abs(var * groups - 1) < groups * tolerance(fan_out, c_in, n)


def test_strided_conv2d_fan_out_gives_unit_input_gradient():
    # Stride 2, kernel 3: an input position of phase (even/odd per axis) is reached by
    # 4, 2, 2 or 1 taps per output channel, prod(k) / prod(s) = 2.25 on average, so the
    # backward pass needs fan_out = C_out * 9 / 4. Interior inputs 2..31 of 34: every tap
    # lands, and even and odd positions are equally many (the phase average is exact).
    # Tolerance: given the weights, the mean over phases and C_in of E[dx^2] is
    # sum(w^2) / (prod(s) C_in), relative spread sqrt(2 / (C_in C_out prod(k))) = 0.0052;
    # sampling of the n = 230400 squared gradients, 6 sqrt(2 / n) doubled for their weak
    # correlation through shared output gradients (coefficients ~ 1 / (C_out taps)).
    # 6 of each: 0.056; a correct fan fails with probability < 1e-8, and stride
    # ignored (torch, or this fan before) gives 0.25.
    c_in, c_out = 64, 128
    conv = nn.Conv2d(c_in, c_out, 3, stride=2, bias=False)
    fan_in, fan_out = varinit.fans(conv.weight.shape, layer="conv", stride=2)
    assert (fan_in, fan_out) == (c_in * 9, c_out * 9 / 4)
    shape, crop = (4, c_in, 34, 34), (2, 2)

    def interior_backward_variance():
        var, n = backward_variance(conv, shape, crop, seed=21)
        assert n == 4 * c_in * 30 * 30
        return var, n

    varinit.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="linear", layer="conv", stride=2,
                            generator=20)
    var, n = interior_backward_variance()
    tol = 6 * math.sqrt(2 / (c_in * c_out * 9)) + 6 * math.sqrt(2 * 2 / n)
    assert abs(var - 1) < tol, var
    # the stride ignored: fan_out = C_out * 9, a quarter of the gradient variance
    varinit.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="linear", layer="conv",
                            generator=20)
    ignored, _ = interior_backward_variance()
    assert abs(ignored * 4 - 1) < 4 * tol and abs(ignored - 1) > 10 * tol, ignored
    # a stride that does not divide the count gives a fractional fan_out, used as it is
    w = varinit.kaiming_normal_(np.empty((10, 8, 3), np.float64), mode="fan_out", nonlinearity="linear",
                                layer="conv", stride=4, generator=22)
    ref = varinit.kaiming_normal_(np.empty((10, 8, 3), np.float64), mode="fan_out", nonlinearity="linear",
                                  layer="conv", generator=22)
    np.testing.assert_allclose(w, ref * math.sqrt(30 / 7.5), rtol=1e-15)


@pytest.mark.parametrize("dims,c_in,c_out,groups,k,s,spatial", [
    (1, 256, 64, 2, 4, 2, 64),
    (2, 96, 64, 2, 4, 2, 16),
    (2, 64, 128, 1, (3, 5), (3, 1), 14),
    (3, 48, 32, 4, 2, 2, 6),
])
def test_conv_transpose_forward_and_backward(dims, c_in, c_out, groups, k, s, spatial):
    Conv = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
    conv = Conv(c_in, c_out, k, stride=s, groups=groups, bias=False)
    ks = conv.kernel_size
    ss = conv.stride
    fan_in, fan_out = varinit.fans(conv.weight.shape, layer="conv_transpose", groups=groups, stride=s)
    assert fan_in == pytest.approx(c_in / groups * math.prod(ks) / math.prod(ss))
    assert fan_out == c_out // groups * math.prod(ks)
    shape = (4, c_in) + (spatial,) * dims

    # Forward: averaged over the stride phases, an output sums fan_in taps.
    varinit.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear", layer="conv_transpose",
                            groups=groups, stride=s, generator=4)
    var, n = forward_variance(conv, shape, tuple(kk - 1 for kk in ks))
    phases = math.prod(ss)  # each phase sums fewer taps: widen by sqrt(phases)
    tol = tolerance(fan_in / phases, c_out, n / phases)
    assert abs(var - 1) < tol
    # torch's rule takes fan_in = C_out/g * prod(k): wrong by C_in / (C_out * prod(s))
    torch_fan_in = nn.init._calculate_fan_in_and_fan_out(conv.weight)[0]
    assert torch_fan_in == c_out // groups * math.prod(ks)
    torch.manual_seed(5)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")
    var_torch, _ = forward_variance(conv, shape, tuple(kk - 1 for kk in ks))
    factor = fan_in / torch_fan_in
    assert abs(factor - 1) > 0.4 and abs(var_torch / factor - 1) < tol

    # Backward: each input feeds C_out/g * prod(k) outputs.
    varinit.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="linear", layer="conv_transpose",
                            groups=groups, stride=s, generator=6)
    var, n = backward_variance(conv, shape, (1,) * dims)
    assert abs(var - 1) < tolerance(fan_out, c_in, n)


def test_fans_rules_and_errors():
    assert varinit.fans((64, 1, 3, 3), layer="conv", groups=64) == (9, 9)
    # a strided conv divides its fan_out by prod(stride), as a transposed conv its fan_in
    assert varinit.fans((128, 32, 3, 3), layer="conv", groups=4, stride=2) == (288, 72)
    assert varinit.fans((64, 3, 3, 3), layer="conv", stride=(3, 1)) == (27, 192)
    assert varinit.fans((10, 8, 3), layer="conv", stride=4) == (24, 7.5)
    assert varinit.fans((16, 8, 3, 3), layer="conv_transpose", stride=2) == (36, 72)
    assert varinit.fans((16, 8, 3, 3), layer="conv_transpose", stride=(3, 1)) == (48, 72)
    assert varinit.fans((16, 8, 3), layer="conv_transpose", stride=2) == (24, 24)
    with pytest.raises(ValueError, match="stride applies to layer='conv' or 'conv_transpose'"):
        varinit.fans((16, 8), stride=2)
    with pytest.raises(ValueError, match="stride must be an int or a tuple of 2 ints"):
        varinit.fans((16, 8, 3, 3), layer="conv_transpose", stride=(2, 2, 2))
    with pytest.raises(ValueError, match="divisible by 3"):
        varinit.fans((16, 8, 3, 3), layer="conv_transpose", groups=3)


def test_phase_balanced_conv_transpose_has_no_checkerboard():
    # kernel 3, stride 2: output phases (even/odd per axis) sum 4, 2, 2, 1 taps.
    c = 128
    conv = nn.ConvTranspose2d(c, c, 3, stride=2, bias=False)
    shape = (4, c, 16, 16)

    def phase_variances():
        g = torch.Generator().manual_seed(7)
        x = torch.randn(shape, generator=g, dtype=torch.float32)
        with torch.no_grad():
            y = conv.float()(x)[:, :, 2:-2, 2:-2]  # interior; starts on an even position
        return np.array([[float(y[:, :, a::2, b::2].pow(2).mean()) for b in (0, 1)] for a in (0, 1)])

    plain = dict(mode="fan_in", nonlinearity="linear", layer="conv_transpose", stride=2)
    varinit.kaiming_normal_(conv.weight, generator=8, **plain)
    unbalanced = phase_variances()
    varinit.kaiming_normal_(conv.weight, generator=8, phase_balanced=True, **plain)
    balanced = phase_variances()
    # Per phase, one weight draw: relative spread sqrt(2 / (C_in * taps * C_out)) <= 0.011
    # for the 1-tap phase; sampling of ~7000 x 128 outputs adds < 0.002. 6 of each: 0.08.
    tol = 6 * math.sqrt(2 / (c * c)) + 6 * math.sqrt(2 / (4 * c * 6 * 6))
    assert np.all(np.abs(balanced - 1) < tol), balanced
    expected = np.array([[4, 2], [2, 1]]) / 2.25          # n_r * prod(s) / prod(k)
    assert np.all(np.abs(unbalanced / expected - 1) < tol), unbalanced
    assert unbalanced.max() / unbalanced.min() > 3
    # the scaling is a deterministic per-tap multiply of the same draw
    again = varinit.kaiming_normal_(np.empty((c, c, 3, 3), np.float32), generator=8, **plain)
    factors = varinit.fan_rules.phase_scale((3, 3), 2)
    np.testing.assert_allclose(conv.weight.detach().numpy(), again * factors, rtol=1e-6)


def test_phase_balanced_with_dilation_on_a_real_module():
    # k = 4, s = 3, d = 2: tap offsets 0, 2, 4, 6 fall on phases 0, 2, 1, 0 -> 2, 1, 1 taps
    c = 192
    conv = nn.ConvTranspose1d(c, c, 4, stride=3, dilation=2, bias=False)
    varinit.kaiming_normal_(conv.weight, nonlinearity="linear", layer="conv_transpose", stride=3,
                            dilation=2, phase_balanced=True, generator=12)
    g = torch.Generator().manual_seed(13)
    x = torch.randn(8, c, 64, generator=g)
    with torch.no_grad():
        y = conv(x)[:, :, 6:-6]          # interior; 6 = d (k - 1) is a multiple of s
    var = [float(y[:, :, r::3].pow(2).mean()) for r in range(3)]
    # per phase: one-tap phases spread sqrt(2 / (C_in C_out)) = 0.0074; 6 of those + sampling
    tol = 6 * math.sqrt(2 / (c * c)) + 6 * math.sqrt(2 / (8 * c * 17))
    assert all(abs(v - 1) < tol for v in var), var


def test_phase_balanced_regions_match_whole_fill():
    whole = varinit.xavier_uniform_(np.empty((6, 4, 5, 3), np.float32), layer="conv_transpose", stride=(2, 3),
                                    phase_balanced=True, generator=9)
    block = np.empty((6, 4, 2, 3), np.float32)
    varinit.xavier_uniform_(block, layer="conv_transpose", stride=(2, 3), phase_balanced=True, generator=9,
                            global_shape=(6, 4, 5, 3), start=(0, 0, 3, 0))
    np.testing.assert_array_equal(block, whole[:, :, 3:5])
    # with k a multiple of s the multipliers are all 1
    np.testing.assert_array_equal(varinit.fan_rules.phase_scale((4, 6), (2, 3)), np.ones((4, 6)))
    # mean squared multiplier is 1 when k >= s: the overall weight variance is unchanged
    assert np.mean(varinit.fan_rules.phase_scale((5, 3), (2, 2), dilation=(1, 1)) ** 2) == pytest.approx(1)
    # dilation is accepted for conv layers (no fan change) and drives the phases
    plain = varinit.kaiming_normal_(np.empty((4, 4, 3, 3)), layer="conv", dilation=(2, 2), generator=1)
    np.testing.assert_array_equal(plain, varinit.kaiming_normal_(np.empty((4, 4, 3, 3)), layer="conv", generator=1))
    # k = 3, s = 2, d = 2: all taps land on phase 0 (odd outputs get none), so each of
    # them gets (k/s)/3 = 0.5 of the variance: the even outputs then have variance 1
    np.testing.assert_allclose(varinit.fan_rules.phase_scale((3,), 2, dilation=2) ** 2, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="dilation applies to layer='conv' or 'conv_transpose'"):
        varinit.kaiming_normal_(np.empty((4, 4)), dilation=2)
    with pytest.raises(ValueError, match="phase_balanced=True applies to layer='conv_transpose'"):
        varinit.kaiming_normal_(np.empty((4, 4, 3, 3)), layer="conv", phase_balanced=True)


def reached_phases(k, s, d):
    """The output phases the taps of one axis land on, counted tap by tap."""
    return len({(d * j) % s for j in range(k)})


def test_phase_balanced_needs_every_phase_reached():
    # Accepted exactly when the taps reach all s phases; then the mean squared multiplier
    # is 1 (He's variance kept). Refused otherwise: the unreached phases stay at zero and
    # the multipliers would leave reached / s of the variance.
    for k in range(1, 9):
        for s in range(1, 5):
            for d in range(1, 5):
                factors = varinit.fan_rules.phase_scale((k,), s, dilation=d)
                reached = reached_phases(k, s, d)
                assert np.mean(factors ** 2) == pytest.approx(reached / s, rel=1e-12)
                if reached == s:
                    varinit.fan_rules.check_phase_balanced((k,), s, d)
                else:
                    with pytest.raises(ValueError, match="phase_balanced"):
                        varinit.fan_rules.check_phase_balanced((k,), s, d)


@pytest.mark.parametrize("kernel,stride,dilation", [
    ((3, 3), 2, 2),            # gcd 2: every tap on the even outputs (a quarter of He's variance)
    ((4, 4), 2, (1, 2)),       # one axis only
    ((6,), 4, 2),              # gcd 2 with k > s: phases 0 and 2 only
    ((1, 1), 2, 1),            # a kernel smaller than the stride
])
def test_phase_balanced_refused_before_any_write(kernel, stride, dilation):
    g = varinit.Generator(5)
    w = np.full((4, 4) + kernel, 7.0, np.float32)
    with pytest.raises(ValueError, match=r"phase_balanced=True.*stride \d+ and dilation \d+") as info:
        varinit.kaiming_normal_(w, layer="conv_transpose", stride=stride, dilation=dilation,
                                phase_balanced=True, generator=g)
    assert "output phases" in str(info.value)
    assert (w == 7.0).all() and g.get_state() == varinit.Generator(5).get_state()
    # without balancing the layer is filled as any other (the zero phases are the layer's own)
    varinit.kaiming_normal_(w, layer="conv_transpose", stride=stride, dilation=dilation, generator=g)
    assert not (w == 7.0).any()


def test_fused_qkv_and_lstm_blocks():
    embed = 256
    mha = nn.MultiheadAttention(embed, 8)
    assert varinit.fans(mha.in_proj_weight.shape, blocks=3) == (embed, embed)
    varinit.xavier_normal_(mha.in_proj_weight, blocks=3, generator=10)
    w = mha.in_proj_weight.detach().numpy()
    n = w.size // 3
    for block in np.split(w, 3):  # Var = 2 / (E + E) per block; 6 sigma of sqrt(2 / n)
        assert abs(block.var() * embed - 1) < 6 * math.sqrt(2 / n)
    # torch's xavier counts fan_out = 3E: variance 2 / (4E), half the right value
    hidden = 128
    lstm = nn.LSTM(64, hidden)
    assert varinit.fans(lstm.weight_hh_l0.shape, blocks=4) == (hidden, hidden)
    assert varinit.fans(lstm.weight_ih_l0.shape, blocks=4) == (64, hidden)
    varinit.orthogonal_(lstm.weight_hh_l0, blocks=4, generator=11)
    w = lstm.weight_hh_l0.detach().double().numpy()
    blocks = np.split(w, 4)
    for b in blocks:
        np.testing.assert_allclose(b @ b.T, np.eye(hidden), atol=1e-5)
    assert not np.allclose(blocks[0], blocks[1])
    np.testing.assert_allclose(w.T @ w, 4 * np.eye(hidden), atol=1e-4)   # 4 stacked orthogonals
    varinit.orthogonal_(lstm.weight_hh_l0, generator=11)                  # one (4H, H) matrix instead
    w = lstm.weight_hh_l0.detach().double().numpy()
    np.testing.assert_allclose(w.T @ w, np.eye(hidden), atol=1e-5)
    assert np.abs(w[:hidden] @ w[:hidden].T - np.eye(hidden)).max() > 0.1
    gru = nn.GRU(64, hidden)
    assert varinit.fans(gru.weight_hh_l0.shape, blocks=3) == (hidden, hidden)
    varinit.orthogonal_(gru.weight_hh_l0, blocks=3, generator=14)
    for b in np.split(gru.weight_hh_l0.detach().double().numpy(), 3):
        np.testing.assert_allclose(b @ b.T, np.eye(hidden), atol=1e-5)
