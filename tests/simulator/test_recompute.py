"""recompute: segments of ~sqrt(n) layers, less memory, extra compute, same result shape."""
from __future__ import annotations

from hwmodels import catalog
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies._recompute import SUFFIX, checkpoint_graph
from workloads import zoo
from workloads.training import lower_training


def test_recompute_trades_compute_for_memory():
    cl = Cluster.build(catalog.device("titan-x-pascal"), 1, "pcie3")
    base = simulate("resnet50", cl, "none", batch=16)
    r = simulate("resnet50", cl, "recompute", batch=16)
    assert r.ok and r.peak_memory_bytes["gpu0"] < 0.85 * base.peak_memory_bytes["gpu0"]
    assert base.iteration_time_s < r.iteration_time_s < 1.6 * base.iteration_time_s
    assert r.extras["recomputed_ops"] > 0


def test_every_recomputed_tensor_is_read_and_segments_follow_sqrt():
    train = lower_training(zoo.get("vgg16_cifar", batch=8))
    g, segments = checkpoint_graph(train)
    assert segments == 3   # 16 layers, 4 per segment: 3 cuts (the last segment is kept)
    rec = [op for op in g if op.name.endswith(SUFFIX)]
    assert rec and all(op.phase == "backward" for op in rec)
    for op in g:
        if op.phase == "backward" and not op.name.endswith(SUFFIX):
            # backward ops never read a forward tensor that has been recomputed
            assert not any(t + SUFFIX in g for t in op.saved)
