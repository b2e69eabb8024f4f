"""swap / swap-all: the engine enforces device and host memory, copies overlap compute, the
planner fits the budget and is close to the best plan on a network small enough to search."""
from __future__ import annotations

import bisect
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from simulator import engine, policies
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.policies._offload import (
    OffloadPlan,
    emit_training_step,
    offload_candidates,
    step_ops,
)
from simulator.policies._swap_model import alap_triggers
from simulator.policies.swap import build_step_model
from simulator.tasks import TaskGraph
from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.training import lower_training

GIB = 2 ** 30


def gpu(memory_bytes=None, count=1, host=None):
    spec = catalog.device("titan-x-pascal")
    if memory_bytes:
        spec = spec.with_options(memory_bytes=int(memory_bytes))
    return Cluster.build(spec, count, "pcie3", host=host)


def test_engine_waits_for_a_copy_to_free_memory_then_reports_oom():
    tg = TaskGraph("t")
    tg.new("produce", "c", 1.0, alloc={"d": 60})
    tg.new("swapout", "x", 2.0, deps=["produce"], free={"d": 60}, alloc={"h": 60})
    tg.new("next", "c", 1.0, deps=["produce"], alloc={"d": 60})
    log = engine.run(tg, {"c": 1, "x": 1}, {"d": 100, "h": 100})
    assert log.ok and log.start_s[2] == pytest.approx(3.0)   # waited for the swap-out
    tg.new("more", "x", 1.0, deps=["swapout"], alloc={"h": 60})   # host too small
    log = engine.run(tg, {"c": 1, "x": 1}, {"d": 100, "h": 100})
    assert not log.ok and log.oom.device == "h" and log.oom.task == "more"
    assert log.oom.requested_bytes == 60


def test_swap_fits_where_plain_training_runs_out_and_hides_copies():
    cl = gpu(3 * GIB)
    none = simulate("resnet50", cl, "none", batch=48)
    assert not none.ok and none.oom.device == "gpu0"
    r = simulate("resnet50", cl, "swap", batch=48)
    assert r.ok and r.peak_memory_bytes["gpu0"] <= 3 * GIB
    assert r.extras["offloaded_tensors"] > 0
    unlimited = simulate("resnet50", gpu(), "none", batch=48)
    copies = [(s, e) for t, s, e in zip(r.log.tasks, r.log.start_s, r.log.end_s, strict=True)
              if t.category == "copy"]
    assert copies and {t.resources[0] for t in r.log.tasks if t.category == "copy"} == \
        {"gpu0.d2h", "gpu0.h2d"}
    copy_s = sum(e - s for s, e in copies)
    # most of the PCIe time hides behind compute: the step grows by less than half of it
    assert r.exposed_communication_s["gpu0"] < 0.5 * copy_s
    assert r.iteration_time_s < unlimited.iteration_time_s + 0.5 * copy_s


def test_no_swap_when_it_fits():
    r = simulate("resnet18", gpu(), "swap", batch=8)
    plain = simulate("resnet18", gpu(), "sequential", batch=8)
    assert r.ok and r.extras["offloaded_tensors"] == 0
    assert r.iteration_time_s == pytest.approx(plain.iteration_time_s)


def test_host_memory_is_tracked_and_too_small_a_host_is_an_error():
    host = catalog.host("ddr4-workstation")
    r = simulate("resnet50", gpu(3 * GIB, host=host), "swap", batch=48)
    assert r.ok and r.peak_memory_bytes["host0"] > 0
    tiny = type(host)(**{**host.__dict__, "memory_bytes": 2 ** 20})
    with pytest.raises(ConfigError, match="host memory .* GiB short"):
        simulate("resnet50", gpu(3 * GIB, host=tiny), "swap", batch=48)


def test_budget_below_the_weights_says_by_how_much():
    with pytest.raises(ConfigError, match=r"cannot hold the weights.*no plan fits.*GiB short"):
        simulate("resnet50", gpu(), "swap", batch=4, budget_gib=0.1)
    with pytest.raises(ConfigError, match="exceeds the memory"):
        simulate("resnet50", gpu(), "swap", batch=4, budget_gib=100)


