"""Weights a forward pass reads through a matrix product rather than a layer module:
x @ W and torch.mm(x, W) with a bare parameter (graph attention), x @ E.weight.T (a head
tied to the embedding written out), einsum with stacked expert matrices; and inputs
given by shape whose integers the forward pass turns into floats."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo import init_with_warnings


class GraphAttention(nn.Module):
    """Graph attention layers (Velickovic et al. 2018) written with bare parameters:
    h = x W, scores from [h_i, h_j] a, ELU of the attention-weighted sum. Their own init
    (std 3) is far from any sound scale."""

    def __init__(self, width=64, depth=4, nodes=24):
        super().__init__()
        self.W = nn.ParameterList(nn.Parameter(torch.randn(width, width) * 3) for _ in range(depth))
        self.a = nn.ParameterList(nn.Parameter(torch.randn(2 * width, 1) * 3) for _ in range(depth))
        g = torch.Generator().manual_seed(5)
        self.register_buffer("adjacency", ((torch.rand(nodes, nodes, generator=g) < 0.2).float()
                                           + torch.eye(nodes)).clamp(max=1))
        self.seen = []

    def forward(self, x):
        self.seen = []
        n = x.shape[0]
        for W, a in zip(self.W, self.a):
            h = torch.mm(x, W)
            self.seen.append(h)
            pairs = torch.cat([h.repeat_interleave(n, 0), h.repeat(n, 1)], 1)
            scores = F.leaky_relu(pairs @ a, 0.2).view(n, n).masked_fill(self.adjacency == 0, -1e9)
            x = F.elu(torch.softmax(scores, 1) @ h)
        return x


class ExpertMixture(nn.Module):
    """Pre-LN blocks of a dense mixture of experts: the experts' stacked matrices
    (experts, in, out) read by einsum, their outputs weighted by a router's softmax."""

    def __init__(self, width=64, experts=4, hidden=128, depth=3):
        super().__init__()
        self.embed = nn.Linear(32, width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.routers = nn.ModuleList(nn.Linear(width, experts) for _ in range(depth))
        self.w_in = nn.ParameterList(nn.Parameter(torch.randn(experts, width, hidden)) for _ in range(depth))
        self.w_out = nn.ParameterList(nn.Parameter(torch.randn(experts, hidden, width)) for _ in range(depth))
        self.head = nn.Linear(width, 8)
        self.seen = []

    def forward(self, x):
        self.seen = []
        x = self.embed(x)
        for norm, router, w_in, w_out in zip(self.norms, self.routers, self.w_in, self.w_out):
            y = norm(x)
            shares = torch.softmax(router(y), -1)
            hidden = torch.einsum("bd,edh->beh", y, w_in)
            self.seen.append(hidden)
            out = torch.einsum("beh,ehd->bed", F.gelu(hidden), w_out)
            x = x + torch.einsum("bed,be->bd", out, shares)
        return self.head(x)


def _rms(t):
    return float(t.detach().pow(2).mean().sqrt())


@pytest.mark.parametrize("meta", [False, True])
def test_bare_parameters_in_a_matrix_product_are_solved_as_weights(meta):
    torch.manual_seed(0)
    model = GraphAttention()
    x = torch.randn(24, 64, generator=torch.Generator().manual_seed(1))
    report, _ = init_with_warnings(model, x.to("meta") if meta else x)
    rules = {r.name: r.rule for r in report}
    assert all(rules[f"W.{i}"].startswith("solved") and rules[f"a.{i}"].startswith("solved")
               for i in range(4)), rules
    with torch.no_grad():
        out = model(x)
    # their own std 3 gives products of rms 24 and more, growing layer by layer; solved, they
    # drift up to 1.6 over four layers (the scores' softmax is taken as over a causal mask)
    rms = [_rms(h) for h in model.seen]
    assert all(0.6 < r < 2 for r in rms), rms
    assert 0.3 < _rms(out) < 2, _rms(out)


def test_expert_matrices_read_by_einsum_are_solved_with_the_summed_fan():
    torch.manual_seed(0)
    model = ExpertMixture()
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(1))
    report, _ = init_with_warnings(model, x)
    by_name = {r.name: r for r in report}
    for i in range(3):
        assert by_name[f"w_in.{i}"].rule.startswith("solved"), by_name[f"w_in.{i}"].rule
        # fan_in is the width summed over (64), not the expert count or the stack's size
        assert by_name[f"w_in.{i}"].fan_in == 64 and by_name[f"w_out.{i}"].fan_in == 128
    with torch.no_grad():
        out = model(x)
    # a LayerNorm before each: unit rms per entry in, so W ~ N(0, 1/64) gives rms 1 (randn gave 8)
    rms = [_rms(h) for h in model.seen]
    assert all(0.85 < r < 1.18 for r in rms), rms
    assert 0.5 < _rms(out) < 2, _rms(out)


