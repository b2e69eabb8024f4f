"""hwmodels.model_efficiency: the device classes' default efficiencies come from the catalog
file, each table says where its numbers come from, and a bad table is a named error."""
from __future__ import annotations

import pytest

from hwmodels import catalog, model_efficiency, model_for
from hwmodels.arm import ARMModel
from hwmodels.cpu import CPUModel
from hwmodels.gpu import GPUModel
from hwmodels.specs import HardwareError

GOOD = """
[arm]
source = "a datasheet"
mem_efficiency = 0.4
groups_saturation_channels = 4
groups_log_penalty = 0.1
[arm.efficiency]
conv = 0.4
[arm.half_efficiency_time_s]
conv = 5e-5
"""


def test_the_models_take_their_defaults_from_the_catalog_file():
    arm, gpu = model_efficiency.table("arm"), model_efficiency.table("gpu")
    assert arm.efficiency == ARMModel.DEFAULT_EFFICIENCY
    assert arm.half_efficiency_time_s == ARMModel.DEFAULT_HALF_EFFICIENCY_TIME_S
    assert arm.groups_saturation_channels == ARMModel.GROUPS_SATURATION_CHANNELS
    assert gpu.efficiency == GPUModel.DEFAULT_EFFICIENCY
    assert gpu.mem_efficiency == GPUModel.DEFAULT_MEM_EFFICIENCY
    model = model_for(catalog.device("rpi4"))
    assert model.max_efficiency("conv") == arm.efficiency["conv"]


def test_every_table_says_where_its_numbers_come_from():
    for kind, t in model_efficiency.builtin().items():
        assert (t.source + t.fitted_to).strip(), kind


def test_arm_costs_every_family_the_cpu_model_costs():
    arm = model_efficiency.table("arm")
    assert set(arm.efficiency) == set(CPUModel.DEFAULT_EFFICIENCY)
    assert set(arm.half_efficiency_time_s) == set(CPUModel.DEFAULT_HALF_EFFICIENCY_TIME_S)


def test_a_good_table_parses():
    t = model_efficiency.parse(GOOD, "x.toml")["arm"]
    assert t.efficiency == {"conv": 0.4} and t.groups_saturation_channels == 4


@pytest.mark.parametrize("change, words", [
    (('source = "a datasheet"', ''), "give `source` or `fitted_to`"),
    (("conv = 0.4", "conv = 1.5"), "x.toml [arm].efficiency.conv: 1.5 is out of range"),
    (("conv = 5e-5", "conv = 0"), "half_efficiency_time_s.conv: 0 is out of range"),
    (("mem_efficiency = 0.4", "mem_efficiency = 0.4\nspeed = 2"), "unknown fields ['speed']"),
    (("groups_log_penalty = 0.1", ""), "missing fields ['groups_log_penalty']"),
    (("groups_saturation_channels = 4", "groups_saturation_channels = 0"), "an integer >= 1"),
    (("conv = 0.4", 'conv = "fast"'), "must be a number"),
    (("[arm]", "[arm"), "not valid TOML"),
])
def test_a_bad_table_is_a_named_error(change, words):
    with pytest.raises(HardwareError) as err:
        model_efficiency.parse(GOOD.replace(*change), "x.toml")
    assert words in str(err.value)


def test_an_unknown_class_is_a_named_error():
    with pytest.raises(HardwareError, match="no table for device class 'tpu'"):
        model_efficiency.table("tpu")
