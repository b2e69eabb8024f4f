"""How torch_import lowers nn.LSTMCell, nn.GRUCell and nn.RNNCell (a mixin of
torch_import._Lowering): one step a call, as decoders with attention, Tacotron and
captioning models run them in a Python loop.

A call is the recurrent layer's two ops for one step, as PyTorch runs it (cuBLAS products
and its fused cell kernel, no cuDNN call): `linear` for x @ W_ih^T + b_ih, then a one-step
`recurrence` (attrs cell: True) holding W_hh and b_hh, started from the h given, seen as
(N, 1, H) (workloads/kinds/recurrent.py: the start's last step). Its h is a tensor of the
graph; an LSTMCell's c is not (the recurrence keeps it, as cuDNN's reserve does): it may be
passed to the next call, where the cell state's values are not needed to cost the step,
and is refused read any other way. A zero state (none, or zeros made in the forward) is no
start.
"""
from __future__ import annotations

from dataclasses import dataclass

from .kinds.recurrent import GATES
from .torch_state import LoweringState


@dataclass(frozen=True)
class _CellState:
    """The c an LSTMCell returns: passed on to the next call, never read as values."""
    module: str

    def __repr__(self) -> str:
        return (f"the cell state c of {self.module!r}, read as values; it is supported only "
                "passed to the next call of an LSTMCell")


class CellLowering(LoweringState):
    def cell_module_handlers(self, nn) -> dict:
        return {nn.LSTMCell: self._cell_module, nn.GRUCell: self._cell_module,
                nn.RNNCell: self._cell_module}

    def _cell_module(self, m, node, x):
        kind = type(m).__name__.removesuffix("Cell")
        mode = "rnn_" + m.nonlinearity if kind == "RNN" else kind.lower()
        cur = x()
        shape = self.b.spec(cur).shape
        if len(shape) != 2:
            raise self.unsupported(f"reads a {len(shape)}-D input {shape}; only batched "
                                   "(N, features) input is supported")
        n, g, h = shape[0], GATES[mode], m.hidden_size
        start = self._cell_start(node, mode == "lstm")
        bias = bool(m.bias)
        gates = self.b.linear(cur, g * h, bias=bias, name=self.name("input_proj"))
        steps = self.b.reshape(gates, (n, 1, g * h), name=self.name("steps"))
        inputs = [steps] if start is None else \
            [steps, self.b.reshape(start, (n, 1, h), name=self.name("start"))]
        y = self.b.op("recurrence", inputs, (n, 1, h), params=g * h * h + (g * h if bias else 0),
                      name=self.name("step"), mode=mode, hidden_size=h, proj_size=0,
                      directions=1, bias_hh=bias, cell=True)
        out = self.b.reshape(y, (n, h), name=self.name("h"))
        return (out, _CellState(node.target)) if mode == "lstm" else out

    def _cell_start(self, node, lstm: bool) -> str | None:
        """The h a call starts from (None for zeros); an LSTMCell's c must be zeros or
        another call's c."""
        hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        h_arg = parts[0]
        if lstm and len(parts) == 2 and not (self.made_of_zeros(parts[1]) or isinstance(
                self.value(parts[1]), _CellState)):
            raise self.unsupported("is given a cell state c that is neither zeros nor the c "
                                   "of an LSTMCell's call")
        if self.made_of_zeros(h_arg):
            return None
        return self.tensor(h_arg)
