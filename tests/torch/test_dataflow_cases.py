"""Dataflow init on the kinds of model the first zoo missed: outputs read
through ReLU or pooling, layer scales at residual branch ends, windows padded
with zeros, attention written out as softmax(q k^T) @ v, layers called as
functions with a module's weight (the measured pass), BatchNorm ResNets'
gradients (norm-ended branches, projection shortcuts), and what timm's models
write: a class token built by its branches, a stream fed from another (TNT),
a branch added again with shared weights (CoaT), affine maps by addcmul,
stacks, gates of constant parameters, and bounded outputs; and what the
second sweep found: SELU with AlphaDropout, integer index arithmetic, scores
the model scales flatter (MaxViT), and a router's rows written back."""
import math
import warnings
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import varinit
from varinit.torch.dataflow import plan
from varinit.torch.moment_rules import matmul
from varinit.torch.refine import Target, correction_factors
from zoo import BottleneckResNet, LayerScaleNet, ResNet, TinyGPT, WindowBlock, WindowTransformer, profile, verdict


def _init(model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return varinit.torch.init_module(model, x, generator=0, **kwargs)


class ReluOut(nn.Module):
    """Linear layers with ReLU, and the model's output read through a last ReLU."""

    def __init__(self, tail=nn.ReLU()):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(256, 256) for _ in range(4))
        self.tail = tail

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.tail(self.layers[-1](x))


def _layer_stds(model, x):
    outs = []
    hooks = [layer.register_forward_hook(lambda m, a, o: outs.append(float(o.std()))) for layer in model.layers]
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    return outs, float(y.std())


def _recorded(model, x, modules, read, inputs=False):
    """read(tensor) of each module's output (or first input), in call order, over one forward pass."""
    values = []
    hooks = [m.register_forward_pre_hook(lambda m, a: values.append(read(a[0]))) if inputs else
             m.register_forward_hook(lambda m, a, o: values.append(read(o))) for m in modules]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return values


def test_an_output_read_through_relu_meets_its_layer_halfway():
    # A ReLU's output has variance 0.34 of its second moment (std 0.58 for a unit input):
    # the last layer moves halfway in log, x1.31 in std, and the output std goes to 0.76.
    torch.manual_seed(0)
    model, x = ReluOut(), torch.randn(512, 256)
    report = _init(model, x)
    stds, out = _layer_stds(model, x)
    half = (0.5 - 0.5 / math.pi) ** -0.25
    assert half == pytest.approx(1.31, abs=0.01)
    assert stds[-1] == pytest.approx(half, rel=0.06)
    assert all(s == pytest.approx(1.0, rel=0.06) for s in stds[:-1])
    # the output itself: 0.58 without the gain; the measured 0.81 is a little above
    # 1.31 * 0.58 = 0.76 because the ReLU sees the offsets each unit's input mean gives
    assert 0.7 <= out <= 0.9
    assert "halfway to the model's output" in {r.name: r.rule for r in report}["layers.3.weight"]


@pytest.mark.parametrize("tail", [nn.Identity(), nn.Sigmoid(), nn.Tanh()], ids=["linear", "sigmoid", "tanh"])
def test_an_output_not_positively_homogeneous_in_the_last_layer_keeps_the_target(tail):
    torch.manual_seed(0)
    model, x = ReluOut(tail), torch.randn(512, 256)
    report = _init(model, x)
    stds, _ = _layer_stds(model, x)
    assert stds[-1] == pytest.approx(1.0, rel=0.06)
    assert "halfway" not in {r.name: r.rule for r in report}["layers.3.weight"]


class SummedHeads(nn.Module):
    """N-BEATS' doubly residual stacking (Oreshkin et al. 2020): each block subtracts its
    backcast from the input and adds its forecast to the output, a sum started from 0, or
    from zeros made in forward on the CPU (`"zeros"`) or on the input's device (`"new_zeros"`)."""

    def __init__(self, blocks=8, length=48, horizon=12, width=128, start="0"):
        super().__init__()
        self.start, self.horizon = start, horizon
        self.bodies = nn.ModuleList(nn.Sequential(nn.Linear(length, width), nn.ReLU(), nn.Linear(width, width),
                                                  nn.ReLU()) for _ in range(blocks))
        self.backcasts = nn.ModuleList(nn.Linear(width, length) for _ in range(blocks))
        self.forecasts = nn.ModuleList(nn.Linear(width, horizon) for _ in range(blocks))

    def forward(self, x):
        forecast = {"0": 0, "zeros": torch.zeros(x.shape[0], self.horizon),
                    "new_zeros": x.new_zeros(x.shape[0], self.horizon)}[self.start]
        for body, backcast, head in zip(self.bodies, self.backcasts, self.forecasts):
            h = body(x)
            x = x - backcast(h)
            forecast = forecast + head(h)
        return forecast


@pytest.mark.parametrize("start", ["0", "zeros", "new_zeros"])
def test_an_output_summed_from_layers_meets_them_halfway(start):
    # the 8 forecasts each at unit variance summed to std 2.3 (no rule read through the sum;
    # the backcasts leave them a little anticorrelated): halfway in log puts each at
    # 8^(-1/4) = 0.59, and the output at 1.38; a sum started from torch.zeros was no
    # homogeneous function of the heads, and stayed at std 2.3
    torch.manual_seed(0)
    model, x = SummedHeads(start=start), torch.randn(256, 48)
    report = _init(model, x)
    rules = {r.name: r.rule for r in report}
    assert all("halfway to the model's output" in rules[f"forecasts.{i}.weight"] for i in range(8))
    assert "halfway" not in rules["backcasts.0.weight"]
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 1.8, v
    stds = _recorded(model, x, list(model.forecasts), lambda t: float(t.std()))
    assert all(s == pytest.approx(8 ** -0.25, rel=0.06) for s in stds), stds


class MixtureDensity(nn.Module):
    """A mixture density network's heads (Bishop 1994): mixing weights by softmax, positive
    scales by exp, means, on a tanh trunk."""

    def __init__(self, hidden=128, k=5):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.pi, self.sigma, self.mu = nn.Linear(hidden, k), nn.Linear(hidden, k), nn.Linear(hidden, k)

    def forward(self, x):
        h = self.trunk(x)
        return F.softmax(self.pi(h), dim=-1), torch.exp(self.sigma(h)), self.mu(h)


def test_an_output_an_activation_amplifies_meets_its_layer_in_least_squares():
    # exp of a unit-variance layer has variance e (e - 1) = 4.7 (std 2.16); the factor f on the
    # layer's second moment minimizing (ln f)^2 + (ln Var exp)^2 is 0.57: output std 1.17
    torch.manual_seed(0)
    model, x = MixtureDensity(), torch.randn(512, 4)
    report = _init(model, x)
    rules = {r.name: r.rule for r in report}
    assert "exp of it is the model's output" in rules["sigma.weight"], rules["sigma.weight"]
    assert "model's output" not in rules["mu.weight"] and "model's output" not in rules["pi.weight"]
    (layer,) = _recorded(model, x, [model.sigma], lambda t: float(t.std()))
    assert layer == pytest.approx(math.sqrt(0.572), rel=0.05)
    with torch.no_grad():
        sigma = model(x)[1]
    assert 0.8 <= float(sigma.std()) <= 1.4   # 1.17 for a Gaussian input; 2.16 at the layer's unit target


def test_the_output_gain_is_capped_and_the_note_says_so():
    class Pooled(nn.Module):
        # relu then a mean over 4096 positions: what is left varies little, and
        # reaching unit variance would take the conv far off the other layers
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)

        def forward(self, x):
            return F.relu(self.conv(x)).mean((2, 3))

    torch.manual_seed(0)
    x = torch.randn(16, 3, 64, 64)
    report = _init(Pooled(), x, measure=False)
    (conv,) = [r for r in report if r.name == "conv.weight"]
    nu = float(x.double().pow(2).mean())
    assert conv.std == pytest.approx(1.8 * math.sqrt(1.0 / (3 * nu)), rel=1e-9)   # x1.8, the cap
    assert any("beyond the 1.8 allowed" in n for n in report.notes)


@pytest.mark.parametrize("reshaped", [False, True])
def test_layer_scales_end_their_branches_and_bound_the_stream(reshaped):
    # reshaped: timm's ConvNeXt reads its (C,) scale as gamma.reshape(1, -1, 1, 1), which was
    # "read directly by reshape" and left at 1e-6 (grad 3.8e5 on timm's convnext_atto)
    torch.manual_seed(0)
    model, x = LayerScaleNet(reshaped=reshaped), torch.randn(8, 3, 32, 32)
    report = _init(model, x)
    rules = {r.name: r.rule for r in report}
    for k in range(8):
        scale = model.blocks[k].layer_scale
        assert "layer scale of a residual branch" in rules[f"blocks.{k}.layer_scale"]
        value = float(scale.detach().flatten()[0])
        assert torch.all(scale == value) and 0.2 < value < 1.0
    # the stream grows within its budget (4-fold in second moment), and the gradient at
    # the stem stays within 4x of the last block's: torch's 1e-6 gave 1e6
    streams = []
    hooks = [b.register_forward_hook(lambda m, a, o: streams.append(float(o.pow(2).mean()))) for b in model.blocks]
    torch.manual_seed(1)
    v = verdict(*profile(model, x))
    for h in hooks:
        h.remove()
    assert streams[-1] / float(model.stem(x).pow(2).mean()) <= 4.5
    assert 0.25 <= v["grad_ratio"] <= 4.0 and v["act_ratio"] <= 2.0, v


@pytest.mark.parametrize("residual, value", [("zero_gamma", 0.0), ("none", 1.0)])
def test_layer_scales_follow_the_residual_rule(residual, value):
    torch.manual_seed(0)
    model, x = LayerScaleNet(blocks=2), torch.randn(4, 3, 32, 32)
    _init(model, x, residual=residual)
    assert all(torch.all(b.layer_scale == value) for b in model.blocks)


class ReZeroBlock(nn.Module):
    """ReZero (Bachlechner et al. 2020): x + alpha f(x) with one scalar alpha, zero at
    torch's init; `shared`: one alpha for the attention and the MLP branch, as its
    reference code has it, else one each (SkipInit's, De & Smith 2020)."""

    def __init__(self, width=64, shared=True):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.beta = self.alpha if shared else nn.Parameter(torch.zeros(()))

    def forward(self, x):
        x = x + self.alpha * self.attention(x, x, x, need_weights=False)[0]
        return x + self.beta * self.mlp(x)


@pytest.mark.parametrize("shared", [True, False], ids=["one_alpha", "alpha_and_beta"])
def test_a_scalar_gain_of_residual_branches_is_their_layer_scale(shared):
    # ReZero's alpha was "untouched: read directly by mul": kept at 0, its branches' layers got
    # no gradient (first/last ratio inf, anyinit too); now it is set like a layer scale, and
    # residual="zero_gamma" keeps the identity start
    torch.manual_seed(0)
    model = nn.Sequential(*[ReZeroBlock(shared=shared) for _ in range(6)], nn.Linear(64, 10))
    x = torch.randn(8, 16, 64, generator=torch.Generator().manual_seed(0))
    report = _init(model, x)
    rules = {r.name: r.rule for r in report}
    for k in range(6):
        for name in ("alpha",) if shared else ("alpha", "beta"):
            assert "layer scale of a residual branch" in rules[f"{k}.{name}"]
            assert 0.2 < abs(float(getattr(model[k], name))) < 1.0
    torch.manual_seed(1)
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2 and 0.5 <= v["output_std"] <= 2 and 0.25 <= v["grad_ratio"] <= 4, v
    _init(model, x, residual="zero_gamma")
    assert all(float(block.alpha) == 0.0 and float(block.beta) == 0.0 for block in model[:6])


def test_a_gain_parameter_that_is_not_a_branch_end_is_left_as_it_is():
    class Gain(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)
            self.gain = nn.Parameter(torch.full((16,), 0.5))

        def forward(self, x):
            return self.fc(x) * self.gain     # no residual: the model's own scale

    model = Gain()
    report = _init(model, torch.randn(64, 16))
    assert {r.name: r.rule for r in report}["gain"].startswith("untouched")
    assert torch.all(model.gain == 0.5)


def test_padding_that_keeps_the_features_leaves_the_real_positions_moments():
    # Swin pads a map to whole windows: a 5x5 map in 4x4 windows is 64 positions of which
    # 25 are real. The qkv layer acts per position, so it is solved for the real ones
    # (nu_in 1, not 25/64), and the output after the crop keeps unit scale.
    torch.manual_seed(0)
    model, x = WindowTransformer(blocks=1), torch.randn(8, 3, 20, 20)
    p = plan(model, x)
    qkv = p.params["blocks.0.qkv.weight"]
    assert qkv.std == pytest.approx(1.0 / math.sqrt(64 * 1.0), rel=0.05)


def test_padding_of_the_features_dilutes_the_next_layer_s_input():
    class PadFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(32, 8)

        def forward(self, x):
            return self.fc(F.pad(x, (0, 16)))   # 16 features, 16 zeros after them

    x = torch.randn(256, 16)
    p = plan(PadFeatures(), x)
    nu = float(x.double().pow(2).mean()) / 2.0
    assert p.params["fc.weight"].std == pytest.approx(math.sqrt(1.0 / (32 * nu)), rel=1e-6)


def test_the_window_transformer_keeps_its_forward_signal():
    torch.manual_seed(0)
    model, x = WindowTransformer(), torch.randn(8, 3, 20, 20)
    _init(model, x)
    torch.manual_seed(1)
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


def test_a_padded_window_s_attention_branch_meets_its_share_of_the_stream():
    # The windows' zero padding makes zero queries, whose outputs (a uniform average of the
    # values) are small here, where tokens share little: the attention output keeps about the
    # queries' share of real positions. Measured over the padded tensor without it, the branch
    # end read a third of its real rows' second moment and was scaled up to 2.2 times its share.
    torch.manual_seed(0)
    model, x = WindowTransformer(), torch.randn(8, 3, 20, 20)
    rules = {r.name: r.rule for r in _init(model, x)}
    alpha = float(rules["blocks.0.proj.weight"].split("residual branch end: ")[1].split(" ")[0])
    block, seen = model.blocks[0], {}
    attention = block.attention

    def stream(module, args):
        seen.setdefault("stream", float(args[0].double().pow(2).mean()))

    def branch(h):
        out = attention(h)
        seen.setdefault("branch", float(out.double().pow(2).mean()))
        return out

    block.register_forward_pre_hook(stream)
    block.attention = branch
    with torch.no_grad():
        model(x)
    assert 0.6 <= seen["branch"] / (alpha * seen["stream"]) <= 1.5, (seen, alpha)


class OffsetWindowBlock(nn.Module):
    """A window block on tokens plus an offset every position shares (a parameter the
    init leaves as it is), of second moment `shared` against the tokens' 1 - shared."""

    def __init__(self, d, shared):
        super().__init__()
        self.offset = nn.Parameter(math.sqrt(shared) * torch.randn(d, generator=torch.Generator().manual_seed(2)))
        self.scale = math.sqrt(1.0 - shared)
        self.block = WindowBlock(d, 3, 7)

    def forward(self, x):
        return self.block(self.scale * x + self.offset)


def _branch_and_stream(model, x):
    with torch.no_grad():
        stream = model.scale * x + model.offset
        branch = model.block.attention(model.block.norm1(stream))
    return float(branch.double().pow(2).mean()), float(stream.double().pow(2).mean())


@pytest.mark.parametrize("shared", [0.0, 0.7])
def test_a_small_map_in_large_windows_meets_its_share_of_the_stream(shared):
    # Swin's third stage at 64 x 64: a 4 x 4 map in 7 x 7 windows, 16 real positions of 49.
    # Where the tokens share most of their features (kappa), a padded query's row, the values'
    # mean over the window, is about as large as a real query's: the measured pass, which
    # averages the padding in, had scaled the branch to 0.45 of its share; and a real query's
    # weights on the 16 real keys add to about their share of the keys, not one, so the solve
    # alone had put it at 3 times its share.
    torch.manual_seed(0)
    model, x = OffsetWindowBlock(96, shared), torch.randn(8, 4, 4, 96)
    for measure, low, high in [(False, 0.7, 1.4), (True, 0.8, 1.25)]:
        rules = {r.name: r.rule for r in _init(model, x, measure=measure)}
        alpha = float(rules["block.proj.weight"].split("residual branch end: ")[1].split(" ")[0])
        branch, stream = _branch_and_stream(model, x)
        assert low <= branch / (alpha * stream) <= high, (measure, branch, alpha, stream)


def _position_shared(t, axes):
    """The second moment of the part of `t` every position (over `axes`) shares, with the
    finite count's share of the rest taken out."""
    t = t.double()
    count = math.prod(t.shape[a] for a in axes)
    mean_sq = float(t.mean(axes, keepdim=True).pow(2).mean())
    second = float(t.pow(2).mean())
    return (mean_sq - second / count) / (1.0 - 1.0 / count)


