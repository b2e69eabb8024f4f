"""How torch_import lowers nn.LSTM, nn.GRU and nn.RNN (a mixin of torch_import._Lowering).

Each layer is what cuDNN runs for it: the input projection of every step at once, one
`linear` op holding both directions' W_ih and b_ih ((N, T, I) to (N, T, D * G * H)), then one
`recurrence` op holding W_hh, b_hh (and an LSTM's W_hr) that runs the steps
(workloads/kinds/recurrent.py); `dropout` between layers where the module has one. The
module's output is the last layer's, (N, T, D * Hout). Of its final state, the last layer's
h of each direction is read as the output at its last step (h_n[-1], h_n[-2] of a
bidirectional module, h_n.squeeze(0) of a one-layer one): views of the output, as the values
are the same. A batch_first=False layer fed a batch-first tensor permuted to (T, N, F)
reads it batch first; its (T, N, H) output is a pending view (torch_import_idioms._Moved)
that a permute back to the batch first, its last step y[-1] or h_n resolve, and that may be
added to another such view first (recurrent_value). What stays out is refused by
name: batch_first=False on a tensor whose first dimension is the batch (the IR keeps the
batch first), an initial state hx other than zeros made in the forward or another recurrent
module's final state (a seq2seq decoder's start: each layer's recurrence then reads that
module's layer output, whose last step is h_n), unbatched (2-D) input, the final state of
other layers and an LSTM's c_n read as values (they are not tensors of the graph), and
packed sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

from .kinds.recurrent import GATES
from .torch_import_idioms import _Moved
from .torch_state import LoweringState

SEQUENCE_FIRST = (1, 0, 2)      # (N, T, F) seen as (T, N, F)

PACKED = ("packed sequences (PackedSequence) are not supported: pass the padded (N, T, "
          "features) batch, whose every sequence is then costed at the full length T")


def _batch_second(value) -> bool:
    """A pending (T, N, F) view: a 3-D tensor permuted so that the batch is second."""
    return isinstance(value, _Moved) and len(value.dims) == 3 and value.dims[1] == 0


@dataclass(frozen=True)
class _FinalState:
    """h_n or c_n of a recurrent module, (layers * directions, N, Hout): the batch second."""
    which: str              # "h_n" or "c_n"
    output: str             # the module's output tensor (N, T, D * Hout)
    module: str
    layers: int
    directions: int
    hidden_out: int
    layer_outputs: tuple[str, ...]    # each layer's output: its h_n is the last step's

    def __repr__(self) -> str:
        return (f"the final state {self.which} of {self.module!r} (layers x directions, N, "
                f"H: the batch second), read whole; only h_n of the last layer (h_n[-1], "
                f"h_n[-2] when bidirectional, h_n.squeeze(0) of one layer) is supported")


class RecurrentLowering(LoweringState):
    def recurrent_module_handlers(self, nn) -> dict:
        return {nn.LSTM: self._recurrent_module, nn.GRU: self._recurrent_module,
                nn.RNN: self._recurrent_module}

    def _recurrent_module(self, m, node, x):
        kind = type(m).__name__
        mode = "rnn_" + m.nonlinearity if kind == "RNN" else kind.lower()
        source = self.value(node.args[0])
        sequence_first = not m.batch_first
        if sequence_first and not _batch_second(source):
            raise self.unsupported("has batch_first=False and reads a tensor whose first "
                                   "dimension is the batch; only a batch-first tensor "
                                   "permuted to (T, N, F) for it is supported")
        cur = self.batch_first(source) if sequence_first else x()
        shape = self.b.spec(cur).shape
        if len(shape) < 3:   # 4-D and more: PyTorch's batch folded with rows (torch_fold)
            raise self.unsupported(f"reads a {len(shape)}-D input {shape}; only batched "
                                   "(N, T, features) input is supported")
        lead, steps = shape[:-2], shape[-2]
        d, h = 2 if m.bidirectional else 1, m.hidden_size
        p = getattr(m, "proj_size", 0)
        g, hout = GATES[mode], p or h
        bias = bool(m.bias)
        initial = self._initial_state(node, m.num_layers, d, hout)
        held = d * (g * h * hout + (g * h if bias else 0) + p * h)
        outputs = []
        for layer in range(m.num_layers):
            gates = self.b.linear(cur, d * g * h, bias=bias,
                                  name=self.name(f"l{layer}.input_proj"))
            cur = self.b.op("recurrence", [gates, *initial[layer:layer + 1]],
                            (*lead, steps, d * hout), params=held, name=self.name(f"l{layer}"),
                            mode=mode, hidden_size=h, proj_size=p, directions=d, bias_hh=bias)
            outputs.append(cur)
            made = [gates, cur]
            if m.dropout and layer < m.num_layers - 1:
                cur = self.b.dropout(cur, m.dropout, name=self.name(f"l{layer}.dropout"))
                made.append(cur)
            # one cuDNN call runs them all (TF32 where cudnn.allow_tf32; one framework
            # call each way: hwmodels/gpu_recurrent.issued_in_one_call)
            for name in made:
                self.b.graph.op(name).attrs["in_cudnn_rnn"] = "inside"
        self.b.graph.op(self.b.graph.op(outputs[0]).inputs[0]).attrs["in_cudnn_rnn"] = "first"
        self.b.graph.op(outputs[-1]).attrs["in_cudnn_rnn"] = "last"
        state = [_FinalState(which, cur, node.target, m.num_layers, d, hout, tuple(outputs))
                 for which in ("h_n", "c_n")]
        out = _Moved(cur, SEQUENCE_FIRST) if sequence_first else cur
        return (out, tuple(state)) if mode == "lstm" else (out, state[0])

    def _initial_state(self, node, layers: int, directions: int, hidden_out: int) -> list:
        """Per layer, the output whose last step starts it (another recurrent module's final
        state, as a seq2seq decoder starts from its encoder's (h_n, c_n)); none for the zero
        state (no hx, or zeros made in the forward). Any other hx is refused by name."""
        hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        if all(self.made_of_zeros(part) for part in parts):
            return []
        values: list = []
        for part in parts:
            value = self.value(part)
            values.extend(value if isinstance(value, tuple) else (value,))
        finals = [v for v in values if isinstance(v, _FinalState)]
        hs = [f for f in finals if f.which == "h_n"]
        if len(finals) != len(values) or len(hs) != 1 or \
                any(f.module != hs[0].module for f in finals):
            raise self.unsupported("is given an initial state hx that is neither zeros nor "
                                   "another recurrent module's final state (h_n, c_n)")
        if (hs[0].layers, hs[0].directions, hs[0].hidden_out) != (layers, directions,
                                                                    hidden_out):
            raise self.unsupported(
                f"starts from the final state of {hs[0].module!r} ({hs[0].layers} layers, "
                f"{hs[0].directions} directions, h of {hs[0].hidden_out}), which is not its "
                f"own shape ({layers}, {directions}, {hidden_out})")
        return list(hs[0].layer_outputs)

    def made_of_zeros(self, arg) -> bool:
        """Whether an initial state is zeros: none, or torch.zeros (or zeros_like) made in the
        forward, moved, detached or marked to need a gradient (a tutorial's
        `torch.zeros(layers, x.size(0), hidden).to(x.device)`, or the constant the
        value-carrying trace bakes it into): the same as no state."""
        while isinstance(arg, self.torch.fx.Node):
            name = getattr(arg.target, "__name__", arg.target)
            if name in ("zeros", "zeros_like"):
                return True
            if arg.op == "get_attr":
                value = self.gm
                for part in arg.target.split("."):
                    value = getattr(value, part)
                return isinstance(value, self.torch.Tensor) and not value.is_meta and \
                    not bool(value.any())
            if name not in ("to", "detach", "requires_grad_", "contiguous", "cuda", "float") \
                    or not arg.args:
                return False
            arg = arg.args[0]
        return arg is None

    def recurrent_value(self, node):
        """What a node reading a recurrent layer's input or outputs gives: the view of the
        output that a read of the last layer's h_n is; for a batch_first=False layer, the
        (T, N, F) view of a batch-first tensor it reads (x.transpose(0, 1) where every reader
        is such a layer; any permute that puts the batch second, EnCodec's x.permute(2, 0, 1)
        of (N, C, T)), its (T, N, H) output permuted on (back to the batch first: a view;
        else still pending) and the sum of two such tensors (EnCodec's skip, y + x). None
        where the node is none of these; other reads of a final state are refused by name."""
        if node.op not in ("call_function", "call_method") or not node.args or \
                not isinstance(node.args[0], self.torch.fx.Node):
            return None
        source = self.value(node.args[0])
        dims = self._permute_dims(node)
        if dims is not None:
            if _batch_second(source):
                total = tuple(source.dims[d] for d in dims)
                return self._permuted(source.source, total, "permute") if total[0] == 0 \
                    else _Moved(source.source, total)
            if isinstance(source, str) and len(self.b.spec(source).shape) == 3 and \
                    dims == SEQUENCE_FIRST and self._feeds_sequence_first(node):
                return _Moved(source, SEQUENCE_FIRST)
            return None
        name = getattr(node.target, "__name__", node.target)
        if name in ("add", "iadd") and len(node.args) == 2 and not node.kwargs and \
                _batch_second(source) and _batch_second(other := self.value(node.args[1])):
            summed = self.b.add(self.batch_first(source), self.batch_first(other),
                                name=self.name("add"))
            return _Moved(summed, SEQUENCE_FIRST)
        return self._final_state_value(node, source)

    def batch_first(self, moved: _Moved) -> str:
        """The batch-first view of a (T, N, F) pending view: its source permuted to
        (N, T, F), nothing where it is that already."""
        return self._permuted(moved.source, (0, moved.dims[0], moved.dims[2]), "permute")

    def _permute_dims(self, node) -> tuple[int, ...] | None:
        """The dims of x.transpose / swapaxes / permute of a 3-D tensor, else None."""
        name = getattr(node.target, "__name__", node.target)
        args = tuple(self.value(a) for a in node.args[1:])
        if name in ("transpose", "swapaxes", "swapdims") and len(args) == 2 and \
                all(isinstance(a, int) for a in args):
            swapped = [0, 1, 2]
            a, b = args[0] % 3, args[1] % 3
            swapped[a], swapped[b] = swapped[b], swapped[a]
            return tuple(swapped)
        if name == "permute":
            dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
            if len(dims) == 3 and all(isinstance(d, int) for d in dims):
                return tuple(int(d) % 3 for d in dims)
        return None

    def _feeds_sequence_first(self, node) -> bool:
        """Whether every reader of `node` (through .contiguous()) is a batch_first=False
        recurrent layer."""
        layers = (self.nn.LSTM, self.nn.GRU, self.nn.RNN)
        for user in node.users:
            if user.op == "call_method" and user.target == "contiguous":
                if not self._feeds_sequence_first(user):
                    return False
            elif not (user.op == "call_module" and user.args[0] is node and
                      isinstance(m := self.modules[user.target], layers) and not m.batch_first):
                return False
        return bool(node.users)

    def _final_state_value(self, node, state):
        if not isinstance(state, _FinalState):
            return None
        if len(self.b.spec(state.output).shape) != 3:
            raise self.unsupported(f"reads the final state of {state.module!r}, run over a "
                                   "batch folded with other dimensions; only its output is "
                                   "supported")
        name = getattr(node.target, "__name__", node.target)
        count = state.layers * state.directions
        if name == "getitem" and isinstance(index := self.resolve_index(node.args[1]), int):
            position = index % count if -count <= index < count else None
        elif name == "squeeze" and count == 1 and node.args[1:] in ((), (0,)):
            position = 0
        else:
            raise self.unsupported(repr(state))
        if state.which != "h_n" or position is None or \
                position // state.directions != state.layers - 1:
            raise self.unsupported(
                f"reads {state.which}[{position}] of {state.module!r}, which is not a tensor "
                "of the graph; only h_n of the last layer (h_n[-1], h_n[-2] when "
                "bidirectional) is supported: read the output instead")
        return self._last_hidden(state, position % state.directions)

    def _last_hidden(self, state: _FinalState, direction: int) -> str:
        """h of one direction after its last step: the output at step T - 1 (forward) or
        step 0 (reverse), that direction's features."""
        n, steps, _ = self.b.spec(state.output).shape
        at = steps - 1 if direction == 0 else 0
        name = f"{state.module}.h_n"
        step = self.b.slice(state.output, at, at + 1, dim=1, name=self.name(name))
        if state.directions > 1:
            hout = state.hidden_out
            step = self.b.slice(step, direction * hout, (direction + 1) * hout, dim=2,
                                name=self.name(name))
        return self.b.reshape(step, (n, state.hidden_out), name=self.name(name))
