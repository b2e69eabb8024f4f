"""validation.calibrate.torch_exec / torch_ops: an OpGraph runs for real, op by op and as a
whole step."""
import pytest

torch = pytest.importorskip("torch")

from validation.calibrate.torch_exec import GraphModule, example_input, resolve_device, time_step  # noqa: E402
from validation.calibrate.torch_ops import op_callable  # noqa: E402
from workloads import zoo  # noqa: E402
from workloads.builder import GraphBuilder  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def every_kind_graph():
    b = GraphBuilder("every_kind", input_shape=(4, 8, 8), batch=2)
    x = b.input()
    y = b.relu(b.batchnorm(b.conv2d(x, 8, kernel=3, padding=1, bias=True)))
    z = b.conv2d(x, 8, kernel=1, groups=2)
    x = b.channel_shuffle(b.add(y, z), groups=2)
    x = b.concat([b.maxpool(x, 2), b.avgpool(x, 2)])
    x = b.pad_channels(x, (2, 2), stride=2)
    x = b.dropout(b.flatten(b.adaptive_avgpool(x)), 0.1)
    b.softmax_xent(b.linear(x, 5))
    return b.build()


def test_forward_output_matches_graph_shapes():
    g = zoo.get("resnet20", batch=2)
    out = GraphModule(g).eval()(example_input(g))
    assert tuple(out.shape) == g.topo()[-1].out.shape


def test_channel_shuffle_and_pad_channels_match_pytorch():
    g = every_kind_graph()
    m = GraphModule(g)
    assert m(example_input(g)).dim() == 0  # ends in the loss
    x = torch.arange(8.0).view(1, 8, 1, 1)
    from workloads.kinds.layout import shuffle
    assert torch.equal(shuffle(x, 2), torch.nn.ChannelShuffle(2)(x))


def test_every_op_of_a_training_graph_runs_with_its_shapes():
    train = lower_training(every_kind_graph())
    kinds = set()
    for op in train.topo():
        fn = op_callable(op, "cpu", graph=train)
        if fn is None:
            assert op.is_view
            continue
        out = fn()
        kinds.add(op.kind)
        if op.phase == "forward" and op.kind not in ("softmax_xent", "maxpool"):
            assert tuple(out.shape) == op.out.shape, op.name
        if op.kind == "conv2d_grad_input":
            assert tuple(out[0].shape) == op.out.shape
    assert {"conv2d_grad_weight", "batchnorm_grad", "maxpool_grad", "avgpool_grad",
            "channel_shuffle_grad", "sgd_update", "softmax_xent_grad", "grad_accumulate",
            "linear_grad_input", "relu_grad", "adaptive_avgpool_grad"} <= kinds


def test_training_step_updates_parameters_and_times_are_positive():
    g = zoo.get("lenet5", batch=4)
    t = time_step(g, training=True, warmup=1, reps=2)
    assert t.median_s > 0 and t.min_s <= t.median_s and len(t.samples_s) == 2
    from validation.calibrate.torch_exec import step_function
    m = GraphModule(g)
    before = [p.detach().clone() for p in m.parameters()]
    step_function(m, example_input(g), True)()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