class ScaledBranch(nn.Module):
    """conv, ReLU, conv, times a layer scale per channel (C, 1, 1) and an all-ones mask per
    example, then a mean over the map's positions: ConvNeXt's branch end and a stochastic
    depth mask, written out."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(8, 64, 3, padding=1), nn.Conv2d(64, 64, 1)
        self.gamma = nn.Parameter(torch.full((64, 1, 1), 0.5))

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        return y * self.gamma * torch.ones(x.shape[0], 1, 1, 1)


def test_a_scale_shared_by_every_position_keeps_the_common_part():
    # ReLU's mean makes the second conv's outputs share a part over positions (kappa). A layer
    # scale of shape (C, 1, 1) and a per-example mask scale it by their second moment; the
    # product's rule took their mean^2 apart (0 for a mask of ones: kappa lost after every
    # stochastic-depth branch, so Swin's window averages were predicted 30 times too small).
    torch.manual_seed(0)
    model, x = ScaledBranch(), torch.randn(16, 8, 12, 12)
    _init(model, x, measure=False)
    p = plan(model, x, kept={"gamma": "the test's"})
    out = p.graph.outputs[0]
    conv2 = next(n.index for n in p.graph.nodes if n.module == "conv2" and n.kind == "conv")
    assert p.common[out] == pytest.approx(0.25 * p.common[conv2], rel=1e-9)
    with torch.no_grad():
        y = model(x)
    measured = _position_shared(y, (2, 3))
    assert measured > 0.1 * float(y.double().pow(2).mean())
    # the zero padding's border taps lower ReLU's mean there: about 20% of kappa at 12 x 12
    assert p.common[out] == pytest.approx(measured, rel=0.35)


def test_dropout_passes_the_common_part_as_it_is():
    # A mask of mean one drawn per element keeps what every position shares and adds its
    # second moment position by position: kappa stays, nu doubles at p = 0.5. Taking kappa / nu
    # as kept doubled kappa, and SqueezeNet's output layer (after Dropout(0.5)) was solved
    # for a variance half the real one (output std 0.45).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 1), nn.Dropout(0.5))
    x = torch.randn(16, 8, 12, 12)
    p = plan(model, x)
    conv2 = next(n.index for n in p.graph.nodes if n.module == "2")
    dropout = p.graph.outputs[0]
    assert p.moments[dropout].second == pytest.approx(2.0 * p.moments[conv2].second, rel=1e-9)
    assert p.common[dropout] == pytest.approx(p.common[conv2], rel=1e-9)
    _init(model, x, measure=False)
    seen = {}
    model[2].register_forward_hook(lambda module, args, out: seen.setdefault("conv", out))
    with torch.no_grad():
        out = model(x)
    assert _position_shared(out, (2, 3)) == pytest.approx(_position_shared(seen["conv"], (2, 3)), rel=0.1)


@pytest.mark.parametrize("mean", [0.0, 1.0])
def test_written_out_attention_passes_the_values_common_part(mean):
    # softmax(q k^T) @ v with near-uniform weights over T keys: each output is close to
    # the mean of the values, so its second moment is mu^2 + (nu - mu^2) / T, not nu / T
    class Written(nn.Module):
        def forward(self, q, k, v):
            return torch.softmax(q @ k.transpose(-2, -1) * 0.1, dim=-1) @ v

    torch.manual_seed(0)
    q, k = torch.randn(64, 16, 8), torch.randn(64, 16, 8)
    v = torch.randn(64, 16, 8) + mean
    p = plan(Written(), (q, k, v))
    out = p.moments[p.graph.outputs[0]]
    with torch.no_grad():
        y = Written()(q, k, v).double()
    measured = float(y.pow(2).mean())
    assert out.second == pytest.approx(measured, rel=0.05)
    assert out.mean == pytest.approx(float(y.mean()), abs=0.05)


def test_the_measured_pass_corrects_a_layer_called_as_a_function():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.outer = nn.Linear(16, 16), nn.Linear(16, 16)

        def forward(self, x):
            h = F.linear(x, self.inner.weight, self.inner.bias)   # never called as a module
            return self.outer(F.relu(h))

    torch.manual_seed(0)
    model, x = Functional(), torch.randn(256, 16)
    nn.init.zeros_(model.inner.bias)
    nn.init.zeros_(model.outer.bias)
    before = float(F.linear(x, model.inner.weight).double().var())   # its spread, as torch.std reads it
    inner = Target("inner.weight", "", 4.0, None, None, functional=True)
    outer = Target("outer.weight", "outer", 1.0, None, None)
    weights = [p.detach().clone() for p in model.parameters()]
    alone = correction_factors(model, x, [outer])
    factors = correction_factors(model, x, [inner, outer])
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))   # factors only
    assert factors["inner.weight"] == pytest.approx(math.sqrt(4.0 / before), rel=1e-6)
    # the layer after it saw the corrected output (relu is homogeneous, the biases zero)
    assert factors["outer.weight"] == pytest.approx(alone["outer.weight"] / factors["inner.weight"], rel=1e-6)


def test_a_functional_layer_is_a_target_of_the_measured_pass():
    torch.manual_seed(0)
    model, x = WindowTransformer(blocks=2), torch.randn(8, 3, 20, 20)
    p = plan(model, x)
    functional = {t.weight: t for t in p.measurable if t.functional}
    assert "blocks.0.qkv.weight" in functional and functional["blocks.0.qkv.weight"].goal is not None
    # the residual branch's end reads the stream at the block's next norm
    assert functional["blocks.0.proj.weight"].stream == "blocks.0.norm1"


class CausalLM(nn.Module):
    """nanoGPT's way: pre-LN blocks whose attention is written out, with a causal mask
    made in forward() by torch.ones (on the CPU whatever the input's device) and
    masked_fill(-inf) before the softmax."""

    def __init__(self, d=64, heads=4, blocks=6, vocab=100):
        super().__init__()
        self.heads = heads
        self.blocks = nn.ModuleList(nn.ModuleDict(dict(
            ln1=nn.LayerNorm(d), qkv=nn.Linear(d, 3 * d), proj=nn.Linear(d, d),
            ln2=nn.LayerNorm(d), fc1=nn.Linear(d, 4 * d), fc2=nn.Linear(4 * d, d))) for _ in range(blocks))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, x):
        b, t, d = x.shape
        mask = torch.triu(torch.ones(t, t), 1).bool()
        for block in self.blocks:
            q, k, v = block["qkv"](block["ln1"](x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)).masked_fill(mask, float("-inf"))
            x = x + block["proj"]((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))
            x = x + block["fc2"](F.gelu(block["fc1"](block["ln2"](x))))
        return self.head(self.ln(x))


@pytest.mark.parametrize("meta", [False, True], ids=["real inputs", "shapes only"])
def test_a_forward_that_cannot_run_on_meta_is_traced_on_the_real_model(meta):
    torch.manual_seed(0)
    model, x = CausalLM(), torch.randn(8, 32, 64)
    with pytest.raises(RuntimeError):
        CausalLM().to("meta")(x.to("meta"))        # the mask lands on the CPU: no meta forward
    report = _init(model, x.to("meta") if meta else x)
    assert any(n.startswith("traced on real tensors") and "RuntimeError" in n for n in report.notes)
    assert any("a causal mask" in n for n in report.notes)
    torch.manual_seed(1)
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0 and 0.25 <= v["grad_ratio"] <= 4.0, v


def test_causal_softmax_then_values_against_monte_carlo():
    class Written(nn.Module):
        def forward(self, q, k, v):
            t = q.shape[-2]
            mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=q.device), 1)
            return (q @ k.transpose(-2, -1)).masked_fill(mask, float("-inf")).softmax(-1) @ v

    torch.manual_seed(0)
    q, k, v = torch.randn(64, 32, 16) * 0.5, torch.randn(64, 32, 16) * 0.5, torch.randn(64, 32, 16) + 0.5
    p = plan(Written(), (q, k, v))
    out = p.moments[p.graph.outputs[0]]
    with torch.no_grad():
        y = Written()(q, k, v).double()
    # the causal rows average over 1..32 keys: E[sum a^2] is about H_T / T, not 1 / T
    assert out.second == pytest.approx(float(y.pow(2).mean()), rel=0.05)


def test_the_trace_on_real_tensors_leaves_buffers_and_the_random_state():
    class ItemInForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn = nn.Linear(8, 8), nn.BatchNorm1d(8)

        def forward(self, x):
            scale = float(x.abs().max().item())      # a value read from the data: no meta forward
            return self.bn(self.fc(F.dropout(x / scale, 0.5)))

    torch.manual_seed(0)
    model, x = ItemInForward(), torch.randn(32, 8)
    running = model.bn.running_mean.clone()
    state = torch.get_rng_state()
    report = _init(model, x, measure=False)
    assert any(n.startswith("traced on real tensors") for n in report.notes)
    assert torch.equal(model.bn.running_mean, running) and torch.equal(torch.get_rng_state(), state)


class AttributeState(nn.Module):
    """Meta's Llama reference code keeps its rotary table and its key cache as plain
    tensor attributes: forward moves the table to the activations' device and writes
    the keys into the cache in place, and creates a mask attribute lazily; torchvision's
    AnchorGenerator moves a list of tensors the same way."""

    def __init__(self):
        super().__init__()
        self.emb, self.proj, self.head = nn.Embedding(50, 16), nn.Linear(16, 16), nn.Linear(16, 4)
        self.table = torch.linspace(0.5, 1.5, 16)
        self.cache = torch.zeros(4, 8, 16)
        self.mask = None
        self.offsets = [torch.zeros(16), torch.ones(16)]

    def forward(self, ids):
        h = self.emb(ids)
        self.offsets = [offset.to(h.device) for offset in self.offsets]
        h = h + self.offsets[0]
        self.table = self.table.to(h.device)
        if self.mask is None:
            self.mask = torch.ones(ids.shape[-1], device=h.device)
        k = self.proj(h * self.table)
        self.cache = self.cache.to(k)
        self.cache[: k.shape[0], : k.shape[1]] = k
        return self.head(torch.relu(self.cache[: k.shape[0], : k.shape[1]]) * self.mask[:, None])


@pytest.mark.parametrize("meta", [False, True])
def test_plain_tensor_attributes_are_put_back_after_the_init(meta):
    # a trace of meta parameters left a meta table in the attribute, and every later
    # forward raised ("Cannot copy out of meta tensor"), the measured pass's first
    torch.manual_seed(0)
    model, ids = AttributeState(), torch.randint(0, 50, (4, 8))
    table, cache, offsets, first = model.table, model.cache, model.offsets, model.offsets[0]
    _init(model, ids.to("meta") if meta else ids)
    assert model.table is table and model.cache is cache and model.mask is None
    assert model.offsets is offsets and model.offsets[0] is first and not first.is_meta
    assert torch.equal(table, torch.linspace(0.5, 1.5, 16)) and not cache.any()
    assert model(ids).shape == (4, 8, 4)


class PackedLSTM(nn.Module):
    """Padded token ids and their lengths, packed for an LSTM (no meta forward: the
    lengths are read on the CPU), its last hidden state to a head."""

    def __init__(self):
        super().__init__()
        self.emb, self.lstm, self.fc = nn.Embedding(50, 16), nn.LSTM(16, 32, batch_first=True), nn.Linear(32, 4)

    def forward(self, ids, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.emb(ids), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        return self.fc(self.lstm(packed)[1][0][-1])


def test_meta_inputs_whose_zeros_the_forward_refuses_get_an_error_that_says_so():
    # zeros stand in for meta inputs where the forward cannot run on meta tensors; zero lengths
    # are refused by pack_padded_sequence, which used to surface as torch's error alone
    torch.manual_seed(0)
    model = PackedLSTM()
    ids, lengths = torch.randint(1, 50, (8, 12)), torch.randint(3, 13, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"example_inputs: the forward pass could not be traced from the shapes "
                                         r"alone: .*on zeros of the meta inputs' shapes it failed \(RuntimeError: "
                                         r"Length of all samples"):
        varinit.torch.init_module(model, (ids.to("meta"), lengths.to("meta")), generator=0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    _init(model, (ids, lengths))   # real inputs trace


def test_a_written_out_rms_norm_resets_the_scale_and_is_no_activation():
    # x * rsqrt(mean(x^2) + eps): the mean square is a statistic of 64 features, so rsqrt is
    # taken at its value (delta method), the product has unit second moment whatever x's
    # scale, and neither x^2 nor rsqrt is judged as an activation
    from zoo import WrittenRMSNorm

    class Normed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.norm, self.fc2 = nn.Linear(64, 64), WrittenRMSNorm(64), nn.Linear(64, 64)

        def forward(self, x):
            return self.fc2(self.norm(self.fc1(x)))

    x = torch.randn(256, 64) * 3.0
    p = plan(Normed(), x)
    fc2 = p.params["fc2.weight"]
    assert fc2.std == pytest.approx(1.0 / math.sqrt(64), rel=0.02)   # nu_in 1 after the norm
    assert not p.verdicts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        varinit.torch.init_module(Normed(), x, generator=0)
    assert not caught


def test_a_function_not_finite_over_the_gaussian_is_an_op_without_a_rule():
    class Root(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 16), nn.Linear(16, 16)

        def forward(self, x):
            h = self.fc1(x)
            return self.fc2(torch.sqrt(h - 0.5))   # nan below 0.5, and at the mean

    with pytest.warns(UserWarning, match="ops without a moment rule"):
        report = varinit.torch.init_module(Root(), torch.randn(64, 16), generator=0, measure=False)
    assert all(math.isfinite(r.std) for r in report if r.rule.startswith("solved"))


def test_a_stack_is_a_concatenation_along_a_new_dim():
    # timm's EVA rotates pairs with torch.stack((-x[..., 1::2], x[..., ::2]), -1): the new
    # dim (4 here) is past the operands' last, which raised an IndexError
    class Pairs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 8)

        def forward(self, x):
            h = self.fc1(x)
            h = torch.stack((-h[..., 1::2], 2.0 * h[..., ::2]), dim=-1).reshape(h.shape)
            return self.fc2(h)

    model, x = Pairs(), torch.randn(256, 16)
    p = plan(model, x)
    stack = next(n for n in p.graph.nodes if n.kind == "cat")
    parts = [p.moments[i].second for i in stack.inputs]
    assert parts[1] == pytest.approx(4.0 * parts[0])
    assert p.moments[stack.index].second == pytest.approx(sum(parts) / 2)
    _init(model, x, measure=False)
    with torch.no_grad():
        h = model.fc1(x)
        assert float(torch.stack((-h[..., 1::2], 2.0 * h[..., ::2]), -1).pow(2).mean()) == pytest.approx(
            p.moments[stack.index].second, rel=0.2)


def test_a_gate_that_is_a_function_of_a_constant_parameter_is_not_an_error():
    # ConViT's gate, sigmoid(a parameter of ones) per head: a region whose input does not
    # vary had a slope of 0 / 0 (ZeroDivisionError); it carries no draw's error
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 4)
            self.gate = nn.Parameter(torch.ones(16))

        def forward(self, x):
            g = torch.sigmoid(self.gate)
            return self.out((1.0 - g) * F.relu(self.fc1(x)) + g * F.relu(self.fc2(x)))

    model = Gated()
    report = _init(model, torch.randn(64, 16), measure=False)
    assert all(math.isfinite(r.std) for r in report if r.rule.startswith("solved"))
    assert torch.all(model.gate == 1.0)


class PositionEncoded(nn.Module):
    """CoaT's convolutional position encoding: x + dw(x) with one depthwise conv before
    each of `blocks` MLP blocks of one stream, shared by all of them or one each."""

    def __init__(self, blocks=6, shared=True, d=32):
        super().__init__()
        convs = [nn.Conv2d(d, d, 3, padding=1, groups=d)]
        self.pos = nn.ModuleList(convs * blocks if shared else convs + [
            nn.Conv2d(d, d, 3, padding=1, groups=d) for _ in range(blocks - 1)])
        self.mlps = nn.ModuleList(nn.Sequential(nn.Conv2d(d, 2 * d, 1), nn.GELU(), nn.Conv2d(2 * d, d, 1))
                                  for _ in range(blocks))
        self.stem = nn.Conv2d(3, d, 1)

    def forward(self, x):
        x = self.stem(x)
        for pos, mlp in zip(self.pos, self.mlps):
            x = x + pos(x)
            x = x + mlp(x)
        return x


@pytest.mark.parametrize("shared", [True, False])
def test_a_branch_added_again_with_the_same_weights_is_named(shared):
    # x + P(x) again and again with one P compounds along P's largest directions (CoaT's
    # stream reached std 1e3); the solve takes each branch as an independent draw
    model, x = PositionEncoded(shared=shared), torch.randn(4, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x, generator=0)
    named = [n for n in report.notes if "adds its output" in n]
    assert len(named) == (1 if shared else 0), report.notes
    if shared:
        assert "pos.0.weight adds its output 6 times along one stream" in named[0]
        assert any("adds its output 6 times" in str(w.message) for w in caught)


class AffineMLP(nn.Module):
    """ResMLP's blocks (Touvron et al. 2021): an affine map beta + alpha * x
    (torch.addcmul, timm's Affine) in place of a norm, then an MLP branch with a layer scale."""

    def __init__(self, blocks=8, d=64):
        super().__init__()
        self.alphas = nn.ParameterList(nn.Parameter(torch.full((d,), 1.5)) for _ in range(blocks))
        self.betas = nn.ParameterList(nn.Parameter(torch.full((d,), 0.5)) for _ in range(blocks))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
                                  for _ in range(blocks))
        self.scales = nn.ParameterList(nn.Parameter(torch.full((d,), 1e-4)) for _ in range(blocks))

    def forward(self, x):
        for alpha, beta, mlp, scale in zip(self.alphas, self.betas, self.mlps, self.scales):
            x = x + scale * mlp(torch.addcmul(beta, alpha, x))
        return x


def test_an_affine_map_written_with_addcmul_has_a_rule():
    # beta + alpha * x by torch.addcmul was an op without a rule: each branch was solved for
    # an assumed unit input while the stream grew, and from shapes alone timm's ResMLP had an
    # activation ratio of 314 and an output std of 315
    torch.manual_seed(0)
    model, x = AffineMLP(), torch.randn(256, 64)
    p = plan(model, x)
    first = next(n for n in p.graph.nodes if n.kind == "addcmul")
    mean, second = float(x.double().mean()), float(x.double().pow(2).mean())
    assert p.moments[first.index].second == pytest.approx(0.25 + 1.5 * mean + 2.25 * second, rel=1e-9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        varinit.torch.init_module(model, x.to("meta"), generator=0)
    assert not any("without a moment rule" in str(w.message) for w in caught)
    seen = []
    hooks = [m[0].register_forward_hook(lambda m, a, o: seen.append(float(a[0].double().pow(2).mean())))
             for m in model.mlps]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    plan_after = plan(model, x, kept={n: "written" for n, _ in model.named_parameters()})
    predicted = [plan_after.moments[n.index].second for n in plan_after.graph.nodes if n.kind == "addcmul"]
    for got, want in zip(seen, predicted):
        assert got == pytest.approx(want, rel=0.25)


class TwoStreams(nn.Module):
    """Transformer in Transformer's layout (Han et al. 2021): an inner stream with its own
    residual MLPs, whose projection is added to the outer stream's tokens after the class
    token in every block (torch.cat([outer[:, :1], outer[:, 1:] + proj(inner)], 1)), then
    the outer stream's own residual MLP."""

    def __init__(self, blocks=8, d=32):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.inner = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
                                   for _ in range(blocks))
        self.proj = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d)) for _ in range(blocks))
        self.outer = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(),
                                                 nn.Linear(2 * d, d)) for _ in range(blocks))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, 10)

    def forward(self, x):
        inner, outer = x, torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1)
        for block, proj, mlp in zip(self.inner, self.proj, self.outer):
            inner = inner + block(inner)
            outer = torch.cat([outer[:, :1], outer[:, 1:] + proj(inner)], 1)
            outer = outer + mlp(outer)
        return self.head(self.norm(outer[:, 1:]).mean(1))


