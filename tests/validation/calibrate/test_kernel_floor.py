"""The floor class-wide constants leave on the kernel tables: the best constant per class is
the best, finer classes never do worse, and the batch-pair spread is what no constant
removes."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from validation.calibrate import kernel_floor as kf
from validation.calibrate import published_kernels as pk

ratios = st.lists(st.floats(min_value=0.2, max_value=5.0), min_size=1, max_size=30)


def _loss(c: float, rs: list[float]) -> float:
    return sum(abs(c * r - 1.0) for r in rs)


@given(ratios, st.floats(min_value=0.1, max_value=10.0))
def test_no_constant_beats_the_best_scale(rs, other):
    best = kf.best_scale(rs)
    assert _loss(best, rs) <= _loss(other, rs) + 1e-9
    for r in rs:            # the optimum of a piecewise-linear loss sits on a kink
        assert _loss(best, rs) <= _loss(1.0 / r, rs) + 1e-9


def _error(ratio: float, gpu: str, shape: str, algorithm: str, kind: str = "gemm",
           layer: tuple = (), variant: int | str = "NN") -> kf.RowError:
    return kf.RowError("r", kind, gpu, shape, algorithm, layer, variant, ratio)


@given(st.lists(st.tuples(st.floats(min_value=0.2, max_value=5.0), st.sampled_from("ab"),
                          st.sampled_from("xyz"), st.sampled_from("pq")),
                min_size=1, max_size=40))
def test_finer_classes_never_do_worse(rows):
    errors = [_error(*row) for row in rows]
    floors = [kf.oracle_mape(errors, key) for _, key in kf.GRANULARITIES]
    assert kf.mape(errors) + 1e-9 >= floors[0]
    assert all(a + 1e-9 >= b for a, b in zip(floors, floors[1:], strict=False))


def test_a_class_missed_by_one_factor_has_no_floor():
    errors = [_error(1.3, "a", "x", "p"), _error(1.3, "a", "x", "p"),
              _error(0.7, "b", "x", "p")]
    assert kf.mape(errors) > 25.0
    assert math.isclose(kf.oracle_mape(errors, lambda e: e.gpu), 0.0, abs_tol=1e-9)


def test_the_pair_spread_ignores_a_shapes_constant_but_not_its_variants():
    same = [_error(r, "a", "x", "p", "conv2d", layer, batch)
            for layer, r in ((("L1",), 1.4), (("L2",), 0.6)) for batch in (8, 16)]
    assert kf.pair_spread(same) == (2, 0.0)
    apart = [_error(r, "a", "x", "p", "conv2d", ("L",) + layer, batch)
             for layer, (r8, r16) in ((("1",), (1.0, 1.2)), (("2",), (1.0, 0.8)))
             for batch, r in ((8, r8), (16, r16))]
    pairs, spread = kf.pair_spread(apart)
    assert pairs == 2 and spread > 0.15
    # a GEMM's pair is its NN and TN call; NT has none
    gemms = [_error(r, "a", "x", "p", "gemm", (64, 64, 64), t)
             for t, r in (("NN", 1.0), ("TN", 1.5), ("NT", 3.0))]
    assert kf.pair_spread(gemms) == (1, 0.0)


def test_on_the_committed_table_each_kind_has_its_floors_and_pairs(gpu_validation_runs):
    errors = gpu_validation_runs.errors   # kf.row_errors of the committed kernels.csv
    table = kf.floor_table(errors)
    for kind in pk.KERNEL_KINDS:
        sel = [e for e in errors if e.kind == kind]
        floors = [kf.oracle_mape(sel, key) for _, key in kf.GRANULARITIES]
        assert kind in table and len(sel) > 600
        assert kf.mape(sel) >= floors[0] >= floors[-1] > 0.0
        pairs, spread = kf.pair_spread(sel)
        # convolutions are timed at batch 8 and 16 (and 4 and 32), GEMMs NN and TN: the pairs
        # exist, and their ratio scatters
        assert pairs > 100 and spread > 0.05


def test_the_command_prints_the_floors_and_the_classes(capsys):
    assert kf.main(["--classes", "2"]) == 0
    out = capsys.readouterr().out
    assert "oracle (4)" in out and out.count(" rows  share ") == 2 * len(pk.KERNEL_KINDS)


def test_bad_input_is_a_named_error_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    assert kf.main([str(missing)]) == 2
    assert "missing.csv" in capsys.readouterr().err
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("row_id,kind,gpu,precision\nK1,gemm,No Such GPU,FP32\n")
    assert kf.main([str(unknown)]) == 2
    assert "no kernel row could be simulated (1 skipped)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        kf.main(["--classes", "-1"])
    assert exit_.value.code == 2
    assert not missing.exists() and unknown.read_text().startswith("row_id")
