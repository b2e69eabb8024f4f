"""nn.LSTMCell, nn.GRUCell and nn.RNNCell called one step at a time in a Python loop (an
attention decoder's): each call a `linear` and a one-step `recurrence` started from the h
given, with PyTorch's parameters and FLOPs; an LSTMCell's c passed on, and refused read."""
import re

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from hwmodels import model_for  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.errors import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class AttentionDecoder(nn.Module):
    """An LSTM encoder, then a cell per target step reading the encoder's outputs through dot
    attention, started from the encoder's last output."""

    def __init__(self, cell=nn.LSTMCell, read_c=False):
        super().__init__()
        self.lstm_cell, self.read_c = cell is nn.LSTMCell, read_c
        self.encoder = nn.LSTM(16, 32, batch_first=True)
        self.cell = cell(16 + 32, 32)
        self.query = nn.Linear(32, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, src, tgt):
        memory, _ = self.encoder(src)
        h, c = memory[:, -1], torch.zeros(src.shape[0], 32)
        outs = []
        for t in range(tgt.shape[1]):
            scores = torch.softmax((memory @ self.query(h).unsqueeze(2)).squeeze(2), dim=1)
            context = (scores.unsqueeze(1) @ memory).squeeze(1)
            step = torch.cat((tgt[:, t], context), 1)
            if self.lstm_cell:
                h, c = self.cell(step, (h, c))
            else:
                h = self.cell(step, h)
            outs.append(self.out(c if self.read_c else h))
        return torch.stack(outs, 1)


def examples():
    return torch.randn(4, 9, 16), torch.randn(4, 5, 16)


@pytest.mark.parametrize("cell", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_a_cell_per_step_imports_with_pytorchs_parameters_and_flops(cell):
    model, x = AttentionDecoder(cell), examples()
    g = from_torch(model, x)
    assert g.params() == sum(p.numel() for p in model.parameters())
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as fc:
        model(*x)     # oneDNN off: its fused nn.LSTM is no mm the counter sees
    assert sum(2 * op.macs for op in g) == fc.get_total_flops()
    steps = [op for op in g if op.kind == "recurrence" and op.attrs.get("cell")]
    assert len(steps) == 5 and all(op.out.shape == (4, 1, 32) for op in steps)
    assert all(len(op.inputs) == 2 for op in steps)          # each from the h before it
    t = lower_training(g)
    assert sum(op.params for op in t.phase("update")) == g.params()
    assert t.op("cell.step5.grad_state").out.shape == (4, 1, 32)


def test_a_cells_step_runs_on_cublas_not_cudnn():
    """No TF32 for FP32 on an A100: PyTorch's cell runs cuBLAS products (matmul TF32 is off
    by default), not a cuDNN call."""
    g = from_torch(AttentionDecoder(), examples())
    a100 = model_for("a100")
    assert a100.arithmetic_precision(g.op("cell.step")) == "fp32"
    assert a100.arithmetic_precision(g.op("encoder.l0")) == "tf32"


def test_an_lstm_cells_c_read_as_values_is_refused_by_name():
    with pytest.raises(WorkloadError, match=re.escape(
            "the cell state c of 'cell', read as values; it is supported only passed to the "
            "next call of an LSTMCell")):
        from_torch(AttentionDecoder(read_c=True), examples())