def test_a_layer_added_from_another_stream_is_a_branch_of_the_stream_it_joins():
    # TNT: each block adds a projection of the pixel stream to the patch stream, outside what
    # descends from it, and the class token's cat cut the chain of additions block by block:
    # each block's two branches got the whole growth budget, and the stream grew by it 12
    # times (timm's tnt_s: act 3.1e3, grad 1.5e3; now 1.86 and 2.47)
    torch.manual_seed(0)
    model, x = TwoStreams(), torch.randn(16, 16, 32)
    report = {r.name: r.rule for r in _init(model, x)}
    assert "residual branch end" in report["proj.3.1.weight"]
    streams = []
    hooks = [m.register_forward_pre_hook(lambda m, a: streams.append(float(a[0].double().pow(2).mean())))
             for m in model.outer]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert streams[-1] <= 17.0, streams
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0 and 0.25 <= v["grad_ratio"] <= 4.0, v


class ClassAttentionNet(nn.Module):
    """CaiT's layout (Touvron et al. 2021): residual MLP blocks on the patch tokens, then a
    class token of values near 0 (std 0.02) put beside them, which class-attention blocks
    build: cls = x[:, :1] + attention(cls over all tokens), cls = cls + mlp(cls)."""

    def __init__(self, blocks=4, heads=2, d=32):
        super().__init__()
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, d, generator=torch.Generator().manual_seed(3)))
        self.mlps = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(),
                                                nn.Linear(2 * d, d)) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(2))
        self.attns = nn.ModuleList(nn.MultiheadAttention(d, heads, batch_first=True) for _ in range(2))
        self.cls_mlps = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(),
                                                    nn.Linear(2 * d, d)) for _ in range(2))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, 10)

    def forward(self, x):
        for mlp in self.mlps:
            x = x + mlp(x)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1)
        for norm, attn, mlp in zip(self.norms, self.attns, self.cls_mlps):
            h = norm(x)
            cls = x[:, :1] + attn(h[:, :1], h, h, need_weights=False)[0]
            cls = cls + mlp(cls)
            x = torch.cat([cls, x[:, 1:]], 1)
        return self.head(self.norm(x[:, 0]))


def test_a_class_token_near_zero_is_built_by_its_branches():
    # x[:, :1] of the cat is the class token (second moment 4e-4), not the cat's mixture of
    # it and the patches; the branches that build it add the chain's per-block amount: a
    # fraction of its own second moment kept it near 0 (timm's VOLO: act 3.2, now 1.86)
    torch.manual_seed(0)
    model, x = ClassAttentionNet(), torch.randn(8, 16, 32)
    p = plan(model, x)
    first = next(n for n in p.graph.nodes if n.kind == "view" and n.attrs.get("op") == "__getitem__")
    assert p.moments[first.index].second == pytest.approx(float(model.cls.double().pow(2).mean()), rel=1e-9)
    _init(model, x)
    v = verdict(*profile(model, x, layers=(nn.Linear,)))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


@pytest.mark.parametrize("tail, named", [((nn.Sigmoid(),), True), ((nn.Tanh(),), False),
                                         ((nn.Sigmoid(), nn.Flatten(0)), True)],
                         ids=["sigmoid", "tanh", "sigmoid, flattened"])
def test_an_output_a_bounded_function_cannot_bring_to_the_target_is_named(tail, named):
    # an autoencoder's sigmoid output has std 0.21 at unit preactivations and 0.33 with 1.8
    # times their std: a sigmoid's std is at most 0.5, so half the target is out of reach;
    # tanh's 0.63 is not; a view of the sigmoid (a DCGAN discriminator's .view(-1)) is the same
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), *tail)
    x = torch.rand(256, 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x, generator=0)
    found = [n for n in report.notes if "bounded function" in n]
    assert len(found) == (1 if named else 0), report.notes
    if named:
        assert "sigmoid of its last layer" in found[0]
        assert any("bounded function" in str(w.message) for w in caught)
        with torch.no_grad():
            std = float(model(x).std())
        assert std == pytest.approx(float(found[0].split("its std is ")[1].split(",")[0]), rel=0.15)


def test_rotary_embeddings_keep_the_norm_of_q_and_k():
    class Rotary(nn.Module):
        def forward(self, q):
            t, d = q.shape[-2], q.shape[-1]
            angles = torch.arange(t, device=q.device).float()[:, None] * torch.linspace(0.1, 1.0, d // 2,
                                                                                           device=q.device)
            angles = torch.cat((angles, angles), dim=-1)
            half = d // 2
            rotated = torch.cat((-q[..., half:], q[..., :half]), dim=-1)
            return q * angles.cos() + rotated * angles.sin()

    q = torch.randn(8, 16, 32) * 2.0
    p = plan(Rotary(), q)
    out = p.moments[p.graph.outputs[0]]
    with torch.no_grad():
        measured = float(Rotary()(q).double().pow(2).mean())
    # cos and sin made in forward are unknown on meta: as independent unit factors the sum would be 2 nu
    assert out.second == pytest.approx(measured, rel=0.02)


def test_conv1d_by_addmm_is_a_linear_layer_with_its_weight_stored_in_out():
    from zoo import Conv1D

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Conv1D(32, 96), Conv1D(96, 8)

        def forward(self, x):
            return self.b(F.relu(self.a(x)))

    x = torch.randn(4, 16, 32)
    p = plan(Two(), x)
    nu = float(x.double().pow(2).mean())
    assert p.params["a.weight"].std == pytest.approx(math.sqrt(1.0 / (32 * nu)), rel=1e-9)   # fan_in 32, not 96
    assert p.params["b.weight"].std == pytest.approx(math.sqrt(2.0 / 96), rel=0.02)
    assert p.params["a.bias"].value == 0.0
    model = Two()
    _init(model, x)
    with torch.no_grad():
        assert float(model.a(x).pow(2).mean()) == pytest.approx(1.0, rel=0.05)   # the measured pass sees addmm too


@pytest.mark.parametrize("mask_shape, causal", [("square", True), ("padding", False)])
def test_an_added_mask_before_the_softmax_is_a_mask_not_noise(mask_shape, causal):
    # Hugging Face's eager attention adds a mask made in forward(): 0 where a key is seen,
    # finfo.min where not. Its values are unknown on meta; taken as a unit-variance summand
    # it would flatten the softmax, taken as a mask it leaves the scores and drops the keys
    class Eager(nn.Module):
        def forward(self, q, k, v):
            b, h, t, _ = q.shape
            if mask_shape == "square":
                mask = torch.full((t, t), torch.finfo(q.dtype).min, device=q.device).triu(1)[None, None]
            else:
                mask = torch.zeros(b, 1, 1, t, device=q.device)
            return torch.softmax(q @ k.transpose(-2, -1) * 0.5 + mask, dim=-1) @ v

    torch.manual_seed(0)
    # causal rows over 64 keys: E[sum a^2] averages to about H_64 / 64, 2.4 times 1/64 (the
    # mask taken as a unit summand gave 0.118 against the measured 0.178)
    q, k, v = torch.randn(16, 2, 64, 8), torch.randn(16, 2, 64, 8), torch.randn(16, 2, 64, 8)
    p = plan(Eager(), (q, k, v))   # traced on meta: the mask's values are not seen
    out = p.moments[p.graph.outputs[0]]
    with torch.no_grad():
        measured = float(Eager()(q, k, v).double().pow(2).mean())
    assert out.second == pytest.approx(measured, rel=0.05)
    assert any("a causal mask" in n for n in p.notes) == causal


def _stream_gradients(model, x, seed):
    """The second moment of the gradient at each block's input, for an N(0, 1) output gradient."""
    entering = []

    def keep(module, args):
        args[0].retain_grad()
        entering.append(args[0])

    handles = [block.register_forward_pre_hook(keep) for block in model.blocks]
    y = model(x)
    for handle in handles:
        handle.remove()
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)))
    return [float((t.grad.double() ** 2).mean()) for t in entering]


@pytest.mark.parametrize("seed", [0, 1])
def test_norm_ended_branches_before_the_last_keep_the_gradient_within_budget(seed):
    # 16 BatchNorm blocks: solved for the forward alone, each branch passed back pi / (pi - 1)
    # times its share per BatchNorm after ReLU (and the stream's mean on top), and the stream's
    # gradient grew 3.8 to 4.3-fold in second moment from the last block's input to the first's.
    # Capped (15 branches: each at the floor, 1.1-fold), it stays within 2-fold (measured: 0.7,
    # the ReLU after each addition masking part of it), and the last branch, uncapped, gets the
    # largest gamma so its own layers see a gradient of the stream's order.
    torch.manual_seed(seed)
    model, x = ResNet(blocks=16), torch.randn(16, 3, 16, 16)
    report = _init(model, x)
    grads = _stream_gradients(model, x, seed)
    assert grads[0] / grads[-1] <= 2.0, grads
    gammas = [model.blocks[k].bn2.weight[0].item() for k in range(16)]
    assert gammas[-1] > 2 * max(gammas[:-1]), gammas
    capped = [r.rule for r in report if r.name.endswith("bn2.weight")][:-1]
    assert all("raises the gradient at most 1.1-fold and its layers keep about 0.3162" in r for r in capped)


def test_a_few_norm_ended_branches_share_the_gradient_budget():
    torch.manual_seed(0)
    model, x = ResNet(blocks=8), torch.randn(16, 3, 16, 16)
    capped = [r.rule for r in _init(model, x) if r.name.endswith("bn2.weight")][:-1]
    assert all("the 7 norm-ended branches before the last raise the gradient at most 2-fold" in r for r in capped)


def test_deep_capped_branches_keep_their_layers_gradients():
    # Without the floor, 32 blocks' branches shared a 2-fold budget: each layer inside them kept
    # a gradient 0.009 of the output gradient's norm (global pooling of 16 x 16 maps divides the
    # stream's by 16), below propagate's vanishing bound 0.01.
    torch.manual_seed(0)
    model, x = ResNet(blocks=32), torch.randn(16, 3, 16, 16)
    _init(model, x)
    assert varinit.propagate(model, x).status == "healthy"


def test_a_projection_shortcut_is_the_stream_of_its_block():
    # A block that changes the shape adds its branch to a strided 1x1 conv and BatchNorm of the
    # same input. Not seen as residual, its branch-final gamma was 1 (each such block doubled
    # the stream with a branch passing back its gradient amplified): first/last gradient 4.07.
    torch.manual_seed(0)
    model, x = BottleneckResNet(), torch.randn(8, 3, 64, 64)
    rules = {r.name: r.rule for r in _init(model, x)}
    for k in (0, 3, 7):
        assert "residual branch end" in rules[f"blocks.{k}.bn3.weight"], rules[f"blocks.{k}.bn3.weight"]
        assert rules[f"blocks.{k}.downsample.1.weight"] == "constant 1: norm gain: one"
    v = verdict(*profile(model, x))
    assert v["grad_ratio"] <= 3.0, v


class PooledBatchNorm(nn.Module):
    """ReLU features (a mean) into a conv and BatchNorm, pooled over the positions."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 3, padding=1)
        self.conv = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(64)
        self.head = nn.Linear(64, 64)

    def forward(self, x):
        x = self.bn(self.conv(F.relu(self.stem(x))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_batch_statistics_remove_the_offset_a_layer_gives_a_mean():
    # conv(relu(.)) carries the offset mean * sum(w) per channel, the same at every position and
    # example; BatchNorm subtracts it. Carried through the norm as shared by the positions, it
    # made the pooled features' predicted second moment 0.37 where they have 0.016 (8 x 8
    # positions of independent unit values: 1/64), and the head's std 5x too small. (0.028 now:
    # the quadrature's common part of the ReLU, 2% above mu^2, is what the subtraction leaves.)
    torch.manual_seed(0)
    model, x = PooledBatchNorm(), torch.randn(64, 3, 8, 8)
    rules = {r.name: r.rule for r in _init(model, x.to("meta"))}
    predicted = float(rules["head.weight"].split("nu_in ")[1].split(")")[0])
    with torch.no_grad():
        pooled = torch.flatten(F.adaptive_avg_pool2d(model.bn(model.conv(F.relu(model.stem(x)))), 1), 1)
    measured = float((pooled.double() ** 2).mean())
    assert 0.5 <= predicted / measured <= 2.0, (predicted, measured)


class UnscaledAttention(nn.Module):
    """Self-attention as T5 writes it: scores q kᵀ without 1/sqrt(d), plus a relative
    position bias looked up in an embedding."""

    def __init__(self, d=64, heads=8, t=32):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.relative = nn.Embedding(2 * t, heads)

    def scores(self, x):
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, -1).transpose(1, 2)
        k = self.k(x).view(b, t, self.heads, -1).transpose(1, 2)
        return torch.matmul(q, k.transpose(3, 2))

    def forward(self, x):
        b, t, d = x.shape
        positions = torch.arange(t, device=x.device)
        bias = self.relative(positions[None, :] - positions[:, None] + t).permute(2, 0, 1)[None]
        v = self.v(x).view(b, t, self.heads, -1).transpose(1, 2)
        a = F.softmax((self.scores(x) + bias).float(), dim=-1)
        return self.o(torch.matmul(a, v).transpose(1, 2).reshape(b, t, d))


@pytest.mark.parametrize("heads, variance", [(8, 1.0), (1, 64 / 3.24 ** 2)], ids=["head 8", "head 64: capped"])
def test_unscaled_attention_scores_keep_unit_variance(heads, variance):
    torch.manual_seed(0)
    model, x = UnscaledAttention(heads=heads), torch.randn(8, 32, 64, generator=torch.Generator().manual_seed(1))
    report = varinit.torch.init_module(model, x, generator=0)
    with torch.no_grad():
        scores = model.scores(x)
    # 8 x 8 heads x 32 x 32 scores (64 x 1 x 32 x 32 for one head): a std of the measured variance
    # of about 2%, with the measured pass's 2% noise allowance; unit q and k gave 8 and 64
    assert float(scores.var()) == pytest.approx(variance, rel=0.15)
    reasons = {r.name: r.rule for r in report}
    assert "so the scores keep unit variance" in reasons["q.weight"] and "x" in reasons["k.weight"]
    assert ("beyond the 3.24 allowed" in reasons["q.weight"]) == (heads == 1)
    assert "attention scores" not in reasons["v.weight"]


class CachedUnscaledAttention(UnscaledAttention):
    """T5's attention as transformers 5 runs it: keys and values through a key-value
    cache's first step (a concatenation to an empty tensor), the position bias as
    scaled_dot_product_attention's float mask, with scale 1."""

    def forward(self, x):
        b, t, d = x.shape
        positions = torch.arange(t, device=x.device)
        bias = self.relative(positions[None, :] - positions[:, None] + t).permute(2, 0, 1)[None]
        q, k, v = (layer(x).view(b, t, self.heads, -1).transpose(1, 2) for layer in (self.q, self.k, self.v))
        k, v = (torch.cat([x.new_zeros(0), part], dim=-2) for part in (k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        return self.o(out.transpose(1, 2).reshape(b, t, d))


@pytest.mark.parametrize("model_class", [UnscaledAttention, CachedUnscaledAttention])
def test_a_position_bias_added_to_unscaled_scores_takes_the_queries_and_keys_factor(model_class):
    # 8 heads of 8: unit q and k would give scores of variance 8, so q's and k's layers take
    # 1/sqrt(8) on their second moment; the bias table added to those scores takes the same,
    # where unit rows (std 1) sat 1.9-fold above q's and k's outputs (std 0.59)
    torch.manual_seed(0)
    model, x = model_class(heads=8), torch.randn(8, 32, 64, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*its mask is not modelled")
        report = varinit.torch.init_module(model, x, generator=0)
    reasons = {r.name: r for r in report}
    gain = 1 / math.sqrt(8)
    for name in ("q.weight", "k.weight"):
        assert "so the scores keep unit variance" in reasons[name].rule, reasons[name].rule
    assert "the factor the queries and keys" in reasons["relative.weight"].rule
    assert reasons["relative.weight"].std == pytest.approx(math.sqrt(gain), rel=1e-9)
    with torch.no_grad():
        scores = model.scores(x)
    assert float(scores.var()) == pytest.approx(1.0, rel=0.15)


class CrossAttention(nn.Module):
    """torch's TransformerDecoderLayer: its cross-attention's q and kv projections are
    row blocks torch splits from the packed in_proj_weight inside forward."""

    def __init__(self, d=64):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(d, 4, 4 * d, 0.0, batch_first=True)
        self.head = nn.Linear(d, 10)

    def forward(self, tgt):
        return self.head(self.layer(tgt, tgt.flip(1)))   # a memory that is not the queries' tensor


@pytest.mark.parametrize("meta", [False, True], ids=["real inputs", "shapes only"])
def test_cross_attention_s_split_in_projection_is_solved(meta):
    torch.manual_seed(0)
    model = CrossAttention()
    inputs = torch.randn(8, 12, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = varinit.torch.init_module(model, inputs.to("meta") if meta else inputs, generator=0)
    rules = {r.name: r.rule for r in report}
    # before: the call raised (the bias block read as the weight), then both were left untouched
    assert rules["layer.multihead_attn.in_proj_weight"].startswith("solved normal: linear")
    assert rules["layer.multihead_attn.in_proj_bias"].startswith("constant 0")
    assert not [name for name, rule in rules.items() if rule.startswith("untouched")]
    v = verdict(*profile(model, inputs))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


class BilinearUNet(nn.Module):
    """A U-Net that upsamples with F.interpolate and ends in a one-channel mask."""

    def __init__(self, c=16):
        super().__init__()
        self.d1, self.d2 = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, 2 * c, 3, padding=1)
        self.d3 = nn.Conv2d(2 * c, 4 * c, 3, padding=1)
        self.u2, self.u1 = nn.Conv2d(6 * c, 2 * c, 3, padding=1), nn.Conv2d(3 * c, c, 3, padding=1)
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        a = F.relu(self.d1(x))
        b = F.relu(self.d2(F.max_pool2d(a, 2)))
        c = F.relu(self.d3(F.max_pool2d(b, 2)))
        u = F.relu(self.u2(torch.cat([F.interpolate(c, scale_factor=2, mode="bilinear"), b], 1)))
        u = F.relu(self.u1(torch.cat([F.interpolate(u, scale_factor=2, mode="nearest"), a], 1)))
        return self.out(u)


@pytest.mark.parametrize("meta", [False, True], ids=["real inputs", "shapes only"])
def test_an_upsampling_u_net_with_a_one_channel_output(meta):
    torch.manual_seed(0)
    model, x = BilinearUNet(), torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x.to("meta") if meta else x, generator=0)
    assert not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    # the mask's one channel reads ReLU features: its second moment was mostly their shared
    # offset, a constant mean, and its std 0.40 (act 2.48); interpolate had no rule
    assert "the model's output, whose variance" in next(r.rule for r in report if r.name == "out.weight")
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


class ResidualRegressor(nn.Module):
    """A residual MLP whose head reads relu(stream): its few outputs take offsets from
    the features' mean, the same for every example."""

    def __init__(self, outputs, width=64, blocks=8):
        super().__init__()
        self.embed = nn.Linear(20, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.head = nn.Linear(width, outputs)

    def forward(self, x):
        h = self.embed(x)
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.head(F.relu(h))


@pytest.mark.parametrize("outputs", [1, 3])
def test_the_measured_pass_brings_an_output_s_variance_to_the_target_once(outputs):
    # the head's goal is a second moment whose variance (the offsets taken out) is the target;
    # the measured pass, which reads the variance itself, took that goal for a variance and
    # applied the factor again: output std 1.43 for one output, act 2.43
    torch.manual_seed(0)
    model, x = ResidualRegressor(outputs), torch.randn(64, 20, generator=torch.Generator().manual_seed(1))
    report = varinit.torch.init_module(model, x, generator=0)
    assert "the model's output, whose variance" in next(r.rule for r in report if r.name == "head.weight")
    with torch.no_grad():
        assert 0.9 < float(model(x).std()) < 1.1


def test_a_small_output_is_measured_as_torch_reads_its_std():
    # one output over a batch of 4: the measured pass brought its biased variance to the
    # target, so the std a user reads (torch's, unbiased) was sqrt(4 / 3) = 1.155
    torch.manual_seed(0)
    model, x = ResidualRegressor(1), torch.randn(4, 20, generator=torch.Generator().manual_seed(1))
    varinit.torch.init_module(model, x, generator=0)
    with torch.no_grad():
        assert float(model(x).std()) == pytest.approx(1.0, rel=0.021)


@pytest.mark.parametrize("channels", [1, 64], ids=["one slope", "a slope per channel"])
@pytest.mark.parametrize("meta", [False, True], ids=["real inputs", "shapes only"])
def test_prelu_is_a_leaky_relu_of_its_parameter_s_slope(channels, meta):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.PReLU(channels, init=0.1), nn.Linear(64, 64), nn.PReLU(channels),
                          nn.Linear(64, 4))
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x.to("meta") if meta else x, generator=0)   # one slope: raised
    assert not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    rules = {r.name: r.rule for r in report}
    assert rules["1.weight"] == "untouched: PReLU's slope: kept, and read by the solve"
    assert torch.all(model[1].weight == 0.1)
    # the layer after a PReLU of slope a sees nu (1 + a^2) / 2 at unit pre-activations
    assert "nu_in 0.505)" in rules["2.weight"] and "nu_in 0.5312)" in rules["4.weight"], rules


class PointNetLike(nn.Module):
    """PointNet's shared per-point layers, then the largest feature over the points
    (torch.max(x, dim) or amax), then a classifier."""

    def __init__(self, amax=False):
        super().__init__()
        self.amax = amax
        self.points = nn.Sequential(nn.Conv1d(3, 64, 1), nn.BatchNorm1d(64), nn.ReLU(), nn.Conv1d(64, 128, 1))
        self.head = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        h = self.points(x)
        return self.head(h.amax(dim=2) if self.amax else torch.max(h, 2)[0])


@pytest.mark.parametrize("amax", [False, True], ids=["torch.max(x, dim)", "amax"])
def test_the_largest_entry_along_a_dim_has_the_order_statistic_s_moments(amax):
    # the max over 256 points of unit features: mean near 2.8, second moment near 8; without a
    # rule the head took unit inputs from shapes alone (act 3.35 on a PointNet)
    # (the analytic solve alone: measure=False leaves out the measured pass on stand-ins)
    torch.manual_seed(0)
    model, x = PointNetLike(amax), torch.randn(16, 3, 256, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        varinit.torch.init_module(model, x.to("meta"), generator=0, measure=False)
    assert not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    with torch.no_grad():
        pooled = torch.max(model.points(x), 2)[0]
    p = plan(model, x.to("meta"))
    (largest,) = [n for n in p.graph.nodes if n.attrs.get("op") == "topk" and n.attrs.get("output", 0) == 0]
    # the order statistic of 256 Gaussian draws of the features' moments (2.8 and 8.2 for unit ones)
    assert p.moments[largest.index].mean == pytest.approx(float(pooled.mean()), rel=0.15)
    assert p.moments[largest.index].second == pytest.approx(float(pooled.pow(2).mean()), rel=0.3)
    assert verdict(*profile(model, x))["act_ratio"] <= 2.0


class HyperNetwork(nn.Module):
    """A task embedding generates the weights of a two-layer network that reads x: its
    output is a product of two signals (the generated weights, the hidden units)."""

    def __init__(self, d_in=20, hidden=32, d_out=5):
        super().__init__()
        self.task, self.body = nn.Embedding(8, 16), nn.Sequential(nn.Linear(16, 64), nn.ReLU())
        self.w1, self.w2 = nn.Linear(64, hidden * d_in), nn.Linear(64, d_out * hidden)
        self.shape = (d_in, hidden, d_out)

    def forward(self, x, task):
        d_in, hidden, d_out = self.shape
        e = self.body(self.task(task))
        h = F.relu(torch.bmm(self.w1(e).view(-1, hidden, d_in), x.unsqueeze(-1)))
        return torch.bmm(self.w2(e).view(-1, d_out, hidden), h).squeeze(-1)


@pytest.mark.parametrize("hyper", [True, False], ids=["generated weights", "a norm at unit variance"])
def test_an_output_no_layer_s_scale_is_solved_for_is_named_when_far_from_the_target(hyper):
    # unit generated weights over 20 and 32 inputs: the output's std was 10.6 with no word
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model, x = (HyperNetwork(), (torch.randn(64, 20, generator=g), torch.randint(0, 8, (64,), generator=g))) \
        if hyper else (nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 5), nn.LayerNorm(5)),
                       torch.randn(64, 20))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x, generator=0)
    found = [n for n in report.notes if "no layer's scale is solved for it" in n]
    assert len(found) == hyper, report.notes
    if hyper:
        assert found[0].startswith("the model's output (torch.bmm) has variance")
        assert any("no layer's scale is solved for it" in str(w.message) for w in caught)
        with torch.no_grad():
            assert float(model(*x).std()) > 2.0   # what the note warns of


