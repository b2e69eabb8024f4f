"""validation.calibrate and `dnnsim calibrate`: what is measured, resuming, bad profiles."""
import json
from pathlib import Path

import pytest

from hwmodels.model import model_for
from hwmodels.profile import Profile
from hwmodels.specs import HardwareError
from simulator.cli import main
from simulator.scenario import resolve_hardware
from validation import calibrate as cal
from validation.calibration_nets import NETWORKS
from validation.validate import simulate_graph
from workloads import zoo
from workloads.training import lower_training

META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1}
MEASURED_PROFILE = (Path(__file__).resolve().parents[2] / "validation" / "measured"
                    / "cpu_profile.toml")


def test_calibration_cases_grid_and_synthetic_networks():
    cases = cal.calibration_cases((("lenet5", 8),), grid=True, synthetic=False)
    assert cases == [("lenet5", 4), ("lenet5", 8), ("lenet5", 16)]
    full = cal.calibration_cases()
    assert set(cal.DEFAULT_CASES) <= set(full)
    assert {n for n, _ in full if n.startswith("grid_")} == set(NETWORKS)
    assert full == sorted(set(full))             # deterministic order, no repeats


def test_records_of_replay_take_the_fastest_round_and_dedupe():
    train = lower_training(zoo.get("resnet20", batch=2))
    ops = [op for op in train.topo() if not op.is_view]
    slow = {op.name: 2e-3 for op in ops}
    fast = {op.name: 1e-3 for op in ops}
    fast[ops[5].name] = 5e-3                    # one op slower in the faster round
    recs = cal.records_of_replay("resnet20", train, [slow, fast])
    assert len(recs) < len(ops)                 # repeated block shapes counted once
    by_key = {r["key"]: r for r in recs}
    assert by_key[cal.op_key(ops[0])]["time_s"] == 1e-3
    assert by_key[cal.op_key(ops[5])]["time_s"] >= 1e-3   # from the fastest round
    assert all(r["sources"] == ["resnet20"] for r in recs)


def test_partial_file_resumes_and_ignores_a_torn_line(tmp_path):
    pytest.importorskip("torch")
    cases = [("lenet5", 2)]
    partial = tmp_path / "p.jsonl"
    train = lower_training(zoo.get("lenet5", batch=2))
    fake = {op.name: 123.0 for op in train.topo() if not op.is_view}
    rec = {"key": cal.round_id("lenet5", 2, 0), "graph": cal.graph_fingerprint(train),
           "times": fake}
    # round 1 was measured on another version of the graph: stale, measured again
    stale = {"key": cal.round_id("lenet5", 2, 1), "graph": "0123456789abcdef",
             "times": {"conv1": 1.0}}
    partial.write_text(json.dumps(stale) + "\n" + json.dumps(rec) + "\n" + '{"key": "torn',
                       encoding="utf-8")
    recs = cal.measure_cases(cases, partial, rounds=2, progress=False, steps_of=set(cases))
    done = cal.read_partial(partial)
    assert set(done) == {cal.round_id("lenet5", 2, 0), cal.round_id("lenet5", 2, 1)}
    assert done[cal.round_id("lenet5", 2, 0)]["times"] == fake    # kept, not measured again
    assert "step_s" in done[cal.round_id("lenet5", 2, 1)]
    assert all(0 < r["time_s"] < 1 for r in recs)  # the measured round is the faster one
    steps = cal.measured_steps(partial, cases)
    assert [(s["network"], s["batch"]) for s in steps] == cases and steps[0]["measured_s"] > 0


def test_modules_are_timed_in_the_rounds_and_never_replayed(tmp_path):
    pytest.importorskip("torch")
    from validation import heldout
    partial = tmp_path / "p.jsonl"
    timers = heldout.step_timers(cases=[("mlp", 4)], reps=1)
    recs = cal.measure_cases([("lenet5", 2)], partial, rounds=2, progress=False,
                             module_steps=timers)
    assert {r["sources"][0] for r in recs} == {"lenet5"}      # only replays make points
    done = cal.read_partial(partial)
    assert "times" not in done[cal.round_id("mlp", 4, 1)]
    steps = cal.measured_steps(partial, [("mlp", 4)])
    assert steps[0]["network"] == "mlp" and steps[0]["measured_s"] > 0


