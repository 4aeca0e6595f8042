"""varinit.torch.graph.trace on small real models: the kinds of the recorded
nodes in order, how they are wired, the parameters and attributes each one
names, shapes and module names, that an elementwise node's replay recomputes
its op, and that tracing leaves the model (parameters, buffers, hooks, modes,
grad mode, random state) as it was."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.modules import module as module_globals  # noqa: E402
from torch.nn.utils.parametrizations import weight_norm  # noqa: E402

import varinit  # noqa: E402
from varinit.torch.graph import KINDS, Graph, Node, trace  # noqa: E402


def kinds(graph, views=False):
    return [n.kind for n in graph.nodes if views or n.kind != "view"]


def only(graph, kind):
    found = [n for n in graph.nodes if n.kind == kind]
    assert len(found) == 1, [n.kind for n in graph.nodes]
    return found[0]


def of_kind(graph, kind):
    return [n for n in graph.nodes if n.kind == kind]


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(model, before):
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert after[k].dtype == v.dtype and torch.equal(after[k], v), k


def random64(shape=(4096,), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=torch.float64, generator=generator) * 3


def assert_replays(node, expected, seed=0):
    """node.replay on a float64 tensor equals `expected` (torch's own function) on it."""
    x = random64(seed=seed)
    torch.testing.assert_close(node.replay(x), expected(x), rtol=0, atol=0, equal_nan=True)


# ---------------------------------------------------------------- structure


def test_sequential_mlp_nodes_params_shapes_modules():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    graph = trace(model, torch.randn(3, 4))
    assert isinstance(graph, Graph) and all(isinstance(n, Node) for n in graph.nodes)
    assert kinds(graph) == ["input", "linear", "elementwise", "linear"]
    assert [n.index for n in graph.nodes] == [0, 1, 2, 3]
    assert [n.inputs for n in graph.nodes] == [[], [0], [1], [2]]
    assert graph.nodes[1].params == {"weight": "0.weight", "bias": "0.bias"}
    assert graph.nodes[3].params == {"weight": "2.weight", "bias": "2.bias"}
    assert graph.nodes[1].target == "torch.nn.functional.linear"
    assert [n.module for n in graph.nodes] == ["", "0", "1", "2"]
    assert [n.shape for n in graph.nodes] == [(3, 4), (3, 8), (3, 8), (3, 2)]
    assert all(n.dtype == torch.float32 for n in graph.nodes)
    assert graph.inputs == [0] and graph.outputs == [3] and graph.unknown == [] and graph.tied == {}
    assert list(graph.params) == [name for name, _ in model.named_parameters()]
    assert graph.params["2.weight"] is model[2].weight
    assert graph.uses == {"0.weight": [1], "0.bias": [1], "2.weight": [3], "2.bias": [3]}
    assert all(n.kind in KINDS for n in graph.nodes)


class Spellings(nn.Module):
    """One activation four ways: F.relu, torch.relu, x.relu(), and a module attribute."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x):
        return self.act(F.relu(torch.relu(self.lin(x).relu())))


def test_activation_spellings_in_forward_are_elementwise_nodes_with_replays():
    graph = trace(Spellings(), torch.randn(2, 6))
    assert kinds(graph) == ["input", "linear", "elementwise", "elementwise", "elementwise",
                            "elementwise"]
    nodes = graph.nodes
    assert [n.target for n in nodes[2:]] == ["torch.Tensor.relu", "torch.relu",
                                            "torch.nn.functional.relu",
                                            "torch.nn.functional.gelu"]
    assert [n.inputs for n in nodes[2:]] == [[1], [2], [3], [4]]
    assert [n.module for n in nodes[2:]] == ["", "", "", "act"]
    assert nodes[5].attrs == {"op": "gelu", "approximate": "tanh"}
    for node in nodes[2:5]:
        assert node.attrs == {"op": "relu"}
        assert_replays(node, torch.relu)
    assert_replays(nodes[5], lambda x: F.gelu(x, approximate="tanh"))


class Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


@pytest.mark.parametrize("activation", [
    nn.LeakyReLU(0.2), nn.ELU(0.5), nn.CELU(0.7), nn.SELU(), nn.Hardtanh(-2.0, 3.0),
    nn.ReLU6(), nn.Softplus(2.0, 5.0), nn.Threshold(0.1, -1.0), nn.Mish(), nn.Hardswish(),
    nn.Hardsigmoid(), nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.Softsign(), nn.LogSigmoid(),
    nn.Tanhshrink(), nn.Softshrink(0.3), nn.Hardshrink(0.4), nn.GELU(), nn.ReLU(inplace=True),
    Lambda(lambda x: x.clamp(min=-1.0, max=2.0)), Lambda(torch.exp), Lambda(torch.abs),
    Lambda(lambda x: -x), Lambda(torch.special.expit), Lambda(torch.erf),
], ids=lambda module: type(module).__name__)
def test_activation_modules_replay_their_function(activation):
    graph = trace(nn.Sequential(nn.Linear(3, 3), activation), torch.randn(2, 3))
    node = only(graph, "elementwise")
    assert node.inputs == [1] and node.module == "1"
    assert_replays(node, activation)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 5))

    def forward(self, x):
        return x + self.f(x)


def test_residual_add_takes_block_input_and_branch_output():
    graph = trace(Residual(), torch.randn(3, 5))
    assert kinds(graph) == ["input", "linear", "elementwise", "linear", "add"]
    add = only(graph, "add")
    assert add.inputs == [0, 3] and add.attrs == {} and add.module == ""
    assert graph.nodes[3].module == "f.2" and graph.outputs == [add.index]
    a, b = random64(seed=1), random64(seed=2)
    torch.testing.assert_close(add.replay(a, b), a + b, rtol=0, atol=0)


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(4, 3), nn.Linear(4, 5)

    def forward(self, x):
        return torch.cat([self.left(x), torch.sigmoid(self.right(x))], dim=-1)


def test_cat_of_two_branches():
    graph = trace(TwoBranches(), torch.randn(2, 4))
    assert kinds(graph) == ["input", "linear", "linear", "elementwise", "cat"]
    cat = only(graph, "cat")
    assert cat.inputs == [1, 3] and cat.attrs == {"op": "cat", "dim": 1} and cat.shape == (2, 8)
    assert graph.nodes[1].inputs == [0] and graph.nodes[2].inputs == [0]
    assert_replays(graph.nodes[3], torch.sigmoid)


class SwiGLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = nn.Linear(4, 12), nn.Linear(6, 4)

    def forward(self, x):
        gate, value = self.up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * value)


def test_swiglu_gate_chunk_silu_mul():
    graph = trace(SwiGLU(), torch.randn(3, 4))
    assert kinds(graph, views=True) == ["input", "linear", "view", "view", "elementwise", "mul",
                                        "linear"]
    up, gate, value, silu, mul, down = graph.nodes[1:]
    assert gate.inputs == value.inputs == [up.index]
    assert gate.attrs["op"] == "chunk" and gate.attrs["dim"] == 1
    assert (gate.attrs["output"], gate.attrs["slice"]) == (0, (0, 6))
    assert (value.attrs["output"], value.attrs["slice"]) == (1, (6, 12))
    assert gate.shape == value.shape == (3, 6)
    assert silu.inputs == [gate.index] and silu.attrs == {"op": "silu"}
    assert mul.inputs == [silu.index, value.index]
    assert down.inputs == [mul.index] and down.params["weight"] == "down.weight"
    assert_replays(silu, F.silu)
    a, b = random64(seed=3), random64(seed=4)
    torch.testing.assert_close(mul.replay(a, b), a * b, rtol=0, atol=0)


class GLUConvs(nn.Module):
    """Gated convolutions (Dauphin et al. 2017) through F.glu and nn.GLU, which call the
    builtin torch._C._nn.glu: it had no rule ("opaque"), and from shapes alone what
    followed it assumed a unit input (act 3.9, out 0.26 on six such blocks)."""

    def __init__(self, width=32, depth=6, functional=True):
        super().__init__()
        self.functional = functional
        self.convs = nn.ModuleList(nn.Conv1d(width, 2 * width, 3, padding=1) for _ in range(depth))
        self.glu = nn.GLU(dim=1)
        self.head = nn.Conv1d(width, 4, 1)

    def forward(self, x):
        for conv in self.convs:
            x = F.glu(conv(x), dim=1) if self.functional else self.glu(conv(x))
        return self.head(x)


@pytest.mark.parametrize("functional", [True, False], ids=["F.glu", "nn.GLU"])
def test_glu_is_recorded_as_its_halves_gate_and_product(functional):
    model, x = GLUConvs(functional=functional), torch.randn(4, 32, 16)
    graph = trace(model, x)
    assert not graph.unknown and "opaque" not in kinds(graph, views=True)
    assert kinds(graph, views=True)[1:6] == ["conv", "view", "view", "elementwise", "mul"]
    conv, value, gate, sigmoid, mul = graph.nodes[1:6]
    assert value.attrs["slice"] == (0, 32) and gate.attrs["slice"] == (32, 64) and value.attrs["dim"] == 1
    assert sigmoid.inputs == [gate.index] and sigmoid.attrs == {"op": "sigmoid"}
    assert sorted(mul.inputs) == sorted([value.index, sigmoid.index])
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        trace(nn.GLU(dim=1), torch.randn(2, 5))


@pytest.mark.parametrize("meta", [False, True])
def test_glu_stacks_are_solved_through_the_gate(meta):
    torch.manual_seed(0)
    model = GLUConvs()
    x = torch.randn(16, 32, 64, generator=torch.Generator().manual_seed(1))
    report = varinit.torch.init_module(model, x.to("meta") if meta else x, generator=0)
    assert not any("without a moment rule" in n for n in report.notes), report.notes
    outputs = []
    hooks = [c.register_forward_hook(lambda m, a, o: outputs.append(float(o.std()))) for c in model.convs]
    with torch.no_grad():
        out = float(model(x).std())
    for h in hooks:
        h.remove()
    # each conv's output at unit second moment, the gate's (value * sigmoid) carried to the next
    assert max(outputs) / min(outputs) < 1.3 and 0.75 < out < 1.33, (outputs, out)


def _zeroed_below(x, copy):
    """x[x < 0] = 0, on a clone or on x itself."""
    y = x.clone() if copy else x
    y[y < 0] = 0
    return y


# activations written with ops that each have their own rule
WRITTEN_OUT = {
    "torch.maximum": lambda x: torch.maximum(x, 0.1 * x),
    "Tensor.fmax": lambda x: x.fmax(0.1 * x),
    "torch.minimum": lambda x: -torch.minimum(-x, -0.1 * x),
    "where number": lambda x: torch.where(x > 0, x, 0.0),
    "where zeros_like": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "masked_fill": lambda x: x.masked_fill(x < 0, 0.0),
    "masked_fill_ of a clone": lambda x: x.clone().masked_fill_(x < 0, 0.0),
    "minimum zeros_like": lambda x: -(-x).minimum(torch.zeros_like(x)),
    "index assignment of a clone": lambda x: _zeroed_below(x, copy=True),
    "index assignment in place": lambda x: _zeroed_below(x, copy=False),
}


class WrittenOut(nn.Module):
    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, x):
        return WRITTEN_OUT[self.method](x)


@pytest.mark.parametrize("method", ["torch.maximum", "Tensor.fmax", "torch.minimum"])
def test_maximum_and_minimum_of_one_source_are_one_activation(method):
    # torch.maximum(x, 0.1 x) is a leaky ReLU; it had no rule, and the layer after it assumed a
    # unit input where a leaky ReLU of slope 0.1 passes (1 + 0.01) / 2 of it
    act = WrittenOut(method)
    model = nn.Sequential(nn.Linear(32, 128), act, nn.Linear(128, 128), act, nn.Linear(128, 8))
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    assert "opaque" not in kinds(trace(model, x), views=True)
    report = varinit.torch.init_module(model, x, generator=0, measure=False)
    assert not any("without a moment rule" in n for n in report.notes), report.notes
    rule = next(r.rule for r in report if r.name == "2.weight")
    assert "nu_in 0.505)" in rule, rule


@pytest.mark.parametrize("method", ["where number", "where zeros_like", "minimum zeros_like", "masked_fill",
                                    "masked_fill_ of a clone", "index assignment of a clone",
                                    "index assignment in place"])
@pytest.mark.parametrize("meta", [False, True])
def test_a_relu_written_with_where_is_a_relu_not_a_mask(method, meta):
    # torch.where(x > 0, x, 0) and x.masked_fill(x < 0, 0) were a mask laid over x (a "masked_fill"
    # view, which passes x's moments): the layer after it was solved for a unit input where a ReLU
    # passes half; x[x < 0] = 0 was an op without a rule (the next layer assumed a unit input)
    act = WrittenOut(method)
    model = nn.Sequential(nn.Linear(32, 128), act, nn.Linear(128, 128), act, nn.Linear(128, 8))
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    report = varinit.torch.init_module(model, x.to("meta") if meta else x, generator=0, measure=False)
    rule = next(r.rule for r in report if r.name == "2.weight")
    assert "nu_in 0.5)" in rule, rule
    (relu,) = report.verdicts
    assert relu.healthy and relu.chi == pytest.approx(1.0, abs=1e-6)


class SigmoidGated(nn.Module):
    """A custom activation module: its ops are recorded one by one."""

    def forward(self, x):
        return x * torch.sigmoid(1.5 * x)


class WithCustomActivation(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.act = nn.Linear(3, 3), SigmoidGated()

    def forward(self, x):
        return self.act(self.lin(x))


def test_custom_activation_module_is_recorded_as_its_ops_and_replays_compose():
    graph = trace(WithCustomActivation(), torch.randn(2, 3))
    assert kinds(graph) == ["input", "linear", "scale", "elementwise", "mul"]
    lin, scale, sig, mul = graph.nodes[1:]
    assert scale.inputs == [lin.index] and scale.attrs == {"scalar": 1.5}
    assert sig.inputs == [scale.index] and sig.attrs == {"op": "sigmoid"}
    assert mul.inputs == [lin.index, sig.index]          # the correlated operand is the source
    assert {scale.module, sig.module, mul.module} == {"act"} and lin.module == "lin"
    x = random64(seed=5)
    value = mul.replay(x, sig.replay(scale.replay(x)))
    torch.testing.assert_close(value, x * torch.sigmoid(1.5 * x), rtol=0, atol=0)


class ReluSquared(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return F.relu(self.lin(x)) ** 2


def test_relu_squared_is_a_pow_node():
    graph = trace(ReluSquared(), torch.randn(2, 3))
    assert kinds(graph) == ["input", "linear", "elementwise", "pow"]
    power = graph.nodes[3]
    assert power.inputs == [2] and power.attrs == {"exponent": 2}
    assert_replays(power, lambda x: x ** 2)


class Arithmetic(nn.Module):
    def forward(self, x):
        a = x / 4 - 1
        b = 2 - x
        c = 2 ** x
        d = torch.add(a, b, alpha=3)
        return a, b, c, d, x ** 3


def test_scalar_arithmetic_kinds_attrs_and_replays():
    graph = trace(Arithmetic(), torch.randn(5))
    assert kinds(graph) == ["input", "scale", "shift", "elementwise", "elementwise", "add", "pow"]
    scale, shift, rsub, rpow, add, cube = graph.nodes[1:]
    assert scale.attrs == {"scalar": 0.25} and shift.attrs == {"scalar": -1}
    assert shift.inputs == [scale.index] and rsub.inputs == [0] and rpow.inputs == [0]
    assert rsub.attrs["op"] == "rsub" and rpow.attrs["op"] == "rpow"
    assert add.inputs == [shift.index, rsub.index] and add.attrs == {"alpha": 3}
    assert cube.attrs == {"exponent": 3}
    assert_replays(scale, lambda x: x / 4)
    assert_replays(shift, lambda x: x - 1)
    assert_replays(rsub, lambda x: 2 - x)
    assert_replays(rpow, lambda x: 2 ** x)
    assert_replays(cube, lambda x: x ** 3)
    u, v = random64(seed=6), random64(seed=7)
    torch.testing.assert_close(add.replay(u, v), torch.add(u, v, alpha=3), rtol=0, atol=0)
    assert graph.outputs == [shift.index, rsub.index, rpow.index, add.index, cube.index]


class SharedTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Linear(4, 4)

    def forward(self, x):
        return self.block(torch.tanh(self.block(x)))


def test_module_called_twice_gives_two_nodes_with_the_same_params():
    graph = trace(SharedTwice(), torch.randn(2, 4))
    first, second = of_kind(graph, "linear")
    assert first.params == second.params == {"weight": "block.weight", "bias": "block.bias"}
    assert first.module == second.module == "block"
    assert second.inputs == [first.index + 1]
    assert graph.uses["block.weight"] == [first.index, second.index]


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6, padding_idx=0)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(self.emb(ids))


def test_tied_embedding_and_head():
    model = TiedLM()
    ids = torch.tensor([[1, 2, 3, 0]])
    graph = trace(model, ids)
    assert kinds(graph) == ["input", "embedding", "linear"]
    emb, head = graph.nodes[1:]
    assert graph.nodes[0].dtype == torch.int64 and emb.inputs == [0]
    assert emb.params == {"weight": "emb.weight"} and head.params == {"weight": "emb.weight"}
    assert emb.attrs == {"padding_idx": 0, "max_norm": None, "norm_type": 2.0}
    assert graph.tied == {"emb.weight": ["head.weight"]}
    assert list(graph.params) == ["emb.weight"] and graph.params["emb.weight"] is model.head.weight
    assert graph.uses == {"emb.weight": [emb.index, head.index]}
    assert emb.shape == (1, 4, 6) and head.shape == (1, 4, 11)


def test_embedding_max_norm_does_not_renormalize_the_weight():
    model = nn.Embedding(10, 4, max_norm=0.1)
    before = state(model)
    graph = trace(model, torch.tensor([1, 2, 3]))
    assert only(graph, "embedding").attrs["max_norm"] == 0.1
    assert_same_state(model, before)


# ---------------------------------------------------------------- attention and recurrence


class Attn(nn.Module):
    def __init__(self, need_weights=True):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.need_weights = need_weights

    def forward(self, q, k, v):
        return self.attn(q, k, v, need_weights=self.need_weights)


def test_multihead_attention_self_attention_attributes_in_and_out_projections():
    x = torch.randn(2, 5, 8)
    graph = trace(Attn(), (x, x, x))
    assert graph.inputs == [0, 0, 0]                     # one tensor passed three times
    assert kinds(graph) == ["input", "linear", "scale", "matmul", "softmax", "matmul", "linear",
                            "mean"]
    in_proj, out_proj = of_kind(graph, "linear")
    assert in_proj.params == {"weight": "attn.in_proj_weight", "bias": "attn.in_proj_bias"}
    assert in_proj.shape == (5, 2, 24)
    # out_proj's forward never runs: F.multi_head_attention_forward reads its weight
    assert out_proj.params == {"weight": "attn.out_proj.weight", "bias": "attn.out_proj.bias"}
    assert in_proj.module == out_proj.module == "attn"
    scale = only(graph, "scale")
    assert scale.attrs["scalar"] == pytest.approx(0.5)   # 1/sqrt(head_dim 4)
    scores, mixed = of_kind(graph, "matmul")
    assert scores.inputs[0] == scale.index and scores.attrs == {"op": "bmm", "inner": 4}
    assert only(graph, "softmax").attrs == {"dim": 2}
    assert mixed.attrs == {"op": "bmm", "inner": 5}
    assert graph.outputs[1] == only(graph, "mean").index
    assert graph.unknown == []


def test_multihead_attention_separate_query_key_value_and_sdpa_path():
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 8)
    graph = trace(Attn(need_weights=False), (q, k, v))
    assert graph.inputs == [0, 1, 2]
    assert kinds(graph) == ["input", "input", "input", "param", "param", "linear", "linear",
                            "linear", "attention", "linear"]
    projections = of_kind(graph, "linear")[:3]
    for i, node in enumerate(projections):
        assert node.params == {}
        assert node.attrs == {"weight_from": ["attn.in_proj_weight"],
                              "bias_from": ["attn.in_proj_bias"]}
        weight = graph.nodes[node.inputs[1]]
        assert weight.kind == "view" and weight.attrs["slice"] == (8 * i, 8 * i + 8)
    assert [graph.nodes[p.inputs[0]].inputs for p in projections] == [[0], [1], [2]]
    attention = only(graph, "attention")
    assert attention.attrs == {"dropout_p": 0.0, "is_causal": False, "scale": None,
                               "enable_gqa": False, "has_mask": False}
    assert attention.shape == (2, 2, 5, 4)
    assert set(graph.uses["attn.in_proj_weight"]) >= {p.index for p in projections}


@pytest.mark.parametrize("training", [True, False])
def test_transformer_encoder_layer_train_and_eval(training):
    # In eval mode torch would take the fused torch._transformer_encoder_layer_fwd;
    # the tracing mode makes has_torch_function true, which turns that path off,
    # so both modes record the decomposed layer.
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", batch_first=True)
    layer.train(training)
    before = state(layer)
    graph = trace(layer, torch.randn(2, 5, 8))
    assert kinds(graph) == ["input", "linear", "attention", "linear", "dropout", "add", "norm",
                            "linear", "elementwise", "dropout", "linear", "dropout", "add", "norm"]
    assert graph.unknown == []
    assert only(graph, "attention").attrs["dropout_p"] == (0.1 if training else 0.0)
    assert [d.attrs["training"] for d in of_kind(graph, "dropout")] == [training] * 3
    assert [d.module for d in of_kind(graph, "dropout")] == ["dropout1", "dropout", "dropout2"]
    first_add = of_kind(graph, "add")[0]
    assert first_add.inputs == [0, of_kind(graph, "dropout")[0].index]
    norm1 = of_kind(graph, "norm")[0]
    assert norm1.params == {"weight": "norm1.weight", "bias": "norm1.bias"}
    assert norm1.attrs == {"which": "layer_norm", "eps": 1e-5, "normalized_shape": (8,)}
    gelu = only(graph, "elementwise")
    assert gelu.attrs == {"op": "gelu"} and gelu.inputs == [of_kind(graph, "linear")[2].index]
    assert_replays(gelu, F.gelu)
    assert_same_state(layer, before)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_lstm_records_every_flat_weight_by_role():
    lstm = nn.LSTM(4, 6, num_layers=2, proj_size=3, bidirectional=True, batch_first=True)
    graph = trace(lstm, torch.randn(2, 5, 4))
    out, h, c = of_kind(graph, "rnn")
    assert [n.attrs["output"] for n in (out, h, c)] == [0, 1, 2]
    assert out.shape == (2, 5, 6) and h.shape == (4, 2, 3) and c.shape == (4, 2, 6)
    assert out.inputs[0] == 0 and all(graph.nodes[i].kind == "constant" for i in out.inputs[1:])
    names = [name for name, _ in lstm.named_parameters()]
    assert out.params == {name: name for name in names}
    assert out.target == "torch._VF.lstm"
    attrs = {k: v for k, v in out.attrs.items() if k != "output"}
    assert attrs == {"mode": "LSTM", "cell": False, "num_layers": 2, "bidirectional": True,
                     "hidden_size": 6, "proj_size": 3, "batch_first": True, "dropout": 0.0,
                     "training": True, "packed": False}
    assert graph.outputs == [out.index, h.index, c.index]
    assert graph.uses["weight_hr_l1_reverse"] == [out.index, h.index, c.index]


def test_scaled_dot_product_attention_called_directly():
    class Causal(nn.Module):
        def forward(self, q, k, v, mask):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)

    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    mask = torch.zeros(4, 6)
    graph = trace(Causal(), (q, k, v, mask))
    attention = only(graph, "attention")
    assert attention.inputs == [0, 1, 2, 3] and attention.attrs["scale"] == 0.3
    assert attention.attrs["has_mask"] and not attention.attrs["is_causal"]


def test_products_of_activations_einsum_and_matmul():
    class Scores(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 6))

        def forward(self, x):
            q = x @ self.w
            scores = torch.einsum("bqd,bkd->bqk", q, x)
            return torch.softmax(scores, dim=-1) @ x

    graph = trace(Scores(), torch.randn(2, 5, 6))
    # x @ w with w a parameter is a linear layer reading its weight as (in, out)
    assert kinds(graph) == ["input", "linear", "matmul", "softmax", "matmul"]
    projection = only(graph, "linear")
    assert projection.inputs == [0] and projection.params == {"weight": "w"}
    assert projection.attrs == {"weight_layout": "in_out"}
    scores, mixed = of_kind(graph, "matmul")
    assert scores.attrs == {"op": "einsum", "equation": "bqd,bkd->bqk", "inner": 6}
    assert scores.inputs == [projection.index, 0] and scores.shape == (2, 5, 5)
    assert only(graph, "softmax").attrs == {"dim": 2}
    assert mixed.attrs == {"op": "matmul", "inner": 5} and mixed.target == "torch.Tensor.matmul"


# ---------------------------------------------------------------- convolutions


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_conv_batchnorm_pool_transpose_attrs_and_state_unchanged_in_train_mode():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.Conv2d(2, 2, 4, padding="same", dilation=1, groups=2, bias=False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.train()
    before = state(model)
    graph = trace(model, torch.randn(2, 3, 8, 8))
    assert kinds(graph) == ["input", "conv", "norm", "elementwise", "max_pool", "conv_transpose",
                            "conv", "adaptive_avg_pool"]
    conv, bn, relu, pool, convt, same, gap = graph.nodes[1:8]
    assert conv.attrs == {"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "groups": 1,
                          "kernel_size": (3, 3)}
    assert conv.shape == (2, 4, 4, 4) and conv.params == {"weight": "0.weight", "bias": "0.bias"}
    assert bn.params == {"weight": "1.weight", "bias": "1.bias"}
    assert bn.attrs == {"which": "batch_norm", "eps": 1e-5, "training": True, "momentum": 0.1,
                        "running_mean": "1.running_mean", "running_var": "1.running_var"}
    assert pool.attrs == {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0),
                          "dilation": (1, 1), "ceil_mode": False}
    assert pool.shape == (2, 4, 2, 2)
    assert convt.attrs == {"stride": (2, 2), "padding": (1, 1), "output_padding": (1, 1),
                           "dilation": (1, 1), "groups": 2, "kernel_size": (3, 3)}
    assert convt.shape == (2, 2, 4, 4)
    # "same" with an even kernel pads 1 on the left/top and 2 on the right/bottom
    assert same.attrs["padding"] == (1, 1) and same.attrs["padding_right"] == (2, 2)
    assert same.params == {"weight": "5.weight"} and same.attrs["groups"] == 2
    assert gap.attrs == {"output_size": (1, 1)} and gap.shape == (2, 2, 1, 1)
    assert graph.nodes[-1].kind == "view" and graph.nodes[-1].shape == (2, 2)
    assert [n.module for n in graph.nodes[1:]] == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert_same_state(model, before)                      # running stats and batch count
    assert int(model[1].num_batches_tracked) == 0


def test_batchnorm_eval_mode_and_average_pool():
    model = nn.Sequential(nn.BatchNorm1d(3), nn.AvgPool1d(3, stride=2, padding=1,
                                                          count_include_pad=False)).eval()
    graph = trace(model, torch.randn(2, 3, 9))
    bn, pool = graph.nodes[1:]
    assert bn.attrs["training"] is False
    assert pool.kind == "avg_pool" and pool.attrs == {
        "kernel_size": (3,), "stride": (2,), "padding": (1,), "ceil_mode": False,
        "count_include_pad": False, "divisor_override": None}


# ---------------------------------------------------------------- control flow, weights, meta


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.wide, self.narrow = nn.Linear(16, 16), nn.Linear(4, 4)

    def forward(self, x):
        if x.shape[-1] > 8:
            return torch.tanh(self.wide(x))
        return F.relu(self.narrow(x))


def test_python_control_flow_follows_the_executed_path():
    wide = trace(Branchy(), torch.randn(2, 16))
    narrow = trace(Branchy(), torch.randn(2, 4))
    assert [n.attrs.get("op") for n in wide.nodes] == [None, None, "tanh"]
    assert [n.attrs.get("op") for n in narrow.nodes] == [None, None, "relu"]
    assert wide.uses["wide.weight"] == [1] and wide.uses["narrow.weight"] == []
    assert narrow.uses["narrow.weight"] == [1] and narrow.uses["wide.weight"] == []


def test_weight_norm_parametrized_linear_names_its_originals():
    model = nn.Sequential(weight_norm(nn.Linear(4, 5)), nn.Tanh())
    before = state(model)
    graph = trace(model, torch.randn(2, 4))
    linear = only(graph, "linear")
    g, v = "0.parametrizations.weight.original0", "0.parametrizations.weight.original1"
    assert linear.params == {"bias": "0.bias"}
    assert sorted(linear.attrs["weight_from"]) == [g, v]
    assert linear.inputs[0] == 0 and graph.nodes[linear.inputs[1]].shape == (5, 4)
    assert linear.index in graph.uses[g] and linear.index in graph.uses[v]
    params = [n for n in graph.nodes if n.kind == "param"]
    assert sorted(n.params["param"] for n in params) == [g, v]
    assert_same_state(model, before)


class ParamOps(nn.Module):
    """Parameters read through ops: a transposed weight and a per-feature gain."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 5))      # stored (in, out)
        self.gain = nn.Parameter(torch.ones(5))

    def forward(self, x):
        return F.linear(x, self.w.t()) * self.gain


def test_parameters_read_through_ops():
    graph = trace(ParamOps(), torch.randn(3, 4))
    assert kinds(graph) == ["input", "param", "linear", "param", "mul"]
    linear, mul = only(graph, "linear"), only(graph, "mul")
    assert linear.params == {} and linear.attrs == {"weight_from": ["w"]}
    transposed = graph.nodes[linear.inputs[1]]
    assert linear.inputs[0] == 0 and transposed.attrs["op"] == "t" and transposed.shape == (5, 4)
    gain = graph.nodes[mul.inputs[1]]
    assert gain.kind == "param" and gain.params == {"param": "gain"}
    assert mul.inputs == [linear.index, gain.index]
    assert graph.uses["gain"] == [gain.index] and linear.index in graph.uses["w"]


def small_cnn():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.SiLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))