class NormalizedEmbedding(nn.Module):
    """Features divided by their 2-norm (F.normalize, x / x.norm(...), or written out as
    x / x.pow(2).sum(-1, keepdim=True).pow(0.5)), then a linear layer."""

    def __init__(self, how):
        super().__init__()
        self.how, self.embed, self.head = how, nn.Linear(8, 64), nn.Linear(64, 16)

    def forward(self, x):
        e = self.embed(x)
        unit = (F.normalize(e, dim=-1) if self.how == "F.normalize" else e / e.norm(dim=-1, keepdim=True)
                if self.how == "x.norm" else e / e.pow(2).sum(-1, keepdim=True).pow(0.5))
        return self.head(unit)


@pytest.mark.parametrize("how", ["F.normalize", "x.norm", "written out"])
def test_features_over_their_norm_have_one_over_n_of_a_unit_second_moment(how):
    # each row of 64 features at unit 2-norm: second moment 1/64 per feature (with the norm's
    # spread, 1 + 3 var/m^2 = 1.023 more); without a rule the head took 1 from shapes alone
    # and its output sat at std 0.125
    torch.manual_seed(0)
    model, x = NormalizedEmbedding(how), torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x.to("meta"), generator=0)
    assert not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    rule = {r.name: r.rule for r in report}["head.weight"]
    nu = float(rule.split("nu_in ")[1].split(")")[0])
    assert nu == pytest.approx((1 + 1.5 / 64) / 64, rel=0.01), rule
    with torch.no_grad():
        assert 0.7 <= float(model(x).std()) <= 1.4


class CosineLogits(nn.Module):
    """Similarities of embeddings divided by their 1-norm, times a large scale: a norm
    and a division without a moment rule before the output."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(32, 64)

    def forward(self, x):
        e = self.embed(x)
        unit = e / torch.linalg.vector_norm(e, ord=1, dim=-1, keepdim=True)
        return 100.0 * unit @ unit.T


def test_an_output_after_an_op_without_a_rule_is_not_named_for_a_variance_it_was_assumed():
    # the moments after the division are assumed (unit), not predicted: the unreached-output
    # note put such logits at variance 6.4e5; the ops are named instead
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report = varinit.torch.init_module(CosineLogits(), torch.randn(64, 32), generator=0)
    assert not [n for n in report.notes if "no layer's scale is solved for it" in n], report.notes
    assert any(n.startswith("ops without a moment rule") and "torch.Tensor.div" in n for n in report.notes)


class GraphConvolution(nn.Module):
    """Kipf and Welling's GCN with the normalized adjacency as an input: adj @ (x W) per
    layer, ReLU between."""

    def __init__(self):
        super().__init__()
        self.lins = nn.ModuleList([nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 8)])

    def forward(self, x, adj):
        for i, lin in enumerate(self.lins):
            x = adj @ lin(x)
            x = F.relu(x) if i < len(self.lins) - 1 else x
        return x


def test_a_matrix_the_inputs_give_passes_the_output_s_gain_to_the_last_layer():
    # the output is adj @ (the last layer's output): with about 4 neighbours and the node
    # itself, a row of D^-1/2 A D^-1/2 has a sum of squares near 1/5, so the output's std was
    # 0.45 with the layer at 1; that product is linear in the layer, which takes the output's
    # gain (halfway to unit variance in log, the std capped at 1.8)
    torch.manual_seed(0)
    n, g = 400, torch.Generator().manual_seed(3)
    a = (torch.rand(n, n, generator=g) < 2.0 / n).float()
    a = ((a + a.T + torch.eye(n)) > 0).float()
    adj = a / a.sum(1).sqrt()[:, None] / a.sum(0).sqrt()[None, :]
    model, x = GraphConvolution(), torch.randn(n, 16, generator=g)
    report = varinit.torch.init_module(model, (x, adj), generator=0)
    rule = {r.name: r.rule for r in report}["lins.2.weight"]
    assert "halfway to the model's output" in rule, rule
    with torch.no_grad():
        out = model(x, adj)
        last = model.lins[2](F.relu(adj @ model.lins[1](F.relu(adj @ model.lins[0](x)))))
    assert 1.4 <= float(last.std()) <= 1.85 and float(out.std()) >= 0.55, (float(last.std()), float(out.std()))


class TextClassifier(nn.Module):
    """The model of PyTorch's text classification tutorial: a bag of token embeddings
    (nn.EmbeddingBag, a 2-d batch of ids or flat ids with offsets) and a linear head."""

    def __init__(self, mode):
        super().__init__()
        self.embedding, self.fc = nn.EmbeddingBag(1000, 64, mode=mode), nn.Linear(64, 4)

    def forward(self, text, offsets=None):
        return self.fc(self.embedding(text, offsets))


@pytest.mark.parametrize("mode, nu", [("mean", 0.1), ("sum", 10.0), ("max", 2.712)])
@pytest.mark.parametrize("flat", [False, True], ids=["2-d ids", "ids and offsets"])
def test_an_embedding_bag_s_rows_give_its_output_unit_second_moment(mode, nu, flat):
    # bags of 10: unit rows give a mean of them 0.1 of a row's second moment, a sum 10, a max
    # 2.712 (the solve's figure; unit rows left the bag's output 0.32 in std beside a head at 1)
    torch.manual_seed(0)
    model, ids = TextClassifier(mode), torch.randint(0, 1000, (256, 10), generator=torch.Generator().manual_seed(1))
    inputs = (ids.ravel(), torch.arange(0, ids.numel(), 10)) if flat else (ids,)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, inputs, generator=0)
    assert not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    records = {r.name: r for r in report}
    assert records["embedding.weight"].rule == (f"solved normal: embedding bag: rows of second moment {1 / nu:.4g}, "
                                                f"so a {mode} over bags of 10 has 1"), records["embedding.weight"]
    assert records["embedding.weight"].std == pytest.approx(nu ** -0.5, rel=1e-4)   # 2.712: 4 digits
    assert "nu_in 1)" in records["fc.weight"].rule, records["fc.weight"].rule
    # 256 bags x 64 features: the mean square's sd is under 1.2% of it in each mode; 15% is
    # beyond 12 of them
    with torch.no_grad():
        assert float(model.embedding(*inputs).pow(2).mean()) == pytest.approx(1.0, rel=0.15)


def _spectral_mlp():
    from torch.nn.utils.parametrizations import spectral_norm
    return nn.Sequential(spectral_norm(nn.Linear(256, 512)), nn.ReLU(), spectral_norm(nn.Linear(512, 512)), nn.ReLU(),
                         nn.Linear(512, 10))


@pytest.mark.parametrize("dataflow", [True, False], ids=["dataflow", "structure only"])
def test_spectral_norm_keeps_its_estimate_in_step_with_the_new_weight(dataflow):
    torch.manual_seed(0)
    model, x = _spectral_mlp(), torch.randn(256, 256, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x if dataflow else None, generator=0)
    # torch's vectors from registration, left as they were, estimated the new weights' largest
    # singular value at a fraction of it: the effective weights' spectral norms were 2 to 5
    for layer in (model[0], model[2]):
        assert float(torch.linalg.matrix_norm(layer.weight.detach(), 2)) == pytest.approx(1.0, rel=0.05)
    if not dataflow:
        return
    assert not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    rules = {r.name: r.rule for r in report}
    assert rules["0.parametrizations.weight.original"].startswith("orthogonal: ")
    assert "spectral norm divides the weight's scale out" in rules["0.parametrizations.weight.original"]
    assert rules["0.bias"].startswith("constant 0")
    # orthogonal: every singular value is the largest, so W / sigma_max keeps the signal whole
    for layer in (model[0], model[2]):
        assert float(torch.linalg.svdvals(layer.weight.detach()).min()) == pytest.approx(1.0, rel=1e-3)
    planned = float(rules["4.weight"].split("nu_in ")[1].split(")")[0])
    with torch.no_grad():
        # 256 x 512 values; an iid Gaussian W keeps 256 / (16 + 22.6)^2 = 0.17 of it at the first layer
        assert float(model[:4](x).pow(2).mean()) == pytest.approx(planned, rel=0.1)


class KeyValueWidths(nn.Module):
    """MultiheadAttention with kdim and vdim: separate q, k, v weights, one packed bias."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(32, 4, kdim=16, vdim=24, batch_first=True)
        self.shuffled = nn.Sequential(nn.Conv1d(32, 32, 1), nn.ChannelShuffle(4), nn.Conv1d(32, 4, 1, groups=4))

    def forward(self, x):
        y = self.attention(x, x[..., :16], x[..., :24], need_weights=False)[0]
        return self.shuffled(y.transpose(1, 2))


def test_a_packed_bias_beside_separate_weights_and_a_channel_shuffle_have_rules():
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(KeyValueWidths(), torch.randn(4, 10, 32), generator=0)
    assert not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    rules = {r.name: r.rule for r in report}
    assert rules["attention.in_proj_bias"].startswith("constant 0"), rules   # was untouched
    assert not [name for name, rule in rules.items() if rule.startswith("untouched")]


@pytest.mark.parametrize("k", [1.0, 2.0])
def test_local_response_norm_is_a_scaling_not_an_unstable_product(k):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.LocalResponseNorm(5, k=k),
                          nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, torch.randn(8, 3, 16, 16), generator=0)
    # written out (x / (k + alpha * mean(x^2))^beta) it was relu+mul, "no stable choice", and ops
    # without a rule
    assert report.healthy and not [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    rule = next(r.rule for r in report if r.name == "3.weight")
    assert f"nu_in {0.5 * (k + 1e-4 * 0.5) ** -1.5:.4g})" in rule, rule


def _selu_alpha_dropout_net(depth=16, p=0.1):
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(128, 128), nn.SELU(), nn.AlphaDropout(p))],
                         nn.Linear(128, 1))


def test_alpha_dropout_keeps_selus_fixed_point_from_shapes_alone():
    # AlphaDropout keeps (0, 1); read as inverted dropout (nu / 0.9) every layer came out 5% low
    # and the hidden stds fell to 0.86 over 16 layers
    model, x = _selu_alpha_dropout_net(), torch.randn(512, 128, generator=torch.Generator().manual_seed(1))
    _init(model, x.to("meta"), measure=False)   # the analytic solve alone
    outs = []
    hooks = [m.register_forward_hook(lambda mod, a, o: outs.append(float(o.std())))
             for m in model if isinstance(m, nn.Linear)]
    torch.manual_seed(2)
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert all(0.95 <= s <= 1.05 for s in outs[:-1]), outs


def test_alpha_dropouts_gradient_loss_is_tilted_within_the_room_and_named_beyond_it():
    # a^2 (1 - p) = 0.764 of the gradient's second moment per call: over 16 calls (0.20 untilted)
    # the tilt along SELU's degree brings the ratio into the band; over 32 (0.07 untilted) the
    # hidden layers lifted together (SELU's gradient factor per layer falls with the scale it
    # works at); at p = 0.3 (0.519 per call) 32 calls are beyond the room, and the cause is named
    x = torch.randn(512, 128, generator=torch.Generator().manual_seed(1))
    for depth in (16, 32):
        model = _selu_alpha_dropout_net(depth)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            varinit.torch.init_module(model, x, generator=0)
        torch.manual_seed(1)
        v = verdict(*profile(model, x))
        # the output layer may take 1.2 under a lift; the dropouts move the activations' max/min between passes
        assert 0.25 <= v["grad_ratio"] <= 4.0 and v["act_ratio"] <= 1.95 and 0.8 <= v["output_std"] <= 1.3, v
    with pytest.warns(UserWarning, match=r"AlphaDropout in training \(32 calls, p up to 0.3\).* 0\.519 of the"):
        varinit.torch.init_module(_selu_alpha_dropout_net(32, p=0.3), x, generator=0)


