"""init_module with meta example inputs (shapes only) on a model that holds values:
the measured pass runs on N(0, 1) stand-ins of the inputs' shapes, the unit second
moment the analytic solve assumed for them, and corrects the realized draws."""
import warnings

import pytest
import torch
from torch import nn

import varinit
from zoo import ZOO, profile, verdict

STAND_IN_NOTE = "stand-ins of the meta example inputs' shapes"


def _init(model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return varinit.torch.init_module(model, x, generator=0, **kwargs)


# act / out / grad from shapes alone without the pass: GELU's unstable fixed point over 30
# layers 4.81 / 2.88 / 10.7; narrow depthwise layers at 4x4 3.05 / 0.22; inception's
# 8-channel branches 2.75 / 0.37; the bottleneck ResNet's 4x4 maps 2.5 / 0.45
@pytest.mark.parametrize("name", ["mlp_gelu", "depthwise_small_maps", "inception", "resnet_bottleneck"])
def test_shapes_alone_are_measured_on_stand_ins(name):
    torch.manual_seed(0)
    model, x = ZOO[name]()
    report = _init(model, x.to("meta"))
    assert any(STAND_IN_NOTE in n for n in report.notes), report.notes
    assert not any("may drift" in n for n in report.notes)
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.5 <= v["output_std"] <= 2.0 and 0.25 <= v["grad_ratio"] <= 4.0, v
    torch.manual_seed(0)
    unmeasured, _ = ZOO[name]()
    _init(unmeasured, x.to("meta"), measure=False)
    assert verdict(*profile(unmeasured, x))["act_ratio"] > 2.0


def test_the_stand_ins_are_the_same_on_every_call():
    torch.manual_seed(0)
    first, x = ZOO["mlp_gelu"]()
    second, _ = ZOO["mlp_gelu"]()
    _init(first, x.to("meta"))
    _init(second, x.to("meta"))
    for (name, a), b in zip(first.named_parameters(), second.parameters()):
        assert torch.equal(a, b), name


def test_token_ids_and_meta_models_get_no_stand_ins():
    # which ids a model accepts is not in a shape; a meta model holds no values to run
    torch.manual_seed(0)
    model, ids = ZOO["tiny_gpt_tied"]()
    report = _init(model, ids.to("meta"))
    assert not any(STAND_IN_NOTE in n for n in report.notes)
    calls = []
    meta_model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2)).to("meta")
    meta_model.register_forward_pre_hook(lambda m, args: calls.append(args[0].is_meta))
    report = _init(meta_model, torch.empty(4, 8, device="meta"))
    assert not any(STAND_IN_NOTE in n for n in report.notes)
    assert all(calls)   # traced on meta only


class NonNegative(nn.Module):
    """A forward that refuses a negative input, as some models check theirs (an
    assert, a raise of any kind)."""

    def __init__(self, error=ValueError):
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 1)
        self.error = error

    def forward(self, x):
        if not x.is_meta and bool((x < 0).any()):
            raise self.error("x must be non-negative")
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("error", [ValueError, AssertionError, TypeError, KeyError])
def test_a_forward_that_refuses_the_stand_ins_keeps_the_analytic_solve(error):
    model = NonNegative(error)
    report = _init(model, torch.empty(4, 8, device="meta"))
    assert any(f"stand-ins for the meta example inputs raised {error.__name__}:" in n and "non-negative" in n
               for n in report.notes), report.notes
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(error, match="non-negative"):   # real inputs it refuses still raise
        _init(NonNegative(error), -torch.ones(4, 8))
