"""Pipeline policies: pipeline-stale, gpipe, pipedream, hybrid (small networks, fast)."""
import pytest

from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.policies._pipeline import assign_partitions, rebatch
from simulator.policies._pipeline_schedules import one_f_one_b_sequences, stale_sequences
from workloads import zoo
from workloads.training import lower_training

NET, BATCH = "resnet20", 32


def cluster(n):
    return Cluster.build("titan-xp", n, "pcie3")


def run(policy, n=2, **opts):
    return simulate(NET, cluster(n), policy, batch=BATCH, **opts)


def test_registers_cut_where_the_paper_counts_layers():
    train = lower_training(zoo.get("resnet56", batch=2))
    part = assign_partitions(train, [19])
    assert part["layer1.8.conv2"] == 0 and part["layer1.8.relu2"] == 0   # layer 19 + its block
    assert part["layer2.0.conv1"] == 1                                   # layer 20
    assert part["layer1.8.conv2.grad_weight"] == 0 and part["linear.update"] == 1


@pytest.mark.parametrize("k", [2, 3, 4])
def test_stale_schedule_staleness_and_in_flight(k):
    regs = ",".join(str(r) for r in (3, 7, 11)[:k - 1])
    r = run("pipeline-stale", n=k, registers=regs)
    assert r.ok
    assert r.extras["staleness_minibatches"] == [2 * (k - 1 - p) for p in range(k)]
    assert r.extras["weight_drift_minibatches"] == [2 * (k - 1 - p) for p in range(k)]
    assert r.extras["in_flight_minibatches"] == [2 * (k - 1 - p) + 1 for p in range(k)]


def test_pipedream_stashes_and_is_less_stale():
    r = run("pipedream", n=3, registers="5,11")
    assert r.extras["staleness_minibatches"] == [2, 1, 0]
    assert r.extras["weight_drift_minibatches"] == [0, 0, 0]
    mem = r.extras["memory"]
    assert mem["gpu0"]["stashed_weight_versions"] == 3 and mem["gpu0"]["stash_bytes"] > 0


def test_cycle_time_is_slowest_stage_plus_blocking_copies():
    over = run("pipeline-stale", registers=7, overlap_communication=True)
    block = run("pipeline-stale", registers=7)
    slowest = max(over.extras["stage_compute_s"])
    assert over.iteration_time_s == pytest.approx(slowest, rel=0.02)
    assert block.iteration_time_s > over.iteration_time_s
    seq = run("sequential", n=1)
    assert 1.0 < seq.iteration_time_s / over.iteration_time_s < 2.0


def test_pipelined_memory_holds_more_minibatches_than_pipedream():
    stale = run("pipeline-stale", registers=7, enforce_memory=False)
    dream = run("pipedream", registers=7, enforce_memory=False)
    s0, d0 = stale.extras["memory"]["gpu0"], dream.extras["memory"]["gpu0"]
    assert s0["in_flight_minibatches"] == 3 and d0["in_flight_minibatches"] == 2
    assert stale.peak_memory_bytes["gpu0"] > dream.peak_memory_bytes["gpu0"]
    assert s0["peak_bytes"] == pytest.approx(s0["estimate_bytes"], rel=0.15)


def test_gpipe_no_staleness_and_all_micro_batches_in_flight():
    r = run("gpipe", registers=7, micro_batches=4)
    assert r.extras["staleness_minibatches"] == [0, 0]
    assert r.extras["in_flight_micro_batches"] == [4, 4]
    assert all(0 < b < 1 for b in r.extras["bubble_fraction"])


def test_rebatch_scales_work():
    g = zoo.get(NET, batch=32)
    assert rebatch(g, 8).flops() == pytest.approx(g.flops() / 4)


def test_hybrid_between_pipelined_and_not():
    full = run("hybrid", registers=7, pipelined_fraction=1.0)
    none = run("hybrid", registers=7, pipelined_fraction=0.0)
    half = run("hybrid", registers=7, pipelined_fraction=0.5)
    pipe = run("pipeline-stale", registers=7)
    assert full.iteration_time_s == pytest.approx(pipe.iteration_time_s, rel=0.01)
    assert full.iteration_time_s < half.iteration_time_s < none.iteration_time_s
    assert half.extras["iterations_total"] == 164 * 1563
    assert half.extras["total_time_s"] == pytest.approx(
        half.iteration_time_s * half.extras["iterations_total"])


def test_auto_placement_balances_stages():
    auto = run("pipeline-stale", registers="auto", overlap_communication=True)
    fixed = run("pipeline-stale", registers=3, overlap_communication=True)
    assert auto.extras["placement"] == "auto"
    assert max(auto.extras["stage_compute_s"]) <= max(fixed.extras["stage_compute_s"])
    assert auto.iteration_time_s < fixed.iteration_time_s


def test_schedules_order_units_as_documented():
    assert stale_sequences(2, 3)[1][:4] == [("F", 0), ("B", 0), ("F", 1), ("B", 1)]
    assert stale_sequences(2, 3)[0][:4] == [("F", 0), ("F", 1), ("F", 2), ("B", 0)]
    assert one_f_one_b_sequences(2, 3)[0][:4] == [("F", 0), ("F", 1), ("B", 0), ("F", 2)]


def test_deterministic():
    a, b = run("pipeline-stale", registers=7), run("pipeline-stale", registers=7)
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize("policy,opts,word", [
    ("pipeline-stale", {"registers": 0}, "registers"),
    ("pipeline-stale", {"registers": 20}, "registers"),
    ("pipeline-stale", {"registers": "9,5"}, "increasing"),
    ("pipeline-stale", {"registers": "x"}, "registers"),
    ("pipedream", {"registers": "5,9"}, "devices"),
    ("gpipe", {"registers": "auto", "partitions": 3}, "partitions"),
    ("gpipe", {"registers": 7, "micro_batches": 5}, "micro_batches"),
    ("hybrid", {"registers": 7, "pipelined_fraction": 1.5}, "pipelined_fraction"),
    ("hybrid", {"registers": 7, "pipelined_fraction": -0.1}, "pipelined_fraction"),
])
def test_bad_input_names_the_option(policy, opts, word):
    with pytest.raises(ConfigError, match=word):
        run(policy, **opts)


def test_cli_bad_register_exits_2(capsys):
    from simulator.cli import main
    code = main(["simulate", "--workload", NET, "--batch", "8", "--hardware", "titan-xp",
                 "--devices", "2", "--link", "pcie3", "--policy", "pipeline-stale",
                 "--registers", "99"])
    assert code == 2
    assert "registers" in capsys.readouterr().err


def test_only_the_boundary_tensor_crosses_a_first_stage_register():
    from simulator.policies._pipeline import PipelineEmitter
    from simulator.tasks import TaskGraph
    em = PipelineEmitter(TaskGraph(), lower_training(zoo.get("resnet56", batch=2)),
                         cluster(2), [19])
    forward = [(s, d) for s, d in em.crossing if em.train.op(s).phase == "forward"]
    assert forward == [("layer1.8.relu2", 1)]
    assert em.part["layer2.0.shortcut"] == 1
