"""Open MPI over TCP between boards (simulator/policies/_mpi_tcp.py): the TCP/IP stack's CPU
time runs on each board's compute stream, the sender's beside the wire, the receiver's once the
bytes have arrived; what the receiver does with the message waits for all three, what the
sender does after it for its own stack. Every task graph the engine runs gets them
(_runs.run_tasks), whichever policy built its transfers."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwmodels.arm
from hwmodels import model_for
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import get
from simulator.policies._mpi_tcp import (
    EAGER_LIMIT_BYTES,
    pay_tcp_stacks,
    receive_cpu_s,
    send_cpu_s,
)
from simulator.policies._runs import run_tasks
from simulator.tasks import TaskGraph
from workloads import zoo

RPI4 = model_for("rpi4")


@pytest.fixture(scope="module")
def graph4():
    return zoo.get("decnn_resnet50", groups=4)


def _plan(graph, board="rpi4", policy="decnn"):
    """The policy's task graph as the engine runs it: with the stacks' tasks."""
    cluster = Cluster.build(board, 4, "eth1g")
    tg = get(policy).plan(graph, cluster, False, in_flight=2, samples=2)
    pay_tcp_stacks(tg, cluster)
    return cluster, tg


def test_every_message_pays_the_stack_on_both_boards(graph4):
    cluster, tg = _plan(graph4)
    wires = [t for t in tg if t.category == "comm" and "bytes" in t.meta]
    assert wires
    for wire in wires:
        nbytes = wire.meta["bytes"]
        send, receive = tg[f"{wire.name}/send_cpu"], tg[f"{wire.name}/receive_cpu"]
        assert send.resources == (f"{wire.meta['src']}.compute",)
        assert receive.resources == (f"{wire.meta['dst']}.compute",)
        assert send.deps == wire.deps       # the sender streams the bytes as the wire does
        assert receive.deps == (wire.name,)  # the receiver works on bytes that have arrived
        assert send.duration_s == pytest.approx(nbytes * 8 / 1.5e9)   # 8 cycles/B, 1.5 GHz
        copy_s = 2 * min(nbytes, EAGER_LIMIT_BYTES) / (12.8e9 * 0.35)
        assert receive.duration_s == pytest.approx(nbytes * 8 / 1.5e9 + copy_s)
    for wire in wires:
        stacks = (f"{wire.name}/send_cpu", f"{wire.name}/receive_cpu")
        for t in tg:
            if wire.name in t.deps and not t.name.startswith(wire.name):
                waited = tuple(s for s in stacks if s in t.deps)
                # the receiver's reader waits for the whole message, the sender's next step
                # (an all-to-all keeps its send buffer until then) for its own stack only
                assert waited == (stacks if t.device == wire.meta["dst"] else stacks[:1])


@pytest.mark.parametrize("policy", ["modnn", "coates", "layerwise-mp"])
def test_the_baselines_halo_and_gather_messages_pay_it_too(policy):
    _, tg = _plan(zoo.get("resnet50"), policy=policy)
    wires = [t.name for t in tg if t.category == "comm" and "bytes" in t.meta]
    assert wires and all(f"{w}/send_cpu" in tg and f"{w}/receive_cpu" in tg for w in wires)


def test_devices_other_than_boards_pay_only_the_wire(graph4):
    _, tg = _plan(graph4, board="v100")
    assert not [t for t in tg if t.name.endswith(("/send_cpu", "/receive_cpu"))]


def test_the_stack_competes_with_compute(graph4, monkeypatch):
    cluster = Cluster.build("rpi4", 4, "eth1g")
    with_stack = simulate(graph4, cluster, "decnn", training=False, samples=4)
    monkeypatch.setattr(hwmodels.arm, "TCP_CYCLES_PER_BYTE", 0.0)
    wire_only = simulate(graph4, Cluster.build("rpi4", 4, "eth1g"), "decnn", training=False,
                         samples=4)
    assert with_stack.throughput_samples_per_s < wire_only.throughput_samples_per_s
    log = with_stack.log
    spans = list(zip(log.tasks, log.start_s, log.end_s, strict=True))
    stack = [(s, e) for t, s, e in spans if t.name.endswith("_cpu") and t.device == "arm0"]
    ops = [(s, e) for t, s, e in spans if t.category == "compute" and t.device == "arm0"]
    assert stack and ops
    assert not any(s1 < e2 and s2 < e1 for s1, e1 in stack for s2, e2 in ops)


@pytest.mark.parametrize("policy", ["decnn", "modnn"])
def test_the_receiver_stack_starts_once_the_bytes_have_arrived(policy):
    graph = zoo.get("decnn_resnet50", groups=4) if policy == "decnn" else zoo.get("resnet50")
    result = simulate(graph, Cluster.build("rpi4", 4, "eth1g"), policy, training=False,
                      samples=3)
    log = result.log
    start = dict(zip((t.name for t in log.tasks), log.start_s, strict=True))
    end = dict(zip((t.name for t in log.tasks), log.end_s, strict=True))
    received = [n for n in start if n.endswith("/receive_cpu")]
    assert received
    for name in received:
        wire = name.removesuffix("/receive_cpu")
        assert start[name] >= end[wire] > start[wire]


@given(st.integers(0, 1 << 26), st.integers(0, 1 << 26))
def test_cost_grows_with_bytes_and_receiving_costs_more(a, b):
    small, large = sorted((a, b))
    assert 0 <= send_cpu_s(RPI4, small) <= send_cpu_s(RPI4, large)
    assert receive_cpu_s(RPI4, small) <= receive_cpu_s(RPI4, large)
    assert receive_cpu_s(RPI4, large) >= send_cpu_s(RPI4, large)


@pytest.mark.parametrize("gradient_sync", ["ddp", "horovod"])
def test_boards_training_data_parallel_pay_the_stack_on_every_transfer(gradient_sync):
    graph = zoo.get("lenet5", batch=4)
    cluster = Cluster.build("rpi4", 4, "eth1g")
    tg = get("data-parallel").plan(graph, cluster, True, **_dp_options(gradient_sync))
    pay_tcp_stacks(tg, cluster)
    wires = [t for t in tg if t.category == "comm" and {"bytes", "src", "dst"} <= t.meta.keys()]
    assert wires
    for wire in wires:
        send, receive = tg[f"{wire.name}/send_cpu"], tg[f"{wire.name}/receive_cpu"]
        assert send.resources == (f"{wire.meta['src']}.compute",)
        assert receive.resources == (f"{wire.meta['dst']}.compute",)
        assert receive.deps == (wire.name,)
        assert receive.duration_s == pytest.approx(receive_cpu_s(RPI4, wire.meta["bytes"]))
        # what the receiver does next waits for the whole message; the sender's does not
        for t in tg:
            if wire.name in t.deps and not t.name.startswith(wire.name):
                assert (receive.name in t.deps) == (t.device == wire.meta["dst"])
    gpus = Cluster.build("v100", 4, "pcie3")
    tg_gpu = get("data-parallel").plan(graph, gpus, True, **_dp_options(gradient_sync))
    assert pay_tcp_stacks(tg_gpu, gpus) == 0
    assert not [t for t in tg_gpu if t.name.endswith(("/send_cpu", "/receive_cpu"))]


def test_the_stack_lengthens_a_boards_data_parallel_step(monkeypatch):
    graph = zoo.get("lenet5", batch=4)
    with_stack = simulate(graph, Cluster.build("rpi4", 2, "eth1g"), "data-parallel")
    monkeypatch.setattr(hwmodels.arm, "TCP_CYCLES_PER_BYTE", 0.0)
    wire_only = simulate(graph, Cluster.build("rpi4", 2, "eth1g"), "data-parallel")
    assert with_stack.iteration_time_s > wire_only.iteration_time_s


def _dp_options(gradient_sync: str) -> dict:
    opts = {name: option.default for name, option in get("data-parallel").options.items()}
    return opts | {"gradient_sync": gradient_sync, "replicas": "all"}   # every hop built


def test_boards_built_by_symmetry_class_pay_the_stack_as_every_board_does():
    graph = zoo.get("lenet5", batch=4)
    runs = {replicas: simulate(graph, Cluster.build("rpi4", 4, "eth1g"), "data-parallel",
                               replicas=replicas, collectives="link")
            for replicas in ("all", "classes")}
    assert runs["classes"].iteration_time_s == runs["all"].iteration_time_s
    stacks = [t for t in runs["classes"].log.tasks if t.name.endswith("/receive_cpu")]
    assert stacks and {t.device for t in stacks} == {"arm0"}


@settings(max_examples=6, deadline=None)
@given(st.integers(2, 5), st.sampled_from(["rpi4", "rk3399"]))
def test_a_boards_receive_stack_never_starts_before_its_bytes_arrive(boards, board):
    result = simulate(zoo.get("lenet5", batch=2), Cluster.build(board, boards, "eth1g"),
                      "data-parallel", replicas="all")
    log = result.log
    end = dict(zip((t.name for t in log.tasks), log.end_s, strict=True))
    received = [(t, s) for t, s in zip(log.tasks, log.start_s, strict=True)
                if t.name.endswith("/receive_cpu")]
    assert len(received) == 2 * (boards - 1) * boards      # a ring all-reduce's hops
    assert all(s >= end[t.deps[0]] for t, s in received)


def _bare_transfer(cluster: Cluster) -> TaskGraph:
    """What a policy that knows nothing of TCP plans: an op, a transfer, the op reading it."""
    a, b = cluster.devices[0], cluster.devices[1]
    tg = TaskGraph("bare")
    tg.new("produce", a.compute, 1e-3, device=a.id)
    resources, duration_s = cluster.transfer(a.id, b.id, 1 << 20)
    tg.new("wire", resources, duration_s, deps=("produce",), category="comm", device=a.id,
           meta={"bytes": 1 << 20, "src": a.id, "dst": b.id})
    tg.new("consume", b.compute, 1e-3, deps=("wire",), device=b.id)
    return tg


def test_a_transfer_between_boards_pays_the_stack_whoever_planned_it():
    cluster = Cluster.build("rpi4", 2, "eth1g")
    tg = _bare_transfer(cluster)
    log = run_tasks(tg, cluster)
    end = dict(zip((t.name for t in log.tasks), log.end_s, strict=True))
    start = dict(zip((t.name for t in log.tasks), log.start_s, strict=True))
    assert {"wire/send_cpu", "wire/receive_cpu"} <= end.keys()
    assert start["consume"] >= end["wire/receive_cpu"] >= end["wire"]
    stack_s = send_cpu_s(RPI4, 1 << 20) + receive_cpu_s(RPI4, 1 << 20)
    assert log.makespan_s > 2e-3 + cluster.transfer("arm0", "arm1", 1 << 20)[1]
    assert log.makespan_s >= 2e-3 + stack_s


def test_a_graph_run_twice_pays_the_stack_once():
    cluster = Cluster.build("rpi4", 2, "eth1g")
    tg = _bare_transfer(cluster)
    first = run_tasks(tg, cluster).makespan_s
    count = len(tg)
    assert run_tasks(tg, cluster).makespan_s == first
    assert len(tg) == count == 5
    assert pay_tcp_stacks(tg, cluster) == 0


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 4), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3),
                                             st.integers(1, 1 << 22)), min_size=1, max_size=6))
def test_every_transfer_between_boards_pays_both_stacks_once(boards, messages):
    cluster = Cluster.build("rpi4", boards, "eth1g")
    ids = [d.id for d in cluster.devices]
    tg = TaskGraph("random")
    pairs = [(ids[a % boards], ids[b % boards], n) for a, b, n in messages
             if a % boards != b % boards]
    for i, (src, dst, nbytes) in enumerate(pairs):
        tg.new(f"make{i}", f"{src}.compute", 1e-4, device=src)
        resources, duration_s = cluster.transfer(src, dst, nbytes)
        tg.new(f"wire{i}", resources, duration_s, deps=(f"make{i}",), category="comm",
               device=src, meta={"bytes": nbytes, "src": src, "dst": dst})
        tg.new(f"use{i}", f"{dst}.compute", 1e-4, deps=(f"wire{i}",), device=dst)
    assert pay_tcp_stacks(tg, cluster) == 2 * len(pairs)
    assert pay_tcp_stacks(tg, cluster) == 0
    log = run_tasks(tg, cluster)
    start = dict(zip((t.name for t in log.tasks), log.start_s, strict=True))
    end = dict(zip((t.name for t in log.tasks), log.end_s, strict=True))
    for i, (_, _, nbytes) in enumerate(pairs):
        assert tg[f"use{i}"].deps == (f"wire{i}", f"wire{i}/send_cpu", f"wire{i}/receive_cpu")
        assert start[f"wire{i}/receive_cpu"] >= end[f"wire{i}"]
        assert start[f"use{i}"] >= max(end[f"wire{i}/send_cpu"], end[f"wire{i}/receive_cpu"])
        assert tg[f"wire{i}/send_cpu"].duration_s == pytest.approx(send_cpu_s(RPI4, nbytes))
