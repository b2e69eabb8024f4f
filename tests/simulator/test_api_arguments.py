"""simulate()'s keywords of the wrong type or value: a TypeError or ValueError (ConfigError)
naming the keyword, never an AttributeError from deep inside nor a string taken as true."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.api import simulate
from simulator.cluster import Cluster

ONE = Cluster.build("v100")


@pytest.mark.parametrize("keywords, error, words", [
    ({"batch": "4"}, TypeError, "batch must be a whole number >= 1, got str '4'"),
    ({"batch": 4.0}, TypeError, "batch must be a whole number >= 1, got float 4.0"),
    ({"batch": True}, TypeError, "batch must be a whole number >= 1, got bool True"),
    ({"batch": 0}, ValueError, "batch must be >= 1, got 0"),
    ({"batch": -3}, ValueError, "batch must be >= 1, got -3"),
    ({"precision": 16}, TypeError, "precision must be a name or None, got int 16"),
    ({"precision": "fp8"}, ValueError, "unknown precision 'fp8'"),
    ({"policy": 3}, TypeError, "policy must be a policy name"),
    ({"policy": "data_parallel"}, ValueError, "did you mean 'data-parallel'?"),
    ({"cluster": "v100"}, TypeError, "cluster must be a Cluster (Cluster.build(hardware, "
                                     "devices, link)), got str 'v100'"),
    ({"cluster": None}, TypeError, "cluster must be a Cluster"),
    ({"workload": 5}, TypeError, "workload must be a zoo name or an OpGraph, got int 5"),
    ({"training": "no"}, TypeError, "training must be True or False, got str 'no'"),
    ({"enforce_memory": 0}, TypeError, "enforce_memory must be True or False"),
    ({"cudnn_benchmark": "yes"}, TypeError, "cudnn_benchmark must be True, False or None"),
    ({"optimizer_loop": 1}, TypeError, "optimizer_loop must be True, False or None"),
    ({"workload_options": ["width=2"]}, TypeError, "workload_options must be a dict"),
    ({"memory_format": "channels_last"}, ValueError, "channels_last"),
    ({"optimizer": "lamb"}, ValueError, "optimizer must be one of"),
    ({"framework_memory": 3}, TypeError, "framework_memory must be a name or None"),
    ({"devices": 2}, ValueError, "devices belong to the cluster"),
    ({"hardware": "a100"}, ValueError, "hardware belong to the cluster"),
])
def test_a_bad_keyword_is_named(keywords, error, words):
    arguments = {"workload": "lenet5", "cluster": ONE, "batch": 2, **keywords}
    with pytest.raises(error) as info:
        simulate(**arguments)
    assert words in str(info.value)


@settings(max_examples=25)
@given(st.sampled_from(["batch", "training", "precision", "policy", "cluster", "workload"]),
       st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                 st.text(max_size=5), st.lists(st.integers(), max_size=2)))
def test_any_value_of_a_keyword_is_run_or_named(name, value):
    """Whatever a keyword holds, simulate() runs or raises TypeError/ValueError naming the
    keyword or the value given."""
    arguments = {"workload": "lenet5", "cluster": ONE, "batch": 2, name: value}
    try:
        simulate(**arguments)
    except (TypeError, ValueError) as exc:
        assert name in str(exc) or repr(value) in str(exc), str(exc)
