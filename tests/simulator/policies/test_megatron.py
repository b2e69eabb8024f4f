"""megatron: with one stage it is tensor-parallel; with one GPU per stage its schedule is
pipedream's 1F1B; the 1F1B bubble on equal stages; the micro-batches in flight and the memory
they hold; a model too big for the part ends out of memory; bad options exit 2."""
from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.specs import LinkSpec
from simulator import Cluster, simulate
from simulator.api import load_workload
from simulator.cli import main
from simulator.policies._pipeline_report import task_times
from simulator.policies._pipeline_schedules import one_f_one_b_sequences
from workloads.precision import with_precision

SMALL = {"depth": 4, "width": 128, "heads": 8, "seq_len": 32, "vocab_size": 256}
# blocks whose compute dwarfs the embedding, the output layer and the sends between stages
EVEN = {"width": 4096, "heads": 32, "seq_len": 2048, "max_positions": 2048, "vocab_size": 64}


@functools.cache
def _gpt(batch: int = 2, **options):
    return with_precision(load_workload("gpt2", batch, **{**SMALL, **options}), "amp-bf16")


def _before_update_s(result) -> float:
    """When the step's last task other than the optimizer's ends (the optimizers differ)."""
    return max(e for t, e in zip(result.log.tasks, result.log.end_s, strict=True)
               if not t.name.endswith(".update") and t.category != "wait")


@pytest.mark.parametrize("tp,devices", [(1, 2), (1, 4), (2, 2), (2, 4), (4, 8)])
def test_one_stage_is_tensor_parallel(tp, devices):
    graph = _gpt()
    cluster = Cluster.from_node_type("dgx-h100", devices)
    mega = simulate(graph, cluster, "megatron", tp=tp, pp=1, micro_batches=1,
                    grad_sync="overlap")
    tensor = simulate(graph, cluster, "tensor-parallel", tp=tp, collectives="flow")
    assert mega.samples_per_iteration == tensor.samples_per_iteration
    # megatron's backward starts once the forward, loss included, is done; tensor-parallel
    # lets the loss's gradient run while the loss waits for the all-reduce of the vocabulary
    # shards' sums: at most that all-reduce and the loss apart
    loss_sums = sum(t.duration_s for t in mega.log.tasks if "tp.vocab.loss" in t.name)
    assert (tp > 1) == (loss_sums > 0)
    loss = mega.log.tasks[[t.name for t in mega.log.tasks].index("mb0/p0/loss")].duration_s
    gap = _before_update_s(mega) - _before_update_s(tensor)
    assert -1e-12 <= gap <= (loss_sums + loss if tp > 1 else 1e-12)


def _unit_orders(result, k: int) -> list[list[tuple[str, int]]]:
    """Each partition's units in the order they start."""
    starts = {(t.meta["partition"], t.meta["unit"], t.meta["mb"]): s
              for t, s in zip(result.log.tasks, result.log.start_s, strict=True)
              if t.category == "wait" and t.name.endswith((".start",))}
    return [[(u, mb) for (q, u, mb), _ in sorted(starts.items(), key=lambda kv: kv[1])
             if q == p] for p in range(k)]


@pytest.mark.parametrize("pp,m", [(2, 4), (4, 6)])
def test_one_gpu_per_stage_runs_pipedreams_1f1b_order(pp, m):
    graph = _gpt()
    cluster = Cluster.from_node_type("dgx-h100", pp)
    mega = simulate(graph, cluster, "megatron", tp=1, pp=pp, micro_batches=m)
    dream = simulate(graph, cluster, "pipedream", partitions=pp, minibatches=m)
    expected = [list(seq) for seq in one_f_one_b_sequences(pp, m)]
    assert _unit_orders(mega, pp) == expected
    assert _unit_orders(dream, pp) == expected
    # the first stage holds pp micro-batches at once, the last one
    assert mega.extras["megatron"]["memory"]["gpu0"]["in_flight_micro_batches"] == min(pp, m)


