"""simulate names a setting that changes nothing in this run (one warning line on stderr), so
a user does not take the run for the one they meant; settings that act are not named."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from simulator.cli import main

RUN = ["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "v100"]


@pytest.mark.parametrize("flags, words", [
    (["--seed", "3"], "--seed has no effect without --jitter"),
    (["--inter-node-link", "ib100"], "--inter-node-link: the 1 device(s) are one node"),
    (["--devices", "4", "--link", "nvlink2", "--oversubscription", "2"],
     "--oversubscription: the 4 device(s) are one node"),
    (["--efficiency"], "--efficiency compares with one device; this run has one"),
    (["--inference", "--optimizer", "adam"], "optimizer 'adam' has no effect with --inference"),
    (["--devices", "4", "--link", "nvlink2"],
     "policy 'sequential' ran the step on one device, gpu0; the other 3 of the 4 stayed idle"),
])
def test_a_setting_without_effect_is_named(flags, words, capsys):
    with pytest.warns(UserWarning, match=words.replace("(", r"\(").replace(")", r"\)")):
        assert main([*RUN, *flags]) == 0


@pytest.mark.parametrize("flags", [
    ["--seed", "3", "--jitter", "lognormal:0.05"],
    ["--optimizer", "adam"],
    ["--devices", "4", "--devices-per-node", "2", "--link", "nvlink2", "--inter-node-link",
     "ib100", "--policy", "data-parallel", "--efficiency"],
    # one replica simulated for all four: the others' all-reduce still crosses the links
    ["--devices", "4", "--link", "nvlink2", "--policy", "data-parallel", "-o", "replicas=one"],
])
def test_settings_that_act_are_not_named(flags, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main([*RUN, *flags]) == 0


def test_the_warning_is_one_line_on_stderr():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run([sys.executable, "-c", "import sys; from simulator.cli import main; "
                           "sys.exit(main())", *RUN, "--seed", "3"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0
    assert done.stderr == ("dnnsim: warning: --seed has no effect without --jitter (it seeds "
                           "the jitter's draws)\n")
