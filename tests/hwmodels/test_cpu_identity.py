"""hwmodels.cpu_identity: what a profile records of its machine, and the warning when a profile
predicts another machine, thread count or PyTorch version."""
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels import Profile, model_for
from hwmodels import cpu_identity as ci

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6430
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512dq avx512vl amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6430
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512dq avx512vl amx_tile
"""
XEON = ci.HostCpu(processor="Intel(R) Xeon(R) Gold 6430", vendor="GenuineIntel",
                  isa=("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                       "amx_tile"), physical_cores=1, logical_cpus=2)
EPYC_META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c",
             "processor": "AMD EPYC (2-vCPU VM)", "vendor": "AuthenticAMD",
             "isa": "avx avx2 fma avx512f avx512bw avx512dq avx512vl", "logical_cpus": 2,
             "unrecorded": "isa physical_cores", "threads": 1, "torch_version": "2.13.0+cpu"}


def test_cpuinfo_gives_processor_isa_and_cores():
    facts = ci.parse_cpuinfo(CPUINFO)
    assert ci.HostCpu(**facts) == XEON    # two hyperthreads of one core


def test_cache_sizes_from_sysfs(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (2, "Unified", "2048K"),
                                             (3, "Unified", "32M")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert ci.cache_bytes(tmp_path) == {"l2_bytes": 2 << 20, "l3_bytes": 32 << 20}


def test_meta_lists_what_the_system_did_not_report():
    meta = ci.HostCpu(processor="x", logical_cpus=4).meta()
    assert meta == {"processor": "x", "logical_cpus": 4,
                    "unrecorded": "vendor isa physical_cores l2_bytes l3_bytes"}
    # it is a valid profile record
    Profile(meta={"device_kind": "cpu", **meta}, kinds={})


def test_differences_name_each_field():
    diffs = ci.differences(EPYC_META, XEON, threads=2, torch_version="2.13.0+cpu")
    assert diffs == [
        "processor: profile 'AMD EPYC (2-vCPU VM)', this machine 'Intel(R) Xeon(R) Gold 6430'",
        "vendor: profile 'AuthenticAMD', this machine 'GenuineIntel'",
        "threads: profile 1, this run 2",
        "unchecked (not recorded): physical_cores"]
    # a partial ISA record misses no flag it names; a full one misses amx_tile
    full = {**EPYC_META, "unrecorded": "physical_cores"}
    assert "isa: this machine has amx_tile" in ci.differences(full, XEON)


def test_same_machine_same_setting_has_no_differences():
    meta = {"device_kind": "cpu", "torch_version": "2.13.0", "threads": 2, **XEON.meta()}
    assert ci.differences(meta, XEON, threads=2, torch_version="2.13.0") == []


@given(threads=st.integers(1, 64), recorded=st.integers(1, 64))
def test_a_thread_count_differs_exactly_when_it_is_another(threads, recorded):
    meta = {"device_kind": "cpu", "torch_version": "t", "threads": recorded, **XEON.meta()}
    assert bool(ci.differences(meta, XEON, threads=threads)) == (threads != recorded)


def test_cpu_model_with_another_machines_profile_warns(monkeypatch):
    monkeypatch.setattr(ci, "this_host", lambda: XEON)
    profile = Profile(meta=dict(EPYC_META), kinds={}, label="epyc.toml")
    with pytest.warns(ci.ProfileMachineWarning) as record:
        model_for("xeon-avx512-2c", profile=profile)
    message = str(record[0].message)
    assert message.startswith("epyc.toml was measured on another machine or setting (processor")
    assert "calibrate here (dnnsim calibrate --threads N)" in message


def test_cpu_model_with_this_machines_profile_or_a_hand_written_one_is_silent(monkeypatch):
    monkeypatch.setattr(ci, "this_host", lambda: XEON)
    here = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1,
            "torch_version": "2.13.0", **XEON.meta()}
    by_hand = {"device_kind": "cpu", "device_name": "xeon-avx512-2c"}   # no machine measured
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model_for("xeon-avx512-2c", profile=Profile(meta=here, kinds={}))
        model_for("xeon-avx512-2c", profile=Profile(meta=by_hand, kinds={}))


def test_a_malformed_machine_record_is_named():
    from hwmodels import HardwareError
    with pytest.raises(HardwareError, match=r"\[meta\] unrecorded names cpu_speed; machine "
                                            r"fields: processor, vendor"):
        Profile(meta={"device_kind": "cpu", "unrecorded": "isa cpu_speed"}, kinds={})
    with pytest.raises(HardwareError, match=r"\[meta\] logical_cpus must be >= 1, got 0"):
        Profile(meta={"device_kind": "cpu", "logical_cpus": 0}, kinds={})


def test_simulating_with_the_committed_profile_elsewhere_warns(monkeypatch, capsys):
    from simulator.cli import main
    from validation.paths import MEASURED
    monkeypatch.setattr(ci, "this_host", lambda: XEON)
    with pytest.warns(ci.ProfileMachineWarning, match="processor: profile 'AMD EPYC', this "
                      "machine 'Intel"):
        assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware",
                     str(MEASURED / "cpu_profile.toml")]) == 0
    assert capsys.readouterr().out     # the number comes, with the warning


def test_the_command_line_prints_a_warning_as_one_line_without_source():
    from simulator.cli import _one_line_warning
    text = _one_line_warning(ci.ProfileMachineWarning("measured on another\nmachine"),
                             ci.ProfileMachineWarning, "/some/file.py", 12)
    assert text == "dnnsim: warning: measured on another machine\n"
