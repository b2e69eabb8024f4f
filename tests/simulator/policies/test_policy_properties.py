"""Invariants of the policies' plans on random small networks and clusters (Hypothesis): every
task of a plan runs exactly once, no task starts before its dependencies end, every device's
memory comes back to its resident baseline at the end of the step, and a policy that spreads
one step over devices plans, on one device, exactly the sequential step."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import policies
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import Plan
from simulator.policies._runs import run_tasks
from workloads.builder import GraphBuilder

EPS = 1e-12
LINKS = {"v100": "nvlink2", "skylake-x-6c": "eth10g"}
# policy -> options; pipelines need a partition per device, gpipe a micro-batch count that
# divides the batch (1 does)
TRAINING_POLICIES = {"sequential": {}, "none": {}, "data-parallel": {}, "recompute": {},
                     "gpipe": {"micro_batches": 1}, "pipeline-stale": {"minibatches": 3},
                     "pipedream": {"minibatches": 3}, "hybrid": {"minibatches": 3}}
# (policy, hardware) whose one-device plan is the sequential step: swap with memory to spare
# swaps nothing (it needs a host link: the GPU's PCIe)
ONE_DEVICE_IS_SEQUENTIAL = [(name, hardware) for name in ("none", "data-parallel")
                            for hardware in sorted(LINKS)] + [("swap", "v100")]


@st.composite
def networks(draw):
    """A small CNN: 2-4 conv+ReLU layers of random widths, a pool, a classifier, a loss."""
    b = GraphBuilder("net", input_shape=(3, 8, 8), batch=draw(st.integers(1, 16)))
    x = b.input()
    for width in draw(st.lists(st.integers(2, 24), min_size=2, max_size=4)):
        x = b.relu(b.conv2d(x, width, kernel=3, padding=1))
    b.softmax_xent(b.linear(b.flatten(b.adaptive_avgpool(x)), 10))
    return b.build()


def _cluster(hardware: str, devices: int) -> Cluster:
    return Cluster.build(hardware, devices, LINKS[hardware])


def _plan_and_run(name: str, graph, cluster):
    pol = policies.get(name)
    planned = pol.plan(graph, cluster, True, **pol.resolve(TRAINING_POLICIES[name]))
    tasks = planned.tasks if isinstance(planned, Plan) else planned
    return tasks, run_tasks(tasks, cluster)


@settings(max_examples=25, deadline=None)
@given(networks(), st.sampled_from(sorted(LINKS)), st.integers(2, 3),
       st.sampled_from(sorted(TRAINING_POLICIES)))
def test_every_task_runs_once_after_its_dependencies_and_memory_returns(graph, hardware,
                                                                       devices, name):
    cluster = _cluster(hardware, devices)
    tasks, log = _plan_and_run(name, graph, cluster)
    assert log.ok, log.oom
    ran = [t.name for t in log.tasks]
    assert sorted(ran) == sorted(t.name for t in tasks) and len(set(ran)) == len(ran)
    end = {t.name: e for t, e in zip(log.tasks, log.end_s, strict=True)}
    for t, s in zip(log.tasks, log.start_s, strict=True):
        assert all(s >= end[d] - EPS for d in t.deps), t.name
    for device, baseline in tasks.meta["resident_bytes"].items():
        assert log.memory_timeline[device][-1][1] == baseline, (name, device)


@settings(max_examples=25, deadline=None)
@given(networks(), st.sampled_from(ONE_DEVICE_IS_SEQUENTIAL))
def test_a_multi_device_policy_on_one_device_is_the_sequential_step(graph, case):
    name, hardware = case
    one = _cluster(hardware, 1)
    alone = simulate(graph, one, name)
    sequential = simulate(graph, one, "sequential")
    assert alone.iteration_time_s == sequential.iteration_time_s
    assert alone.peak_memory_bytes == sequential.peak_memory_bytes
