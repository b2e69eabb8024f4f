"""Recurrent layers (nn.LSTM, nn.GRU, nn.RNN): the recurrence over time of one layer, all its
directions, as cuDNN runs it.

A layer's input projection, x_t @ W_ih^T + b_ih for every step at once, is one GEMM: the
importer makes it a `linear` op (both directions' weights side by side), whose gradients are
the two GEMMs cuDNN runs for them too. What is left is serial, and is this kind: per step t
the small product h_{t-1} @ W_hh^T (then, for an LSTM with proj_size, h @ W_hr^T), which
waits for the step before, and the gate arithmetic, one fused kernel in cuDNN (nine ATen ops
in PyTorch's own LSTM cell). Why one op for the T steps rather than T ops of existing kinds:
cuDNN issues them from one framework call (one host overhead, then bare launches), the gates
are one fused kernel (existing kinds would launch and move memory per ATen op), and a graph
of T x layers x directions x ~10 ops would be large; the GEMMs stay the library's, costed
step by step (`SerialSchedule`, hwmodels/gpu_recurrent.py), so the small serial products
are latency bound as they are on the part.

Tensors: the input is the projection (N, T, D * G * H) for D directions and G gates (LSTM 4,
GRU 3, RNN 1) of hidden size H; the output is h at every step (N, T, D * Hout), Hout the
proj_size where set, else H, the directions side by side as PyTorch returns them. attrs:
mode (lstm, gru, rnn_tanh, rnn_relu), hidden_size, proj_size (0: none), directions, bias_hh
(whether b_hh is held). Parameters, per direction as PyTorch holds them: weight_hh (G*H,
Hout), bias_hh (G*H), weight_hr (Hout, H), stacked over the directions.

Training: `recurrence_grad_input` runs the recurrence backwards (per step dh @ W_hh and the
gates' gradient, fused), making the gradient of the gate inputs, which is the projection's dy;
`recurrence_grad_weight` is one GEMM over all steps, dgates^T @ h_{t-1} (and W_hr's), plus
the bias's reduction. The forward keeps for them the gate inputs and the outputs (graph
tensors) and, in cuDNN's reserve space, one more H-vector per step and direction: the cell
state of an LSTM, the recurrent product of a GRU's new gate (`reserve_bytes`).
"""
from __future__ import annotations

import math

from ._registry import GemmRole, OpKind, SerialSchedule, register
from ._torch import torch

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
# nominal pointwise FLOPs per hidden unit and step (a sigmoid 5, a tanh 6, as the activation
# kinds count them; the adds of the input projection's slice): the forward's gate arithmetic
POINTWISE_FLOPS = {"lstm": 4 + 3 * 5 + 2 * 6 + 4, "gru": 3 + 2 * 5 + 6 + 4,
                   "rnn_tanh": 1 + 6, "rnn_relu": 1 + 1}
# ATen ops PyTorch's own cell runs for them per step (RNN.cpp's LSTMCell: add_, three
# sigmoid_, two tanh, three mul, add_; GRUCell likewise; a simple cell add_ and its
# nonlinearity); the gradient's autograd runs about twice as many
CELL_OPS = {"lstm": 10, "gru": 10, "rnn_tanh": 2, "rnn_relu": 2}


def cell_ops(op) -> int:
    """Pointwise ops a step dispatches off cuDNN: one for an nn.LSTM without a projection,
    which PyTorch runs on CPUs as oneDNN's fused LSTM (RNN.cpp: use_mkldnn, FP32 and BF16,
    training too), its gates one kernel; PyTorch's own cell's ATen ops otherwise (an
    nn.LSTMCell's call too: attrs cell)."""
    if op.attrs["mode"] == "lstm" and not op.attrs.get("proj_size") and \
            not op.attrs.get("cell"):
        return 1
    return CELL_OPS[op.attrs["mode"]]


def sizes(op) -> tuple[int, int, int, int, int, int, int]:
    """(N, T, D, G, H, Hout, P) of a recurrence op or one of its gradients: batch and steps
    from the first input (the gate inputs, dy or dgates, all (N, ..., T, F): the dimensions
    before the steps are the recurrence's batch, a batch folded with rows too)."""
    shape = op.in_specs[0].shape
    return (math.prod(shape[:-2]), shape[-2], *layer_sizes(op.attrs))


