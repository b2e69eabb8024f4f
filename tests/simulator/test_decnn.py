"""`decnn`: channel-group split, all-to-all only at shuffles, FC split by input, samples in
flight, and its errors."""
import pytest

from hwmodels.specs import HardwareError, LinkSpec
from simulator.api import simulate
from simulator.cli import main
from simulator.cluster import Cluster
from simulator.policies import ConfigError, get
from simulator.policies._channel_split import split_plan
from workloads import zoo


@pytest.fixture(scope="module")
def graph4():
    return zoo.get("decnn_resnet50", groups=4)


@pytest.fixture(scope="module")
def run4(graph4):
    return simulate(graph4, Cluster.build("rk3399", 4, "eth1g"), "decnn", training=False)


def test_each_device_holds_only_its_share_of_the_weights(graph4):
    cluster = Cluster.build("rk3399", 4, "eth1g")
    tg = get("decnn").plan(graph4, cluster, False, in_flight=2, samples=2)
    resident = tg.meta["resident_bytes"]
    assert sum(resident.values()) == graph4.params() * 4
    assert max(resident.values()) < 0.26 * graph4.params() * 4


def test_exchanges_are_all_to_all_at_shuffles_and_one_reduce(graph4):
    cluster = Cluster.build("rk3399", 4, "eth1g")
    tg = get("decnn").plan(graph4, cluster, False, in_flight=1, samples=1)
    comm = [t for t in tg if t.category == "comm" and "bytes" in t.meta]   # the wire's
    kinds = {k: sum(t.meta["collective"] == k for t in comm) for k in
             ("all_to_all", "broadcast", "reduce", "allgather", "gather")}
    assert kinds == {"all_to_all": 16 * 12, "broadcast": 3, "reduce": 3, "allgather": 0,
                     "gather": 0}
    shuffled = sum(op.out.nbytes for op in graph4 if op.kind == "channel_shuffle")
    a2a = sum(t.meta["bytes"] for t in comm if t.meta["collective"] == "all_to_all")
    assert a2a == pytest.approx(shuffled * 3 / 4)
    # each device runs its group as a dense conv, costed without the grouped-conv penalty
    local = split_plan(graph4, 4, "decnn", "decnn").local[1]
    assert all(op.attrs["groups"] == 1 for op in local if op.kind == "conv2d")
    conv = local.op("layer2.1.conv2")
    assert conv.attrs["in_channels"] == graph4.op("layer2.1.conv2").attrs["in_channels"] // 4


def test_samples_in_flight_overlap_exchanges_with_compute(graph4, run4):
    one = simulate(graph4, Cluster.build("rk3399", 4, "eth1g"), "decnn", training=False,
                   in_flight=1)
    # only the wire's time hides behind the other sample's compute: the TCP stack's CPU time
    # runs on the boards' compute streams (tests/simulator/test_mpi_tcp.py)
    assert run4.throughput_samples_per_s > 1.01 * one.throughput_samples_per_s
    assert run4.extras["latency_s"] == pytest.approx(one.extras["latency_s"])
    log = run4.log
    spans = list(zip(log.tasks, log.start_s, log.end_s, strict=True))
    comm = [(t, s, e) for t, s, e in spans if t.category == "comm" and e > s]
    compute = [(t, s, e) for t, s, e in spans if t.category == "compute" and e > s]
    overlapped = any(c.device == k.device and c.meta["sample"] != k.meta["sample"]
                     and s1 < e2 and s2 < e1 for c, s1, e1 in comm for k, s2, e2 in compute[::7])
    assert overlapped


def test_speedup_and_memory_against_one_device(run4):
    base = simulate("resnet50", Cluster.build("rk3399", 1, "eth1g"), "sequential",
                    training=False)
    speedup = run4.throughput_samples_per_s / base.throughput_samples_per_s
    assert 2.0 < speedup < 4.0
    assert base.iteration_time_s / run4.extras["latency_s"] < speedup   # latency gains less
    mem = sum(run4.peak_memory_bytes.values()) / 4
    assert 0.55 < 1 - mem / base.peak_memory_bytes["arm0"] < 0.8
    for key in ("latency_s", "throughput_samples_per_s", "memory_per_device_bytes"):
        assert run4.extras[key] > 0


def test_one_device_is_the_sequential_run():
    g = zoo.get("decnn_resnet50", groups=1)
    c = Cluster.build("rk3399", 1, "eth1g")
    r = simulate(g, c, "decnn", training=False, samples=2)
    s = simulate(g, c, "sequential", training=False)
    assert r.iteration_time_s == pytest.approx(s.iteration_time_s)


def test_more_groups_than_devices_and_wifi(graph4):
    g8 = zoo.get("decnn_resnet50", groups=8)
    eth = simulate(g8, Cluster.build("rk3399", 4, "eth1g"), "decnn", training=False, samples=3)
    wifi = simulate(g8, Cluster.build("rk3399", 4, "wifi"), "decnn", training=False, samples=3)
    assert eth.ok and wifi.ok
    assert any("medium" in t.resources for t in wifi.log.tasks)
    assert wifi.iteration_time_s > 3 * eth.iteration_time_s


def test_deterministic(graph4):
    runs = [simulate(graph4, Cluster.build("rk3399", 4, "eth1g"), "decnn", training=False,
                     samples=3).records() for _ in range(2)]
    assert runs[0] == runs[1]


def test_more_devices_than_groups():
    g = zoo.get("decnn_resnet50", groups=2)
    with pytest.raises(ConfigError, match=r"more devices \(4\) than channel groups \(2\)"):
        simulate(g, Cluster.build("rk3399", 4, "eth1g"), "decnn", training=False)


def test_groups_that_do_not_divide_among_devices(graph4):
    with pytest.raises(ConfigError, match="4 channel groups do not divide among 3 devices"):
        simulate(graph4, Cluster.build("rk3399", 3, "eth1g"), "decnn", training=False)


def test_dense_network_and_training_are_rejected():
    with pytest.raises(ConfigError, match="decoupled network"):
        simulate("resnet50", Cluster.build("rk3399", 2, "eth1g"), "decnn", training=False)
    with pytest.raises(ConfigError, match="inference only"):
        simulate("decnn_resnet50", Cluster.build("rk3399", 2, "eth1g"), "decnn",
                 workload_options={"groups": 2})
    with pytest.raises(ConfigError, match="in_flight"):
        simulate("decnn_resnet50", Cluster.build("rk3399", 2, "eth1g"), "decnn",
                 training=False, workload_options={"groups": 2}, in_flight=0)


def test_zero_bandwidth_link():
    with pytest.raises(HardwareError, match="bandwidth_Bps must be > 0"):
        Cluster.build("rk3399", 4, LinkSpec("dead", 0.0, 1e-4, "test"))


@pytest.mark.parametrize("argv, message", [
    (["--workload-option", "groups=2", "--devices", "4"], "more devices (4) than channel groups"),
    (["--workload-option", "groups=3", "--workload-option", "width=1.0", "--devices", "3"],
     "groups=3 does not divide the 64 channels"),
])
def test_cli_errors(argv, message, capsys):
    code = main(["simulate", "--workload", "decnn_resnet50", "--hardware", "rk3399",
                 "--link", "eth1g", "--policy", "decnn", "--inference", "--batch", "1",
                 *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dnnsim: error:") and message in err
    assert len(err.splitlines()) == 1
