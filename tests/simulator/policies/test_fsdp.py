"""fsdp: the state each ZeRO stage keeps per device (the ZeRO paper's formulas), the bytes its
collectives move against data-parallel's, its units, and its bad options."""
from __future__ import annotations

import functools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, policies, simulate
from simulator.api import load_workload
from simulator.cli import main
from simulator.lowering import resident_bytes
from simulator.policies._sharding import (
    ROOT,
    flat_parameter_updates,
    resident_state_bytes,
    units_of,
    wrap_unit,
)
from workloads.precision import with_precision
from workloads.training import OPTIMIZER_STATE_PER_PARAM, lower_training

# a two-layer Llama small enough to run in a second on a few devices
TINY_LLAMA = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "intermediate": 128,
              "vocab_size": 256, "seq_len": 16}
# eight wider layers: the training state outweighs the activations, as in a real model
SMALL_LLAMA = {**TINY_LLAMA, "layers": 8, "hidden": 256, "intermediate": 1024,
               "vocab_size": 512}


@functools.cache
def _tiny(precision: str, optimizer: str):
    graph = with_precision(load_workload("llama", 2, **TINY_LLAMA), precision)
    return lower_training(graph, optimizer)


def test_units_are_the_numbered_blocks_and_the_rest_is_the_root():
    assert wrap_unit("model.layers.4.mlp.up_proj") == "model.layers.4"
    assert wrap_unit("layer1.0.conv1") == "layer1.0"
    assert wrap_unit("transformer.h.11.attn.c_attn") == "transformer.h.11"
    assert wrap_unit("lm_head") == ROOT
    assert wrap_unit("features.0") == ROOT          # a numbered op is no block of its own
    units = units_of(_tiny("fp32", "adam"))
    assert list(units) == [ROOT, "model.layers.0", "model.layers.1"]


@settings(max_examples=30, deadline=None)
@given(precision=st.sampled_from(["fp32", "amp-bf16", "amp-fp16", "bf16"]),
       optimizer=st.sampled_from(sorted(OPTIMIZER_STATE_PER_PARAM)),
       ranks=st.integers(1, 64))
def test_resident_state_follows_the_zero_paper(precision, optimizer, ranks):
    g = _tiny(precision, optimizer)
    units = units_of(g)
    psi = sum(op.params for op in g if op.phase == "forward")
    state = OPTIMIZER_STATE_PER_PARAM[optimizer]
    whole = resident_state_bytes(units, 1, 1)
    # the baseline is what data-parallel keeps: the project's weights, gradients and state
    assert whole.total == resident_bytes(g, True)
    if precision.startswith("amp-"):   # 2 Psi half params, 2 Psi half grads, K Psi in FP32
        assert (whole.params, whole.grads) == (2 * psi, 2 * psi)
        assert whole.optimizer == 4 * psi * (1 + state)      # Adam: K = 12
    p, gr, k = whole.params, whole.grads, whole.optimizer
    formulas = {1: p + gr + k / ranks, 2: p + (gr + k) / ranks, 3: (p + gr + k) / ranks}
    for stage, formula in formulas.items():
        got = resident_state_bytes(units, stage, ranks).total
        # each unit's shard padded up to a whole 1/N of each of its three parts
        assert formula <= got <= formula + 3 * len(units)
        more = resident_state_bytes(units, stage, ranks + 1).total
        assert more <= got if stage > 1 or k else more == got


def test_adam_amp_is_the_papers_16_psi_split():
    g = _tiny("amp-bf16", "adam")
    units = units_of(g)
    psi = sum(op.params for op in g if op.phase == "forward")
    n = 8
    assert resident_state_bytes(units, 1, 1).total == 16 * psi
    assert resident_state_bytes(units, 1, n).total == pytest.approx(4 * psi + 12 * psi / n,
                                                                     abs=3 * len(units))
    assert resident_state_bytes(units, 2, n).total == pytest.approx(2 * psi + 14 * psi / n,
                                                                     abs=3 * len(units))
    assert resident_state_bytes(units, 3, n).total == pytest.approx(16 * psi / n,
                                                                     abs=3 * len(units))


