"""The Python API has one shape: user errors share one base class, a profile path works
wherever a catalog name does, and the CLI tells bad input (exit 2) from a bug (traceback)."""
from __future__ import annotations

from pathlib import Path

import pytest

import validation
from hwmodels.profile import Profile
from hwmodels.specs import HardwareError
from simulator import Cluster, DnnsimError, SimulationError
from simulator.cli import CommandLineError, main
from simulator.policies import ConfigError
from workloads import WorkloadError

PROFILE = Path(validation.__file__).parent / "measured" / "cpu_profile.toml"


@pytest.mark.parametrize("error", [WorkloadError, HardwareError, SimulationError, ConfigError,
                                   CommandLineError])
def test_every_user_error_is_a_dnnsim_error(error):
    assert issubclass(error, DnnsimError) and issubclass(error, ValueError)


@pytest.mark.filterwarnings("ignore")   # the profile was measured on another machine
def test_cluster_build_takes_a_profile_path_as_hardware_does():
    by_path = Cluster.build(str(PROFILE), 2, "eth10g")
    by_profile = Cluster.build(Profile.load(PROFILE).device_name, 2, "eth10g",
                               profile=Profile.load(PROFILE))
    assert by_path.devices[0].spec == by_profile.devices[0].spec
    assert type(by_path.devices[0].model) is type(by_profile.devices[0].model)
    assert Cluster.build(PROFILE, 1).devices[0].spec.name == by_path.devices[0].spec.name
    with pytest.raises(DnnsimError, match="missing.toml"):
        Cluster.build("missing.toml", 1)


def test_a_key_error_is_a_bug_not_bad_input(monkeypatch):
    import simulator.commands.workloads as cmd

    def broken(args):
        raise KeyError("x")
    monkeypatch.setattr(cmd, "run", broken)
    with pytest.raises(KeyError):
        main(["workloads"])


def test_one_device_needs_no_link_and_several_name_the_missing_link():
    one = Cluster.build("v100", 1, None)
    assert one.describe()["link"] and one.describe()["devices"] == 1
    with pytest.raises(SimulationError, match="cluster of 2 devices needs a link"):
        Cluster.build("v100", 2, None)
