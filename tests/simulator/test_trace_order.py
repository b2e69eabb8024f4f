"""The timeline and memory plots list devices in number order (gpu2 before gpu10) and say in
the title when they leave rows out, so no device goes missing unseen."""
from __future__ import annotations

import pytest

from simulator import Cluster, simulate
from simulator.trace import device_order, plot_memory, plot_timeline


@pytest.fixture(scope="module")
def twelve():
    return simulate("lenet5", Cluster.build("v100", 12, "nvlink2"), "data-parallel", batch=2,
                    replicas="all")    # every device's tasks on the timeline


def test_device_order_sorts_numbers_as_numbers():
    names = ["gpu10.compute", "gpu2.tx", "gpu2.compute", "gpu1.compute", "link:gpu11-gpu3"]
    assert sorted(names, key=device_order) == [
        "gpu1.compute", "gpu2.compute", "gpu2.tx", "gpu10.compute", "link:gpu11-gpu3"]


def test_the_timeline_rows_run_in_device_order_and_the_title_counts_the_rest(twelve):
    fig = plot_timeline(twelve, max_resources=6)
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == sorted(rows, key=device_order) and rows[0].startswith("gpu0.")
    assert not any(r.startswith("gpu10") for r in rows)
    assert "(the first 6 of" in ax.get_title()


def test_the_memory_plot_shows_gpu0_to_gpu7_and_says_four_are_left_out(twelve):
    ax = plot_memory(twelve).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"gpu{i}" for i in range(8)]
    assert "(the first 8 of 12 devices)" in ax.get_title()


def test_a_plot_that_shows_every_row_says_nothing_of_rows_left_out(twelve):
    fig = plot_timeline(twelve, max_resources=1000)
    assert "the first" not in fig.axes[0].get_title()
