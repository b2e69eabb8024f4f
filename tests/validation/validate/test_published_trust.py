"""Rows the published data marks anomalous (trust C): scored and listed, never fitted."""
import dataclasses

from validation.calibrate import published_fit as pf
from validation.calibrate import published_gpu as pg
from validation.validate import published as pv

HEADER = "row_id,network,gpu,precision,batch_per_gpu,throughput_img_s,trust\n"


def test_the_trust_column_is_read(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "a,ResNet-18,V100,FP32,8,900,A\nb,ResNet-18,V100,FP32,4,500, c\n"
                    "d,ResNet-18,V100,FP32,2,300,\n", encoding="utf-8")
    rows = pg.read_network_rows(str(path)).rows
    assert [(r.trust, r.untrusted) for r in rows] == [("A", False), ("C", True), ("", False)]


def test_an_anomalous_row_moves_no_constant():
    good = pg.NetworkRow("a", "resnet18", "v100", "fp32", 8, 900.0, True, "Torch7", "",
                         trust="A")
    # the same network published 3x faster, as a copy error might: the fit must not follow it
    copied = dataclasses.replace(good, row_id="c", throughput=2700.0, trust="C")
    alone = constants(pf.fit_all([], [good]))
    families, frameworks = pf.fit_all([], [good, copied])
    assert constants((families, frameworks)) == alone
    # the fit says what it left out
    assert "rows of v100, leaving out 1 the data grades C" in families["volta"].fitted_to
    # trusted rows of the same figure do move them: the test would see a leak (two, so that
    # they outweigh the good row under the fit's absolute log error, which one row of 3x
    # leaves flat anywhere between the two figures)
    trusted = dataclasses.replace(copied, trust="B")
    assert constants(pf.fit_all([], [good, trusted, dataclasses.replace(trusted, row_id="d")])
                     ) != alone


def constants(fitted):
    """The fitted numbers, without the notes on what they were fitted to."""
    families, frameworks = fitted
    return ({k: dataclasses.replace(f, fitted_to="") for k, f in families.items()},
            {k: dataclasses.replace(f, fitted_to="") for k, f in frameworks.items()})


def test_the_report_shows_anomalous_rows_and_the_figures_without_them():
    good = pg.NetworkRow("a", "resnet18", "v100", "fp32", 8, 900.0, True, "Torch7", "",
                         trust="A")
    copied = dataclasses.replace(good, row_id="c", throughput=2700.0, trust="C")
    table = pg.Table(rows=[good, copied], path="rows.csv")
    text = pv.report(table, pv.score_networks(table.rows))
    row_lines = [line for line in text.splitlines() if line.startswith("  c ")]
    assert len(row_lines) == 1 and row_lines[0].endswith("trust C: not fitted")
    assert "  all                       2 rows" in text
    assert "  fp32, not C               1 rows" in text
    assert "  trust C (not fitted)      1 rows" in text
