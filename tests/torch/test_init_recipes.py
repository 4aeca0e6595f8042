"""init_module's recipes: the fixed-std scheme, per-name overrides, only= (keep what a
checkpoint loaded) and tied parameters, in both modes."""
import math
import re
import sys
import warnings

import pytest

import varinit

torch = pytest.importorskip("torch")
nn = torch.nn
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from zoo import TinyGPT  # noqa: E402


class TinyViT(nn.Module):
    """Patch conv, cls token and position embedding as bare parameters, pre-LN blocks."""

    def __init__(self, d=64):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, 4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 17, d))
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _unchanged(model, snapshot):
    return all(torch.equal(p, snapshot[name]) for name, p in model.named_parameters())


def _std_bound(n):
    """Relative deviation of a sample std of n normal values: beyond 6 sigma of
    sqrt(1/(2n)), failure probability ~1e-9 per check."""
    return 6.0 / math.sqrt(2.0 * n)


def test_fixed_std_scheme_draws_every_weight_and_embedding_with_that_std():
    model = TinyViT()
    report = _quiet(varinit.torch.init_module, model, generator=0, scheme="normal", std=0.02, by_name=True)
    g = varinit.Generator(0)
    weights = [n for n, p in model.named_parameters() if n.endswith(("weight", "in_proj_weight")) and p.dim() > 1]
    assert len(weights) == 1 + 3 * 4 + 1            # patch, 3 x (in_proj, out_proj, linear1, linear2), head
    for name in weights:
        p = dict(model.named_parameters())[name]
        expected = varinit.normal_(torch.empty_like(p), std=0.02, generator=g.stream(name))
        assert torch.equal(p, expected), name
        assert abs(float(p.detach().std()) / 0.02 - 1) < _std_bound(p.numel()), name
    rules = {r.name: r.rule for r in report}
    assert rules["blocks.layers.0.norm1.weight"] == "ones" and rules["head.bias"] == "zeros"
    assert "no rule covers" in rules["cls_token"]     # bare parameters are listed with the reason


def test_fixed_std_truncated_cuts_at_two_of_its_own_std():
    model = nn.Sequential(nn.Linear(512, 512))
    _quiet(varinit.torch.init_module, model, generator=1, scheme="normal", std=0.02,
           distribution="truncated_normal")
    w = model[0].weight
    assert float(w.detach().abs().max()) <= 2 * 0.02 / varinit.init.TRUNCATED_STD * (1 + 1e-6)
    assert abs(float(w.detach().std()) / 0.02 - 1) < _std_bound(w.numel())


@pytest.mark.parametrize("kwargs, error, words", [
    ({"scheme": "normal"}, ValueError, "std="),
    ({"std": 0.02}, ValueError, "scheme='normal'"),
    ({"scheme": "normal", "std": -1.0}, ValueError, "std"),
])
def test_fixed_std_arguments_are_checked_before_anything_is_written(kwargs, error, words):
    model = TinyViT()
    before = _snapshot(model)
    with pytest.raises(error, match=words):
        varinit.torch.init_module(model, generator=0, **kwargs)
    assert _unchanged(model, before)


def test_overrides_give_bare_parameters_a_rule_from_their_own_stream():
    model = TinyViT()
    calls = []

    def ones_times_seven(tensor, generator):
        calls.append(type(generator).__name__)
        tensor.fill_(7.0)

    report = _quiet(varinit.torch.init_module, model, generator=3, overrides={
        "cls_token": ("trunc_normal_", {"std": 0.02}),
        "pos_*": varinit.trunc_normal_,
        "head.bias": 0.5,
        "norm.weight": ones_times_seven,
    })
    g = varinit.Generator(3)
    assert torch.equal(model.cls_token, varinit.trunc_normal_(torch.empty(1, 1, 64), std=0.02,
                                                              generator=g.stream("cls_token")))
    assert torch.equal(model.pos_embed, varinit.trunc_normal_(torch.empty(1, 17, 64),
                                                              generator=g.stream("pos_embed")))
    assert bool((model.head.bias == 0.5).all()) and bool((model.norm.weight == 7.0).all())
    assert calls == ["Stream"] or calls == ["Generator"] or len(calls) == 1
    rules = {r.name: r.rule for r in report}
    assert rules["cls_token"] == "override 'cls_token': trunc_normal_(std=0.02)"
    assert rules["head.bias"].startswith("override 'head.bias'")


@pytest.mark.parametrize("overrides, error, words", [
    ({"nothing.*": 0.0}, ValueError, r"overrides\['nothing\.\*'\] matches no parameter"),
    ({"cls_token": ("trunc_normal_", {"sd": 0.02})}, TypeError, r"overrides\['cls_token'\] on cls_token"),
    ({"cls_token": ("trunc_normal_", {"std": -1.0})}, ValueError, r"overrides\['cls_token'\]"),
    ({"cls_token": "gaussian_"}, ValueError, "not a varinit fill"),
    ({"cls_token": ("normal_", {"generator": 0})}, ValueError, "its own stream"),
    ({"cls_token": object()}, TypeError, r"overrides\['cls_token'\] must be"),
    ({3: 0.0}, TypeError, "overrides keys"),
    ([("cls_token", 0.0)], TypeError, "overrides must be a dict"),
])
def test_bad_overrides_are_refused_before_anything_is_written(overrides, error, words):
    model = TinyViT()
    x = torch.randn(2, 3, 16, 16)
    before = _snapshot(model)
    for inputs in (None, x):
        with pytest.raises(error, match=words):
            varinit.torch.init_module(model, inputs, generator=0, overrides=overrides)
        assert _unchanged(model, before)


