"""The recurrence kind's training lowering and memory: what its gradients read, and cuDNN's
reserve space kept from the forward to the backward (workloads/kinds/recurrent.py)."""
import pytest

from simulator.lowering import saved_extra_bytes
from workloads.builder import GraphBuilder
from workloads.kinds.recurrent import GATES
from workloads.training import lower_training, training_memory

N, T, F, H = 4, 12, 32, 64


def tagger(mode="lstm", directions=1):
    g = GATES[mode]
    b = GraphBuilder("tagger", input_shape=(T, F), batch=N)
    gates = b.linear(b.input(), directions * g * H, name="proj")
    y = b.op("recurrence", [gates], (N, T, directions * H), name="rnn",
             params=directions * (g * H * H + g * H), mode=mode, hidden_size=H, proj_size=0,
             directions=directions, bias_hh=True)
    b.softmax_xent(b.linear(y, 10, name="head"))
    return b.build()


def test_the_gradients_read_dy_the_gate_inputs_the_outputs_and_dgates():
    t = lower_training(tagger())
    grad_input, grad_weight = t.op("rnn.grad_input"), t.op("rnn.grad_weight")
    assert grad_input.saved == ("proj", "rnn") and grad_input.out.shape == (N, T, 4 * H)
    assert grad_weight.inputs == ("rnn.grad_input", "rnn") and grad_weight.params
    # dgates is the projection's dy: its two GEMMs read it
    assert t.op("proj.grad_weight").inputs[0] == "rnn.grad_input"
    assert {op.kind for op in t if op.forward == "rnn"} == {
        "recurrence_grad_input", "recurrence_grad_weight", "sgd_update"}


@pytest.mark.parametrize("mode,reserve_vectors", [("lstm", 1), ("gru", 1), ("rnn_tanh", 0)])
@pytest.mark.parametrize("directions", [1, 2])
def test_the_reserve_space_is_kept_until_the_gradient(mode, reserve_vectors, directions):
    """Beyond the gate inputs and outputs it saves, an LSTM keeps its cell state and a GRU its
    new gate's recurrent term, an H-vector per step, sample and direction."""
    g = tagger(mode, directions)
    reserve = reserve_vectors * N * T * directions * H * 4
    assert saved_extra_bytes(g.op("rnn")) == reserve
    memory = training_memory(lower_training(g))
    tensors = sum(g.op(n).out.nbytes for n in ("input", "proj", "rnn", "head"))
    assert memory.activations_bytes == tensors + reserve


def test_a_frozen_recurrence_after_the_input_makes_no_backward():
    g = tagger()
    g.meta["frozen_params"] = ["proj", "rnn"]
    t = lower_training(g)
    assert not [op for op in t if op.forward in ("rnn", "proj")]
    assert training_memory(t).activations_bytes == sum(
        g.op(n).out.nbytes for n in ("input", "rnn", "head"))


@pytest.mark.parametrize("alone", [False, True])
def test_every_pass_replays_in_pytorch(alone):
    """Each op of a training step runs as its kind's kernel on random inputs (calibration's
    replay), with its graph or alone."""
    torch = pytest.importorskip("torch")
    from validation.calibrate.torch_ops import op_callable
    t = lower_training(tagger("gru", directions=2))
    for name in ("rnn", "rnn.grad_input", "rnn.grad_weight"):
        op = t.op(name)
        run = op_callable(op, graph=None if alone else t)
        out = run()
        assert isinstance(out, torch.Tensor) and out.numel() > 0


def test_a_recurrence_started_from_another_sends_dh0_to_its_last_step():
    torch = pytest.importorskip("torch")
    from validation.calibrate.torch_ops import op_callable
    b = GraphBuilder("seq2seq", input_shape=(T, F), batch=N)
    x = b.input()
    attrs = dict(mode="lstm", hidden_size=H, proj_size=0, directions=1, bias_hh=True)
    params = 4 * H * H + 4 * H
    encoder = b.op("recurrence", [b.linear(x, 4 * H, name="enc_proj")], (N, T, H),
                   name="enc", params=params, **attrs)
    decoder = b.op("recurrence", [b.linear(x, 4 * H, name="dec_proj"), encoder], (N, T, H),
                   name="dec", params=params, **attrs)
    b.softmax_xent(b.linear(decoder, 10, name="head"))
    t = lower_training(b.build())
    state = t.op("dec.grad_state")
    assert state.inputs == ("dec.grad_input",) and state.out.shape == (N, T, H)
    assert "enc.grad_input" in {op.name for op in t}       # the encoder's only gradient
    assert state.bytes_written == N * T * H * 4 and state.bytes_read == N * H * 4
    out = op_callable(state, graph=t)()
    assert torch.count_nonzero(out[:, :-1]) == 0             # dh_0 at the last step only
