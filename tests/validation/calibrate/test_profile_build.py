"""validation.calibrate: the profile built from op measurements, the ops CSV, and profiles
that are missing, malformed or of another device."""
import pytest

from hwmodels.model import model_for
from hwmodels.profile import Profile
from hwmodels.specs import HardwareError
from simulator.cli import main
from simulator.scenario import resolve_hardware
from validation.calibrate import profile_build, residency_fit
from validation.validate.compare import simulate_graph
from workloads import zoo
from workloads.graph import WorkloadError

META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1}


def test_build_profile_leave_one_out_and_overhead():
    recs = [{"key": "r1", "kind": "relu", "flops": 10.0, "bytes": 80.0, "time_s": 1e-6,
             "median_s": 2e-6, "sources": ["a"]},
            {"key": "r2", "kind": "relu", "flops": 20.0, "bytes": 160.0, "time_s": 2e-6,
             "median_s": 3e-6, "sources": ["a"]},
            {"key": "r2", "kind": "relu", "flops": 20.0, "bytes": 160.0, "time_s": 4e-6,
             "median_s": 5e-6, "sources": ["b"]},
            {"key": "a1", "kind": "add", "flops": 20.0, "bytes": 240.0, "time_s": 3e-6,
             "median_s": 4e-6, "sources": ["b"]}]
    p = profile_build.build_profile(recs, META, overhead_s=1e-6)
    # one point per op, the median over the networks it was measured in, plus the overhead
    assert p.points("relu") == [(10.0, 80.0, 2e-6), (20.0, 160.0, 4e-6)]
    assert p.meta["step_overhead_s"] == 1e-6
    loo = profile_build.build_profile(recs, META, exclude_network="b")
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
    profile_build.write_ops_csv(recs, tmp_path / "ops.csv")
    back = profile_build.read_ops_csv(tmp_path / "ops.csv")
    assert back[0]["sources"] == ["a", "b"] and back[0]["time_s"] == 1 / 3 * 1e-5
    assert back[0]["shape"] is None and back[1]["shape"] == [2, 10, 200, 1, 1, 1, 1]
    # GEMM records become 10-number points, others 5 with their layout
    prof = profile_build.build_profile(back, META)
    assert prof.points("linear") == [(4e3, 1e3, 3e-6, 2, 10, 200, 1, 1, 1, 1)]
    assert prof.points("add") == [(10.0, 120.0, 2e-6, 2, 5)]


def test_ops_csv_of_an_older_calibration_still_reads(tmp_path):
    old = tmp_path / "old_ops.csv"
    old.write_text("kind,flops,bytes,gemm,time_s,median_s,sources,key\n"
                   "linear,4000.0,1000.0,2;10;200;1;1;1;1,3e-06,4e-06,a,k2\n", encoding="utf-8")
    assert profile_build.read_ops_csv(old)[0]["shape"] == [2, 10, 200, 1, 1, 1, 1]


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


def test_build_profile_fits_residency_and_stores_times_of_steps_that_do_not_fit(monkeypatch):
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
    monkeypatch.setattr(residency_fit, "step_bytes_by_key", lambda fitting=False: steps)
    p = profile_build.build_profile(recs, META)
    r = p.residency
    assert (r.ratio, r.cap_s, r.below_bytes) == pytest.approx((0.6, 20e-6, 32 * mib))
    # both measurements of a shape now say the same: its time in a step that does not fit
    assert [pt[2] for pt in p.points("relu")] == pytest.approx([10e-6 * (i + 1) for i in range(6)])
    # a device without a known L3 gets no fit, and its points stay as measured
    other = {**META, "device_name": "skylake-x-6c"}
    assert profile_build.build_profile(recs, other).residency is None
    # the L3 the machine reported decides, over the catalog's: 16 MiB holds the small steps,
    # 4 MiB none of them
    reported = profile_build.build_profile(recs, {**other, "l3_bytes": 16 * mib}).residency
    assert reported.below_bytes == 16 * mib and reported.ratio == pytest.approx(0.6)
    assert profile_build.build_profile(recs, {**META, "l3_bytes": 4 * mib}).residency is None


def test_an_ops_csv_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "ops.csv"
    path.write_bytes(b"kind,flops,bytes,time_s,median_s,sources,key\nconv\xff,1,1,1,1,a,k\n")
    with pytest.raises(WorkloadError, match=r"ops.csv: not a CSV file: 'utf-8' codec"):
        profile_build.read_ops_csv(path)
