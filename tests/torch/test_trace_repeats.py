"""The trace copies repeated blocks on the meta device (varinit.torch.repeats):
the graph must equal the one of running every call, node for node, and a block
is copied only when the copy is certain to be its record."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from varinit.torch.graph import trace  # noqa: E402

from zoo import ZOO, PreLNBlock  # noqa: E402


def _meta(build):
    torch.manual_seed(0)
    model, x = build()
    with torch.device("meta"):
        twin, _ = build()
    return twin.to("meta"), x.to("meta")


def _same_graph(model, x):
    fast, full = trace(model, x), trace(model, x, repeats=False)
    assert len(fast.nodes) == len(full.nodes)
    probe = torch.linspace(-3, 3, 11)
    for a, b in zip(fast.nodes, full.nodes):
        assert (a.index, a.kind, a.target, a.inputs, a.params, a.attrs, a.shape, a.dtype, a.module) == \
               (b.index, b.kind, b.target, b.inputs, b.params, b.attrs, b.shape, b.dtype, b.module), a
        assert (a.replay is None) == (b.replay is None), a
        assert (a.call is None) == (b.call is None), a
        if a.replay is not None and len(a.inputs) == 1 and a.params == {}:
            torch.testing.assert_close(a.replay(probe), b.replay(probe), equal_nan=True)
    assert (fast.inputs, fast.outputs, fast.tied, fast.uses, fast.unknown, fast.computed) == \
           (full.inputs, full.outputs, full.tied, full.uses, full.unknown, full.computed)
    assert list(fast.params) == list(full.params)
    return fast


class Counted(nn.Module):
    """A block that counts its real forward calls in a list shared by all of them."""

    def __init__(self, calls, width=8, **attrs):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.calls = calls
        self.__dict__.update(attrs)

    def forward(self, x, flag=True):
        self.calls.append(1)
        y = torch.relu(self.fc(x)) if flag else torch.tanh(self.fc(x))
        return x + y


class Stack(nn.Module):
    def __init__(self, blocks, flags=None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.flags = flags

    def forward(self, x):
        for i, block in enumerate(self.blocks):
            x = block(x) if self.flags is None else block(x, self.flags[i])
        return x


def _stack(n=6, flags=None, **attrs):
    calls = []
    with torch.device("meta"):
        model = Stack([Counted(calls, **attrs) for _ in range(n)], flags)
    return model, calls


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_graphs_equal_the_full_trace(name):
    model, x = _meta(ZOO[name])
    _same_graph(model, x)


def test_a_gpt_block_stack_is_run_once():
    calls = []
    original = PreLNBlock.forward

    def counting(self, x):
        calls.append(1)
        return original(self, x)

    with torch.device("meta"):
        model = nn.Sequential(*[PreLNBlock(32, 4) for _ in range(5)])
    x = torch.empty(2, 7, 32, device="meta")
    PreLNBlock.forward = counting
    try:
        _same_graph(model, x)      # the plan is a function of the graph: the same plan
        calls.clear()
        trace(model, x)
        assert len(calls) == 1
        calls.clear()
        trace(model, x, repeats=False)
        assert len(calls) == 5
    finally:
        PreLNBlock.forward = original


def test_identical_blocks_run_once_and_give_the_same_graph():
    model, calls = _stack()
    x = torch.empty(3, 8, device="meta")
    graph = _same_graph(model, x)
    calls.clear()
    trace(model, x)
    assert len(calls) == 1
    # every block's weight has its own linear node, under its own module
    linears = [n for n in graph.nodes if n.kind == "linear"]
    assert [n.params["weight"] for n in linears] == [f"blocks.{i}.fc.weight" for i in range(6)]
    assert [n.module for n in linears] == [f"blocks.{i}.fc" for i in range(6)]


def test_a_real_model_runs_every_call():
    calls = []
    model = Stack([Counted(calls) for _ in range(4)])
    trace(model, torch.zeros(3, 8))
    assert len(calls) == 4


@pytest.mark.parametrize("case", ["layer_index", "flags", "hook", "attribute_written", "inplace_argument",
                                  "repeats_off"])
def test_blocks_that_may_differ_run_every_call(case):
    n = 4
    if case == "layer_index":
        calls = []
        with torch.device("meta"):
            model = Stack([Counted(calls, layer_idx=i) for i in range(n)])
    elif case == "flags":
        model, calls = _stack(n, flags=[True, False, True, False])
    else:
        model, calls = _stack(n)
    if case == "hook":
        model.blocks[2].register_forward_hook(lambda *args: None)
    if case in ("attribute_written", "inplace_argument"):
        forward = _writes_attribute if case == "attribute_written" else _adds_into_argument
        variant = type(case, (Counted,), {"forward": forward})
        for block in model.blocks:
            block.__class__ = variant
    x = torch.empty(3, 8, device="meta")
    graph = _same_graph(model, x)
    calls.clear()
    trace(model, x, repeats=case != "repeats_off")
    expected = {"layer_index": n, "flags": 2, "hook": n - 1, "attribute_written": n,
                "inplace_argument": n, "repeats_off": n}[case]
    # hook: blocks 0, 1, 3 are one group (block 2 runs itself); flags: one first call per flag
    assert len(calls) == (expected if case != "hook" else 2)
    if case == "flags":
        kinds = [n.target for n in graph.nodes if n.kind == "elementwise"]
        assert kinds == ["torch.relu", "torch.tanh"] * 2
    if case == "attribute_written":
        assert all(block.seen == (3, 8) for block in model.blocks)


def _writes_attribute(self, x, flag=True):
    self.calls.append(1)
    self.seen = tuple(x.shape)
    return x + torch.relu(self.fc(x))


def _adds_into_argument(self, x, flag=True):
    self.calls.append(1)
    x.add_(torch.relu(self.fc(x)))
    return x


def test_a_module_called_twice_and_tied_weights_trace_as_in_full():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Counted([]), Counted([])
            self.c = Counted([])
            self.c.fc.weight = self.a.fc.weight        # tied: c is not copied from a

        def forward(self, x):
            return self.c(self.b(self.a(self.a(x))))

    with torch.device("meta"):
        model = Twice()
    graph = _same_graph(model, torch.empty(2, 8, device="meta"))
    uses = graph.uses["a.fc.weight"]
    assert len([i for i in uses if graph.nodes[i].kind == "linear"]) == 3


def test_returned_arguments_and_tuples_keep_their_identity():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x, skip):
            return self.fc(x), skip, {"aux": None}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pairs = nn.ModuleList(Pair() for _ in range(3))

        def forward(self, x):
            skip = x
            for pair in self.pairs:
                y, back, extra = pair(x, skip)
                assert back is skip and extra == {"aux": None}
                x = y + back
            return x

    with torch.device("meta"):
        model = Net()
    graph = _same_graph(model, torch.empty(2, 8, device="meta"))
    adds = [n for n in graph.nodes if n.kind == "add"]
    assert all(graph.inputs[0] in n.inputs for n in adds)


class _RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class _LlamaLayer(nn.Module):
    """Hugging Face's shape of a decoder layer: rotary (cos, sin) from the parent, keyword
    arguments with None, a tuple returned."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads = heads
        self.input_layernorm, self.post_attention_layernorm = _RMSNorm(d), _RMSNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate_proj, self.up_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, 3 * d, bias=False)
        self.down_proj = nn.Linear(3 * d, d, bias=False)

    def forward(self, hidden, position_embeddings, attention_mask=None, use_cache=False):
        b, t, d = hidden.shape
        h = self.input_layernorm(hidden)
        cos, sin = position_embeddings
        q, k, v = (p(h).view(b, t, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q = q * cos + torch.cat([-q[..., q.shape[-1] // 2:], q[..., :q.shape[-1] // 2]], -1) * sin
        k = k * cos + torch.cat([-k[..., k.shape[-1] // 2:], k[..., :k.shape[-1] // 2]], -1) * sin
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask,
                                                             is_causal=attention_mask is None)
        hidden = hidden + self.o_proj(a.transpose(1, 2).reshape(b, t, d))
        h = self.post_attention_layernorm(hidden)
        hidden = hidden + self.down_proj(torch.nn.functional.silu(self.gate_proj(h)) * self.up_proj(h))
        return (hidden,)


class _Llama(nn.Module):
    def __init__(self, layers=4, d=32, heads=4, vocab=97):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(_LlamaLayer(d, heads) for _ in range(layers))
        self.norm = _RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, d // heads, 2).float() / (d // heads)))

    def forward(self, ids):
        x = self.embed_tokens(ids)
        angles = torch.arange(ids.shape[1], device=ids.device).float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat([angles, angles], -1)
        position = (emb.cos(), emb.sin())
        for layer in self.layers:
            x = layer(x, position, attention_mask=None)[0]
        return self.lm_head(self.norm(x))


def test_a_hugging_face_shaped_decoder_is_traced_once_per_layer_kind():
    calls = []
    original = _LlamaLayer.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    with torch.device("meta"):
        model = _Llama()
    ids = torch.empty(2, 9, dtype=torch.long, device="meta")
    _LlamaLayer.forward = counting
    try:
        _same_graph(model, ids)
        calls.clear()
        trace(model, ids)
        assert len(calls) == 1
    finally:
        _LlamaLayer.forward = original


def test_the_composable_api_registry_of_fully_shard_does_not_split_the_blocks():
    # fully_shard keeps a per-module registry under this key; its hooks, the only readers,
    # are set aside while a sharded model is traced (sharded_model.global_view)
    model, calls = _stack(5)
    for block in model.blocks:
        block.__dict__["__composable_api_state_key_1234"] = {"fully_shard": object()}
    x = torch.empty(3, 8, device="meta")
    _same_graph(model, x)
    calls.clear()
    trace(model, x)
    assert len(calls) == 1


def test_a_block_that_fills_a_list_it_is_given_runs_every_call():
    class Caching(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x, cache):
            y = self.fc(x)
            cache.append(y)
            return x + y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Caching() for _ in range(3))

        def forward(self, x):
            cache = []
            for block in self.blocks:
                x = block(x, cache)
            return x + sum(cache)

    with torch.device("meta"):
        model = Net()
    graph = _same_graph(model, torch.empty(2, 8, device="meta"))
    assert len([n for n in graph.nodes if n.kind == "linear"]) == 3


def test_prelu_blocks_run_every_call_and_keep_their_own_slopes():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act = nn.Linear(8, 8), nn.PReLU(8)

        def forward(self, x):
            return self.act(self.fc(x))

    with torch.device("meta"):
        model = nn.Sequential(Block(), Block(), Block())
    graph = _same_graph(model, torch.empty(2, 8, device="meta"))
    prelus = [n for n in graph.nodes if n.kind == "elementwise" and n.attrs.get("op") == "prelu"]
    assert [n.params["weight"] for n in prelus] == [f"{i}.act.weight" for i in range(3)]
