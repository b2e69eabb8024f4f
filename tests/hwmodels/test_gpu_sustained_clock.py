"""Each catalog GPU's arithmetic runs at the clock it sustains under training load: every part
states that clock and where it comes from, the power rule's arithmetic holds, and the model's
arithmetic (not its memory traffic) scales with the clock."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import DeviceSpec, HardwareError, catalog, model_for
from workloads.builder import GraphBuilder

POWER_RULE = re.compile(
    r"holds its rated (?P<ref_mhz>\d+) MHz boost at (?P<ref_w>\d+) W with (?P<ref_sms>\d+) SMs; "
    r"at P proportional to SMs x f\^3 this part would draw (?P<draw_w>\d+) W at its "
    r"(?P<boost_mhz>\d+) MHz boost, over its (?P<tdp_w>\d+) W, so it sustains .* = "
    r"(?P<sustained_mhz>\d+) MHz")


def _gpus() -> list[DeviceSpec]:
    return [catalog.device(name) for name in catalog.names("gpu")]


@pytest.mark.parametrize("spec", _gpus(), ids=lambda s: s.name)
def test_every_gpu_states_its_sustained_clock_and_its_source(spec):
    assert spec.sustained_clock_hz is not None and spec.sustained_clock_source
    # between the part's lowest rated (base) clocks and its rated boost
    assert 0.5 * spec.clock_hz <= spec.sustained_clock_hz <= spec.clock_hz


def test_the_power_rule_arithmetic_holds_for_each_part_it_sets():
    ruled = [s for s in _gpus() if s.sustained_clock_source.startswith("power rule")]
    assert {s.name for s in ruled} >= {"k80", "t4", "a10", "l4", "a100-pcie", "h100-pcie"}
    for spec in ruled:
        match = POWER_RULE.search(spec.sustained_clock_source)
        if match is None:       # the part's budget holds its boost: the rule leaves it there
            assert "sustains its rated boost" in spec.sustained_clock_source
            assert spec.sustained_clock_hz == spec.clock_hz
            continue
        n = {k: float(v) for k, v in match.groupdict().items()}
        assert n["boost_mhz"] * 1e6 == spec.clock_hz
        draw_w = n["ref_w"] * spec.sm_count / n["ref_sms"] * (n["boost_mhz"] / n["ref_mhz"]) ** 3
        assert round(draw_w) == n["draw_w"]
        sustained_mhz = n["boost_mhz"] * (n["tdp_w"] / draw_w) ** (1 / 3)
        assert round(sustained_mhz) == n["sustained_mhz"] == spec.sustained_clock_hz / 1e6


def _ops():
    b = GraphBuilder("c", input_shape=(256, 28, 28), batch=64)
    b.relu(b.conv2d(b.input(), 256, 3, padding=1, name="conv"), name="relu")
    return {op.kind: op for op in b.build()}


@settings(max_examples=20, deadline=None)
@given(share=st.floats(0.5, 1.0))
def test_arithmetic_follows_the_sustained_clock_and_memory_does_not(share):
    ops = _ops()
    rated = model_for("v100")
    slower = model_for(rated.spec.with_options(sustained_clock_hz=rated.spec.clock_hz * share))
    conv = rated.chosen_option(ops["conv2d"])
    assert conv.key != "stream"
    slow_conv = [o for o in slower.kernel_options(ops["conv2d"]) if o.algorithm == conv.algorithm
                 and o.kernels == conv.kernels][0]
    assert slow_conv.unit_s == pytest.approx(conv.unit_s / share)
    assert slow_conv.traffic_bytes == conv.traffic_bytes
    # the ReLU streams memory: the clock does not move it
    assert slower.op_time_s(ops["relu"]) == pytest.approx(rated.op_time_s(ops["relu"]))
    assert slower.op_time_s(ops["conv2d"]) >= rated.op_time_s(ops["conv2d"])


HOPPER_SM_DENSE_FP16_FLOP_PER_CLOCK = 4096    # Hopper whitepaper: twice an A100 SM's 2048


@pytest.mark.parametrize("spec", [s for s in _gpus() if s.tensor_clock_hz is not None],
                         ids=lambda s: s.name)
def test_a_tensor_clock_is_the_one_the_datasheet_tensor_peak_implies(spec):
    assert spec.architecture == "hopper"
    implied_hz = spec.peak_flops_for("fp16") / (spec.sm_count
                                                * HOPPER_SM_DENSE_FP16_FLOP_PER_CLOCK)
    assert spec.tensor_clock_hz == pytest.approx(implied_hz, rel=1e-3)
    # below its sustained clock (or at its rated one): the datasheet peak, no more ...
    if spec.sustained_clock_hz >= spec.tensor_clock_hz:
        assert spec.sustained_peak_flops_for("bf16") == spec.peak_flops_for("bf16")
    # ... FP32 keeps its own scaling from clock_hz
    assert spec.sustained_peak_flops_for("fp32") == pytest.approx(
        spec.peak_flops * spec.sustained_clock_hz / spec.clock_hz)
    # ... and a sustained clock under the tensor clock scales the tensor peak from it
    slower = spec.with_options(sustained_clock_hz=0.8 * spec.tensor_clock_hz)
    assert slower.sustained_peak_flops_for("tf32") == pytest.approx(
        0.8 * spec.peak_flops_for("tf32"))


def test_a_power_ruled_hopper_part_is_not_derated_twice():
    """The H100 PCIe's tensor peak is quoted at 1620 MHz; the power rule's 1650 MHz is above it,
    so its tensor cores run at the datasheet rate, not at 1650 / 1755 of it."""
    spec = catalog.device("h100-pcie")
    assert spec.sustained_clock_hz > spec.tensor_clock_hz
    assert spec.sustained_peak_flops_for("fp16") == spec.peak_flops_for("fp16")


def test_an_overridden_sustained_clock_does_not_keep_the_catalogs_source():
    spec = catalog.device("t4").with_options(sustained_clock_hz=1.0e9)
    assert spec.sustained_clock_share == pytest.approx(1.0e9 / 1590e6)
    assert spec.sustained_clock_source == "set by an override"


@pytest.mark.parametrize("fields, message", [
    ({"sustained_clock_hz": 1e9}, "needs a sustained_clock_source"),
    ({"sustained_clock_hz": 1e9, "sustained_clock_source": "x", "clock_hz": None},
     "needs clock_hz"),
    ({"sustained_clock_hz": -1.0, "sustained_clock_source": "x"},
     "sustained_clock_hz must be > 0"),
    ({"sustained_clock_hz": 1e9, "sustained_clock_source": ""},
     "sustained_clock_source must not be empty"),
    ({"tensor_clock_hz": 1.6e9}, "tensor_clock_hz must be at most clock_hz"),
    ({"tensor_clock_hz": 1.2e9, "clock_hz": None}, "tensor_clock_hz must be at most clock_hz"),
    ({"tensor_clock_hz": 1e-3}, "tensor_clock_hz 0.001 Hz is outside"),
])
def test_a_bad_sustained_clock_names_the_field(fields, message):
    base = dict(name="mine", kind="gpu", mem_bandwidth_Bps=1e11, memory_bytes=2**30,
                launch_overhead_s=5e-6, source="test", peak_flops=1e13, clock_hz=1.5e9)
    with pytest.raises(HardwareError, match=message):
        DeviceSpec(**{**base, **fields})
