"""Bad input named by the engine issue: unknown device or link, zero or negative bandwidth,
capacity or device count, a cyclic task graph, a scenario file with a missing or misspelt
field. The API raises a typed error (a ValueError subclass) naming the field; the CLI prints
one line `dnnsim: error: ...` naming the field (and the file) and exits with code 2."""
from __future__ import annotations

import math
import re

import pytest

from hwmodels import HardwareError
from hwmodels.specs import LinkSpec
from simulator import engine
from simulator.cli import main
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.scenario import Scenario
from simulator.tasks import SimulationError, Task, TaskGraph

GOOD = ["--workload", "lenet5", "--batch", "2", "--hardware", "v100"]


def cli_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dnnsim: error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- unknown device or link ----------------------------------------------------------------
def test_unknown_device_api_and_cli(capsys):
    with pytest.raises(HardwareError, match="unknown device 'v1000'"):
        Cluster.build("v1000")
    line = cli_error(capsys, ["simulate", "--workload", "lenet5", "--batch", "2",
                              "--hardware", "v1000"])
    assert "'hardware'" in line and "v1000" in line and "known:" in line


@pytest.mark.parametrize("flag,field", [("--link", "link"), ("--host-link", "host_link")])
def test_unknown_link_api_and_cli(capsys, flag, field):
    with pytest.raises(HardwareError, match="unknown link 'nvlink9'"):
        Cluster.build("v100", 2, "nvlink9")
    line = cli_error(capsys, ["simulate", *GOOD, "--devices", "2", "--policy", "data-parallel",
                              "--link", "nvlink2", flag, "nvlink9"])
    assert f"'{field}'" in line and "nvlink9" in line


def test_unknown_inter_node_link(capsys):
    line = cli_error(capsys, ["simulate", *GOOD, "--devices", "4", "--link", "nvlink2",
                              "--devices-per-node", "2", "--inter-node-link", "ib9",
                              "--policy", "data-parallel"])
    assert "'inter_node_link'" in line and "ib9" in line


# -- zero or negative bandwidth, capacity, device count ------------------------------------
@pytest.mark.parametrize("bandwidth", [0, -1e9, math.nan, math.inf])
def test_link_bandwidth_must_be_positive_and_finite(bandwidth):
    with pytest.raises(HardwareError, match="bandwidth_Bps"):
        LinkSpec("bad", bandwidth, 1e-6, "test")


@pytest.mark.parametrize("value", ["0", "-9e11"])
def test_device_memory_bandwidth_override_cli(capsys, value):
    line = cli_error(capsys, ["simulate", *GOOD, "--hardware-option",
                              f"mem_bandwidth_Bps={value}"])
    assert "mem_bandwidth_Bps" in line and "v100" in line


def test_link_bandwidth_in_a_catalog_file(tmp_path):
    from hwmodels import catalog
    path = tmp_path / "links.toml"
    path.write_text('[links.slow]\nbandwidth_Bps = -5\nlatency_s = 0\nsource = "x"\n')
    with pytest.raises(HardwareError) as info:
        catalog.load_file(path)
    assert str(path) in str(info.value) and "bandwidth_Bps" in str(info.value)


@pytest.mark.parametrize("capacity", [0, -1, 1.5])
def test_resource_capacity_must_be_a_positive_integer(capacity):
    tg = TaskGraph("g")
    tg.new("a", "r", 1.0)
    with pytest.raises(SimulationError, match="resource 'r': capacity"):
        engine.run(tg, {"r": capacity})


@pytest.mark.parametrize("capacity", [0, -1024])
def test_memory_capacity_must_be_positive(capacity):
    tg = TaskGraph("g")
    tg.new("a", "r", 1.0)
    with pytest.raises(SimulationError, match="device 'm': memory capacity"):
        engine.run(tg, {"r": 1}, {"m": capacity})


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "abc"])
def test_device_memory_capacity_override_cli(capsys, value):
    line = cli_error(capsys, ["simulate", *GOOD, "--hardware-option", f"memory_bytes={value}"])
    assert "memory_bytes" in line


@pytest.mark.parametrize("count", [0, -3, 2.0, True])
def test_device_count_api(count):
    with pytest.raises(SimulationError, match="device count"):
        Cluster.build("v100", count, "nvlink2")


@pytest.mark.parametrize("count", ["0", "-8"])
def test_device_count_cli(capsys, count):
    line = cli_error(capsys, ["simulate", *GOOD, "--devices", count, "--link", "nvlink2"])
    assert "devices" in line and count in line


def test_devices_per_node_cli(capsys):
    line = cli_error(capsys, ["simulate", *GOOD, "--devices", "4", "--link", "nvlink2",
                              "--devices-per-node", "0", "--policy", "data-parallel"])
    assert "devices_per_node" in line