def test_meta_model_with_meta_inputs_traces_like_a_real_one():
    real = trace(small_cnn(), torch.randn(2, 2, 5, 5))
    with torch.device("meta"):
        model = small_cnn()
    meta = trace(model, torch.empty(2, 2, 5, 5, device="meta"))
    assert all(p.is_meta for p in model.parameters())
    summary = [(n.kind, n.target, n.inputs, n.params, n.attrs, n.shape, n.module)
               for n in real.nodes]
    assert [(n.kind, n.target, n.inputs, n.params, n.attrs, n.shape, n.module)
            for n in meta.nodes] == summary
    assert only(meta, "norm").attrs == {"which": "group_norm", "eps": 1e-5, "num_groups": 2}


def test_dict_inputs_and_nested_outputs():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, a, b):
            return {"sum": self.lin(a) + b, "pair": (a, b.mean(dim=-1, keepdim=True))}

    a, b = torch.randn(2, 3), torch.randn(2, 3)
    graph = trace(TwoInputs(), {"b": b, "a": a})
    assert [graph.nodes[i].attrs for i in graph.inputs] == [{"key": "b"}, {"key": "a"}]
    add, mean = only(graph, "add"), only(graph, "mean")
    assert add.inputs == [2, 0] and mean.attrs == {"dim": (1,), "keepdim": True}
    assert graph.outputs == [add.index, 1, mean.index]


