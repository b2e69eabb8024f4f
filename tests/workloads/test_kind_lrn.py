"""The lrn kind: what it costs and saves, that from_torch imports nn.LocalResponseNorm onto it,
and that its replay kernels compute what PyTorch computes (the forward nn.LocalResponseNorm's,
the backward autograd's through it) for any window size, odd or even."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads.builder import GraphBuilder
from workloads.training import lower_training


def lrn_graph(size=5, alpha=1e-4, beta=0.75, k=1.0, channels=6):
    b = GraphBuilder("lrn", input_shape=(3, 4, 4), batch=2)
    x = b.conv2d(b.input(), channels, 1, name="conv")
    y = b.op("lrn", [x], name="norm", size=size, alpha=alpha, beta=beta, k=k)
    b.linear(b.flatten(y), 3, name="fc")
    return lower_training(b.build())


def test_lrn_is_memory_bound_and_its_gradient_reads_dy_x_and_y():
    train = lrn_graph()
    norm, grad = train.op("norm"), train.op("norm.grad")
    value_bytes = norm.out.nbytes
    assert (norm.bytes_read, norm.bytes_written) == (value_bytes, value_bytes)
    assert grad.kind == "lrn_grad"
    assert list(grad.inputs[1:]) == ["conv", "norm"]     # after dy: the saved x and y
    assert (grad.bytes_read, grad.bytes_written) == (3 * value_bytes, value_bytes)
    assert norm.kind_record.family == grad.kind_record.family == "normalization"
    assert norm.flops == (5 + 4) * norm.out.numel


torch = pytest.importorskip("torch")

from validation.calibrate.torch_ops import KernelState, op_kernel  # noqa: E402
from workloads.torch_import import from_torch  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 7), alpha=st.floats(1e-4, 1.0), beta=st.floats(0.5, 1.0),
       k=st.floats(0.5, 2.0), seed=st.integers(0, 2**16))
def test_lrn_kernels_are_pytorchs_and_autograds(size, alpha, beta, k, seed):
    train = lrn_graph(size, alpha, beta, k)
    state = KernelState(graph=train)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.LocalResponseNorm(size, alpha, beta, k)(x)
    y = op_kernel(train.op("norm"), state)(x)
    assert torch.allclose(y, ref)
    dy = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    dx, = torch.autograd.grad(ref, x, dy)
    got = op_kernel(train.op("norm.grad"), state)(dy, x.detach(), ref.detach())
    assert torch.allclose(got, dx, atol=1e-10)


def test_from_torch_imports_local_response_norm_onto_the_kind():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.LocalResponseNorm(3, 2e-4,
                                                                                       0.5, 2.0))
    g = from_torch(model, torch.randn(1, 3, 8, 8))
    norm, = (op for op in g if op.kind == "lrn")
    assert norm.attrs == {"size": 3, "alpha": 2e-4, "beta": 0.5, "k": 2.0}
    assert norm.out.shape == (1, 8, 6, 6)
