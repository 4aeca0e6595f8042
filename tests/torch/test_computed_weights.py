"""Weights computed inside forward from parameters (varinit.torch.computed_weights):
weight standardization, scaled weight standardization with a gain (NF-ResNets),
an equalized learning rate's factor, pruning masks. The trace keeps the ops that
make the weight and runs them again; the solve scales the parameter that sets the
weight's scale, or the norm before a layer whose scale the forward divides out.

The bounds are exact where a rule is (a response's exponents, a pruned layer's
std) and, on whole models, those the zoo uses (act max/min <= 2, output std in
[0.5, 2]) against a default init that misses them; every model is drawn from a
fixed seed."""
import math
import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
prune = pytest.importorskip("torch.nn.utils.prune")

import varinit  # noqa: E402
from varinit.torch import dataflow  # noqa: E402
from varinit.torch.computed_weights import weight_response  # noqa: E402
from varinit.torch.graph import trace  # noqa: E402

from test_trace_repeats import _same_graph  # noqa: E402
from zoo import profile, verdict  # noqa: E402


class StdConv2d(nn.Conv2d):
    """Weight standardization (Qiao et al. 2019), written as timm's StdConv2d is."""

    def forward(self, x):
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         training=True, momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class ScaledStdConv2d(nn.Conv2d):
    """Scaled weight standardization with a learned gain (Brock et al. 2021)."""

    def __init__(self, *args, gain_init=1.0, gamma=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.full((self.out_channels, 1, 1, 1), gain_init))
        self.scale = gamma * self.weight[0].numel() ** -0.5

    def forward(self, x):
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         weight=(self.gain * self.scale).view(-1), training=True, momentum=0.0,
                         eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    """An equalized learning rate (Karras et al. 2018): N(0, 1) entries times 1 / sqrt(fan_in)."""

    def __init__(self, fan_in, fan_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in))
        self.bias = nn.Parameter(torch.zeros(fan_out))
        self.scale = fan_in ** -0.5

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


class NFBlock(nn.Module):
    def __init__(self, width, beta):
        super().__init__()
        self.beta = beta
        self.conv1 = ScaledStdConv2d(width, width, 3, padding=1, gamma=math.sqrt(2))
        self.conv2 = ScaledStdConv2d(width, width, 3, padding=1, gamma=math.sqrt(2), gain_init=0.0)

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(F.relu(x) * self.beta)))
        return x + 0.2 * h


class NFNet(nn.Module):
    """A normalizer-free residual net: no norm anywhere, branch ends at gain 0."""

    def __init__(self, width=32, depth=4):
        super().__init__()
        self.stem = ScaledStdConv2d(3, width, 3, padding=1)
        self.blocks = nn.Sequential(*[NFBlock(width, 1 / math.sqrt(1 + 0.04 * i)) for i in range(depth)])
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(F.relu(self.blocks(self.stem(x))).mean((2, 3)))


class PreActBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, width), StdConv2d(width, width, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, width), StdConv2d(width, width, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class BiTNet(nn.Module):
    """Group norms before weight-standardized convolutions (Kolesnikov et al. 2020, BiT):
    each convolution's scale is set by the norm gain before it."""

    def __init__(self, width=32, depth=4):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.Sequential(*[PreActBlock(width) for _ in range(depth)])
        self.norm = nn.GroupNorm(8, width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(F.relu(self.norm(self.blocks(self.stem(x)))).mean((2, 3)))


def _mapping(depth=8, width=64):
    """StyleGAN's mapping network: equalized-rate layers and leaky ReLU 0.2."""
    layers = []
    for _ in range(depth):
        layers += [EqualLinear(width, width), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, EqualLinear(width, width))


def _pruned_mlp(amount, depth=5, width=256):
    torch.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    for module in model:
        if isinstance(module, nn.Linear):
            prune.random_unstructured(module, "weight", amount=amount)
    return model


def _init(model, x, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x, generator=0, **kwargs)
    return report, [str(w.message) for w in caught]


def _response(module, x):
    graph = trace(module, x)
    layer = next(n for n in graph.nodes if n.kind in ("conv", "linear"))
    return weight_response(graph, layer.inputs[1], list(layer.attrs["weight_from"]), {}, dict(module.named_buffers()))


def test_the_response_finds_which_parameter_sets_the_scale():
    x = torch.randn(2, 8, 6, 6)
    standardized = _response(StdConv2d(8, 16, 3), x)
    assert standardized.powers == pytest.approx({"weight": 0.0}, abs=1e-4)   # eps 1e-6
    assert standardized.base == pytest.approx(1.0, rel=1e-4)
    assert standardized.row_sums == pytest.approx(0.0, abs=1e-12)    # centred rows
    assert standardized.scaling() is None

    scaled = _response(ScaledStdConv2d(8, 16, 3, gamma=2.0), x)
    assert scaled.powers == pytest.approx({"weight": 0.0, "gain": 2.0}, abs=1e-4)
    assert scaled.base == pytest.approx(4.0 / 72, rel=1e-4)   # gamma^2 / fan_in at gain one
    assert scaled.scaling() == "gain"

    equal = _response(EqualLinear(64, 32), torch.randn(4, 64))
    assert equal.powers == pytest.approx({"weight": 2.0}, abs=1e-9)
    # N(0, 1) entries: the mean square is scale^2 up to the draw's (2048 entries: 5 sd at 0.16)
    assert equal.base == pytest.approx(1 / 64, rel=0.16)
    assert equal.row_sums == pytest.approx(1.0, rel=0.5)
    assert equal.scaling() == "weight"


def test_a_pruning_mask_is_read_from_the_model_buffers():
    model = _pruned_mlp(0.75, depth=1)
    response = _response(model[0], torch.randn(4, 256))
    assert response.powers == pytest.approx({"weight_orig": 2.0}, abs=1e-9)
    # 65536 N(0, 1) entries, a quarter kept: 0.25 within 5 sd of the mean of the kept squares
    assert response.base == pytest.approx(0.25, rel=0.03)


def test_a_pruned_layer_is_drawn_wider_by_the_kept_share():
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    stds = {}
    for amount in (0.0, 0.5):
        model = _pruned_mlp(amount)
        report, _ = _init(model, x, measure=False)
        stds[amount] = {r.name: r.std for r in report}
        rows, out = profile(model, x)
        # 256 units of 50% density: each layer within 30% of unit std
        assert all(0.7 < r[1] < 1.3 for r in rows), rows
    assert stds[0.5]["0.weight_orig"] == pytest.approx(stds[0.0]["0.weight_orig"] * math.sqrt(2), rel=0.02)
    # the masks are buffers: they stay
    assert float(model[0].weight_mask.mean()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("meta", [False, True])
def test_an_equalized_rate_mapping_network_is_solved_through_its_factor(meta):
    torch.manual_seed(0)
    model = _mapping()
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    before = verdict(*profile(model, x, layers=(EqualLinear,)))
    report, _ = _init(model, x.to("meta") if meta else x)
    after = verdict(*profile(model, x, layers=(EqualLinear,)))
    # leaky ReLU halves the second moment per layer at the default N(0, 1) * 1 / sqrt(fan_in)
    assert before["act_ratio"] > 4
    assert after["act_ratio"] < 1.6 and 0.7 < after["output_std"] < 1.4
    first = next(r for r in report if r.name == "0.weight")
    assert "weight computed in forward" in first.rule
    # unit input: Var(x * 1/8 * w) = 1 / 64 per entry, so std(w) = 1 (the draw is what the factor reads)
    assert first.std == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("meta", [False, True])
def test_a_normalizer_free_net_solves_its_gains_and_has_no_batch_statistics(meta):
    torch.manual_seed(0)
    model = NFNet()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    before = verdict(*profile(model, x))
    report, messages = _init(model, x.to("meta") if meta else x)
    after = verdict(*profile(model, x))
    assert before["act_ratio"] > 4     # gain 0 at every branch end: zero outputs
    assert after["act_ratio"] < 2 and 0.5 < after["output_std"] < 2, after
    rules = {r.name: r.rule for r in report}
    for i in range(4):
        assert float(model.blocks[i].conv2.gain.detach().min()) > 0
        assert rules[f"blocks.{i}.conv2.gain"].startswith("constant"), rules[f"blocks.{i}.conv2.gain"]
        assert "divides its scale out" in rules[f"blocks.{i}.conv2.weight"]
    # the batch_norm calls standardize weights, not the signal: no batch-statistics cause
    assert not any("batch statistics" in m for m in messages), messages
    plan = dataflow.plan(model, x)
    assert not plan.batch_statistics() and not plan.scale_reset()


def test_the_measured_pass_corrects_a_gain():
    torch.manual_seed(0)
    model = NFNet(width=8)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    report, _ = _init(model, x)
    corrected = [r for r in report if r.name.endswith(".gain") and "from the measured pass" in r.rule]
    assert corrected, [r.rule for r in report if r.name.endswith(".gain")]
    rows, _ = profile(model, x)
    # corrected where measured (the layers with a fixed goal: not the branch ends, whose goal
    # is a share of a stream no module reads): within 10% of unit std
    fixed = [r for r in rows if r[0] == "stem" or r[0].endswith("conv1")]
    assert len(fixed) == 5 and all(0.9 < r[1] < 1.1 for r in fixed), rows


def test_norm_gains_set_the_scale_of_standardized_convolutions():
    torch.manual_seed(0)
    model = BiTNet()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    before = verdict(*profile(model, x))
    report, _ = _init(model, x)
    rows, out = profile(model, x)
    after = verdict(rows, out)
    # unit-variance inputs to 288-tap standardized rows: std 12 at the default gain of one
    assert before["act_ratio"] > 8
    assert after["act_ratio"] < 2 and 0.5 < after["output_std"] < 2, after
    rules = {r.name: r.rule for r in report}
    for i in range(4):
        assert "whose weight's scale the forward divides out" in rules[f"blocks.{i}.norm2.weight"]
        assert float(model.blocks[i].norm2.weight.detach().mean()) < 0.2    # gamma^2 ~ 1 / (288 * 0.5)


def test_a_standardized_stem_without_a_norm_before_it_is_named():
    model = nn.Sequential(StdConv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1))
    _, messages = _init(model, torch.randn(4, 3, 8, 8))
    assert any("0: its weight's entries have a mean square of 1 whatever the parameters' scale" in m
               for m in messages), messages


def test_repeated_standardized_blocks_copy_their_calls():
    with torch.device("meta"):
        model = NFNet(width=8)
    graph = _same_graph(model, torch.empty(2, 3, 8, 8, device="meta"))
    weights = [n for n in graph.nodes if n.kind == "conv"]
    assert all(graph.nodes[n.inputs[1]].call is not None for n in weights)
    assert all(n.inputs[1] in graph.computed for n in weights)


def test_lsuv_names_the_layers_whose_weight_is_computed():
    torch.manual_seed(0)
    model = NFNet(width=8)
    with pytest.warns(UserWarning, match=r"lsuv: 9 layer call\(s\) read a weight computed in forward"):
        report = varinit.torch.lsuv(model, torch.randn(8, 3, 16, 16), generator=0)
    assert [r.name for r in report] == ["head"]    # the one layer whose weight is a parameter


def test_a_weight_computed_from_the_input_is_named_as_such():
    class Hyper(nn.Module):
        def __init__(self):
            super().__init__()
            self.make, self.out = nn.Linear(16, 16 * 8), nn.Linear(8, 4)

        def forward(self, x):
            return self.out(F.relu(F.linear(x, self.make(x.mean(0)).view(8, 16))))

    _, messages = _init(Hyper(), torch.randn(32, 16))
    assert any("its weight is computed from the input (a hypernetwork" in m for m in messages), messages


def test_the_bias_of_a_layer_whose_weight_cannot_be_solved_is_zero_not_unread():
    # an orthogonal parametrization's weight is made by householder_product, which no rule
    # runs again: the layer is named, and its bias (and a decoder's own bias on the tied,
    # transposed weight) was listed as "not read by the traced forward pass" and kept
    class TiedOrthogonal(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.utils.parametrizations.orthogonal(nn.Linear(32, 16))
            self.dec_bias = nn.Parameter(torch.full((32,), 0.5))
            self.out = nn.Linear(32, 4)

        def forward(self, x):
            h = F.elu(self.enc(x))
            return self.out(F.elu(F.linear(h, self.enc.weight.t(), self.dec_bias)))

    torch.manual_seed(0)
    model = TiedOrthogonal()
    nn.init.constant_(model.enc.bias, 0.5)
    report, messages = _init(model, torch.randn(64, 32))
    records = {r.name: r for r in report}
    for name in ("enc.bias", "dec_bias"):
        assert records[name].rule == "constant 0: bias: zero", records[name].rule
    assert not model.enc.bias.any() and not model.dec_bias.any()
    assert any("its weight is computed in forward by ops varinit cannot run again" in m for m in messages), messages
