"""What `dnnsim simulate` prints for people: seconds as ms, floats to 4 digits."""
from simulator.commands.simulate import format_extra


def test_extras_read_as_people_write_them():
    assert format_extra("fill_s", 0.012119779581131248).strip() == "12.120 ms"
    assert format_extra("speedup", 1.2345678).strip() == "1.235"
    assert format_extra("partitions", 2).strip() == "2"
    assert format_extra("placement", "auto").strip() == "auto"
