"""The SparseTrain loop measured on an AVX-512 Intel core with two FMA units (loop_bench.c)
against the instruction-cost model of the same loop (hwmodels/cpu_conv.py)."""
from __future__ import annotations

import csv

from hwmodels.cpu_conv import FP32_BYTES, _sparse_vector_cycles
from hwmodels.x86_loop import core_table
from validation.paths import MEASURED
from validation.reproduce.sparsetrain import loop_bench

MEASURED_FILE = MEASURED / "sparsetrain_loop_xeon-avx512-2vcpu.csv"


def _rows() -> list[dict]:
    with MEASURED_FILE.open() as fh:
        header = fh.readline()
        assert header.startswith("# measured on '")   # names the machine
        return list(csv.DictReader(fh))


def _model_speedup(row: dict) -> float:
    """The loop and its no-skip reference on the Skylake-X table with two FMA units: the
    measured core's count (not a Skylake-X: the agreement checks the loop model's form)."""
    table = core_table("skylake-x-10c", 2)
    fmas, sets = int(row["fmas_per_nonzero"]), int(row["weight_sets"])
    lanes = 16
    dense = lanes * table.cycles({"vbroadcastss_zmm_m32": 1, "vfmadd231ps_zmm_m512": fmas})
    uses = 0.0
    if sets > 1:   # each vector reads another weight set: every line from L2, used once
        uses = 1.0
        dense = max(dense, lanes * fmas * lanes * FP32_BYTES / table.l2_bytes_per_cycle)
    q = round((1.0 - float(row["sparsity"])) * 1e6)
    return dense / _sparse_vector_cycles(table, float(fmas), lanes, q, uses)


def test_model_follows_the_measured_loop_from_half_zeros_on():
    rows = [r for r in _rows() if float(r["sparsity"]) >= 0.5]
    assert len(rows) >= 16
    for r in rows:
        ratio = _model_speedup(r) / float(r["speedup"])
        assert 1 / 1.2 < ratio < 1.2, r


def test_measured_loop_loses_at_no_sparsity_and_gains_with_it():
    for f in ("14", "24"):
        l1 = [r for r in _rows() if r["fmas_per_nonzero"] == f and r["weight_sets"] == "1"]
        speedups = [float(r["speedup"]) for r in sorted(l1, key=lambda r: float(r["sparsity"]))]
        assert speedups[0] < 1.0 < speedups[-1]
        assert all(a < b for a, b in zip(speedups[:-1], speedups[1:], strict=True))
        # mispredicted exits: at 90% zeros far from the 10x of the FMAs alone
        assert speedups[-1] < 6.0


def test_existing_output_is_kept_and_bad_reps_refused(tmp_path, capsys):
    out = tmp_path / "mine.csv"
    out.write_text("keep me\n")
    assert loop_bench.main([str(out)]) == 2
    assert out.read_text() == "keep me\n"
    assert "exists" in capsys.readouterr().err
    assert loop_bench.main([str(tmp_path / "new.csv"), "--reps", "0"]) == 2
    assert not (tmp_path / "new.csv").exists()


def test_benchmark_source_ships_beside_its_runner():
    assert loop_bench.SOURCE.is_file()
