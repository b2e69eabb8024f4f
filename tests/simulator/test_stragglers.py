"""Stragglers and jitter: per-device speeds and seeded per-op time factors."""
from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, simulate
from simulator.stragglers import DISTRIBUTIONS, Jitter
from simulator.tasks import SimulationError


def _step(**kw):
    cluster = Cluster.build("v100", 4, "nvlink2", **kw)
    return simulate("resnet20", cluster, "data-parallel", batch=32)


def test_a_slow_device_slows_the_synchronous_step_and_is_reported():
    even = _step()
    slow = _step(speeds={"gpu2": 0.5})
    assert "wait_for_slowest_s" not in even.extras
    assert slow.iteration_time_s > even.iteration_time_s
    assert slow.extras["slowest_device"] == "gpu2"
    compute = slow.extras["median_compute_s"]
    assert slow.extras["slowest_compute_s"] == pytest.approx(2 * compute)
    assert slow.extras["wait_for_slowest_s"] == pytest.approx(compute)


def test_same_seed_same_result_byte_for_byte_other_seed_differs():
    jitter = Jitter("lognormal", 0.1, seed=7)
    a, b = _step(jitter=jitter).to_json(), _step(jitter=Jitter("lognormal", 0.1, 7)).to_json()
    assert a == b
    assert _step(jitter=Jitter("lognormal", 0.1, 8)).to_json() != a
    assert _step().to_json() != a


def test_jitter_does_not_depend_on_the_hash_seed():
    code = ("from simulator.stragglers import Jitter; "
            "print(repr(sum(Jitter('lognormal', 0.2, 3).factor(f'gpu{i}', f't{i}') "
            "for i in range(50))))")
    outs = set()
    for hash_seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                capture_output=True, text=True).stdout)
    assert len(outs) == 1


@pytest.mark.parametrize("distribution, spread", [("lognormal", 0.1), ("uniform", 0.2),
                                                  ("exponential", 0.3)])
def test_jitter_factors_have_mean_one_and_the_spread_asked(distribution, spread):
    j = Jitter(distribution, spread, seed=1)
    factors = [j.factor("gpu0", f"op{i}") for i in range(20000)]
    assert statistics.fmean(factors) == pytest.approx(1.0, abs=0.01)
    sd = {"lognormal": math.sqrt(math.exp(spread ** 2) - 1), "uniform": spread / math.sqrt(3),
          "exponential": spread}[distribution]
    assert statistics.pstdev(factors) == pytest.approx(sd, rel=0.05)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DISTRIBUTIONS), st.floats(0, 0.99), st.integers(-2**40, 2**40),
       st.text(max_size=20))
def test_every_factor_is_positive_and_finite(distribution, spread, seed, task):
    f = Jitter(distribution, spread, seed).factor("gpu0", task)
    assert 0 < f < math.inf or (distribution == "exponential" and f >= 0)


def test_unlike_devices_break_symmetry():
    assert Cluster.build("v100", 8, "nvlink2").symmetry_period() == 1
    assert Cluster.build("v100", 8, "nvlink2", speeds={"gpu1": 0.9}).symmetry_period() is None
    assert Cluster.build("v100", 8, "nvlink2",
                         jitter=Jitter("uniform", 0.1)).symmetry_period() is None


@pytest.mark.parametrize("make, message", [
    (lambda: Jitter("gamma", 0.1), "unknown jitter distribution 'gamma'; known: lognormal"),
    (lambda: Jitter("lognormal", -0.1), "spread must be a finite number >= 0"),
    (lambda: Jitter("uniform", 1.5), r"spread must be in \[0, 1\)"),
    (lambda: Jitter("lognormal", float("nan")), "spread must be"),
    (lambda: Jitter.parse("lognormal"), "must be DISTRIBUTION:SPREAD"),
    (lambda: Jitter.parse("lognormal:wide"), "must be DISTRIBUTION:SPREAD"),
    (lambda: Cluster.build("v100", 2, "nvlink2", speeds={"gpu5": 0.5}),
     "speed given for 'gpu5', which is not a device"),
    (lambda: Cluster.build("v100", 2, "nvlink2", speeds={"gpu1": 0}),
     "must be a number from 0.001 to 1000"),
    (lambda: Cluster.build("v100", 2, "nvlink2", speeds={"gpu1": -1.0}), "from 0.001 to 1000"),
    (lambda: Cluster.build("v100", 2, "nvlink2", speeds={"gpu1": "fast"}), "from 0.001"),
    (lambda: Cluster.build("v100", 2, "nvlink2", speeds={"gpu1": 1e-300}), "from 0.001"),
])
def test_bad_straggler_input_is_a_named_error(make, message):
    with pytest.raises(SimulationError, match=message):
        make()


def test_beyond_64_devices_without_symmetry_data_parallel_stays_cheap_and_counts_everyone():
    # alike devices: by class, link-level where the all-reduces are built by class (rings);
    # NCCL's trees, which lenet5's small buckets go on, have no class: flow-level beyond 64
    rings = simulate("lenet5", Cluster.from_node_type("dgx1-v100", 72), "data-parallel",
                     batch=8, algorithm="ring")
    assert (rings.log.meta["fidelity"], rings.log.meta["replicas"]) == ("link", "classes")
    even = simulate("lenet5", Cluster.from_node_type("dgx1-v100", 72), "data-parallel",
                    batch=8)
    assert (even.log.meta["fidelity"], even.log.meta["replicas"]) == ("flow", "classes")
    slow = simulate("lenet5", Cluster.from_node_type("dgx1-v100", 72,
                                                     speeds={"gpu67": 0.5}),
                    "data-parallel", batch=8)
    assert (slow.log.meta["fidelity"], slow.log.meta["replicas"]) == ("flow", "classes")
    assert {t.device for t in slow.log.tasks if t.category == "compute"} == {"gpu0", "gpu67"}
    assert slow.extras["slowest_device"] == "gpu67"
    assert slow.iteration_time_s > even.iteration_time_s
    every = simulate("lenet5", Cluster.from_node_type("dgx1-v100", 72, speeds={"gpu67": 0.5}),
                     "data-parallel", batch=8, collectives="flow", replicas="all")
    assert every.iteration_time_s == slow.iteration_time_s   # one of each kind is exact
    jittery = simulate("lenet5", Cluster.from_node_type("dgx1-v100", 72, jitter=Jitter()),
                       "data-parallel", batch=8)
    assert (jittery.log.meta["fidelity"], jittery.log.meta["replicas"]) == ("flow", "all")
