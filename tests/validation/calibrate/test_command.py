"""`dnnsim calibrate` (bad input, --refit) and the machine speed check that `dnnsim validate`
prints."""
import pytest

from hwmodels.profile import Profile
from simulator.cli import main
from validation.calibrate import machine
from validation.paths import MEASURED

MEASURED_PROFILE = MEASURED / "cpu_profile.toml"


def test_calibrate_cli_bad_input(capsys):
    assert main(["calibrate", "--device", "tpu", "--out", "x.toml"]) == 2
    assert "--device must be cpu or cuda" in capsys.readouterr().err
    assert main(["calibrate", "--device-name", "v100", "--out", "x.toml"]) == 2
    assert "is a gpu" in capsys.readouterr().err
    assert main(["calibrate", "--rounds", "0", "--out", "x.toml"]) == 2
    assert "--rounds must be >= 1" in capsys.readouterr().err
    assert main(["calibrate", "--rounds", "4", "--max-rounds", "3", "--out", "x.toml"]) == 2
    assert "--max-rounds must be >= --rounds (4), got 3" in capsys.readouterr().err
    # a count that would measure for days: refused before anything is measured or written
    assert main(["calibrate", "--rounds", "9" * 20, "--out", "x.toml"]) == 2
    assert "--rounds 99,999,999,999,999,999,999 is past dnnsim's limit of 1,000" in \
        capsys.readouterr().err
    assert main(["calibrate", "--rounds", "5", "--max-rounds", "5000", "--out", "x.toml"]) == 2
    assert "--max-rounds 5,000 is past dnnsim's limit of 1,000" in capsys.readouterr().err