# -- task graphs ---------------------------------------------------------------------------
def test_a_cycle_is_an_error_naming_a_task_on_it():
    tg = TaskGraph("loop")
    tg.add(Task("a", ("r",), 1.0, ("c",)))
    tg.add(Task("b", ("r",), 1.0, ("a",)))
    tg.add(Task("c", ("r",), 1.0, ("b",)))
    tg.add(Task("d", ("r",), 1.0))
    with pytest.raises(SimulationError, match=r"cycle \(through '[abc]'\)"):
        engine.run(tg, {"r": 1})


def test_a_self_dependency_is_a_cycle():
    tg = TaskGraph("self")
    tg.add(Task("a", ("r",), 1.0, ("a",)))
    with pytest.raises(SimulationError, match="cycle"):
        engine.run(tg, {"r": 1})


def test_unknown_dependency_resource_and_duplicate_task():
    tg = TaskGraph("g")
    tg.add(Task("a", ("r",), 1.0, ("ghost",)))
    with pytest.raises(SimulationError, match="unknown task 'ghost'"):
        engine.run(tg, {"r": 1})
    tg = TaskGraph("g")
    tg.add(Task("a", ("gpu9.compute",), 1.0))
    with pytest.raises(SimulationError, match="unknown resource 'gpu9.compute'"):
        engine.run(tg, {"r": 1})
    with pytest.raises(SimulationError, match="duplicate task 'a'"):
        tg.add(Task("a", ("r",), 1.0))


@pytest.mark.parametrize("duration", [-1.0, math.nan, math.inf])
def test_task_duration_must_be_finite_and_non_negative(duration):
    with pytest.raises(SimulationError, match="duration_s"):
        Task("a", ("r",), duration)


def test_negative_allocation_and_no_resource():
    with pytest.raises(SimulationError, match="negative"):
        Task("a", ("r",), 1.0, alloc={"m": -5})
    with pytest.raises(SimulationError, match="names no resource"):
        Task("a", (), 1.0)


# -- scenario files ------------------------------------------------------------------------
SCENARIO = 'workload = "lenet5"\nbatch = 2\nhardware = "v100"\npolicy = "sequential"\n'


@pytest.mark.parametrize("field", ["workload", "batch", "hardware", "policy"])
def test_missing_field_names_field_and_file(tmp_path, capsys, field):
    path = tmp_path / "scenario.toml"
    path.write_text("".join(line + "\n" for line in SCENARIO.splitlines()
                            if not line.startswith(field)))
    with pytest.raises(ConfigError, match=f"missing field '{field}'"):
        Scenario.load(path)
    line = cli_error(capsys, ["simulate", str(path)])
    assert f"'{field}'" in line and str(path) in line


@pytest.mark.parametrize("typo,meant", [("wrokload", "workload"), ("bacth", "batch"),
                                        ("devics", "devices"), ("polcy", "policy"),
                                        ("topolgy", "topology")])
def test_misspelt_field_names_field_file_and_suggestion(tmp_path, capsys, typo, meant):
    path = tmp_path / "scenario.toml"
    text = SCENARIO.replace(f"{meant} =", f"{typo} =") if meant in SCENARIO \
        else SCENARIO + f'{typo} = "switch"\n'
    path.write_text(text)
    line = cli_error(capsys, ["simulate", str(path)])
    assert f"'{typo}'" in line and str(path) in line and f"did you mean '{meant}'" in line


def test_wrong_type_and_unknown_name_in_a_file(tmp_path, capsys):
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO.replace("batch = 2", 'batch = "2"'))
    line = cli_error(capsys, ["simulate", str(path)])
    assert "'batch'" in line and str(path) in line
    path.write_text(SCENARIO.replace('"v100"', '"v1000"'))
    line = cli_error(capsys, ["simulate", str(path)])
    assert "'hardware'" in line and "v1000" in line and str(path) in line


@pytest.mark.parametrize("field, value, leave_out", [
    ("hardware", "", False), ("jitter", " ", True), ("network", "", True)])
def test_an_empty_value_in_a_scenario_is_refused_not_read_as_the_default(
        tmp_path, capsys, field, value, leave_out):
    """network = "" ran a fat tree, jitter = "" no jitter."""
    path = tmp_path / "s.toml"
    fields = {"workload": "lenet5", "batch": 2, "hardware": "v100", "policy": "data-parallel",
              "devices": 16, "node_type": "dgx1-v100", field: value}
    path.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in fields.items()))
    line = cli_error(capsys, ["simulate", str(path)])
    assert f"field {field!r} is empty; give a value" in line and str(path) in line
    assert ("leave the field out" in line) == leave_out


@pytest.mark.parametrize("argv, name, leave_out", [
    (["simulate", *GOOD, "--network", ""], "--network", True),
    (["simulate", *GOOD, "--trace", ""], "--trace", True),     # wrote no trace, exit 0
    (["simulate", ""], "scenario", True),
    (["tune-batch", "--workload", "lenet5", "--hardware", " "], "--hardware", False),
    (["tune-batch", "--workload", "lenet5", "--hardware", "v100", "--link", ""], "--link",
     True),                                                    # ran on pcie3
    (["hardware", ""], "name", True),                          # listed the whole catalog
    (["plot", "r.jsonl", "--x", "devices", "--out", ""], "--out", True),
    (["validate", "--published", ""], "--published", True),
    (["calibrate", "--published", "x.csv", "--out", ""], "--out", True),
])
def test_an_empty_argument_is_refused_not_read_as_left_out(capsys, argv, name, leave_out):
    line = cli_error(capsys, argv)
    assert f"argument {name}: an empty value; give one" in line
    assert ("leave the argument out" in line) == leave_out


