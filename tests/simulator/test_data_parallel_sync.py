"""How frameworks group gradients into all-reduces (data-parallel option gradient_sync):
Horovod's cycles and fusion buffer, MXNet's kvstore keys, and gradients that are all ready at
the end of a compiled backward pass (gradients_ready)."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, simulate
from simulator.cli import main
from simulator.collectives import NCCL_BASE_LATENCY_S
from simulator.engine import run
from simulator.policies import ConfigError
from simulator.policies._data_parallel import kvstore_groups, parameter_arrays_bytes
from simulator.policies._horovod import HOROVOD_CYCLE_TIME_MS, HOROVOD_FUSION_MB, horovod_groups
from simulator.policies._sync_group import MIB
from simulator.tasks import TaskGraph
from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.training import lower_training

KIB = 1024


def _mlp(layers=4, width=256):
    """`layers` bias-free width x width linears (256 KiB of FP32 weights each) and a head."""
    b = GraphBuilder("mlp", input_shape=(width,), batch=4)
    x = b.input()
    for i in range(1, layers + 1):
        x = b.linear(x, width, bias=False, name=f"l{i}")
    b.linear(x, 10, bias=False, name="head")
    return lower_training(b.build())


def _tick_ends(tg: TaskGraph) -> dict[str, float]:
    """When each tick task ends, run alone on the engine."""
    ticks = TaskGraph("ticks")
    for t in tg:
        if t.name.startswith("horovod.tick"):
            ticks.add(t)
    log = run(ticks, {"horovod.cycle": 1})
    return {t.name: e for t, e in zip(log.tasks, log.end_s, strict=True)}


def test_horovod_fuses_what_each_cycle_finds_and_ticks_so_the_last_waits_half_a_cycle():
    g = _mlp()
    ready = {"head.grad_weight": 1e-3, "l4.grad_weight": 2e-3, "l3.grad_weight": 7e-3,
             "l2.grad_weight": 11e-3, "l1.grad_weight": 11.5e-3}
    tg = TaskGraph("h")
    groups = horovod_groups(tg, g, ready, cycle_s=5e-3, fusion_bytes=64 * MIB, copy_Bps=None)
    # the last gradient (11.5 ms) waits half a cycle: ticks at 14, 9 and 4 ms
    assert [grp.ops for grp in groups] == [("head.grad_weight", "l4.grad_weight"),
                                           ("l3.grad_weight",),
                                           ("l2.grad_weight", "l1.grad_weight")]
    ends = _tick_ends(tg)
    assert [ends[grp.after[0]] for grp in groups] == pytest.approx([4e-3, 9e-3, 14e-3])
    assert groups[0].nbytes == 256 * KIB + 10 * KIB


def test_horovod_splits_a_cycle_at_its_fusion_threshold_and_pays_the_buffer_copies():
    g = _mlp()
    ready = dict.fromkeys(["head.grad_weight", "l4.grad_weight", "l3.grad_weight",
                           "l2.grad_weight", "l1.grad_weight"], 1e-3)
    groups = horovod_groups(TaskGraph("h"), g, ready, cycle_s=5e-3, fusion_bytes=600 * KIB,
                            copy_Bps=1e12, copy_launch_s=3e-6)
    assert [len(grp.ops) for grp in groups] == [3, 2]       # 10 + 256 + 256 KiB, then 512
    assert all(grp.nbytes <= 600 * KIB for grp in groups)
    # a fused buffer is copied in and out, one copy per tensor each way: its bytes read and
    # written twice, and four copies launched for two tensors
    assert groups[1].extra_launch_s == pytest.approx(4 * 512 * KIB / 1e12 + 4 * 3e-6)
    assert groups[0].extra_launch_s == pytest.approx(4 * 522 * KIB / 1e12 + 6 * 3e-6)
    alone = horovod_groups(TaskGraph("h"), g, {**ready, "l1.grad_weight": 20e-3},
                           cycle_s=5e-3, fusion_bytes=64 * MIB, copy_Bps=1e12,
                           copy_launch_s=3e-6)
    assert alone[-1].ops == ("l1.grad_weight",) and alone[-1].extra_launch_s == 0.0


def test_horovod_copies_each_tensor_into_its_fusion_buffer_weight_and_bias_apart():
    g = lower_training(zoo.get("resnet50", batch=2))
    ready = {op.name: 1e-3 for op in g.topo() if op.phase == "backward" and op.params}
    groups = horovod_groups(TaskGraph("h"), g, ready, cycle_s=5e-3, fusion_bytes=64 * MIB,
                            copy_Bps=None, copy_launch_s=1.0)
    # 107 layers with parameters hold 161 tensors (53 convolutions, 53 batch norms' scale and
    # shift, the classifier's weight and bias): a copy in and a copy out of each
    assert len(ready) == 107
    assert sum(grp.extra_launch_s for grp in groups) == pytest.approx(2 * 161)
    assert sum(grp.nbytes for grp in groups) == 4 * sum(op.params for op in g.phase("forward"))
    # a layer's weight and bias may fall in two buffers: the threshold counts tensors
    b = GraphBuilder("one", input_shape=(256,), batch=4)
    b.linear(b.input(), 10, bias=True, name="fc")
    one = lower_training(b.build())
    split = horovod_groups(TaskGraph("h"), one, {"fc.grad_weight": 1e-3}, cycle_s=5e-3,
                           fusion_bytes=4 * 256 * 10, copy_Bps=None, copy_launch_s=1.0)
    assert [(grp.ops, grp.nbytes, grp.extra_launch_s) for grp in split] == [
        (("fc.grad_weight",), 4 * 256 * 10, 0.0), (("fc.grad_weight",), 4 * 10, 0.0)]


@settings(max_examples=40, deadline=None)
@given(times=st.lists(st.floats(0, 0.2), min_size=5, max_size=5),
       cycle_ms=st.floats(0.5, 20), fusion_kib=st.integers(1, 2048))
def test_horovod_reduces_every_gradient_once_at_the_first_tick_after_it_is_ready(
        times, cycle_ms, fusion_kib):
    g = _mlp()
    names = ["head.grad_weight", "l4.grad_weight", "l3.grad_weight", "l2.grad_weight",
             "l1.grad_weight"]
    ready = dict(zip(names, times, strict=True))
    tg = TaskGraph("h")
    cycle = cycle_ms * 1e-3
    groups = horovod_groups(tg, g, ready, cycle, fusion_kib * KIB, copy_Bps=None)
    assert sorted(nm for grp in groups for nm in grp.ops) == sorted(names)
    ends = _tick_ends(tg)
    for grp in groups:
        tick = ends[grp.after[0]]
        assert len(grp.ops) == 1 or grp.nbytes <= fusion_kib * KIB
        for nm in grp.ops:
            assert ready[nm] - 1e-12 <= tick < ready[nm] + cycle + 1e-12
    assert ends[groups[-1].after[0]] == pytest.approx(max(times) + cycle / 2)
    ticks = [ends[grp.after[0]] for grp in groups]
    assert ticks == sorted(ticks)


def test_kvstore_reduces_each_parameter_array_in_the_order_the_forward_pass_uses_them():
    g = lower_training(zoo.get("resnet50", batch=2))
    groups = kvstore_groups(g)
    # 53 convolutions, 53 batch norms' scale and shift, the classifier's weight and bias
    assert len(groups) == 53 + 2 * 53 + 2 == 161
    assert sum(grp.nbytes for grp in groups) == 4 * sum(op.params for op in g.phase("forward"))
    # Module pushes key 0 first: the first layer's, whose gradient the backward pass makes last
    backward = [op.name for op in g.topo() if op.phase == "backward" and op.params]
    assert groups[0].ops == (backward[-1],) == ("conv1.grad_weight",)
    assert groups[1].ops == groups[2].ops == ("bn1.grad",)
    assert groups[-2].ops == groups[-1].ops == ("fc.grad_weight",)
    assert (groups[-2].nbytes, groups[-1].nbytes) == (4 * 2048 * 1000, 4 * 1000)
    assert all(grp.extra_launch_s == NCCL_BASE_LATENCY_S for grp in groups)
    bn = g.op("bn1.grad")
    assert parameter_arrays_bytes(bn) == [4 * 64, 4 * 64]


@settings(max_examples=30, deadline=None)
@given(widths=st.lists(st.integers(1, 64), min_size=1, max_size=6),
       biases=st.lists(st.booleans(), min_size=6, max_size=6))
def test_kvstore_keys_every_parameter_array_once_first_layer_first(widths, biases):
    b = GraphBuilder("mlp", input_shape=(8,), batch=2)
    x = b.input()
    for i, (width, bias) in enumerate(zip(widths, biases, strict=False)):
        x = b.linear(x, width, bias=bias, name=f"l{i}")
    g = lower_training(b.build())
    groups = kvstore_groups(g)
    # a key per weight and per bias, all the parameters' bytes, each layer's keys together,
    # in the order the forward pass uses them (the reverse of the backward pass's)
    assert len(groups) == len(widths) + sum(biases[:len(widths)])
    assert sum(grp.nbytes for grp in groups) == 4 * sum(op.params for op in g.phase("forward"))
    backward = [op.name for op in g.topo() if op.phase == "backward" and op.params]
    layers = [grp.ops[0] for grp in groups]
    assert list(dict.fromkeys(layers)) == backward[::-1]


def _dp(n, **opts):
    cluster = Cluster.from_node_type("dgx1-v100", n)
    return simulate("resnet50", cluster, "data-parallel", batch=32, replicas="one", **opts)


def _first_start(result, prefix):
    return min(s for t, s in zip(result.log.tasks, result.log.start_s, strict=True)
               if t.name.startswith(prefix))


def _last_backward_end(result):
    return max(e for t, e in zip(result.log.tasks, result.log.end_s, strict=True)
               if t.category == "compute" and t.meta.get("phase") == "backward")


def test_horovod_launches_its_last_allreduce_half_a_cycle_after_the_last_gradient():
    # MXNet's engine tells Horovod of a gradient once it is computed: the next cycle takes it
    r = _dp(8, gradient_sync="horovod", horovod_enqueue="gpu-ready")
    last = len(r.log.meta["bucket_bytes"]) - 1
    assert _first_start(r, f"allreduce.b{last}.") == pytest.approx(
        _last_backward_end(r) + HOROVOD_CYCLE_TIME_MS * 1e-3 / 2, abs=1e-9)
    # a longer cycle waits longer
    assert _dp(8, gradient_sync="horovod", horovod_enqueue="gpu-ready",
               cycle_time_ms=20).iteration_time_s > r.iteration_time_s
    assert HOROVOD_FUSION_MB == 64


def test_horovod_told_at_dispatch_fuses_the_whole_step_and_waits_for_the_gpu_not_a_cycle():
    # TensorFlow and PyTorch tell Horovod of each gradient as the host dispatches its op:
    # one cycle takes them all, fused in backward order up to 64 MiB, and the last buffer
    # is reduced as soon as the backward pass has made its last tensor
    r = _dp(8, gradient_sync="horovod")
    sizes = r.log.meta["bucket_bytes"]
    total = sum(sizes)
    assert len(sizes) == math.ceil(total / (HOROVOD_FUSION_MB * MIB)) == 2
    assert all(size <= HOROVOD_FUSION_MB * MIB for size in sizes)
    assert _first_start(r, f"allreduce.b{len(sizes) - 1}.") == pytest.approx(
        _last_backward_end(r), abs=1e-9)
    # the cycle's length no longer matters; the fusion threshold does
    assert _dp(8, gradient_sync="horovod", cycle_time_ms=20).iteration_time_s == \
        r.iteration_time_s
    assert len(_dp(8, gradient_sync="horovod", fusion_mb=16).log.meta["bucket_bytes"]) > 2


def test_horovod_on_one_gpu_all_reduces_nothing_but_for_mxnet_before_0_19():
    # TensorFlow's and PyTorch's Horovod optimizers (and MXNet's from 0.19) skip the
    # all-reduce when size() is 1; 0.16's MXNet optimizer sends every gradient through the
    # loop, so its last gradient waits half a cycle on one GPU too
    alone = _dp(1).iteration_time_s
    assert _dp(1, gradient_sync="horovod").iteration_time_s == alone
    assert _dp(1, gradient_sync="horovod", horovod_one_rank="skip").iteration_time_s == alone
    mxnet = {"gradient_sync": "horovod", "horovod_enqueue": "gpu-ready"}
    assert _dp(1, horovod_one_rank="cycle", **mxnet).iteration_time_s == \
        pytest.approx(alone + HOROVOD_CYCLE_TIME_MS * 1e-3 / 2, rel=1e-3)
    # more than one rank runs the loop either way
    assert _dp(2, gradient_sync="horovod", horovod_one_rank="skip").iteration_time_s == \
        _dp(2, gradient_sync="horovod", horovod_one_rank="cycle").iteration_time_s


def test_a_compiled_backward_starts_no_allreduce_before_it_ends():
    for sync in ("ddp", "horovod"):
        eager = _dp(8, gradient_sync=sync)
        compiled = _dp(8, gradient_sync=sync, gradients_ready="at-end")
        assert _first_start(eager, "allreduce.") < _last_backward_end(eager)
        assert _first_start(compiled, "allreduce.") >= _last_backward_end(compiled) - 1e-12
        assert compiled.iteration_time_s > eager.iteration_time_s


def test_kvstores_keys_run_one_after_another_after_the_backward_pass():
    kv = _dp(8, gradient_sync="kvstore")
    assert len(kv.log.meta["bucket_bytes"]) == 161
    assert kv.log.meta["gradient_sync"] == "kvstore"
    assert sum(kv.log.meta["bucket_bytes"]) == sum(_dp(8).log.meta["bucket_bytes"])
    # the first key waits for the first layer's gradient, the others for it: the chain
    # starts when the backward pass ends, eager or compiled alike
    assert _first_start(kv, "allreduce.") >= _last_backward_end(kv) - 1e-12
    assert _dp(8, gradient_sync="kvstore", gradients_ready="at-end").iteration_time_s == \
        pytest.approx(kv.iteration_time_s, rel=1e-9)
    spans: dict[int, tuple[float, float]] = {}
    for t, s, e in zip(kv.log.tasks, kv.log.start_s, kv.log.end_s, strict=True):
        if t.name.startswith("allreduce.b"):
            b = int(t.name.split(".")[1][1:])
            lo, hi = spans.get(b, (s, e))
            spans[b] = (min(lo, s), max(hi, e))
    assert sorted(spans) == list(range(161))
    assert all(spans[b][0] >= spans[b - 1][1] - 1e-12 for b in range(1, 161))


def test_kvstores_chain_costs_per_key_latency_that_grows_with_the_gpus():
    # each key pays NCCL's launch twice and 2(p-1) ring hops, whatever its bytes: a loss per
    # step that grows with p and that one GPU (no kvstore in MXNet's Module) does not pay
    loss = {n: _dp(n, gradient_sync="kvstore").iteration_time_s - _dp(n).iteration_time_s
            for n in (1, 4, 8)}
    assert loss[1] == pytest.approx(0.0, abs=1e-12)
    assert 161 * 2 * NCCL_BASE_LATENCY_S < loss[4] < loss[8]
    half = _dp(8, gradient_sync="kvstore", precision="fp16").iteration_time_s - \
        _dp(8, precision="fp16").iteration_time_s
    assert half == pytest.approx(loss[8], rel=0.25)


def test_kvstore_across_machines_is_refused_by_name():
    with pytest.raises(ConfigError, match="within one machine: this cluster has 2 nodes"):
        simulate("resnet20", Cluster.from_node_type("dgx1-v100", 16), "data-parallel",
                 batch=8, gradient_sync="kvstore", replicas="one")
    code = main(["simulate", "--workload", "resnet20", "--batch", "8", "--node-type",
                 "dgx1-v100", "--devices", "16", "--policy", "data-parallel",
                 "--gradient-sync", "kvstore"])
    assert code == 2


def test_horovods_options_with_another_scheme_are_refused():
    with pytest.raises(ConfigError, match="cycle_time_ms set Horovod's background thread"):
        _dp(2, cycle_time_ms=1)
    with pytest.raises(ConfigError, match="fusion_mb"):
        _dp(2, gradient_sync="kvstore", fusion_mb=8)
    with pytest.raises(ConfigError, match="horovod_one_rank"):
        _dp(1, horovod_one_rank="cycle")
    with pytest.raises(ConfigError, match="horovod_enqueue"):
        _dp(2, gradient_sync="caffe-nccl", horovod_enqueue="gpu-ready")


@pytest.mark.parametrize("extra, message", [
    (["--gradient-sync", "nccl"], "option 'gradient_sync': 'nccl' is out of range"),
    (["--gradient-sync", "ddp", "--cycle-time-ms", "2"], "give them with gradient_sync="),
    (["--gradient-sync", "horovod", "--cycle-time-ms", "0"],
     "option 'cycle_time_ms': 0 is out of range"),
    (["--gradients-ready", "later"], "option 'gradients_ready': 'later' is out of range"),
    (["--gradient-sync", "horovod", "--horovod-one-rank", "always"],
     "option 'horovod_one_rank': 'always' is out of range"),
    (["--gradient-sync", "horovod", "--horovod-enqueue", "later"],
     "option 'horovod_enqueue': 'later' is out of range"),
])
def test_bad_sync_options_exit_2_naming_them(capsys, extra, message):
    code = main(["simulate", "--workload", "resnet20", "--batch", "8", "--hardware", "v100",
                 "--devices", "2", "--link", "nvlink2", "--policy", "data-parallel", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_same_result_whatever_the_hash_seed():
    code = ("from simulator import Cluster, simulate\n"
            "for sync, n in (('horovod', 16), ('kvstore', 8)):\n"
            "    r = simulate('resnet20', Cluster.from_node_type('dgx1-v100', n), "
            "'data-parallel', batch=64, gradient_sync=sync, replicas='one')\n"
            "    print(r.to_json())\n"
            "r = simulate('resnet20', Cluster.build('titan-x-pascal', 5, 'pcie3'), "
            "'data-parallel', batch=8, gradient_sync='caffe-p2p', framework_memory='caffe')\n"
            "print(r.to_json())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("0", "1")}
    assert len(outs) == 1