class SortedRows(nn.Module):
    """Rows gathered in an order computed by integer arithmetic on a sort's indices (an MoE
    router's token order // top_k), between two ReLU layers."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x):
        h = F.relu(self.a(x))
        order = torch.argsort(h[:, 0]) // 2
        return self.c(F.relu(self.b(h[order])))


def test_integer_index_arithmetic_gets_no_activation_verdict():
    # the floor division of sort indices is not the signal: no chi_1, no trade-off verdict
    model, x = SortedRows(), torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    report = _init(model, x)
    assert [v.activation for v in report.verdicts] == ["relu"]
    assert report.healthy


class WidthScaledAttention(nn.Module):
    """torchvision's MaxViT attention: one packed qkv layer, q scaled by 1/sqrt(width) (not
    1/sqrt(head dim)) before the scores, then softmax and an output layer."""

    def __init__(self, d=256, head=32):
        super().__init__()
        self.head, self.scale = head, d ** -0.5
        self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, d // self.head, self.head).permute(2, 0, 3, 1, 4)
        a = torch.softmax(torch.einsum("bhid,bhjd->bhij", q * self.scale, k), dim=-1)
        return self.o(torch.einsum("bhij,bhjd->bhid", a, v).transpose(1, 2).reshape(b, t, d))


def test_a_softmax_the_model_scales_flatter_is_followed_not_raised():
    # scores at 1/sqrt(256) over 32 terms have variance 1/8: raising q and k to unit scores
    # would raise the packed layer's v with them, its output 1.8x the others' (MaxViT: act 2.3)
    torch.manual_seed(0)
    model, x = WidthScaledAttention(), torch.randn(8, 49, 256, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)
    reasons = {r.name: r.rule for r in report}
    assert "attention scores" not in reasons["qkv.weight"]
    stds = []
    hooks = [m.register_forward_hook(lambda mod, a, o: stds.append(float(o.std()))) for m in (model.qkv, model.o)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert 0.9 <= stds[0] <= 1.1 and 0.9 <= stds[1] <= 1.1, stds


class RoutedRows(nn.Module):
    """A mixture of experts' write-back: the rows a router picks go through an expert and are
    written into zeros (`out[mask] = ...`) or added (`out.index_add_`), then a head."""

    def __init__(self, index_add=False):
        super().__init__()
        self.a, self.expert, self.head = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 8)
        self.index_add = index_add

    def forward(self, x):
        h = F.relu(self.a(x))
        out = torch.zeros_like(h)
        if self.index_add:
            # half the tokens, three of them landing on each of a sixth of the rows
            half = h.shape[0] // 2
            rows = torch.arange(half, device=x.device) % (h.shape[0] // 6)
            out.index_add_(0, rows, self.expert(h[:half]))
        else:
            mask = h[:, 0] > h[:, 1]                                        # about half of the rows
            out[mask] = self.expert(h[mask])
        return self.head(out)


@pytest.mark.parametrize("index_add", [False, True], ids=["setitem", "index_add"])
def test_rows_written_back_by_a_router_have_their_share_of_the_moments(index_add):
    # without the measured pass, the head's solve reads the write's moments: the written share
    # of unit rows (about 1/2), or half as many unit rows as rows added (1/2), not a unit
    # second moment assumed for an op without a rule (head std about 0.71 instead of 1)
    torch.manual_seed(0)
    model, x = RoutedRows(index_add), torch.randn(3000, 32, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        varinit.torch.init_module(model, x, generator=0, measure=False)
    unruled = [str(w.message) for w in caught if "without a moment rule" in str(w.message)]
    assert not any("__setitem__" in m or "index_add" in m for m in unruled), unruled
    with torch.no_grad():
        std = float(model(x).std())
    assert 0.9 <= std <= 1.1, std


class WhereActivation(nn.Module):
    """Activations written with comparisons and torch.where: a leaky ReLU, and an ELU
    whose mask is two comparisons joined."""

    def __init__(self, elu):
        super().__init__()
        self.elu = elu
        self.layers = nn.ModuleList(nn.Linear(256, 256) for _ in range(6))

    def forward(self, x):
        for layer in self.layers[:-1]:
            h = layer(x)
            x = torch.where((h > 0) | ~(h > -100), h, torch.expm1(h)) if self.elu else torch.where(h > 0, h, 0.1 * h)
        return self.layers[-1](x)


@pytest.mark.parametrize("elu", [False, True], ids=["leaky", "elu"])
def test_an_activation_written_with_where_is_integrated_as_one_function(elu):
    torch.manual_seed(0)
    model = WhereActivation(elu)
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    meta = x.to("meta")
    graph_plan = plan(model, meta)
    # the comparisons and the wheres are one function of each layer's output
    assert not [n for n in graph_plan.notes if "without a moment rule" in n], graph_plan.notes
    _init(model, meta)
    stds, out = _layer_stds(model, x)
    # a leaky ReLU at slope 0.1 keeps (1 + 0.01) / 2 of the second moment: solved, each of
    # 256 units within 25% (and the default 1 / sqrt(3 fan_in) uniform keeps a third per layer)
    assert all(0.75 < s < 1.33 for s in stds), stds


class SlidingCache(nn.Module):
    """Attention keys put after an empty cache (Hugging Face's DynamicLayer starts from
    torch.tensor([])) and cut to a window, as a sliding-window cache does."""

    def __init__(self, width=64, window=8):
        super().__init__()
        self.window = window
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x):
        empty = torch.tensor([], device=x.device)
        k = torch.cat([empty, self.k(x)], dim=-2)[:, -self.window:]
        v = torch.cat([empty, self.v(x)], dim=-2)[:, -self.window:]
        return x + self.o(F.scaled_dot_product_attention(self.q(x), k, v))


def test_a_window_of_a_concatenation_with_an_empty_cache_is_read():
    torch.manual_seed(0)
    model, x = SlidingCache(), torch.randn(8, 16, 64)
    report = _init(model, x)        # raised IndexError: the empty cache has one dim
    rules = {r.name: r.rule for r in report}
    assert all(rules[f"{n}.weight"].startswith("solved") for n in "qkvo"), rules


class TransposedWeightLinear(nn.Linear):
    """A linear layer written as x @ self.weight.T (Falcon's FalconLinear)."""

    def forward(self, x):
        return x @ self.weight.T + self.bias


class MatmulStack(nn.Module):
    def __init__(self, width=256):
        super().__init__()
        self.layers = nn.ModuleList(TransposedWeightLinear(width, width) for _ in range(5))
        self.proj = nn.Parameter(torch.randn(width, 16) * 0.02)   # a bare parameter: a weight too

    def forward(self, x):
        for layer in self.layers:
            x = F.gelu(layer(x))
        return x @ self.proj


@pytest.mark.parametrize("meta", [False, True])
def test_a_layer_written_as_a_product_with_its_weight_is_solved(meta):
    torch.manual_seed(0)
    model = MatmulStack()
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    report = _init(model, x.to("meta") if meta else x)
    rules = {r.name: r.rule for r in report}
    assert all(rules[f"layers.{i}.weight"].startswith("solved") for i in range(5)), rules
    # torch's default (1 / sqrt(3 fan_in) uniform) through GELU: std 0.2 at the fifth layer
    stds = []
    hooks = [layer.register_forward_hook(lambda m, a, o: stds.append(float(o.std()))) for layer in model.layers]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    assert all(0.75 < s < 1.33 for s in stds), stds
    # x @ proj, a bare parameter read as (in, out), is a layer too: its std 0.02 gave an output std of 0.14
    assert rules["proj"].startswith("solved") and 0.75 < float(out.std()) < 1.33, (rules["proj"], out.std())


class ScaledEmbedding(nn.Module):
    """Token embeddings scaled by sqrt(width) held in a buffer (Gemma's embed_scale) or a
    tensor made in forward, then a linear layer."""

    def __init__(self, buffer, width=64):
        super().__init__()
        self.embedding = nn.Embedding(100, width)
        if buffer:
            self.register_buffer("scale", torch.tensor(width ** 0.5), persistent=False)
        self.width = width
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(3))

    def forward(self, ids):
        scale = self.scale if hasattr(self, "scale") else torch.tensor(self.width ** 0.5)
        h = self.embedding(ids) * scale
        for layer in self.layers:
            h = h + layer(F.layer_norm(h, h.shape[-1:]))
        return h


@pytest.mark.parametrize("buffer", [True, False], ids=["buffer", "made in forward"])
def test_a_scale_held_in_a_tensor_is_a_number_from_shapes_alone(buffer):
    torch.manual_seed(0)
    model = ScaledEmbedding(buffer)
    ids = torch.randint(0, 100, (16, 32), generator=torch.Generator().manual_seed(1))
    graph_plan = plan(model, ids.to("meta"))
    embedded = next(n for n in graph_plan.graph.nodes if n.kind in ("mul", "scale"))
    # the table's second moment times width: 64 x the lookup's
    looked_up = graph_plan.moments[embedded.inputs[0]].second
    assert graph_plan.moments[embedded.index].second == pytest.approx(64 * looked_up, rel=1e-6)


class NoNorm(nn.Module):
    """MobileBERT's NoNorm: a per-channel affine map in place of a LayerNorm."""

    def __init__(self, width):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(width)), nn.Parameter(torch.zeros(width))

    def forward(self, x):
        return x * self.weight + self.bias


class AffineStream(nn.Module):
    def __init__(self, width=128, depth=8):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.norms = nn.ModuleList(NoNorm(width) for _ in range(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        for layer, norm in zip(self.layers, self.norms):
            x = norm(x + layer(F.relu(x)))
        return self.head(x)


def test_a_stream_through_per_channel_affine_maps_is_one_residual_chain():
    torch.manual_seed(0)
    model, x = AffineStream(), torch.randn(512, 128, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)
    rules = {r.name: r.rule for r in report}
    # the eight additions are one chain of branches: each adds its share, not a unit
    assert all("8 blocks grow it" in rules[f"layers.{i}.weight"] for i in range(8)), rules["layers.0.weight"]
    streams = _recorded(model, x, model.norms, lambda t: float(t.pow(2).mean()))
    # each block added a unit second moment before: the stream ended at 9
    assert streams[-1] < 4.5, streams


class ParallelBlocks(nn.Module):
    """Attention and MLP read from one norm and summed before the stream (GPT-J's and
    Falcon's parallel blocks): x + attn(ln(x)) + mlp(ln(x))."""

    def __init__(self, width=64, depth=6):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.attn = nn.ModuleList(nn.MultiheadAttention(width, 4, batch_first=True) for _ in range(depth))
        self.up = nn.ModuleList(nn.Linear(width, 4 * width) for _ in range(depth))
        self.down = nn.ModuleList(nn.Linear(4 * width, width) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 10)

    def forward(self, x):
        for norm, attn, up, down in zip(self.norms, self.attn, self.up, self.down):
            h = norm(x)
            x = x + (attn(h, h, h, need_weights=False)[0] + down(F.gelu(up(h))))
        return self.head(self.norm(x))


def test_parallel_branches_summed_before_the_stream_share_its_growth():
    torch.manual_seed(0)
    model, x = ParallelBlocks(), torch.randn(8, 16, 64, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)
    rules = {r.name: r.rule for r in report}
    for name in ("down.0.weight", "attn.0.out_proj.weight"):
        # each of the 12 is a branch of the chain, as if added on its own
        assert "residual branch end" in rules[name] and "12 blocks grow it" in rules[name], rules[name]
    streams = _recorded(model, x, list(model.norms) + [model.norm], lambda t: float(t.pow(2).mean()), inputs=True)
    # each block added two unit branches before: the stream ended at 13; the budget is 1 + 12/3
    assert streams[-1] < 6, streams


class QuickGELUStream(nn.Module):
    """CLIP's encoder as its last_hidden_state reads it: pre-norm blocks whose stream is the
    output, an MLP with the quick GELU x * sigmoid(1.702 x), which reads x twice."""

    def __init__(self, width=128, depth=4):
        super().__init__()
        self.norms1 = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.norms2 = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.attn = nn.ModuleList(nn.MultiheadAttention(width, 4, batch_first=True) for _ in range(depth))
        self.fc1 = nn.ModuleList(nn.Linear(width, 4 * width) for _ in range(depth))
        self.fc2 = nn.ModuleList(nn.Linear(4 * width, width) for _ in range(depth))

    def forward(self, x):
        for n1, n2, attn, fc1, fc2 in zip(self.norms1, self.norms2, self.attn, self.fc1, self.fc2):
            h = n1(x)
            x = x + attn(h, h, h, need_weights=False)[0]
            h = fc1(n2(x))
            x = x + fc2(h * torch.sigmoid(1.702 * h))
        return x


def test_an_mlp_read_twice_by_its_activation_shares_its_branch_scale():
    torch.manual_seed(0)
    model, x = QuickGELUStream(), torch.randn(8, 32, 128, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)
    rules = {r.name: r.rule for r in report}
    assert "inside a residual branch: the branch's scale" in rules["fc1.0.weight"], rules["fc1.0.weight"]
    outputs = _recorded(model, x, list(model.fc1) + list(model.fc2), lambda t: float(t.std()))
    with torch.no_grad():
        y = model(x)
    # 8 branches at the open stream's 3-fold growth kept a quarter of the start each: std 0.5, the
    # act bound's edge (0.49 measured beside q, k, v at 1); each keeps 0.29 now, its std 0.54
    assert min(outputs) > 0.52 and float(y.std()) < 2.0, (outputs, float(y.std()))


def _adjacency(nodes=200, edges=1000):
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, nodes, (edges,), generator=g), torch.randint(0, nodes, (edges,), generator=g)
    degree = torch.zeros(nodes).index_add_(0, dst, torch.ones(edges)).clamp(min=1)
    return torch.sparse_coo_tensor(torch.stack([dst, src]), 1.0 / degree[dst], (nodes, nodes)).coalesce()


ADJACENCY = _adjacency()


class GraphConvolutions(nn.Module):
    """Graph convolutions, h <- relu(A (h W)), with A a row-normalized adjacency: a sparse
    global, a dense one, or a buffer (on the meta device in the meta view of the trace)."""

    def __init__(self, how, width=64, depth=4):
        super().__init__()
        self.how = how
        if how == "buffer":
            self.register_buffer("adjacency", ADJACENCY.to_dense())
        self.inp = nn.Linear(16, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    def forward(self, x):
        h = self.inp(x)
        for layer in self.layers:
            z = layer(h)
            mixed = (torch.sparse.mm(ADJACENCY, z) if self.how == "sparse" else
                     ADJACENCY.to_dense() @ z if self.how == "dense" else self.adjacency @ z)
            h = F.relu(mixed)
        return h


@pytest.mark.parametrize("how", ["sparse", "dense", "buffer"])
def test_a_fixed_mixing_matrix_is_read_from_its_values_from_shapes_alone(how):
    torch.manual_seed(0)
    model, x = GraphConvolutions(how), torch.randn(200, 16, generator=torch.Generator().manual_seed(1))
    _init(model, x.to("meta"))
    stds, _ = _layer_stds(model, x)
    # the adjacency taken as iid unit entries (or sparse.mm without a rule) put the layers at
    # 1e-5 to 1 (act 1.6e5); each row averages about 6 neighbours, and the per-channel offset
    # the ReLU features carry passes whole; the last layer, of which the output relu(A z) is a
    # positively homogeneous function, may take the output's gain (up to 1.8 on its std)
    assert all(0.7 < s < 1.4 for s in stds[:-1]) and 0.7 < stds[-1] < 1.8, stds


class TiedRMSNormLM(nn.Module):
    """A pre-norm residual stack in Hugging Face's style: token embeddings, blocks x = x +
    mlp(norm(x)) with RMSNorm written out (x * rsqrt(mean(x^2) + eps), then weight * x), a
    final written-out RMSNorm and a head whose weight is the embedding's."""

    def __init__(self, vocab=128, width=64, depth=3):
        from zoo import WrittenRMSNorm

        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.norms = nn.ModuleList(WrittenRMSNorm(width) for _ in range(depth))
        self.up = nn.ModuleList(nn.Linear(width, 4 * width) for _ in range(depth))
        self.down = nn.ModuleList(nn.Linear(4 * width, width) for _ in range(depth))
        self.norm, self.head = WrittenRMSNorm(width), nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        x = self.embed(ids)
        for norm, up, down in zip(self.norms, self.up, self.down):
            x = x + down(F.silu(up(norm(x))))
        return self.head(self.norm(x))


def test_the_gain_of_a_written_out_rms_norm_before_a_tied_head_takes_the_head_s_scale():
    torch.manual_seed(0)
    model, ids = TiedRMSNormLM(), torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(1))
    report = _init(model, ids)
    rules = {r.name: r.rule for r in report}
    # the table is decided at its first use: rows of unit second moment (8192 entries N(0, 1): the
    # mean square's sd is 0.016); it was drawn for the head at 1 / sqrt(64), the stream's start at 0.016
    embed = model.embed.weight.detach()
    assert 0.9 < float(embed.pow(2).mean()) < 1.1, rules["embed.weight"]
    # the final norm's gain scales the head instead: gamma^2 = 1 / (64 * 1)
    gain = model.norm.weight.detach()
    assert rules["norm.weight"].startswith("constant") and "norm gain before the head tied to embed.weight" in \
        rules["norm.weight"], rules["norm.weight"]
    assert torch.all(gain == gain[0]) and float(gain[0]) == pytest.approx(1.0 / 8.0, rel=0.05), gain[:4]
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    stds = _recorded(model, ids, layers, lambda t: float(t.std()))
    with torch.no_grad():
        logits = model(ids)
    # the embedding at 1 / sqrt(64) put it and the branches at ~0.12 beside the head's 1: max/min ~9
    assert max(stds) / min(stds) <= 2.0, stds
    assert 0.5 <= float(logits.std()) <= 2.0


class LatentStream(nn.Module):
    """Perceiver's latent array: a learned (N, d) parameter at std 0.02, expanded to the batch,
    reads the inputs by cross-attention and starts a residual stream of pre-norm blocks."""

    def __init__(self, width=64, latents=32, depth=3):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(latents, width) * 0.02)
        self.inp, self.cross_norm = nn.Linear(32, width), nn.LayerNorm(width)
        self.cross = nn.MultiheadAttention(width, 4, batch_first=True)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.up = nn.ModuleList(nn.Linear(width, 4 * width) for _ in range(depth))
        self.down = nn.ModuleList(nn.Linear(4 * width, width) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 10)

    def forward(self, x):
        data = self.inp(x)
        z = self.latents.expand(x.shape[0], -1, -1)
        z = z + self.cross(self.cross_norm(z), data, data, need_weights=False)[0]
        for norm, up, down in zip(self.norms, self.up, self.down):
            z = z + down(F.gelu(up(norm(z))))
        return self.head(self.norm(z).mean(1))