def layer_sizes(attrs) -> tuple[int, int, int, int, int]:
    """(D, G, H, Hout, P) of a layer, from its attributes alone."""
    h, p = int(attrs["hidden_size"]), int(attrs.get("proj_size", 0))
    return int(attrs["directions"]), GATES[attrs["mode"]], h, p or h, p


def _carries_state(op) -> bool:
    """An LSTM's cell state, or a GRU's recurrent new-gate term: one more H-vector a step."""
    return op.attrs["mode"] in ("lstm", "gru")


def forward_schedule(op) -> SerialSchedule:
    n, t, d, g, h, hout, p = sizes(op)
    e = op.out.dtype_bytes
    gemms = ((n, g * h, hout, d),) + (((n, p, h, d),) if p else ())
    extra = n * d * h if _carries_state(op) else 0
    # reads the projection's slice and the product, (an LSTM's c_{t-1}); writes the gates'
    # activations to the reserve space, the new state and h
    moved = e * (3 * n * d * g * h + (2 if op.attrs["mode"] == "lstm" else 1) * extra
                 + n * d * h)
    return SerialSchedule(t, gemms, float(moved),
                          float(n * d * h * POINTWISE_FLOPS[op.attrs["mode"]]),
                          cell_ops(op))


def grad_input_schedule(op) -> SerialSchedule:
    n, t, d, g, h, hout, p = sizes(op)
    e = op.out.dtype_bytes
    gemms = ((n, hout, g * h, d),) + (((n, h, p, d),) if p else ())
    extra = n * d * h if _carries_state(op) else 0
    # reads dy_t, the product's dh, the saved gates (and state, and the running dc); writes
    # dgates (and dc)
    moved = e * (2 * n * d * hout + 2 * n * d * g * h + 3 * extra)
    return SerialSchedule(t, gemms, float(moved),
                          float(2 * n * d * h * POINTWISE_FLOPS[op.attrs["mode"]]),
                          cell_ops(op) if cell_ops(op) == 1 else 2 * cell_ops(op))


def grad_weight_schedule(op) -> SerialSchedule:
    n, t, d, g, h, hout, p = sizes(op)
    e = op.out.dtype_bytes
    gemms = ((g * h, hout, n * t, d),) + (((p, h, n * t, d),) if p else ())
    bias = bool(op.attrs.get("bias_hh"))
    # the bias's gradient: dgates summed over the batch and the steps
    moved = e * (n * t * d * g * h + d * g * h) if bias else 0
    return SerialSchedule(1, gemms, float(moved), float(n * t * d * g * h) if bias else 0.0,
                          int(bias))


def schedule_macs(schedule: SerialSchedule) -> float:
    return float(schedule.steps * sum(m * n * k * b for m, n, k, b in schedule.gemms))


def schedule_bytes(op, schedule: SerialSchedule) -> float:
    """What the pass moves: each step's products (both operands read, the result written)
    and its pointwise kernel."""
    e = op.out.dtype_bytes
    per_step = sum((m * k + n * k + m * n) * b * e for m, n, k, b in schedule.gemms)
    return float(schedule.steps * (per_step + schedule.pointwise_bytes))


def _macs(which):
    return lambda op: schedule_macs(which(op))


def _flops(which):
    def flops(op) -> float:
        s = which(op)
        return 2.0 * schedule_macs(s) + s.steps * s.pointwise_flops
    return flops


def _params(op) -> list[tuple[int, ...]]:
    """As PyTorch holds them, stacked over the directions (from the attributes: a gradient
    replayed alone stands for its forward op without its tensors)."""
    d, g, h, hout, p = layer_sizes(op.attrs)
    shapes: list[tuple[int, ...]] = [(d, g * h, hout)]
    shapes += [(d, g * h)] if op.attrs.get("bias_hh") else []
    return shapes + ([(d, p, h)] if p else [])


