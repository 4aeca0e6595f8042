"""Architecture recipes: depth scaling, zero/identity starts, attention, muP, whitening,
delta-orthogonal, head biases.

Empirical variances of n iid values: relative spread <= sqrt(2 / n); 6 of those bound a
correct implementation's error with failure probability < 1e-8.
"""
import math

import numpy as np
import pytest

import varinit

torch = pytest.importorskip("torch")


def test_depth_scale_formulas():
    assert varinit.recipes.depth_scale("gpt2", 12) == pytest.approx(1 / math.sqrt(24), rel=1e-15)
    assert varinit.recipes.depth_scale("fixup", 16, layers_per_branch=2) == pytest.approx(16 ** -0.5, rel=1e-15)
    assert varinit.recipes.depth_scale("fixup", 16, layers_per_branch=3) == pytest.approx(16 ** -0.25, rel=1e-15)
    t = varinit.recipes.depth_scale("t-fixup", 6)
    assert t == (pytest.approx(0.67 * 6 ** -0.25), pytest.approx(54 ** -0.25), pytest.approx(54 ** -0.25))
    assert varinit.recipes.depth_scale("t-fixup", 6, num_decoder_layers=3).decoder == pytest.approx(27 ** -0.25)
    single = varinit.recipes.depth_scale("deepnorm", 100)
    assert single == (pytest.approx(200 ** 0.25), pytest.approx(800 ** -0.25))
    both = varinit.recipes.depth_scale("deepnorm", 18, num_decoder_layers=18)
    assert both.encoder == (pytest.approx(0.81 * (18 ** 5) ** (1 / 16)), pytest.approx(0.87 * (18 ** 5) ** (-1 / 16)))
    assert both.decoder == (pytest.approx(54 ** 0.25), pytest.approx(216 ** -0.25))
    with pytest.raises(ValueError, match="layers_per_branch must be an integer >= 2"):
        varinit.recipes.depth_scale("fixup", 10, layers_per_branch=1)
    with pytest.raises(ValueError, match="scheme must be one of"):
        varinit.recipes.depth_scale("gpt3", 10)
    with pytest.raises(ValueError, match="num_layers must be an integer >= 1"):
        varinit.recipes.depth_scale("gpt2", 0)
    with pytest.raises(TypeError, match="num_layers must be an integer"):
        varinit.recipes.depth_scale("gpt2", 12.0)


def test_multi_branch_merge_keeps_unit_variance():
    branches, width, batch = 4, 256, 2048
    s = varinit.recipes.branch_scale(branches)
    x = np.random.default_rng(0).standard_normal((batch, width))
    g = varinit.Generator(30)
    total = sum(x @ (varinit.kaiming_normal_(np.empty((width, width)), nonlinearity="linear", generator=g) * s).T
                for _ in range(branches))
    # one draw of B*width*width weights, batch*width outputs: 6 * (sqrt(2/(B n^2)) + sqrt(2/(batch n)))
    assert abs(float(np.mean(total ** 2)) - 1) < 6 * (math.sqrt(2 / (branches * width ** 2)) + math.sqrt(2 / (batch * width)))


def test_zero_starts_make_residual_blocks_identities():
    block = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    varinit.recipes.zero_branch_output_(block[2])
    x = torch.randn(8, 32)
    with torch.no_grad():
        assert torch.equal(x + block(x), x)
    bn_block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8))
    torch.nn.init.normal_(bn_block[1].bias, 0.0, 0.0)
    varinit.recipes.zero_gamma_(bn_block[1])
    x = torch.randn(4, 8, 6, 6)
    assert torch.equal(x + bn_block(x), x)
    assert torch.all(bn_block[1].weight == 0)
    w = varinit.recipes.zero_branch_output_(np.ones((3, 3)))
    assert not w.any()
    with pytest.raises(TypeError, match="layer must be an array, a tensor, or a module with a .weight"):
        varinit.recipes.zero_branch_output_(object())


def test_identity_init_passes_inputs_and_adds_seeded_noise():
    w = varinit.recipes.identity_(np.empty((64, 48)), noise_std=0.0)
    np.testing.assert_array_equal(w, np.eye(64, 48))
    noisy = varinit.recipes.identity_(np.empty((256, 256)), noise_std=0.01, generator=31)
    noise = noisy - np.eye(256)
    assert abs(noise.std() / 0.01 - 1) < 6 * math.sqrt(1 / noise.size)   # std: spread sqrt(1/(2n))
    np.testing.assert_array_equal(noisy, varinit.recipes.identity_(np.empty((256, 256)), 0.01, generator=31))
    conv = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
    varinit.recipes.identity_(conv.weight)
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        assert torch.allclose(conv(x), x)