def test_a_learned_array_that_starts_a_residual_stream_is_drawn_at_unit_second_moment():
    torch.manual_seed(0)
    model, x = LatentStream(), torch.randn(4, 50, 32, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)
    rule = {r.name: r.rule for r in report}["latents"]
    assert "a learned input that starts a residual stream" in rule, rule
    # 2048 entries N(0, 1): the std's estimate has sd 0.016; it was left at 0.02 (untouched)
    assert 0.9 <= float(model.latents.detach().std()) <= 1.1
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.MultiheadAttention))]
    stds = _recorded(model, x, layers, lambda o: float((o[0] if isinstance(o, tuple) else o).std()))
    # the branches were solved as fractions of a stream at 0.02: their outputs at 0.016 beside 1 (x65)
    assert max(stds) / min(stds) <= 2.5, stds


class NewtonSchulzInverse(nn.Module):
    """The iteration z <- z (2 I - a z) from z = a^T / (|a|_1 |a|_inf), which converges to
    a's inverse (Nystromformer's pseudo-inverse): independence rules square z at each step."""

    def __init__(self, steps=8):
        super().__init__()
        self.steps = steps

    def forward(self, a):
        eye = torch.eye(a.shape[-1], device=a.device)
        rows, cols = a.abs().sum(-1).amax(-1), a.abs().sum(-2).amax(-1)
        z = a.transpose(-1, -2) / (rows * cols)[:, None, None]
        for _ in range(self.steps):
            z = z @ (2 * eye - a @ z)
        return z


class Whitened(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.fc, self.inverse, self.head = nn.Linear(width, width), NewtonSchulzInverse(), nn.Linear(width, width)

    def forward(self, x):
        h = self.fc(x)
        return self.head(self.inverse(h @ h.transpose(-1, -2)) @ h)


def test_moments_that_overflow_are_named_not_raised():
    torch.manual_seed(0)
    model, x = Whitened(), torch.randn(4, 16, 32, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)   # was ValueError: b.second must be a finite number >= 0, got inf
    assert any("overflow" in note and "inverse" in note for note in report.notes), report.notes
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    with torch.no_grad():
        assert bool(torch.isfinite(model(x)).all())


class SqueezeExcite(nn.Module):
    """conv -> BatchNorm -> ReLU, then squeeze-and-excitation: the channels' means through
    two 1x1 convolutions and a sigmoid scale whole channels (timm's way), or through two
    Linear layers, the gate reshaped to (B, C, 1, 1) after the sigmoid (senet.pytorch's),
    and expanded to the signal's shape before the product (`expanded`)."""

    def __init__(self, cin, channels, reduction=4, flat=False):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(cin, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.flat = flat
        layer = nn.Linear if flat else partial(nn.Conv2d, kernel_size=1)
        self.fc1 = layer(channels, channels // reduction)
        self.fc2 = layer(channels // reduction, channels)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        if self.flat == "expanded":
            return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3)))))).view(*x.shape[:2], 1, 1).expand_as(x)
        if self.flat:
            return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))[:, :, None, None]
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


@pytest.mark.parametrize("flat", [False, True, "expanded"],
                         ids=["1x1 convolutions", "reshaped after the sigmoid", "expanded to the signal's shape"])
def test_a_gate_that_scales_whole_channels_gets_no_activation_verdict(flat):
    torch.manual_seed(0)
    model = nn.Sequential(*(SqueezeExcite(3 if i == 0 else 16, 16, flat=flat) for i in range(6)),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)
    # was "sigmoid: trade-off: ... chi_1 = 0.1528, so gradients change x0.00357 in std over its 6 layers"
    # the ReLU after the BatchNorm is judged alone (the norms hold the forward), the squeeze's in series
    assert sorted(v.activation for v in report.verdicts) == ["relu", "relu after batch statistics"], [
        v.message for v in report.verdicts]
    assert report.healthy


class SiameseTower(nn.Module):
    """One tower, ending in a sigmoid, applied to two inputs (or, `series`, to its own
    output again), then a head on |e1 - e2|."""

    def __init__(self, series=False):
        super().__init__()
        self.series = series
        self.tower = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.Sigmoid())
        self.head = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, a, b):
        e1 = self.tower(a)
        e2 = self.tower(e1 if self.series else b)
        return self.head(torch.abs(e1 - e2))


@pytest.mark.parametrize("series", [False, True], ids=["side by side", "in series"])
def test_one_module_called_side_by_side_is_not_in_series(series):
    # a siamese network's two calls of its tower pass the gradient through one sigmoid each:
    # its verdict was over 2 layers in series (NOT healthy: sigmoid, x0.153 in std)
    torch.manual_seed(0)
    model, x = SiameseTower(series), (torch.randn(64, 32), torch.randn(64, 32))
    report = _init(model, x)
    (sigmoid,) = [v for v in report.verdicts if v.activation == "sigmoid"]
    assert sigmoid.depth == (2 if series else 1), sigmoid.message
    assert sigmoid.healthy or series


def test_an_activation_after_a_residual_addition_is_judged_alone():
    # ResNet-50's layout: relu(x + f(x)) after each of 16 bottleneck blocks; no layer scales the
    # stream between two of them and each branch adds its gradient back, yet they were taken in
    # series: "relu: trade-off ... x0.0929 in std over its 12 layers", NOT healthy, with the
    # measured first/last ratio in band
    torch.manual_seed(0)
    model = BottleneckResNet(stages=(3, 4, 6, 3))
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    report = _init(model, x)
    assert report.healthy, [v.message for v in report.verdicts]
    after = [v for v in report.verdicts if v.activation == "relu after a residual addition"]
    assert len(after) == 1 and after[0].depth == 1, [v.message for v in report.verdicts]
    assert 0.25 <= verdict(*profile(model, x))["grad_ratio"] <= 4.0


class _UnrolledTanhRNN(nn.Module):
    """h_t = tanh(W x_t + U h_(t-1)) over 48 steps, written in forward, then a head."""

    def __init__(self, width=32, steps=48):
        super().__init__()
        self.inp, self.rec, self.head = nn.Linear(16, width), nn.Linear(width, width), nn.Linear(width, 4)
        self.steps = steps

    def forward(self, x):
        drive = self.inp(x)
        h = torch.zeros_like(drive[:, 0])
        for t in range(self.steps):
            h = torch.tanh(drive[:, t] + self.rec(h))
        return self.head(h)


def test_an_activation_stepped_over_one_layers_output_counts_that_layer_once():
    # RWKV's time loop counted each of its 512 steps as a layer ("x6.20 per layer ... over 512"),
    # and its power overflowed; the tanh here follows the input layer's output, one layer
    report = _init(_UnrolledTanhRNN(), torch.randn(8, 48, 16, generator=torch.Generator().manual_seed(0)))
    (tanh,) = [v for v in report.verdicts if v.activation == "tanh"]
    assert tanh.depth == 1, tanh.message


class _CopiedAndMasked(nn.Module):
    """Rows copied into a buffer made in forward (x.copy_), a gathered half scattered back
    (zeros.scatter(1, index, src)), and a router-style mask made by scattering a number
    into zeros and read as .bool() (DeepSeek's group mask), then a head."""

    def __init__(self):
        super().__init__()
        self.fc, self.router, self.head = nn.Linear(32, 32), nn.Linear(32, 4), nn.Linear(32, 8)

    def forward(self, x):
        h = torch.empty_like(x).copy_(F.relu(self.fc(x)))
        index = torch.arange(16, device=x.device).repeat(x.shape[0], 1) * 2     # every other column
        h = torch.zeros_like(h).scatter(1, index, h.gather(1, index))
        top = self.router(x).topk(2, dim=-1).indices
        keep = torch.zeros(x.shape[0], 4, device=x.device).scatter_(1, top, 1.0).bool()
        return self.head(h) * keep.any(-1, keepdim=True)


def test_a_copy_and_a_scatter_of_the_signal_are_written_shares_and_a_float_mask_read_as_bool_is_not_named():
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(_CopiedAndMasked(), x, generator=0, measure=False)
    assert not any("without a moment rule" in str(w.message) for w in caught), [str(w.message) for w in caught]
    # h keeps the relu output on half its columns and zeros elsewhere: nu_in = 0.5 * 0.5
    (head,) = [r for r in report if r.name == "head.weight"]
    assert "nu_in 0.25" in head.rule, head.rule


class _TanhBranches(nn.Module):
    """24 pre-norm residual blocks x + W2 tanh(W1 LN(x)), then a head."""

    def __init__(self, width=32, blocks=24):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(blocks))
        self.ins = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.outs = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        for norm, inner, outer in zip(self.norms, self.ins, self.outs):
            x = x + outer(torch.tanh(inner(norm(x))))
        return self.head(x)


def test_activations_on_residual_branches_are_not_in_series():
    # the stream carries the gradient around each branch: tanh's chi_1 = 1.18 acts once per
    # branch, not 24 times in series ("trade-off ... over its 24 layers" and NOT healthy before);
    # the same tanh chained without the skips keeps its verdict (test_dataflow_init's tanh trade-off)
    report = _init(_TanhBranches(), torch.randn(64, 32, generator=torch.Generator().manual_seed(0)))
    (tanh,) = [v for v in report.verdicts if v.activation == "tanh"]
    assert tanh.depth == 1 and tanh.healthy, tanh.message


class _SharedExpertBlocks(nn.Module):
    """DeepSeek-V3's MLP layout: x + (the top 2 of the routed experts, weighted by their
    router's sigmoid scores renormalized, + a shared expert), pre-norm, over several blocks;
    the routed sum is added to the shared expert's output before the stream."""

    def __init__(self, width=32, blocks=4, experts=3):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(blocks))
        self.routers = nn.ModuleList(nn.Linear(width, experts, bias=False) for _ in range(blocks))
        self.experts = nn.ModuleList(
            nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))
                          for _ in range(experts)) for _ in range(blocks))
        self.shared = nn.ModuleList(
            nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))
            for _ in range(blocks))
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        for norm, router, experts, shared in zip(self.norms, self.routers, self.experts, self.shared):
            h = norm(x)
            scores = torch.sigmoid(router(h))
            top = scores.topk(2, dim=-1).indices
            weights = scores.gather(-1, top)
            weights = weights / weights.sum(-1, keepdim=True)
            routed = sum(weights[:, k:k + 1] * torch.stack([expert(h) for expert in experts], 1)[
                torch.arange(len(h)), top[:, k]] for k in range(2))
            x = x + (routed + shared(h))
        return self.head(x)


def test_a_router_beside_a_shared_expert_is_on_its_block_s_branch():
    # the addition finds the shared expert's last layer as the branch's end; the routed
    # experts summed with it are on the same branch, so the router's sigmoid acts once per
    # block, not in series over the 4 blocks (DeepSeek-V3: "sigmoid: trade-off ... over its
    # 3 layers", NOT healthy before)
    report = _init(_SharedExpertBlocks(), torch.randn(64, 32, generator=torch.Generator().manual_seed(0)))
    (sigmoid,) = [v for v in report.verdicts if v.activation == "sigmoid"]
    assert sigmoid.depth == 1 and sigmoid.healthy, sigmoid.message
    assert report.healthy, [v.message for v in report.verdicts]


class _TwoEmbeddingStream(nn.Module):
    """A stream that starts at second moment 2 (token plus position embeddings, or a
    projection shortcut beside a branch: timm's ViTamin and GCViT stages), then 3 pre-norm
    MLP blocks and a head."""

    def __init__(self, width=64, blocks=3):
        super().__init__()
        self.tok, self.pos = nn.Embedding(100, width), nn.Embedding(16, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
            for _ in range(blocks))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 4)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = x + block(x)
        return self.head(self.norm(x))


def test_a_branch_end_adds_at_most_the_layers_target_to_a_stream_above_it():
    # 3 blocks may grow a stream of 2 4-fold: 2 each, which put the branches' ends at std
    # 1.41 above the unit layers inside them (ViTamin act 2.65, GCViT 7.6 against the 0.58 of
    # its later stages' branches); each end now adds at most the target, 1
    torch.manual_seed(0)
    model, ids = _TwoEmbeddingStream(), torch.randint(0, 100, (16, 16), generator=torch.Generator().manual_seed(0))
    report = {r.name: r.rule for r in _init(model, ids)}
    assert "0.5 of the stream's 2," in report["blocks.0.3.weight"], report["blocks.0.3.weight"]
    rows, output_std = profile(model, ids)
    ends = [std for name, std, _ in rows if name.endswith(".3")]
    assert len(ends) == 3 and max(ends) <= 1.15, rows
    v = verdict(rows, output_std)
    assert v["act_ratio"] <= 1.3 and 0.5 <= v["output_std"] <= 2.0, v


class _SelectiveScan(nn.Module):
    """Mamba's selective scan written out (Gu & Dao 2023): h_t = exp(dt_t A) h_{t-1} + dt_t u_t
    with dt = softplus(W x) >= 0 and A = -exp(A_log) <= 0, in pre-norm residual blocks."""

    def __init__(self, width=32, blocks=3):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(blocks))
        self.ins = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.dts = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.a_logs = nn.ParameterList(nn.Parameter(torch.log(torch.arange(1.0, width + 1))) for _ in range(blocks))
        self.outs = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        for norm, inner, dt_layer, a_log, out in zip(self.norms, self.ins, self.dts, self.a_logs, self.outs):
            h = norm(x)
            u, dt = F.silu(inner(h)), F.softplus(dt_layer(h))
            decay = torch.exp(dt * -torch.exp(a_log))
            state, states = torch.zeros_like(u[:, 0]), []
            for t in range(x.shape[1]):
                state = decay[:, t] * state + dt[:, t] * u[:, t]
                states.append(state)
            x = x + out(torch.stack(states, 1))
        return self.head(x)


@pytest.mark.parametrize("meta", [False, True])
def test_a_decay_exp_of_a_nonpositive_input_is_a_factor_in_0_1(meta):
    # dt * A <= 0 keeps exp(dt * A) in (0, 1]; a Gaussian with its moments (mean -13, wide)
    # reaches exp of large positive values: "exp: no stable choice", NOT healthy, and moments
    # that overflow, on Hugging Face's Mamba, Jamba and Zamba before
    x = torch.randn(8, 6, 32, generator=torch.Generator().manual_seed(0))
    model = _SelectiveScan()
    report = _init(model, x.to("meta") if meta else x)
    assert not [v for v in report.verdicts if v.activation.startswith("exp")], report.verdicts
    assert report.healthy, [v.message for v in report.verdicts]
    assert not [n for n in report.notes if "overflow" in n or n.startswith("exp")], report.notes
    rows, output_std = profile(model, x)
    v = verdict(rows, output_std)
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


class _AdaLNZeroBlocks(nn.Module):
    """DiT's blocks (Peebles & Xie 2023): x + gate(c) * attn(modulate(LN(x), shift(c), scale(c))),
    then the same around an MLP, with the condition c a class embedding broadcast over the
    tokens."""

    def __init__(self, width=64, blocks=8, classes=10):
        super().__init__()
        self.embed, self.classes = nn.Linear(16, width), nn.Embedding(classes, width)
        self.attns = nn.ModuleList(nn.MultiheadAttention(width, 4, batch_first=True) for _ in range(blocks))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
                                  for _ in range(blocks))
        self.modulations = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width)) for _ in range(blocks))
        self.norm, self.head = nn.LayerNorm(width, elementwise_affine=False), nn.Linear(width, 16)
        self.register_buffer("labels", torch.arange(8) % classes)

    def forward(self, x):
        def modulate(h, shift, scale):
            return F.layer_norm(h, h.shape[-1:]) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)

        x, c = self.embed(x), self.classes(self.labels)
        for attn, mlp, modulation in zip(self.attns, self.mlps, self.modulations):
            shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation(c).chunk(6, dim=1)
            h = modulate(x, shift_a, scale_a)
            x = x + gate_a.unsqueeze(1) * attn(h, h, h, need_weights=False)[0]
            x = x + gate_m.unsqueeze(1) * mlp(modulate(x, shift_m, scale_m))
        return self.head(self.norm(x))


def test_a_branch_gated_by_a_condition_is_a_residual_branch():
    # the gate comes from the condition, not the stream: the branch ends at the layer it
    # gates, which takes its share of the stream's budget; before, each of the 16 branches
    # added a unit, and the stream grew to 17 times its start
    torch.manual_seed(0)
    model, x = _AdaLNZeroBlocks(), torch.randn(8, 12, 16, generator=torch.Generator().manual_seed(0))
    report = {r.name: r.rule for r in _init(model, x)}
    assert "residual branch end" in report["mlps.3.2.weight"], report["mlps.3.2.weight"]
    assert "residual branch end" in report["attns.3.out_proj.weight"], report["attns.3.out_proj.weight"]
    seen = []
    hook = model.norm.register_forward_pre_hook(lambda m, a: seen.append(float(a[0].double().pow(2).mean())))
    with torch.no_grad():
        model(x)
    hook.remove()
    assert seen[0] <= 8.0, seen
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


class _SinusoidalTimestep(nn.Module):
    """A diffusion model's timestep embedding (Ho et al. 2020): the sines and cosines of a
    buffer of integer timesteps, made in forward, read by an MLP whose output is added to
    the features."""

    def __init__(self, width=32):
        super().__init__()
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.layer, self.head = nn.Linear(width, width), nn.Linear(width, 4)
        self.register_buffer("steps", torch.tensor([3, 150, 600, 999]))

    def forward(self, x):
        half = x.shape[-1] // 2
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=self.steps.device) / half)
        args = self.steps[:, None].float() * frequencies
        embedding = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
        return self.head(F.silu(self.layer(x) + self.time(embedding)))


@pytest.mark.parametrize("meta", [False, True])
def test_a_tensor_made_in_forward_that_a_layer_reads_has_its_values_read(meta):
    # the embedding is computed from a buffer, which the meta trace holds as a meta twin: its
    # values were unknown, the first layer assumed a unit second moment and said so; on a real
    # trace they are read, and sin^2 and cos^2 average to exactly one half
    x = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    report = _init(_SinusoidalTimestep(), x.to("meta") if meta else x)
    (first,) = [r for r in report if r.name == "time.0.weight"]
    assert "nu_in 0.5)" in first.rule, first.rule
    assert not [n for n in report.notes if "moments are unknown" in n], report.notes


