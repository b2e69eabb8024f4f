"""graph.meta["cudnn_benchmark"]: the step's memory with cudnn.benchmark's algorithm search
(hwmodels/cudnn_benchmark.py, replayed by simulator/lowering.py)."""
from __future__ import annotations

from hwmodels import catalog
from simulator import Cluster, simulate
from workloads import zoo

GIB = 2 ** 30


def _peak(benchmark: bool, batch: int = 64, gpu: str = "v100"):
    graph = zoo.get("resnet18", batch=batch)
    if benchmark:
        graph.meta["cudnn_benchmark"] = True
    cluster = Cluster.build(catalog.device(gpu), 1, "pcie3")
    result = simulate(graph, cluster, "sequential")
    return result.ok, result.peak_device_memory_bytes[cluster.devices[0].id]


def test_the_search_fills_what_is_free_without_running_out():
    plain_ok, plain = _peak(False)
    searched_ok, searched = _peak(True)
    assert plain_ok and searched_ok
    # the largest workspace of some search is about a GiB at batch 64; what it leaves cached
    # is reserved memory, which the peak (as nvidia-smi shows it) counts
    assert searched > plain + GIB // 2
    assert searched <= catalog.device("v100").memory_bytes


def test_the_same_step_gives_the_same_peak():
    assert _peak(True) == _peak(True)


def test_without_the_key_nothing_changes():
    graph = zoo.get("resnet18", batch=64)
    graph.meta["cudnn_benchmark"] = False
    cluster = Cluster.build(catalog.device("v100"), 1, "pcie3")
    result = simulate(graph, cluster, "sequential")
    assert result.peak_device_memory_bytes[cluster.devices[0].id] == _peak(False)[1]
