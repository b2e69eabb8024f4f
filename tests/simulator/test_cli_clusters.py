"""The command line and scenarios name node types, networks, speeds and jitter; bad values exit
2 with the error named."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simulator.cli import main
from simulator.cluster import Cluster
from simulator.report import cluster_line

BASE = ["simulate", "--workload", "resnet20", "--batch", "8", "--hardware", "v100",
        "--policy", "data-parallel"]


def _error(capsys, extra: list[str]) -> str:
    code = main([*BASE, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("dnnsim: error:") and err.count("\n") == 1
    return err


@pytest.mark.parametrize("extra, message", [
    (["--devices", "16", "--node-type", "dgx-9"], "unknown node type 'dgx-9'; known: "),
    (["--devices", "16", "--node-type", "dgx1-v100", "--link", "ib100"],
     "sets the fabric; leave out link"),
    (["--devices", "16", "--node-type", "dgx1-v100", "--oversubscription", "-1"],
     "oversubscription must be a finite number >= 1"),
    (["--devices", "32", "--node-type", "dgx1-v100", "--nodes-per-leaf", "1",
      "--oversubscription", "8"], "does not connect every node"),
    (["--devices", "16", "--node-type", "dgx1-v100", "--network", "torus"],
     "unknown network 'torus'"),
    (["--devices", "4", "--link", "nvlink2", "--jitter", "gamma:0.1"],
     "unknown jitter distribution 'gamma'"),
    (["--devices", "4", "--link", "nvlink2", "--jitter", "uniform:2"],
     r"spread must be in [0, 1)"),
    (["--devices", "4", "--link", "nvlink2", "--speed", "gpu9=0.5"],
     "speed given for 'gpu9', which is not a device"),
    (["--devices", "16", "--node-type", "dgx1-v100", "--algorithm", "butterfly"],
     "'butterfly' is out of range (ring or hierarchical or tree or nccl or halving-doubling)"),
    (["--devices", "4", "--link", "nvlink2", "--speed", "gpu1=-2"], "must be a number from 0.001"),
    (["--devices", "4", "--link", "nvlink2", "--oversubscription", "many"], "oversubscription"),
])
def test_bad_cluster_input_exits_2_naming_it(capsys, extra, message):
    assert message in _error(capsys, extra)


def test_node_type_speed_and_jitter_from_the_command_line(capsys):
    argv = [*BASE, "--devices", "16", "--node-type", "dgx1-v100", "--speed", "gpu3=0.5",
            "--jitter", "lognormal:0.05", "--seed", "4", "--json"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first       # same seed, same output
    doc = json.loads(first)
    assert doc["cluster"]["node_type"] == "dgx1-v100"
    assert doc["extras"]["slowest_device"] == "gpu3"
    assert doc["scenario"]["speeds"] == {"gpu3": 0.5}


def test_a_scenario_file_names_a_node_type_and_a_network(tmp_path, capsys):
    path = tmp_path / "cluster.toml"
    path.write_text('workload = "resnet20"\nbatch = 8\nhardware = "a100"\n'
                    'policy = "data-parallel"\ndevices = 32\nnode_type = "dgx-a100"\n'
                    'network = "rail-optimised"\noversubscription = 2\n'
                    '[options]\nalgorithm = "hierarchical"\n')
    assert main(["simulate", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cluster"]["network"] == "rail-optimised"
    assert doc["cluster"]["oversubscription"] == 2


@pytest.mark.parametrize("body, message", [
    ('nics = [[0, 1], [2, 9]]\n', "nics: GPU 9 does not exist in a node of 4 GPUs"),
    ('nics = [[0, 1, 2]]\n', "every GPU of a node must be in exactly one group; missing [3]"),
    ('pcie_switches = [0, 1]\n', "pcie_switches must be a list of lists"),
    ('nics = [[0, 1], [2, 3]]\nnode_type = "dgx1-v100"\n', "sets the fabric; leave out"),
])
def test_a_scenario_node_description_that_does_not_add_up_exits_2(tmp_path, capsys, body,
                                                                  message):
    path = tmp_path / "bad.toml"
    path.write_text('workload = "resnet20"\nbatch = 8\nhardware = "v100"\n'
                    'policy = "data-parallel"\ndevices = 8\n' + body +
                    ('' if "node_type" in body else
                     'link = "nvlink2"\ndevices_per_node = 4\ninter_node_link = "ib100"\n'))
    before = path.read_text()
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert path.read_text() == before


def test_a_scenario_describes_its_own_nodes(tmp_path, capsys):
    path = tmp_path / "own.toml"
    path.write_text('workload = "resnet20"\nbatch = 8\nhardware = "v100"\n'
                    'policy = "data-parallel"\ndevices = 8\nlink = "nvlink2"\n'
                    'devices_per_node = 4\ninter_node_link = "ib100"\n'
                    'nics = [[0, 1], [2, 3]]\npcie_switches = [[0, 1], [2, 3]]\n')
    assert main(["simulate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"]["nics"] == [[0, 1], [2, 3]]


def test_same_output_whatever_the_hash_seed():
    argv = [sys.executable, "-m", "simulator.cli", *BASE, "--devices", "32", "--node-type",
            "dgx1-v100", "--replicas", "classes", "--algorithm", "hierarchical",
            "--speed", "gpu9=0.9", "--jitter", "uniform:0.1", "--seed", "2", "--json"]
    outs = {subprocess.run(argv, env={**os.environ, "PYTHONHASHSEED": seed}, check=True,
                           capture_output=True, text=True).stdout for seed in ("0", "77")}
    assert len(outs) == 1


def test_a_ragged_last_node_is_named_in_the_cluster_line():
    """Devices fill nodes in order, so 16 in nodes of 5 leave one on the last node (a cluster
    of the API: a scenario refuses nodes its devices do not fill)."""
    cluster = Cluster.build("v100", 16, "nvlink2", devices_per_node=5, inter_node_link="ib100")
    assert "16 x v100 in 4 nodes of 5, the last of 1: nvlink2" in \
        cluster_line(cluster.describe())
