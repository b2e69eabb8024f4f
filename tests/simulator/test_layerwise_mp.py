"""`layerwise-mp`: every layer split by output channels, all-gather after each; and the other
inference baseline, data parallelism with whole samples per device."""
import pytest

from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import get
from workloads import zoo


def test_weights_split_and_a_gather_per_layer():
    g = zoo.get("resnet50")
    tg = get("layerwise-mp").plan(g, Cluster.build("rk3399", 4, "eth1g"), False,
                                  in_flight=1, samples=1)
    assert sum(tg.meta["resident_bytes"].values()) == g.params() * 4
    gathered = {t.meta["op"] for t in tg if t.meta.get("collective") == "allgather"}
    # one all-gather per layer input: every layer but the stem (it reads the image), and the 4
    # downsampling convs share theirs with their block's conv1
    assert len(g.layers()) == 54 and len(gathered) == 54 - 1 - 4
    assert any(t.meta.get("collective") == "gather" for t in tg)


def test_uneven_split_and_one_device():
    r3 = simulate("resnet50", Cluster.build("rk3399", 3, "eth1g"), "layerwise-mp",
                  training=False, samples=2)
    assert r3.ok
    c1 = Cluster.build("rk3399", 1, "eth1g")
    r1 = simulate("resnet50", c1, "layerwise-mp", training=False, samples=2)
    s1 = simulate("resnet50", c1, "sequential", training=False)
    assert r1.iteration_time_s == pytest.approx(s1.iteration_time_s)


def test_layerwise_communicates_more_than_decnn():
    c = Cluster.build("rk3399", 4, "eth1g")
    lw = simulate("resnet50", c, "layerwise-mp", training=False, samples=2)
    de = simulate("decnn_resnet50", c, "decnn", training=False, samples=2,
                  workload_options={"groups": 4})
    assert lw.extras["exchange_bytes_per_sample"] > 3 * de.extras["exchange_bytes_per_sample"]
    assert lw.iteration_time_s > 2 * de.iteration_time_s


def test_data_parallel_inference_gives_whole_samples_per_device():
    c = Cluster.build("rk3399", 4, "eth1g")
    dp = simulate("resnet50", c, "data-parallel", training=False)
    s = simulate("resnet50", Cluster.build("rk3399", 1, "eth1g"), "sequential", training=False)
    assert dp.samples_per_iteration == 4
    assert dp.throughput_samples_per_s == pytest.approx(4 * s.throughput_samples_per_s)
    assert all(p == s.peak_memory_bytes["arm0"] for p in dp.peak_memory_bytes.values())
