"""Meta tensors (shape and dtype, no memory) are filled the way torch.nn.init
fills them: the arguments are checked, nothing is written, no stream is taken."""
import pytest
import torch

import varinit

FILLS = {
    "uniform_": dict(a=-1.0, b=1.0), "normal_": dict(std=0.5), "trunc_normal_": dict(std=0.5),
    "constant_": dict(val=0.5), "ones_": {}, "zeros_": {}, "eye_": {},
    "xavier_uniform_": {}, "xavier_normal_": {}, "kaiming_uniform_": dict(a=5 ** 0.5),
    "kaiming_normal_": dict(mode="fan_out"), "orthogonal_": {}, "sparse_": dict(sparsity=0.5),
    "variance_scaling_": {}, "lecun_normal_": {}, "lecun_uniform_": {},
}


@pytest.mark.parametrize("name", sorted(FILLS))
def test_a_meta_fill_checks_its_arguments_and_returns_the_tensor(name):
    t = torch.empty(64, 32, device="meta")
    state, torch_state = varinit.default_generator.get_state(), torch.get_rng_state()
    assert getattr(varinit, name)(t, **FILLS[name]) is t
    assert t.is_meta
    assert varinit.default_generator.get_state() == state and torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("call, error", [
    (lambda t: varinit.normal_(t, std=-1.0), ValueError),
    (lambda t: varinit.kaiming_normal_(t, mode="fan_middle"), ValueError),
    (lambda t: varinit.uniform_(t, 0.0, 1e5), None),                           # fits float32
    (lambda t: varinit.uniform_(t.half(), 0.0, 1e5), ValueError),              # not float16
    (lambda t: varinit.xavier_uniform_(torch.empty(5, device="meta")), ValueError),
    (lambda t: varinit.normal_(torch.empty(3, dtype=torch.int64, device="meta")), TypeError),
])
def test_bad_arguments_on_meta_tensors_fail_as_on_real_ones(call, error):
    t = torch.empty(8, 8, device="meta")
    if error is None:
        call(t)
    else:
        with pytest.raises(error):
            call(t)


def test_modules_build_on_meta_with_torch_nn_init_patched_to_varinit(monkeypatch):
    for name in FILLS:
        if hasattr(torch.nn.init, name):
            monkeypatch.setattr(torch.nn.init, name, getattr(varinit, name))
    with torch.device("meta"):
        modules = [torch.nn.Linear(8, 8), torch.nn.Conv2d(3, 8, 3), torch.nn.ConvTranspose2d(8, 3, 3),
                   torch.nn.LSTM(8, 16, 2), torch.nn.GRU(8, 16), torch.nn.RNN(4, 4),
                   torch.nn.MultiheadAttention(16, 4), torch.nn.TransformerEncoderLayer(16, 4, 32),
                   torch.nn.TransformerDecoderLayer(16, 4, 32), torch.nn.Embedding(10, 8),
                   torch.nn.Bilinear(4, 4, 4), torch.nn.Conv1d(2, 4, 3, groups=2), torch.nn.LayerNorm(8)]
    assert all(p.is_meta for m in modules for p in m.parameters())


def test_init_module_on_a_meta_model_returns_the_plan_of_the_real_one():
    def build():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Embedding(50, 16, padding_idx=0), torch.nn.LSTM(16, 32, 2),
                                   torch.nn.Linear(32, 10))

    real = varinit.torch.init_module(build(), generator=3, by_name=True)
    with torch.device("meta"):
        model = build()
    plan = varinit.torch.init_module(model, generator=3, by_name=True)
    assert all(p.is_meta for p in model.parameters())
    assert [(r.name, r.rule, r.std) for r in plan] == [(r.name, r.rule, r.std) for r in real]