def test_swap_all_offloads_every_conv_input():
    r = simulate("vgg16_cifar", gpu(), "swap-all", batch=64)
    g = lower_training(zoo.get("vgg16_cifar", batch=64))
    convs = [op for op in g.phase("forward") if op.kind == "conv2d"]
    # every conv input but the network's own input (the data loader's buffer, not offloaded)
    assert r.ok and r.extras["offloaded_tensors"] == len(convs) - 1


def test_data_parallel_with_swap_all_reduces_and_scales():
    one = simulate("resnet50", gpu(3 * GIB), "swap", batch=48)
    four = simulate("resnet50", gpu(3 * GIB, count=4), "swap", batch=48)
    assert four.ok and any(t.category == "comm" for t in four.log.tasks)
    speedup = four.throughput_samples_per_s / one.throughput_samples_per_s
    assert 3.0 < speedup <= 4.0 + 1e-9


def _engine_time(g, cluster, plan, cands):
    tg = emit_training_step("x", g, cluster, plan, cands)
    log = engine.run(tg, cluster.resources, cluster.memory_capacity_bytes(),
                     memory_baseline_bytes=tg.meta["resident_bytes"])
    return log.makespan_s if log.ok else float("inf")


def plain_cnn(batch: int, layers: int = 7):
    """Same-size conv+relu layers: saved activations dominate memory, 8 offload candidates."""
    b = GraphBuilder("plain_cnn", input_shape=(32, 32, 32), batch=batch)
    x = b.input()
    for i in range(layers):
        x = b.relu(b.conv2d(x, 32, 3, padding=1, name=f"conv{i}"), name=f"relu{i}")
    x = b.linear(b.flatten(b.adaptive_avgpool(x)), 10, name="fc")
    return b.build()


def test_planner_within_5_percent_of_the_best_plan_found_by_exhaustive_search(monkeypatch):
    # the planner swaps activations; convolution workspaces (which PyTorch drops to 0 when
    # memory is short) would only blur the budget below
    from hwmodels.gpu import GPUModel
    monkeypatch.setattr(GPUModel, "workspace_bytes", lambda self, op: 0)
    fwd = plain_cnn(256)
    g = lower_training(fwd)
    unlimited = simulate(fwd, gpu(), "none")
    # the CUDA context and driver, and 70% of what the step's tensors reserve
    budget = unlimited.log.runtime_bytes["gpu0"] + int(
        0.7 * unlimited.log.peak_reserved_bytes["gpu0"])
    cl = gpu(budget)
    assert not simulate(fwd, cl, "none").ok
    ops = step_ops(g)
    cands = offload_candidates(g, ops)
    assert 4 <= len(cands) <= 10
    model = build_step_model(g, cl.devices[0], cl, ops)
    best = float("inf")
    for k in range(len(cands) + 1):
        for subset in itertools.combinations(list(cands.values()), k):
            for lead in (0.0, 0.5, 1.0, 2.0, 4.0):
                trig = alap_triggers(model, list(subset), lead)
                plan = OffloadPlan(tuple(t.name for t in subset),
                                   {t.name: ops[trig[t.name]].name for t in subset})
                best = min(best, _engine_time(g, cl, plan, cands))
    assert best < float("inf")
    r = simulate(fwd, cl, "swap")
    assert r.ok and r.iteration_time_s <= 1.05 * best


def test_none_is_sequential():
    a = simulate("resnet18", gpu(), "none", batch=4)
    b = simulate("resnet18", gpu(), "sequential", batch=4)
    assert a.iteration_time_s == b.iteration_time_s
    assert "none" in policies.names() and "swap-all" in policies.names()


_PLAIN = lower_training(plain_cnn(256))
_PLAIN_OPS = step_ops(_PLAIN)
_PLAIN_CANDIDATES = list(offload_candidates(_PLAIN, _PLAIN_OPS).values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=len(_PLAIN_CANDIDATES),
                max_size=len(_PLAIN_CANDIDATES)),
       st.sampled_from((0.0, 0.5, 1.0, 2.0, 8.0)))
def test_prefetches_are_issued_in_the_backward_after_their_swap_out(chosen_mask, lead):
    cl = gpu()
    model = build_step_model(_PLAIN, cl.devices[0], cl, _PLAIN_OPS)
    assert _PLAIN_OPS[model.backward_start].phase != "forward"
    assert _PLAIN_OPS[model.backward_start - 1].phase == "forward"
    chosen = list(itertools.compress(_PLAIN_CANDIDATES, chosen_mask))
    for t in chosen:
        at = alap_triggers(model, chosen, lead)[t.name]
        # as vDNN and AccUDNN do: never while the forward still runs (its bytes would take
        # the memory the forward's swap-outs free), and before the first backward reader
        assert max(t.swap_out_after, model.backward_start - 1) <= at < t.first_use


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=len(_PLAIN_CANDIDATES),
                max_size=len(_PLAIN_CANDIDATES)),
       st.sampled_from((0.0, 1.0, 8.0)))
