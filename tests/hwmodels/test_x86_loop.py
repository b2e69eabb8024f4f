"""Loop cycles from the x86 instruction table (hwmodels/x86_loop.py)."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hwmodels import HardwareError
from hwmodels.x86_loop import binomial_pmf, core_table, loop_exit_mispredictions


@pytest.mark.parametrize("units", [1, 2])
def test_single_uop_throughputs_follow_their_ports(units):
    """The table's reciprocal throughputs agree with its port lists (FMA: two units)."""
    table = core_table("skylake-x-10c", 2)
    for name, ins in table.instructions.items():
        if len(ins.ports) == 1:
            assert ins.rthroughput == pytest.approx(1 / len(ins.ports[0])), name
    one = core_table("skylake-x-6c", units)
    assert one.port_cycles({"vfmadd231ps_zmm": 10}) == pytest.approx(10 / units)


def test_port_and_rename_bounds():
    t = core_table("skylake-x-6c", 1)
    assert t.port_cycles({"vbroadcastss_zmm_m32": 8}) == pytest.approx(4)  # two load ports
    # tzcnt and popcnt share p1; blsr can move to p5
    assert t.port_cycles({"tzcnt_r32": 3, "popcnt_r32": 1, "blsr_r32": 2}) == pytest.approx(4)
    assert t.rename_cycles({"add_r64": 8}) == pytest.approx(2)
    body = {"add_r64": 8}
    assert t.cycles(body, mispredictions=1) == pytest.approx(2 + t.branch_mispredict_cycles)


def test_back_end_bound_loop_hides_a_misprediction():
    t = core_table("skylake-x-6c", 1)
    body = {"vfmadd231ps_zmm": 100, "fused_jcc_taken": 1}
    assert t.cycles(body, mispredictions=1) == pytest.approx(100)


def test_every_entry_cites_its_table_row():
    for name, ins in core_table("skylake-x-6c", 1).instructions.items():
        assert "uops.info" in ins.source or "Agner" in ins.source, name


def test_skylake_x_entries_match_the_public_tables():
    """The figures the SparseTrain kernels depend on, as uops.info / Agner Fog list them."""
    t = core_table("skylake-x-6c", 1)
    expect = {  # name: (ports of the first uop, latency, reciprocal throughput)
        "kmovw_r32_k": ({"p0"}, 3, 1.0), "popcnt_r32": ({"p1"}, 3, 1.0),
        "tzcnt_r32": ({"p1"}, 3, 1.0), "vcmpps_k_zmm_zmm": ({"p5"}, 3, 1.0),
        "vbroadcastss_zmm_m32": ({"p2", "p3"}, 8, 0.5), "blsr_r32": ({"p1", "p5"}, 1, 0.5),
        "vfmadd231ps_zmm": ({"p0"}, 4, 0.5)}
    for name, (ports, lat, tput) in expect.items():
        ins = t.instructions[name]
        assert (set(ins.ports[0]), ins.latency, ins.rthroughput) == (ports, lat, tput), name
    assert t.port_cycles({"vfmadd231ps_zmm": 2}) == pytest.approx(2)   # one unit: p0 only
    assert core_table("skylake-x-10c", 2).port_cycles({"vfmadd231ps_zmm": 2}) == 1
    assert t.port_cycles({"vmovups_zmm_load": 4}) == pytest.approx(2)  # two loads a cycle
    assert t.port_cycles({"vmovups_m512_store": 3}) == pytest.approx(3)  # one store a cycle


def test_fma_port_sharing_follows_the_unit_count():
    one, two = core_table("skylake-x-6c", 1), core_table("skylake-x-6c", 2)
    assert one.shares_fma_port("kmovw_r32_k") and two.shares_fma_port("kmovw_r32_k")
    assert not one.shares_fma_port("vcmpps_k_zmm_zmm")
    assert two.shares_fma_port("vcmpps_k_zmm_zmm")
    assert not two.shares_fma_port("tzcnt_r32")


def test_unknown_part_or_instruction_is_named():
    with pytest.raises(HardwareError, match="no instruction table for device 'v100'"):
        core_table("v100", 1)
    with pytest.raises(HardwareError, match="fma_units_per_core must be one of 1, 2"):
        core_table("skylake-x-6c", 3)
    with pytest.raises(HardwareError, match="no 'vaddps'"):
        core_table("skylake-x-6c", 1).port_cycles({"vaddps": 1})


def test_mispredictions_vanish_when_the_trip_count_is_certain():
    assert loop_exit_mispredictions(0.0, 16)[0] == 0
    assert loop_exit_mispredictions(1.0, 16)[16] == 0


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(1, 32))
@example(1e-6, 3)   # P(K >= j) rounds below zero if taken as 1 minus a running sum
def test_expected_mispredictions_are_at_most_one_in_the_likely_cases(p, lanes):
    pmf = binomial_pmf(lanes, p)
    wrong = loop_exit_mispredictions(p, lanes)
    assert sum(pmf) == pytest.approx(1.0)
    assert all(0 <= w <= lanes for w in wrong)
    # the predictor is right at least as often as always guessing "go on"
    expected = sum(pk * w for pk, w in zip(pmf, wrong, strict=True))
    assert expected <= 1.0 + 1e-9


def test_trip_count_sweep_equals_each_body_costed_alone():
    t = core_table("skylake-x-6c", 2)
    fixed = {"vcmpps_k_zmm_m512": 1, "kmovw_r32_k": 1, "fused_jcc_not_taken": 1}
    trip = {"tzcnt_r32": 1, "blsr_r32": 1, "vfmadd231ps_zmm_m512": 4, "fused_jcc_taken": 1}
    wrong = [0.0, 1.0, 0.0, 2.0, 1.0]
    sweep = t.cycles_over_trip_counts(fixed, trip, wrong)
    for k, w in enumerate(wrong):
        body = {**fixed}
        for name, c in trip.items():
            body[name] = body.get(name, 0) + k * c
        assert sweep[k] == pytest.approx(t.cycles(body, w))