def test_a_fastest_time_is_settled_when_another_round_confirms_it():
    def rnd(replay_s, steps=None):
        return {"times": {"a": replay_s}, **({"step_s": steps} if steps else {})}
    assert not cal.is_settled([])
    assert not cal.is_settled([rnd(1.0)])                        # one round confirms nothing
    assert cal.is_settled([rnd(1.0), rnd(1.5), rnd(1.02)])
    assert not cal.is_settled([rnd(1.0), rnd(1.1)])
    # a step's fastest time needs its own confirmation, from another round
    assert not cal.is_settled([rnd(1.0, [0.5, 0.51]), rnd(1.01, [0.7, 0.8])])
    assert cal.is_settled([rnd(1.0, [0.5, 0.9]), rnd(1.01, [0.6, 0.505])])
    assert cal.is_settled([{"step_s": [2.0]}, {"step_s": [2.05]}])   # a module: steps only


def test_case_rounds_are_in_round_order_and_of_that_case_only():
    done = {cal.round_id("lenet5", 2, r): {"r": r} for r in (10, 2, 0, 1)}
    done[cal.round_id("lenet5", 20, 0)] = {"r": "other batch"}
    assert [x["r"] for x in cal.case_rounds(done, ("lenet5", 2))] == [0, 1, 2, 10]


def test_unsettled_cases_get_more_rounds_up_to_the_maximum(tmp_path):
    pytest.importorskip("torch")
    partial = tmp_path / "p.jsonl"
    cases = [("lenet5", 2), ("lenet5", 4)]
    lines = []
    for (name, batch), times in zip(cases, ((1.0, 1.01), (1.0, 2.0))):  # settled; not
        train = lower_training(zoo.get(name, batch=batch))
        for r, t in enumerate(times):
            lines.append({"key": cal.round_id(name, batch, r),
                          "graph": cal.graph_fingerprint(train),
                          "times": {op.name: t for op in train.topo() if not op.is_view}})
    partial.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    cal.measure_cases(cases, partial, rounds=2, progress=False, max_rounds=3)
    done = cal.read_partial(partial)
    assert cal.round_id("lenet5", 4, 2) in done                # measured: a real, fast round
    assert cal.round_id("lenet5", 2, 2) not in done            # settled: no third round
    assert cal.round_id("lenet5", 4, 3) not in done            # never past the maximum


def test_build_profile_leave_one_out_and_overhead():
    recs = [{"key": "r1", "kind": "relu", "flops": 10.0, "bytes": 80.0, "time_s": 1e-6,
             "median_s": 2e-6, "sources": ["a"]},
            {"key": "r2", "kind": "relu", "flops": 20.0, "bytes": 160.0, "time_s": 2e-6,
             "median_s": 3e-6, "sources": ["a"]},
            {"key": "r2", "kind": "relu", "flops": 20.0, "bytes": 160.0, "time_s": 4e-6,
             "median_s": 5e-6, "sources": ["b"]},
            {"key": "a1", "kind": "add", "flops": 20.0, "bytes": 240.0, "time_s": 3e-6,
             "median_s": 4e-6, "sources": ["b"]}]
    p = cal.build_profile(recs, META, overhead_s=1e-6)
    # one point per op, the median over the networks it was measured in, plus the overhead
    assert p.points("relu") == [(10.0, 80.0, 2e-6), (20.0, 160.0, 4e-6)]
    assert p.meta["step_overhead_s"] == 1e-6
    loo = cal.build_profile(recs, META, exclude_network="b")
    # strict: r2 goes too, though network a measured it as well
    assert set(loo.kinds) == {"relu"} and loo.points("relu") == [(10.0, 80.0, 1e-6)]
    assert Profile.loads(p.dumps()).dumps() == p.dumps()


def test_ops_csv_round_trip(tmp_path):
    # times are written exactly: a profile rebuilt from the CSV is the calibration's own
    recs = [{"key": "k1", "kind": "relu", "flops": 10.0, "bytes": 80.0, "time_s": 1 / 3 * 1e-5,
             "median_s": 2e-6, "sources": ["a", "b"]},
            {"key": "k2", "kind": "linear", "flops": 4e3, "bytes": 1e3,
             "shape": [2, 10, 200, 1, 1, 1, 1],
             "time_s": 3e-6, "median_s": 4e-6, "sources": ["a"]},
            {"key": "k3", "kind": "add", "flops": 10.0, "bytes": 120.0, "shape": [2, 5],
             "time_s": 2e-6, "median_s": 2e-6, "sources": ["a"]}]
    cal.write_ops_csv(recs, tmp_path / "ops.csv")
    back = cal.read_ops_csv(tmp_path / "ops.csv")
    assert back[0]["sources"] == ["a", "b"] and back[0]["time_s"] == 1 / 3 * 1e-5
    assert back[0]["shape"] is None and back[1]["shape"] == [2, 10, 200, 1, 1, 1, 1]
    # GEMM records become 10-number points, others 5 with their layout
    prof = cal.build_profile(back, META)
    assert prof.points("linear") == [(4e3, 1e3, 3e-6, 2, 10, 200, 1, 1, 1, 1)]
    assert prof.points("add") == [(10.0, 120.0, 2e-6, 2, 5)]


