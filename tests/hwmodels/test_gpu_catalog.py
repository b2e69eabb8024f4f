"""The GPU catalog's datasheet fields hold together: the names people train on are there, each
FP32 peak follows from its SMs, lanes and clock, and each precision appears only on the
generations that compute in it."""
import re

import pytest

from hwmodels import DeviceSpec, HardwareError, catalog
from hwmodels.gpu_memory import runtime_data
from hwmodels.specs import GPU_ARCHITECTURES

TRAINING_GPUS = (
    "k40", "k80", "m40", "titan-x-maxwell", "gtx1080", "gtx1080ti", "titan-x-pascal", "titan-xp",
    "p100", "p100-sxm2", "titan-v", "v100", "v100-pcie", "v100-32gb", "t4", "rtx2080",
    "rtx2080ti", "titan-rtx", "quadro-rtx6000", "a10", "a100", "a100-80gb", "a100-pcie", "l4",
    "l40s", "h100", "h100-pcie", "h200",
    "p40", "quadro-rtx8000", "rtx3080", "rtx3090", "rtx-a6000", "a40", "a30", "a100-pcie-80gb",
    "rtx4090", "rtx6000-ada", "h100-nvl", "gh200",
)
TENSOR_PRECISIONS = ("tf32", "fp16", "bf16")


def _generation(spec: DeviceSpec) -> int:
    return GPU_ARCHITECTURES.index(spec.architecture)


def _gpus():
    return [catalog.device(name) for name in catalog.names("gpu")]


def test_every_training_gpu_is_in_the_catalog():
    missing = sorted(set(TRAINING_GPUS) - set(catalog.names("gpu")))
    assert not missing, f"GPUs missing from the catalog: {missing}"


@pytest.mark.parametrize("name", TRAINING_GPUS)
def test_datasheet_fields_are_set(name):
    spec = catalog.device(name)
    assert spec.architecture in GPU_ARCHITECTURES
    for fname in ("sm_count", "fp32_lanes_per_sm", "clock_hz", "l2_bytes"):
        assert getattr(spec, fname) is not None, f"{name}: {fname} is not set"
    assert spec.copy_engines == 2 and spec.host_link in catalog.names("link")


@pytest.mark.parametrize("spec", _gpus(), ids=lambda s: s.name)
def test_fp32_peak_follows_from_sms_lanes_and_clock(spec):
    derived = 2 * spec.fp32_lanes_per_sm * spec.sm_count * spec.clock_hz
    assert spec.peak_flops == pytest.approx(derived, rel=0.03), (
        f"{spec.name}: peak_flops {spec.peak_flops:.4g} but 2 x {spec.fp32_lanes_per_sm} lanes "
        f"x {spec.sm_count} SMs x {spec.clock_hz:.4g} Hz = {derived:.4g}")


@pytest.mark.parametrize("spec", _gpus(), ids=lambda s: s.name)
def test_precisions_match_the_generation(spec):
    has = set(spec.peak_flops_by_precision) - {"fp32"}
    generation = _generation(spec)
    if generation >= GPU_ARCHITECTURES.index("ampere"):
        assert has == {"tf32", "fp16", "bf16"}
    else:
        assert not has & {"tf32", "bf16"}, f"{spec.name}: tf32/bf16 before Ampere"
    if generation <= GPU_ARCHITECTURES.index("maxwell"):
        assert "fp16" not in has, f"{spec.name}: Kepler/Maxwell have no FP16 arithmetic"
    else:
        assert "fp16" in has
    if generation >= GPU_ARCHITECTURES.index("volta"):  # tensor cores
        for precision in has:
            assert spec.peak_flops_for(precision) >= spec.peak_flops, (spec.name, precision)


def test_fp16_rates_follow_the_pascal_chip():
    # GP100 packs two FP16 per FP32 lane; GP102/GP104 run FP16 at 1/64 of FP32
    for name in ("p100", "p100-sxm2"):
        spec = catalog.device(name)
        assert spec.peak_flops_for("fp16") == pytest.approx(2 * spec.peak_flops, rel=0.01)
    for name in ("gtx1080", "gtx1080ti", "titan-x-pascal", "titan-xp"):
        spec = catalog.device(name)
        assert spec.peak_flops_for("fp16") == pytest.approx(spec.peak_flops / 64, rel=0.01)


