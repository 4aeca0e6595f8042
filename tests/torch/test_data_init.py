"""Data-driven init: LSUV (Mishkin & Matas 2016) and weight-norm data init
(Salimans & Kingma 2016), on torch modules and NumPy layer lists. The checks
recompute each layer's output on the batch independently of varinit."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import varinit  # noqa: E402
import varinit.torch as vt  # noqa: E402
from varinit.layers import Layer  # noqa: E402

TOL = 0.05


def _torch_mlp(depth, width, activation, seed=0):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(32, width), activation()]
    for _ in range(depth - 2):
        layers += [torch.nn.Linear(width, width), activation()]
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def _layer_outputs(model, x):
    """Each Linear/Conv layer's output on x, by forward hooks set here."""
    outputs, handles = [], []
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            handles.append(m.register_forward_hook(lambda mod, a, out: outputs.append(out.double())))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return outputs


@pytest.mark.parametrize("activation", [torch.nn.Tanh, torch.nn.ReLU])
def test_lsuv_torch_mlp_every_layer_unit_variance(activation):
    model = _torch_mlp(20, 64, activation)
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(1))
    # torch's default init shrinks the signal layer after layer (Var(w) = 1/(3 fan_in)).
    before = [o.var().item() for o in _layer_outputs(model, x)]
    assert min(before) < 0.01
    report = vt.lsuv(model, x, tol=TOL, generator=5)
    after = [o.var().item() for o in _layer_outputs(model, x)]
    assert len(after) == len(report) == 20
    assert all(r.converged for r in report)
    assert max(abs(v - 1.0) for v in after) < TOL, after
    assert [r.name for r in report] == [str(i) for i in range(0, 39, 2)]


def test_lsuv_torch_bfloat16_model_and_batch():
    model = _torch_mlp(6, 64, torch.nn.Tanh).to(torch.bfloat16)
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    report = vt.lsuv(model, x, tol=0.1, generator=5)
    after = [o.var().item() for o in _layer_outputs(model, x)]
    assert all(r.converged for r in report) and max(abs(v - 1.0) for v in after) < 0.15, after
    x[3, 7] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="data has NaN"):
        vt.lsuv(model, x, generator=5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_lsuv_torch_conv_mean_correction_over_batches():
    torch.manual_seed(3)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=4), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(16 * 8 * 8, 10),
    )
    g = torch.Generator().manual_seed(2)
    batches = [torch.randn(64, 3, 8, 8, generator=g) + 0.5 for _ in range(3)]
    report = vt.lsuv(model, batches, tol=TOL, mean_correction=True, generator=6)
    assert len(report) == 3
    pooled = [torch.cat(o) for o in zip(*[_layer_outputs(model, b) for b in batches])]
    for name, out in zip(("conv", "grouped conv", "linear"), pooled):
        assert abs(out.var().item() - 1.0) < TOL, name
        unit_axis = 1
        dims = [d for d in range(out.dim()) if d != unit_axis]
        means = out.mean(dim=dims)
        # Mean correction centres each unit over the pooled batches (float32 rounding only).
        assert means.abs().max().item() < 1e-4, (name, means.abs().max().item())


def test_lsuv_torch_is_reproducible_and_reaches_weights_used_without_their_module():
    class WithAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = torch.nn.Linear(16, 32)
            self.attn = torch.nn.MultiheadAttention(32, 4)
            self.out = torch.nn.Linear(32, 4)

        def forward(self, x):
            h = self.inp(x)
            return self.out(self.attn(h, h, h, need_weights=False)[0])

    torch.manual_seed(0)
    a = WithAttention()
    torch.manual_seed(0)
    b = WithAttention()
    x = torch.randn(10, 8, 16, generator=torch.Generator().manual_seed(0))
    ra = vt.lsuv(a, x, generator=1)
    rb = vt.lsuv(b, x, generator=1)
    # the packed in_proj_weight and out_proj.weight reach F.linear without their module's forward
    assert [r.name for r in ra] == [r.name for r in rb] == ["inp", "attn.in_proj_weight", "attn.out_proj", "out"]
    assert all(r.converged for r in ra)
    for name, p in a.named_parameters():
        assert torch.equal(p, dict(b.named_parameters())[name]), name
    assert a.training  # training flags restored
    with torch.no_grad():
        h = a.inp(x)
        qkv = torch.nn.functional.linear(h, a.attn.in_proj_weight, a.attn.in_proj_bias)
    assert abs(float(qkv.var()) - 1.0) < 0.1


