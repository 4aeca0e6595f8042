"""Graph networks written by hand in plain torch (no torch_geometric): each node
aggregates messages along the edges of an integer edge_index with scatter_add_ /
scatter_reduce into zeros, as PyTorch Geometric's layers do. A GCN with symmetric
degree normalization computed in forward (Kipf & Welling 2017), GraphSAGE's mean
aggregation (Hamilton et al. 2017), GIN's sum (Xu et al. 2019) and GAT's softmax over
each node's incoming edges written out (Velickovic et al. 2018), and a mean written as
a sum over the degrees, on a random graph of 300 nodes and mean in-degree 9 (8 random
edges per node and a self-loop).

Before scatter_add, scatter_add_ and scatter_reduce had rules, the init named them as
ops without a moment rule (and deg.pow(-0.5), the softmax's division after them), and
the GAT's exp inside the written-out softmax was judged an activation with no stable
choice (E[g^2] ~ q^2.44): both are asserted away here."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import varinit
from varinit.torch.dataflow import plan

NODES, EDGES_PER_NODE, WIDTH, HIDDEN = 300, 8, 32, 64


def random_graph(seed=1):
    """edge_index (2, E): 8 uniform random edges per node and a self-loop at each node
    (so that every degree is at least one)."""
    g = torch.Generator().manual_seed(seed)
    edges = NODES * EDGES_PER_NODE
    loops = torch.arange(NODES)
    src = torch.cat([torch.randint(0, NODES, (edges,), generator=g), loops])
    dst = torch.cat([torch.randint(0, NODES, (edges,), generator=g), loops])
    return torch.stack([src, dst])


def node_features(seed=2):
    """Standardized features: each column mean 0, std 1 (raw ones of other scales and offsets)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(NODES, WIDTH, generator=g) * 3.0 + 4.0 * torch.rand(WIDTH, generator=g)
    return (x - x.mean(0)) / x.std(0)


class GCN(nn.Module):
    """4 layers of D^-1/2 A D^-1/2 X W with ReLU, the degrees counted in forward."""

    def __init__(self):
        super().__init__()
        dims = [WIDTH, HIDDEN, HIDDEN, HIDDEN, 8]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x, edge_index):
        src, dst = edge_index[0], edge_index[1]
        deg = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device).scatter_add(
            0, dst, torch.ones_like(dst, dtype=x.dtype))
        inv_sqrt = deg.pow(-0.5)
        norm = inv_sqrt[src] * inv_sqrt[dst]
        for i, layer in enumerate(self.layers):
            h = layer(x)
            msg = h[src] * norm.unsqueeze(-1)
            out = torch.zeros_like(h)
            out.scatter_add_(0, dst.unsqueeze(-1).expand_as(msg), msg)
            x = F.relu(out) if i < len(self.layers) - 1 else out
        return x


class SAGE(nn.Module):
    """3 layers of W_neigh mean_{j -> i} x_j + W_root x_i, the mean by scatter_reduce."""

    def __init__(self):
        super().__init__()
        dims = [WIDTH, HIDDEN, HIDDEN, 8]
        self.neigh = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:]))
        self.root = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x, edge_index):
        src, dst = edge_index[0], edge_index[1]
        for i, (neigh, root) in enumerate(zip(self.neigh, self.root)):
            msg = x[src]
            mean = torch.zeros_like(x).scatter_reduce(0, dst.unsqueeze(-1).expand_as(msg), msg, reduce="mean",
                                                      include_self=False)
            x = neigh(mean) + root(x)
            if i < len(self.root) - 1:
                x = F.relu(x)
        return x


class GIN(nn.Module):
    """3 layers of MLP((1 + eps) x_i + sum_{j -> i} x_j), each MLP two Linear layers."""

    def __init__(self):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(3))
        dims = [WIDTH, HIDDEN, HIDDEN, HIDDEN]
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, b))
                                  for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x, edge_index):
        src, dst = edge_index[0], edge_index[1]
        for i, mlp in enumerate(self.mlps):
            total = torch.zeros_like(x)
            total.scatter_add_(0, dst.unsqueeze(-1).expand(-1, x.shape[1]), x[src])
            x = mlp((1 + self.eps[i]) * x + total)
            if i < len(self.mlps) - 1:
                x = F.relu(x)
        return x


def edge_softmax(scores, dst, nodes):
    """Softmax of scores (E, heads) over the edges into each node, as PyTorch Geometric
    writes it: the segment max subtracted, exp, the segment sum gathered back, divided."""
    index = dst.unsqueeze(-1).expand_as(scores)
    zeros = torch.zeros(nodes, scores.shape[1], dtype=scores.dtype, device=scores.device)
    top = zeros.scatter_reduce(0, index, scores, reduce="amax", include_self=False)
    e = (scores - top.index_select(0, dst)).exp()
    total = torch.zeros_like(zeros).scatter_add(0, index, e)
    return e / (total.index_select(0, dst) + 1e-16)