# ---------------------------------------------------------------- in place, eval dropout, opaque


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        y.relu_()
        y += 1
        z = torch.zeros_like(y)                  # a constant, until a traced value is written in
        z[:, 1:] = y[:, 1:]
        return z * 2


def test_in_place_ops_make_new_nodes_and_rebind_the_tensor():
    graph = trace(InPlace(), torch.randn(3, 4))
    assert kinds(graph) == ["input", "linear", "elementwise", "shift", "constant", "scatter",
                            "scale"]
    lin, relu, shift, zeros, write, scale = [n for n in graph.nodes if n.kind != "view"][1:]
    assert relu.inputs == [lin.index] and relu.target == "torch.Tensor.relu_"
    assert shift.inputs == [relu.index] and shift.attrs == {"scalar": 1}
    assert write.target == "torch.Tensor.__setitem__" and write.inputs[0] == zeros.index
    # three of the four columns written, into zeros made in forward
    assert write.attrs == {"op": "setitem", "share": 0.75, "zeros_before": True}
    assert graph.nodes[write.inputs[1]].inputs == [shift.index]
    assert scale.inputs == [write.index] and graph.outputs == [scale.index]
    assert graph.unknown == []
    assert_replays(relu, torch.relu)
    x = random64(seed=8)
    kept = x.clone()
    relu.replay(x)
    assert torch.equal(x, kept)                          # the replay of relu_ is out of place


