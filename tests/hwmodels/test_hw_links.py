import pytest

from hwmodels import HardwareError, catalog
from hwmodels.host import host_device_copy_time_s, host_memcpy_time_s
from hwmodels.network import transfer_time_s


def test_transfer_time_is_latency_plus_size_over_bandwidth():
    link = catalog.link("eth1g")
    assert transfer_time_s(link, 0) == link.latency_s
    assert transfer_time_s(link, 1e8) == pytest.approx(link.latency_s + 1e8 / 117.5e6)


def test_link_ordering():
    nbytes = 100e6
    times = [transfer_time_s(catalog.link(n), nbytes)
             for n in ("wifi", "eth1g", "eth10g", "pcie3", "nvlink2", "nvlink4")]
    assert times == sorted(times, reverse=True)


def test_pcie3_effective_bandwidth():
    assert 12e9 <= catalog.link("pcie3").bandwidth_Bps <= 13e9


def test_bad_transfer_size():
    with pytest.raises(HardwareError, match="link 'pcie3': transfer size"):
        transfer_time_s(catalog.link("pcie3"), -1)


def test_pageable_copy_costs_more_than_pinned():
    link, host = catalog.link("pcie3"), catalog.host("ddr4-workstation")
    pinned = host_device_copy_time_s(link, host, 1e9)
    pageable = host_device_copy_time_s(link, host, 1e9, pinned=False)
    assert pageable == pytest.approx(pinned + host_memcpy_time_s(host, 1e9))
