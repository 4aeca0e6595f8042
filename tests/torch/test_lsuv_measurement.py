"""varinit.torch.lsuv measures a layer once by a forward pass, then replays the
layer's own call after each change of its weight or bias. The result must equal,
bit for bit, measuring every time with a new forward pass. The forward pass
must run again when the layer's input depends on its own weight (tied weights)."""
import pytest

torch = pytest.importorskip("torch")

import varinit  # noqa: E402
import varinit.torch  # noqa: E402
from varinit.torch import unit_variance  # noqa: E402


def measured_without_replay(self, call, inputs_are_free):
    self.output = call()
    raise unit_variance._StopForward


def lsuv_twice(build, data, monkeypatch, **options):
    """(parameters, records) of LSUV on build() as it runs, then with every measurement a forward pass."""
    results = []
    for replay in (True, False):
        model = build()
        with monkeypatch.context() as patch:
            if not replay:
                patch.setattr(unit_variance._Watch, "measured", measured_without_replay)
            records = varinit.torch.lsuv(model, data, **options)
        results.append(({name: p.detach().clone() for name, p in model.named_parameters()}, records))
    return results


def mlp(depth=6, width=24):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(12, width), torch.nn.Tanh()]
    for _ in range(depth - 2):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 5))


def convnet():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 8, 3, padding=1, groups=2), torch.nn.Tanh(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 4))


@pytest.mark.parametrize("mean_correction", [False, True])
def test_replayed_measurements_are_the_forward_pass_bits(monkeypatch, mean_correction):
    g = torch.Generator().manual_seed(3)
    cases = [(mlp, [torch.randn(64, 12, generator=g) * 2 + 1 for _ in range(3)]),
             (convnet, [torch.randn(16, 3, 6, 6, generator=g) + 0.5 for _ in range(2)])]
    for build, data in cases:
        (replayed, records), (rerun, rerun_records) = lsuv_twice(
            build, data, monkeypatch, tol=0.01, mean_correction=mean_correction, generator=4)
        assert records == rerun_records
        assert all(r.converged for r in records)
        for name in rerun:
            assert torch.equal(replayed[name], rerun[name]), name


def test_each_layer_runs_the_forward_pass_once_per_batch():
    model, depth, batches = mlp(depth=8), 8, 3
    calls = []
    for module in model:
        if isinstance(module, torch.nn.Linear):
            module.register_forward_pre_hook(lambda m, args: calls.append(m))
    g = torch.Generator().manual_seed(5)
    records = varinit.torch.lsuv(model, [torch.randn(32, 12, generator=g) for _ in range(batches)],
                                 mean_correction=True, generator=6)
    assert all(r.iterations >= 1 for r in records)  # each layer was measured again after a change
    # one pass to find the layers, then for layer k one pass per batch through layers 1..k;
    # the measurements after each change replay layer k alone
    assert len(calls) == depth + batches * depth * (depth + 1) // 2


class TiedHead(torch.nn.Module):
    """An output head that shares the embedding's weight: its input depends on it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.embed = torch.nn.Embedding(40, 16)
        self.mix = torch.nn.Linear(16, 16)

    def forward(self, ids):
        return torch.nn.functional.linear(torch.tanh(self.mix(self.embed(ids))), self.embed.weight)


def test_a_tied_weight_is_measured_by_new_forward_passes(monkeypatch):
    ids = [torch.randint(0, 40, (64, 5), generator=torch.Generator().manual_seed(7))]
    (replayed, records), (rerun, rerun_records) = lsuv_twice(TiedHead, ids, monkeypatch, tol=0.02, generator=8)
    assert [r.name for r in records] == ["mix", "embed"]
    assert records == rerun_records
    for name in rerun:
        assert torch.equal(replayed[name], rerun[name]), name
    # measured on the model as it ends: the head's output has unit variance within tol
    model = TiedHead()
    model.load_state_dict(replayed)
    with torch.no_grad():
        assert abs(float(model(ids[0]).var()) - 1.0) < 0.02
