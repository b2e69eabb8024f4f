"""Data-parallel ResNet-50 on V100s against NVIDIA's published scaling (scaling.csv).

On synthetic data, with ranks alike, the model scales at 7.87-8.00 on 8 GPUs and 15.7-16.0
on 16 with DDP's buckets and Horovod's fused buffers: they hide all but the last all-reduce,
and the whole gradient all-reduce (102 MB at NCCL's 135 GB/s bus bandwidth) takes 1.3-1.4 ms
against a 135-350 ms step; Horovod's cycle and per-tensor copies, which no one-GPU run of
TensorFlow or of a recent MXNet pays, cost up to 2%; an XLA row, whose gradients are all
ready when the compiled backward ends, exposes the whole all-reduce. MXNet's kvstore runs its
161 keys one after another after the backward pass (its engine serialises them in the order
Module pushes them, the first layer's first), each paying NCCL's latencies: 4-6% of an 8-GPU
step, whatever the precision. The published runs lose 2-4% on most rows and up to 20% on some.
What loses it is the host and the ranks: every row decoded real ImageNet on the node's CPU
cores, which the N training processes share (mixed precision needs 3x the images, so it is
input-bound first), and a synchronous step waits for the slowest of N ranks. The validation
simulates both, with each loader's per-image cost fitted to one input-bound row and the ranks'
spread fitted to the 2- and 4-GPU rows; the other 1-to-8 and 1-to-16 rows are predictions.
Figures:
python -m validation.validate.published_scaling.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from hwmodels import host_input
from simulator.policies._data_parallel import RANK_TAILS, rank_time_factors
from validation.validate import published_scaling as ps
from validation.validate import scaling_report, scaling_rows


@pytest.fixture(scope="module")
def results(published_scaling):
    return published_scaling.exponential   # ps.compare(), shared with docs/clusters.md's test


def test_every_v100_resnet50_row_is_simulated(results):
    assert len(results) == 73
    assert all(r.simulated is not None for r in results), [r.note for r in results]
    by_id = {r.row_id: r for r in results}
    assert by_id["M0006"].batch_per_gpu == 112 and by_id["M0006"].batch_stated
    # rows without a batch take NVIDIA's default for the precision
    assert (by_id["M0028"].batch_per_gpu, by_id["M0028"].batch_stated) == (128, False)
    assert by_id["M0026"].batch_per_gpu == 256
    assert "XLA" in by_id["M0054"].note and "XLA" not in by_id["M0057"].note


def test_communication_alone_costs_under_two_percent_and_under_three_with_xla(results):
    # Horovod's cycle and copies, which a one-GPU run of TensorFlow's or of a recent MXNet's
    # Horovod skips, cost up to 2% of the shortest steps; XLA's one compiled cluster leaves
    # the whole all-reduce exposed too. The published rows lose 3-13%, which communication
    # alone cannot explain, but for MXNet's kvstore
    for r in results:
        if r.framework.startswith("MXNet (kvstore"):
            continue
        xla = "XLA" in r.note
        assert r.n_gpus * (0.97 if xla else 0.98) <= r.synthetic <= r.n_gpus, r
        if r.framework.startswith("PyTorch"):
            assert r.synthetic >= r.n_gpus * 0.995, r


def test_kvstores_key_chain_loses_more_with_more_gpus_in_either_precision(results):
    # the published 18.12 rows lose 10 and 18 ms a step (FP16, 4 and 8 GPUs), 6.5 and 20 ms
    # (FP32): per-key latency, not bytes, so the chain's loss is alike in FP16 and FP32
    kv = {r.row_id: r for r in results if r.framework.startswith("MXNet (kvstore")}
    assert sorted(kv) == ["M0133", "M0134", "M0136", "M0137"]
    for four, eight in (("M0133", "M0134"), ("M0136", "M0137")):
        lost_4 = 1 - kv[four].synthetic / 4
        lost_8 = 1 - kv[eight].synthetic / 8
        assert 0.01 < lost_4 < lost_8 < 0.10, (four, lost_4, eight, lost_8)
    # the goal met on both 1-to-8 rows, predictions (rank_spread is fitted on 2 and 4 GPUs)
    assert abs(kv["M0134"].error) <= 0.03 and abs(kv["M0137"].error) <= 0.03


def test_each_framework_synchronises_gradients_its_own_way():
    rows = {r["row_id"]: r for r in ps.load_rows()}
    assert ps.row_gradient_sync(rows["M0006"]) == ("ddp", "per-op")         # PyTorch DDP
    assert ps.row_gradient_sync(rows["M0041"]) == ("ddp", "per-op")         # APEX DDP
    assert ps.row_gradient_sync(rows["M0057"]) == ("horovod", "per-op")     # TF, no XLA
    assert ps.row_gradient_sync(rows["M0063"]) == ("horovod", "at-end")     # TF with XLA
    assert ps.row_gradient_sync(rows["M0126"]) == ("horovod", "per-op")     # MXNet Horovod
    assert ps.row_gradient_sync(rows["M0134"]) == ("kvstore", "per-op")     # MXNet kvstore
    # on one GPU: MXNet 19.07's Horovod (0.16) runs its loop, every other Horovod skips it
    assert ps.row_horovod_one_rank(rows["M0126"]) == "cycle"
    assert ps.row_horovod_one_rank(rows["M0100"]) == "skip"                 # MXNet 20.12
    assert ps.row_horovod_one_rank(rows["M0063"]) == "skip"                 # TensorFlow
    assert ps.row_horovod_one_rank(rows["M0006"]) is None                   # PyTorch DDP
    # Horovod hears of a gradient as TensorFlow's host dispatches it; MXNet's, and under XLA
    # TensorFlow's, once it is computed
    assert ps.row_horovod_enqueue(rows["M0057"]) == "host-dispatch"
    assert ps.row_horovod_enqueue(rows["M0063"]) == "gpu-ready"             # XLA
    assert ps.row_horovod_enqueue(rows["M0126"]) == "gpu-ready"             # MXNet
    assert ps.row_horovod_enqueue(rows["M0006"]) is None
    # one scheme for every row instead: an XLA row then makes its gradients ready per op
    (as_ddp,) = ps.compare([rows["M0063"]], rank_spread=0.0, gradient_sync="ddp")
    (own,) = ps.compare([rows["M0063"]], rank_spread=0.0)
    assert as_ddp.synthetic > own.synthetic


def test_errors_against_the_published_speedups(results):
    """The goal: every 1-to-8 and 1-to-16 row within 3%. Met by most predicted rows; the
    misses are TensorFlow 19.07 on a DGX-1 (XLA and AMP), input-bound rows of containers
    other than the one their loader's cost was fitted to, and PyTorch 21.03 AMP on the 32 GB
    DGX-1 (docs/data-parallel-scaling.md says why; format_report lists every row).
    Regression bounds where the goal is not met."""
    predicted = scaling_report.summary(results, (8, 16), predicted_only=True)
    assert predicted["rows"] == 42
    assert predicted["mape"] <= 0.016
    assert predicted["within_goal"] >= 37
    assert predicted["max_abs_error"] <= 0.08
    before = scaling_report.summary(results, (8, 16), synthetic=True)
    assert before["rows"] == 45 and before["mape"] >= 0.045 and before["within_goal"] <= 19
    # every other predicted row meets the goal: a row leaving it is a regression
    misses = {r.row_id for r in results if r.n_gpus in (8, 16) and not r.fitted
              and abs(r.error) > scaling_report.GOAL_RELATIVE_ERROR}
    assert misses <= {"M0012", "M0054", "M0057", "M0063", "M0126"}, misses
    # PyTorch DDP, the configuration the policy follows most closely, on 8 and 16
    pytorch = [r for r in results if r.framework == "PyTorch DDP" and not r.fitted]
    assert len(pytorch) == 13
    assert all(abs(r.error) <= 0.04 for r in pytorch)


def test_fitted_rows_are_labelled_and_reproduced(results):
    by_id = {r.row_id: r for r in results}
    assert by_id["M0008"].fitted == "dali-cpu cost" and abs(by_id["M0008"].error) < 0.005
    assert by_id["M0100"].fitted == "dali-gpu cost" and abs(by_id["M0100"].error) < 0.005
    assert by_id["M0075"].fitted == "tf-data cost" and abs(by_id["M0075"].error) < 0.005
    assert {r.fitted for r in results if r.n_gpus in (2, 4)} == {"rank_spread"}
    assert sum(bool(r.fitted) for r in results if r.n_gpus >= 8) == 3


def test_the_catalog_holds_the_loader_costs_its_rows_give():
    for name, (row_id, cost) in ps.fit_loader_costs().items():
        spec = host_input.loader(name)
        assert spec.fitted_to.startswith(row_id + ":")
        assert spec.cpu_core_s_per_image == pytest.approx(cost, rel=1e-4), name


def test_rank_spread_comes_from_the_2_and_4_gpu_rows_alone(results):
    spread = results[0].rank_spread
    assert 0.01 < spread < 0.04
    # the constant the benchmark of published multi-node runs takes as its default spread
    assert spread == pytest.approx(ps.FITTED_RANK_SPREAD, abs=5e-5), \
        f"the fit gives {spread:.4f}: set published_scaling.FITTED_RANK_SPREAD to it"
    assert all(r.rank_spread == spread for r in results)
    assert all(r.rank_tail == "exponential" for r in results)


@pytest.mark.parametrize("tail", RANK_TAILS)
def test_the_fit_recovers_the_spread_the_2_and_4_gpu_rows_were_made_with(results, tail):
    # whatever the 8- and 16-GPU rows say
    base = results[0]
    made = [replace(base, n_gpus=n, simulated=float(n),
                    published=n / rank_time_factors(n, 0.02, tail)[0] * (0.5 if n >= 8 else 1))
            for n in (2, 4, 4, 8, 16)]
    assert ps.fit_rank_spread(made, tail) == pytest.approx(0.02, rel=1e-6)
    assert ps.fit_rank_spread(made[-2:], tail) == 0.0      # no 2- or 4-GPU row: none


def test_each_gpu_runs_at_its_rows_1_gpu_throughput(results):
    assert all(r.anchored for r in results)
    # a setup without a 1-GPU row runs the GPU as modelled, and says so
    row = {"row_id": "X2", "network": "ResNet-50 v1.5", "gpu": "V100",
           "gpu_variant": "DGX-1 V100 16GB", "n_gpus": "2", "interconnect_intra": "",
           "framework": "PyTorch DDP", "framework_version": "v", "precision": "FP32",
           "precision_note": "", "batch_per_gpu": "64", "speedup_vs_1gpu": "1.98"}
    (alone,) = ps.compare([row], baselines={}, rank_spread=0.0)
    assert not alone.anchored and "GPU as modelled" in alone.note
    assert alone.simulated == pytest.approx(alone.synthetic, rel=1e-9)


def test_report_lists_rows_and_summaries(results, capsys):
    text = scaling_report.format_report(results)
    assert "M0006" in text and "MAPE" in text
    assert "1-to-8 and 1-to-16, synthetic: 45 rows" in text
    assert "1-to-8 and 1-to-16, simulated, predictions only: 42 rows" in text
    assert "M0008" in text and "fitted: dali-cpu cost" in text


def test_bad_tables_exit_2_naming_what_is_wrong(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    assert ps.main(["--csv", str(missing)]) == 2
    assert "cannot read the scaling table" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("row_id,network,gpu\nM1,ResNet-50 v1.5,V100\n")
    assert ps.main(["--csv", str(bad)]) == 2
    assert "missing column(s) gpu_variant" in capsys.readouterr().err
    header = ",".join(scaling_rows.REQUIRED_COLUMNS)
    typo = tmp_path / "typo.csv"
    typo.write_text(header + "\nM1,ResNet-50 v1.5,V100,DGX-1 V100 16GB,eight,x,PyTorch DDP,"
                             "v,FP32,,128,7.7\n")
    assert ps.main(["--csv", str(typo)]) == 2
    assert "M1" in capsys.readouterr().err


def test_unmodelled_machines_are_reported_not_dropped():
    row = {"row_id": "X1", "network": "ResNet-50 v1.5", "gpu": "V100",
           "gpu_variant": "DGX-1 V100 16GB", "n_gpus": "8", "interconnect_intra": "",
           "framework": "PyTorch DDP", "framework_version": "v", "precision": "FP32",
           "precision_note": "", "batch_per_gpu": "", "speedup_vs_1gpu": "7.8"}
    (unknown,) = ps.compare([{**row, "gpu_variant": "DGX-1 P100"}])
    assert unknown.simulated is None and "not modelled" in unknown.note
    (no_batch,) = ps.compare([{**row, "precision": "TF32"}])
    assert no_batch.simulated is None and "TF32" in no_batch.note


def test_each_row_runs_in_the_memory_format_its_container_states():
    rows = {r["row_id"]: r for r in ps.load_rows()}
    stated = ps.stated_memory_formats()
    by_setup = {(r["framework_version"], r["precision"], r["precision_note"]): r
                for r in rows.values()}
    # PyTorch 21.03's AMP config runs channels_last (the single-GPU rows' notes say so)
    assert ps.row_memory_format(by_setup[("NGC pytorch-21.03", "AMP", "")], stated) == "nhwc"
    assert ps.row_memory_format(by_setup[("NGC pytorch-20.06", "AMP", "")], stated) == "nchw"
    assert ps.row_memory_format(by_setup[("NGC pytorch-21.03", "FP32", "")], stated) == "nchw"
    assert ps.row_memory_format(rows["M0063"], stated) == "nhwc"     # TF AMP with XLA
    assert ps.row_memory_format(rows["M0126"], stated) == "nhwc"     # NVIDIA's MXNet, AMP
    assert ps.row_memory_format(rows["M0126"], {}) == "nhwc"
    assert ps.row_memory_format(by_setup[("NGC pytorch-21.03", "AMP", "")], {}) == "nchw"


def test_step_losses_come_from_the_table_alone(capsys):
    losses = {one["row_id"]: (step, by_n) for one, step, by_n in
              scaling_rows.published_step_losses()}
    step, by_n = losses["M0132"]       # MXNet 18.12 kvstore, FP16, batch 208
    assert step == pytest.approx(208 / 1442.6)
    assert by_n == pytest.approx({4: 208 * 4 / 5391.8 - step, 8: 208 * 8 / 10263.2 - step})
    # a row without a batch takes NVIDIA's default for its precision (TensorFlow 19.07, FP32)
    step, by_n = losses["M0058"]
    assert step == pytest.approx(128 / 364.9) and sorted(by_n) == [4, 8]
    assert ps.main(["--step-losses"]) == 0
    out = capsys.readouterr().out
    assert "M0132" in out and "8: +17.9" in out


def test_breakdown_parts_add_up_to_the_simulated_step():
    rows = {r["row_id"]: r for r in ps.load_rows()}
    picked = [rows[i] for i in ("M0008", "M0057", "M0063")]
    baselines = scaling_rows.load_baselines()
    by_id = {r.row_id: r for r in ps.compare(picked, rank_spread=ps.FITTED_RANK_SPREAD,
                                             breakdown=True)}
    for r in by_id.values():
        p = r.parts
        assert p is not None and r.simulated is not None
        # the 1-GPU step is the table's: the GPU runs at the row's published throughput
        one_gpu = baselines[scaling_rows.setup_of(rows[r.row_id])]
        assert p.one_gpu_s == pytest.approx(r.batch_per_gpu / one_gpu, rel=1e-5)
        step_n = p.one_gpu_s * r.n_gpus / r.simulated
        assert step_n - p.one_gpu_s == pytest.approx(p.extra_s, rel=1e-9)
        published_n = p.one_gpu_s + r.published_extra_s()
        assert published_n / step_n - 1 == pytest.approx(r.error, rel=1e-9)
        assert p.spread_s > 0
    # the input-bound row its loader was fitted to waits on the loader, the others do not
    assert by_id["M0008"].parts.loader_s > 0.02
    assert abs(by_id["M0063"].parts.loader_s) < 1e-6
    # under XLA every gradient is ready when the backward ends: the whole all-reduce shows
    assert by_id["M0063"].parts.communication_s > 2 * by_id["M0057"].parts.communication_s
    text = scaling_report.format_breakdown(list(by_id.values()))
    assert "M0063" in text and "lacks" in text and "M0008" in text


def test_breakdown_from_the_command(tmp_path, capsys):
    lines = scaling_rows.SCALING_CSV.read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in ("M0007", "M0008")]
    table = tmp_path / "two.csv"
    table.write_text("\n".join(keep) + "\n")
    assert ps.main(["--csv", str(table), "--breakdown"]) == 0
    out = capsys.readouterr().out
    assert "M0008" in out and "loader" in out and "M0007" not in out