def test_lsuv_torch_rescales_every_layer_of_an_lstm_on_its_own_input():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(16, 32, num_layers=3, batch_first=True)
    x = torch.randn(32, 12, 16, generator=torch.Generator().manual_seed(1))
    report = vt.lsuv(lstm, x, generator=2)
    assert [r.name for r in report] == ["weight_ih_l0", "weight_ih_l1", "weight_ih_l2"]
    assert all(r.converged for r in report)
    with torch.no_grad():
        inputs = x
        for layer in range(3):
            w, b = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"bias_ih_l{layer}")
            # the forget- and output-gate blocks of b_ih are offsets kept at 1 and 2.5, the others stay 0
            blocks = b.view(4, 32)
            assert blocks[1].eq(1).all() and blocks[3].eq(2.5).all() and not blocks[[0, 2]].any(), layer
            z = torch.nn.functional.linear(inputs, w)
            assert abs(float(z.var()) - 1.0) < 0.1, layer
            single = torch.nn.LSTM(16 if layer == 0 else 32, 32, batch_first=True)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(single, f"{name}_l0").copy_(getattr(lstm, f"{name}_l{layer}"))
            inputs = single(inputs)[0]


def test_lsuv_torch_measures_an_lstm_after_init_module_without_its_gate_offsets():
    # without its orthogonal start LSUV keeps the biases it finds: the offsets in b_ih would
    # count as variance of the pooled output (1.05 for blocks of 1 and 2.5, so Var(W_ih x)
    # would end at 0.49); they are measured at 0 and kept, so W_ih x gets unit variance
    lstm = torch.nn.LSTM(16, 32, num_layers=2, batch_first=True)
    x = torch.randn(32, 12, 16, generator=torch.Generator().manual_seed(1))
    vt.init_module(lstm, generator=0)
    report = vt.lsuv(lstm, x, orthogonal_init=False)
    assert all(r.converged for r in report)
    with torch.no_grad():
        blocks = lstm.bias_ih_l0.view(4, 32)
        assert blocks[1].eq(1).all() and blocks[3].eq(2.5).all()
        z = torch.nn.functional.linear(x, lstm.weight_ih_l0)
        assert abs(float(z.var()) - 1.0) < 0.1


def _numpy_mlp(depth, width, activation, seed):
    rng = np.random.default_rng(seed)
    sizes = [32] + [width] * (depth - 1) + [10]
    return [Layer(rng.standard_normal((o, i)).astype(np.float32) * 0.01, np.zeros(o, np.float32), activation)
            for i, o in zip(sizes[:-1], sizes[1:])]


def _numpy_pre_activations(layers, x):
    out, h = [], x
    for layer in layers:
        z = h @ layer.weight.astype(np.float64).T + layer.bias
        out.append(z)
        h = np.tanh(z) if layer.activation == "tanh" else np.maximum(z, 0)
    return out


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_lsuv_numpy_mlp_every_layer_unit_variance(activation):
    layers = _numpy_mlp(20, 64, activation, seed=4)
    x = np.random.default_rng(5).standard_normal((512, 32))
    report = varinit.layers.lsuv(layers, x, tol=TOL, mean_correction=True, generator=7)
    assert all(r.converged for r in report) and len(report) == 20
    for k, z in enumerate(_numpy_pre_activations(layers, x)):
        assert abs(z.var() - 1.0) < TOL, (k, z.var())
        assert np.abs(z.mean(axis=0)).max() < 1e-5, k
    with pytest.raises(ValueError, match="tol"):
        varinit.layers.lsuv(layers, x, tol=0)
    with pytest.raises(ValueError, match="zero variance"):
        varinit.layers.lsuv(layers, np.zeros((8, 32)))  # zero biases after the orthogonal pre-init


