"""validation.calibrate and `dnnsim calibrate`: what is measured, resuming, bad profiles."""
import json

import pytest

from hwmodels.model import model_for
from hwmodels.profile import Profile
from hwmodels.specs import HardwareError
from simulator.cli import main
from simulator.scenario import resolve_hardware
from validation import calibrate as cal
from validation.validate import simulate_graph
from workloads import zoo

META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1}


def test_collect_ops_dedupes_and_records_sources():
    ops = cal.collect_ops((("resnet20", 4), ("resnet56", 4)), grid=False)
    conv = [c for c in ops.values() if c.op.kind == "conv2d"]
    shared = [c for c in conv if c.sources == {"resnet20", "resnet56"}]
    assert shared and len(conv) < 20          # the same block shapes measured once
    assert not any(c.op.is_view for c in ops.values())
    grid = cal.collect_ops((("lenet5", 8),), grid=True)
    batches = {c.op.in_specs[0].shape[0] for c in grid.values() if c.op.kind == "conv2d"}
    assert batches == {4, 8, 16}


def test_partial_file_resumes_and_ignores_a_torn_line(tmp_path):
    pytest.importorskip("torch")
    ops = cal.collect_ops((("lenet5", 2),), grid=False)
    first = sorted(ops)[0]
    partial = tmp_path / "p.jsonl"
    rec = {"key": first, "kind": ops[first].op.kind, "flops": 1.0, "bytes": 1.0,
           "time_s": 123.0, "median_s": 123.0, "sources": ["lenet5"]}
    partial.write_text(json.dumps(rec) + "\n" + '{"key": "torn', encoding="utf-8")
    done = cal.measure_ops(ops, partial, reps=1, progress=False)
    assert done[first]["time_s"] == 123.0      # kept, not measured again
    assert set(done) == set(ops)
    assert len(cal.read_partial(partial)) == len(ops)


def test_build_profile_leave_one_out_and_overhead():
    recs = [{"kind": "relu", "flops": 10.0, "bytes": 80.0, "time_s": 1e-6, "median_s": 2e-6,
             "sources": ["a"]},
            {"kind": "relu", "flops": 20.0, "bytes": 160.0, "time_s": 2e-6, "median_s": 3e-6,
             "sources": ["a", "b"]},
            {"kind": "add", "flops": 20.0, "bytes": 240.0, "time_s": 3e-6, "median_s": 4e-6,
             "sources": ["b"]}]
    p = cal.build_profile(recs, META, overhead_s=1e-6)
    assert p.points("relu") == [(10.0, 80.0, 2e-6), (20.0, 160.0, 3e-6)]
    assert p.meta["step_overhead_s"] == 1e-6
    loo = cal.build_profile(recs, META, exclude_network="b")
    assert set(loo.kinds) == {"relu"} and len(loo.points("relu")) == 1
    assert Profile.loads(p.dumps()).dumps() == p.dumps()


def test_ops_csv_round_trip(tmp_path):
    recs = [{"key": "k1", "kind": "relu", "flops": 10.0, "bytes": 80.0, "time_s": 1.5e-6,
             "median_s": 2e-6, "sources": ["a", "b"]}]
    cal.write_ops_csv(recs, tmp_path / "ops.csv")
    back = cal.read_ops_csv(tmp_path / "ops.csv")
    assert back[0]["sources"] == ["a", "b"] and back[0]["time_s"] == 1.5e-6


# -- bad profiles ----------------------------------------------------------------------------
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
