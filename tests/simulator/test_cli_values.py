"""How `dnnsim simulate` reads KEY=VALUE options: numbers as TOML writes them become numbers,
anything else stays text (a policy or spec converts it further, or names it in an error)."""
from __future__ import annotations

import pytest

from simulator.commands.simulate import parse_extra, parse_pairs
from simulator.policies import ConfigError


@pytest.mark.parametrize("text, value", [
    ("4", 4), ("-3", -3), ("0", 0), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0), ("8e9", 8e9),
    ("1.5e-3", 1.5e-3), ("+2", 2),
])
def test_numbers_become_numbers(text, value):
    got = parse_pairs([f"k={text}"], "--option")["k"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["0123", "1_000", "nan", "inf", "-infinity", "0x10", "4 ",
                                  "true", "1e", "", "stage-2"])
def test_anything_else_stays_text(text):
    assert parse_pairs([f"k={text}"], "--option") == {"k": text}


def test_extra_flags_take_the_same_values():
    assert parse_extra(["--chunks", "4", "--name=007", "--ratio", "0.25"]) == {
        "chunks": 4, "name": "007", "ratio": 0.25}


def test_a_flag_without_a_value_is_named():
    with pytest.raises(ConfigError, match="--chunks needs a value"):
        parse_extra(["--chunks"])
