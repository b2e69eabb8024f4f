"""User catalog files: the same checks as the built-in catalog, errors name file/part/field."""
import pytest

from hwmodels import HardwareError, catalog

GOOD_LINK = """
[links.mylink]
bandwidth_Bps = 1e9
latency_s = 1e-6
source = "test"
"""

GOOD_GPU = """
[devices.mygpu]
kind = "gpu"
peak_flops = 1e13
mem_bandwidth_Bps = 5e11
memory_bytes = 1000000
launch_overhead_s = 5e-6
source = "test"
"""


def write(tmp_path, text, name="parts.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_user_file(tmp_path):
    cat = catalog.load_file(write(tmp_path, GOOD_LINK + GOOD_GPU))
    assert cat.link("mylink").bandwidth_Bps == 1e9
    assert cat.device("mygpu").peak_flops == 1e13
    assert cat.names("gpu") == ["mygpu"]
    both = catalog.builtin().merged(cat)
    assert "mygpu" in both.names("gpu") and "v100" in both.names("gpu")


def test_merge_refuses_duplicate_names(tmp_path):
    dup = GOOD_GPU.replace("mygpu", "v100")
    with pytest.raises(HardwareError, match="defined twice: v100"):
        catalog.builtin().merged(catalog.load_file(write(tmp_path, dup)))


@pytest.mark.parametrize("text, field_pattern", [
    (GOOD_LINK.replace("latency_s = 1e-6\n", ""), "link 'mylink': missing field.*latency_s"),
    (GOOD_LINK.replace("1e9", "-1"), "link 'mylink': bandwidth_Bps must be > 0, got -1"),
    (GOOD_LINK + "colour = 'red'\n", "link 'mylink': unknown field.*colour"),
    (GOOD_LINK.replace("1e9", '"fast"'), "link 'mylink': bandwidth_Bps must be a number"),
    (GOOD_LINK.replace("1e9", "true"), "link 'mylink': bandwidth_Bps must be a number"),
    (GOOD_GPU.replace("1000000", "1.5"), "device 'mygpu': memory_bytes must be an integer"),
    (GOOD_GPU.replace('"gpu"', '"tpu"'), "device 'mygpu': kind must be one of"),
    (GOOD_GPU.replace("peak_flops = 1e13\n", ""), "device 'mygpu': peak_flops is required"),
    (GOOD_GPU + "[devices.mygpu.efficiency]\nconv = 1.5\n", "efficiency.conv 1.5 of the peak"),
    (GOOD_GPU + "[devices.mygpu.efficiency]\nwarp = 0.5\n", "unknown family 'warp'"),
    ("[gadgets.x]\nsource = 'y'\n", "unknown section \\[gadgets\\]"),
    ("[links.x\n", "not valid TOML"),
])
def test_bad_entries_name_file_part_field(tmp_path, text, field_pattern):
    path = write(tmp_path, text, "mine.toml")
    with pytest.raises(HardwareError, match=field_pattern) as info:
        catalog.load_file(path)
    assert "mine.toml" in str(info.value)


def test_cpu_needs_core_fields(tmp_path):
    text = GOOD_GPU.replace('"gpu"', '"cpu"').replace("peak_flops = 1e13\n", "")
    with pytest.raises(HardwareError, match="device 'mygpu': cores is required for a cpu"):
        catalog.load_file(write(tmp_path, text))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(HardwareError, match="nothere.toml: cannot read"):
        catalog.load_file(tmp_path / "nothere.toml")
