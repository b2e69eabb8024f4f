"""Bad values and unknown flags on every command: one error line naming the flag or option
(and the value), exit 2, never a traceback nor a generic message from deep inside."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import HardwareError, catalog
from hwmodels.specs import PLAUSIBLE
from simulator.api import simulate
from simulator.cli import build_parser, main
from simulator.cluster import Cluster
from workloads import zoo
from workloads.graph import MAX_TENSOR_ELEMENTS, TensorSpec, WorkloadError

GOOD = ["--workload", "lenet5", "--batch", "2", "--hardware", "v100"]


@pytest.mark.parametrize("command", sorted(build_parser().commands))
def test_an_unknown_flag_is_named_before_a_missing_argument(command, cli_error):
    """`dnnsim sweep --nope` names --nope, not the missing SWEEP and --out; simulate (whose
    unknown --key value pairs are policy options) names it before the missing --workload."""
    line = cli_error([command, "--nope-zz"])
    assert "--nope-zz" in line and f"dnnsim {command}" in line


def test_a_missing_argument_alone_is_still_named(cli_error):
    assert "required: network" in cli_error(["describe"])


@pytest.mark.parametrize("extra, words", [
    (["--nope", "3"], ["--nope is not a flag of simulate", "has no option 'nope'",
                       "its options: none"]),
    (["--nope"], ["--nope is not a flag of dnnsim simulate", "needs a value"]),
])
def test_simulate_names_an_unknown_flag_before_missing_fields(extra, words, cli_error):
    line = cli_error(["simulate", *extra])
    assert all(w in line for w in words), line
    assert "give --workload" not in line


@pytest.mark.parametrize("argv, words", [
    (["describe", "cifar_resnet", "-o", "width=1e300"], ["width=1e+300", "2**53"]),
    (["describe", "cifar_resnet", "-o", "width=1e15"], ["width=1e+15", "2**53"]),
    (["describe", "lenet5", "--batch", "10" * 12], ["lenet5 at batch 1.01e+23", "2**53"]),
    (["describe", "cifar_resnet", "--input-size", "10" * 6], ["input_size=1.01e+11", "2**53"]),
    (["simulate", "--workload", "cifar_resnet", *GOOD[2:], "--workload-option", "width=1e300"],
     ["width=1e+300", "2**53"]),
])
def test_a_workload_option_too_large_to_count_is_named(argv, words, cli_error):
    """A width of 1e300 makes channel counts no float holds: refused, naming the option,
    where the tensor is made, not as an OverflowError from a FLOP count deep inside."""
    line = cli_error(argv)
    assert all(w in line for w in words), line
    assert "OverflowError" not in line


def test_a_tensor_past_2_to_the_53_elements_is_refused_where_it_is_made():
    TensorSpec((MAX_TENSOR_ELEMENTS,))
    with pytest.raises(WorkloadError, match="past the most one tensor may hold"):
        TensorSpec((MAX_TENSOR_ELEMENTS + 1,))
    with pytest.raises(WorkloadError, match="cifar_resnet at batch 1 with width=1e"):
        zoo.get("cifar_resnet", width=1e300)


RATES = ["peak_flops", "mem_bandwidth_Bps", "clock_hz", "sustained_clock_hz"]
COUNTS = ["launch_overhead_s", "memory_bytes", "sm_count", "l2_bytes"]


@pytest.mark.parametrize("field, value", [
    *[(f, v) for f in RATES for v in ("1e-300", "5e-324", "1e300", "1e30")],
    *[(f, v) for f in COUNTS for v in ("1e300", "1e30")]])
def test_an_absurd_hardware_option_is_named(field, value, cli_error):
    """Positive but absurd (tiny, denormal, huge): a FLOP/s of 1e-300 makes every op take
    inf s, 5e-324 divides by zero, 1e300 leaves a step of nothing but launches."""
    line = cli_error(["simulate", *GOOD, "--hardware-option", f"{field}={value}"])
    assert f"device 'v100': {field} " in line and "outside what a part could have" in line


@settings(max_examples=15)
@given(peak=st.floats(PLAUSIBLE["peak_flops"][0], PLAUSIBLE["peak_flops"][1]),
       bandwidth=st.floats(PLAUSIBLE["mem_bandwidth_Bps"][0], PLAUSIBLE["mem_bandwidth_Bps"][1]),
       launch=st.floats(0, PLAUSIBLE["launch_overhead_s"][1]))
def test_any_plausible_device_gives_a_finite_positive_step(peak, bandwidth, launch):
    """Within the spans every op's time is a finite number: the step is finite and > 0."""
    spec = catalog.device("v100").with_options(peak_flops=peak, mem_bandwidth_Bps=bandwidth,
                                               launch_overhead_s=launch)
    result = simulate("lenet5", Cluster.build(spec), batch=2)
    assert result.ok and 0 < result.iteration_time_s < math.inf