def test_bad_device_is_a_clear_error():
    with pytest.raises(WorkloadError, match="cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(WorkloadError, match="no CUDA device"):
            resolve_device("cuda")


def test_backward_graph_is_refused():
    with pytest.raises(WorkloadError, match="forward graph"):
        GraphModule(lower_training(zoo.get("lenet5", batch=1)))


def test_a_broadcast_product_and_its_gradients_are_autograds():
    b = GraphBuilder("se", input_shape=(4, 6, 6), batch=3)
    x = b.conv2d(b.input(), 4, 3, padding=1)
    gate = b.reshape(b.activation(b.flatten(b.adaptive_avgpool(x)), "sigmoid"), (3, 4, 1, 1))
    b.linear(b.flatten(b.mul(x, gate)), 5)
    g = b.build()
    assert tuple(GraphModule(g).eval()(example_input(g)).shape) == (3, 5)
    train = lower_training(g)
    grads = {op.attrs["factor"]: op for op in train if op.kind == "mul_grad"}
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(3, 4, 6, 6, generator=gen, requires_grad=True)
    gs = torch.randn(3, 4, 1, 1, generator=gen, requires_grad=True)
    dy = torch.randn(3, 4, 6, 6, generator=gen)
    (xs * gs).backward(dy)
    from validation.calibrate.torch_ops import KernelState, op_kernel
    state = KernelState()
    assert torch.allclose(op_kernel(grads[0], state)(dy, gs.detach()), xs.grad, atol=1e-5)
    assert torch.allclose(op_kernel(grads[1], state)(dy, xs.detach()), gs.grad, atol=1e-5)
    for op in train.topo():
        fn = op_callable(op, "cpu", graph=train)
        if fn is not None:
            out = fn()
            if op.kind.startswith("mul"):
                assert tuple(out.shape) == op.out.shape, op.name


@pytest.mark.parametrize("affine", [True, False])
def test_norms_and_their_gradients_are_autograds(affine):
    b = GraphBuilder("norms", input_shape=(4, 5, 5), batch=3)
    x = b.conv2d(b.input(), 6, 3, padding=1)
    x = b.layernorm(b.groupnorm(b.batchnorm(x, affine=affine), 3, affine=affine), (6, 5, 5),
                    affine=affine)
    b.linear(b.layernorm(b.flatten(x), (150,), affine=affine), 5)
    g = b.build()
    assert tuple(GraphModule(g).eval()(example_input(g)).shape) == (3, 5)
    train = lower_training(g)
    from validation.calibrate.torch_ops import KernelState, op_kernel
    gen = torch.Generator().manual_seed(0)
    for op in train.topo():
        if not op.kind.endswith("norm_grad"):
            continue
        fwd = train.op(op.forward)
        state = KernelState(seed=1)
        xs = torch.randn(fwd.in_specs[0].shape, generator=gen, requires_grad=True)
        params = [p.requires_grad_(True) for p in state.params_of(fwd)]
        y = op_kernel(fwd, state)(xs)
        dy = torch.randn(y.shape, generator=gen)
        y.backward(dy)
        assert torch.allclose(op_kernel(op, state)(dy, xs.detach()), xs.grad, atol=1e-4), op.name
        assert len(state.grads[fwd.name]) == (2 if affine else 0)
        for got, want in zip(state.grads[fwd.name], params, strict=True):
            assert torch.allclose(got, want.grad, atol=1e-4), op.name
        assert (op.params > 0) == affine
    for op in train.topo():
        fn = op_callable(op, "cpu", graph=train)
        if fn is not None:
            fn()


def test_constant_arithmetic_runs_as_one_kernel_with_autograds_gradient():
    b = GraphBuilder("consts", input_shape=(4, 5, 5), batch=2)
    x = b.conv2d(b.input(), 4, 3, padding=1)
    x = b.scalar(b.scalar(b.scalar(x, shift=3.0), scale=0.25), scale=-1.0, shift=2.0)
    b.linear(b.flatten(x), 3)
    g = b.build()
    from validation.calibrate.torch_ops import KernelState, op_kernel
    xs = torch.randn(2, 4, 5, 5)
    got = xs
    for op in g.topo():
        if op.kind == "scalar":
            got = op_kernel(op, KernelState())(got)
    assert torch.allclose(got, 2.0 - (xs + 3.0) * 0.25)
    train = lower_training(g)
    for op in train.topo():
        if op.kind == "scalar_grad":
            dy = torch.randn(op.out.shape)
            assert torch.allclose(op_kernel(op, KernelState())(dy), dy * op.attrs["scale"])
    assert tuple(GraphModule(g).eval()(example_input(g)).shape) == (2, 3)


def test_ceil_mode_max_pools_run_the_shape_the_graph_says():
    b = GraphBuilder("ceil", input_shape=(4, 7, 7), batch=2)
    b.flatten(b.maxpool(b.input(), 2, stride=2, ceil_mode=True, name="pool"))
    g = b.build()
    out = GraphModule(g).eval()(example_input(g))
    assert tuple(out.shape) == g.topo()[-1].out.shape == (2, 4 * 4 * 4)
