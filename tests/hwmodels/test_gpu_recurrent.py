"""A recurrent layer's steps as cuDNN runs them on a GPU (hwmodels/gpu_recurrent.py), and as
PyTorch's own cells run them on a CPU (DeviceModel.serial_time_s): serial, small, latency
bound products, each step paying its kernels."""
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import model_for
from workloads.builder import GraphBuilder
from workloads.kinds.recurrent import GATES, forward_schedule
from workloads.training import lower_training


def recurrent_graph(batch=16, steps=20, hidden=256, mode="lstm", directions=1, features=128,
                    proj=0):
    g, hout = GATES[mode], proj or hidden
    b = GraphBuilder("rnn", input_shape=(steps, features), batch=batch)
    gates = b.linear(b.input(), directions * g * hidden, name="proj")
    b.graph.op(gates).attrs["in_cudnn_rnn"] = "first"
    params = directions * (g * hidden * hout + g * hidden + proj * hidden)
    y = b.op("recurrence", [gates], (batch, steps, directions * hout), params=params,
             name="rnn", mode=mode, hidden_size=hidden, proj_size=proj, directions=directions,
             bias_hh=True, in_cudnn_rnn="last")
    b.softmax_xent(b.linear(y, 10, name="head"))     # logits at every step
    return b.build()


def passes(**kw):
    """The forward op and its two gradients."""
    t = lower_training(recurrent_graph(**kw))
    return [t.op(n) for n in ("rnn", "rnn.grad_input", "rnn.grad_weight")]


@settings(max_examples=15, deadline=None)
@given(steps=st.integers(1, 60), more=st.integers(1, 40), batch=st.sampled_from([1, 8, 64]),
       mode=st.sampled_from(sorted(GATES)))
def test_each_step_adds_time_on_gpus_and_cpus(steps, more, batch, mode):
    for device in ("v100", "a100", "skylake-x-10c"):
        model = model_for(device)
        short, long = (passes(steps=s, batch=batch, mode=mode)[:2] for s in (steps, steps + more))
        for a, b in zip(short, long, strict=True):
            assert model.op_time_s(b) > model.op_time_s(a)


def test_every_step_launches_its_product_and_its_gates_from_one_call():
    v100 = model_for("v100")
    forward, grad_input, grad_weight = passes(steps=30)
    # the projection before it issues the forward's call, it issues the backward's
    for op, issued in ((forward, 0), (grad_input, 1)):
        option = v100.chosen_option(op)
        assert (option.kernels, option.framework_ops) == (60, issued)
        # each kernel pays the gap between kernels: a floor the FLOPs do not set
        assert v100.op_time_s(op) > 60 * v100.family_constants.kernel_overhead_s
    assert v100.chosen_option(grad_weight).kernels == 2      # one GEMM, the bias's sum


def test_small_batches_are_latency_bound():
    """At batch 1 and 16 a step's product fills the same few tiles: 16x the FLOPs, about the
    same time."""
    v100 = model_for("v100")
    one, sixteen = (passes(batch=n, steps=50, hidden=512)[0] for n in (1, 16))
    assert sixteen.flops > 15 * one.flops
    assert v100.op_time_s(sixteen) < 1.5 * v100.op_time_s(one)


def test_bidirectional_doubles_the_work_and_runs_the_directions_side_by_side():
    for device in ("v100", "h100"):
        model = model_for(device)
        for i, (uni, bi) in enumerate(zip(passes(batch=8), passes(batch=8, directions=2),
                                              strict=True)):
            assert bi.flops == 2 * uni.flops
            assert model.op_time_s(bi) < 2 * model.op_time_s(uni)
            if i < 2:   # the serial passes (the weight gradient may be bound by its issue)
                assert model.op_time_s(uni) < model.op_time_s(bi)


def test_the_input_projection_and_steps_run_as_tf32_where_cudnn_allows_it():
    a100 = model_for("a100")
    g = recurrent_graph()
    assert a100.arithmetic_precision(g.op("rnn")) == "tf32"
    assert a100.arithmetic_precision(g.op("proj")) == "tf32"
    b = GraphBuilder("plain", input_shape=(128,), batch=16)
    b.linear(b.input(), 256, name="fc")
    assert a100.arithmetic_precision(b.build().op("fc")) == "fp32"   # cuBLAS: no TF32


def test_a_projection_adds_its_product_to_every_step():
    v100 = model_for("v100")
    plain, projected = (passes(proj=p, hidden=512)[0] for p in (0, 128))
    assert v100.chosen_option(projected).kernels == 3 * 20
    assert projected.macs == 16 * 20 * (4 * 512 * 128 + 128 * 512)
    assert plain.macs == 16 * 20 * 4 * 512 * 512


def test_cpus_run_an_lstm_as_onednns_fused_cell_and_other_cells_op_by_op():
    cpu = model_for("skylake-x-10c")
    lstm, gru = (passes(mode=m, steps=20)[0] for m in ("lstm", "gru"))
    assert forward_schedule(lstm).pointwise_ops == 1
    assert forward_schedule(gru).pointwise_ops == 10
    # every step dispatches its product and each of the cell's ops
    assert cpu.op_time_s(gru) > 20 * 11 * cpu.launch_overhead_s
    assert cpu.op_time_s(lstm) > 20 * 2 * cpu.launch_overhead_s


def test_a_module_is_one_framework_call_each_way():
    """Two layers with dropout between them: projections, recurrences, the dropout and all
    their gradients are issued from one PyTorch call forward and one backward."""
    from tests.workloads.torch_user_recurrent import LSTMClassifier
    from workloads import from_torch
    torch = __import__("torch")
    t = lower_training(from_torch(LSTMClassifier().eval(), torch.randint(1, 1000, (4, 12))))
    v100 = model_for("v100")
    module = [op for op in t if op.attrs.get("in_cudnn_rnn")]
    calls = {phase: sum(v100.chosen_option(op).framework_ops for op in module
                        if op.phase == phase) for phase in ("forward", "backward")}
    assert calls == {"forward": 1, "backward": 1}
    assert len([op for op in module if op.phase != "update"]) > 10