def test_eval_dropout_returning_its_input_keeps_the_residual_wiring():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.3)

        def forward(self, x):
            return x + self.drop(x)

    graph = trace(Skip().eval(), torch.randn(2, 3))
    drop, add = only(graph, "dropout"), only(graph, "add")
    assert drop.inputs == [0] and drop.attrs == {"op": "dropout", "p": 0.3, "training": False}
    assert add.inputs == [0, drop.index]


def test_unknown_builtins_are_opaque_and_named():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.logcumsumexp(x, dim=-1).masked_scatter(x.isfinite(), x)

    graph = trace(Odd(), torch.randn(2, 3))
    assert [graph.nodes[i].target for i in graph.unknown] == [
        "torch.logcumsumexp", "torch.Tensor.isfinite", "torch.Tensor.masked_scatter"]
    assert all(graph.nodes[i].kind == "opaque" for i in graph.unknown)
    assert graph.nodes[graph.unknown[2]].inputs[:2] == graph.unknown[:2]
    assert graph.nodes[graph.unknown[1]].dtype == torch.bool


def test_comparisons_of_floats_and_masks_joined_are_elementwise():
    class Masks(nn.Module):
        def forward(self, x, ids):
            keep = (x > 0) | ~(x < -1.0)
            return torch.where(keep, x, 0.5 * x), ids > 3

    graph = trace(Masks(), (torch.randn(2, 3), torch.arange(6).reshape(2, 3)))
    by_op = {n.attrs.get("op"): n for n in graph.nodes if n.kind == "elementwise"}
    assert set(by_op) == {"gt", "lt", "logical_not", "logical_or", "where"}
    assert by_op["where"].inputs[0] == 0 and by_op["where"].inputs[2] == by_op["logical_or"].index
    probe = torch.linspace(-3, 3, 13)
    assert torch.equal(by_op["gt"].replay(probe), probe > 0)
    # integers compared (indices, token ids) have no rule
    assert [graph.nodes[i].target for i in graph.unknown] == ["torch.Tensor.gt"]


