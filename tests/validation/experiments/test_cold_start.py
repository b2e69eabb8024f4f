"""The cold-start command measures every (heavy op, small op) pair and rejects bad input."""
import pytest

from validation.experiments import cold_start


def test_every_small_op_is_measured_after_every_heavy_op():
    rows = cold_start.cold_start_table(rounds=2)
    heavy, small = cold_start._ops()
    assert {(r["after"], r["op"]) for r in rows} == {(h, s) for h in heavy for s in small}
    assert all(r["warm_us"] > 0 and "penalty_two_between_us" in r for r in rows)
    text = cold_start.format_table(rows)
    assert all(name in text for name in heavy)


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--threads", "0"], ["--rounds", "x"],
                                  ["--allocator", "jemalloc"]])
def test_bad_arguments_exit_2_naming_the_option(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cold_start.main(argv)
    assert exit_.value.code == 2
    assert argv[0] in capsys.readouterr().err
