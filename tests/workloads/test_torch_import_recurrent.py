"""nn.LSTM, nn.GRU and nn.RNN import as an input projection (`linear`) and a `recurrence` op
per layer: PyTorch's parameters and FLOPs, PyTorch's values, the final state read as the
output's last step, sequence-first layers, a zero initial state, and the refusals, by name
(user models, seq2seq states: test_torch_import_recurrent_user.py; cells:
test_torch_import_recurrent_cells.py)."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn = torch.nn

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from workloads import from_torch  # noqa: E402
from workloads.errors import WorkloadError  # noqa: E402
from workloads.kinds.recurrent import run_recurrence  # noqa: E402

VARIANTS = [
    (nn.LSTM, {}),
    (nn.LSTM, dict(num_layers=2, bidirectional=True, dropout=0.2)),
    (nn.LSTM, dict(proj_size=12, num_layers=2, bidirectional=True)),
    (nn.GRU, dict(num_layers=2, bidirectional=True)),
    (nn.GRU, dict(bias=False)),
    (nn.RNN, dict(nonlinearity="relu", num_layers=3)),
    (nn.RNN, dict(bidirectional=True)),
]


class Tagger(nn.Module):
    """A sequence tagger as users write one: a recurrent layer, then a classifier per step."""

    def __init__(self, cls, **kw):
        super().__init__()
        self.rnn = cls(16, 24, batch_first=True, **kw)
        width = (kw.get("proj_size") or 24) * (2 if kw.get("bidirectional") else 1)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y)


def _id(v):
    return f"{v[0].__name__}-{'-'.join(f'{k}{w}' for k, w in v[1].items())}"


@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_parameters_and_flops_are_pytorchs(variant):
    cls, kw = variant
    model = Tagger(cls, **kw)
    x = torch.randn(3, 7, 16)
    g = from_torch(model, x)
    assert sum(op.params for op in g) == sum(p.numel() for p in model.parameters())
    # oneDNN's fused LSTM on the CPU is no mm the counter sees: PyTorch's own cells are
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as fc:
        model(x)
    assert sum(2 * op.macs for op in g) == fc.get_total_flops()
    kinds = [op.kind for op in g]
    layers = kw.get("num_layers", 1)
    assert kinds.count("recurrence") == layers
    assert kinds.count("dropout") == (layers - 1 if kw.get("dropout") else 0)


@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_the_recurrence_computes_what_pytorch_does(variant):
    """The kind's kernel, fed the module's own weights, gives the module's output."""
    cls, kw = variant
    kw = {k: v for k, v in kw.items() if k != "dropout"}
    rnn = cls(16, 24, batch_first=True, **kw).eval()
    mode = "rnn_" + rnn.nonlinearity if cls is nn.RNN else cls.__name__.lower()
    directions = 2 if rnn.bidirectional else 1
    x = torch.randn(3, 7, 16)
    h = x
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            sfx = [f"_l{layer}" + ("_reverse" if d else "") for d in range(directions)]
            w_ih = torch.cat([getattr(rnn, f"weight_ih{s}") for s in sfx])
            gates = h @ w_ih.t()
            if rnn.bias:
                gates = gates + torch.cat([getattr(rnn, f"bias_ih{s}") for s in sfx])
            params = [torch.stack([getattr(rnn, f"weight_hh{s}") for s in sfx])]
            params += [torch.stack([getattr(rnn, f"bias_hh{s}") for s in sfx])] if rnn.bias \
                else []
            if kw.get("proj_size"):
                params.append(torch.stack([getattr(rnn, f"weight_hr{s}") for s in sfx]))
            h = run_recurrence(gates, dict(mode=mode, hidden_size=24,
                                           proj_size=kw.get("proj_size", 0),
                                           directions=directions, bias_hh=rnn.bias), params)
        assert torch.allclose(h, rnn(x)[0], atol=1e-5)


def test_the_imported_graph_runs_in_pytorch():
    from validation.calibrate.torch_exec import GraphModule, example_input
    g = from_torch(Tagger(nn.LSTM, num_layers=2, bidirectional=True, proj_size=8),
                   torch.randn(2, 6, 16))
    assert GraphModule(g)(example_input(g)).shape == (2, 6, 5)


class LastState(nn.Module):
    def __init__(self, cls, **kw):
        super().__init__()
        self.rnn = cls(16, 24, batch_first=True, **kw)
        self.fc = nn.Linear(48 if kw.get("bidirectional") else 24, 3)
        self.lstm = cls is nn.LSTM

    def forward(self, x):
        out = self.rnn(x)[1]
        h = out[0] if self.lstm else out
        if self.rnn.bidirectional:
            return self.fc(torch.cat((h[-2], h[-1]), dim=1))
        return self.fc(h.squeeze(0) if self.rnn.num_layers == 1 else h[-1])


@pytest.mark.parametrize("cls,kw", [(nn.LSTM, {}), (nn.GRU, dict(num_layers=2)),
                                    (nn.LSTM, dict(num_layers=2, bidirectional=True))])
def test_the_last_layers_final_h_is_the_outputs_last_step(cls, kw):
    g = from_torch(LastState(cls, **kw), torch.randn(4, 9, 16))
    fc = g.op("fc")
    assert fc.in_specs[0].shape == (4, 48 if kw.get("bidirectional") else 24)
    # no op computes it: views of the recurrence's output (and the concat)
    steps = [op for op in g if op.name.startswith("rnn.h_n")]
    assert steps and all(op.is_view for op in steps)
    if kw.get("bidirectional"):   # the reverse direction ends at step 0
        assert {op.attrs["start"] for op in steps if op.kind == "slice"
                and op.attrs["dim"] == 1} == {0, 8}


