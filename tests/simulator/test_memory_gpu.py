"""GPU memory in the lowering and the engine: allocator blocks, the CUDA context, in-place
ReLUs, what autograd keeps besides graph tensors, AMP's weight copies, cuDNN workspaces."""
from __future__ import annotations

from hwmodels import catalog
from hwmodels.gpu_memory import block_bytes, runtime_reservation
from simulator import Cluster, simulate
from simulator.lowering import emit_ops, inplace_relus, storage_owner
from simulator.tasks import TaskGraph
from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.training import lower_training

MIB = 2 ** 20


def v100(memory_bytes=None):
    spec = catalog.device("v100")
    if memory_bytes is not None:
        spec = spec.with_options(memory_bytes=int(memory_bytes))
    return Cluster.build(spec, 1, "nvlink2")


def emitted(graph, cluster):
    tg = TaskGraph("t")
    em = emit_ops(tg, graph, cluster.devices[0])
    return tg, {op: tg[task] for op, task in em.task_of.items()}


def not_inplace(graph):
    out = graph.copy(graph.name)
    out.meta["inplace_ops"] = []
    return out


def test_inplace_relu_allocates_nothing_and_changes_no_time(monkeypatch):
    g = zoo.get("resnet18", batch=32)
    inplace, copying = lower_training(g), lower_training(not_inplace(g))
    assert len(inplace_relus(inplace)) == 17 and not inplace_relus(copying)
    _, a = emitted(inplace, v100())
    _, b = emitted(copying, v100())
    assert a["relu"].alloc == {} and b["relu"].alloc["gpu0"] == block_bytes(
        inplace.op("relu").out.nbytes)
    assert [t.duration_s for t in a.values()] == [t.duration_s for t in b.values()]
    assert sum(sum(t.alloc.values()) for t in a.values()) < \
        sum(sum(t.alloc.values()) for t in b.values())
    one, two = simulate(g, v100(), "sequential"), simulate(not_inplace(g), v100(), "sequential")
    assert one.iteration_time_s == two.iteration_time_s
    assert one.peak_memory_bytes["gpu0"] <= two.peak_memory_bytes["gpu0"]
    # AlexNet's first ReLU, in inference, copies the largest tensor where memory peaks, once
    # no convolution's workspace peaks higher
    from hwmodels.gpu import GPUModel
    monkeypatch.setattr(GPUModel, "workspace_bytes", lambda self, op: 0)
    alex = zoo.get("alexnet", batch=32)
    one, two = (simulate(x, v100(), "sequential", training=False)
                for x in (alex, not_inplace(alex)))
    assert one.iteration_time_s == two.iteration_time_s
    assert one.peak_memory_bytes["gpu0"] < two.peak_memory_bytes["gpu0"]
    # the ReLU's output is its input's storage: it lives until the ReLU's gradient
    assert storage_owner(inplace, "relu") == "bn1"


def test_a_relu_does_not_run_in_place_where_autograd_needs_its_input():
    b = GraphBuilder("t", input_shape=(8, 16, 16), batch=4)
    x = b.conv2d(b.input(), 8, 3, padding=1, name="conv")
    shared = b.relu(x, name="shared")                 # conv's output is also read by the add
    b.add(x, shared, name="sum")
    s = b.activation(b.conv2d(shared, 8, 3, padding=1, name="conv2"), "sigmoid", name="sig")
    after_sigmoid = b.relu(s, name="after_sigmoid")   # sigmoid's gradient reads its output
    solo = b.relu(b.conv2d(after_sigmoid, 8, 3, padding=1, name="conv3"), name="solo")
    b.linear(b.flatten(solo), 10, name="fc")
    train = lower_training(b.build())
    assert inplace_relus(train) == {"solo"}


def test_relu_on_a_view_or_built_out_of_place_allocates():
    b = GraphBuilder("t", input_shape=(4, 8, 8), batch=2)
    flat = b.relu(b.flatten(b.conv2d(b.input(), 4, 3, padding=1)), name="on_view")
    b.linear(b.relu(b.linear(flat, 16), name="copying", inplace=False), 10)
    assert inplace_relus(lower_training(b.build())) == frozenset()


def test_gpu_tensors_count_in_512_byte_blocks_cpu_ones_exactly():
    b = GraphBuilder("odd", input_shape=(3, 7, 7), batch=3)
    b.linear(b.flatten(b.conv2d(b.input(), 5, 3)), 7)
    train = lower_training(b.build())
    _, gpu = emitted(train, v100())
    assert all(t.alloc.get("gpu0", 0) % 512 == 0 for t in gpu.values())
    cpu = Cluster.build(catalog.builtin().names("cpu")[0], 1, "eth10g")
    _, on_cpu = emitted(train, cpu)
    conv = train.op("conv2d")
    assert on_cpu["conv2d"].alloc == {"cpu0": conv.out.nbytes}
    assert gpu["conv2d"].alloc == {"gpu0": block_bytes(conv.out.nbytes)}


