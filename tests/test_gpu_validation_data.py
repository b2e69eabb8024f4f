"""docs/gpu_validation_data.py: what the GPU validation page says of the published kernel
tables is computed from their rows; checked here on rows made up for the purpose, where each
figure is known."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from validation.calibrate import published_kernels as pk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
import gpu_validation_data as data  # noqa: E402


def gemm_row(row_id: str, gpu: str, m: int, n: int, k: int, transposes: str,
             time_ms: float) -> pk.KernelRow:
    return pk.KernelRow(row_id, "gemm", gpu, pk._gemm_op(m, n, k, transposes), time_ms / 1e3)


def test_two_cards_compare_on_the_shapes_both_time_above_the_floor():
    rows = [gemm_row("a1", "gtx1080ti", 4096, 4096, 4096, "NN", 9.0),
            gemm_row("b1", "titan-xp", 4096, 4096, 4096, "NN", 10.0),
            gemm_row("a2", "gtx1080ti", 512, 16, 512, "NN", 0.01),   # below the floor
            gemm_row("b2", "titan-xp", 512, 16, 512, "NN", 0.02),
            gemm_row("a3", "gtx1080ti", 2048, 2048, 2048, "TN", 4.0)]  # the Xp lacks it
    table = data.by_card_and_shape(rows)
    assert data.card_ratios(table, "gtx1080ti", "titan-xp") == {"gemm": [pytest.approx(0.9)]}
    assert data.card_ratios(table, "titan-xp", "gtx1080ti") == {"gemm": [pytest.approx(1 / 0.9)]}


def test_a_shape_timed_twice_is_read_as_the_median_and_its_spread_reported():
    rows = [gemm_row("K1", "m40", 1024, 1024, 1024, "NN", 4.0),
            gemm_row("K2", "m40", 1024, 1024, 1024, "NN", 1.0),
            gemm_row("K3", "titan-x-maxwell", 1024, 1024, 1024, "NN", 2.0),
            gemm_row("K4", "titan-x-maxwell", 1024, 1024, 1024, "NN", 2.2)]
    table = data.by_card_and_shape(rows)
    assert data.gemm_time_s(table, "m40", 1024, 1024, 1024, "NN") == pytest.approx(2.5e-3)
    facts = data.duplicate_facts(table)
    assert facts["data_dup_shape"] == "the NN product 1024 x 1024 x 1024"
    assert facts["data_dup_slow"] == "4.00 ms in row K1 of the m40's table"
    assert facts["data_dup_fast"] == "1.00 ms in row K2"
    # 1.1x on the Titan X is not more than twice
    assert facts["data_dup_others"] == "0 other cards' two times of it differ more than twice"
    assert (facts["data_dup_shapes"], facts["data_dup_shapes_2x"]) == ("2", "1")
    with pytest.raises(ValueError, match="no m40 GEMM 8 x 8 x 8 TN row"):
        data.gemm_time_s(table, "m40", 8, 8, 8, "TN")


def test_dram_share_and_rate_follow_the_bytes_and_flops_of_the_product():
    from hwmodels import catalog
    bandwidth = catalog.device("v100").mem_bandwidth_Bps
    moved = 4 * (100 * 10 + 10 * 20 + 100 * 20)
    assert data.dram_share("v100", 100, 20, 10, moved / bandwidth) == pytest.approx(1.0)
    assert data.tflops(1000, 1000, 1000, 1e-3) == pytest.approx(2.0)