def test_attention_logits_have_the_target_variance():
    # 16 heads x (256 x 256) logits; the head-average's relative spread over 30 seeds
    # was 0.8 %, so 5 % is > 6 spreads. Inputs of variance 2, target 4.
    d_model, d_head, tokens, heads = 256, 64, 256, 16
    target, input_var = 4.0, 2.0
    rng = np.random.default_rng(1)
    x = rng.standard_normal((tokens, d_model)) * math.sqrt(input_var)
    y = rng.standard_normal((tokens, d_model)) * math.sqrt(input_var)
    g = varinit.Generator(32)
    for scaled in (True, False):
        variances = []
        for _ in range(heads):
            wq = varinit.recipes.attention_qk_(np.empty((d_head, d_model)), d_head, target, input_var, scaled, generator=g)
            wk = varinit.recipes.attention_qk_(np.empty((d_head, d_model)), d_head, target, input_var, scaled, generator=g)
            logits = (x @ wq.T) @ (y @ wk.T).T / (math.sqrt(d_head) if scaled else 1.0)
            variances.append(logits.var())
        assert np.mean(variances) == pytest.approx(target, rel=0.05)
    assert varinit.recipes.attention_qk_std(512, 64) == pytest.approx(1 / math.sqrt(512))  # LeCun at T = v = 1
    # a packed in_proj of torch's MultiheadAttention: fill the Q and K row blocks
    mha = torch.nn.MultiheadAttention(d_model, d_model // d_head)
    varinit.recipes.attention_qk_(mha.in_proj_weight[:d_model], d_head, generator=33)
    varinit.recipes.attention_qk_(mha.in_proj_weight[d_model:2 * d_model], d_head, generator=34)
    block = mha.in_proj_weight[:2 * d_model].detach().numpy()
    assert abs(block.var() * d_model - 1) < 6 * math.sqrt(2 / block.size)
    with pytest.raises(ValueError, match="target_logit_var must be a finite number > 0"):
        varinit.recipes.attention_qk_std(512, 64, target_logit_var=0)
    with pytest.raises(TypeError, match="d_head must be an integer"):
        varinit.recipes.attention_qk_std(512, 64.0)


def test_mup_scales_and_init():
    base, width = 128, 512
    assert varinit.recipes.mup_scales("input", base, width, "sgd") == (1.0, 4.0)
    assert varinit.recipes.mup_scales("input", base, width, "adam") == (1.0, 1.0)
    assert varinit.recipes.mup_scales("hidden", base, width, "sgd") == (1.0, 1.0)
    assert varinit.recipes.mup_scales("hidden", base, width, "adam") == (1.0, 0.25)
    assert varinit.recipes.mup_scales("output", base, width, "sgd") == (0.25, 0.25)
    assert varinit.recipes.mup_scales("output", base, width, "adam") == (0.25, 0.25)
    hidden = varinit.recipes.mup_init_(np.empty((width, width)), "hidden", base, width, gain=math.sqrt(2), generator=35)
    assert abs(hidden.var() * width / 2 - 1) < 6 * math.sqrt(2 / hidden.size)
    # readout (10, width): Var = 1 / fan_in^2 * base -> base / width^2
    out = varinit.recipes.mup_init_(np.empty((4096, width)), "output", base, width, generator=36)
    assert abs(out.var() * width ** 2 / base - 1) < 6 * math.sqrt(2 / out.size)
    # at the base width muP is the standard 1/fan_in init
    same = varinit.recipes.mup_init_(np.empty((4096, base)), "output", base, base, generator=37)
    assert abs(same.var() * base - 1) < 6 * math.sqrt(2 / same.size)
    with pytest.raises(ValueError, match="kind must be one of"):
        varinit.recipes.mup_scales("readout", base, width)


def test_whitening_init_gives_unit_output_variance_on_correlated_inputs():
    d, units, batch = 64, 2048, 4096
    rng = np.random.default_rng(2)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = np.geomspace(0.01, 10.0, d)
    cov = (basis * spectrum) @ basis.T
    w = varinit.recipes.whitening_(np.empty((units, d)), cov, generator=38)
    # E[W Sigma W^T] = I: exact output second moments per unit, no input sampling needed
    per_unit = np.einsum("ij,jk,ik->i", w, cov, w)
    # w_i Sigma w_i^T ~ chi^2_d / d: mean over units has relative spread sqrt(2 / (d units))
    assert abs(per_unit.mean() - 1) < 6 * math.sqrt(2 / (d * units))
    # the rows' covariance is Sigma^-1 / d: relative Frobenius error of the sample
    # covariance measured 0.096 +- 0.0044 over 20 seeds; 0.15 is > 12 spreads above
    # (a wrong power of Sigma gives errors near 1)
    rows_cov = w.T @ w / units
    target = np.linalg.inv(cov) / d
    assert np.linalg.norm(rows_cov - target) / np.linalg.norm(target) < 0.15
    # with real correlated inputs
    x = rng.standard_normal((batch, d)) @ (basis * np.sqrt(spectrum)).T
    y = x @ w.T
    assert abs(float(np.mean(y ** 2)) - 1) < 0.05   # spread over 20 seeds: 0.004
    # a plain 1/d init is off by tr(Sigma)/d
    lecun = varinit.normal_(np.empty((units, d)), 0.0, 1 / math.sqrt(d), generator=39)
    plain = np.einsum("ij,jk,ik->i", lecun, cov, lecun).mean()
    assert plain == pytest.approx(np.trace(cov) / d, rel=0.05) and abs(plain - 1) > 0.5
    # (in, out) layout
    w_t = varinit.recipes.whitening_(np.empty((d, units)), cov, generator=38, in_axis=0)
    np.testing.assert_allclose(w_t, w.T)
    with pytest.raises(ValueError, match="positive definite"):
        varinit.recipes.whitening_(np.empty((4, 3)), np.diag([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"cov must have shape \(3, 3\)"):
        varinit.recipes.whitening_(np.empty((4, 3)), np.eye(4))


def test_delta_orthogonal_preserves_norms_through_a_deep_cnn():
    c, depth = 32, 20
    convs = [torch.nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(depth)]
    g = varinit.Generator(40)
    for conv in convs:
        varinit.recipes.delta_orthogonal_(conv.weight, generator=g)
    w = convs[0].weight.detach().numpy()
    assert not w[:, :, [0, 2]].any() and not w[:, :, :, [0, 2]].any()
    np.testing.assert_allclose(w[:, :, 1, 1] @ w[:, :, 1, 1].T, np.eye(c), atol=1e-5)
    x = torch.randn(2, c, 8, 8)
    y = x
    with torch.no_grad():
        for conv in convs:
            y = conv(y)
    # per position, every layer applies an orthogonal matrix: channel norms are kept
    torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1), rtol=1e-4, atol=1e-4)
    torch.manual_seed(5)   # governs torch targets when generator=None, as for every fill
    a = varinit.recipes.delta_orthogonal_(torch.empty(8, 8, 3), generator=None).clone()
    torch.manual_seed(5)
    assert torch.equal(a, varinit.recipes.delta_orthogonal_(torch.empty(8, 8, 3), generator=None))
    wide = varinit.recipes.delta_orthogonal_(np.empty((64, 16, 3, 3, 3)), gain=2.0, generator=41)
    center = wide[:, :, 1, 1, 1]
    np.testing.assert_allclose(center.T @ center, 4 * np.eye(16), atol=1e-12)


def test_head_biases():
    b = varinit.recipes.optimistic_bias_(np.empty(3), max_reward=1.0, discount=0.99)
    np.testing.assert_allclose(b, 100.0)
    np.testing.assert_array_equal(varinit.recipes.optimistic_bias_(np.empty(2), 5.0), [5.0, 5.0])
    p = varinit.recipes.prior_bias_(torch.empty(4), 0.01)
    torch.testing.assert_close(torch.sigmoid(p), torch.full((4,), 0.01))
    with pytest.raises(ValueError, match=r"discount must be in \[0, 1\)"):
        varinit.recipes.optimistic_bias_(np.empty(1), max_reward=1.0, discount=1.0)
    with pytest.raises(ValueError, match="either value or max_reward"):
        varinit.recipes.optimistic_bias_(np.empty(1))
