"""`dnnsim hardware`: the catalog with key figures, one part with its source, bad names."""
from __future__ import annotations

import json

import pytest

from hwmodels import catalog
from simulator.cli import main
from simulator.cluster import TOPOLOGIES
from simulator.node_types import node_types


def test_listing_names_every_part_and_topology(capsys):
    assert main(["hardware"]) == 0
    out = capsys.readouterr().out
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(catalog.names()) | set(TOPOLOGIES) | set(node_types()) <= names


def test_every_topology_is_described():
    from simulator.commands.hardware import TOPOLOGY_TEXT
    assert set(TOPOLOGIES) <= set(TOPOLOGY_TEXT)


def test_json_listing_is_in_si_units(capsys):
    assert main(["hardware", "--kind", "gpu", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(catalog.names("gpu"))
    v100 = catalog.device("v100")
    assert rows["v100"]["peak_fp32_flops"] == v100.peak_flops
    assert rows["v100"]["memory_bytes"] == v100.memory_bytes


def test_one_part_shows_its_source(capsys):
    assert main(["hardware", "eth10g", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "link" and doc["source"] == catalog.link("eth10g").source
    assert main(["hardware", "rk3399"]) == 0
    assert catalog.device("rk3399").source in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["hardware", "v1000"], "no part or topology named 'v1000'"),
    (["hardware", "--kind", "tpu"], "invalid choice: 'tpu'"),
    (["hardware", "v100", "--kind", "link"], "'v100' is a gpu, not a link"),
])
def test_bad_requests_exit_2_naming_what_is_wrong(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
