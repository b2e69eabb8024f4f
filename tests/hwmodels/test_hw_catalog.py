import pytest

from hwmodels import DeviceSpec, HardwareError, HostSpec, LinkSpec, catalog

EXPECTED = {
    "gpu": {"k40", "p100", "v100", "v100-32gb", "gtx1080ti", "titan-x-pascal", "titan-xp",
            "a100", "a100-80gb", "h100"},
    "cpu": {"skylake-x-6c", "skylake-x-10c", "xeon-avx512-2c"},
    "arm": {"rk3399", "rpi4", "rpi3bplus"},
    "link": {"pcie3", "pcie4", "nvlink2", "nvlink4", "eth1g", "eth10g", "ib100", "wifi"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_expected_parts_present(kind):
    assert EXPECTED[kind] <= set(catalog.names(kind))


def test_every_part_loads_with_a_source():
    for kind in ("gpu", "cpu", "arm"):
        for name in catalog.names(kind):
            spec = catalog.device(name)
            assert isinstance(spec, DeviceSpec) and spec.kind == kind
            assert spec.source.strip() and spec.peak_flops > 0
    for name in catalog.names("link"):
        assert isinstance(catalog.link(name), LinkSpec) and catalog.link(name).source
    assert catalog.names("host")
    for name in catalog.names("host"):
        assert isinstance(catalog.host(name), HostSpec) and catalog.host(name).source


def test_names_sorted_and_all():
    assert catalog.names("gpu") == sorted(catalog.names("gpu"))
    every = catalog.names()
    assert set(every) >= set().union(*EXPECTED.values())


def test_gpu_datasheet_numbers():
    v100 = catalog.device("v100")
    assert v100.peak_flops == 15.7e12 and v100.mem_bandwidth_Bps == 900e9
    assert v100.memory_bytes == 16 * 2**30
    assert catalog.device("v100-32gb").memory_bytes == 32 * 2**30
    assert v100.copy_engines == 2 and v100.host_link in catalog.names("link")
    for name in catalog.names("gpu"):
        assert catalog.device(name).host_link in catalog.names("link")


def test_cpu_peak_is_derived():
    sk = catalog.device("skylake-x-6c")
    assert sk.peak_flops == pytest.approx(6 * 3.5e9 * 16 * 1 * 2)  # one AVX-512 FMA unit
    assert catalog.device("xeon-avx512-2c").cores == 2


def test_wifi_is_shared_half_duplex():
    wifi = catalog.link("wifi")
    assert wifi.shared_medium and not wifi.duplex
    assert 100e6 / 8 <= wifi.bandwidth_Bps <= 300e6 / 8 and wifi.latency_s >= 1e-3


def test_unknown_name_lists_known():
    with pytest.raises(HardwareError, match="unknown device 'v200'.*v100"):
        catalog.device("v200")
    with pytest.raises(HardwareError, match="unknown link 'eth400g'.*eth10g"):
        catalog.link("eth400g")
    with pytest.raises(HardwareError, match="unknown host"):
        catalog.host("nope")
    with pytest.raises(HardwareError, match="unknown part kind 'tpu'"):
        catalog.names("tpu")
