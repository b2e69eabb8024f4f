"""`dnnsim plot --y efficiency`: speedup over the baseline divided by the device ratio."""
from __future__ import annotations

import pytest

from simulator.cli import main
from simulator.commands.plot import curves, load_rows
from simulator.sweep import Sweep, run_sweep

SWEEP = {"base": {"workload": "lenet5", "batch": 8, "hardware": "v100",
                  "policy": "data-parallel", "link": "eth1g"},
         "axes": {"devices": [1, 2, 4], "policy": ["sequential", "data-parallel"]},
         "exclude": [{"policy": "sequential", "devices": [2, 4]}]}
BASELINE = {"devices": 1, "policy": "sequential"}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("eff") / "r.jsonl"
    run_sweep(Sweep.from_dict(SWEEP), out, workers=1, progress=False)
    return load_rows(out), out


def test_efficiency_is_speedup_over_the_device_ratio(rows):
    data, _ = rows
    where = {"policy": "data-parallel"}
    speedup = dict(curves(data, "devices", "speedup", [], BASELINE, where)["speedup"])
    efficiency = dict(curves(data, "devices", "efficiency", [], BASELINE, where)["efficiency"])
    assert set(efficiency) == {1, 2, 4}
    for n, e in efficiency.items():
        assert e == pytest.approx(speedup[n] / n)
    assert efficiency[4] < 1     # eth1g does not scale LeNet-5 linearly


def test_efficiency_needs_a_baseline(rows, tmp_path, capsys):
    _, path = rows
    assert main(["plot", str(path), "--x", "devices", "--y", "efficiency",
                 "--out", str(tmp_path / "e.png")]) == 2
    assert "--y efficiency needs --baseline" in capsys.readouterr().err