def test_geforce_turing_accumulates_fp32_at_half_the_full_rate():
    # tensor FLOPs per SM per clock with FP32 accumulation: 8 tensor cores x 128 = 1024 on
    # Tesla/TITAN/Quadro, half that on GeForce
    def per_sm_clock(name):
        spec = catalog.device(name)
        return spec.peak_flops_for("fp16") / (spec.sm_count * spec.clock_hz)
    assert per_sm_clock("titan-rtx") == pytest.approx(2 * per_sm_clock("rtx2080ti"), rel=0.02)
    assert per_sm_clock("t4") == pytest.approx(1024, rel=0.02)
    assert per_sm_clock("rtx2080") == pytest.approx(512, rel=0.02)


@pytest.mark.parametrize("geforce, workstation", [("rtx3090", "rtx-a6000"),
                                                  ("rtx4090", "rtx6000-ada")])
def test_geforce_ampere_and_ada_accumulate_fp32_at_half_the_workstation_rate(geforce,
                                                                              workstation):
    # same chip (GA102, AD102): per SM and clock, the workstation card's FP32-accumulate tensor
    # rate is twice the GeForce card's; TF32 is half the FP16 rate on both
    def per_sm_clock(name, precision):
        spec = catalog.device(name)
        return spec.peak_flops_for(precision) / (spec.sm_count * spec.clock_hz)
    assert per_sm_clock(workstation, "fp16") == pytest.approx(
        2 * per_sm_clock(geforce, "fp16"), rel=0.02)
    for name in (geforce, workstation):
        assert per_sm_clock(name, "tf32") == pytest.approx(per_sm_clock(name, "fp16") / 2,
                                                           rel=0.02)


def test_no_fp16_on_kepler_is_reported_by_name():
    with pytest.raises(HardwareError, match="'k80' cannot compute in fp16"):
        catalog.device("k80").peak_flops_for("fp16")


@pytest.mark.parametrize("spec", _gpus(), ids=lambda s: s.name)
def test_sizes_and_bandwidths_are_positive(spec):
    assert spec.memory_bytes > 0 and spec.mem_bandwidth_Bps > 0 and spec.l2_bytes > 0
    assert 0 < spec.mem_efficiency <= 1


@pytest.mark.parametrize("spec", _gpus(), ids=lambda s: s.name)
def test_every_source_states_a_number(spec):
    assert re.search(r"\d", spec.source), f"{spec.name}: source names no figure"


@pytest.mark.parametrize("bad", [0, 64.5, True, "64"])
def test_fp32_lanes_per_sm_is_checked(bad):
    with pytest.raises(HardwareError, match="'mygpu'.*fp32_lanes_per_sm must be"):
        DeviceSpec(name="mygpu", kind="gpu", mem_bandwidth_Bps=900e9, memory_bytes=2**30,
                   launch_overhead_s=5e-6, source="test", peak_flops=1e12,
                   fp32_lanes_per_sm=bad)


# The header's rule for ECC on GDDR memory: a board whose usable memory shows ECC's reservation
# (1/16 of it, gpu_runtime.toml cuda_total) runs with ECC on, and fetching the ECC bits costs
# about a fifth of a GDDR memory's bandwidth (CUDA C++ Best Practices Guide); HBM's costs none.
ECC_GDDR_RULE = {"k80": 0.75, "t4": 0.85}   # part -> its memory type's share without ECC


def test_ecc_on_gddr_costs_a_fifth_of_the_bandwidth():
    totals = runtime_data()["cuda_total"]
    with_ecc = {name for name, board in totals.items()
                if board["total_gib"] <= board["nominal_gib"] * 15 / 16}
    assert with_ecc == set(ECC_GDDR_RULE)
    for name, share in ECC_GDDR_RULE.items():
        assert catalog.device(name).mem_efficiency == pytest.approx(share * 0.8)
