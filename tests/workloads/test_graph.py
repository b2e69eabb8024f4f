"""The IR: op costs derived from kinds, shapes and attributes; graph checks."""
import networkx as nx
import pytest

from workloads.builder import GraphBuilder
from workloads.graph import Op, OpGraph, TensorSpec, WorkloadError


def _single(layer, input_shape=(3, 32, 32), batch=2):
    b = GraphBuilder("t", input_shape, batch=batch)
    out = layer(b, b.input())
    return b.build().op(out)


def test_conv_flops_are_two_per_multiply_add():
    op = _single(lambda b, x: b.conv2d(x, 16, 3, padding=1))
    macs = 2 * 16 * 32 * 32 * 3 * 3 * 3   # N Cout Ho Wo Cin Kh Kw
    assert op.macs == macs
    assert op.flops == 2 * macs
    assert op.params == 16 * 3 * 3 * 3


def test_conv_bias_adds_one_flop_per_output():
    op = _single(lambda b, x: b.conv2d(x, 8, 3, bias=True))
    assert op.flops == 2 * op.macs + op.out.numel
    assert op.params == 8 * 3 * 9 + 8


def test_linear_flops_and_params():
    op = _single(lambda b, x: b.linear(b.flatten(x), 10), input_shape=(4, 2, 2), batch=5)
    assert op.macs == 5 * 16 * 10
    assert op.flops == 2 * 5 * 16 * 10 + 5 * 10
    assert op.params == 16 * 10 + 10


def test_grouped_conv_divides_macs_and_params_by_groups():
    dense = _single(lambda b, x: b.conv2d(x, 32, 3, padding=1), input_shape=(32, 8, 8))
    grouped = _single(lambda b, x: b.conv2d(x, 32, 3, padding=1, groups=4),
                      input_shape=(32, 8, 8))
    assert grouped.macs * 4 == dense.macs
    assert grouped.params * 4 == dense.params


@pytest.mark.parametrize("layer", [lambda b, x: b.flatten(x), lambda b, x: b.dropout(x, 0.5)])
def test_views_cost_nothing(layer):
    op = _single(layer)
    assert op.is_view
    assert (op.flops, op.bytes_read, op.bytes_written) == (0, 0, 0)


def test_relu_reads_and_writes_its_tensor():
    op = _single(lambda b, x: b.relu(x))
    assert op.flops == op.out.numel
    assert op.bytes_read == op.bytes_written == 2 * 3 * 32 * 32 * 4


def test_pad_channels_writes_its_output_and_computes_nothing():
    op = _single(lambda b, x: b.pad_channels(x, (2, 3), stride=2))
    assert op.out.shape == (2, 8, 16, 16)
    assert op.flops == 0
    assert op.bytes_written == op.out.nbytes


def test_validate_finds_a_cycle():
    b = GraphBuilder("t", (3, 4, 4))
    a = b.relu(b.input())
    g = b.graph
    g.g.add_edge(a, "input")   # a manual back edge: the nx graph is no longer a DAG
    assert not nx.is_directed_acyclic_graph(g.g)
    with pytest.raises(WorkloadError, match="cycle"):
        g.validate()


def test_duplicate_and_unknown_names_are_refused():
    g = OpGraph("t")
    spec = TensorSpec((1, 3))
    g.add(Op("x", "input", (), (), spec))
    with pytest.raises(WorkloadError, match="duplicate"):
        g.add(Op("x", "input", (), (), spec))
    with pytest.raises(WorkloadError, match="unknown op"):
        g.add(Op("y", "relu", ("nope",), (spec,), spec))
    with pytest.raises(WorkloadError, match="unknown kind"):
        Op("z", "softsign", (), (), spec)


def test_totals_sum_forward_ops():
    b = GraphBuilder("t", (3, 8, 8), batch=2)
    x = b.relu(b.conv2d(b.input(), 4, 3, padding=1))
    b.linear(b.flatten(x), 10)
    g = b.build()
    assert g.params() == 4 * 27 + 256 * 10 + 10
    assert g.flops() == sum(op.flops for op in g)
    # input, flatten are views; conv, relu, linear outputs are materialised
    assert g.activation_bytes() == (2 * 4 * 64 * 2 + 2 * 10) * 4
    assert [op.layer for op in g.layers()] == [1, 2]
