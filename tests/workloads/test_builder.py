"""GraphBuilder: shape inference for every layer, and clear errors for shapes that do not fit."""
import pytest

from workloads.builder import GraphBuilder
from workloads.graph import ShapeError, WorkloadError


@pytest.fixture
def b():
    return GraphBuilder("t", (8, 16, 16), batch=2)


def shape(b, name):
    return b.spec(name).shape


def test_input(b):
    assert shape(b, b.input()) == (2, 8, 16, 16)


@pytest.mark.parametrize("kwargs,expected", [
    (dict(out_channels=4, kernel=3), (2, 4, 14, 14)),
    (dict(out_channels=4, kernel=3, padding=1), (2, 4, 16, 16)),
    (dict(out_channels=4, kernel=3, stride=2, padding=1), (2, 4, 8, 8)),
    (dict(out_channels=4, kernel=(1, 3), padding=(0, 1)), (2, 4, 16, 16)),
    (dict(out_channels=4, kernel=3, dilation=2), (2, 4, 12, 12)),
    (dict(out_channels=8, kernel=1, groups=8), (2, 8, 16, 16)),
])
def test_conv2d_shapes(b, kwargs, expected):
    assert shape(b, b.conv2d(b.input(), **kwargs)) == expected


def test_pooling_shapes(b):
    x = b.input()
    assert shape(b, b.maxpool(x, 2)) == (2, 8, 8, 8)
    assert shape(b, b.maxpool(x, 3, stride=2, padding=1)) == (2, 8, 8, 8)
    assert shape(b, b.avgpool(x, 4, stride=4)) == (2, 8, 4, 4)
    assert shape(b, b.adaptive_avgpool(x, (1, 1))) == (2, 8, 1, 1)


@pytest.mark.parametrize("size,kernel,stride,padding,floor_out,ceil_out", [
    (112, 3, 2, 0, 55, 56),    # GoogLeNet's maxpool1
    (14, 2, 2, 0, 7, 7),       # an exact division: ceil_mode changes nothing
    (5, 2, 2, 1, 3, 3),        # ceil gives 4, but the 4th window would start in the padding
    (6, 3, 2, 1, 3, 4),
])
def test_maxpool_ceil_mode(size, kernel, stride, padding, floor_out, ceil_out):
    b = GraphBuilder("t", (4, size, size))
    x = b.input()
    floor = b.maxpool(x, kernel, stride, padding)
    ceil = b.maxpool(x, kernel, stride, padding, ceil_mode=True)
    assert shape(b, floor)[2:] == (floor_out, floor_out)
    assert shape(b, ceil)[2:] == (ceil_out, ceil_out)
    assert b.graph.op(ceil).attrs["ceil_mode"] is True
    assert "ceil_mode" not in b.graph.op(floor).attrs


def test_maxpool_ceil_mode_sizes_are_pytorchs():
    torch = pytest.importorskip("torch")
    for size in range(3, 20):
        for kernel, stride, padding in [(2, 2, 0), (3, 2, 0), (3, 2, 1), (3, 3, 1), (2, 3, 1)]:
            b = GraphBuilder("t", (1, size, size + 1))
            y = b.maxpool(b.input(), kernel, stride, padding, ceil_mode=True)
            pool = torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode=True)
            expected = tuple(pool(torch.zeros(1, 1, size, size + 1)).shape)
            assert shape(b, y) == expected, (size, kernel, stride, padding)


@pytest.mark.parametrize("kwargs", [dict(kernel=0), dict(kernel=2, stride=0),
                                    dict(kernel=2, padding=-1)])
def test_pool_with_a_bad_window_is_a_shape_error(b, kwargs):
    with pytest.raises(ShapeError, match="must be >= 1"):
        b.maxpool(b.input(), **kwargs)


def test_linear_flatten_and_elementwise(b):
    x = b.input()
    assert shape(b, b.relu(x)) == shape(b, b.batchnorm(x)) == shape(b, b.dropout(x)) == \
        (2, 8, 16, 16)
    f = b.flatten(x)
    assert shape(b, f) == (2, 8 * 16 * 16)
    assert shape(b, b.linear(f, 10)) == (2, 10)
    assert shape(b, b.add(x, b.relu(x))) == (2, 8, 16, 16)


def test_concat_shuffle_pad_and_loss(b):
    x = b.input()
    assert shape(b, b.concat([x, b.conv2d(x, 4, 1)])) == (2, 12, 16, 16)
    assert shape(b, b.channel_shuffle(x, 4)) == (2, 8, 16, 16)
    assert shape(b, b.pad_channels(x, (4, 4), stride=2)) == (2, 16, 8, 8)
    logits = b.linear(b.flatten(x), 10)
    assert shape(b, b.softmax_xent(logits)) == (1,)


def test_scopes_name_ops_like_module_paths(b):
    x = b.input()
    with b.scope("layer1"), b.scope("0"):
        c = b.conv2d(x, 4, 3, name="conv1")
        r1, r2 = b.relu(c), b.relu(c)
    assert (c, r1, r2) == ("layer1.0.conv1", "layer1.0.relu", "layer1.0.relu2")


