"""calibrate --published takes a folder of the two published tables: a file, a missing folder
or a folder short of a table is one error line naming what it lacks, with nothing written."""
from __future__ import annotations

import pytest

from simulator.cli import main


@pytest.mark.parametrize("layout, lacks", [
    ("missing", "kernels.csv and single_gpu.csv"),
    ("file", "kernels.csv and single_gpu.csv"),
    ("networks only", "it lacks kernels.csv"),
])
def test_a_published_folder_without_its_tables_is_named(tmp_path, capsys, layout, lacks):
    given = tmp_path / "mine"
    if layout == "file":
        given.write_text("network,gpu,precision,batch_per_gpu,throughput_img_s\n")
    elif layout == "networks only":
        given.mkdir()
        (given / "single_gpu.csv").write_text("network,gpu\n")
    out = tmp_path / "families.toml"
    assert main(["calibrate", "--published", str(given), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--published {str(given)!r}: give a folder holding" in err and lacks in err
    assert err.count("\n") == 1 and not out.exists()