def test_lsuv_max_iter_reports_non_convergence():
    # A dense layer's output variance scales exactly as the square of its weight's, so
    # one rescaling reaches 1 up to the float32 rounding of the rescaled weights (~1e-8
    # here); with tol below that, max_iter=1 stops and says it did not converge.
    layers = _numpy_mlp(3, 32, "relu", seed=8)
    x = np.random.default_rng(9).standard_normal((256, 32)) * 100
    report = varinit.layers.lsuv(layers, x, orthogonal_init=False, max_iter=1, tol=1e-12)
    assert report[0].iterations == 1 and not report[0].converged
    assert abs(report[0].variance - 1.0) < 1e-6


def _standardized(out, unit_axis):
    dims = tuple(d for d in range(out.ndim) if d != unit_axis % out.ndim)
    return out.mean(axis=dims), out.std(axis=dims)


def test_weight_norm_init_torch_parametrization_old_api_and_plain():
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(7)
    with pytest.warns(FutureWarning):
        old_style = torch.nn.utils.weight_norm(torch.nn.Linear(64, 48))
    model = torch.nn.Sequential(
        weight_norm(torch.nn.Conv2d(3, 8, 3)), torch.nn.ReLU(), torch.nn.Flatten(),
        weight_norm(torch.nn.Linear(8 * 6 * 6, 64)), torch.nn.Tanh(),
        old_style, torch.nn.ReLU(),
        torch.nn.Linear(48, 5),
    )
    x = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 3 + 1
    v_before = model[3].parametrizations.weight.original1.clone()
    done = vt.weight_norm_init(model, x)
    assert [record.name for record in done] == ["0", "3", "5", "7"]
    outputs = []
    hooks = [model[i].register_forward_hook(lambda m, a, o: outputs.append(o.double().numpy()))
             for i in (0, 3, 5, 7)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for out, axis in zip(outputs, (1, -1, -1, -1)):
        mean, std = _standardized(out, axis)
        # Exactly standardized on this batch up to float32 rounding.
        assert np.abs(mean).max() < 1e-5 and np.abs(std - 1).max() < 1e-4, (mean, std)
    # The direction v is untouched; g = 1/std(v.x/||v||).
    assert torch.equal(model[3].parametrizations.weight.original1, v_before)


def test_weight_norm_init_numpy():
    rng = np.random.default_rng(11)
    layers = [
        {"weight": rng.standard_normal((64, 32)), "bias": np.ones(64), "g": np.ones(64), "activation": "relu"},
        {"weight": rng.standard_normal((64, 16)).astype(np.float32), "bias": np.zeros(16, np.float32),
         "activation": "tanh", "in_axis": 0, "out_axis": 1},
        {"weight": rng.standard_normal((8, 16)), "bias": np.zeros(8), "g": np.ones(8)},
    ]
    x = rng.standard_normal((512, 32)) * 2 + 3
    varinit.layers.weight_norm_init(layers, x)
    h = x
    for k, spec in enumerate(layers):
        w = np.asarray(spec["weight"], np.float64)
        m = w if spec.get("in_axis") == 0 else w.T
        if "g" in spec:
            m = m / np.linalg.norm(m, axis=0) * spec["g"]
        z = h @ m + spec["bias"]
        assert np.abs(z.mean(axis=0)).max() < 1e-5 and np.abs(z.std(axis=0) - 1).max() < 1e-5, k
        act = spec.get("activation", "linear")
        h = np.maximum(z, 0) if act == "relu" else np.tanh(z) if act == "tanh" else z
    with pytest.raises(ValueError, match="constant"):
        varinit.layers.weight_norm_init(layers, np.ones((16, 32)))
