"""Stock Caffe's training memory (simulator/policies/_framework_memory.py)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.policies._framework_memory import (
    caffe_blob_bytes,
    caffe_layer_buffer_bytes,
    caffe_param_bytes,
    caffe_training_bytes,
)
from workloads.builder import GraphBuilder


def _net(batch: int):
    b = GraphBuilder("t", (3, 8, 8), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), 4, 3, padding=1, name="c")), name="r")
    b.linear(b.flatten(x), 10, name="fc")
    return b.build()


def test_blobs_and_their_gradients_for_the_whole_net():
    g = _net(2)
    conv_out, fc_out, image = 2 * 4 * 8 * 8 * 4, 2 * 10 * 4, 2 * 3 * 8 * 8 * 4
    # batch norm and ReLU run in place, flatten shares its bottom: one blob for the three
    assert caffe_blob_bytes(g) == 2 * conv_out + 2 * fc_out + image
    # BatchNorm's x_norm_ and temp_, the in-place Scale's temp_
    assert caffe_layer_buffer_bytes(g) == 3 * conv_out
    assert caffe_param_bytes(g) == 3 * sum(op.param_bytes for op in g.topo())
    assert caffe_training_bytes(g) == (caffe_blob_bytes(g) + caffe_layer_buffer_bytes(g)
                                       + caffe_param_bytes(g))


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 64))
def test_footprint_grows_linearly_with_the_batch(batch):
    fixed = 2 * caffe_training_bytes(_net(1)) - caffe_training_bytes(_net(2))
    per_sample = caffe_training_bytes(_net(2)) - caffe_training_bytes(_net(1))
    assert caffe_training_bytes(_net(batch)) == fixed + batch * per_sample