def _run(policy, devices=4, precision="fp32", sizes=None, **options):
    cluster = Cluster.build("h100", devices, link="nvlink4")
    return simulate(load_workload("llama", 2, **(sizes or TINY_LLAMA)), cluster, policy,
                    precision=precision, **options)


def _moved(result) -> float:
    return sum(result.link_bytes.values())


def test_zero_1_and_2_move_an_all_reduce_and_zero_3_half_as_much_again():
    ddp = _run("data-parallel")
    units = units_of(_tiny("fp32", "sgd-momentum"))
    psi = sum(u.params for u in units.values())
    root = units[ROOT].params
    for stage in (1, 2):
        assert _moved(_run("fsdp", stage=stage)) == pytest.approx(_moved(ddp), rel=1e-9)
    # each block's parameters gathered twice and its gradients reduce-scattered (3 Psi); the
    # root kept gathered from its forward to its backward (2); an all-reduce is 2 Psi
    zero3 = _moved(_run("fsdp", stage=3))
    assert zero3 / _moved(ddp) == pytest.approx((3 * (psi - root) + 2 * root) / (2 * psi),
                                                rel=1e-9)


def test_sharding_holds_less_and_runs_about_as_fast():
    ddp = _run("data-parallel", devices=8, sizes=SMALL_LLAMA)
    runs = {stage: _run("fsdp", devices=8, sizes=SMALL_LLAMA, stage=stage)
            for stage in (1, 2, 3)}
    peak = {s: run.peak_memory_bytes["gpu0"] for s, run in runs.items()}
    # stage 2 holds a bucket's gradients until reduced: more than stage 1 where the
    # buckets are about as large as the gradients
    assert ddp.peak_memory_bytes["gpu0"] > max(peak[1], peak[2]) > peak[3]
    for run in runs.values():
        assert run.log.ok
        assert run.makespan_s == pytest.approx(ddp.makespan_s, rel=0.25)


def test_resnet50_on_a_dgx_h100_steps_within_a_few_percent_of_ddp():
    # the same traffic (stages 1, 2) or half as much again hidden behind the backward pass (3)
    cluster = Cluster.from_node_type("dgx-h100", 8, device="h100")
    ddp = simulate("resnet50", cluster, "data-parallel", batch=32).makespan_s
    for stage in (1, 2, 3):
        sharded = simulate("resnet50", cluster, "fsdp", batch=32, stage=stage).makespan_s
        assert sharded == pytest.approx(ddp, rel=0.04)


def test_without_prefetch_every_all_gather_waits_for_the_compute():
    ahead, waits = (_run("fsdp", devices=8, prefetch=p) for p in (True, False))
    assert waits.makespan_s > ahead.makespan_s
    assert waits.exposed_communication_s["gpu0"] > ahead.exposed_communication_s["gpu0"]


def test_hybrid_shard_keeps_a_groups_share_and_all_reduces_across():
    full, hybrid = (_run("fsdp", devices=8, shard_group=g) for g in (8, 4))
    state = hybrid.log.meta["fsdp"]["state_bytes"]
    units = units_of(_tiny("fp32", "sgd-momentum"))
    assert sum(state.values()) == resident_state_bytes(units, 3, 4).total
    assert hybrid.peak_memory_bytes["gpu0"] > full.peak_memory_bytes["gpu0"]
    kinds = {t.meta.get("collective") for t in hybrid.log.tasks if t.category == "comm"}
    assert "ring" in kinds and any(t.name.startswith("fsdp.rs.") and ".x" in t.name
                                   for t in hybrid.log.tasks)


