"""The SparseTrain loop measured on an AVX-512 Intel core with two FMA units (loop_bench.c)
against the instruction-cost model of the same loop (hwmodels/cpu_conv.py); with every FMA
issued twice, the same core stands in for one with a single FMA unit."""
from __future__ import annotations

import csv

from hwmodels.cpu_conv import FP32_BYTES, _sparse_vector_cycles
from hwmodels.x86_loop import core_table
from validation.paths import MEASURED
from validation.reproduce.sparsetrain import loop_bench

MEASURED_FILE = MEASURED / "sparsetrain_loop_xeon-avx512-2vcpu.csv"
REPEAT_FILE = MEASURED / "sparsetrain_loop_fma_repeat_xeon-avx512-2vcpu.csv"


def _rows(path=MEASURED_FILE) -> list[dict]:
    with path.open() as fh:
        header = fh.readline()
        assert header.startswith("# measured on '")   # names the machine
        return list(csv.DictReader(fh))


def _model_speedup(row: dict, fma_units: int = 2) -> float:
    """The loop and its no-skip reference on the Skylake-X table with `fma_units` FMA units
    (the measured core has two; it is no Skylake-X: the agreement checks the loop model's
    form)."""
    table = core_table("skylake-x-10c", fma_units)
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


def test_model_with_one_fma_unit_follows_the_loop_with_every_fma_issued_twice():
    """Twice the FMAs and nothing else more: the FMA-port work of a single-unit core. The
    one-unit model follows those rows as the two-unit model follows the plain ones: within
    20% from half zeros to 80%, within 25% at 90% (where the model, with Skylake-X's L2,
    predicts less than this core gains with its weights beyond L1)."""
    rows = [r for r in _rows(REPEAT_FILE) if float(r["sparsity"]) >= 0.5]
    assert {r["fma_repeat"] for r in rows} == {"1", "2"} and len(rows) >= 40
    for r in rows:
        units = 1 if r["fma_repeat"] == "2" else 2
        ratio = _model_speedup(r, units) / float(r["speedup"])
        low = 1 / 1.25 if float(r["sparsity"]) > 0.85 else 1 / 1.2
        assert low < ratio < 1.2, r


def test_halving_the_fma_rate_raises_the_measured_speedup_where_fmas_bind():
    """Weights in L1, 70% zeros and more: with every FMA issued twice the skipping loop gains
    more than 10% over its reference, as the model's one-unit core does; the zero detection,
    branches and bubbles stay behind the FMAs."""
    rows = _rows(REPEAT_FILE)
    by_key = {(r["fmas_per_nonzero"], r["weight_sets"], r["fma_repeat"], r["sparsity"]):
              float(r["speedup"]) for r in rows}
    for f in ("14", "24"):
        for s in ("0.70", "0.80", "0.90"):
            assert by_key[(f, "1", "2", s)] > 1.1 * by_key[(f, "1", "1", s)], (f, s)
            one, two = (_model_speedup({"fmas_per_nonzero": f, "weight_sets": "1",
                                        "sparsity": s}, u) for u in (1, 2))
            assert one > 1.05 * two


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
    assert loop_bench.main([str(tmp_path / "new.csv"), "--fma-repeat", "3"]) == 2
    assert "--fma-repeat" in capsys.readouterr().err
    assert not (tmp_path / "new.csv").exists()


def test_benchmark_source_ships_beside_its_runner():
    assert loop_bench.SOURCE.is_file()