# a link that takes no time: the formula's pipeline, whose sends are free
FREE_LINK = LinkSpec("free", 1e18, 0.0, "a test's ideal link")


@settings(max_examples=10, deadline=None)
@given(pp=st.integers(2, 4), m=st.integers(1, 8), schedule=st.sampled_from(["1f1b", "gpipe"]))
def test_1f1b_bubble_on_equal_stages(pp, m, schedule):
    graph = _gpt(4, depth=pp, **EVEN)
    cluster = Cluster.build("h100", pp, link=FREE_LINK)
    result = simulate(graph, cluster, "megatron", tp=1, pp=pp, micro_batches=m,
                      schedule=schedule)
    bubble = result.extras["megatron"]["bubble_fraction"]
    assert len(bubble) == pp
    # the stages are one block each, the first with the embeddings (elementwise ops on the
    # residual stream: about 4% of a block here), the last with the output layer: the bubble
    # is the formula's within that imbalance of their compute, and 1 % for the host's start
    # on each stage's first micro-batch
    busy = [1 - b for b in bubble]
    imbalance = (max(busy) - min(busy)) / min(busy)
    assert imbalance < 0.05
    for b in bubble:
        assert abs(b - (pp - 1) / (m + pp - 1)) <= imbalance + 0.01


def test_first_stage_memory_grows_with_the_micro_batches_in_flight():
    graph = _gpt()
    cluster = Cluster.from_node_type("dgx-h100", 4)
    out = {}
    for schedule in ("1f1b", "gpipe"):
        for m in (4, 8):
            r = simulate(graph, cluster, "megatron", tp=1, pp=4, micro_batches=m,
                         schedule=schedule)
            out[schedule, m] = r.extras["megatron"]["memory"]["gpu0"]
    for (schedule, m), mem in out.items():
        held = mem["peak_bytes"] - mem["resident_bytes"]
        assert mem["in_flight_micro_batches"] == (4 if schedule == "1f1b" else m)
        assert held >= mem["in_flight_micro_batches"] * mem["activation_bytes_per_micro_batch"]
    # 1F1B's first stage holds pp micro-batches however many there are; GPipe's all of them
    assert out["1f1b", 8]["peak_bytes"] == out["1f1b", 4]["peak_bytes"]
    assert out["gpipe", 8]["peak_bytes"] > out["gpipe", 4]["peak_bytes"]


def test_recomputation_keeps_less_and_takes_longer():
    graph = _gpt()
    cluster = Cluster.from_node_type("dgx-h100", 8)
    plain = simulate(graph, cluster, "megatron", tp=2, pp=2, micro_batches=4)
    full = simulate(graph, cluster, "megatron", tp=2, pp=2, micro_batches=4, recompute="full")
    def kept(r):
        return r.extras["megatron"]["memory"]["gpu0"]["activation_bytes_per_micro_batch"]
    assert kept(full) < kept(plain)
    assert full.iteration_time_s > plain.iteration_time_s
    # the GPUs' FLOPs count the recomputed forwards, the model's do not
    for r, more in ((plain, False), (full, True)):
        mega = r.extras["megatron"]
        assert (mega["hardware_tflops_per_gpu"] > mega["achieved_tflops_per_gpu"]) == more
    # the same gradients are all-reduced
    def reduced(r):
        return sorted(t.meta["bytes"] for t in r.log.tasks if t.name.startswith("dp."))
    assert reduced(full) == reduced(plain) and reduced(plain)
    # the recomputed forwards' all-reduces are made too
    names = {t.name for t in full.log.tasks}
    assert any("/tp.rec." in n for n in names)


def test_a_model_too_big_for_the_part_runs_out_of_memory():
    # about 7.9B parameters at 18 bytes each: 142 GB on one H100, a quarter on four
    graph = _gpt(1, depth=4, width=12288, heads=96, seq_len=128, vocab_size=50257)
    cluster = Cluster.from_node_type("dgx-h100", 4)
    assert simulate(graph, cluster, "megatron", tp=1, pp=1, micro_batches=1,
                    ).oom is not None
    assert simulate(graph, cluster, "megatron", tp=4, pp=1, micro_batches=1).oom is None


