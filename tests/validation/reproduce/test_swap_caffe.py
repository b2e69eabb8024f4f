"""AccUDNN's baseline: the largest minibatch stock Caffe trains in a memory budget."""
from __future__ import annotations

from hwmodels.gpu_memory import runtime_reservation
from simulator.framework_memory import caffe_training_bytes
from validation.reproduce.swap import metrics
from workloads import zoo

GIB = 2 ** 30


def test_caffe_largest_batch_fits_and_one_more_does_not():
    b = metrics.caffe_largest_batch("resnet50", 12.0)
    spec = metrics.gpu_cluster(12.0).devices[0].spec
    budget = 12 * GIB - runtime_reservation(spec).total_bytes
    assert b > 0
    assert caffe_training_bytes(zoo.get("resnet50", batch=b)) <= budget
    assert caffe_training_bytes(zoo.get("resnet50", batch=b + 1)) > budget
    assert metrics.caffe_largest_batch("resnet50", 0.5) == 0


def test_caffe_policy_runs_out_of_memory_where_the_closed_form_says():
    from simulator.api import simulate
    b = metrics.caffe_largest_batch("resnet50", 6.0)
    cluster = metrics.gpu_cluster(6.0)
    fits = simulate("resnet50", cluster, "caffe", batch=b)
    assert fits.ok and not simulate("resnet50", cluster, "caffe", batch=b + 1).ok
    plain = simulate("resnet50", cluster, "none", batch=b, enforce_memory=False)
    assert fits.iteration_time_s == plain.iteration_time_s   # same ops, another memory model


def test_stock_caffe_on_8_gpus_fits_its_largest_batch_under_caffes_memory():
    """The 8-GPU baseline (resnet152_8gpu_scaling_over_caffe) runs data-parallel under
    framework_memory caffe: Caffe's largest batch fits on every GPU, one more does not."""
    from simulator.api import simulate
    b = metrics.caffe_largest_batch("resnet50", 6.0)
    cluster = metrics.gpu_cluster(6.0, count=8)
    fits = simulate("resnet50", cluster, "data-parallel", batch=b, bucket_mb=1e6,
                    framework_memory="caffe")
    assert fits.ok and not simulate("resnet50", cluster, "data-parallel", batch=b + 1,
                                    bucket_mb=1e6, framework_memory="caffe").ok
    assert set(fits.peak_memory_bytes.values()) == {
        caffe_training_bytes(zoo.get("resnet50", batch=b))}


def test_stock_caffe_p2psync_runs_out_of_memory_on_its_root_where_the_closed_form_says():
    """Under P2PSync (the 8-GPU baseline's default) the root holds a gradient buffer for each
    of its three children: its largest batch is below one GPU's, and one more fails there."""
    from simulator.api import simulate
    b = metrics.caffe_multi_gpu_largest_batch("resnet50", 6.0, 8, "caffe-p2p")
    assert 0 < b < metrics.caffe_largest_batch("resnet50", 6.0)
    assert metrics.caffe_multi_gpu_largest_batch("resnet50", 6.0, 8, "caffe-nccl") == \
        metrics.caffe_largest_batch("resnet50", 6.0)
    cluster = metrics.gpu_cluster(6.0, count=8)
    fits = simulate("resnet50", cluster, "data-parallel", batch=b, gradient_sync="caffe-p2p",
                    framework_memory="caffe")
    over = simulate("resnet50", cluster, "data-parallel", batch=b + 1,
                    gradient_sync="caffe-p2p", framework_memory="caffe")
    assert fits.ok and not over.ok
    assert over.log.oom is not None and over.log.oom.device == "gpu0"


def test_caffe_with_cudnn_holds_each_convolutions_workspace_three_times(monkeypatch):
    """Every algorithm asking for 1 MiB: each of ResNet-50's 53 convolutions holds 3 MiB
    (3 streams, one group), and the largest batch is the one that fits with that held."""
    monkeypatch.setattr(metrics, "conv_workspace_bytes", lambda op, algorithm: 2 ** 20)
    convs = sum(1 for op in zoo.get("resnet50", batch=1) if op.kind == "conv2d")
    assert convs == 53
    assert metrics.caffe_cudnn_workspace_bytes("resnet50", 8, 6.0) == 3 * convs * 2 ** 20
    b = metrics.caffe_cudnn_largest_batch("resnet50", 6.0)
    held = 3 * convs * 2 ** 20
    assert b == metrics.caffe_largest_batch("resnet50", 6.0, held_bytes=held)
    assert 0 < b < metrics.caffe_largest_batch("resnet50", 6.0)

