"""did_you_mean: the hint every lookup of a typed name gives (a device, a network, a policy, a
link, a node type), and its promise: it names a known name or nothing."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workloads.errors import did_you_mean

DEVICES = ["a100", "a100-80gb", "h100", "h100-pcie", "v100"]


def test_a_name_in_another_case_is_the_known_one():
    assert did_you_mean("H100", DEVICES) == " (did you mean 'h100'?)"


def test_a_typo_names_the_closest_known_name():
    assert did_you_mean("h1000", DEVICES) == " (did you mean 'h100'?)"
    assert did_you_mean("a100-80G", DEVICES) == " (did you mean 'a100-80gb'?)"


def test_a_name_far_from_every_known_one_gets_no_hint():
    assert did_you_mean("raspberry", DEVICES) == ""
    assert did_you_mean(7, DEVICES) == ""      # not a name at all (a TOML number)
    assert did_you_mean("h100", []) == ""


@given(st.text(max_size=12), st.lists(st.text(min_size=1, max_size=12), max_size=8))
def test_the_hint_is_empty_or_names_a_known_name(name, known):
    hint = did_you_mean(name, known)
    assert hint == "" or any(hint == f" (did you mean {k!r}?)" for k in known)
