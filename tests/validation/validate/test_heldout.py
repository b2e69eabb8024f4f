"""Held-out PyTorch modules (validation/calibrate/heldout.py): not in the zoo, shapes no
calibration case has, brought in through from_torch and scored against their committed measured
steps."""
import pytest

torch = pytest.importorskip("torch")

from hwmodels.profile import Profile  # noqa: E402
from simulator.cli import main  # noqa: E402
from validation.calibrate import heldout, steps_csv  # noqa: E402
from validation.calibrate.calibration_nets import get  # noqa: E402
from validation.calibrate.cases import op_key  # noqa: E402
from validation.paths import MEASURED  # noqa: E402
from validation.validate import compare as v  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402

PROFILE = MEASURED / "cpu_profile.toml"
HELDOUT = MEASURED / "cpu_heldout_steps.csv"

# Timed in the committed calibration's own rounds (calibrate --heldout-csv), each module one
# persistent training loop, on its machine: MAPE 4.4%, max 11.0%, tau 0.98 over 36 cases. The
# set is not blind (model rules were once examined on it), so rules are chosen on calibration
# data (validation.experiments.grid_cv, leave-one-network-out; docs/cpu-model.md). The MAPE
# guard sits above the figure, so a model change that generalises worse fails; the maximum's
# guard is the goal for networks no calibration has seen (20%). Calibrations of the same code
# differ by 1-3 points here.
HELDOUT_MAPE_GUARD_PCT, HELDOUT_MAX_GUARD_PCT, HELDOUT_TAU_GUARD = 5.0, 20.0, 0.9


def test_every_case_is_measured_and_unseen_by_calibration():
    rows = steps_csv.read_steps_csv(HELDOUT)
    assert {(r["network"], int(r["batch"])) for r in rows} == set(heldout.CASES)
    from validation.calibrate.cases import calibration_cases
    seen = {op_key(op) for case in calibration_cases()
            for op in lower_training(get(*case)).topo()}
    unseen = total = 0
    for name, batch in heldout.CASES:
        ops = [op for op in lower_training(heldout.graph(name, batch)).topo()
               if op.kind.startswith("conv2d") or op.kind.startswith("linear")]
        new = sum(op_key(op) not in seen for op in ops)
        assert new > len(ops) // 2, name         # a few common shapes may coincide
        unseen, total = unseen + new, total + len(ops)
    assert unseen >= 0.85 * total


def test_simulator_predicts_heldout_modules():
    rows = v.simulate_measured(steps_csv.read_steps_csv(HELDOUT), Profile.load(PROFILE))
    assert not any(r.fallbacks for r in rows), v.format_table(rows)
    s = v.summarize(rows)
    assert s.mape_pct <= HELDOUT_MAPE_GUARD_PCT, v.format_table(rows)
    assert s.max_abs_error_pct <= HELDOUT_MAX_GUARD_PCT, v.format_table(rows)
    assert s.kendall_tau >= HELDOUT_TAU_GUARD, v.format_table(rows)


def test_heldout_measure_writes_steps():
    rows = heldout.measure([("mlp", 4)], rounds=1, reps=1, progress=False)
    assert rows[0]["network"] == "mlp" and rows[0]["measured_s"] > 0


def test_unknown_heldout_network():
    with pytest.raises(WorkloadError, match="unknown held-out network 'nope'"):
        heldout.graph("nope", 2)


@pytest.mark.parametrize("extra", [["--workloads", "lenet5"], ["--measured", str(HELDOUT)]])
def test_validate_heldout_refuses_other_cases(capsys, extra):
    assert main(["validate", "--profile", str(PROFILE), "--heldout", *extra]) == 2
    assert "--heldout measures its own modules" in capsys.readouterr().err
