"""Data parallelism with the host's input pipeline and ranks that vary (data-parallel options
input_pipeline, loader_threads, host_cores, rank_spread)."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import host_input
from simulator import Cluster, simulate
from simulator.cli import main
from simulator.policies import ConfigError
from simulator.policies._data_parallel import RANK_TAILS, rank_time_factors


def _dgx1(n: int, **opts):
    """AMP ResNet-50 on a DGX-1 in channels_last (NHWC), as NVIDIA's AMP scripts run it (in
    NCHW, tensor-core convolutions pay cuDNN's transposes)."""
    return simulate("resnet50", Cluster.from_node_type("dgx1-v100", n), "data-parallel",
                    batch=256, precision="amp-fp16", replicas="one", memory_format="nhwc",
                    **opts)


def test_a_node_whose_cores_cannot_keep_up_is_input_bound():
    cost = host_input.loader("dali-cpu").cpu_core_s_per_image
    alone, eight = _dgx1(1, input_pipeline="dali-cpu"), _dgx1(8, input_pipeline="dali-cpu")
    # one AMP V100 takes fewer images than 40 cores decode: the GPU bounds it
    assert alone.throughput_samples_per_s == pytest.approx(
        _dgx1(1).throughput_samples_per_s)
    # eight share the 40 cores: the node decodes 40 / cost images a second, no more
    assert eight.throughput_samples_per_s == pytest.approx(40 / cost, rel=1e-6)
    assert eight.throughput_samples_per_s < 8 * alone.throughput_samples_per_s * 0.9


def test_the_loaders_time_is_reported_and_is_not_the_gpus_communication():
    bound = _dgx1(8, input_pipeline="dali-cpu")
    assert bound.extras["input_batch_s"] == pytest.approx(bound.iteration_time_s, rel=1e-9)
    plain = _dgx1(8)
    assert "input_batch_s" not in plain.extras
    assert bound.exposed_communication_s == pytest.approx(plain.exposed_communication_s)


def test_synthetic_is_the_default_and_costs_nothing():
    assert _dgx1(8).to_json() == _dgx1(8, input_pipeline="synthetic").to_json()


def test_fewer_loader_threads_or_cores_make_the_bound_tighter():
    base = _dgx1(1, input_pipeline="dali-cpu").throughput_samples_per_s
    cost = host_input.loader("dali-cpu").cpu_core_s_per_image
    four = _dgx1(1, input_pipeline="dali-cpu", loader_threads=4).throughput_samples_per_s
    assert four == pytest.approx(4 / cost, rel=1e-6) and four < base
    assert _dgx1(8, input_pipeline="dali-cpu", host_cores=20).throughput_samples_per_s == \
        pytest.approx(20 / cost, rel=1e-6)


def test_a_loader_needs_the_hosts_cores():
    plain = Cluster.build("v100", 2, "nvlink2")
    with pytest.raises(ConfigError, match="needs the host's CPU cores: give the option "
                                          "host_cores"):
        simulate("resnet20", plain, "data-parallel", batch=8, input_pipeline="dali-cpu")
    r = simulate("resnet20", plain, "data-parallel", batch=8, input_pipeline="dali-cpu",
                 host_cores=2)
    assert r.ok


def test_rank_factors_are_expected_order_statistics_slowest_first():
    for tail in RANK_TAILS:
        assert rank_time_factors(1, 0.05, tail) == [1.0]
        f8 = rank_time_factors(8, 0.02, tail)
        assert f8 == sorted(f8, reverse=True) and f8[0] > 1 > f8[-1]
    # lognormal: the slowest of 8 and of 16 lag about 1.4 and 1.8 spreads
    lag = [math.log(rank_time_factors(n, 0.02, "lognormal")[0]) / 0.02 for n in (8, 16)]
    assert lag == pytest.approx([1.42, 1.77], abs=0.02)
    # exponential: the slowest of n expects H_n stalls of mean 0.02 (one rank expects one)
    harmonic = [sum(1 / j for j in range(1, n + 1)) for n in (8, 16)]
    assert [rank_time_factors(n, 0.02)[0] for n in (8, 16)] == pytest.approx(
        [(1 + 0.02 * h) / 1.02 for h in harmonic], rel=1e-12)
    assert rank_time_factors(8, 0.02)[-1] == pytest.approx((1 + 0.02 / 8) / 1.02, rel=1e-12)


