"""Data-parallel ResNet-50 on V100s against NVIDIA's published scaling (scaling.csv).

The goal was every published 1-to-8 and 1-to-16 speedup within 3%. The model misses it, and
the test states the bound it does meet. The simulated speedups are 7.99-8.00 on 8 GPUs and
15.98-15.99 on 16: DDP's buckets hide all but the last bucket's all-reduce, and the whole
gradient all-reduce (102 MB at NCCL's 135 GB/s bus bandwidth over the DGX-1's six rings or
the DGX-2's NVSwitch) takes 1.3-1.4 ms, against a 300 ms FP32 or 205 ms AMP step: even
unhidden it would cost under 0.7%. The published runs lose 2-4% on most rows (PyTorch FP32
on 8 GPUs: 7.74-7.82, +2.3% to +3.3% here) and up to 20% on some (PyTorch 21.03 AMP 6.93,
TensorFlow XLA AMP on 16 GPUs 12.74-13.27): losses that communication cannot account for.
Every row ran on real data, and what the model lacks is the host: the input pipeline
(JPEG decoding on the CPUs the N training processes share) and the per-process work. So
the model is an upper bound on every row, and its error is the share of the published
loss that is not communication. Figures: python -m validation.validate.published_scaling.
"""
from __future__ import annotations

import pytest

from validation.validate import published_scaling as ps


@pytest.fixture(scope="module")
def results():
    return ps.compare()


def test_every_v100_resnet50_row_is_simulated(results):
    assert len(results) == 73
    assert all(r.simulated is not None for r in results), [r.note for r in results]
    by_id = {r.row_id: r for r in results}
    assert by_id["M0006"].batch_per_gpu == 112 and by_id["M0006"].batch_stated
    # rows without a batch take NVIDIA's default for the precision
    assert (by_id["M0028"].batch_per_gpu, by_id["M0028"].batch_stated) == (128, False)
    assert by_id["M0026"].batch_per_gpu == 256
    assert "XLA" in by_id["M0054"].note and "XLA" not in by_id["M0057"].note


def test_the_model_is_an_upper_bound_on_every_row(results):
    """It has the communication and not the host: it never predicts a loss the runs did not
    have (1%: the published speedups are rounded and two are above linear)."""
    for r in results:
        assert r.simulated >= r.published * 0.99, r


def test_simulated_communication_costs_under_half_a_percent(results):
    for r in results:
        assert r.n_gpus * 0.995 <= r.simulated <= r.n_gpus, r


def test_errors_against_the_published_speedups(results):
    """The goal (3% per 1-to-8 and 1-to-16 row) is missed; the bounds met today are these."""
    eight_sixteen = ps.summary(results, (8, 16))
    overall = ps.summary(results)
    assert eight_sixteen["rows"] == 45 and overall["rows"] == 73
    assert eight_sixteen["mape"] <= 0.06
    assert overall["mape"] <= 0.046
    assert overall["max_abs_error"] <= 0.26
    # PyTorch DDP in FP32, the configuration the policy follows most closely, on 8 and 16
    pytorch_fp32 = [r for r in results if r.framework == "PyTorch DDP" and r.precision == "FP32"]
    assert len(pytorch_fp32) == 7
    assert all(abs(r.error) <= 0.035 for r in pytorch_fp32)


def test_report_lists_rows_and_summaries(results, capsys):
    text = ps.format_report(results)
    assert "M0006" in text and "MAPE" in text and "1-to-8 and 1-to-16: 45 rows" in text


def test_bad_tables_exit_2_naming_what_is_wrong(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    assert ps.main(["--csv", str(missing)]) == 2
    assert "cannot read the scaling table" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("row_id,network,gpu\nM1,ResNet-50 v1.5,V100\n")
    assert ps.main(["--csv", str(bad)]) == 2
    assert "missing column(s) gpu_variant" in capsys.readouterr().err
    header = ",".join(ps.REQUIRED_COLUMNS)
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
