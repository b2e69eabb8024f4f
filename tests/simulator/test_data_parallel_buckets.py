"""data-parallel as DDP runs it: bucket boundaries, all-reduces overlapping the backward pass,
buckets reduced in order, the optimizer step after the last bucket."""
from __future__ import annotations

import pytest

from simulator import Cluster, nccl_fabric, nccl_tuning, simulate
from simulator.policies._data_parallel import DDP_FIRST_BUCKET_BYTES, MIB, gradient_buckets
from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.training import lower_training

KIB = 1024


def _mlp(layers=6, width=256):
    """`layers` bias-free width x width linears (width * width * 4 bytes each: 256 KiB) and a
    bias-free head of 10."""
    b = GraphBuilder("mlp", input_shape=(width,), batch=4)
    x = b.input()
    for i in range(1, layers + 1):
        x = b.linear(x, width, bias=False, name=f"l{i}")
    b.linear(x, 10, bias=False, name="head")
    return b.build()


def test_buckets_close_once_they_reach_their_cap_first_1_mib():
    g = lower_training(_mlp())
    assert g.op("l1.grad_weight").param_bytes == 256 * KIB
    assert g.op("head.grad_weight").param_bytes == 10 * 1024   # 256 x 10 x 4
    buckets = gradient_buckets(g, 512 * KIB)
    # backward order: head, l6 .. l1. The first bucket reaches 1 MiB with l3 (10 + 4 x 256
    # KiB); the next closes at exactly its 512 KiB cap.
    assert buckets == [["head.grad_weight", "l6.grad_weight", "l5.grad_weight",
                        "l4.grad_weight", "l3.grad_weight"],
                       ["l2.grad_weight", "l1.grad_weight"]]
    assert DDP_FIRST_BUCKET_BYTES == MIB
    # a larger cap leaves the rest in one last bucket that never reached it
    assert gradient_buckets(g, 25 * MIB)[1:] == [["l2.grad_weight", "l1.grad_weight"]]
    # the first cap is its own: 256 KiB closes the first bucket at l6
    assert gradient_buckets(g, 512 * KIB, first_bucket_bytes=256 * KIB)[0] == [
        "head.grad_weight", "l6.grad_weight"]


def test_resnet50_buckets_cover_every_gradient_once_in_backward_order():
    g = lower_training(zoo.get("resnet50", batch=2))
    producers = [op.name for op in g.topo() if op.phase == "backward" and op.params]
    buckets = gradient_buckets(g, 25 * MIB)
    assert [nm for b in buckets for nm in b] == producers
    sizes = [sum(g.op(nm).param_bytes for nm in b) for b in buckets]
    assert sum(sizes) == 4 * sum(op.params for op in g.phase("forward"))
    assert sizes[0] >= MIB and all(s >= 25 * MIB for s in sizes[1:-1])
    for b, cap in zip(buckets[:-1], [MIB] + [25 * MIB] * len(buckets), strict=False):
        # it closed with its last layer: without it, the bucket was below its cap
        assert sum(g.op(nm).param_bytes for nm in b[:-1]) < cap
    assert sizes[-1] < 25 * MIB
    assert buckets[0][0].startswith("fc")          # the last layer's gradient is ready first


@pytest.fixture(scope="module")
def dgx1_run():
    cluster = Cluster.build("v100", 8, "nvlink2-link", topology="dgx1-cube-mesh")
    return simulate("resnet50", cluster, "data-parallel", batch=16)


def _spans(result, device, pick):
    log = result.log
    return [(s, e) for t, s, e in zip(log.tasks, log.start_s, log.end_s, strict=True)
            if t.device == device and pick(t)]


def test_first_bucket_reduces_during_backward_and_the_step_waits_for_the_last(dgx1_run):
    r = dgx1_run
    assert r.ok
    buckets = len(r.log.meta["bucket_bytes"])
    assert buckets >= 4

    def bucket(b):
        return lambda t: t.name.startswith(f"allreduce.b{b}.")
    backward = _spans(r, "gpu0", lambda t: t.category == "compute"
                      and t.meta.get("phase") == "backward")
    updates = _spans(r, "gpu0", lambda t: t.meta.get("phase") == "update")
    first = _spans(r, "gpu0", bucket(0))
    last = [span for d in ("gpu0", "gpu3", "gpu7") for span in _spans(r, d, bucket(buckets - 1))]
    assert min(s for s, _ in first) < max(e for _, e in backward)      # overlaps backward
    assert max(e for _, e in first) < max(e for _, e in backward)
    assert min(s for s, _ in updates) >= max(e for _, e in _spans(r, "gpu0", bucket(buckets - 1)))
    assert max(e for _, e in last) > max(e for _, e in backward)      # the exposed tail
    # on every device bucket b+1 starts after bucket b ended there (one NCCL stream, in order)
    for d in ("gpu0", "gpu5"):
        for b in range(buckets - 1):
            assert (min(s for s, _ in _spans(r, d, bucket(b + 1)))
                    >= max(e for _, e in _spans(r, d, bucket(b))))


def test_each_all_reduce_pays_nccls_launch_once_on_gpus_only(dgx1_run):
    # the launch is a delay per GPU (no port held) that the first step waits for
    launches = {t.name: t for t in dgx1_run.log.tasks
                if t.name.startswith("allreduce.b0.launch.")}
    first_steps = [t for t in dgx1_run.log.tasks if ".s0." in t.name
                   and t.name.startswith("allreduce.b0.")]
    assert len(launches) == 8 and first_steps
    # NCCL's launch for the pair its tuning picks for the first bucket (DDP's default: 'nccl')
    cluster = Cluster.build("v100", 8, "nvlink2-link", topology="dgx1-cube-mesh")
    choice = nccl_tuning.choose(nccl_fabric.fabric_of(cluster, [d.id for d in cluster.devices]),
                                dgx1_run.log.meta["bucket_bytes"][0])
    launch_s = nccl_tuning.launch_s(choice.algorithm, choice.protocol)
    assert all(t.duration_s == pytest.approx(launch_s) for t in launches.values())
    assert all(set(t.deps) <= set(launches) and t.deps for t in first_steps)
    cpus = simulate(_mlp(), Cluster.build("skylake-x-6c", 2, "eth10g"), "data-parallel")
    assert not any(".launch." in t.name for t in cpus.log.tasks)
    s0 = [t for t in cpus.log.tasks if t.name.startswith("allreduce.b0.s0.")]
    s1 = [t for t in cpus.log.tasks if t.name.startswith("allreduce.b0.s1.")]
    assert s0[0].duration_s == pytest.approx(s1[0].duration_s)


def test_the_exposed_tail_is_the_last_bucket_on_nvlink():
    """ResNet-50 on a DGX-1: only the last bucket's all-reduce (and its launch) is exposed;
    with every gradient in one bucket nothing overlaps and the whole all-reduce is."""
    cluster = Cluster.build("v100", 8, "nvlink2-link", topology="dgx1-cube-mesh")
    one = simulate("resnet50", Cluster.build("v100", 1, "nvlink2"), "sequential", batch=16)
    dp = simulate("resnet50", cluster, "data-parallel", batch=16)
    whole = simulate("resnet50", cluster, "data-parallel", batch=16, bucket_mb=1000.0)
    assert len(whole.log.meta["bucket_bytes"]) == 2    # the 1 MiB first bucket, then the rest
    assert one.iteration_time_s < dp.iteration_time_s < whole.iteration_time_s
    assert dp.iteration_time_s - one.iteration_time_s < 0.5e-3