class ReluStemStack(nn.Module):
    """A 1-D conv encoder through ReLU, then residual blocks without norms (a separation
    network's stack): the stream starts at half the target."""

    def __init__(self, width=64, blocks=6):
        super().__init__()
        self.encoder = nn.Conv1d(1, width, 16, 8)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv1d(width, 2 * width, 1), nn.ReLU(),
                                                  nn.Conv1d(2 * width, width, 3, padding=1)) for _ in range(blocks))
        self.decoder = nn.ConvTranspose1d(width, 1, 16, 8)

    def forward(self, x):
        h = F.relu(self.encoder(x))
        for block in self.blocks:
            h = h + block(h)
        return self.decoder(h)


def test_a_chain_started_below_the_target_grows_from_a_floor():
    # from relu's 0.5, a third of the start per block left each branch's end at std 0.5 of the
    # layers inside it (act 2.03 on such a stack); counted from 1 / 1.35 of the target: 0.61
    torch.manual_seed(0)
    model, x = ReluStemStack(), torch.randn(4, 1, 1024, generator=torch.Generator().manual_seed(1))
    report = {r.name: r.rule for r in _init(model, x)}
    assert "the start counted within 0.7407 and 1.35 times the target" in report["blocks.5.2.weight"]
    torch.manual_seed(1)
    rows, output_std = profile(model, x)
    ends = [act for name, act, _ in rows if name.startswith("blocks.") and name.endswith(".2")]
    assert len(ends) == 6 and all(0.55 < e < 0.68 for e in ends), ends
    v = verdict(rows, output_std)
    assert v["act_ratio"] <= 1.9 and 0.5 <= v["output_std"] <= 2.0 and 0.25 <= v["grad_ratio"] <= 4.0, v


class ReluStemMLP(nn.Module):
    """relu(embed(x)), then `blocks` residual MLP branches, read by a head."""

    def __init__(self, blocks, width=64):
        super().__init__()
        self.embed = nn.Linear(16, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
                                    for _ in range(blocks))
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        h = F.relu(self.embed(x))
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def test_the_floor_of_a_chain_s_start_keeps_the_stream_s_growth_within_its_budget():
    # 45 blocks from relu's 0.5: counted from 1 / 1.35 of the target, the stream would grow
    # 1 + 15 * 0.74 / 0.5 = 23-fold; the floor gives way where the budget's 16-fold would break
    torch.manual_seed(0)
    model, x = ReluStemMLP(blocks=45), torch.randn(512, 16, generator=torch.Generator().manual_seed(1))
    _init(model, x, measure=False)
    seconds = []
    hook = model.head.register_forward_pre_hook(lambda m, a: seconds.append(float(a[0].double().pow(2).mean())))
    with torch.no_grad():
        start = float(F.relu(model.embed(x)).double().pow(2).mean())
        model(x)
    hook.remove()
    assert 12.0 < seconds[0] / start < 16.0 * 1.15, seconds[0] / start


def test_a_chain_started_by_summed_embeddings_grows_from_the_target_not_the_sum():
    # token + position embeddings start the stream at twice the target: a third of that per
    # branch made each branch end 0.82 of the layers inside it and grew the stream 2 + 24 x 0.74
    # (12 blocks: gradient ratio 3.96); counted from 1.35 of the target, each adds 0.45
    torch.manual_seed(0)
    model, ids = TinyGPT(layers=12), torch.randint(0, 512, (16, 32))
    report = {r.name: r.rule for r in _init(model, ids)}
    assert "the start counted within 0.7407 and 1.35 times the target" in report["blocks.11.fc2.weight"]
    streams = []
    hook = model.ln.register_forward_pre_hook(lambda m, a: streams.append(float(a[0].double().pow(2).mean())))
    with torch.no_grad():
        model(ids)
    hook.remove()
    assert streams[0] <= 2.0 + 24 * 0.45 * 1.1, streams
    v = verdict(*profile(model, ids, seed=1))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0 and 0.25 <= v["grad_ratio"] <= 3.5, v


class LinearAttention(nn.Module):
    """Katharopoulos et al. 2020: softmax replaced by elu + 1 features and a normalizer
    1 / (phi(q) . sum phi(k) + eps), written with einsum."""

    def __init__(self, d=64, heads=4):
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = torch.einsum("bnhd,bnhe->bhde", k, v)
        z = 1 / (torch.einsum("bnhd,bhd->bnh", q, k.sum(dim=1)) + 1e-6)
        return self.out(torch.einsum("bnhd,bhde,bnh->bnhe", q, kv, z).reshape(b, n, d))


def test_a_normalizer_whose_gaussian_moments_diverge_is_a_function_of_a_statistic():
    # 1 / (x + eps) over the Gaussian stand-in of a positive sum has no finite second moment:
    # the quadrature halved its panels 40 times (minutes per model) and the verdict judged it
    # as an activation, "no stable choice: E[g^2] grows like q^1787" (NOT healthy)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), *[nn.Sequential(nn.LayerNorm(64), LinearAttention())
                                              for _ in range(2)], nn.Linear(64, 10))
    x = torch.randn(8, 32, 32)
    report = _init(model, x)
    assert report.healthy, report.summary()
    assert not any("rdiv" in v.activation for v in report.verdicts), [v.activation for v in report.verdicts]
    v = verdict(*profile(model, x, seed=1))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


class ExpDecays(nn.Module):
    """A recurrence over exp(30 h) decays, as RWKV's and state-space scans' are: a quadrature of
    its square overflows float64."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, x):
        w = torch.exp(30 * self.a(x))
        s = torch.zeros_like(w[:, 0])
        for t in range(w.shape[1]):
            s = s * w[:, t] + 1
        return self.b(torch.tanh(w / (1 + w)) + s[:, None])


def test_moments_that_overflow_are_named_without_numpy_s_warnings():
    # numpy's "overflow encountered in square" reached the user, 256 times on an RWKV stack
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(ExpDecays(), torch.randn(64, 16), generator=0)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert any(n.startswith("moments that overflow") for n in report.notes), report.notes


def test_a_branch_end_s_measured_goal_is_capped_as_the_solve_caps_it():
    # alpha times a stream measured at 4 asks for 2; the solve's cap (the layers' target) holds it at 1
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.end = nn.Linear(32, 32, bias=False), nn.Linear(32, 32, bias=False)

        def forward(self, x):
            return x + self.end(F.relu(self.inner(x)))

    torch.manual_seed(0)
    model, x = Branch(), 2.0 * torch.randn(512, 32)
    stream = float(x.pow(2).mean())
    end = float(model.end(F.relu(model.inner(x))).detach().var())
    free = Target("end.weight", "end", None, "", 0.5, False)
    capped = free._replace(cap=1.0)
    assert correction_factors(model, x, [free])["end.weight"] == pytest.approx(math.sqrt(0.5 * stream / end),
                                                                                 rel=1e-6)
    assert correction_factors(model, x, [capped])["end.weight"] == pytest.approx(math.sqrt(1.0 / end), rel=1e-6)
    # the plan gives each branch end the cap of its solved goal: the target, here
    ends = [t for t in plan(model, x).measurable if t.stream is not None]
    assert len(ends) == 1 and ends[0].cap == pytest.approx(1.0)


class StraightThrough(nn.Module):
    """z + (y - z).detach() (VQ-VAE's straight-through codes), or the hard Gumbel form
    y - z.detach() + z: the value is y's, the gradient z's."""

    def __init__(self, gumbel=False):
        super().__init__()
        self.gumbel = gumbel
        self.a, self.b, self.head = nn.Linear(32, 64), nn.Linear(32, 64), nn.Linear(64, 16)

    def forward(self, x):
        y, z = F.relu(self.a(x)), 3.0 * self.b(x)
        through = y - z.detach() + z if self.gumbel else z + (y - z).detach()
        return self.head(through)


@pytest.mark.parametrize("gumbel", [False, True])
def test_a_straight_through_sum_has_the_moments_of_the_value_it_passes(gumbel):
    torch.manual_seed(0)
    model, x = StraightThrough(gumbel), torch.randn(4096, 32)
    p = plan(model, x)
    nodes = p.graph.nodes
    add = max(i for i, n in enumerate(nodes) if n.kind in ("add", "sub"))
    relu = next(i for i, n in enumerate(nodes) if n.attrs.get("op") == "relu")
    assert p.moments[add] == p.moments[relu]
    # independent terms would have added z's 9-fold second moment twice: the head, solved for
    # its input's moments, gave an output std of sqrt(0.5 / 18.5) = 0.16; measured here without
    # the measured pass, which would correct it
    _init(model, x, measure=False)
    with torch.no_grad():
        out = float(model(x).std())
    assert 0.85 <= out <= 1.15, out


class Unpooled(nn.Module):
    """SegNet's way: max pooling with indices, and max unpooling by them in the decoder."""

    def __init__(self, channels=64):
        super().__init__()
        self.enc, self.dec = nn.Conv2d(3, channels, 3, padding=1), nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Conv2d(channels, 8, 1)

    def forward(self, x):
        h, indices = F.max_pool2d(F.relu(self.enc(x)), 2, return_indices=True)
        return self.head(F.relu(self.dec(F.max_unpool2d(h, indices, 2))))


def test_max_unpooling_keeps_a_quarter_of_the_positions_and_zeros_the_rest():
    torch.manual_seed(0)
    model, x = Unpooled(), torch.randn(16, 3, 32, 32)
    _init(model, x, measure=False)
    p = plan(model, x)
    unpool = next(i for i, n in enumerate(p.graph.nodes) if n.kind == "max_unpool")
    with torch.no_grad():
        h, indices = F.max_pool2d(F.relu(model.enc(x)), 2, return_indices=True)
        y = F.max_unpool2d(h, indices, 2).double()
    assert p.moments[unpool].second == pytest.approx(float(y.pow(2).mean()), rel=0.1)
    assert p.moments[unpool].mean == pytest.approx(float(y.mean()), rel=0.1)
    assert not any("without a moment rule" in n for n in p.notes)
    # the layer after it reads its moments: without the rule it took a unit input (std 0.5 here)
    with torch.no_grad():
        assert 0.85 <= float(model.dec(F.max_unpool2d(h, indices, 2)).std()) <= 1.15


class InstanceNormalized(nn.Module):
    """RevIN without affine (Kim et al. 2022), as PatchTST writes it: each series
    normalized by its own mean and std, and the forecast mapped back, y * std + mean."""

    def __init__(self, length=96, horizon=24, width=128):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(length, width), nn.GELU(), nn.Linear(width, width), nn.GELU())
        self.head = nn.Linear(width, horizon)

    def forward(self, x):
        mean = x.mean(-1, keepdim=True).detach()
        std = torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5).detach()
        return self.head(self.body((x - mean) / std)) * std + mean


def test_a_mean_added_back_over_every_position_is_no_residual_stream():
    # mean (batch, series, 1) broadcast over the horizon was read as the stream of a residual
    # branch ending at the head: the head solved to 1/96 of the layers' target (out 0.14)
    torch.manual_seed(0)
    model, x = InstanceNormalized(), torch.randn(32, 7, 96)
    report = _init(model, x)
    assert "residual" not in {r.name: r.rule for r in report}["head.weight"]
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0, v


class WrittenLayerNorm(nn.Module):
    """A LayerNorm written out as the Annotated Transformer writes it (x.std, unbiased), or
    with x.var(unbiased=False) under a root, after ReLU features."""

    def __init__(self, width=64, by_var=False):
        super().__init__()
        self.by_var = by_var
        self.inner, self.outer = nn.Linear(32, width), nn.Linear(width, 16)

    def forward(self, x):
        h = F.relu(self.inner(x))
        mean = h.mean(-1, keepdim=True)
        if self.by_var:
            spread = torch.sqrt(h.var(-1, keepdim=True, unbiased=False) + 1e-5)
        else:
            spread = h.std(-1, keepdim=True) + 1e-6
        return self.outer((h - mean) / spread)


@pytest.mark.parametrize("by_var", [False, True])
def test_a_layer_norm_written_out_with_std_or_var_has_its_moments(by_var):
    torch.manual_seed(0)
    model, x = WrittenLayerNorm(by_var=by_var), torch.randn(4096, 32)
    _init(model, x, measure=False)
    p = plan(model, x)
    assert not any("without a moment rule" in n for n in p.notes), p.notes
    nodes = p.graph.nodes
    statistic = next(i for i, n in enumerate(nodes) if n.kind in ("var", "std"))
    normalized = next(i for i, n in enumerate(nodes) if n.kind == "div")
    with torch.no_grad():
        h = F.relu(model.inner(x)).double()
        measured = h.var(-1, keepdim=True, unbiased=not by_var)
        measured = measured if by_var else measured.sqrt()
    assert p.moments[statistic].mean == pytest.approx(float(measured.mean()), rel=0.05)
    assert p.moments[normalized].second == pytest.approx(1.0, rel=0.05)
    # the layer after it, solved for unit inputs, gives unit outputs
    with torch.no_grad():
        assert 0.9 <= float(model(x).std()) <= 1.1


class CausalLinearAttention(nn.Module):
    """Causal linear attention (Katharopoulos et al. 2020) written with torch.cumsum: the
    state S_i = sum_{j <= i} phi(k_j) v_j^T and normalizer z_i = sum_{j <= i} phi(k_j),
    phi = elu + 1, in pre-norm residual blocks; the products by @ and a sum, or by einsum."""

    def __init__(self, width=32, blocks=3, einsum=False):
        super().__init__()
        self.einsum = einsum
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(blocks))
        self.qkv = nn.ModuleList(nn.Linear(width, 3 * width) for _ in range(blocks))
        self.out = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))

    def attend(self, block, x):
        q, k, v = self.qkv[block](self.norms[block](x)).chunk(3, dim=-1)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        state = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=1)
        z = k.cumsum(1)
        if self.einsum:
            numerator = torch.einsum("btd,btde->bte", q, state)
            return numerator, numerator / (torch.einsum("btd,btd->bt", q, z).unsqueeze(-1) + 1e-6)
        numerator = (q.unsqueeze(-2) @ state).squeeze(-2)
        return numerator, numerator / (q * z).sum(-1, keepdim=True)

    def forward(self, x):
        for block, out in enumerate(self.out):
            x = x + out(self.attend(block, x)[1])
        return x


@pytest.mark.parametrize("einsum", [False, True])
def test_running_sums_and_linear_attention_have_their_moments(einsum):
    torch.manual_seed(0)
    model, x = CausalLinearAttention(einsum=einsum), torch.randn(16, 24, 32)
    _init(model, x, measure=False)
    p = plan(model, x)
    assert not any("without a moment rule" in n for n in p.notes), p.notes
    nodes = p.graph.nodes
    sums = [i for i, n in enumerate(nodes) if n.kind == "cumsum"][:2]
    product = next(i for i, n in enumerate(nodes) if n.kind == "matmul")
    averages = [i for i, n in enumerate(nodes) if n.kind == "div"]
    with torch.no_grad():
        h, measured = x.double(), []
        model.double()
        for block, out in enumerate(model.out):
            numerator, y = model.attend(block, h)
            measured.append(y)
            h = h + out(y)
        q, k, v = model.qkv[0](model.norms[0](x.double())).chunk(3, dim=-1)
        k = F.elu(k) + 1
        state, z = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=1), k.cumsum(1)
        numerator = model.attend(0, x.double())[0]
    second = {sums[0]: state, sums[1]: z, product: numerator}
    for index, values in second.items():
        assert p.moments[index].second == pytest.approx(float((values * values).mean()), rel=0.15), nodes[index]
    # the state's entries taken as independent along the contraction: the numerator ~20 times low
    independent = matmul(p.moments[nodes[product].inputs[0]], p.moments[sums[0]], 32).second
    assert float((numerator * numerator).mean()) > 10 * independent
    # each block's output averages the values: the part the positions share grows block by block
    # (a causal average of averages), which the prediction follows within 30%
    assert len(averages) == len(measured) == 3
    for index, y in zip(averages, measured):
        assert p.moments[index].second == pytest.approx(float((y * y).mean()), rel=0.3), index
    assert float((measured[2] ** 2).mean()) > 2.5 * float((measured[0] ** 2).mean())


class TwoSignals(nn.Module):
    """Two independent signals combined per element: their maximum (an mLSTM's stabilizer),
    a division by a function of one that keeps away from zero, and a sinusoidal table
    registered as a buffer and added."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a, self.b, self.head = nn.Linear(16, 64), nn.Linear(16, 64), nn.Linear(64, 8)
        angles = torch.arange(32)[:, None] / 10000 ** (torch.arange(0, 64, 2) / 64)
        self.register_buffer("table", torch.cat([angles.sin(), angles.cos()], dim=-1))

    def combined(self, x):
        h, y = self.a(x), self.b(x)
        if self.how == "maximum":
            return torch.maximum(h + 0.5, y)
        if self.how == "minimum":
            return torch.minimum(h, 2 * y)
        if self.how == "divided":
            return h / (y.abs() + 1)
        return h + self.table

    def forward(self, x):
        return self.head(self.combined(x))


@pytest.mark.parametrize("how", ["maximum", "minimum", "divided", "table"])
def test_elementwise_ops_of_two_signals_and_a_fixed_table_have_their_moments(how):
    torch.manual_seed(0)
    model, x = TwoSignals(how), torch.randn(512, 32, 16)
    _init(model, x, measure=False)
    p = plan(model, x)
    assert not any("without a moment rule" in n for n in p.notes), p.notes
    combined = next(n for n in p.graph.nodes if n.module == "head").inputs[0]
    with torch.no_grad():
        y = model.combined(x).double()
    assert p.moments[combined].second == pytest.approx(float((y * y).mean()), rel=0.03), how
    assert p.moments[combined].mean == pytest.approx(float(y.mean()), abs=0.03), how


def test_an_op_recorded_for_another_is_named_by_both():
    class Floor(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            h = self.a(x)
            return self.b(x) / torch.maximum(h.abs(), torch.ones_like(h))

    p = plan(Floor(), torch.randn(64, 8))
    assert any("torch.where (in torch.maximum)" in n for n in p.notes), p.notes


class RMSNormedMLP(nn.Module):
    """Hugging Face's RMSNorm written out, h * rsqrt(mean(h^2) + eps) * w, on a signal of
    std 3."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 8)
        self.weight = nn.Parameter(torch.ones(64))

    def normalized(self, x):
        h = 3 * self.a(x)
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight

    def forward(self, x):
        return self.c(torch.relu(self.b(self.normalized(x))))


