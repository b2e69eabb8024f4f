"""memory_format as a scenario setting: the API keyword, the scenario field and the CLI flag
put the activations in NCHW or NHWC (workloads/memory_format.py), which changes what cuDNN
runs on a GPU (hwmodels/gpu_layout.py); a format a device is not modelled in, or an unknown
one, is refused by name."""
from __future__ import annotations

import json

import pytest

from simulator import Cluster
from simulator.api import simulate
from simulator.cli import main
from simulator.policies import ConfigError
from workloads import zoo
from workloads.memory_format import graph_memory_format


def test_channels_last_removes_the_transposes_of_amp_and_keeps_the_callers_graph():
    graph = zoo.get("resnet18", batch=32)
    cluster = Cluster.build("v100", 1)
    nchw = simulate(graph, cluster, precision="amp-fp16")
    nhwc = simulate(graph, cluster, precision="amp-fp16", memory_format="nhwc")
    assert graph_memory_format(graph) == "nchw" and "memory_format" not in graph.meta
    assert nhwc.iteration_time_s < nchw.iteration_time_s
    assert simulate(graph, cluster, precision="amp-fp16", memory_format="nchw") \
        .iteration_time_s == nchw.iteration_time_s      # nchw is the default


def test_a_cpu_takes_the_default_format_only():
    with pytest.raises(ConfigError, match="memory format nhwc is modelled on GPUs only; it "
                                          "takes: nchw"):
        simulate(zoo.get("lenet5", batch=2), Cluster.build("skylake-x-6c", 1),
                 memory_format="nhwc")


def test_the_cli_flag_and_the_scenario_field(tmp_path, capsys):
    argv = ["simulate", "--workload", "resnet18", "--batch", "32", "--hardware", "v100",
            "--precision", "amp-fp16", "--json"]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*argv, "--memory-format", "nhwc"]) == 0
    nhwc = json.loads(capsys.readouterr().out)
    assert nhwc["scenario"]["memory_format"] == "nhwc"
    assert "memory_format" not in plain["scenario"]
    assert nhwc["iteration_time_s"] < plain["iteration_time_s"]
    path = tmp_path / "s.toml"
    path.write_text('workload = "resnet18"\nbatch = 8\nhardware = "v100"\n'
                    'policy = "sequential"\nmemory_format = "channels_last"\n')
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "memory_format must be one of nchw, nhwc (nhwc: PyTorch's channels_last), got " \
        "'channels_last'" in err
    assert path.read_text().endswith('memory_format = "channels_last"\n')   # untouched


def test_the_cli_refuses_a_format_the_device_is_not_modelled_in(capsys):
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware",
                 "skylake-x-6c", "--memory-format", "nhwc"]) == 2
    assert "modelled on GPUs only" in capsys.readouterr().err
