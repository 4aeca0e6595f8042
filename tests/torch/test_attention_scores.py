"""init_module's flatter attention where the measured gradient grows over a pre-norm
transformer: the query and key projections (Plan.score_layers) are measured smaller,
within the activations' room, with the residual branches' ends held at their stds, and
kept when the gradient's first/last ratio comes into the band and the forward holds."""
import importlib

import torch
import torch.nn.functional as F
from torch import nn

import varinit
from varinit.torch.dataflow import plan
from varinit.torch.gradient_balance import ACT_KEPT, Balanced
from zoo import TokenStack, WrittenRMSNorm as RMSNorm, init_with_warnings, profile, verdict


class Attention(nn.Module):
    """Causal self-attention with separate query, key and value projections, written out
    or through F.scaled_dot_product_attention; `packed`: one projection for all three;
    `qk_norm`: RMSNorms on the queries and keys (which undo their projections' scale);
    `shared_kv`: the keys are the values."""

    def __init__(self, d, heads=4, written=False, packed=False, qk_norm=False, shared_kv=False):
        super().__init__()
        self.heads, self.written, self.packed, self.shared_kv = heads, written, packed, shared_kv
        if packed:
            self.qkv = nn.Linear(d, 3 * d, bias=False)
        else:
            self.q, self.k = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
            self.v = None if shared_kv else nn.Linear(d, d, bias=False)
        self.q_norm = RMSNorm(d // heads) if qk_norm else None
        self.k_norm = RMSNorm(d // heads) if qk_norm else None
        self.o = nn.Linear(d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        if self.packed:
            q, k, v = self.qkv(x).chunk(3, -1)
        else:
            q, k = self.q(x), self.k(x)
            v = k if self.shared_kv else self.v(x)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.written:
            scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            y = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, **attention):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.attn = Attention(d, **attention)
        self.gate, self.up = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, 3 * d, bias=False)
        self.down = nn.Linear(3 * d, d, bias=False)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def Decoder(depth=6, **attention):
    """A Llama-shaped decoder: token embedding, pre-norm blocks, final norm, head."""
    return TokenStack(lambda d: Block(d, **attention), depth, head_bias=False)


IDS = torch.randint(0, 256, (8, 32), generator=torch.Generator().manual_seed(0))


def _scores(**attention):
    torch.manual_seed(0)
    return plan(Decoder(depth=2, **attention), IDS).score_layers()


def test_the_query_and_key_projections_are_the_score_layers():
    expected = {f"blocks.{i}.attn.{name}" for i in range(2) for name in "qk"}
    assert _scores() == expected
    assert _scores(written=True) == expected


def test_a_projection_that_also_makes_the_values_or_sits_before_a_norm_is_not_one():
    assert _scores(packed=True) == set()
    assert _scores(qk_norm=True) == set()
    assert _scores(shared_kv=True) == {f"blocks.{i}.attn.q" for i in range(2)}


def _init(monkeypatch=None, balance=None, **attention):
    initialize = importlib.import_module("varinit.torch.initialize")
    if balance is not None:
        monkeypatch.setattr(initialize, "balance_branches", balance)
    torch.manual_seed(0)
    model = Decoder(**attention)
    report, _ = init_with_warnings(model, IDS)
    return model, report


def _qk_stds(model):
    return [float(getattr(block.attn, name).weight.detach().std()) for block in model.blocks for name in "qk"]


def test_flatter_attention_brings_a_deep_decoder_s_gradient_into_the_band(monkeypatch):
    # 8 blocks: the branches' ends already sit at the activations' room (act 1.8), and the
    # embedding's gradient is 4.7 to 4.8 times the last branch's; the queries and keys at
    # the same room make the scores flatter, and the attention passes back less
    unbalanced, _ = _init(monkeypatch, lambda *args, **kwargs: Balanced([], None), depth=8)
    before = [verdict(*profile(unbalanced, IDS, seed=seed)) for seed in range(3)]
    assert min(v["grad_ratio"] for v in before) > 4.5, before
    monkeypatch.undo()
    model, report = _init(depth=8)
    after = [verdict(*profile(model, IDS, seed=seed)) for seed in range(3)]
    assert all(v["grad_ratio"] <= 4.1 and v["act_ratio"] <= ACT_KEPT and 0.8 <= v["output_std"] <= 1.25
               for v in after), after
    assert all(b < 0.75 * a for a, b in zip(_qk_stds(unbalanced), _qk_stds(model)))
    qk = [r for r in report if r.name.endswith(("attn.q.weight", "attn.k.weight"))]
    assert len(qk) == 16 and all("gradient's balance" in r.rule for r in qk), [r.rule for r in qk]
    # each redrawn weight is its stream's draw at the std its record gives
    g, params = varinit.Generator(0), dict(model.named_parameters())
    for r in qk:
        expected = varinit.normal_(torch.empty_like(params[r.name]), std=r.std, generator=g.stream(r.name))
        assert torch.equal(params[r.name].detach(), expected), r.name


def test_flatter_attention_that_does_not_hold_the_forward_is_undone(monkeypatch):
    branch_balance = importlib.import_module("varinit.torch.branch_balance")
    unbalanced, _ = _init(monkeypatch, lambda *args, **kwargs: Balanced([], None), depth=8)
    monkeypatch.undo()
    monkeypatch.setattr(branch_balance, "forward_held", lambda before, after: False)
    model, report = _init(depth=8)
    assert _qk_stds(model) == _qk_stds(unbalanced)
    assert any("the attention's query and key layers were measured and undone" in n for n in report.notes), \
        report.notes
