"""varinit.torch.lsuv on one batch of an unsharded model runs LSUV inside one
forward pass: each layer is rescaled at its first call, by replaying that call,
before the layers after it run. The result must equal, bit for bit, measuring
each layer by a forward pass up to it (the path taken for several batches, tied
weights, recurrent layers and sharded models), and the layer calls must grow
linearly with the depth."""
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

import varinit  # noqa: E402
import varinit.torch  # noqa: E402
from varinit.torch import unit_variance  # noqa: E402


def lsuv_on_both_paths(build, data, monkeypatch, **options):
    """[(parameters, records, progress calls)] of LSUV on build() in one pass, then layer by layer."""
    results = []
    real_units = unit_variance._units
    for one_pass in (True, False):
        taken = []

        def units(model, batches, names, one_pass=one_pass, taken=taken):
            order, possible = real_units(model, batches, names)
            taken.append(possible)
            return order, possible and one_pass

        model = build()
        steps = []
        with monkeypatch.context() as patch:
            patch.setattr(unit_variance, "_units", units)
            records = varinit.torch.lsuv(
                model, data, progress=lambda done, total, steps=steps: steps.append((done, total)), **options)
        assert taken == [True], "the model should qualify for the single pass"
        results.append(({name: p.detach().clone() for name, p in model.named_parameters()}, records, steps))
    return results


def assert_same(results):
    (params, records, steps), (params_before, records_before, steps_before) = results
    assert records == records_before
    assert steps == steps_before == [(k + 1, len(records)) for k in range(len(records))]
    assert params.keys() == params_before.keys()
    for name in params:
        assert torch.equal(params[name], params_before[name]), name


def mlp(depth=12, width=32):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(10, width), torch.nn.Tanh()]
    for _ in range(depth - 2):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 4))


def convnet():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(8, 8, 3, padding=1, groups=2), torch.nn.ReLU(),
                               torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 2 * 2, 5))


class Attention(torch.nn.Module):
    """nn.MultiheadAttention (packed in_proj_weight, out_proj used without a module call)
    and a TransformerEncoderLayer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.embed = torch.nn.Linear(6, 16)
        self.attention = torch.nn.MultiheadAttention(16, 4, batch_first=True)
        self.encoder = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        h = torch.tanh(self.embed(x))
        h = h + self.attention(h, h, h, need_weights=False)[0]
        return self.head(self.encoder(h))


class Twice(torch.nn.Module):
    """One Linear called twice per pass: measured at its first call."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.first = torch.nn.Linear(8, 16)
        self.shared = torch.nn.Linear(16, 16)
        self.last = torch.nn.Linear(16, 2)

    def forward(self, x):
        h = self.shared(torch.tanh(self.first(x)))
        return self.last(self.shared(torch.relu(h)))


def batch(*shape, seed=4):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 1.5 + 0.3


@pytest.mark.parametrize("build, data", [(mlp, batch(128, 10)), (convnet, batch(16, 3, 8, 8)),
                                         (Attention, batch(8, 5, 6)), (Twice, batch(64, 8))],
                         ids=["mlp", "convnet", "attention", "twice"])
@pytest.mark.parametrize("options", [{}, {"mean_correction": True}, {"orthogonal_init": False},
                                     {"by_name": True}], ids=["plain", "mean_correction", "as_is", "by_name"])
def test_one_pass_gives_the_bits_of_layer_by_layer(monkeypatch, build, data, options):
    results = lsuv_on_both_paths(build, data, monkeypatch, tol=0.01, generator=5, **options)
    assert_same(results)
    records = results[0][1]
    assert all(r.converged for r in records)
    assert sum(r.iterations for r in records) >= len(records)   # each layer was measured again after a change


class LinearCalls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func is F.linear
        return func(*args, **(kwargs or {}))


def test_layer_calls_grow_linearly_with_depth(monkeypatch):
    depth, data = 12, batch(128, 10)
    counts = []
    real_units = unit_variance._units
    for one_pass in (True, False):
        if not one_pass:
            monkeypatch.setattr(unit_variance, "_units", lambda *a: (real_units(*a)[0], False))
        calls = LinearCalls()
        with calls:
            records = varinit.torch.lsuv(mlp(depth), data, tol=0.01, mean_correction=True, generator=6)
        counts.append(calls.count)
    most = max(r.iterations for r in records)
    # one pass to find the layers, one pass through them; each layer's call measured
    # once before the mean correction, then once per rescaling and once at the end
    assert counts[0] == 2 * depth + sum(r.iterations + 2 for r in records)
    assert counts[0] <= depth + depth * (most + 3)
    # layer by layer: a pass up to layer k for each k
    assert counts[1] > depth * (depth + 1) // 2 > depth + depth * (most + 3)


class TiedHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.embed = torch.nn.Embedding(30, 16)
        self.mix = torch.nn.Linear(16, 16)

    def forward(self, ids):
        return F.linear(torch.tanh(self.mix(self.embed(ids))), self.embed.weight)


def qualifies(model, data):
    taken = []
    real_units = unit_variance._units

    def units(*args):
        order, possible = real_units(*args)
        taken.append(possible)
        return order, possible

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(unit_variance, "_units", units)
        varinit.torch.lsuv(model, data, generator=8)
    return taken == [True]


def test_the_single_pass_is_taken_only_where_replay_is_sound():
    assert qualifies(mlp(4), batch(32, 10))
    assert not qualifies(mlp(4), [batch(32, 10), batch(32, 10, seed=9)])   # several batches
    ids = torch.randint(0, 30, (16, 4), generator=torch.Generator().manual_seed(9))
    assert not qualifies(TiedHead(), ids)   # the head's input depends on its weight
    torch.manual_seed(10)
    assert not qualifies(torch.nn.LSTM(6, 8, num_layers=2), batch(5, 4, 6))   # recurrent


class FailsOnSecondPass(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(11)
        self.first, self.second = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
        self.passes = 0

    def forward(self, x):
        self.passes += 1
        h = torch.tanh(self.first(x))
        if self.passes == 2:
            raise RuntimeError("second pass")
        return self.second(h)


def test_a_failure_inside_the_pass_changes_nothing():
    model = FailsOnSecondPass()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    g = varinit.Generator(12)
    state = g.get_state()
    with pytest.raises(RuntimeError, match="second pass"):
        varinit.torch.lsuv(model, batch(32, 8), generator=g)
    assert model.passes == 2   # the first layer was rescaled in the pass before it failed
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert g.get_state() == state
    assert model.training


def test_attention_on_several_batches_replays_the_packed_projection(monkeypatch):
    """Reading in_proj_weight.dtype before its call does not stop its replay: the
    bits equal measuring every time by a forward pass."""
    data = [batch(8, 5, 6), batch(8, 5, 6, seed=13)]
    results = []
    for replay in (True, False):
        replays = []
        real_measured = unit_variance._Watch.measured

        def measured(self, call, replayable, replay=replay, replays=replays, real_measured=real_measured):
            replays.append(replayable)
            return real_measured(self, call, replayable and replay)

        model = Attention()
        with monkeypatch.context() as patch:
            patch.setattr(unit_variance._Watch, "measured", measured)
            records = varinit.torch.lsuv(model, data, tol=0.01, generator=14)
        assert replays and all(replays)
        results.append(({name: p.detach().clone() for name, p in model.named_parameters()}, records))
    (params, records), (params_rerun, records_rerun) = results
    assert records == records_rerun
    for name in params:
        assert torch.equal(params[name], params_rerun[name]), name