# ---------------------------------------------------------------- the model is left alone


def test_forward_raising_leaves_hooks_modes_buffers_and_grad_mode_as_they_were():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(3)

        def forward(self, x):
            self.bn(x)
            raise RuntimeError("boom")

    model = Boom()
    before = state(model)
    pre_hooks = len(module_globals._global_forward_pre_hooks)
    hooks = len(module_globals._global_forward_hooks)
    with pytest.raises(RuntimeError, match="boom"):
        trace(model, torch.randn(4, 3))
    assert len(module_globals._global_forward_pre_hooks) == pre_hooks
    assert len(module_globals._global_forward_hooks) == hooks
    assert torch._C._len_torch_function_stack() == 0
    assert torch.is_grad_enabled()
    assert_same_state(model, before)


def test_random_state_and_parameters_unchanged_by_a_train_mode_trace():
    model = nn.Sequential(nn.Linear(4, 4), nn.RReLU(), nn.Dropout(0.5), nn.BatchNorm1d(4))
    model.train()
    before = state(model)
    x = torch.randn(8, 4)
    rng = torch.get_rng_state()
    graph = trace(model, x)
    assert torch.equal(torch.get_rng_state(), rng)
    assert_same_state(model, before)
    assert all(p.requires_grad for p in model.parameters())
    assert kinds(graph) == ["input", "linear", "elementwise", "dropout", "norm"]
    assert graph.nodes[2].attrs == {"op": "rrelu", "lower": 1 / 8, "upper": 1 / 3,
                                    "training": True}


