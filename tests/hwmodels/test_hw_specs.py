import pytest

from hwmodels import DeviceSpec, HardwareError, HostSpec, LinkSpec, catalog, model_for


def test_with_options_one_fma_unit_halves_cpu_peak():
    sk = catalog.device("skylake-x-10c")
    one = sk.with_options(fma_units_per_core=1)
    assert one.peak_flops == pytest.approx(sk.peak_flops / 2)
    assert one.per_core_peak_flops == pytest.approx(sk.per_core_peak_flops / 2)
    assert sk.fma_units_per_core == 2  # the original is unchanged (frozen)


def test_with_options_cores_recomputes_peak():
    sk = catalog.device("skylake-x-6c")
    assert sk.with_options(cores=4).peak_flops == pytest.approx(sk.peak_flops * 4 / 6)
    # an explicit peak wins over the formula
    assert sk.with_options(cores=4, peak_flops=1e12).peak_flops == 1e12


def test_with_options_rejects_unknown_and_bad_values():
    sk = catalog.device("skylake-x-6c")
    with pytest.raises(HardwareError, match="unknown option.*fma_units"):
        sk.with_options(fma_units=1)
    with pytest.raises(HardwareError, match="device 'skylake-x-6c': cores must be >= 1"):
        sk.with_options(cores=0)


@pytest.mark.parametrize("field, value", [("kind", "gpu"), ("name", "my-cpu")])
def test_with_options_refuses_to_change_what_names_the_part(field, value):
    with pytest.raises(HardwareError, match=f"'skylake-x-6c': {field} cannot be set"):
        catalog.device("skylake-x-6c").with_options(**{field: value})


def test_gpu_with_options_keeps_peak():
    v = catalog.device("v100").with_options(memory_bytes=8 * 2**30)
    assert v.peak_flops == 15.7e12 and v.memory_bytes == 8 * 2**30


def test_cpu_model_exposes_core_parameters():
    m = model_for("skylake-x-6c")
    assert (m.cores, m.clock_hz, m.vector_lanes_fp32, m.fma_units_per_core) == (6, 3.5e9, 16, 1)
    assert m.per_core_peak_flops == pytest.approx(3.5e9 * 16 * 1 * 2)
    assert m.peak_flops == pytest.approx(6 * m.per_core_peak_flops)
    assert model_for("rk3399").vector_lanes_fp32 == 4


def test_link_and_host_invariants():
    with pytest.raises(HardwareError, match="link 'eth1g': bandwidth_Bps must be > 0, got -1"):
        LinkSpec("eth1g", bandwidth_Bps=-1, latency_s=0, source="x")
    with pytest.raises(HardwareError, match="link 'x': latency_s must be >= 0"):
        LinkSpec("x", bandwidth_Bps=1e9, latency_s=-1e-6, source="x")
    with pytest.raises(HardwareError, match="link 'x': shared_medium must be true or false"):
        LinkSpec("x", bandwidth_Bps=1e9, latency_s=0, source="x", shared_medium=1)
    with pytest.raises(HardwareError, match="host 'h': mem_bandwidth_Bps must be > 0"):
        HostSpec("h", memory_bytes=1, mem_bandwidth_Bps=0, source="x")
    with pytest.raises(HardwareError, match="link 'x': source must not be empty"):
        LinkSpec("x", bandwidth_Bps=1e9, latency_s=0, source=" ")


def test_device_spec_is_hashable_and_frozen():
    v = catalog.device("v100")
    assert hash(v) == hash(catalog.device("v100"))
    with pytest.raises(AttributeError):
        v.peak_flops = 1.0  # type: ignore[misc]


def test_spec_copies_its_tables():
    eff = {"conv": 0.5}
    spec = DeviceSpec("g", "gpu", mem_bandwidth_Bps=1e11, memory_bytes=1, launch_overhead_s=0,
                      source="x", peak_flops=1e12, efficiency=eff)
    eff["conv"] = 0.9
    assert spec.efficiency == {"conv": 0.5}