def test_kernel_that_does_not_fit_is_a_shape_error(b):
    x = b.input()
    with pytest.raises(ShapeError, match="does not fit"):
        b.conv2d(x, 4, 17)
    with pytest.raises(ShapeError, match="does not fit"):
        b.maxpool(x, 32)


def test_groups_must_divide_channels(b):
    x = b.input()
    with pytest.raises(ShapeError, match="groups"):
        b.conv2d(x, 6, 3, groups=3)
    with pytest.raises(ShapeError, match="groups"):
        b.channel_shuffle(x, 3)


def test_mismatched_add_and_concat(b):
    x = b.input()
    y = b.conv2d(x, 4, 1)
    with pytest.raises(ShapeError, match="differ"):
        b.add(x, y)
    with pytest.raises(ShapeError, match="differ"):
        b.concat([x, b.maxpool(x, 2)])


def test_bad_batch_and_duplicate_names():
    with pytest.raises(WorkloadError, match="batch"):
        GraphBuilder("t", (3, 4, 4), batch=0)
    b = GraphBuilder("t", (3, 4, 4))
    b.relu(b.input(), name="r")
    with pytest.raises(WorkloadError, match="duplicate"):
        b.relu("input", name="r")


def test_slice_is_a_free_view_with_a_checked_range():
    from workloads.builder import GraphBuilder
    from workloads.graph import ShapeError
    b = GraphBuilder("s", (8, 4, 4), batch=2)
    x = b.input()
    y = b.slice(x, 2, 6)
    op = b.graph.op(y)
    assert op.out.shape == (2, 4, 4, 4) and op.flops == 0 and op.bytes_moved == 0
    with pytest.raises(ShapeError, match="does not fit"):
        b.slice(x, 6, 9)


def test_activations_keep_the_shape_and_their_attributes(b):
    x = b.conv2d(b.input(), 4, 3, padding=1)
    y = b.activation(x, "hardtanh", min_val=0.0, max_val=6.0)
    z = b.activation(y, "gelu")
    g = b.build()
    assert g.op(y).out.shape == g.op(x).out.shape == g.op(z).out.shape
    assert g.op(y).attrs == {"min_val": 0.0, "max_val": 6.0}
    assert g.op(z).attrs == {"approximate": "none"}       # PyTorch's default
    assert g.op(z).flops > g.op(y).flops > 0               # an erf costs more than a clamp


def test_an_unknown_activation_or_attribute_is_named(b):
    x = b.input()
    with pytest.raises(WorkloadError, match="unknown kind 'swish'; known: relu, elu"):
        b.activation(x, "swish")
    with pytest.raises(WorkloadError, match="tanh after 'input': unknown attributes alpha"):
        b.activation(x, "tanh", alpha=1.0)


def test_mul_broadcasts_one_factor_and_puts_the_full_one_first(b):
    x = b.conv2d(b.input(), 8, 3, padding=1)
    gate = b.reshape(b.flatten(b.adaptive_avgpool(x)), (2, 8, 1, 1))
    assert shape(b, gate) == (2, 8, 1, 1) and b.graph.op(gate).is_view
    y = b.mul(gate, x)
    op = b.graph.op(y)
    assert op.inputs == (x, gate) and op.attrs["broadcast"] and shape(b, y) == (2, 8, 16, 16)
    assert op.flops == 2 * 8 * 16 * 16 and op.bytes_moved == 4 * (2 * 2 * 8 * 16 * 16 + 16)
    assert not b.graph.op(b.mul(x, x)).attrs["broadcast"]


def test_mul_and_reshape_refuse_shapes_that_do_not_fit(b):
    image = b.input()
    x = b.conv2d(image, 8, 3, padding=1)
    with pytest.raises(ShapeError, match="each factor must have the other's size, or 1"):
        b.mul(x, b.conv2d(image, 4, 3, padding=1))
    gate = b.adaptive_avgpool(b.conv2d(image, 8, 1), 1)            # (2, 8, 1, 1)
    row = b.adaptive_avgpool(b.conv2d(image, 1, 1), (1, 16))       # (2, 1, 1, 16)
    both = b.graph.op(b.mul(gate, row))                             # each broadcast
    assert both.out.shape == (2, 8, 1, 16) and both.attrs["broadcast"]
    with pytest.raises(ShapeError, match="keeps the batch and the number of values"):
        b.reshape(x, (4, 8, 16, 8))
    with pytest.raises(ShapeError, match="keeps the batch and the number of values"):
        b.reshape(x, (2, 8, 16, 15))


def test_layernorm_and_groupnorm(b):
    x = b.conv2d(b.input(), 8, 3, padding=1)
    ln = b.graph.op(b.layernorm(x, (8, 16, 16)))
    assert ln.params == 2 * 8 * 16 * 16 and ln.out.shape == (2, 8, 16, 16)
    gn = b.graph.op(b.groupnorm(x, 4, affine=False))
    assert gn.params == 0 and gn.attrs["num_groups"] == 4
    assert b.graph.op(b.batchnorm(x, affine=False)).params == 0
    with pytest.raises(ShapeError, match="trailing dimensions"):
        b.layernorm(x, (16, 8))
    with pytest.raises(ShapeError, match="must divide the channels"):
        b.groupnorm(x, 3)
