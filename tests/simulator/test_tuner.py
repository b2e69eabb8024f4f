"""The minibatch tuner: ladder + bisection, largest trainable, optimum, linear lr, errors."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from simulator import tuner
from simulator.cli import main
from simulator.cluster import Cluster
from simulator.policies import ConfigError


def test_ladder_is_geometric_and_ends_at_max():
    assert tuner.ladder(1, 16) == [1, 2, 3, 4, 6, 8, 11, 16]
    assert tuner.ladder(5, 5) == [5]


def test_tuner_finds_the_largest_trainable_batch_by_bisection():
    spec = catalog.device("titan-x-pascal").with_options(memory_bytes=2 ** 30)
    cl = Cluster.build(spec, 1, "pcie3")
    none, swap = tuner.tune("resnet18", cl, ["none", "swap"], max_batch=64)
    largest = none.largest_trainable
    assert largest is not None and largest + 1 in [p.batch for p in none.points if not p.ok]
    assert len(none.points) < 24      # far fewer runs than the 64 sizes
    assert swap.largest_trainable > largest
    best = swap.best
    assert best.learning_rate == pytest.approx(0.1 * best.batch / 256)
    assert "largest trainable minibatch" in tuner.table([none, swap])


def test_empty_range_is_an_error(capsys):
    with pytest.raises(ConfigError, match="empty"):
        tuner.check_range(32, 8)
    assert main(["tune-batch", "--workload", "lenet5", "--hardware", "titan-x-pascal",
                 "--min-batch", "64", "--max-batch", "8"]) == 2
    assert "empty" in capsys.readouterr().err


def test_cli_prints_a_table_and_writes_a_plot(tmp_path, capsys):
    png = tmp_path / "t.png"
    assert main(["tune-batch", "--workload", "lenet5", "--hardware", "titan-x-pascal",
                 "--policy", "swap", "--max-batch", "64", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    # lenet5 trains at 64, the largest size tried: the limit is above it, not at it
    assert "swap: largest trainable minibatch at least 64 (" in out and "--max-batch" in out
    assert png.stat().st_size > 1000


def test_the_largest_trainable_is_exact_only_where_a_size_ran_out_of_memory(capsys):
    ok = [tuner.BatchPoint(b, True, 100.0 * b, 0.01, b << 20, 0.1) for b in (8, 16)]
    oom = tuner.BatchPoint(17, False, 0.0, float("nan"), 2 ** 31, 0.1)
    capped, limited = tuner.PolicyTuning("none", ok), tuner.PolicyTuning("swap", [*ok, oom])
    assert not capped.reached_memory_limit and limited.reached_memory_limit
    text = tuner.table([capped, limited])
    assert "none: largest trainable minibatch at least 16 (" in text
    assert "swap: largest trainable minibatch 16, " in text
    assert main(["tune-batch", "--workload", "lenet5", "--hardware", "titan-x-pascal",
                 "--policy", "none", "--baseline", "", "--max-batch", "4", "--no-refine",
                 "--json"]) == 0
    (tuning,) = json.loads(capsys.readouterr().out)
    assert tuning["largest_trainable"] == 4 and tuning["reached_memory_limit"] is False


def test_an_out_of_memory_row_shows_no_speed():
    ok = tuner.BatchPoint(8, True, 1000.0, 0.008, 2 ** 30, 0.003)
    oom = tuner.BatchPoint(16, False, 0.0, float("nan"), 2 ** 31, 0.006)
    text = tuner.table([tuner.PolicyTuning("none", [ok, oom])])
    row = next(line for line in text.splitlines() if line.split()[1:3] == ["16", "OOM"])
    assert row.split()[3:5] == ["-", "-"] and " nan " not in f" {text} ".replace("\n", " ")


def _probe_table(throughput):
    """A tuner's `run` over a throughput curve (batch -> samples/s), and what it has seen."""
    seen: dict[int, tuner.BatchPoint] = {}

    def run(b: int) -> tuner.BatchPoint:
        if b not in seen:
            seen[b] = tuner.BatchPoint(b, True, throughput(b), 1.0, 0, 0.1)
        return seen[b]
    return run, seen


@settings(max_examples=200, deadline=None)
@given(st.floats(1, 500), st.floats(0.5, 300), st.integers(64, 512))
def test_refinement_finds_the_peak_of_a_single_peaked_curve(peak, width, max_batch):
    def throughput(b: int) -> float:
        return 100.0 - ((b - peak) / width) ** 2
    run, seen = _probe_table(throughput)
    for b in tuner.ladder(1, max_batch):
        run(b)
    before = len(seen)
    tuner.refine_optimum(run, seen)
    found = max(seen.values(), key=lambda p: (p.throughput_samples_per_s, -p.batch)).batch
    assert found == max(range(1, max_batch + 1), key=lambda b: (throughput(b), -b))
    assert len(seen) - before <= 14        # a Fibonacci search, not a scan of the bracket


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1000), min_size=64, max_size=64))
def test_refinement_never_ends_worse_than_the_ladder(values):
    run, seen = _probe_table(lambda b: values[b - 1])
    for b in tuner.ladder(1, 64):
        run(b)
    ladder_best = max(p.throughput_samples_per_s for p in seen.values())
    tuner.refine_optimum(run, seen)
    assert max(p.throughput_samples_per_s for p in seen.values()) >= ladder_best


def test_the_tuned_optimum_is_refined_between_ladder_points():
    spec = catalog.device("titan-x-pascal").with_options(memory_bytes=2 ** 30)
    cl = Cluster.build(spec, 1, "pcie3")
    grid, = tuner.tune("resnet18", cl, ["swap"], max_batch=64, refine=False)
    refined, = tuner.tune("resnet18", cl, ["swap"], max_batch=64)
    assert {p.batch for p in grid.points} < {p.batch for p in refined.points}
    assert refined.best.throughput_samples_per_s >= grid.best.throughput_samples_per_s