@pytest.mark.parametrize("bad, message", [
    (3.0, "example_inputs must be a torch.Tensor"),
    ([torch.zeros(2, 4), 3], r"example_inputs\[1\] must be a torch.Tensor"),
    ({"x": [1, 2]}, r"example_inputs\['x'\] must be a torch.Tensor"),
    ({0: torch.zeros(2, 4)}, "example_inputs keys must be str"),
    (None, "example_inputs must be"),
])
def test_bad_example_inputs_raise_type_error_naming_them(bad, message):
    model = nn.Linear(4, 2)
    before = state(model)
    with pytest.raises(TypeError, match=message):
        trace(model, bad)
    assert_same_state(model, before)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(0, 4), r"example_inputs has no elements \(shape \(0, 4\)\)"),
    ((torch.zeros(2, 4), torch.zeros(2, 0)), r"example_inputs\[1\] has no elements"),
])
def test_an_example_input_without_elements_is_refused_by_name(bad, message):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    before = state(model)
    with pytest.raises(ValueError, match=message):     # was: moments_in.mean must be finite, got nan
        varinit.torch.init_module(model, bad, generator=0)
    assert_same_state(model, before)


def test_a_compiled_model_initializes_as_the_same_model_uncompiled():
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    compiled_net, eager_net = (nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)) for _ in range(2))
    report = varinit.torch.init_module(torch.compile(compiled_net), x, generator=0)  # raised in dynamo
    varinit.torch.init_module(eager_net, x, generator=0)
    assert [r.name for r in report] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(torch.equal(a, b) for a, b in zip(compiled_net.parameters(), eager_net.parameters()))
    assert len(trace(torch.compile(eager_net), x).nodes) == len(trace(eager_net, x).nodes)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        trace(lambda x: x, torch.zeros(2))