class GAT(nn.Module):
    """3 layers of 4-head attention over each node's incoming edges, ELU, a Linear head."""

    def __init__(self, heads=4):
        super().__init__()
        self.heads = heads
        dims = [WIDTH, HIDDEN, HIDDEN, HIDDEN]
        self.lins = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:]))
        self.att_src = nn.ParameterList(nn.Parameter(0.1 * torch.randn(heads, HIDDEN // heads)) for _ in range(3))
        self.att_dst = nn.ParameterList(nn.Parameter(0.1 * torch.randn(heads, HIDDEN // heads)) for _ in range(3))
        self.out = nn.Linear(HIDDEN, 8)

    def forward(self, x, edge_index):
        src, dst = edge_index[0], edge_index[1]
        n = x.shape[0]
        for lin, att_src, att_dst in zip(self.lins, self.att_src, self.att_dst):
            h = lin(x).view(n, self.heads, -1)
            scores = F.leaky_relu((h * att_src).sum(-1)[src] + (h * att_dst).sum(-1)[dst], 0.2)
            alpha = edge_softmax(scores, dst, n)
            msg = h[src] * alpha.unsqueeze(-1)
            out = torch.zeros_like(h).scatter_add_(0, dst.view(-1, 1, 1).expand_as(msg), msg)
            x = F.elu(out.reshape(n, -1))
        return self.out(x)


class MeanByDegree(nn.Module):
    """3 layers of W (sum_{j -> i} x_j) / d_i: a mean aggregation written as index_add over
    the degrees counted in forward, the signal divided by a fixed tensor."""

    def __init__(self):
        super().__init__()
        dims = [WIDTH, HIDDEN, HIDDEN, 8]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x, edge_index):
        src, dst = edge_index[0], edge_index[1]
        deg = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device).scatter_add(
            0, dst, torch.ones_like(dst, dtype=x.dtype))
        for i, layer in enumerate(self.layers):
            x = layer(torch.zeros_like(x).index_add(0, dst, x[src]) / deg.clamp(min=1).unsqueeze(-1))
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


MODELS = {"gcn": GCN, "sage": SAGE, "gin": GIN, "gat": GAT, "mean_by_degree": MeanByDegree}


def _init(model, inputs):
    """init_module with every warning recorded: (report, the warnings' and the notes' texts)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, inputs, generator=0)
    return report, [str(w.message) for w in caught] + list(report.notes)


def _linear_stds(model, x, edge_index):
    """The std of every nn.Linear's output over one forward pass, in call order."""
    stds = []
    hooks = [m.register_forward_hook(lambda m, a, o: stds.append(float(o.std())))
             for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x, edge_index)
    for h in hooks:
        h.remove()
    return stds


@pytest.mark.parametrize("meta", [False, True], ids=["real inputs", "shapes only"])
@pytest.mark.parametrize("name", list(MODELS))
def test_message_passing_keeps_every_layer_at_unit_scale(name, meta):
    # shapes only: x a meta tensor (no measured pass: the analytic solve alone sets every
    # scale), edge_index real
    torch.manual_seed(0)
    model, x, edge_index = MODELS[name](), node_features(), random_graph()
    report, messages = _init(model, (x.to("meta") if meta else x, edge_index))
    # each aggregation has a rule, so does what the degrees and the softmax compute from them
    assert not [m for m in messages if "without a moment rule" in m], messages
    assert not [m for m in messages if "its input's moments are unknown" in m], messages
    report.assert_healthy()
    assert not [v.activation for v in report.verdicts if v.activation == "exp"], report.to_text()
    assert not [r.name for r in report if r.rule.startswith("untouched") and "weight" in r.name
                and not r.name.startswith("att_")], report.to_text()
    stds = _linear_stds(model, x, edge_index)
    print(name, "shapes only" if meta else "real inputs", [f"{s:.3f}" for s in stds])
    assert all(0.5 <= s <= 2.0 for s in stds), stds
    assert max(stds) / min(stds) <= 2.0, stds


def test_the_degrees_are_fixed_values_read_off_the_real_index():
    # deg = zeros.scatter_add(ones), deg^-1/2, and the edge weights: computed from the
    # integer edge_index alone, the same for every example: fixed, their values recorded
    x, edge_index = node_features(), random_graph()
    graph = varinit.torch.trace(GCN(), (x, edge_index))
    deg = torch.zeros(NODES).scatter_add(0, edge_index[1], torch.ones(edge_index.shape[1])).double()
    (scatter,) = [n for n in graph.nodes if n.kind == "scatter" and n.shape == (NODES,)]
    assert scatter.index in graph.fixed
    mean, second, inverse, inverse_sq = scatter.attrs["values"]
    assert (mean, second) == (pytest.approx(float(deg.mean())), pytest.approx(float((deg * deg).mean())))
    assert (inverse, inverse_sq) == (pytest.approx(float((1 / deg).mean())),
                                     pytest.approx(float((1 / deg ** 2).mean())))
    assert scatter.attrs["counts"] == pytest.approx(float(deg.mean()))
    assert scatter.attrs["counts_sq"] == pytest.approx(float((deg * deg).mean()))
    linears = [n.index for n in graph.nodes if n.kind == "linear"]
    assert linears and not set(linears) & graph.fixed


def test_the_solve_reads_the_edge_weights_of_the_real_graph():
    # what init_module plans from (x, edge_index): the edge weights 1 / sqrt(d_i d_j) are
    # fixed, and their second moment is the mean over the edges of 1 / (d_i d_j) (0.0142
    # here, with d about 9), not a unit second moment assumed
    torch.manual_seed(0)
    x, edge_index = node_features(), random_graph()
    result = plan(GCN(), (x, edge_index))
    src, dst = edge_index
    deg = torch.zeros(NODES).scatter_add(0, dst, torch.ones(dst.shape[0])).double()
    weights_sq = float((1.0 / (deg[src] * deg[dst])).mean())
    (norm,) = [n for n in result.graph.nodes if n.kind == "mul" and n.index in result.graph.fixed
               and n.shape == (edge_index.shape[1],)]
    assert result.moments[norm.index] is not None, "the edge weights' moments are unknown"
    assert result.moments[norm.index].second == pytest.approx(weights_sq, rel=1e-6)