def test_the_exponential_tail_lags_as_ln_n_and_outgrows_the_lognormal_at_scale():
    # at 2-4 ranks the two tails of the same spread nearly agree; at hundreds the
    # exponential's slowest lags about twice as far (ln n against sqrt(2 ln n))
    exp4, log4 = (rank_time_factors(4, 0.015, t)[0] for t in ("exponential", "lognormal"))
    assert exp4 == pytest.approx(log4, rel=1e-3)
    exp512, log512 = (rank_time_factors(512, 0.015, t)[0] for t in ("exponential",
                                                                    "lognormal"))
    assert (exp512 - 1) / (log512 - 1) > 1.8
    lags = [rank_time_factors(n, 0.015)[0] - rank_time_factors(n // 2, 0.015)[0]
            for n in (64, 128, 256, 512)]
    # each doubling adds about ln 2 stalls: equal steps on a log axis
    assert max(lags) / min(lags) < 1.02


@given(n=st.integers(1, 300), spread=st.floats(0, 0.5))
def test_rank_factors_are_symmetric_about_the_median(n, spread):
    f = rank_time_factors(n, spread, "lognormal")
    assert len(f) == n
    for a, b in zip(f, reversed(f), strict=True):
        assert math.log(a) == pytest.approx(-math.log(b), abs=1e-9)


@given(n=st.integers(1, 300), spread=st.floats(0, 0.99))
def test_exponential_rank_factors_average_one_rank_and_sort_slowest_first(n, spread):
    f = rank_time_factors(n, spread)
    assert len(f) == n and f == sorted(f, reverse=True)
    # the expected order statistics of n draws average one draw's expectation
    assert sum(f) / n == pytest.approx(1.0, rel=1e-9)
    assert f[-1] >= 1 / (1 + spread) - 1e-12


def test_the_step_waits_for_the_slowest_rank():
    even = _dgx1(8).iteration_time_s
    spread = _dgx1(8, rank_spread=0.03).iteration_time_s
    slowest = rank_time_factors(8, 0.03)[0]
    assert spread > even
    assert spread == pytest.approx(even * slowest, rel=0.01)
    # every replica simulated gives the same step as replica 0 alone (it is the slowest)
    every = simulate("resnet50", Cluster.from_node_type("dgx1-v100", 8), "data-parallel",
                     batch=256, precision="amp-fp16", memory_format="nhwc", rank_spread=0.03)
    assert every.iteration_time_s == pytest.approx(spread, rel=1e-9)


@pytest.mark.parametrize("extra, message", [
    (["--input-pipeline", "jpeg"], "option 'input_pipeline': 'jpeg' is out of range"),
    (["--input-pipeline", "dali-cpu"], "needs the host's CPU cores"),
    (["--rank-spread", "-0.1"], "option 'rank_spread': -0.1 is out of range"),
    (["--rank-tail", "gamma"], "option 'rank_tail': 'gamma' is out of range"),
    (["--host-cores", "0"], "option 'host_cores': 0 is out of range"),
])
def test_bad_options_exit_2_naming_them(capsys, extra, message):
    code = main(["simulate", "--workload", "resnet20", "--batch", "8", "--hardware", "v100",
                 "--devices", "2", "--link", "nvlink2", "--policy", "data-parallel", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_same_result_whatever_the_hash_seed():
    code = ("from simulator import Cluster, simulate\n"
            "r = simulate('resnet20', Cluster.from_node_type('dgx2', 16), 'data-parallel', "
            "batch=64, input_pipeline='dali-gpu', rank_spread=0.02, replicas='one')\n"
            "print(r.to_json())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("0", "1")}
    assert len(outs) == 1


@settings(max_examples=12, deadline=None)
@given(n=st.sampled_from([1, 2, 4, 8]), cores=st.floats(0.5, 64),
       loader=st.sampled_from(host_input.loader_names()[1:]))
def test_a_loader_never_speeds_a_step_up_and_bounds_it_by_its_batch_time(n, cores, loader):
    def step(**opts):
        return simulate("resnet20", Cluster.from_node_type("dgx1-v100", n), "data-parallel",
                        batch=32, replicas="one", **opts)
    plain = step()
    fed = step(input_pipeline=loader, host_cores=cores)
    load_s = host_input.batch_time_s(loader, 32, cores, n)
    assert fed.iteration_time_s == pytest.approx(max(plain.iteration_time_s, load_s),
                                                 rel=1e-9)
    # more cores never make the step longer
    assert step(input_pipeline=loader, host_cores=cores * 2).iteration_time_s <= \
        fed.iteration_time_s