def test_meta_view_traces_shapes_and_gives_the_real_tensors_back():
    from varinit.torch.graph import meta_view

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = {id(p) for p in model.parameters()}
    with pytest.raises(RuntimeError, match="inside"):
        with meta_view(model):
            assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())
            raise RuntimeError("inside")
    assert {id(p) for p in model.parameters()} == ids
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


class VmapMask(nn.Module):
    """A mask built by vmap over an index function reading a padding mask, as Hugging
    Face's masking utilities build one when an `and_mask_function` meets a padding mask
    (T5Gemma2's encoder): the index is a batched 0-dim tensor."""

    def __init__(self):
        super().__init__()
        self.fc, self.head = nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x, padding):
        keep = torch.vmap(lambda j: padding[0, j])(torch.arange(x.shape[1]))
        return self.head(torch.relu(self.fc(x)) * keep[None, :, None].to(x.dtype))


def test_a_one_element_operand_under_vmap_is_recorded_without_its_value():
    # the recorder read .item() of every one-element constant, which raises under vmap
    x, padding = torch.randn(4, 6, 8), torch.ones(4, 6, dtype=torch.long)
    graph = trace(VmapMask(), (x, padding))
    assert [n.kind for n in graph.nodes if n.params] == ["linear", "linear"]
    report = varinit.torch.init_module(VmapMask(), (x, padding), generator=0)
    assert {r.name: r.rule.split(":")[0] for r in report}["head.weight"] == "solved normal"
