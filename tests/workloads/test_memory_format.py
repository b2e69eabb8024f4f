"""Memory format: the stamp every op carries, inherited by the backward pass."""
import pytest

from workloads import zoo
from workloads.graph import WorkloadError
from workloads.memory_format import (
    MEMORY_FORMATS,
    graph_memory_format,
    memory_format_of,
    with_memory_format,
)
from workloads.precision import with_precision
from workloads.training import lower_training


@pytest.mark.parametrize("memory_format", MEMORY_FORMATS)
def test_every_op_of_the_training_graph_carries_the_format(memory_format):
    forward = with_memory_format(zoo.get("resnet18", batch=2), memory_format)
    train = lower_training(forward)
    assert graph_memory_format(train) == memory_format
    assert {memory_format_of(op) for op in train} == {memory_format}


def test_the_format_changes_no_shape_flop_or_byte():
    g = with_precision(zoo.get("resnet18", batch=4), "amp-fp16")
    nhwc = with_memory_format(g, "nhwc")
    for a, b in zip(g, nhwc, strict=True):
        assert (a.name, a.out, a.in_specs, a.flops, a.bytes_moved) == \
            (b.name, b.out, b.in_specs, b.flops, b.bytes_moved)


def test_the_callers_graph_is_kept_and_the_same_format_is_the_same_graph():
    g = zoo.get("lenet5", batch=2)
    assert with_memory_format(g, "nchw") is g           # unstamped ops are in the default
    nhwc = with_memory_format(g, "nhwc")
    assert with_memory_format(nhwc, "nhwc") is nhwc
    assert graph_memory_format(g) == "nchw" and {memory_format_of(op) for op in g} == {"nchw"}
    back = with_memory_format(nhwc, "nchw")
    assert graph_memory_format(back) == "nchw" and graph_memory_format(nhwc) == "nhwc"


@pytest.mark.parametrize("bad", ["channels_last", "NHWC", "", None, 1])
def test_an_unknown_format_is_an_error_naming_the_known_ones(bad):
    with pytest.raises(WorkloadError, match="unknown memory format.*nchw, nhwc"):
        with_memory_format(zoo.get("lenet5", batch=2), bad)
