"""Bad values and unknown flags on every command: one error line naming the flag or option
(and the value), exit 2, never a traceback nor a generic message from deep inside."""
from __future__ import annotations

import pytest

from simulator.cli import build_parser
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
    (["describe", "lenet5", "--batch", "10" * 12], ["lenet5 at batch 1010", "2**53"]),
    (["describe", "cifar_resnet", "--input-size", "10" * 6], ["input_size=101010", "2**53"]),
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
