"""Stock Caffe's and Torch7's training memory (simulator/framework_memory.py)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from simulator import Cluster, simulate
from simulator.framework_memory import (
    caffe_blob_bytes,
    caffe_layer_buffer_bytes,
    caffe_param_bytes,
    caffe_training_bytes,
    torch7_grad_input_bytes,
    torch7_output_bytes,
    torch7_training_bytes,
)
from simulator.lowering import resident_bytes
from simulator.policies import ConfigError
from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.training import lower_training


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


# -- Torch7 ----------------------------------------------------------------------------------
def _residual(batch: int):
    """conv-bn-relu, a block conv-bn whose sum with its input is ReLU'd, then a classifier."""
    b = GraphBuilder("res", (3, 8, 8), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), 4, 3, padding=1, name="c1"), name="b1"),
               name="r1")
    y = b.batchnorm(b.conv2d(x, 4, 3, padding=1, name="c2"), name="b2")
    z = b.relu(b.add(y, x, name="sum"), name="r2")
    b.linear(b.flatten(z), 10, name="fc")
    return b.build()


def test_torch7_keeps_every_modules_output_and_grad_input():
    g = _residual(2)
    act, image, logits = 2 * 4 * 8 * 8 * 4, 2 * 3 * 8 * 8 * 4, 2 * 10 * 4
    # c1, b1, c2, b2 and fc own an output; the ReLUs and the sum run in place, flatten views
    assert torch7_output_bytes(g) == image + 4 * act + logits
    # gradInputs: c1 none (the image's), b1, c2, b2, fc one activation each, and the
    # ConcatTable that forks r1 into the block and the shortcut
    assert torch7_grad_input_bytes(g) == 4 * act + act
    # shared per module type: conv2d, batchnorm, linear one each, the ConcatTable one
    assert torch7_grad_input_bytes(g, share_grad_input=True) == 4 * act
    params = resident_bytes(g, training=True)
    assert torch7_training_bytes(g) == torch7_output_bytes(g) + 5 * act + params


def test_torch7_max_pooling_keeps_int64_indices():
    b = GraphBuilder("pool", (3, 8, 8), batch=2)
    b.linear(b.flatten(b.maxpool(b.conv2d(b.input(), 4, 3, padding=1, name="c"), 2)), 10)
    g = b.build()
    pooled = 2 * 4 * 4 * 4
    conv_out, image, logits = 2 * 4 * 8 * 8 * 4, 2 * 3 * 8 * 8 * 4, 2 * 10 * 4
    assert torch7_output_bytes(g) == image + conv_out + pooled * (4 + 8) + logits


def test_torch7_dropout_keeps_output_grad_input_and_noise_in_either_graph():
    b = GraphBuilder("drop", (3, 8, 8), batch=2)
    b.linear(b.dropout(b.flatten(b.conv2d(b.input(), 4, 3, padding=1, name="c")), 0.5), 10)
    g = b.build()
    act, image, logits = 2 * 4 * 8 * 8 * 4, 2 * 3 * 8 * 8 * 4, 2 * 10 * 4
    assert torch7_output_bytes(g) == image + act + 2 * act + logits   # output, noise
    assert torch7_grad_input_bytes(g) == act + act                    # dropout's, fc's
    for fw in (torch7_training_bytes, caffe_training_bytes):
        assert fw(g) == fw(lower_training(g))


def test_torch7_runs_out_of_memory_before_the_first_op_and_sharing_helps():
    g = zoo.get("resnet50_v1", batch=64)
    cluster = Cluster.build(catalog.device("titan-x-maxwell"), 1, "pcie3")
    plain = simulate(g, cluster, "torch7")
    shared = simulate(g, cluster, "torch7", share_grad_input=True)
    # fb.resnet.torch: -shareGradInput "is useful for fitting ResNet-50 on 4 GPUs" (64 each)
    assert not plain.ok and "torch7.net_init" in plain.oom.message()
    assert shared.ok
    with pytest.raises(ConfigError, match="share_grad_input"):
        simulate(g, cluster, "torch7", share_grad_input="maybe")


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 32))
def test_torch7_footprint_is_linear_in_the_batch_and_sharing_never_adds(batch):
    one, two = torch7_training_bytes(_residual(1)), torch7_training_bytes(_residual(2))
    g = _residual(batch)
    assert torch7_training_bytes(g) == one + (batch - 1) * (two - one)
    assert torch7_training_bytes(g, True) <= torch7_training_bytes(g)
