"""The IR's pointwise activations run in PyTorch as a training step runs them."""
import pytest

torch = pytest.importorskip("torch")

from validation.calibrate import torch_activations  # noqa: E402
from validation.calibrate.calibration_nets import ACTIVATION_ATTRS  # noqa: E402
from validation.calibrate.torch_exec import GraphModule, example_input  # noqa: E402
from validation.calibrate.torch_ops import op_callable  # noqa: E402
from workloads.builder import GraphBuilder  # noqa: E402
from workloads.graph import ACTIVATIONS, WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def one_activation(kind: str, **attrs):
    b = GraphBuilder(kind, input_shape=(4, 5, 5), batch=3)
    y = b.activation(b.conv2d(b.input(), 4, 3, padding=1), kind, **attrs)
    b.linear(b.flatten(y), 3)
    train = lower_training(b.build())
    fwd, = [op for op in train.topo() if op.kind == kind]
    grad, = [op for op in train.topo() if op.kind == f"{kind}_grad"]
    return fwd, grad


def test_every_activation_has_a_forward_and_a_backward():
    from workloads.kinds import kind_of
    for kind in ACTIVATIONS:
        assert kind_of(kind).torch_kernel is not None
        assert kind_of(f"{kind}_grad").torch_kernel is not None


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_the_replayed_gradient_is_autograds(kind):
    fwd, grad = one_activation(kind, **ACTIVATION_ATTRS.get(kind, {}))
    x = (4 * torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0)))
    x.requires_grad_(True)
    y = torch_activations.forward(fwd)(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    # the gradient reads what lower_training saved: the output (tanh, sigmoid) or the input
    saved = y.detach() if grad.saved == (fwd.name,) else x.detach()
    assert grad.saved == ((fwd.name,) if kind in ("tanh", "sigmoid") else (fwd.inputs[0],))
    assert torch.allclose(torch_activations.backward(grad)(dy, saved), x.grad, atol=1e-5)


def test_every_activation_runs_in_a_graph_and_alone():
    b = GraphBuilder("acts", input_shape=(4, 6, 6), batch=2)
    x = b.conv2d(b.input(), 8, 3, padding=1)
    for kind in ACTIVATIONS:
        x = b.activation(x, kind)
    b.linear(b.flatten(x), 5)
    g = b.build()
    assert tuple(GraphModule(g).eval()(example_input(g)).shape) == (2, 5)
    train = lower_training(g)
    ran = set()
    for op in train.topo():
        fn = op_callable(op, "cpu", graph=train)
        if fn is not None:
            out = fn()
            ran.add(op.kind)
            if op.kind.removesuffix("_grad") in ACTIVATIONS:
                assert tuple(out.shape) == op.out.shape, op.name
    assert {k for a in ACTIVATIONS for k in (a, f"{a}_grad")} <= ran


def test_a_kind_that_is_not_an_activation_is_refused():
    fwd, _ = one_activation("tanh")
    conv = GraphBuilder("c", input_shape=(4, 5, 5), batch=1)
    conv.conv2d(conv.input(), 4, 3)
    op = conv.build().topo()[-1]
    with pytest.raises(WorkloadError, match="not an activation"):
        torch_activations.forward(op)
    with pytest.raises(WorkloadError, match="not an activation_grad"):
        torch_activations.backward(fwd)
