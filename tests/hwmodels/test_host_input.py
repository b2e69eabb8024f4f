"""The host input pipeline: a loader's per-image CPU cost over the cores a rank gets."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels import host_input
from hwmodels.specs import HardwareError
from simulator.node_types import node_types


def test_synthetic_costs_nothing_and_every_loader_is_known():
    assert host_input.batch_time_s("synthetic", 256, 40, 8) == 0.0
    assert host_input.loader_names()[0] == "synthetic"
    for name in host_input.loader_names()[1:]:
        spec = host_input.loader(name)
        assert 0 < spec.cpu_core_s_per_image < 0.1 and spec.fitted_to.startswith("M")


def test_a_rank_gets_its_share_of_the_node_or_its_threads():
    cost = host_input.loader("dali-cpu").cpu_core_s_per_image
    # 8 ranks on 40 cores: 5 cores each
    assert host_input.batch_time_s("dali-cpu", 256, 40, 8) == pytest.approx(256 * cost / 5)
    # one rank alone may use every core, unless its loader runs fewer threads
    assert host_input.batch_time_s("dali-cpu", 256, 40, 1) == pytest.approx(256 * cost / 40)
    assert host_input.batch_time_s("dali-cpu", 256, 40, 1, loader_threads=4) == \
        pytest.approx(256 * cost / 4)


@given(batch=st.integers(1, 1024), ranks=st.integers(1, 64),
       cores=st.floats(1, 256, allow_nan=False))
def test_more_images_or_more_ranks_never_take_less_time(batch, ranks, cores):
    t = host_input.batch_time_s("tf-data", batch, cores, ranks)
    assert t > 0 and math.isfinite(t)
    assert host_input.batch_time_s("tf-data", batch + 1, cores, ranks) > t
    assert host_input.batch_time_s("tf-data", batch, cores, ranks + 1) > t


@pytest.mark.parametrize("args, message", [
    (("jpeg", 8, 40, 1), "unknown input pipeline 'jpeg'; known: synthetic, dali-cpu"),
    (("dali-cpu", 8, 0, 1), "host_cores must be a number > 0, got 0"),
    (("dali-cpu", 8, 40, 0), "ranks_on_node must be a number > 0, got 0"),
    (("dali-cpu", 8, math.inf, 1), "host_cores must be a number > 0, got inf"),
])
def test_bad_values_are_named(args, message):
    with pytest.raises(HardwareError, match=message.replace("(", r"\(")):
        host_input.batch_time_s(*args)
    with pytest.raises(HardwareError, match="loader_threads must be a number > 0"):
        host_input.batch_time_s("dali-cpu", 8, 40, 1, loader_threads=-1)


def test_every_host_is_a_node_type_of_the_catalog_with_a_source():
    assert set(host_input.host_node_types()) <= set(node_types())
    for node in host_input.host_node_types():
        cpus = host_input.host_cpus(node)
        assert cpus is not None and cpus.threads >= cpus.cores > 0 and cpus.source
    assert host_input.host_cpus("dgx1-v100").cores == 40       # 2 x 20-core E5-2698 v4
    assert host_input.host_cpus("dgx2").cores == 48            # 2 x 24-core Platinum 8168
    assert host_input.host_cpus(None) is None


def test_a_node_types_cpu_table_that_does_not_add_up_is_named(monkeypatch):
    monkeypatch.setattr(host_input, "_node_cpus", lambda: {
        "half": {"model": "x", "cores": 8, "source": "s"},
        "more-cores": {"model": "x", "cores": 16, "threads": 8, "source": "s"}})
    with pytest.raises(HardwareError, match="node 'half': its cpu table needs model, cores, "
                                            "threads and source"):
        host_input.host_cpus("half")
    with pytest.raises(HardwareError, match="node 'more-cores': cpu cores must be > 0 and at "
                                            "most its threads, got 16 and 8"):
        host_input.host_cpus("more-cores")
