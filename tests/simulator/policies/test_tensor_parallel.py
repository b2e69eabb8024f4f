"""tensor-parallel: the activations' all-reduces Megatron makes (4 per block per step, of
batch x seq x hidden), read off the task graph; tp=1 is data-parallel; the memory it saves
and the time it costs on 8 H100s; its bad options and graphs refused with exit 2."""
from __future__ import annotations

import functools
import re
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, policies, simulate
from simulator.api import load_workload
from simulator.cli import main
from simulator.policies import ConfigError
from simulator.policies._runs import run_tasks
from simulator.policies._tensor_split import split_graph, split_pairs
from workloads.precision import with_precision
from workloads.training import lower_training

GPT2_SMALL = {"depth": 2, "width": 128, "heads": 8, "seq_len": 32, "vocab_size": 256}
LLAMA_SMALL = {"layers": 2, "hidden": 128, "heads": 8, "kv_heads": 4, "intermediate": 256,
               "vocab_size": 256, "seq_len": 32}


@functools.cache
def _small(name: str, batch: int = 2):
    options = GPT2_SMALL if name == "gpt2" else LLAMA_SMALL
    return with_precision(load_workload(name, batch, **options), "amp-bf16")


def _plan(graph, cluster, training: bool = True, **options):
    pol = policies.get("tensor-parallel")
    return pol.plan(graph, cluster, training, **pol.resolve(options))


def _allreduced_bytes(tasks, prefix: str, tp: int) -> dict[str, float]:
    """Bytes each all-reduce named `prefix`... reduced within group 0, from the bytes its ring
    makes device 0 send (2 (p - 1) / p of the tensor)."""
    sent: dict[str, float] = {}
    for t in tasks:
        m = re.match(rf"({re.escape(prefix)}\S*)\.g0\.s\d+\.\d+$", t.name)
        if m and t.meta.get("src") == "gpu0":
            sent[m.group(1)] = sent.get(m.group(1), 0.0) + t.meta["bytes"]
    return {name: b * tp / (2 * (tp - 1)) for name, b in sent.items()}


@pytest.mark.parametrize("name", ["gpt2", "llama"])
@pytest.mark.parametrize("tp", [2, 4])
def test_four_activation_allreduces_per_block_per_step(name, tp):
    graph = _small(name)
    batch, seq, hidden = 2, 32, 128
    tasks = _plan(graph, Cluster.from_node_type("dgx-h100", tp), tp=tp)
    forward = _allreduced_bytes(tasks, "tp.fwd.", tp)
    backward = _allreduced_bytes(tasks, "tp.bwd.", tp)
    one = batch * seq * hidden * 2                      # bf16 activations
    assert len(forward) == len(backward) == 2 * 2       # two per block, two blocks
    assert all(b == pytest.approx(one) for b in [*forward.values(), *backward.values()])
    per_block = (sum(forward.values()) + sum(backward.values())) / 2
    assert per_block == pytest.approx(4 * batch * seq * hidden * 2)
    # every reader of a row-parallel layer's output waits for its all-reduce
    row = next(t for t in tasks if t.name.startswith("gpu0/") and t.name.endswith(
        ("attn.c_proj", "self_attn.o_proj")))
    readers = [t for t in tasks if row.name in t.deps and t.category == "compute"]
    assert readers and all(any(d.startswith("tp.fwd.") for d in t.deps) for t in readers)


@pytest.mark.parametrize("tp", [2, 4])
def test_a_rank_computes_one_tpth_of_the_split_layers(tp):
    graph = _small("llama")
    cluster = Cluster.from_node_type("dgx-h100", 4)
    pairs = split_pairs(graph)
    split = {name for p in pairs for name in (*p.columns, p.row)}

    def layer_flops(tp: int) -> float:
        """FLOPs of gpu0's tasks of the split layers (forward and gradients)."""
        ops = {op.name: op for op in lower_training(split_graph(graph, tp))}
        tasks = _plan(graph, cluster, tp=tp)
        return sum(ops[t.meta["op"]].flops for t in tasks if t.device == "gpu0"
                   and t.category == "compute" and "op" in t.meta
                   and (ops[t.meta["op"]].forward or t.meta["op"]) in split)
    assert layer_flops(tp) * tp == pytest.approx(layer_flops(1))


