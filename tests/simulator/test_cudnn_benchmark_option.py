"""cudnn_benchmark as a scenario setting: the API keyword, the scenario field and the CLI flag
turn on the algorithm search's memory (hwmodels/cudnn_benchmark.py) and nothing else."""
from __future__ import annotations

import json

from simulator import Cluster
from simulator.api import simulate
from simulator.cli import main
from workloads import zoo


def test_the_search_grows_reserved_memory_only_and_leaves_the_callers_graph_alone():
    graph = zoo.get("resnet50", batch=32)
    cluster = Cluster.build("v100", 1)
    plain = simulate(graph, cluster)
    searched = simulate(graph, cluster, cudnn_benchmark=True)
    assert "cudnn_benchmark" not in graph.meta
    assert searched.peak_reserved_bytes["gpu0"] > plain.peak_reserved_bytes["gpu0"]
    assert searched.peak_memory_bytes == plain.peak_memory_bytes
    assert searched.iteration_time_s == plain.iteration_time_s


def test_the_cli_flag_and_the_scenario_field(tmp_path, capsys):
    argv = ["simulate", "--workload", "resnet50", "--batch", "32", "--hardware", "v100", "--json"]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*argv, "--cudnn-benchmark"]) == 0
    searched = json.loads(capsys.readouterr().out)
    assert searched["scenario"]["cudnn_benchmark"] is True
    assert "cudnn_benchmark" not in plain["scenario"]
    assert searched["peak_reserved_bytes"]["gpu0"] > plain["peak_reserved_bytes"]["gpu0"]
    path = tmp_path / "s.toml"
    path.write_text('workload = "resnet50"\nbatch = 32\nhardware = "v100"\n'
                    'policy = "sequential"\ncudnn_benchmark = "yes"\n')
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cudnn_benchmark" in err and "bool" in err
    assert path.read_text().endswith('cudnn_benchmark = "yes"\n')   # the user's file untouched
