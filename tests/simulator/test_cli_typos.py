"""A mistyped or unknown flag: one error line, exit 2, naming the flag, the flag it is close
to, and the help of the command it was given to (not the top-level help)."""
from __future__ import annotations

import pytest

from simulator.cli import main


@pytest.mark.parametrize("argv, words", [
    (["describe", "lenet5", "--trainig"],
     ["unrecognized arguments: --trainig", "did you mean --training?",
      "see dnnsim describe --help"]),
    (["tune-batch", "--workload", "lenet5", "--hardware", "v100", "--precison", "fp32"],
     ["--precison", "did you mean --precision?", "see dnnsim tune-batch --help"]),
    (["workloads", "--bogus"], ["unrecognized arguments: --bogus", "see dnnsim workloads --help"]),
    (["describe", "lenet5", "extra"], ["unrecognized arguments: extra",
                                       "see dnnsim describe --help"]),
])
def test_an_unknown_argument_names_the_command_help(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error: ") and err.count("\n") == 1
    for word in words:
        assert word in err
    assert "see dnnsim --help" not in err


def test_a_flag_far_from_every_declared_one_gets_no_guess(capsys):
    assert main(["describe", "lenet5", "--zzzzzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err


@pytest.mark.parametrize("typo, flag", [("--precison", "--precision"),
                                        ("--devcies", "--devices"),
                                        ("--memory-fromat", "--memory-format")])
def test_simulate_names_the_flag_a_typo_is_close_to(typo, flag, capsys):
    """simulate passes unknown --key value pairs to the policy as options; one that the policy
    does not take and that is close to a flag of simulate is named as that flag's typo."""
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "v100",
                 typo, "fp32"]) == 2
    err = capsys.readouterr().err
    assert f"did you mean {flag}?" in err and err.count("\n") == 1


def test_a_policy_option_close_to_a_flag_is_still_the_policy_option(capsys):
    """sparse-train's --spread is close to simulate's --speed: an option the policy takes is
    never taken for a typo."""
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware",
                 "skylake-x-6c", "--policy", "sparse-train", "--sparsity", "constant:0.5",
                 "--spread", "0.05"]) == 0
    assert "iteration time" in capsys.readouterr().out


def test_an_unknown_policy_option_far_from_any_flag_lists_the_policy_options(capsys):
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "v100",
                 "--devices", "2", "--link", "nvlink2", "--policy", "data-parallel",
                 "--bucketmb", "5"]) == 2
    err = capsys.readouterr().err
    assert "has no option 'bucketmb'" in err and "bucket_mb" in err


@pytest.mark.parametrize("flags, words", [
    (["--hardware", "H100"], "unknown device 'H100' (did you mean 'h100'?)"),
    (["--hardware", "h100", "--workload", "vit_b16"],
     "unknown network 'vit_b16' (did you mean 'vit_b_16'?)"),
    (["--hardware", "h100", "--policy", "data_parallel"],
     "unknown policy 'data_parallel' (did you mean 'data-parallel'?)"),
    (["--hardware", "h100", "--devices", "2", "--link", "nvlink-4"],
     "unknown link 'nvlink-4' (did you mean 'nvlink4'?)"),
    (["--hardware", "h100", "--devices", "16", "--node-type", "dgx-h10"],
     "unknown node type 'dgx-h10' (did you mean 'dgx-h100'?)"),
    (["--hardware", "h100", "--workload", "mynet.py"],
     "'mynet.py' is a Python file: name the function or class that builds the module, as "
     "mynet.py:FACTORY"),
])
def test_a_mistyped_name_is_answered_with_the_name_meant(flags, words, capsys):
    argv = ["simulate", "--workload", "lenet5", "--batch", "2", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


@pytest.mark.parametrize("flags, words", [
    (["--precision", "AMP-BF16"], "got 'AMP-BF16' (did you mean 'amp-bf16'?)"),
    (["--precision", "amp_bf16"], "got 'amp_bf16' (did you mean 'amp-bf16'?)"),
    (["--memory-format", "NHWC"], "got 'NHWC' (did you mean 'nhwc'?)"),
    (["--memory-format", "channels_last"], "nhwc: PyTorch's channels_last"),
    (["--devices", "2", "--link", "nvlink4", "--topology", "Ring"],
     "got 'Ring' (did you mean 'ring'?)"),
])
def test_a_mistyped_setting_is_answered_with_the_value_meant(flags, words, capsys):
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "h100",
                 *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_hardware_names_the_part_a_typo_means(capsys):
    assert main(["hardware", "H100"]) == 2
    assert "named 'H100' in the catalog (did you mean 'h100'?)" in capsys.readouterr().err


def test_a_node_type_given_as_hardware_names_the_flag_that_takes_it(capsys):
    """`--hardware dgx-h100` names a node, not a device: the error says to pass it as
    --node-type, with the device that node holds."""
    assert main(["simulate", "--workload", "lenet5", "--batch", "2",
                 "--hardware", "dgx-h100"]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'dgx-h100'" in err
    assert "node_type = 'dgx-h100' (--node-type) and hardware = 'h100'" in err


def test_an_unknown_device_that_is_no_node_type_gets_no_node_hint(capsys):
    assert main(["simulate", "--workload", "lenet5", "--batch", "2",
                 "--hardware", "dgx-h1000"]) == 2
    assert "is a node type" not in capsys.readouterr().err