def test_llama2_7b_fits_8_h100s_sharded_not_replicated():
    cluster = Cluster.from_node_type("dgx-h100", 8, device="h100")
    run = functools.partial(simulate, "llama2_7b", cluster, batch=1, precision="amp-bf16",
                            replicas="one")
    ddp, fsdp = run("data-parallel"), run("fsdp")
    assert ddp.log.oom is not None
    assert fsdp.log.ok
    assert fsdp.peak_memory_bytes["gpu0"] < cluster.devices[0].memory_bytes


@pytest.mark.parametrize("argv, words", [
    (["-o", "stage=4"], "stage"),
    (["-o", "shard_group=3"], "does not divide"),
    (["-o", "optimizer=lamb"], "optimizer"),
])
def test_bad_options_exit_2_naming_them(argv, words, capsys, tmp_path):
    code = main(["simulate", "--workload", "resnet18", "--batch", "2", "--hardware", "h100",
                 "--devices", "8", "--node-type", "dgx-h100", "--policy", "fsdp", *argv])
    assert code == 2
    assert words in capsys.readouterr().err


def test_registered_training_only():
    policy = policies.get("fsdp")
    assert policy.training_only
    assert policy.resolve({})["stage"] == 3
    assert math.isfinite(_run("fsdp", devices=2).makespan_s)


def _most_blocks_unsharded(result, device="gpu0") -> int:
    """The most blocks whose parameters are gathered on `device` at once, from the run's
    unshard (alloc) and reshard (free) tasks."""
    log = result.log
    events = []
    for task, start, end in zip(log.tasks, log.start_s, log.end_s, strict=True):
        what = task.meta.get("fsdp", "") if task.meta else ""
        if task.device != device or what.endswith(".grads") or "root" in what:
            continue
        if what.startswith("unshard."):
            events.append((start, 1))
        elif what.startswith("reshard."):
            events.append((end, -1))
    live = most = 0
    for _, step in sorted(events):
        live += step
        most = max(most, live)
    return most


@pytest.mark.parametrize("prefetch, most", [(True, 2), (False, 1)])
def test_prefetch_holds_the_current_block_and_the_next(prefetch, most):
    assert _most_blocks_unsharded(_run("fsdp", sizes=SMALL_LLAMA, prefetch=prefetch)) == most


def _update_tasks(result, device="gpu0"):
    return [t for t in result.log.tasks if t.device == device
            and t.meta.get("phase") == "update"]


def test_stage_3_steps_one_flat_parameter_per_unit_and_stages_1_2_each_layer():
    """FSDP's FlatParameter: at stage 3 the optimizer steps one tensor per unit, over all of
    the unit's values, after all of its gradients; stages 1 and 2 step the layers' tensors."""
    train = _tiny("fp32", "sgd-momentum")
    units = units_of(train)
    flat = flat_parameter_updates(train)
    steps = [op for op in flat.topo() if op.phase == "update"]
    assert len(steps) == len(units)
    assert {op.name.removeprefix("fsdp.flat_update.") for op in steps} == set(units)
    assert all(op.attrs["tensors"] == 1 and op.attrs["step_tensors"] == len(units)
               for op in steps)
    layers = [op for op in train.topo() if op.phase == "update"]
    assert sum(op.params for op in steps) == sum(op.params for op in layers)
    assert sorted(t for op in steps for t in op.inputs) == sorted(
        t for op in layers for t in op.inputs)
    assert len(flat) == len(train) - len(layers) + len(steps)
    zero3, zero2 = _run("fsdp", stage=3), _run("fsdp", stage=2)
    assert len(_update_tasks(zero3)) == len(units)
    assert len(_update_tasks(zero2)) == len(layers) > len(units)
    # after every gradient of the unit
    inputs = {f"gpu0/{op.name}": {f"gpu0/{t}" for t in op.inputs} for op in steps}
    assert all(inputs[t.name] <= set(t.deps) for t in _update_tasks(zero3))