def test_a_byte_order_mark_is_not_part_of_a_toml_file(tmp_path, capsys):
    """Windows editors start UTF-8 files with one; tomllib called it an invalid statement."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    scenario, profile = tmp_path / "bom.toml", tmp_path / "prof.toml"
    scenario.write_bytes(b"\xef\xbb\xbf" + SCENARIO.encode())
    profile.write_bytes(b"\xef\xbb\xbf" +
                        (root / "validation" / "measured" / "cpu_profile.toml").read_bytes())
    assert main(["simulate", str(scenario)]) == 0
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware",
                 str(profile)]) == 0
    assert "error" not in capsys.readouterr().err


def test_missing_or_unreadable_scenario_file(tmp_path, capsys):
    line = cli_error(capsys, ["simulate", str(tmp_path / "nope.toml")])
    assert "nope.toml" in line and "does not exist" in line
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    line = cli_error(capsys, ["simulate", str(bad)])
    assert "bad.toml" in line and "not valid TOML" in line


# -- input past what can be computed, and code that tries to end dnnsim ---------------------
def test_zero_reference_batch_is_a_named_error(capsys):
    line = cli_error(capsys, ["tune-batch", "--workload", "lenet5", "--hardware", "v100",
                              "--reference-batch", "0"])
    assert "--reference-batch" in line


def test_deeply_nested_toml_is_one_line(tmp_path, capsys):
    f = tmp_path / "deep.toml"
    f.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    line = cli_error(capsys, ["simulate", str(f)])
    assert "deep.toml" in line or "nested too deeply" in line


def test_arithmetic_and_memory_errors_are_one_line(capsys, monkeypatch):
    from simulator.commands import simulate
    for exc in (ZeroDivisionError("float division by zero"), OverflowError("math range error"),
                MemoryError(), RecursionError("maximum recursion depth exceeded")):
        def boom(args, exc=exc):
            raise exc
        monkeypatch.setattr(simulate, "run", boom)
        line = cli_error(capsys, ["simulate", *GOOD])
        assert type(exc).__name__ in line or "out of memory" in line or "nested" in line


def test_a_workload_file_calling_sys_exit_is_an_error_not_a_quiet_exit(tmp_path, capsys):
    net = tmp_path / "net.py"
    net.write_text("import sys\nsys.exit(0)\n")
    line = cli_error(capsys, ["simulate", "--workload", f"{net}:factory", "--batch", "2",
                              "--hardware", "v100", "--workload-option", "input_shape=3x8x8"])
    assert "sys.exit(0)" in line


def test_an_exclude_that_matches_nothing_is_refused():
    from simulator.sweep import Sweep, SweepError
    base = {"workload": "lenet5", "batch": 2, "hardware": "v100", "policy": "sequential"}
    with pytest.raises(SweepError, match=r"exclude #1: batch = 3 matches no value"):
        Sweep.from_dict({"base": base, "axes": {"batch": [1, 2]}, "exclude": [{"batch": 3}]})
    Sweep.from_dict({"base": base, "axes": {"batch": [1, 2]}, "exclude": [{"batch": [2, 3]}]})


@pytest.mark.parametrize("options, words", [
    ("registers = [19.7]", "option 'registers': cannot read [19.7]"),
    ("registers = [true]", "option 'registers': cannot read [True]"),
    ("overlap_communication = 7", "must be true or false, got 7"),
])
def test_policy_options_in_a_scenario_are_never_truncated_or_coerced(tmp_path, capsys, options,
                                                                      words):
    path = tmp_path / "s.toml"
    path.write_text('workload = "resnet20"\nbatch = 32\nhardware = "v100"\ndevices = 2\n'
                    f'link = "nvlink2"\npolicy = "gpipe"\n[options]\n{options}\n')
    assert main(["simulate", str(path)]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("exclude, words", [
    ([{}], "exclude #1 names no field, so it would skip every point"),
    ([{"batch": [1, 2]}], "the [[exclude]] tables skip every point of the axes"),
    ([{"batch": 1}, {"batch": 2}], "the [[exclude]] tables skip every point of the axes")])
def test_an_exclude_that_leaves_no_point_is_refused(exclude, words):
    """An empty [[exclude]] matched every point: the sweep wrote a header, ran nothing and
    exited 0."""
    from simulator.sweep import Sweep, SweepError
    base = {"workload": "lenet5", "batch": 2, "hardware": "v100", "policy": "sequential"}
    with pytest.raises(SweepError, match=re.escape(words)):
        Sweep.from_dict({"base": base, "axes": {"batch": [1, 2]}, "exclude": exclude})
