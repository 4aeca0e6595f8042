"""init_module(model, example_inputs) on recurrent layers whose gated output would
sit far below the layers around it: one gate's offset (in bias_hh) is solved on the
example's sequence so the output's std reaches GATED_OUTPUT_FLOOR (an LSTM's input
gate opens, a GRU's update gate closes), and is left at 0 where it already does."""
import warnings

import pytest
import torch
from torch import nn

import varinit
from zoo import profile, verdict

# mode -> (gate block, its sign, the number of blocks, the gate's name in the report)
GATES = {"LSTM": (0, 1.0, 4, "input"), "GRU": (1, -1.0, 3, "update")}


class OneLayer(nn.Module):
    """A projection, one recurrent layer of 64 units over the sequence, a head."""

    def __init__(self, kind, bidirectional=False):
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.rnn = getattr(nn, kind)(8, 64, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(64 * (2 if bidirectional else 1), 1)

    def forward(self, x):
        return self.head(self.rnn(self.proj(x))[0])


def _initialized(kind, steps, **kwargs):
    torch.manual_seed(0)
    model, x = OneLayer(kind, kwargs.pop("bidirectional", False)), torch.randn(32, steps, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = varinit.torch.init_module(model, x, generator=0, **kwargs)
    return model, x, {r.name: r for r in report}


@pytest.mark.parametrize("kind", sorted(GATES))
@pytest.mark.parametrize("steps", [5, 50])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_low_gated_output_takes_a_gate_offset(kind, steps, bidirectional):
    # without it (o = sigmoid(2.5) already) an LSTM's h has std 0.35 over 5 steps and 0.41
    # over 50, a GRU's 0.47 to 0.52: the head, solved to 1, was 2 to 2.9 times its std
    model, x, records = _initialized(kind, steps, bidirectional=bidirectional)
    block, sign, blocks, gate = GATES[kind]
    with torch.no_grad():
        out = model.rnn(model.proj(x))[0]
    # the floor 0.55 reached on the sample to within the bisection's step and the draws
    assert float(out.std()) > 0.5, float(out.std())
    for suffix in ("", "_reverse")[:2 if bidirectional else 1]:
        bias = getattr(model.rnn, f"bias_hh_l0{suffix}").detach().view(blocks, 64)
        offset = float(bias[block, 0])
        assert sign * offset > 0.1 and bias[block].eq(offset).all()
        assert not torch.cat([bias[:block], bias[block + 1:]]).any()
        rule = records[f"rnn.bias_hh_l0{suffix}"].rule
        assert f"solved {gate}-gate block" in rule and f"{offset:.4g}" in rule, rule
    v = verdict(*profile(model, x))
    assert v["act_ratio"] <= 2.0 and 0.25 <= v["grad_ratio"] <= 4.0, v


def test_an_output_above_the_floor_keeps_its_gates():
    # at a target second moment of 1/4 (gate preactivations of std 1/2) the floor is 0.275,
    # which an LSTM's h reaches without an offset (0.31)
    model, x, records = _initialized("LSTM", 20, target=0.25)
    assert not model.rnn.bias_hh_l0.detach().any()
    assert "solved" not in records["rnn.bias_hh_l0"].rule


@pytest.mark.parametrize("kind", sorted(GATES))
def test_shapes_only_plan_the_same_offset(kind):
    # the solve samples Gaussians of the input's moments: meta inputs (unit moments
    # assumed) give the offset the real ones do when the input has unit moments
    torch.manual_seed(0)
    model = nn.Sequential(getattr(nn, kind)(8, 64, batch_first=True))
    x = torch.randn(32, 10, 8)
    offsets = []
    for inputs in (x, x.to("meta")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = varinit.torch.init_module(model, inputs, generator=0)
        rule = {r.name: r.rule for r in report}["0.bias_hh_l0"]
        offsets.append(rule.split("-gate block ", 1)[1].split(":", 1)[0])
    assert offsets[0] == offsets[1]


class CellLoop(nn.Module):
    """A cell called once per step from forward(), then a head over its outputs."""

    def __init__(self, cell):
        super().__init__()
        self.cell, self.head = cell, nn.Linear(64, 4)

    def steps(self, x):
        state, outputs = None, []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs, 1)

    def forward(self, x):
        return self.head(self.steps(x))


@pytest.mark.parametrize("kind", sorted(GATES))
def test_a_cell_loop_takes_its_gate_offset_over_the_loop(kind):
    # the offset is solved over the whole loop (20 calls) at the first step's node; without it
    # the outputs have std 0.40 (an LSTMCell) and 0.40 (a GRUCell)
    torch.manual_seed(0)
    model, x = CellLoop(getattr(nn, f"{kind}Cell")(16, 64)), torch.randn(16, 20, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = {r.name: r for r in varinit.torch.init_module(model, x, generator=0)}
    block, sign, blocks, gate = GATES[kind]
    bias = model.cell.bias_hh.detach().view(blocks, 64)
    offset = float(bias[block, 0])
    assert sign * offset > 0.1 and bias[block].eq(offset).all()
    assert f"solved {gate}-gate block" in records["cell.bias_hh"].rule
    with torch.no_grad():
        assert float(model.steps(x).std()) > 0.5