# -- bad profiles ----------------------------------------------------------------------------
def test_ops_csv_of_an_older_calibration_still_reads(tmp_path):
    old = tmp_path / "old_ops.csv"
    old.write_text("kind,flops,bytes,gemm,time_s,median_s,sources,key\n"
                   "linear,4000.0,1000.0,2;10;200;1;1;1;1,3e-06,4e-06,a,k2\n", encoding="utf-8")
    assert cal.read_ops_csv(old)[0]["shape"] == [2, 10, 200, 1, 1, 1, 1]


def test_missing_and_malformed_profile_files(tmp_path):
    with pytest.raises(HardwareError, match="cannot read profile"):
        Profile.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta\n", encoding="utf-8")
    with pytest.raises(HardwareError, match="not valid TOML"):
        resolve_hardware(str(bad))
    nameless = tmp_path / "nameless.toml"
    nameless.write_text('[meta]\ndevice_kind = "cpu"\n', encoding="utf-8")
    with pytest.raises(HardwareError, match="device_name is missing"):
        resolve_hardware(str(nameless))


def test_profile_of_another_device_kind_is_refused(tmp_path):
    gpu = Profile(meta={"device_kind": "gpu", "device_name": "xeon-avx512-2c"},
                  kinds={"relu": [[1.0, 8.0, 1e-6]]})
    with pytest.raises(HardwareError, match="profile is for a gpu"):
        simulate_graph(zoo.get("lenet5", batch=2), gpu)
    with pytest.raises(HardwareError, match="profile is for a gpu"):
        model_for("xeon-avx512-2c", gpu)


def test_missing_op_kind_is_an_explicit_fallback():
    p = Profile(meta=dict(META), kinds={"conv2d": [[1e6, 1e5, 1e-4], [1e8, 1e6, 1e-2]]})
    _, fallbacks = simulate_graph(zoo.get("lenet5", batch=2), p)
    assert fallbacks["relu"] > 0 and "conv2d" not in fallbacks


def test_profile_works_where_a_catalog_name_does(tmp_path, capsys):
    p = Profile(meta=dict(META), kinds={"conv2d": [[1e6, 1e5, 1e-4], [1e8, 1e6, 1e-2]]})
    path = tmp_path / "p.toml"
    p.save(path)
    spec, prof = resolve_hardware(str(path))
    assert spec.name == "xeon-avx512-2c" and prof == p
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware",
                 str(path)]) == 0


def test_calibrate_cli_bad_input(capsys):
    assert main(["calibrate", "--device", "tpu", "--out", "x.toml"]) == 2
    assert "--device must be cpu or cuda" in capsys.readouterr().err
    assert main(["calibrate", "--device-name", "v100", "--out", "x.toml"]) == 2
    assert "is a gpu" in capsys.readouterr().err
    assert main(["calibrate", "--rounds", "0", "--out", "x.toml"]) == 2
    assert "--rounds must be >= 1" in capsys.readouterr().err
    assert main(["calibrate", "--rounds", "4", "--max-rounds", "3", "--out", "x.toml"]) == 2
    assert "--max-rounds must be >= --rounds (4), got 3" in capsys.readouterr().err