@pytest.mark.parametrize("devices", [1, 4])
def test_tp_1_is_the_data_parallel_step(devices):
    graph = _small("gpt2")
    cluster = Cluster.from_node_type("dgx-h100", devices)
    tp = simulate(graph, cluster, "tensor-parallel", tp=1)
    dp = simulate(graph, cluster, "data-parallel")
    assert tp.iteration_time_s == dp.iteration_time_s
    assert tp.peak_memory_bytes == dp.peak_memory_bytes
    if devices == 1:
        # the same ops, but not in the same order: data-parallel issues the tied embedding's
        # gradient sum with the backward pass (its bucket needs it), sequential beside the
        # embedding's update; the L2 model reads a kernel's input from L2 when the kernel
        # before wrote it (hwmodels/gpu_l2.py), so the two orders differ by a few kernels' L2
        # hits, and the host, which this small step waits on, issues them at other times
        one = simulate(graph, cluster, "sequential")
        assert tp.iteration_time_s == pytest.approx(one.iteration_time_s, rel=3e-3)
        assert tp.peak_memory_bytes == one.peak_memory_bytes


def test_groups_train_data_parallel_across_nodes_with_a_warning():
    graph = _small("gpt2")
    cluster = Cluster.from_node_type("dgx-h100", 16)
    tasks = _plan(graph, cluster, tp=8)
    assert tasks.meta["tensor_parallel"]["dp"] == 2
    assert any(t.name.startswith("allreduce.r7.") for t in tasks)   # rank 7 of both groups
    with pytest.warns(UserWarning, match="spans nodes"):
        _plan(_small("llama"), Cluster.build("h100", 4, "nvlink4", devices_per_node=2,
                                             inter_node_link="ib400"), tp=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _plan(graph, cluster, tp=8)


def test_inference_all_reduces_the_forward_only():
    tasks = _plan(_small("gpt2"), Cluster.from_node_type("dgx-h100", 2), training=False, tp=2)
    assert _allreduced_bytes(tasks, "tp.fwd.", 2)
    assert not _allreduced_bytes(tasks, "tp.bwd.", 2)


def test_llama2_7b_fits_8_h100s_split_not_replicated():
    cluster = Cluster.from_node_type("dgx-h100", 8)
    args = dict(batch=1, precision="amp-bf16", workload_options={"seq_len": 512})
    split = simulate("llama2_7b", cluster, "tensor-parallel", tp=8, **args)
    replicated = simulate("llama2_7b", cluster, "data-parallel", replicas="one", **args)
    assert split.ok and not replicated.ok
    assert max(split.peak_memory_bytes.values()) < 0.5 * cluster.devices[0].memory_bytes


def test_small_model_trains_slower_split_than_replicated():
    # gpt2_medium (16 heads) on one DGX H100: the all-reduces of the activations cost more
    # than the gradient all-reduce they spare, at the same batch per GPU and overall
    cluster = Cluster.from_node_type("dgx-h100", 8)
    args = dict(precision="amp-bf16", workload_options={"seq_len": 512})
    split = simulate("gpt2_medium", cluster, "tensor-parallel", batch=8, tp=8, **args)
    replicated = simulate("gpt2_medium", cluster, "data-parallel", batch=1, **args)
    assert split.iteration_time_s > replicated.iteration_time_s
    assert (split.extras["tensor_parallel"]["tp"], split.extras["tensor_parallel"]["dp"]) == (8, 1)


@pytest.mark.parametrize("argv, words", [
    (["--workload", "gpt2", "-o", "tp=3"], "3 does not divide the 8 devices"),
    (["--workload", "gpt2", "-o", "tp=8"], "cannot share the 12 key/value heads"),
    (["--workload", "gpt2", "-o", "tp=0"], "'tp'"),
    (["--workload", "resnet18"], "marks no pairs"),
])
def test_bad_options_and_graphs_exit_2_naming_why(argv, words, capsys):
    code = main(["simulate", "--batch", "1", "--hardware", "h100", "--devices", "8",
                 "--node-type", "dgx-h100", "--policy", "tensor-parallel", *argv])
    assert code == 2
    assert words in capsys.readouterr().err


def test_cpus_are_refused():
    cluster = Cluster.build("skylake-x-6c", 2, "eth10g")
    with pytest.raises(Exception, match="runs on GPUs"):
        _plan(_small("gpt2"), cluster, tp=2)
    with pytest.raises(ConfigError, match="does not divide"):
        _plan(_small("gpt2"), Cluster.from_node_type("dgx-h100", 4), tp=3)


def _gathered_bytes(tasks, prefix: str, tp: int) -> dict[str, float]:
    """Bytes of each all-gather or reduce-scatter named `prefix`... within group 0, from the
    (p - 1) / p of the tensor its ring makes device 0 send."""
    return {name: 2 * b for name, b in _allreduced_bytes(tasks, prefix, tp).items()}


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_sequence_parallel_gathers_and_scatters_instead(name):
    graph = _small(name)
    tp, one = 4, 2 * 32 * 128 * 2                     # batch x seq x hidden in bf16
    tasks = _plan(graph, Cluster.from_node_type("dgx-h100", tp), tp=tp,
                  sequence_parallel=True)
    assert not _allreduced_bytes(tasks, "tp.fwd.transformer", tp)
    rows = [p.row for p in split_pairs(graph)]
    for row in rows:
        # forward: gathered before the column layers, scattered after the row layer;
        # backward: the converse, and the input gathered again for the weight gradients
        for kind in ("tp.fwd.ag.", "tp.fwd.rs.", "tp.bwd.rs.", "tp.bwd.ag.", "tp.bwd.ag.input."):
            moved = _gathered_bytes(tasks, kind + row, tp)
            assert moved[kind + row] == pytest.approx(one), (kind, row)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_sequence_parallel_holds_less_and_every_task_runs(name):
    graph = _small(name, batch=4)
    cluster = Cluster.from_node_type("dgx-h100", 4)
    plain = simulate(graph, cluster, "tensor-parallel", tp=4)
    split = simulate(graph, cluster, "tensor-parallel", tp=4, sequence_parallel=True)
    assert plain.ok and split.ok
    assert max(split.peak_memory_bytes.values()) < max(plain.peak_memory_bytes.values())
    for device, baseline in split.log.meta["resident_bytes"].items():
        assert split.log.memory_timeline[device][-1][1] == baseline


def test_sequence_parallel_needs_tp_to_divide_the_sequence():
    vit = load_workload("vit_ti_16", 1, input_size=48)      # 9 patches and the class token
    with pytest.raises(ConfigError, match="does not divide the sequence of 10"):
        _plan(vit, Cluster.from_node_type("dgx-h100", 3), tp=3, sequence_parallel=True)


@pytest.mark.parametrize("vocab_parallel", [True, False])
def test_vocab_parallel_sums_the_lookups_and_the_loss_over_the_shards(vocab_parallel):
    graph = _small("llama")
    tp = 2
    tasks = _plan(graph, Cluster.from_node_type("dgx-h100", tp), tp=tp,
                  vocab_parallel=vocab_parallel)
    moved = _allreduced_bytes(tasks, "tp.vocab.", tp)
    if not vocab_parallel:
        assert not moved
        return
    positions, hidden = 2 * 32, 128
    assert moved == pytest.approx({
        "tp.vocab.fwd.model.embed_tokens": positions * hidden * 4,  # fp32 under autocast
        "tp.vocab.loss": 3 * positions * 4,           # max, target logit, sum of exp
        "tp.vocab.bwd.lm_head": positions * hidden * 2})


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(["gpt2", "llama"]), tp=st.sampled_from([1, 2, 4]),
       groups=st.integers(1, 2), sequence_parallel=st.booleans(),
       vocab_parallel=st.booleans(), training=st.booleans())
def test_every_task_runs_once_after_its_dependencies_and_memory_returns(
        name, tp, groups, sequence_parallel, vocab_parallel, training):
    cluster = Cluster.from_node_type("dgx-h100", tp * groups)
    tasks = _plan(_small(name), cluster, training, tp=tp,
                  sequence_parallel=sequence_parallel, vocab_parallel=vocab_parallel)
    log = run_tasks(tasks, cluster)
    assert log.ok, log.oom
    ran = [t.name for t in log.tasks]
    assert sorted(ran) == sorted(t.name for t in tasks) and len(set(ran)) == len(ran)
    end = {t.name: e for t, e in zip(log.tasks, log.end_s, strict=True)}
    for t, s in zip(log.tasks, log.start_s, strict=True):
        assert all(s >= end[d] - 1e-12 for d in t.deps), t.name
    for device, baseline in tasks.meta["resident_bytes"].items():
        assert log.memory_timeline[device][-1][1] == baseline