def reserve_bytes(op) -> int:
    """cuDNN's reserve space beyond the saved gate inputs and outputs: an LSTM's cell state,
    a GRU's recurrent new-gate term, at every step and direction."""
    n, t, d, _, h, _, _ = sizes(op)
    return n * t * d * h * op.out.dtype_bytes if _carries_state(op) else 0


def recurrent_gradient(ctx, op, dy) -> None:
    """The recurrence run backwards makes dgates (the gate inputs' gradient: the projection's
    dy), which the weight gradient reads with the saved outputs; dgates is made even where
    the projection needs no gradient, as the weights' gradient needs it. A layer started
    from another's final state (a second input: that layer's output) sends dh_0, which the
    backward pass computes at its last step, into that output's last step
    (`recurrence_grad_state`); an LSTM's dc_0 is not costed (an H-vector)."""
    src, starts = op.inputs[0], op.inputs[1:]
    state_grad = bool(starts) and ctx.needs_grad(starts[0])
    if not ctx.needs_grad(src) and not ctx.trains(op) and not state_grad:
        return
    saved = ctx.saved(op)
    reads = [dy] + [t for t in saved if t != dy]
    dgates = ctx.grad_op(f"{op.name}.grad_input", "recurrence_grad_input", op, reads,
                         ctx.spec(src), saved, dy)
    if ctx.needs_grad(src):
        ctx.add_grad(src, dgates)
    if state_grad:   # dh_0 into the last step of the layer output that started it
        ctx.add_grad(starts[0], ctx.grad_op(f"{op.name}.grad_state", "recurrence_grad_state",
                                            op, [dgates], ctx.spec(starts[0]), (), dy))
    if ctx.trains(op):
        ctx.weight_grad(op.name, ctx.grad_op(
            f"{op.name}.grad_weight", "recurrence_grad_weight", op, [dgates, op.name],
            ctx.param_grad_spec(op), (op.name,), dy))


