"""validation.experiments.grid_cv: leave-one-grid-network-out on the committed calibration."""
import pytest

from validation.experiments import grid_cv
from validation.paths import MEASURED

PROFILE, OPS = MEASURED / "cpu_profile.toml", MEASURED / "cpu_ops.csv"


def test_each_grid_case_is_predicted_without_its_own_shapes():
    rows = grid_cv.rows_for(PROFILE, OPS, ["grid_pool", "grid_k3"])
    assert [(r.name, r.batch) for r in rows] == [("grid_k3", 2), ("grid_k3", 8),
                                                 ("grid_pool", 4), ("grid_pool", 16)]
    for r in rows:
        assert r.measured_s > 0 and r.simulated_s > 0 and not r.fallbacks
        # predicted from other networks only, so not the network's own measured step
        assert r.simulated_s != pytest.approx(r.measured_s, rel=1e-6)
        assert abs(r.error_pct) < 30, r


def test_cli_prints_the_table_and_names_bad_input(capsys, tmp_path):
    assert grid_cv.main(["--networks", "grid_pool"]) == 0
    assert "cases 2: MAPE" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        grid_cv.main(["--networks", "resnet20"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no grid network among resnet20; known: grid_act, grid_act_mlp, " in err
    assert ", grid_gate, grid_grouped_w16, " in err and ", grid_k1, " in err
    with pytest.raises(SystemExit):
        grid_cv.main(["--profile", str(tmp_path / "missing.toml")])
    assert "missing.toml" in capsys.readouterr().err
