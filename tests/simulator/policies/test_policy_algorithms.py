"""Every GPU policy runs its collectives as the framework it models runs them (NCCL's choice,
default_algorithm), names the algorithm in its result and the header of `dnnsim simulate`,
honours an explicit one, and refuses an unknown one with exit code 2 naming the choices."""
from __future__ import annotations

import functools

import pytest

from simulator import Cluster, simulate
from simulator.api import load_workload
from simulator.cli import main
from simulator.policies._data_parallel import default_algorithm
from workloads.precision import with_precision

SMALL_GPT = {"depth": 4, "width": 128, "heads": 8, "seq_len": 32, "vocab_size": 256}
# policy -> (workload, devices, options): two DGX H100 nodes, collectives of every kind
CASES = {
    "megatron": ("gpt", 16, {"tp": 8, "pp": 1, "micro_batches": 1}),
    "tensor-parallel": ("gpt", 16, {"tp": 8}),
    "fsdp": ("gpt", 16, {}),
    "swap": ("resnet18", 16, {}),
    "swap-all": ("resnet18", 16, {}),
    "supernet-dp": ("spos_cifar", 16, {"paths": 2}),
    "path-parallel": ("spos_cifar", 16, {"paths": 2, "groups": 2}),
}


@functools.cache
def _run(policy: str, algorithm: str | None):
    workload, devices, options = CASES[policy]
    cluster = Cluster.from_node_type("dgx-h100", devices)
    if workload == "gpt":
        graph = with_precision(load_workload("gpt2", 2, **SMALL_GPT), "amp-bf16")
        return simulate(graph, cluster, policy, algorithm=algorithm, **options)
    batch = 64 if workload == "spos_cifar" else 8
    return simulate(workload, cluster, policy, batch=batch, algorithm=algorithm, **options)


@pytest.mark.parametrize("policy", sorted(CASES))
def test_the_default_on_dgx_h100_nodes_is_nccls_choice(policy):
    default, nccl, ring = (_run(policy, a) for a in (None, "nccl", "ring"))
    assert default.extras["collective_algorithm"] == "nccl"
    assert default.iteration_time_s == nccl.iteration_time_s
    # NCCL's rings per NIC, trees and low-latency protocols expose less than one ring
    exposed = [r.summary()["exposed_communication_s"] for r in (default, ring)]
    assert 0 < exposed[0] < exposed[1]


@pytest.mark.parametrize("policy", sorted(CASES))
def test_an_explicit_algorithm_is_honoured(policy):
    ring = _run(policy, "ring")
    assert ring.extras["collective_algorithm"] == "ring"
    assert ring.iteration_time_s != _run(policy, None).iteration_time_s


def test_the_rule_is_nccl_on_gpus_for_a_framework_that_calls_it_and_a_ring_elsewhere():
    assert default_algorithm(Cluster.from_node_type("dgx-h100", 16)) == "nccl"
    assert default_algorithm(Cluster.build("rpi4", 4, "eth1g")) == "ring"
    assert default_algorithm(Cluster.build("v100", 4), "caffe-nccl") == "ring"


BASE = ["simulate", "--batch", "2", "--hardware", "h100", "--node-type", "dgx-h100",
        "--devices", "16", "--precision", "bf16"]


@pytest.mark.parametrize("policy, options", [
    ("megatron", ["--workload", "gpt2", "--tp", "4", "--pp", "2"]),
    ("tensor-parallel", ["--workload", "gpt2", "--tp", "4"]),
    ("fsdp", ["--workload", "resnet18"]),
    ("swap", ["--workload", "resnet18"]),
])
def test_an_unknown_algorithm_exits_2_naming_the_choices(capsys, policy, options):
    assert main([*BASE, "--policy", policy, *options, "--algorithm", "butterfly"]) == 2
    err = capsys.readouterr().err
    assert "'butterfly'" in err and "nccl" in err and "ring" in err


def test_the_header_names_the_collectives_algorithm(capsys):
    argv = [*BASE, "--workload", "gpt2", "--policy", "tensor-parallel", "--tp", "4",
            "--collectives", "flow"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(", collectives nccl")
    assert main([*argv, "--algorithm", "ring"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(", collectives ring")