def test_the_context_is_taken_off_capacity_and_oom_is_judged_on_reserved_memory():
    g = zoo.get("resnet18", batch=32)
    free = simulate(g, v100(), "sequential")
    held = runtime_reservation(catalog.device("v100"))
    assert free.log.runtime_bytes["gpu0"] == held.total_bytes
    assert free.log.context_bytes["gpu0"] == held.context_bytes
    allocated, reserved = free.peak_allocated_bytes["gpu0"], free.peak_reserved_bytes["gpu0"]
    assert reserved >= allocated
    assert free.peak_device_memory_bytes["gpu0"] == reserved + held.context_bytes
    # a board of another size: all of it visible, the context still taken off
    context = held.context_bytes
    short = simulate(g, v100(allocated + context - 512), "sequential")
    assert not short.ok and short.oom.device == "gpu0"
    assert short.oom.in_use_bytes + short.oom.requested_bytes > short.oom.capacity_bytes
    assert "CUDA context" in short.oom.message()
    assert simulate(g, v100(reserved + context), "sequential").ok
    summary = free.summary()
    assert summary["peak_reserved_bytes"]["gpu0"] == reserved
    assert summary["context_bytes"]["gpu0"] == context


def test_a_step_frees_everything_it_allocates():
    for precision in (None, "amp-fp16"):
        g = zoo.get("resnet18", batch=8)
        if precision:
            from workloads.precision import with_precision
            g = with_precision(g, precision)
        r = simulate(g, v100(), "sequential")
        resident = r.log.meta["resident_bytes"]["gpu0"]
        assert r.log.memory_timeline["gpu0"][-1][1] == resident


def test_maxpool_keeps_its_int64_indices_until_its_gradient():
    b = GraphBuilder("pool", input_shape=(8, 16, 16), batch=4)
    pooled = b.maxpool(b.relu(b.conv2d(b.input(), 8, 3, padding=1)), 2, name="pool")
    b.linear(b.flatten(pooled), 10)
    train = lower_training(b.build())
    _, tasks = emitted(train, v100())
    out = train.op("pool").out
    indices = block_bytes(out.numel * 8)
    assert tasks["pool"].alloc["gpu0"] == block_bytes(out.nbytes) + indices
    assert tasks["pool.grad"].free["gpu0"] >= indices


def test_amp_keeps_fp32_state_and_a_half_copy_of_each_weight_until_its_gradient():
    from workloads.precision import with_precision
    g = with_precision(zoo.get("resnet18", batch=8), "amp-fp16")
    train = lower_training(g)
    params = g.params()
    state = simulate(g, v100(), "sequential").log.meta["resident_bytes"]["gpu0"]
    assert state == 3 * 4 * params                # FP32 weights, gradients, momentum
    _, tasks = emitted(train, v100())
    conv = train.op("conv1")
    half = block_bytes(conv.params * 2)
    assert tasks["conv1"].alloc["gpu0"] == block_bytes(conv.out.nbytes) + half
    assert tasks["conv1.grad_weight"].free["gpu0"] >= half
    # the half weight gradient exists only while the weight-gradient op runs
    grad = tasks["layer1.0.conv1.grad_weight"]
    assert grad.alloc["gpu0"] == block_bytes(train.op("layer1.0.conv1").params * 2)


def test_workspaces_come_from_the_device_model_and_fall_back_to_none_when_they_do_not_fit():
    train = lower_training(zoo.get("resnet18", batch=8))
    convs = [op.name for op in train if op.kind.startswith("conv2d")]

    def with_workspace(nbytes):
        cluster = v100()
        cluster.devices[0].model.workspace_bytes = \
            lambda op: nbytes if op.kind.startswith("conv2d") else 0
        return emitted(train, cluster)[1]

    plain, modest, huge = with_workspace(0), with_workspace(64 * MIB), with_workspace(2 ** 40)
    for name in convs:
        extra = 64 * MIB
        assert modest[name].alloc.get("gpu0", 0) == plain[name].alloc.get("gpu0", 0) + extra
        assert modest[name].free.get("gpu0", 0) == plain[name].free.get("gpu0", 0) + extra
        assert huge[name].alloc == plain[name].alloc