class _Offset(nn.Module):
    """x + b (a bare parameter) then a Linear: the solve must read b's values."""

    def __init__(self, n=256):
        super().__init__()
        self.b = nn.Parameter(torch.zeros(n))
        self.fc = nn.Linear(n, n)

    def forward(self, x):
        return self.fc(x + self.b)


def test_the_dataflow_solve_reads_overridden_values():
    torch.manual_seed(0)
    model = _Offset()
    x = torch.randn(512, 256)
    report = _quiet(varinit.torch.init_module, model, x, generator=0, overrides={"b": 3.0})
    fc = next(r for r in report if r.name == "fc.weight")
    nu = float((x + 3.0).pow(2).mean())          # ~ 1 + 9; with b left at 0 the solve would use ~1
    assert float(re.search(r"nu_in (\S+)\)", fc.rule).group(1)) == pytest.approx(nu, rel=1e-3)
    assert float(model(x).std()) == pytest.approx(1.0, rel=0.1)


def test_only_keeps_what_a_checkpoint_loaded_and_solves_the_rest_around_it():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        source[0].weight.mul_(5.0)                # a loaded layer far from unit scale
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("4.")}
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert missing == ["4.weight", "4.bias"]
    loaded = _snapshot(model)
    x = torch.randn(1024, 256)
    report = _quiet(varinit.torch.init_module, model, x, generator=0, only=missing)
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert torch.equal(dict(model.named_parameters())[name], loaded[name])
    assert {r.name: r.rule for r in report}["0.weight"].startswith("kept: not in only=")
    assert float(model(x).std()) == pytest.approx(1.0, rel=0.1)   # the head solved on the loaded layers


def test_only_in_structure_mode_and_bad_names():
    model = TinyViT()
    before = _snapshot(model)
    report = _quiet(varinit.torch.init_module, model, generator=0, only=["head.weight"])
    assert [r.name for r in report if not r.rule.startswith("kept")] == ["head.weight"]
    assert not torch.equal(model.head.weight, before["head.weight"])
    model.head.weight.data.copy_(before["head.weight"])
    assert _unchanged(model, before)
    with pytest.raises(ValueError, match="only names 'head.wieght'"):
        varinit.torch.init_module(model, generator=0, only=["head.wieght"])
    with pytest.raises(TypeError, match="only must be an iterable"):
        varinit.torch.init_module(model, generator=0, only="head.weight")
    assert _unchanged(model, before)


def test_tied_head_in_structure_mode_is_initialized_once_by_the_head_rule():
    torch.manual_seed(0)
    model = TinyGPT()
    ids = torch.randint(0, 512, (16, 32))
    report = _quiet(varinit.torch.init_module, model, generator=0)
    (tok,) = [r for r in report if r.name == "tok.weight"]
    assert "tied with head.weight" in tok.rule and tok.std == pytest.approx(1 / 8)
    assert "head.weight" not in {r.name for r in report}
    n = model.tok.weight.numel()
    assert abs(float(model.tok.weight.std()) * 8 - 1) < _std_bound(n)
    with torch.no_grad():
        logits = model(ids)
    assert 0.5 < float(logits.std()) < 2.0           # an N(0, 1) table gave 8.2


def test_tied_head_in_dataflow_mode_scales_the_norm_before_it():
    torch.manual_seed(0)
    model = TinyGPT()
    ids = torch.randint(0, 512, (16, 32))
    report = _quiet(varinit.torch.init_module, model, ids, generator=0)
    rules = {r.name: r.rule for r in report}
    assert "norm gain before the head tied to tok.weight" in rules["ln.weight"]
    assert float(model.ln.weight[0]) == pytest.approx(1 / 8, rel=0.02)
    assert abs(float(model.tok.weight.std()) - 1) < _std_bound(model.tok.weight.numel())
    with torch.no_grad():
        assert 0.5 < float(model(ids).std()) < 2.0


def test_structure_mode_returns_a_report_with_a_summary():
    report = _quiet(varinit.torch.init_module, TinyViT(), generator=0)
    assert isinstance(report, varinit.torch.InitReport)
    assert report.summary().startswith(f"{len(report)} parameters (")


class _TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))     # a relu the structure cannot see


def test_init_module_warnings_point_at_the_callers_line():
    model = _TwoLayers()
    with pytest.warns(UserWarning, match="does not show which activation") as caught:
        varinit.torch.init_module(model, generator=0)
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match="assumed") as caught:
        varinit.torch.init_module(model, torch.empty(4, 8, device="meta"), generator=0)
    assert {w.filename for w in caught} == {__file__}