@pytest.mark.parametrize("flags, words", [
    (["--devices", "4", "--devices-per-node", "3", "--link", "nvlink2", "--inter-node-link",
      "ib100"], "devices 4 do not fill whole nodes of 3 (devices_per_node): give devices 3 "
     "or 6, or a devices_per_node that divides 4"),
    (["--devices", "12", "--node-type", "dgx1-v100"],
     "devices 12 do not fill whole nodes of 8 (node type 'dgx1-v100'): give devices 8 or 16"),
])
def test_devices_that_do_not_fill_whole_nodes_are_refused(flags, words, cli_error, tmp_path):
    """On the command line and in a scenario file alike (one check, Scenario.check)."""
    argv = ["simulate", *GOOD, "--policy", "data-parallel", *flags]
    assert words in cli_error(argv)
    pairs = zip(argv[1::2], argv[2::2], strict=True)
    path = tmp_path / "s.toml"
    path.write_text("".join(f"{f.removeprefix('--').replace('-', '_')} = "
                            f"{v if v.isdigit() else repr(v)}\n" for f, v in pairs))
    assert words in cli_error(["simulate", str(path)])


@pytest.mark.parametrize("devices, per_node", [(2, 8), (8, 8), (16, 8), (1, 3)])
def test_one_node_partly_used_or_whole_nodes_stand(devices, per_node):
    nodes = ["--inter-node-link", "ib100"] if devices > per_node else []
    assert main(["simulate", *GOOD, "--policy", "data-parallel", "--devices", str(devices),
                 "--devices-per-node", str(per_node), "--link", "nvlink2", *nodes]) == 0


@pytest.mark.parametrize("argv, words", [
    (["simulate", *GOOD, "--speed", "gpu0=1e-300"], "speed of 'gpu0' must be a number from "
                                                     "0.001 to 1000"),
    (["simulate", *GOOD, "--speed", "gpu0=1e300"], "speed of 'gpu0' must be a number from"),
    (["simulate", *GOOD, "--hardware-option", "mem_efficiency=1e-300"],
     "mem_efficiency 1e-300 of the bandwidth is outside"),
    (["tune-batch", "--workload", "lenet5", "--hardware", "v100", "--memory-gib", "1e-300"],
     "--memory-gib must be a finite number from"),
])
def test_an_absurd_speed_share_or_memory_is_named(argv, words, cli_error):
    """Each refused where it is read, naming it: a straggler's speed of 1e-300 makes a step of
    1e296 s, a mem_efficiency of 1e-300 one of 1e294 s, --memory-gib 1e-300 a device of 0
    bytes."""
    assert words in cli_error(argv)


def test_an_absurd_family_efficiency_is_named():
    with pytest.raises(HardwareError, match=r"efficiency.conv 1e-300 of the peak is outside"):
        catalog.device("v100").with_options(efficiency={"conv": 1e-300})


def test_a_scenario_files_hardware_options_are_named_with_the_file(tmp_path, cli_error):
    path = tmp_path / "s.toml"
    path.write_text('workload = "lenet5"\nbatch = 2\nhardware = "v100"\npolicy = "sequential"\n'
                    "[hardware_options]\npeak_flops = 1e-300\n")
    assert f"{path}: [hardware_options] device 'v100': peak_flops 1e-300" in \
        cli_error(["simulate", str(path)])