@pytest.mark.parametrize("options,devices,words", [
    (["tp=3"], 6, ["megatron", "'tp'", "3", "8 key/value heads"]),
    (["tp=2", "pp=3"], 8, ["2 x 3", "8 devices", "not whole"]),
    (["tp=1", "pp=8"], 8, ["'pp'", "8 stages", "4 transformer blocks"]),
    (["tp=1", "pp=3"], 3, ["'pp'", "3 stages", "4 transformer blocks", "evenly"]),
    (["schedule=zigzag"], 2, ["schedule", "1f1b or gpipe"]),
    (["recompute=some"], 2, ["recompute", "none or full"]),
])
def test_bad_options_exit_2(options, devices, words, capsys):
    args = ["simulate", "--workload", "gpt2", "--batch", "1", "--hardware", "h100",
            "--node-type", "dgx-h100", "--devices", str(devices), "--policy", "megatron"]
    for opt in ("depth=4", "width=128", "heads=8", "seq_len=32", "vocab_size=256"):
        args += ["--workload-option", opt]
    for opt in options:
        args += ["-o", opt]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_tp_defaults_to_a_node_or_what_divides_the_heads():
    cluster = Cluster.from_node_type("dgx-h100", 8)
    r = simulate(_gpt(), cluster, "megatron", micro_batches=1)
    assert r.extras["megatron"]["tp"] == 8
    twelve = _gpt(2, width=192, heads=12)
    assert simulate(twelve, cluster, "megatron", micro_batches=1).extras["megatron"]["tp"] == 4


def test_a_network_without_transformer_blocks_is_refused(capsys):
    args = ["simulate", "--workload", "resnet18", "--batch", "1", "--hardware", "h100",
            "--node-type", "dgx-h100", "--devices", "8", "--policy", "megatron"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "'megatron'" in err and "resnet18" in err


def test_times_are_read_back_per_stage():
    graph = _gpt()
    r = simulate(graph, Cluster.from_node_type("dgx-h100", 8), "megatron", tp=2, pp=2)
    mega = r.extras["megatron"]
    assert (mega["tp"], mega["pp"], mega["dp"], mega["micro_batches"]) == (2, 2, 2, 8)
    assert mega["global_batch"] == 2 * 8 * 2
    assert r.samples_per_iteration == mega["global_batch"]
    # Megatron's order: stage 1's representative is rank dp * tp = 4
    assert mega["simulated_ranks"] == ["gpu0", "gpu4"]
    times = task_times(r)
    assert all(mega["pipeline_flush_s"] <= end for _, end in
               [times[f"step/p{p}/U.done"] for p in range(2)])
    assert set(mega["exposed_communication_s"]) <= {
        "tensor_parallel", "pipeline_p2p", "data_parallel", "embedding"}
    assert 0 < mega["model_flops_utilisation"] < 1


@pytest.mark.parametrize("name,layers,hidden", [("gpt2", 12, 768), ("gpt2_xl", 48, 1600)])
def test_model_flops_are_narayanan_et_als_formula(name, layers, hidden):
    """The MFU's FLOPs (the op graph's, model_flops.py) against Narayanan et al.'s count per
    token without recomputation, 72 l h^2 (1 + s / 6h + V / 12 l h): the linear layers'
    6N, the attention's products and the logits."""
    from simulator.model_flops import model_flops_per_sample
    graph = with_precision(load_workload(name, 1), "bf16")
    seq, vocab = 1024, 50257
    formula = 72 * layers * hidden ** 2 * (1 + seq / (6 * hidden)
                                           + vocab / (12 * layers * hidden))
    assert model_flops_per_sample(graph, True) / seq == pytest.approx(formula, rel=0.005)