class FunctionalTiedHead(nn.Module):
    """A language model whose head is the embedding matrix, written x @ E.weight.T after a
    final norm (GPT-2 style with the head spelled out)."""

    def __init__(self, vocab=500, width=64, depth=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.GELU(),
                                                  nn.Linear(4 * width, width)) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for block in self.blocks:
            x = x + block(x)
        return self.norm(x) @ self.embedding.weight.T


def test_a_head_written_as_a_product_with_the_embedding_is_the_tied_head():
    torch.manual_seed(0)
    model = FunctionalTiedHead()
    tokens = torch.randint(0, 500, (8, 32), generator=torch.Generator().manual_seed(1))
    report, _ = init_with_warnings(model, tokens)
    rules = {r.name: r.rule for r in report}
    # one scale for both uses; the final norm's gain takes the head's
    assert rules["embedding.weight"].startswith("solved"), rules
    assert rules["norm.weight"].startswith("constant") and "tied" in rules["norm.weight"], rules
    with torch.no_grad():
        embedded = model.embedding(tokens)
        logits = model(tokens)
    assert 0.7 < _rms(embedded) < 1.4, _rms(embedded)
    # torch's default gives logits of rms 8 (unit embeddings, unit norm gain, width 64)
    assert 0.7 < float(logits.std()) < 1.4, float(logits.std())


class LearnedQueryPool(nn.Module):
    """Attention pooling with a learned query on the left of the product: q @ k^T."""

    def __init__(self, width=32):
        super().__init__()
        self.keys = nn.Linear(width, width)
        self.query = nn.Parameter(torch.randn(1, width))
        self.out = nn.Linear(width, 4)

    def forward(self, x):
        scores = self.query @ self.keys(x).transpose(-1, -2)
        return self.out(torch.softmax(scores, -1) @ x).squeeze(1)


def test_a_parameter_in_a_product_no_rule_places_is_named_in_a_warning():
    model = LearnedQueryPool()
    before = model.query.detach().clone()
    report, messages = init_with_warnings(model, torch.randn(8, 10, 32, generator=torch.Generator().manual_seed(0)))
    assert {r.name: r.rule for r in report}["query"].startswith("untouched")
    assert torch.equal(model.query, before)
    assert any("matrix product reads with the signal" in m and ": query" in m for m in messages), messages


class ByteImages(nn.Module):
    """A DQN-style network that reads uint8 frames and scales them to [0, 1] itself."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(4, 32, 8, 4), nn.Conv2d(32, 64, 4, 2)
        self.fc = nn.Linear(64 * 9 * 9, 6)

    def forward(self, frames):
        x = frames.float() / 255.0
        return self.fc(F.relu(self.c2(F.relu(self.c1(x)))).flatten(1))


def test_meta_byte_images_are_read_as_uniform_bytes_and_said():
    torch.manual_seed(0)
    model = ByteImages()
    _, messages = init_with_warnings(model, torch.empty(8, 4, 84, 84, dtype=torch.uint8, device="meta"))
    assert any("meta uint8" in m and "0..255" in m for m in messages), messages
    frames = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(frames)
    # read as unit second moment, x / 255 looked 1/255 as large: output std about 100
    assert 0.5 < float(out.std()) < 2, float(out.std())


class TimeFromSteps(nn.Module):
    """Integer steps the forward pass turns into floats (no uint8: no range to assume)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, steps):
        return self.fc(steps.float())


def test_meta_integers_read_as_floats_are_said_to_be_assumed():
    _, messages = init_with_warnings(TimeFromSteps(), torch.empty(4, 8, dtype=torch.int64, device="meta"))
    assert any("torch.int64 on meta" in m and "unit second moment assumed" in m for m in messages), messages


def test_the_summed_fan_of_an_einsum_weight_leaves_out_shared_letters():
    """'bed,edh->beh' (each expert's own input, the expert letter shared): fan_in d, fan_out h."""

    class PerExpert(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 48, 96))

        def forward(self, x):
            return torch.einsum("bed,edh->beh", x, self.w)

    model = PerExpert()
    x = torch.randn(128, 4, 48, generator=torch.Generator().manual_seed(0))
    report, _ = init_with_warnings(model, x)
    record = next(r for r in report if r.name == "w")
    assert record.fan_in == 48
    assert math.isclose(record.std, 1 / math.sqrt(48 * float(x.pow(2).mean())), rel_tol=1e-6)
