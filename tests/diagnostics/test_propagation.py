"""varinit.propagate: numbers against a direct NumPy computation, statuses, mean-field agreement."""
import math

import numpy as np
import pytest
from scipy import integrate, special

import varinit
from varinit.diagnostics import mlp_spec
from varinit.layers import Layer
from varinit.diagnostics.measurement import dead_fraction, measure


def _gelu(x):
    return x * 0.5 * (1 + special.erf(x / math.sqrt(2)))


def _gelu_grad(x):
    return 0.5 * (1 + special.erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _small_network():
    rng = np.random.default_rng(5)
    w1, b1 = rng.normal(0, 0.3, (7, 5)), rng.normal(0, 0.1, 7)
    w2, b2 = rng.normal(0, 0.4, (6, 7)), rng.normal(0, 0.1, 6)
    w3 = rng.normal(0, 0.5, (4, 6))
    w1[2] = -np.abs(w1[2])        # unit 2 of layer 1 sees only positive inputs below: dead ReLU
    b1[2] = -1.0
    return [(w1, b1, "relu"), (w2, b2, "tanh"), Layer(w3, None, "gelu")]


def test_report_numbers_match_a_direct_computation():
    layers = _small_network()
    rng = np.random.default_rng(6)
    x = np.abs(rng.normal(size=(9, 5)))
    g = rng.normal(size=(9, 4))
    report = varinit.propagate(layers, x, output_grad=g)

    (w1, b1, _), (w2, b2, _), last = layers
    z1 = x @ w1.T + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ w2.T + b2
    a2 = np.tanh(z2)
    z3 = a2 @ last.weight.T
    a3 = _gelu(z3)
    g3 = g
    g2 = (g3 * _gelu_grad(z3)) @ last.weight
    g1 = (g2 * (1 - np.tanh(z2) ** 2)) @ w2
    g0 = (g1 * (z1 > 0)) @ w1
    for row, a, grad in zip(report.layers, (a1, a2, a3), (g1, g2, g3)):
        assert row.act_mean == pytest.approx(a.mean(), rel=1e-12, abs=1e-15)
        assert row.act_std == pytest.approx(a.std(), rel=1e-12)
        assert row.act_max == pytest.approx(np.abs(a).max(), rel=1e-14)
        assert row.grad_std == pytest.approx(grad.std(), rel=1e-9)
        assert row.grad_max == pytest.approx(np.abs(grad).max(), rel=1e-9)
        assert row.width == a.shape[1]
    assert report.layers[0].dead_fraction == pytest.approx(np.mean(np.all(a1 == 0, axis=0)))
    assert report.layers[0].dead_fraction >= 1 / 7           # the unit made dead above
    assert report.input_grad_std == pytest.approx(g0.std(), rel=1e-9)
    assert report.input_std == pytest.approx(x.std(), rel=1e-12)
    assert report.batch == 9


def _normal_expectation(fn, q):
    """E[fn(sqrt(q) z)] by scipy's adaptive quadrature: independent of varinit's own."""
    root = math.sqrt(q)
    value, _ = integrate.quad(lambda z: fn(root * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                              -40, 40, points=[0.0], limit=200, epsabs=1e-14, epsrel=1e-12)
    return value


def test_mean_field_columns_match_the_variance_map_computed_by_hand():
    layers = _small_network()
    x = np.abs(np.random.default_rng(6).normal(size=(9, 5)))
    g = np.random.default_rng(7).normal(size=(9, 4))
    report = varinit.propagate(layers, x, output_grad=g)
    fs = [lambda t: max(t, 0.0), math.tanh, lambda t: t * 0.5 * (1 + math.erf(t / math.sqrt(2)))]
    dfs = [lambda t: float(t > 0), lambda t: 1 - math.tanh(t) ** 2,
           lambda t: float(_gelu_grad(np.array(t)))]
    m = np.mean(x ** 2)
    qs = []
    for (w, b), f, row in zip([(layers[0][0], layers[0][1]), (layers[1][0], layers[1][1]),
                               (layers[2].weight, None)], fs, report.layers):
        q = w.shape[1] * np.mean(w ** 2) * m + (0.0 if b is None else np.mean(b ** 2))
        mean = _normal_expectation(f, q)
        m = _normal_expectation(lambda t: f(t) ** 2, q)
        qs.append(q)
        assert row.pred_mean == pytest.approx(mean, rel=1e-9, abs=1e-13)
        assert row.pred_std == pytest.approx(math.sqrt(m - mean ** 2), rel=1e-9)
    r = np.mean(g ** 2)
    weights = [layers[0][0], layers[1][0], layers[2].weight]
    for index in range(2, -1, -1):
        assert report.layers[index].pred_grad_std == pytest.approx(math.sqrt(r), rel=1e-9)
        w = weights[index]
        r = w.shape[0] * np.mean(w ** 2) * _normal_expectation(lambda t: dfs[index](t) ** 2, qs[index]) * r


def test_statuses_on_known_cases():
    # Thresholds (varinit.diagnostics.statuses): std ratio outside [1e-2, 1e2] of the input / output gradient.
    healthy = varinit.propagate(mlp_spec(depth=20, width=128, activation="relu", init="kaiming_normal"))
    assert healthy.status == "healthy"
    assert all(layer.status == "healthy" for layer in healthy.layers)

    # N(0, 1) ReLU at width 128: variance x64 per layer, so the std passes 1e2 at layer 2.
    exploding = varinit.propagate(mlp_spec(depth=8, width=128, activation="relu", init="naive"))
    assert exploding.layers[-1].status == "exploding"
    assert exploding.layers[-1].act_std > 1e6

    # tanh with std 0.01 at width 128: sigma_w = 0.113, the signal shrinks ~9x per layer.
    vanishing = varinit.propagate(mlp_spec(depth=8, width=128, activation="tanh", init="small"))
    assert vanishing.layers[-1].status == "vanishing"
    assert vanishing.layers[-1].act_std < 1e-6
    assert vanishing.first_layer_with("vanishing") <= 3

    # tanh with N(0, 1) at width 128: pre-activations of std ~11, most units at +-1.
    saturated = varinit.propagate(mlp_spec(depth=6, width=128, activation="tanh", init="naive"))
    assert saturated.layers[-1].status == "saturated"
    assert saturated.layers[-1].saturated_fraction > 0.8


def test_float64_overflow_is_reported_as_exploding_not_raised():
    # N(0, 1) ReLU at width 64 multiplies the std by sqrt(32) per layer: 32^(420/2) = 1e316
    # overflows float64 (1.8e308).
    report = varinit.propagate(mlp_spec(depth=420, width=64, activation="relu", init="naive"), batch=4)
    last = report.layers[-1]
    assert not last.act_finite
    assert last.status == "exploding"
    assert math.isinf(last.pred_std)
    assert "inf" in str(report)


def test_mean_field_agrees_with_a_wide_network():
    # tanh has a contracting fixed point, so finite-width fluctuations do not accumulate: at
    # width 1024 the measured stds stay within 1% of the prediction over seeds 0..3 (3% allowed).
    report = varinit.propagate(mlp_spec(depth=8, width=1024, activation="tanh", init="kaiming_normal"), batch=64)
    for layer in report.layers:
        assert layer.act_std == pytest.approx(layer.pred_std, rel=0.03)
        assert layer.grad_std == pytest.approx(layer.pred_grad_std, rel=0.03)
    # ReLU at He is marginal (no restoring force): the log-variance random-walks by ~sqrt(5 l / width),
    # so only the first layers are compared, within 6 of those standard deviations (~0.08 in std).
    relu = varinit.propagate(mlp_spec(depth=2, width=1024, activation="relu", init="kaiming_normal"), batch=64)
    for layer in relu.layers:
        assert layer.act_std == pytest.approx(layer.pred_std, rel=0.1)


def test_torch_module_matches_the_numpy_network():
    torch = pytest.importorskip("torch")
    net = mlp_spec(depth=3, width=32, activation="tanh", init="xavier_normal", seed=3, bias_std=0.1)
    modules = []
    for layer in net:
        linear = torch.nn.Linear(32, 32, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight))
            linear.bias.copy_(torch.from_numpy(layer.bias))
        modules += [linear, torch.nn.Tanh()]
    model = torch.nn.Sequential(*modules)
    ours = varinit.propagate(net, batch=16, seed=4)
    theirs = varinit.propagate(model, batch=16, seed=4)
    assert len(theirs.layers) == 6
    for row, trow in zip(ours.layers, theirs.layers[1::2]):
        # torch's and NumPy's tanh and matmul differ in the last bits only
        assert trow.act_std == pytest.approx(row.act_std, rel=1e-12)
        assert trow.grad_std == pytest.approx(row.grad_std, rel=1e-12)
        assert trow.pred_std == pytest.approx(row.pred_std, rel=1e-12)
        assert trow.pred_grad_std == pytest.approx(row.pred_grad_std, rel=1e-12)
    assert theirs.input_grad_std == pytest.approx(ours.input_grad_std, rel=1e-12)
    # the user's model is untouched: no hooks left behind
    assert not model[0]._forward_hooks and not model[1]._forward_hooks


def test_torch_prediction_stops_at_a_residual_branch():
    torch = pytest.importorskip("torch")

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

        def forward(self, x):
            return x + self.fc2(torch.relu(self.fc1(x)))

    model = Residual()
    report = varinit.propagate(model, batch=8)
    assert model.fc1.weight.dtype == torch.float32   # measured on a float64 copy
    assert report.layers[0].pred_std is not None
    assert report.layers[1].pred_std is None      # fc2's input is not fc1's output: chain broken
    assert "-" in report.to_text()


def test_measure_and_dead_fraction():
    x = np.array([[0.0, 1e300, -1e300], [0.0, 1e300, 1e300]])
    mean, std, peak, finite = measure(x)
    assert finite and peak == 1e300
    assert std == pytest.approx(np.std(x / 1e300) * 1e300)
    assert dead_fraction(x) == pytest.approx(1 / 3)
    assert measure(np.array([[1.0, np.inf]]))[3] is False


def test_rendering_text_html_and_compare():
    # naive at width 64: std x8 per layer, past 1e2 at layer 3
    reports = [varinit.propagate(mlp_spec(depth=4, width=64, init=i), batch=8) for i in ("naive", "kaiming_normal")]
    text = str(reports[1])
    assert text.splitlines()[0] == reports[1].summary()
    assert len([l for l in text.splitlines() if l.strip().split(" ")[0].isdigit()]) == 4
    html = reports[0]._repr_html_()
    assert html.startswith("<table") and html.count("<tr>") == 5 and "exploding" in html
    side = varinit.diagnostics.compare_text(reports, every=2)
    rows = [l for l in side.splitlines() if l.strip()[:1].isdigit()]
    assert [r.split()[0] for r in rows] == ["1", "2", "4"]
    assert "naive" in side and "kaiming_normal" in side


def test_bad_input_messages():
    with pytest.raises(TypeError, match="network must be a list of layers"):
        varinit.propagate(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="layer 1: weight expects 4 inputs"):
        varinit.propagate([(np.ones((3, 2)), None, "relu"), (np.ones((2, 4)), None, None)])
    with pytest.raises(ValueError, match="activation 'nope' is not known"):
        varinit.propagate([(np.ones((3, 2)), None, "nope")])
    with pytest.raises(ValueError, match="inputs must have shape"):
        varinit.propagate([(np.ones((3, 2)), None, "relu")], np.ones((4, 5)))
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        varinit.propagate([(np.ones((3, 2)), None, "relu")], batch=0)
    with pytest.raises(ValueError, match="init must be one of"):
        mlp_spec(depth=2, width=4, init="he")


def test_token_id_inputs_reach_the_embedding_as_integers():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(100, 32), torch.nn.Linear(32, 32), torch.nn.ReLU())
    tokens = torch.randint(0, 100, (64, 5))
    report = varinit.propagate(model, tokens)
    assert tokens.dtype == torch.int64 and len(report.layers) == 3
    # the embedding rows are N(0, 1): its output std is 1 up to sampling (320 rows of 32)
    assert report.layers[0].act_std == pytest.approx(1.0, abs=0.15)
    assert report.input_grad_std is None   # no gradient with respect to integer ids