class Reads(nn.Module):
    def __init__(self, what):
        super().__init__()
        self.what = what
        self.rnn = nn.LSTM(16, 24, batch_first=True, num_layers=2)

    def forward(self, x):
        y, (h, c) = self.rnn(x)
        return {"c": lambda: c[-1], "first": lambda: h[0], "whole": lambda: h.sum(0)}[
            self.what]()


@pytest.mark.parametrize("what,message", [
    ("c", "reads c_n[1] of 'rnn', which is not a tensor of the graph"),
    ("first", "reads h_n[0] of 'rnn'"),
    ("whole", "the final state h_n of 'rnn' (layers x directions, N, H: the batch second), "
              "read whole"),
])
def test_other_reads_of_the_final_state_are_refused_by_name(what, message):
    with pytest.raises(WorkloadError, match=re.escape(message)):
        from_torch(Reads(what), torch.randn(2, 5, 16))


class SeqFirst(nn.Module):
    """batch_first=False: the input transposed to (T, N, F) for the layer; `back` transposes
    the output back, `last` reads its last step and the last h_n, neither returns it as is."""

    def __init__(self, read="as-is"):
        super().__init__()
        self.rnn = nn.LSTM(16, 24, num_layers=2, bidirectional=True)
        self.read = read

    def forward(self, x):
        y, (h, _) = self.rnn(x.transpose(1, 2).permute(1, 0, 2).contiguous())   # (N, F, T) in
        if self.read == "back":
            return y.transpose(0, 1)
        if self.read == "last":
            return y[-1] + torch.cat((h[-2], h[-1]), 1)
        return y


@pytest.mark.parametrize("read,shape", [("back", (3, 7, 48)), ("last", (3, 48))])
def test_a_sequence_first_layer_reads_the_batch_first_tensor_it_was_transposed_from(read,
                                                                                  shape):
    model = SeqFirst(read)
    g = from_torch(model, torch.randn(3, 16, 7))
    assert g.topo()[-1].out.shape == shape == tuple(model(torch.randn(3, 16, 7)).shape)
    assert g.op("rnn.l0.input_proj").in_specs[0].shape == (3, 7, 16)
    assert sum(op.params for op in g) == sum(p.numel() for p in model.parameters())


class BatchFirstInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(16, 24)

    def forward(self, x):
        return self.rnn(x)[0]


class InitialState(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(16, 24, batch_first=True)

    def forward(self, x):
        return self.rnn(x, torch.ones(1, x.shape[0], 24))[0]


class ZeroState(nn.Module):
    """A tutorial's forecaster: the zero state made in the forward, moved to the input's
    device."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(16, 24, num_layers=2, batch_first=True)

    def forward(self, x):
        h0 = torch.zeros(2, x.size(0), 24).to(x.device)
        c0 = torch.zeros(2, x.size(0), 24, device=x.device).detach()
        return self.rnn(x, (h0, c0))[0][:, -1, :]


def test_a_zero_initial_state_made_in_the_forward_is_no_state():
    g = from_torch(ZeroState(), torch.randn(2, 5, 16))
    plain = from_torch(Tagger(nn.LSTM, num_layers=2), torch.randn(2, 5, 16))
    assert [op.kind for op in g if op.params] == [op.kind for op in plain if op.params][:-1]


class Packed(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(16, 24, batch_first=True)

    def forward(self, x):
        lengths = torch.full((x.shape[0],), x.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
        return nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True)[0]


@pytest.mark.parametrize("model,message", [
    (SeqFirst, "'output' at module path '<top>': reads a permute by (1, 0, 2), moving "
               "the batch"),
    (BatchFirstInput, "torch.nn.GRU at module path 'rnn': has batch_first=False and reads a "
                      "tensor whose first dimension is the batch"),
    (InitialState, "is given an initial state hx that is neither zeros nor another "
                   "recurrent module's final state (h_n, c_n)"),
    (Packed, "pack_padded_sequence at module path '<top>': packed sequences "),
])
def test_what_stays_out_is_refused_by_name(model, message):
    with pytest.raises(WorkloadError, match=re.escape(message)):
        from_torch(model(), torch.randn(2, 16, 16))   # (N, T, F), and (N, F, T) for SeqFirst


def test_an_unbatched_input_is_refused():
    class Unbatched(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(16, 8, batch_first=True)

        def forward(self, x):
            return self.rnn(x[0])[0]
    with pytest.raises(WorkloadError, match=r"reads a 2-D input \(5, 16\)"):
        from_torch(Unbatched(), torch.randn(2, 5, 16))


@settings(max_examples=12, deadline=None)
@given(cls=st.sampled_from([nn.LSTM, nn.GRU, nn.RNN]), layers=st.integers(1, 3),
       bidirectional=st.booleans(), bias=st.booleans(), hidden=st.integers(1, 20),
       features=st.integers(1, 12), proj=st.integers(0, 6), steps=st.integers(1, 6))
def test_any_layer_imports_with_pytorchs_parameters_and_flops(cls, layers, bidirectional,
                                                              bias, hidden, features, proj,
                                                              steps):
    proj = proj if cls is nn.LSTM and proj < hidden else 0
    kw = dict(proj_size=proj) if proj else {}
    rnn = cls(features, hidden, num_layers=layers, bias=bias, batch_first=True,
              bidirectional=bidirectional, **kw)
    model = Output(rnn)
    x = torch.randn(2, steps, features)
    g = from_torch(model, x)
    assert g.params() == sum(p.numel() for p in rnn.parameters())
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as fc:
        model(x)
    assert sum(2 * op.macs for op in g) == fc.get_total_flops()
    assert g.topo()[-1].out.shape == tuple(model(x).shape)


class Output(nn.Module):
    """A recurrent module's output alone."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]
