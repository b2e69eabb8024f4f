"""An architecture without rows of its own takes its constants from a fitted one; an arithmetic
efficiency taken across architectures of different lane rates (Kepler from Maxwell) is scaled
by them."""
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels.specs import GPU_ARCHITECTURES
from validation.calibrate import published_fit as pf

MAXWELL = dataclasses.replace(pf.START, name="maxwell", gemm=0.8, conv_fwd=0.9, fft=0.6,
                              memory=0.7, tensor_core=0.75, kernel_overhead_s=4e-6,
                              fitted_to="rows")


def fill_from_maxwell():
    return pf.fill_unexercised({"maxwell": MAXWELL}, {"maxwell": set(pf.PARAMETERS)},
                               pf.START, {"maxwell"})


def test_kepler_takes_maxwells_arithmetic_at_its_lane_rate():
    kepler = fill_from_maxwell()["kepler"]
    for param in pf.ARITHMETIC:
        assert getattr(kepler, param) == pytest.approx(getattr(MAXWELL, param) / 1.35)
    # bandwidth, tensor cores and the gap between kernels are not the CUDA cores' work
    assert (kepler.memory, kepler.tensor_core, kepler.kernel_overhead_s) == (
        MAXWELL.memory, MAXWELL.tensor_core, MAXWELL.kernel_overhead_s)
    assert "no rows" in kepler.fitted_to and "from maxwell" in kepler.fitted_to


def test_architectures_of_the_same_lane_rate_take_the_constants_as_they_are():
    filled = fill_from_maxwell()
    for arch in ("pascal", "volta", "hopper"):
        assert dataclasses.replace(filled[arch], name="maxwell", fitted_to="rows") == MAXWELL


@given(param=st.sampled_from(sorted(pf.PARAMETERS)),
       value=st.floats(0.05, 1.0),
       arch=st.sampled_from(GPU_ARCHITECTURES), donor=st.sampled_from(GPU_ARCHITECTURES))
def test_a_borrowed_constant_stays_in_its_bounds_and_keeps_its_order(param, value, arch, donor):
    lo, hi = pf.BOUNDS[param]
    value = min(hi, max(lo, value))
    got = pf.borrowed_value(param, value, arch, donor)
    assert lo <= got <= hi
    assert pf.borrowed_value(param, min(hi, value * 1.1), arch, donor) >= got
    if arch == donor or param not in pf.ARITHMETIC:
        assert got == value


def test_a_share_of_peak_scaled_up_is_capped_at_the_peak():
    assert pf.borrowed_value("gemm", 0.9, "maxwell", "kepler") == 1.0
    assert pf.borrowed_value("gemm", 0.5, "maxwell", "kepler") == pytest.approx(0.675)


def test_a_library_kernels_tn_penalty_is_not_carried_to_an_architecture_without_rows():
    """Volta's strided TN reads belong to CUDA 10.1's Volta kernels: Ampere and Hopper, which
    no table times, take the datasheet's bandwidth and rate (1.0), while every other constant
    still comes from Volta."""
    volta = dataclasses.replace(MAXWELL, name="volta", strided_memory=0.76, tn_gemm=0.8)
    filled = pf.fill_unexercised({"volta": volta}, {"volta": set(pf.PARAMETERS)}, pf.START,
                                 {"volta"})
    for arch in ("ampere", "ada", "hopper"):
        assert (filled[arch].strided_memory, filled[arch].tn_gemm) == (1.0, 1.0)
        assert filled[arch].memory == volta.memory and filled[arch].gemm == volta.gemm
        assert "tn_gemm, strided_memory from the datasheet" in filled[arch].fitted_to
    assert filled["volta"].strided_memory == 0.76