def test_calibrate_refuses_an_output_it_could_not_write_before_measuring(tmp_path, capsys):
    missing = tmp_path / "no_such_folder" / "heldout.csv"
    assert main(["calibrate", "--out", str(tmp_path / "p.toml"),
                 "--heldout-csv", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "--heldout-csv" in err and "does not exist" in err
    assert not (tmp_path / "p.toml.partial.jsonl").exists()      # nothing was measured


def test_speed_check_compares_the_machine_with_calibration():
    pytest.importorskip("torch")
    committed = Profile.load(MEASURED_PROFILE)
    none = machine.speed_check(Profile(meta={k: v for k, v in committed.meta.items()
                                         if k != "reference_replay_s"}, kinds={}))
    assert "none" in none
    slow = Profile(meta={**committed.meta, "reference_replay_s": 1e-6}, kinds={})
    line = machine.speed_check(slow)
    assert "at calibration (+" in line and "come from the machine" in line


def test_validate_measures_and_reports_the_speed_check(tmp_path, capsys):
    pytest.importorskip("torch")
    prof = Profile.load(MEASURED_PROFILE)
    prof.meta["reference_replay_s"] = 0.1
    prof.save(tmp_path / "p.toml")
    assert main(["validate", "--profile", str(tmp_path / "p.toml"), "--workloads", "lenet5",
                 "--batch", "2", "--csv", str(tmp_path / "t.csv"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "machine speed check: resnet20 at batch 16" in out and "lenet5" in out


def test_refit_rebuilds_the_committed_profile_without_measuring(tmp_path, capsys):
    measured = MEASURED
    out = tmp_path / "refit.toml"
    assert main(["calibrate", "--refit", str(measured / "cpu_profile.toml"), "--ops-csv",
                 str(measured / "cpu_ops.csv"), "--out", str(out)]) == 0
    assert out.read_text() == (measured / "cpu_profile.toml").read_text()
    assert "refitted from" in capsys.readouterr().out


def test_calibrate_names_the_kinds_its_profile_has_no_measurements_of(tmp_path, capsys):
    """The committed ops CSV has none of the sequence and post-2016 kinds: a refit of it says
    which kinds its profile lacks; a profile with every measured kind lacks none."""
    assert main(["calibrate", "--refit", str(MEASURED_PROFILE), "--ops-csv",
                 str(MEASURED / "cpu_ops.csv"), "--out", str(tmp_path / "refit.toml")]) == 0
    err = capsys.readouterr().err
    assert "no measurements of" in err and "channel_shuffle" in err and "layer_scale" in err
    from validation.calibrate.coverage import kinds_without_points, measured_kinds
    covered = Profile(meta={"device_kind": "cpu", "device_name": "xeon-avx512-2c"},
                      kinds={k: [(1.0, 1.0, 1e-6)] for k in measured_kinds()})
    assert kinds_without_points(covered) == []


def test_refit_bad_input(tmp_path, capsys):
    measured = MEASURED
    profile = str(measured / "cpu_profile.toml")
    out = str(tmp_path / "p.toml")
    assert main(["calibrate", "--refit", profile, "--out", out]) != 0
    assert "--refit needs --ops-csv" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,flops\nrelu,1\n")
    assert main(["calibrate", "--refit", profile, "--ops-csv", str(bad), "--out", out]) != 0
    assert "not a calibration ops CSV (no column bytes" in capsys.readouterr().err
    lines = (measured / "cpu_ops.csv").read_text().splitlines()[:3]
    lines[2] = lines[2].replace(",", ",x", 1)          # a FLOP count that is not a number
    bad.write_text("\n".join(lines) + "\n")
    assert main(["calibrate", "--refit", profile, "--ops-csv", str(bad), "--out", out]) != 0
    assert "bad.csv, line 3" in capsys.readouterr().err
    assert not (tmp_path / "p.toml").exists()


def test_a_calibration_records_its_machine_and_threads(monkeypatch):
    pytest.importorskip("torch")
    from hwmodels import cpu_identity
    host = cpu_identity.HostCpu(processor="Test CPU", vendor="TestVendor",
                                isa=("avx", "avx2", "fma"), logical_cpus=4, l3_bytes=8 << 20)
    monkeypatch.setattr(machine, "this_host", lambda: host)
    monkeypatch.setattr(cpu_identity, "this_host", lambda: host)
    meta = machine.machine_meta("cpu", threads=3)
    assert meta["processor"] == "Test CPU" and meta["isa"] == "avx avx2 fma"
    assert meta["threads"] == 3 and meta["logical_cpus"] == 4 and meta["l3_bytes"] == 8 << 20
    assert meta["unrecorded"] == "physical_cores l2_bytes"
    assert meta["vector_fp32_lanes"] == 8          # AVX2: oneDNN's 8-channel blocks
    assert meta["subnormal_slowdown"] > 0          # the probe ran (subnormals.py)
    # what it records is a valid profile, and this machine at 3 threads is no other machine
    profile = Profile(meta={"device_kind": "cpu", **meta}, kinds={})
    assert cpu_identity.differences(profile.meta, host, threads=3) == []


def test_calibrate_never_replaces_a_profile_it_was_not_told_to(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profile.toml").write_text("mine\n")
    assert main(["calibrate", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "profile.toml exists and --out was not given" in err and "--out" in err
    assert (tmp_path / "profile.toml").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.toml"]   # nothing measured


def test_published_fit_refuses_tables_of_which_no_row_can_be_fitted(tmp_path, capsys):
    published = MEASURED / "published"
    for bad in ("kernels.csv", "single_gpu.csv"):
        for name in ("kernels.csv", "single_gpu.csv"):
            header, row = (published / name).read_text(encoding="utf-8").splitlines()[:2]
            if name == bad:
                row = row.replace(',V100,', ',GTX9999,', 1)
            (tmp_path / name).write_text(f"{header}\n{row}\n", encoding="utf-8")
        out = tmp_path / "families.toml"
        assert main(["calibrate", "--published", str(tmp_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{bad}: none of its 1 rows can be fitted" in err and "GTX9999" in err
        assert not out.exists()
