"""calibrate --published takes a folder holding single_gpu.csv (and kernels.csv, if it has
kernel times) or one CSV of training rows: a missing path, a folder without single_gpu.csv or a
table that cannot be read is one error line naming what is wrong, with nothing written."""
from __future__ import annotations

import pytest

from simulator.cli import main


@pytest.mark.parametrize("layout, message", [
    ("missing", "no such file or folder"),
    ("empty folder", "give a folder holding single_gpu.csv"),
    ("kernels only", "it lacks single_gpu.csv"),
    ("header only", "no rows (only the header network, gpu"),
    ("columns missing", "not a published table (no column precision, batch_per_gpu)"),
])
def test_a_published_path_it_cannot_fit_is_named(tmp_path, capsys, layout, message):
    given = tmp_path / "mine"
    header = "network,gpu,precision,batch_per_gpu,throughput_img_s\n"
    if layout == "header only":
        given.write_text(header)
    elif layout == "columns missing":
        given.mkdir()
        (given / "single_gpu.csv").write_text("network,gpu\nresnet50,v100\n")
    elif layout != "missing":
        given.mkdir()
        if layout == "kernels only":
            (given / "kernels.csv").write_text(header)
    out = tmp_path / "families.toml"
    assert main(["calibrate", "--published", str(given), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(given) in err, err
    assert err.count("\n") == 1 and not out.exists()
