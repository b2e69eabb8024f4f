"""constant_matmul: x @ C with C a constant matrix (a buffer), one GEMM with no parameters,
costed on every device class as a bias-free linear layer of its shape is, its gradient into x
alone, and the kernels autograd runs."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import model_for
from workloads.builder import GraphBuilder
from workloads.graph import Op, ShapeError, TensorSpec
from workloads.kinds.constant_matmul import _constant
from workloads.precision import with_precision
from workloads.training import lower_training

DEVICES = ("v100", "a100", "skylake-x-6c", "rpi4")


def product_and_linear(rows=64, k=48, n=40):
    """A layer's output h read twice: h @ C, and h @ W^T of the same shape."""
    b = GraphBuilder("g", input_shape=(k,), batch=rows)
    h = b.linear(b.input(), k, name="stem")
    b.add(b.constant_matmul(h, n, name="constant"), b.linear(h, n, bias=False, name="linear"))
    return b.build()


def test_a_constant_product_has_no_parameters_and_a_gradient_into_x_alone():
    graph = product_and_linear()
    op = graph.op("constant")
    assert op.params == 0 and op.flops == 2 * 64 * 48 * 40
    trained = lower_training(graph)
    grads = [o for o in trained if o.forward == "constant" and o.phase == "backward"]
    assert [o.kind for o in grads] == ["constant_matmul_grad"]
    assert grads[0].out.shape == (64, 48)
    assert not [o for o in trained.phase("update") if o.forward == "constant"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fp32", "amp-fp16"])
def test_each_device_costs_it_as_a_bias_free_linear_layer_of_its_shape(device, precision):
    model = model_for(device)
    if precision not in model.supported_precisions():
        pytest.skip(f"{device} does not train in {precision}")
    trained = lower_training(with_precision(product_and_linear(), precision))
    pairs = [("constant", "linear"), ("constant.grad", "linear.grad_input")]
    for constant, linear in pairs:
        a, b = trained.op(constant), trained.op(linear)
        assert a.flops == b.flops
        # under autocast the FP32 buffer is cast to half at each call, as the weight is
        assert model.op_time_s(a) == pytest.approx(model.op_time_s(b), rel=1e-12)


def test_a_constant_product_needs_a_feature_dimension():
    b = GraphBuilder("g", input_shape=(), batch=8)
    with pytest.raises(ShapeError, match="constant_matmul"):
        b.constant_matmul(b.input(), 4)


def test_its_kernels_are_autograds():
    torch = pytest.importorskip("torch")
    from tests.workloads.test_torch_import_user_kinds import _kernel
    forward, _ = _kernel("constant_matmul", [(3, 5, 6)], (3, 5, 4), batch_rows=15,
                         in_features=6, out_features=4)
    grad, _ = _kernel("constant_matmul_grad", [(3, 5, 4)], (3, 5, 6), batch_rows=15,
                      in_features=6, out_features=4)
    c = _constant(Op("c", "constant_matmul", ("x",), (TensorSpec((3, 5, 6)),),
                     TensorSpec((3, 5, 4)), dict(in_features=6, out_features=4)))
    x = torch.randn(3, 5, 6, requires_grad=True)
    (x @ c).backward(dy := torch.randn(3, 5, 4))
    assert torch.allclose(forward(x.detach()), x.detach() @ c)
    assert torch.allclose(grad(dy), x.grad)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 4096), k=st.integers(1, 2048), n=st.integers(1, 2048))
def test_on_a_gpu_any_shape_costs_as_the_bias_free_linear_layer(rows, k, n):
    """Whatever the shape (gemv-thin or wide, tensor-core padded or not), the product and its
    gradient run the kernels a bias-free linear layer's forward and input gradient run."""
    trained = lower_training(product_and_linear(rows, k, n))
    v100 = model_for("v100")
    for constant, linear in (("constant", "linear"), ("constant.grad", "linear.grad_input")):
        a, b = trained.op(constant), trained.op(linear)
        assert v100.kernel_options(a) == v100.kernel_options(b)
