"""Policies stand alone: no module of simulator/policies imports a policy module (one that
registers a policy; what several share lives in underscore modules), and a new policy is one
file plus one registration line (the example policy kept beside this test)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simulator import policies
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import ConfigError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))
import example_policy  # noqa: E402
from test_import_cycles import import_graph  # noqa: E402

PACKAGE = "simulator.policies"


def policy_modules() -> set[str]:
    return set(policies._BUILTIN)


def test_the_builtin_list_names_modules_that_register_policies():
    graph = import_graph(ROOT, ("simulator",))
    for module in policy_modules():
        assert module in graph, module
        assert "@register" in (ROOT / (module.replace(".", "/") + ".py")).read_text(), module


def test_no_policy_module_imports_another():
    graph = import_graph(ROOT, ("simulator",))
    reaching = sorted(f"{a} -> {b}" for a, b in graph.edges
                      if a.startswith(PACKAGE + ".") and b in policy_modules())
    assert reaching == []


def test_the_check_sees_a_policy_importing_another(tmp_path):
    package = tmp_path / "simulator" / "policies"
    package.mkdir(parents=True)
    (tmp_path / "simulator" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import X\n")
    (package / "b.py").write_text("X = 1\n")
    graph = import_graph(tmp_path, ("simulator",))
    assert graph.has_edge("simulator.policies.a", "simulator.policies.b")


def test_a_new_policy_is_one_file_and_one_registration(monkeypatch):
    policies.names()   # the built-ins registered before the registry is set aside
    monkeypatch.setattr(policies, "_REGISTRY", dict(policies._REGISTRY))
    policies.register(example_policy.ReplicatedInference)   # the registration line
    assert "replicated-inference" in policies.names()
    one = simulate("lenet5", Cluster.build("v100", 1, "nvlink2"), "sequential", batch=8,
                   training=False)
    four = simulate("lenet5", Cluster.build("v100", 4, "nvlink2"), "replicated-inference",
                    batch=8, training=False)
    assert four.iteration_time_s == one.iteration_time_s
    assert four.throughput_samples_per_s == pytest.approx(4 * one.throughput_samples_per_s)
    assert four.extras["replicas"] == 4
    with pytest.raises(ConfigError, match="inference only"):
        simulate("lenet5", Cluster.build("v100", 4, "nvlink2"), "replicated-inference", batch=8)
    with pytest.raises(ConfigError, match="has no option 'replica'"):
        simulate("lenet5", Cluster.build("v100", 4, "nvlink2"), "replicated-inference", batch=8,
                 training=False, replica=2)


def test_the_iteration_time_a_policy_returns_from_finish_is_the_results(monkeypatch):
    policies.names()
    monkeypatch.setattr(policies, "_REGISTRY", dict(policies._REGISTRY))

    class HalfPeriod(example_policy.ReplicatedInference):
        """The example policy, claiming a steady period of half its makespan."""
        def __init__(self) -> None:
            super().__init__()
            self.name = "half-period"

        def finish(self, result, plan) -> float:
            super().finish(result, plan)
            return result.makespan_s / 2

    policies.register(HalfPeriod)
    run = simulate("lenet5", Cluster.build("v100", 2, "nvlink2"), "half-period", batch=8,
                   training=False)
    assert run.iteration_time_s == run.makespan_s / 2
    assert run.throughput_samples_per_s == pytest.approx(2 * run.samples_per_iteration
                                                         / run.makespan_s)


def test_no_policy_module_writes_the_results_iteration_time_itself():
    writers = sorted(p.name for p in (ROOT / "simulator" / "policies").glob("*.py")
                     if "iteration_time_override_s" in p.read_text())
    assert writers == []


def test_only_the_shared_helper_runs_the_engine():
    callers = sorted(p.name for p in (ROOT / "simulator" / "policies").glob("*.py")
                     if "engine.run(" in p.read_text() and p.name != "_runs.py")
    assert callers == []


def test_every_module_without_an_underscore_is_a_builtin_policy():
    public = {f"{PACKAGE}.{p.stem}" for p in (ROOT / "simulator" / "policies").glob("*.py")
              if not p.stem.startswith("_")}
    assert public == policy_modules()
