"""Mixtures of experts written as Hugging Face writes them (transformers 5): the experts'
weights stacked in 3-D parameters and applied with torch.nn.functional.grouped_mm to the
rows sorted by expert; a router's top-k softmax weights renormalized to sum to one. The
experts are solved as linear layers (their weights were left untouched, and a meta model
could not be traced: grouped_mm's meta kernel takes bfloat16 only), the router's weights
have moments, and the integer bookkeeping (sort, histc, cumsum) is no op without a rule.

Bounds: each layer's output std within 25% of one over 256 tokens x 64 units for the
solved layers, against the untouched experts (torch.empty) or a unit-moment assumption
for the routing weights (a factor k too large); fixed seeds."""
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
if not hasattr(F, "grouped_mm"):
    pytest.skip("torch.nn.functional.grouped_mm is not in this torch", allow_module_level=True)

from varinit.torch.dataflow import plan  # noqa: E402
from zoo import init_with_warnings  # noqa: E402

EXPERTS, TOP_K, WIDTH, HIDDEN = 4, 2, 64, 128


class Router(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(EXPERTS, WIDTH))

    def forward(self, x):
        probs = F.softmax(F.linear(x, self.weight), dim=-1)
        top, index = torch.topk(probs, TOP_K, dim=-1)
        top /= top.sum(dim=-1, keepdim=True)
        return top, index


class Experts(nn.Module):
    """Gated experts in (experts, out, in) weights, applied per group of sorted rows."""

    def __init__(self):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.empty(EXPERTS, 2 * HIDDEN, WIDTH))
        self.down_proj = nn.Parameter(torch.empty(EXPERTS, WIDTH, HIDDEN))

    def forward(self, x, top, index):
        ids, perm = torch.sort(index.reshape(-1))
        rows = x[perm // TOP_K]
        counts = torch.histc(ids.float(), bins=EXPERTS, min=0, max=EXPERTS - 1)
        offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
        gate, up = F.grouped_mm(rows, self.gate_up_proj.transpose(-2, -1), offs=offsets).chunk(2, dim=-1)
        out = F.grouped_mm(F.silu(gate) * up, self.down_proj.transpose(-2, -1), offs=offsets)
        out = out * top.reshape(-1)[perm].unsqueeze(-1)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel(), device=perm.device)
        return out[inverse].view(-1, TOP_K, WIDTH).sum(dim=1)


class MoEBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm, self.router, self.experts = nn.RMSNorm(WIDTH), Router(), Experts()

    def forward(self, x):
        h = self.norm(x)
        return x + self.experts(h, *self.router(h))


class MoEModel(nn.Module):
    def __init__(self, depth=4):
        super().__init__()
        self.inp = nn.Linear(32, WIDTH)
        self.blocks = nn.ModuleList(MoEBlock() for _ in range(depth))
        self.norm, self.head = nn.RMSNorm(WIDTH), nn.Linear(WIDTH, 10)

    def forward(self, x):
        x = self.inp(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _expert_outputs(model, x):
    outs = []
    hooks = [b.experts.register_forward_hook(lambda m, a, o: outs.append(float(o.pow(2).mean().sqrt())))
             for b in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize("meta", [False, True], ids=["real", "meta model"])
def test_stacked_experts_are_solved_as_linear_layers(meta):
    torch.manual_seed(0)
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(1))
    if meta:
        with torch.device("meta"):
            model = MoEModel()
        report, messages = init_with_warnings(model, x.to("meta"))   # raised: grouped_mm's meta kernel wants bfloat16
        model = model.to_empty(device="cpu")
        with torch.no_grad():
            for r in report:   # the plan, written on a real copy
                p = model.get_parameter(r.name)
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * r.std
                        if r.rule.startswith("solved") else torch.full_like(p, float(r.rule.split()[1][:-1]))
                        if r.rule.startswith("constant") else p)
    else:
        model = MoEModel()
        report, messages = init_with_warnings(model, x)
    rules = {r.name: r.rule for r in report}
    for i in range(4):
        for name in ("gate_up_proj", "down_proj"):
            assert rules[f"blocks.{i}.experts.{name}"].startswith("solved normal"), rules[f"blocks.{i}.experts.{name}"]
    # per expert, fan_in is a matrix's in, not experts * in
    up = next(r for r in report if r.name == "blocks.0.experts.gate_up_proj")
    assert up.std == pytest.approx(1 / math.sqrt(WIDTH), rel=0.05)
    assert not any("without a moment rule" in m for m in messages), messages
    assert not any("traced on real tensors" in m for m in messages), messages
    # the branch: top-2 of 4 experts renormalized, each of unit-order output: std about 1 / sqrt(2)
    outs = _expert_outputs(model, x)
    assert all(0.5 < s < 1.0 for s in outs), outs


def test_renormalized_router_weights_have_their_moments():
    torch.manual_seed(0)
    model = MoEModel(depth=1)
    x = torch.randn(2048, 32, generator=torch.Generator().manual_seed(1))
    init_with_warnings(model, x)
    result = plan(model, x)
    division = next(n for n in result.graph.nodes if n.kind == "div")
    predicted = result.moments[division.index]
    with torch.no_grad():
        top, _ = model.blocks[0].router(model.blocks[0].norm(model.inp(x)))
    assert predicted.mean == pytest.approx(1 / TOP_K)
    # the shares of a sum of two: 0.25 plus their spread; a unit-moment assumption is 4 times it
    assert predicted.second == pytest.approx(float(top.pow(2).mean()), rel=0.1)