def test_a_function_of_a_mean_of_squares_is_a_statistic_s_not_a_one_signed_input_s():
    """mean(h^2) never goes below 0, but rsqrt of it is taken at its concentrated value
    (the delta method), not over a Gamma law of a one-signed input (which read the
    normalized second moment 3% high here, and moved T5's and Gemma's inits)."""
    torch.manual_seed(0)
    model, x = RMSNormedMLP(), torch.randn(256, 16)
    _init(model, x, measure=False)
    p = plan(model, x)
    with torch.no_grad():
        measured = float(model.normalized(x).pow(2).mean())
    layer = next(n for n in p.graph.nodes if n.module == "b")
    assert p.moments[layer.inputs[0]].second == pytest.approx(measured, rel=0.015)


class LinformerBlocks(nn.Module):
    """Linformer (Wang et al. 2020): keys and values projected along the sequence by
    learned (k x n) matrices, E K and F V, in pre-norm residual blocks on token ids."""

    def __init__(self, width=64, length=48, projected=12, blocks=3):
        super().__init__()
        self.tok = nn.Embedding(300, width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(blocks))
        self.qkv = nn.ModuleList(nn.Linear(width, 3 * width, bias=False) for _ in range(blocks))
        self.E = nn.ParameterList(nn.Parameter(torch.randn(projected, length)) for _ in range(blocks))
        self.F = nn.ParameterList(nn.Parameter(torch.randn(projected, length)) for _ in range(blocks))
        self.out = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))

    def attend(self, block, x):
        q, k, v = self.qkv[block](self.norms[block](x)).chunk(3, dim=-1)
        k = torch.einsum("kn,bnd->bkd", self.E[block], k)
        v = torch.einsum("kn,bnd->bkd", self.F[block], v)
        return (q @ k.transpose(-1, -2) / 8).softmax(-1) @ v

    def forward(self, ids):
        x = self.tok(ids)
        for block, out in enumerate(self.out):
            x = x + out(self.attend(block, x))
        return x


def test_a_projection_along_the_positions_leaves_nothing_shared_by_them():
    """F V mixes the positions with weights of mean zero: what the values share over the
    positions (the residual stream's growing common part) is not shared by F V's rows, so
    attention over them averages it down like the rest (carried as shared, the averages'
    second moments read high and the output layers were solved small: act 3.15 on a
    4-block Linformer from shapes alone)."""
    torch.manual_seed(0)
    model, ids = LinformerBlocks(), torch.randint(0, 300, (64, 48))
    _init(model, ids.to("meta"), measure=False)
    p = plan(model, ids)
    projected = [n for n in p.graph.nodes if n.kind == "linear" and n.attrs.get("over_features") is False]
    assert len(projected) == 6
    assert all(p.common[n.index] <= 0.05 * p.moments[n.index].second for n in projected)
    outs = [n for n in p.graph.nodes if n.module.startswith("out.")]
    with torch.no_grad():
        h, measured = model.tok(ids), []
        for block, out in enumerate(model.out):
            y = model.attend(block, h)
            measured.append(float((y * y).mean()))
            h = h + out(y)
    for node, second in zip(outs, measured):
        assert p.moments[node.inputs[0]].second == pytest.approx(second, rel=0.25), node.module


def test_differences_of_a_running_sum_or_a_softmax_with_itself_are_not_read_as_a_mean():
    """Mamba2's segment sums c_i - c_j of a cumsum, and h - softmax(h): the subtrahend's
    dim is one int, not a reduction's dims (reading it as one raised a TypeError)."""

    class Differences(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            h = self.a(x)
            c = torch.cumsum(h, dim=1)
            segments = (c[:, :, None, :] - c[:, None, :, :]).mean(2)
            return self.b(segments + (h - h.softmax(-1)))

    p = plan(Differences(), torch.randn(4, 6, 8))
    assert not any("without a moment rule" in n for n in p.notes), p.notes
    assert all(p.moments[n.index] is not None for n in p.graph.nodes if n.kind == "sub")


def test_a_vocabulary_looked_up_for_two_inputs_is_said_to_be_one():
    class TwoTexts(nn.Module):
        def __init__(self):
            super().__init__()
            self.words, self.head = nn.Embedding(100, 16), nn.Linear(32, 4)

        def forward(self, context, query):
            return self.head(torch.cat([self.words(context).mean(1), self.words(query).mean(1)], -1))

    ids = (torch.randint(0, 100, (8, 12)), torch.randint(0, 100, (8, 5)))
    report = _init(TwoTexts(), ids)
    rule = {r.name: r.rule for r in report}["words.weight"]
    assert "its first lookup (the others read the same rows" in rule and "VQ-VAE" not in rule, rule


def test_a_running_sum_of_terms_weighted_by_position_is_named_not_predicted():
    """An exponential moving average written q^t cumsum(q^-j u_j) (Mega's): the terms'
    scale changes along the sum, which the running-sum rule (one law for every term) does
    not cover; it is named as an op without a rule. An unweighted one is not."""

    class Decayed(nn.Module):
        def __init__(self, weighted):
            super().__init__()
            self.weighted = weighted
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
            self.log_decay = nn.Parameter(torch.full((8, 1), -0.3))

        def forward(self, x):
            u = self.a(x).transpose(1, 2)                        # (batch, channels, time)
            if not self.weighted:
                return self.b(u.cumsum(-1).transpose(1, 2))
            j = torch.arange(x.shape[1], dtype=x.dtype)
            h = torch.exp(j * self.log_decay) * torch.cumsum(u * torch.exp(-j * self.log_decay), dim=-1)
            return self.b(h.transpose(1, 2))

    for weighted in (True, False):
        p = plan(Decayed(weighted), torch.randn(4, 16, 8))
        named = any("without a moment rule" in n and "torch.cumsum" in n for n in p.notes)
        assert named == weighted, (weighted, p.notes)


@pytest.mark.parametrize("squared", [False, True])
def test_an_activation_after_an_op_without_a_rule_is_judged_only_when_its_scale_does_not_matter(squared):
    """sort has no rule: what follows assumes a unit second moment, so a verdict that
    depends on the input's scale (sin's) would be no evidence and is not given; relu(x)^2
    has degree 2 at any scale and is still judged NOT healthy."""

    class AfterSort(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(16, 16) for _ in range(4))

        def forward(self, x):
            x = torch.sort(self.layers[0](x), dim=-1).values
            for layer in self.layers[1:]:
                x = F.relu(layer(x)) ** 2 if squared else torch.sin(3 * layer(x))
            return x

    p = plan(AfterSort(), torch.randn(64, 16))
    assert any("without a moment rule" in n and "torch.sort" in n for n in p.notes), p.notes
    judged = {v.activation for v in p.verdicts}
    assert any("pow" in label or "relu" in label for label in judged) == squared, judged
    assert not any("sin" in label for label in judged), judged



@pytest.mark.parametrize("temperature", [1.0, 6.0])
def test_log_sum_exp_pooling_has_its_moments_or_is_named(temperature):
    """logsumexp over 32 positions (a pooling in log space) of unit features: its moments
    by the delta method; at a temperature that lets a few positions rule the sum it is
    named as an op without a rule instead."""

    class LogSumExpPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.head = nn.Linear(16, 32), nn.Linear(32, 4)

        def pooled(self, x):
            return torch.logsumexp(temperature * self.a(x), dim=1)

        def forward(self, x):
            return self.head(self.pooled(x))

    torch.manual_seed(0)
    model, x = LogSumExpPool(), torch.randn(256, 32, 16)
    _init(model, x, measure=False)
    p = plan(model, x)
    named = any("without a moment rule" in n and "logsumexp" in n for n in p.notes)
    assert named == (temperature > 1.0), p.notes
    if not named:
        pooled = next(n for n in p.graph.nodes if n.kind == "logsumexp")
        with torch.no_grad():
            y = model.pooled(x).double()
        assert p.moments[pooled.index].second == pytest.approx(float((y * y).mean()), rel=0.03)


class SpectralConv(nn.Module):
    """A Fourier layer as the FNO reference code writes it (Li et al. 2021): complex
    weights on the lowest modes of an rfft, torch.rand(..., dtype=torch.cfloat)."""

    def __init__(self, width=32, modes=12):
        super().__init__()
        self.modes = modes
        self.weights = nn.Parameter(torch.rand(width, width, modes, dtype=torch.cfloat) / width ** 2)

    def forward(self, x):
        spectrum = torch.fft.rfft(x)
        out = torch.zeros(x.shape[0], self.weights.shape[1], x.shape[-1] // 2 + 1, dtype=torch.cfloat)
        out[:, :, :self.modes] = torch.einsum("bix,iox->box", spectrum[:, :, :self.modes], self.weights)
        return torch.fft.irfft(out, n=x.shape[-1])


class FourierOperator(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.lift = nn.Linear(1, width)
        self.spectral = nn.ModuleList(SpectralConv(width) for _ in range(3))
        self.pointwise = nn.ModuleList(nn.Conv1d(width, width, 1) for _ in range(3))
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        x = self.lift(x).transpose(1, 2)
        for spectral, pointwise in zip(self.spectral, self.pointwise):
            x = F.gelu(spectral(x) + pointwise(x))
        return self.head(x.transpose(1, 2))


@pytest.mark.parametrize("meta", [False, True])
def test_complex_weights_are_drawn_as_two_real_parts_of_the_solved_second_moment(meta):
    # a complex parameter's normal fill raised TypeError after the lift was written
    torch.manual_seed(0)
    model, x = FourierOperator(), torch.randn(16, 64, 1, generator=torch.Generator().manual_seed(1))
    report = _init(model, x.to("meta") if meta else x)
    record = {r.name: r for r in report}["spectral.0.weights"]
    assert record.rule.startswith("solved normal"), record.rule
    weights = model.spectral[0].weights.detach()
    expected = torch.zeros(weights.shape, dtype=torch.cfloat)
    varinit.normal_(torch.view_as_real(expected), std=record.std / math.sqrt(2),
                    generator=varinit.Generator(0).stream("spectral.0.weights"))
    assert torch.equal(weights, expected)
    # E|w|^2 = std^2: a mean square over 24576 real draws has a relative sd of 0.9%; 5% is 5.5 sd
    # (std^2 / 2, a complex draw read as a real one, would be 50% off)
    assert float(weights.abs().pow(2).mean()) == pytest.approx(record.std ** 2, rel=0.05)
    with torch.no_grad():
        assert 0.5 <= float(model(x).std()) <= 2


class InputMaskedAttention(nn.Module):
    """Attention with a padding mask made from the input attention_mask by arithmetic:
    BERT-era (1 - mask) * -10000 added, or Funnel's scores - 1e6 * (1 - mask)."""

    def __init__(self, subtract, d=32):
        super().__init__()
        self.subtract = subtract
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x, attention_mask):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        padding = 1.0 - attention_mask[:, None, :].float()
        scores = scores - 1e6 * padding if self.subtract else scores + padding * -10000.0
        return self.out(scores.softmax(-1) @ v)


@pytest.mark.parametrize("subtract", [False, True])
@pytest.mark.parametrize("meta", [False, True])
def test_a_padding_mask_made_from_the_inputs_is_not_a_signal(subtract, meta):
    # read as a signal, the mask's 1e12 p(1 - p) was the logits' variance: Funnel's softmax rule
    # asked numpy for 3 PiB (MemoryError), MarkupLM's for 326 GiB
    torch.manual_seed(0)
    x = torch.randn(4, 16, 32)
    mask = torch.ones(4, 16, dtype=torch.long)
    mask[1, 12:] = 0
    inputs = (x, mask) if not meta else (x.to("meta"), mask.to("meta"))
    p = plan(InputMaskedAttention(subtract), inputs)
    masked = [n for n in p.graph.nodes if n.kind in ("add", "sub") and len(n.shape) == 3 and n.shape[-1] == 16]
    assert len(masked) == 1
    scores = p.graph.nodes[masked[0].inputs[0]]
    assert p.moments[masked[0].index].second == pytest.approx(p.moments[scores.index].second)
    assert p.moments[p.graph.outputs[0]].second < 2.0


class ComplexRotary(nn.Module):
    """Rotary embeddings as Meta's Llama reference code applies them: pairs of features as
    complex numbers (view_as_complex) times torch.polar(1, t * freq), back by view_as_real."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads, self.wq, self.out = heads, nn.Linear(d, d, bias=False), nn.Linear(d, 4)
        freqs = 1.0 / 10000 ** (torch.arange(0, d // heads, 2).float() / (d // heads))
        angles = torch.outer(torch.arange(64).float(), freqs)
        self.freqs_cis = torch.polar(torch.ones_like(angles), angles)

    def forward(self, x):
        b, t, d = x.shape
        q = self.wq(x).view(b, t, self.heads, -1)
        pairs = torch.view_as_complex(q.float().reshape(b, t, self.heads, -1, 2))
        turned = pairs * self.freqs_cis.to(x.device)[:t].view(1, t, 1, -1)
        return self.out(torch.view_as_real(turned).flatten(3).reshape(b, t, d))


@pytest.mark.parametrize("meta", [False, True])
def test_complex_rotary_embeddings_keep_the_moments(meta):
    # view_as_real had no rule: what followed assumed a unit second moment, and it was named
    x = torch.randn(4, 16, 32)
    p = plan(ComplexRotary(), x.to("meta") if meta else x)
    assert not any("without a moment rule" in n for n in p.notes), p.notes
    nodes = {n.target: n.index for n in p.graph.nodes}
    complex_pairs = p.moments[nodes["torch.view_as_complex"]]
    assert complex_pairs.second == pytest.approx(2 * p.moments[nodes["torch.nn.functional.linear"]].second)
    assert p.moments[nodes["torch.view_as_real"]].second == pytest.approx(complex_pairs.second / 2)


class WithScriptedBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.block = torch.jit.script(nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32)))
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(torch.relu(self.block(torch.relu(self.stem(x)))))


def test_a_torchscript_module_is_named_and_its_parameters_left_as_they_were():
    # its forward runs in TorchScript's interpreter: its weights were listed as "not read by the
    # traced forward pass" and left at torch's default without a warning
    torch.manual_seed(0)
    model = WithScriptedBlock()
    before = {n: p.detach().clone() for n, p in model.block.named_parameters()}
    with pytest.warns(UserWarning, match=r"TorchScript modules .* block"):
        report = varinit.torch.init_module(model, torch.randn(32, 16), generator=0)
    records = {r.name: r for r in report}
    for name, value in before.items():
        assert records[f"block.{name}"].rule.startswith("untouched: inside the TorchScript module block")
        assert torch.equal(dict(model.block.named_parameters())[name], value)
    assert records["stem.weight"].rule.startswith("solved")


class ScaledShortcutBlock(nn.Module):
    """A pre-norm block whose shortcut is scaled per channel, as timm's MetaFormer
    res_scale writes it (Yu et al. 2022): res_scale(x) + mlp(norm(x)), res_scale of ones."""

    def __init__(self, d=64, scaled=True):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.res_scale = nn.Parameter(torch.ones(d)) if scaled else None

    def forward(self, x):
        shortcut = x * self.res_scale if self.res_scale is not None else x
        return shortcut + self.fc2(torch.tanh(self.fc1(self.norm(x))))


def test_a_shortcut_scaled_per_channel_is_a_residual_stream():
    # not seen as a stream, its 24 blocks were tanh layers in series: "trade-off ... over its
    # 24 layers" (NOT healthy), and no branch was scaled for the depth (output rms 4.40)
    torch.manual_seed(0)
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for scaled in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(*[ScaledShortcutBlock(scaled=scaled) for _ in range(24)])
        report = _init(model, x)
        assert report.healthy, [v.message for v in report.verdicts]
        assert all(v.depth == 1 for v in report.verdicts), [v.message for v in report.verdicts]
        with torch.no_grad():
            outputs[scaled] = float(model(x).pow(2).mean().sqrt())
    assert outputs[True] == pytest.approx(outputs[False], rel=0.1)


class SpatialTransformer(nn.Module):
    """The PyTorch tutorial's spatial transformer (Jaderberg et al. 2015), shrunk: the
    localization net's last layer starts at zero weights and the identity's bias."""

    def __init__(self):
        super().__init__()
        self.loc = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 6))
        nn.init.zeros_(self.loc[3].weight)
        with torch.no_grad():
            self.loc[3].bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))
        self.conv, self.head = nn.Conv2d(1, 8, 3, padding=1), nn.Linear(8 * 64, 4)

    def forward(self, x):
        grid = F.affine_grid(self.loc(x).view(-1, 2, 3), x.size(), align_corners=False)
        return self.head(F.relu(self.conv(F.grid_sample(x, grid, align_corners=False))).flatten(1))


@pytest.mark.parametrize("kept", [False, True])
def test_a_zero_start_the_model_sets_is_named_when_it_is_drawn(kept):
    # the identity start was replaced by random transforms (37% of the sampling points in the
    # image) without a word
    torch.manual_seed(0)
    model, x = SpatialTransformer(), torch.randn(16, 1, 8, 8)
    overrides = {"loc.3.*": lambda tensor, generator: None} if kept else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        varinit.torch.init_module(model, x, generator=0, overrides=overrides)
    named = [str(w.message) for w in caught if "were all zeros before the call" in str(w.message)]
    assert bool(named) != kept and all("loc.3.weight" in n for n in named), named
    assert (not model.loc[3].weight.any()) == kept


class EmptyDetections(nn.Module):
    """A detector's post-processing where no score passes its threshold, as RetinaNet's
    and FCOS's do on a fresh init: topk(0) of no candidates, a cat of empty parts."""

    def __init__(self):
        super().__init__()
        self.features, self.scores = nn.Linear(16, 32), nn.Linear(32, 8)

    def forward(self, x):
        h = torch.relu(self.features(x))
        scores = torch.sigmoid(self.scores(h)).flatten()
        kept = scores[scores > 2.0]
        top = kept.topk(min(5, kept.numel())).values
        return h, torch.cat([top, top * 0.5])


@pytest.mark.parametrize("meta", [False, True])
def test_empty_detections_have_no_moments_and_raise_nothing(meta):
    # topk(0) raised "count must be an integer >= 1" and a cat of empty parts "parts must hold
    # at least one (moments, size) pair" out of init_module
    torch.manual_seed(0)
    x = torch.randn(16, 16)
    report = _init(EmptyDetections(), x.to("meta") if meta else x)
    assert {r.name: r for r in report}["features.weight"].rule.startswith("solved")