def test_calibrate_refuses_an_output_it_could_not_write_before_measuring(tmp_path, capsys):
    missing = tmp_path / "no_such_folder" / "heldout.csv"
    assert main(["calibrate", "--out", str(tmp_path / "p.toml"),
                 "--heldout-csv", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "--heldout-csv" in err and "does not exist" in err
    assert not (tmp_path / "p.toml.partial.jsonl").exists()      # nothing was measured


def test_reference_is_a_calibrated_case_and_read_from_the_rounds(tmp_path):
    assert cal.REFERENCE_CASE in cal.DEFAULT_CASES          # replayed by every calibration
    partial = tmp_path / "p.jsonl"
    lines = [{"key": cal.round_id(*cal.REFERENCE_CASE, r), "times": {"a": t, "b": 0.01}}
             for r, t in enumerate((0.05, 0.03, 0.04))]
    partial.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    assert cal.reference_from_rounds(partial) == pytest.approx(0.04)
    assert cal.reference_from_rounds(tmp_path / "none.jsonl") is None


def test_speed_check_compares_the_machine_with_calibration():
    pytest.importorskip("torch")
    committed = Profile.load(MEASURED_PROFILE)
    none = cal.speed_check(Profile(meta={k: v for k, v in committed.meta.items()
                                         if k != "reference_replay_s"}, kinds={}))
    assert "none" in none
    slow = Profile(meta={**committed.meta, "reference_replay_s": 1e-6}, kinds={})
    line = cal.speed_check(slow)
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
    measured = Path(__file__).resolve().parents[2] / "validation" / "measured"
    out = tmp_path / "refit.toml"
    assert main(["calibrate", "--refit", str(measured / "cpu_profile.toml"), "--ops-csv",
                 str(measured / "cpu_ops.csv"), "--out", str(out)]) == 0
    assert out.read_text() == (measured / "cpu_profile.toml").read_text()
    assert "refitted from" in capsys.readouterr().out


def test_refit_bad_input(tmp_path, capsys):
    measured = Path(__file__).resolve().parents[2] / "validation" / "measured"
    profile = str(measured / "cpu_profile.toml")
    out = str(tmp_path / "p.toml")
    assert main(["calibrate", "--refit", profile, "--out", out]) != 0
    assert "--refit needs --ops-csv" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,flops\nrelu,1\n")
    assert main(["calibrate", "--refit", profile, "--ops-csv", str(bad), "--out", out]) != 0
    assert "not an ops CSV of `dnnsim calibrate` (no column bytes" in capsys.readouterr().err
    lines = (measured / "cpu_ops.csv").read_text().splitlines()[:3]
    lines[2] = lines[2].replace(",", ",x", 1)          # a FLOP count that is not a number
    bad.write_text("\n".join(lines) + "\n")
    assert main(["calibrate", "--refit", profile, "--ops-csv", str(bad), "--out", out]) != 0
    assert "bad.csv, line 3" in capsys.readouterr().err
    assert not (tmp_path / "p.toml").exists()


def test_build_profile_fits_residency_and_stores_times_of_steps_that_do_not_fit(monkeypatch):
    from validation import residency
    mib = 2**20
    steps = {}
    recs = []
    for i in range(6):                  # six shapes, each measured in a small and a big step
        t = 10e-6 * (i + 1)
        steps[(f"k{i}", "small")], steps[(f"k{i}", "big")] = 8 * mib, 300 * mib
        recs += [{"key": f"k{i}", "kind": "relu", "flops": 10.0 * (i + 1), "bytes": 80.0,
                  "time_s": t - min(20e-6, 0.4 * t), "median_s": t, "sources": ["small"]},
                 {"key": f"k{i}", "kind": "relu", "flops": 10.0 * (i + 1), "bytes": 80.0,
                  "time_s": t, "median_s": t, "sources": ["big"]}]
    monkeypatch.setattr(residency, "step_bytes_by_key", lambda fitting=False: steps)
    p = cal.build_profile(recs, META)
    r = p.residency
    assert (r.ratio, r.cap_s, r.below_bytes) == pytest.approx((0.6, 20e-6, 32 * mib))
    # both measurements of a shape now say the same: its time in a step that does not fit
    assert [pt[2] for pt in p.points("relu")] == pytest.approx([10e-6 * (i + 1) for i in range(6)])
    # a device without a known L3 gets no fit, and its points stay as measured
    assert cal.build_profile(recs, {**META, "device_name": "skylake-x-6c"}).residency is None


def test_a_resumed_run_keeps_the_step_overhead_it_measured(tmp_path, monkeypatch):
    partial = tmp_path / "p.jsonl"
    partial.write_text('{"key": "resnet20@16#0", "graph": "x", "times": {"a": 1.0}}')  # torn
    measured = []
    monkeypatch.setattr(cal, "measure_overhead",
                        lambda device, rounds: measured.append(rounds) or 3e-6)
    assert cal.overhead_from_partial(partial, "cpu", rounds=5) == 3e-6
    monkeypatch.setattr(cal, "measure_overhead", lambda device, rounds: 9e-6)
    assert cal.overhead_from_partial(partial, "cpu") == 3e-6      # recorded, not measured
    assert measured == [5] and len(cal.read_partial(partial)) == 2
    # a record of another overhead network (an older dnnsim) is measured again
    lines = partial.read_text().splitlines()
    partial.write_text("\n".join([lines[0], lines[1].replace('"graph": "', '"graph": "old')])
                       + "\n")
    assert cal.overhead_from_partial(partial, "cpu") == 9e-6