def test_a_prefetch_is_issued_no_earlier_than_the_copy_engine_frees_for_it(chosen_mask, lead):
    """A prefetch's bytes are taken when it is issued (memory is granted in issue order), so
    the copies the backward cannot hide are issued one after another, each once the copies
    issued before it would be done, not all at the backward's start."""
    cl = gpu()
    model = build_step_model(_PLAIN, cl.devices[0], cl, _PLAIN_OPS)
    chosen = sorted(itertools.compress(_PLAIN_CANDIDATES, chosen_mask),
                    key=lambda t: t.first_use)
    trig = alap_triggers(model, chosen, lead)
    starts = model.start_s
    ends = [s + d for s, d in zip(starts, model.duration_s, strict=True)]
    # the earliest the copies issued before it can be done: back to back from the backward
    copies_done = starts[model.backward_start]
    for t in chosen:
        at = trig[t.name]
        ended = bisect.bisect_right(ends, copies_done) - 1   # last op ending by then
        assert at >= ended or at == t.first_use - 1
        copies_done += model.copy_s(t.nbytes)


def test_the_planners_model_predicts_the_engines_step_for_every_plan_it_ranks():
    """Prefetches queue on one stream in the order issued (prefetches_in_issue_order), as the
    model serves them: every plan the model says fits runs in the engine, in its time."""
    from simulator.lowering import held_beyond_tensors_bytes
    from simulator.policies._runs import run_tasks
    from simulator.policies.swap import plan_swaps, prefetches_in_issue_order

    cl = gpu(3 * GIB)
    dev = cl.devices[0]
    g = lower_training(zoo.get("resnet50", batch=48))
    ops = step_ops(g)
    cands = offload_candidates(g, ops)
    model = build_step_model(g, dev, cl, ops)
    plans = plan_swaps(model, cands, 3 * GIB - held_beyond_tensors_bytes(g, dev, ops))
    assert len(plans) >= 4 and all(t for t, _, _ in plans)
    for chosen, trig, figures in plans[:6]:
        plan = OffloadPlan(tuple(t.name for t in sorted(chosen, key=lambda t: t.produced_at)),
                           {t.name: ops[trig[t.name]].name for t in chosen})
        tg = prefetches_in_issue_order(emit_training_step("x", g, cl, plan, cands))
        prefetches = [t for t in tg if t.meta.get("kind") == "prefetch"]
        assert all(b.name in a_next.deps
                   for b, a_next in zip(prefetches[:-1], prefetches[1:], strict=True))
        log = run_tasks(tg, cl, memory_budget_bytes={dev.id: 3 * GIB})
        assert log.ok
        assert log.makespan_s == pytest.approx(figures["predicted_time_s"], rel=0.02)


@pytest.mark.parametrize("policy", ["swap", "swap-all"])
def test_every_update_waits_for_the_last_bucket_as_ddps_step_does(policy):
    """DDP's optimizer.step() runs once backward() has waited for every bucket: no update
    starts before the last bucket's all-reduce has ended on its device, even the updates
    whose gradients went in the first bucket."""
    r = simulate("resnet18", gpu(count=2), policy, batch=8, bucket_mb=2)
    assert r.ok
    buckets = sorted({int(t.name.split(".")[1][1:]) for t in r.log.tasks
                      if t.name.startswith("allreduce.b")})
    assert len(buckets) >= 4
    for device in ("gpu0", "gpu1"):
        spans = [(t, s, e) for t, s, e in zip(r.log.tasks, r.log.start_s, r.log.end_s,
                                               strict=True) if t.device == device]
        last_reduced = max(e for t, _, e in spans
                           if t.name.startswith(f"allreduce.b{buckets[-1]}."))
        first_reduced = max(e for t, _, e in spans if t.name.startswith("allreduce.b0."))
        updates = [s for t, s, _ in spans if t.meta.get("phase") == "update"]
        assert updates and min(updates) >= last_reduced > first_reduced