# -- PyTorch ------------------------------------------------------------------------------
def run_recurrence(x, attrs, params, start=None):
    """The recurrence on gate inputs x (N, T, D*G*H) as PyTorch's own cells compute it: h at
    every step (N, T, D*Hout), the reverse direction run from the last step; from the zero
    state, or from h_n of the layer output `start` (and a zero cell state)."""
    mode, h, p, d = attrs["mode"], attrs["hidden_size"], attrs.get("proj_size", 0), \
        attrs["directions"]
    lead, t = x.shape[:-2], x.shape[-2]
    n = math.prod(lead)
    w_hh, rest = params[0], list(params[1:])
    b_hh = rest.pop(0) if attrs.get("bias_hh") else None
    w_hr = rest[0] if p else None
    x = x.reshape(n, t, d, -1)
    outs = []
    for k in range(d):
        hs, c = x.new_zeros(n, p or h), x.new_zeros(n, h)
        if start is not None:   # direction k's h after its last step
            hs = start[:, -1 if k == 0 else 0, k * (p or h):(k + 1) * (p or h)]
        ys = [hs] * t
        for s in (range(t) if k == 0 else range(t - 1, -1, -1)):
            hh = hs @ w_hh[k].t() + (b_hh[k] if b_hh is not None else 0)
            xs = x[:, s, k]
            if mode == "lstm":
                i, f, g, o = (xs + hh).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                hs = torch.sigmoid(o) * torch.tanh(c)
                hs = hs @ w_hr[k].t() if w_hr is not None else hs
            elif mode == "gru":
                xr, xz, xn = xs.chunk(3, 1)
                hr, hz, hn = hh.chunk(3, 1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                hs = (1 - z) * torch.tanh(xn + r * hn) + z * hs
            else:
                hs = torch.tanh(xs + hh) if mode == "rnn_tanh" else torch.relu(xs + hh)
            ys[s] = hs
        outs.append(torch.stack(ys, 1))
    return torch.cat(outs, -1).reshape(*lead, t, -1)


def _recurrence_kernel(op, state):
    """The forward, and the gradient of its gate inputs by autograd through the same cells
    (what PyTorch runs off cuDNN); the weight gradient as cuDNN's GEMMs over all steps,
    dgates^T @ h_{t-1}. GRU's new-gate rows and W_hr read terms of cuDNN's reserve space the
    graph does not hold: their products are replayed at their shapes on dgates and h."""
    a, owner = op.attrs, op.forward or op.name
    params = state.params_of(op)
    if op.kind == "recurrence":
        def forward(x, *start):
            leaf = x.detach().requires_grad_()
            with torch.enable_grad():
                y = run_recurrence(leaf, a, params, *start)
            state.saved[owner] = (leaf, y)
            return y.detach()
        return forward
    if op.kind == "recurrence_grad_input":
        def grad_input(dy, x, *_):
            leaf, y = state.saved.get(owner) or (None, None)
            if leaf is None or leaf.shape != x.shape:   # replayed alone: run the forward
                leaf = x.detach().requires_grad_()
                with torch.enable_grad():
                    y = run_recurrence(leaf, a, params)
            return torch.autograd.grad(y, leaf, dy, retain_graph=True)[0]
        return grad_input

    def grad_weight(dgates, y):
        n, t, d, g, h, hout, p = sizes(op)
        dg, yy = dgates.reshape(n, t, d, g * h), y.reshape(n, t, d, hout)
        prev = torch.zeros_like(yy)
        prev[:, 1:, 0] = yy[:, :-1, 0]
        if d == 2:
            prev[:, :-1, 1] = yy[:, 1:, 1]
        grads = [torch.einsum("ntdg,ntdh->dgh", dg, prev)]
        grads += [dg.sum((0, 1))] if a.get("bias_hh") else []
        grads += [torch.einsum("ntdp,ntdh->dph", yy, dg[..., :h])] if p else []
        state.grads[owner] = grads
        return grads[0]
    return grad_weight


def _recurrence_module(op, m, i):
    count = len(_params(op))
    return lambda ins: run_recurrence(ins[0], op.attrs, [m._p(i, j) for j in range(count)],
                                      *ins[1:])


def _state_grad_kernel(op, state):
    """zeros of the starting layer output's shape, dh_0 (as dgates' first step gives it, at
    the state's width) put at its last step."""
    width = op.out.shape[-1]

    def grad_state(dgates):
        out = dgates.new_zeros(op.out.shape)
        out[:, -1] = dgates[:, 0, :width]
        return out
    return grad_state


def _costs(gemm_pass: str, schedule) -> dict:
    """A pass's record fields, all read off its schedule: FLOPs, multiply-adds, its GEMM
    role, its traffic (the output written once, the rest read)."""
    return dict(flops=_flops(schedule), macs=_macs(schedule),
                gemm_role=GemmRole("recurrent", gemm_pass, weights=True, schedule=schedule),
                bytes_read=lambda op: schedule_bytes(op, schedule(op)) - op.out.nbytes,
                bytes_written=lambda op: float(op.out.nbytes), torch_kernel=_recurrence_kernel)


register(
    OpKind("recurrence", "matmul", **_costs("forward", forward_schedule),
           saves=("in", "out"), backward=recurrent_gradient, reserve_bytes=reserve_bytes,
           param_shapes=_params, param_tensors=lambda op: len(_params(op)),
           torch_module=_recurrence_module,
           doc="the recurrence of an LSTM, GRU or RNN layer over its T steps, all directions, "
               "from its input projection (N, T, D*G*H) to h at every step (N, T, D*Hout): "
               "per step a small GEMM with W_hh and the fused gates, serial (attrs mode, "
               "hidden_size, proj_size, directions, bias_hh)"),
    OpKind("recurrence_grad_input", "matmul_grad", "backward",
           **_costs("grad_input", grad_input_schedule), reads_params=True,
           doc="the recurrence run backwards: dgates, step after step"),
    OpKind("recurrence_grad_state", "data_movement", "backward",
           bytes_read=lambda op: float(op.in_specs[0].shape[0] * op.out.shape[-1]
                                       * op.out.dtype_bytes),
           torch_kernel=_state_grad_kernel,
           doc="dh_0 put at the last step of the layer output the recurrence started from"),
    OpKind("recurrence_grad_weight", "matmul_grad", "backward",
           **_costs("grad_weight", grad_weight_schedule), carries_params=True,
           doc="dgates^T @ h_{t-1} over all steps (and W_hr's), the bias's sum"),
)
