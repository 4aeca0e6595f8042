"""Recurrent cells (nn.LSTMCell, GRUCell, RNNCell) called once per step from a
Python loop in forward(), and LSUV's recurrent rules: the whole-model init
solves each cell's input weight from the step's input, keeps the orthogonal
recurrent blocks and the forget-gate bias, and carries the state's moments
from step to step; LSUV rescales cells as it does nn.LSTM's layers and leaves
an LSTM's forget-gate bias at 1."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import varinit

CELLS = {
    "lstm": lambda: nn.LSTMCell(32, 64),
    "gru": lambda: nn.GRUCell(32, 64),
    "rnn_tanh": lambda: nn.RNNCell(32, 64),
    "rnn_relu": lambda: nn.RNNCell(32, 64, nonlinearity="relu"),
}
BLOCKS = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


class CellLoop(nn.Module):
    """A cell over the steps of a (batch, time, features) input, a head on every step's h;
    `given_state`: the loop starts from zeros it makes (else the cell's own default)."""

    def __init__(self, cell, given_state=False):
        super().__init__()
        self.cell, self.head, self.given_state = cell, nn.Linear(cell.hidden_size, 8), given_state

    def forward(self, x):
        state = None
        if self.given_state:
            h = x.new_zeros(x.shape[0], self.cell.hidden_size)
            state = (h, h.clone()) if isinstance(self.cell, nn.LSTMCell) else h
        outs = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outs.append(state[0] if isinstance(state, tuple) else state)
        return self.head(torch.stack(outs, 1))


def _inputs(seed=0):
    # std 3: a wrong input second moment (the unit one assumed) is off by 3 in the weight's std
    return 3 * torch.randn(16, 30, 32, generator=torch.Generator().manual_seed(seed))


def _records(report):
    return {r.name: r for r in report}


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("given_state", [False, True])
def test_a_cell_loop_is_solved_from_each_steps_input(kind, given_state):
    torch.manual_seed(0)
    model, x = CellLoop(CELLS[kind](), given_state), _inputs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x, generator=0)
    records = _records(report)
    # the gates' preactivations from the input at unit variance: std 1 / sqrt(fan_in 32 * nu_in 9),
    # nu_in measured on 2048 samples (a 3% error at most by 1e-6); a fan of 64 or nu 1 is 41% or 3x off
    expected = 1 / math.sqrt(32 * 9)
    assert records["cell.weight_ih"].std == pytest.approx(expected, rel=0.08)
    assert "solved" in records["cell.weight_ih"].rule
    hidden = 64
    for block in model.cell.weight_hh.detach().split(hidden):
        assert torch.allclose(block @ block.T, torch.eye(hidden), atol=1e-5)
    if kind == "lstm":
        gates = model.cell.bias_ih.detach().view(4, hidden)
        assert gates[1].eq(1).all() and gates[3].eq(2.5).all() and not gates[[0, 2]].any()
    with torch.no_grad():
        out = model(x)
    assert 0.8 <= float(out.std()) <= 1.25
    bounded = [str(w.message) for w in caught if "the gated output" in str(w.message)]
    # one note per cell (not per step), and none for a ReLU cell, whose output is not bounded
    assert len(bounded) == (0 if kind == "rnn_relu" else 1)


def test_a_cells_weights_get_rules_without_example_inputs():
    model = CellLoop(nn.LSTMCell(32, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = varinit.torch.init_module(model, generator=0)
    records = _records(report)
    assert records["cell.weight_hh"].rule.startswith("orthogonal per block (4 blocks)")
    assert records["cell.bias_ih"].rule == "zeros, forget-gate block 1, output-gate block 2.5"
    assert report.counts()["zeros"] == 3      # bias_ih, bias_hh, head.bias: one kind, no trailing comma
    assert model.cell.bias_ih.detach().view(4, 64)[1].eq(1).all()
    assert model.cell.bias_ih.detach().view(4, 64)[3].eq(2.5).all()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_lsuv_rescales_a_cells_input_weight_at_its_first_step(kind):
    torch.manual_seed(0)
    model, x = CellLoop(CELLS[kind]()), _inputs(1)
    report = varinit.torch.lsuv(model, x, generator=0)
    assert [r.name for r in report] == ["cell.weight_ih", "head"]
    with torch.no_grad():
        pre = F.linear(x[:, 0], model.cell.weight_ih)
    # LSUV stops within tol = 0.1 of unit variance, pooled over the gates
    assert abs(float(pre.var()) - 1) < 0.12
    if kind == "lstm":
        gates = model.cell.bias_ih.detach().view(4, 64)
        assert gates[1].eq(1).all() and gates[3].eq(2.5).all()


class LSTMHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.head = nn.LSTM(8, 16, num_layers=2, batch_first=True), nn.Linear(16, 2)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


@pytest.mark.parametrize("mean_correction", [False, True])
def test_lsuv_keeps_an_lstms_gate_offsets(mean_correction):
    # LSUV zeroes biases before it rescales; the forget- and output-gate blocks of b_ih are set back
    model = LSTMHead()
    varinit.torch.lsuv(model, torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(0)),
                       generator=0, mean_correction=mean_correction)
    for layer in range(2):
        gates = getattr(model.lstm, f"bias_ih_l{layer}").detach().view(4, 16)
        assert gates[1].eq(1).all() and gates[3].eq(2.5).all() and not gates[[0, 2]].eq(1).any()


class WrittenLSTM(nn.Module):
    """An LSTM cell written out as tutorials do: one layer on [x, h] gives the four gates; the
    state starts at x.new_zeros and the head reads the last h."""

    def __init__(self, features=3, hidden=64):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Linear(features + hidden, 4 * hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[0], self.hidden)
        for step in range(x.shape[1]):
            i, f, o, g = self.gates(torch.cat([x[:, step], h], 1)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.head(h)


def test_a_state_made_of_zeros_in_forward_is_zero_in_the_solve():
    # h = x.new_zeros(...) was a constant of unknown moments, read as unit: the gates' layer
    # was predicted 4x off at the first step (a unit-variance h where it is 0); each step's
    # output now follows the measured one, and the spread over the steps from the zero start
    # (std x1.73 or more) is named
    torch.manual_seed(0)
    model, x = WrittenLSTM(), torch.rand(128, 8, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = varinit.torch.init_module(model, x, generator=0, measure=False)
    stds = []
    hook = model.gates.register_forward_hook(lambda m, a, o: stds.append(float(o.pow(2).mean().sqrt())))
    with torch.no_grad():
        model(x)
    hook.remove()
    from varinit.torch.dataflow import plan
    predicted = [math.sqrt(plan(model, x).moments[n.index].second)
                 for n in plan(model, x).graph.nodes if n.module == "gates"]
    assert len(predicted) == len(stds) == 8
    assert all(p == pytest.approx(s, rel=0.25) for p, s in zip(predicted, stds)), (predicted, stds)
    assert stds[-1] / stds[0] >= 2.0, (predicted, stds)
    (note,) = [n for n in report.notes if "is called 8 times" in n]
    assert note.startswith("gates is called 8 times") and "starts at zeros" in note
