"""What `dnnsim simulate` prints for people, and the Result API behind it: figures per
iteration with units, the cluster's shape, each technique's trade-off, a short repr."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import Cluster, simulate
from simulator.cli import main
from simulator.report import cluster_line, extra_value, seconds, sig, summary_lines

PIPE = ["simulate", "--workload", "resnet20", "--batch", "32", "--hardware", "titan-xp",
        "--devices", "2", "--link", "pcie3", "--policy", "pipeline-stale", "--registers", "7"]


@pytest.fixture(scope="module")
def pipelined():
    return simulate("resnet20", Cluster.build("titan-xp", 2, "pcie3"), "pipeline-stale",
                    batch=32, registers=7)


def test_extras_carry_units_and_four_significant_digits():
    assert extra_value("fill_s", 0.012119779581131248) == "12.12 ms"
    assert extra_value("latency_s", 2.5e-5) == "25.00 us"
    assert extra_value("subnets_per_s", 408.2421) == "408.2 /s"   # a rate, not seconds
    assert extra_value("gradient_bytes_merged", 2832232.0) == "2.701 MiB"
    assert extra_value("step_flops", 1.67e11) == "167.0 GFLOPs"
    assert extra_value("bubble_fraction", [0.38, 0.175]) == "[38.0 %, 17.5 %]"
    assert extra_value("partitions", 2) == "2"
    assert extra_value("placement", "auto") == "auto"
    assert extra_value("memory", {"gpu0": {}}) is None       # a table: in its own section
    assert sig(1.2345678) == "1.235" and sig(123456.7) == "123,457"
    assert seconds(-0.005569) == "-5.569 ms"


def test_cluster_line_shows_nodes_and_both_networks():
    c = {"device": "v100", "devices": 64, "devices_per_node": 8, "link": "nvlink2",
         "topology": "switch", "inter_node_link": "ib100", "host_link": "pcie3"}
    assert cluster_line(c) == ("64 x v100 in 8 nodes of 8: nvlink2 (switch) within a node, "
                               "ib100 between nodes; host link pcie3")


def test_cluster_line_names_node_types_and_the_network_between_nodes():
    c = {"device": "v100", "devices": 16, "devices_per_node": 8, "link": "nvlink2-link",
         "topology": "dgx1-cube-mesh", "inter_node_link": "ib100", "host_link": "pcie3",
         "node_type": "dgx1-v100", "network": "fat-tree", "oversubscription": 2.0}
    assert cluster_line(c) == ("16 x v100 in 2 dgx1-v100 nodes of 8: nvlink2-link "
                               "(dgx1-cube-mesh) within a node, ib100 fat-tree oversubscribed "
                               "2:1 between nodes; host link pcie3")


def test_pipeline_summary_is_per_iteration_with_staleness_and_stage_memory(pipelined):
    text = "\n".join(summary_lines(pipelined))
    s = pipelined.summary()
    assert s["iterations_simulated"] > 1
    total = max(pipelined.exposed_communication_s.values())
    assert s["exposed_communication_s"] == pytest.approx(total / s["iterations_simulated"])
    assert s["exposed_communication_s"] <= s["iteration_time_s"]
    assert "per iteration (mean of" in text
    assert "staleness" in text and "peak memory" in text
    stages = [line.split() for line in text.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert [row[1] for row in stages] == ["gpu0", "gpu1"]
    assert [int(row[2]) for row in stages] == s["extras"]["staleness_minibatches"]
    drain = s["extras"]["drain_s"]
    assert f"drain {seconds(drain)}:" in text     # explained, whatever its sign
    assert "drain_s" not in text


def test_efficiency_flag_prints_speedup_over_one_device(capsys):
    assert main([*PIPE, "--efficiency"]) == 0
    out = capsys.readouterr().out
    speedup = float(out.split("speedup")[1].split("x")[0])
    efficiency = float(out.split("scaling efficiency")[1].split("%")[0])
    assert efficiency == pytest.approx(speedup / 2 * 100, rel=0.01)


def test_json_carries_link_utilisation_per_network_resource(capsys):
    assert main(["simulate", "--workload", "lenet5", "--batch", "8", "--hardware", "v100",
                 "--devices", "2", "--link", "nvlink2", "--policy", "data-parallel",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    util = doc["link_utilisation"]
    assert util and set(util) == set(doc["link_bytes"])
    assert all(0 < u <= 1 for u in util.values())


def test_result_figures_are_properties_and_repr_is_short(pipelined):
    for name in ("iteration_time_s", "busy_s", "utilisation", "link_bytes",
                 "exposed_communication_s", "exposed_communication_per_iteration_s",
                 "link_utilisation", "peak_memory_bytes"):
        assert not callable(getattr(pipelined, name)), name
    text = repr(pipelined)
    assert len(text) < 200 and text.startswith("Result(pipeline-stale: ")
    assert "ms" in text and "samples/s" in text


def test_efficiency_says_when_one_device_cannot_run_the_batch(capsys):
    assert main(["simulate", "--workload", "resnet50", "--batch", "64", "--hardware", "v100",
                 "--hardware-option", "memory_bytes=4e9", "--devices", "2", "--link", "nvlink2",
                 "--policy", "swap", "--efficiency"]) == 0
    out = capsys.readouterr().out   # swapping fits 4 GB; the sequential baseline does not
    assert "speedup                none: one device runs out of memory at this batch" in out
    assert "scaling efficiency" not in out


@given(st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False))
def test_sig_keeps_four_significant_digits(value):
    text = sig(value)
    assert abs(float(text.replace(",", "")) - value) <= 5e-4 * value + 0.5 * (value >= 1e4)
    assert len(text) <= 20     # an exponent past everyday magnitudes, not hundreds of digits
    shown = seconds(value)
    number, unit = shown.split()
    scale = {"s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    assert float(number.replace(",", "")) * scale == pytest.approx(value, rel=6e-4, abs=5e-7)
