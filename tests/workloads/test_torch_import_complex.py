"""from_torch on rotary embeddings applied with complex numbers, as Meta's reference LLaMA and
Hugging Face's Llama 4 write them (tests/workloads/torch_user_llama.py's
ComplexRotaryAttention): `view_as_complex` of (..., D, 2) pairs and `view_as_real` back are
views, the product with the complex table one mul_table_complex op whose kernels are
autograd's; the model imports alike on the meta device and trains under every policy; other
complex arithmetic is refused by name."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.workloads import torch_user_llama as ul  # noqa: E402
from tests.workloads.test_torch_import_recent_models import every_training_policy  # noqa: E402
from tests.workloads.test_torch_import_user_kinds import _kernel, _op  # noqa: E402
from tests.workloads.test_torch_import_user_models import imported, tokens  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def test_the_complex_rotary_product_is_one_op_per_tensor_rotated():
    torch.manual_seed(0)
    g = imported(ul.Llama(complex_rotary=True), tokens())       # 16 tokens, 4 heads of 16
    products = [op for op in g if op.kind == "mul_table_complex"]
    assert len(products) == 4                                   # q and k, two layers
    q, k = products[:2]
    assert q.out.shape == (2, 16, 4, 8, 2) and k.out.shape == (2, 16, 2, 8, 2)
    assert q.attrs["table_shape"] == (16, 1, 8)
    assert q.flops == 3 * q.out.numel                           # 6 per complex product
    assert q.bytes_read == q.in_specs[0].nbytes + 16 * 8 * 2 * 4   # x and the complex64 table
    grads = [op for op in lower_training(g) if op.kind == "mul_table_complex_grad"]
    assert len(grads) == 4 and grads[0].out.shape in {(2, 16, 4, 8, 2), (2, 16, 2, 8, 2)}


def test_the_complex_rotary_imports_alike_on_the_meta_device():
    torch.manual_seed(0)
    cpu = from_torch(ul.Llama(complex_rotary=True).eval(), tokens())
    with torch.device("meta"):
        meta = from_torch(ul.Llama(complex_rotary=True).eval(), torch.randint(0, 256, (2, 16)))
    assert [(op.kind, op.out.shape) for op in meta] == [(op.kind, op.out.shape) for op in cpu]


def test_the_complex_product_kernels_are_autograds():
    from workloads.kinds.pointwise_math import _complex_table
    shape, table_shape = (2, 3, 4, 2), (3, 4)
    fwd, _ = _kernel("mul_table_complex", [shape], shape, table_shape=table_shape)
    grad, _ = _kernel("mul_table_complex_grad", [shape], shape, table_shape=table_shape)
    table = _complex_table(_op("mul_table_complex", [shape], shape, table_shape=table_shape))
    x = torch.randn(shape, requires_grad=True)
    y = torch.view_as_real(torch.view_as_complex(x) * table)
    y.backward(dy := torch.randn(shape))
    assert torch.allclose(fwd(x.detach()), y.detach())
    assert torch.allclose(grad(dy), x.grad, atol=1e-6)


def test_a_complex_rotary_model_trains_under_every_policy():
    torch.manual_seed(0)
    times = every_training_policy(from_torch(ul.Llama(complex_rotary=True).eval(),
                                             torch.randint(0, 256, (4, 16))))
    assert all(t > 0 for t in times.values())


class OtherComplex(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how, self.proj = how, nn.Linear(8, 8)

    def forward(self, x):                                       # (N, S, 8)
        z = torch.view_as_complex(self.proj(x).reshape(*x.shape[:-1], 4, 2))
        if self.how == "abs":
            return z.abs()
        w = torch.view_as_complex(x.reshape(*x.shape[:-1], 4, 2))
        return torch.view_as_real(z * w).flatten(2)


@pytest.mark.parametrize("how, match", [
    ("abs", "Tensor.abs at module path '<top>'"),
    ("product", "multiplies a complex tensor by a tensor computed from the input")])
def test_other_complex_arithmetic_is_refused_by_name(how, match):
    with pytest.raises(WorkloadError, match=match):
        from_torch(OtherComplex(how), torch.randn(2, 5, 8))
