"""from_torch on code as users write it (tests/workloads/torch_user_code.py): a custom
autograd Function, gradient checkpointing, in-place ops, Python control flow, SDPA with a
boolean mask buffer, a network of functional calls and a loop over chunks summed over the
positions import with PyTorch's own FLOPs and the module's parameters, replay in PyTorch and
train; a sum (the kind `sum`) and its gradient are autograd's; what stays out (a learned
additive mask, einsum with a 3-D weight, a sum over the batch) is refused by name."""
import pytest

torch = pytest.importorskip("torch")

from tests.workloads import torch_user_code as uc  # noqa: E402
from tests.workloads.test_torch_import_user_kinds import _kernel  # noqa: E402
from tests.workloads.test_torch_import_user_models import imported  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402

REFUSED = {"sdpa-learned-mask": "adds a mask computed from parameter 'bias'",
           "einsum-3d-weight": "einsum 'btc,hdc->bthd' of a tensor and parameter 'w'"}


@pytest.mark.parametrize("name", sorted(set(uc.CASES) - set(REFUSED)))
def test_user_code_imports_with_pytorchs_flops_and_parameters(name):
    torch.manual_seed(0)
    imported(*uc.CASES[name]())


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_stays_out_is_refused_naming_the_op_and_its_module_path(name):
    model, x = uc.CASES[name]()
    with pytest.raises(WorkloadError) as err:
        from_torch(model.eval(), x)
    assert "1 unsupported op (1 call)" in str(err.value)
    assert "at module path '<top>'" in str(err.value) and REFUSED[name] in str(err.value)


def test_a_sum_over_positions_is_a_permute_and_a_sum_and_its_gradient_is_autograds():
    g = from_torch(uc.ChunkLoop().eval(), torch.randn(2, 32, 32))
    (total,) = [op for op in g if op.kind == "sum"]
    assert total.in_specs[0].shape == (2, 32, 32) and total.out.shape == (2, 32)
    assert total.attrs == {"reduced_dims": 1, "keepdim": False}
    x = torch.randn(2, 3, 5, requires_grad=True)
    y = x.sum((1, 2), keepdim=True)
    dy = torch.randn_like(y)
    y.backward(dy)
    forward, _ = _kernel("sum", [x.shape], tuple(y.shape), reduced_dims=2, keepdim=True)
    assert torch.allclose(forward(x.detach()), y.detach())
    backward, _ = _kernel("sum_grad", [y.shape], tuple(x.shape), reduced_dims=2,
                          keepdim=True)
    assert torch.equal(backward(dy), x.grad)


def test_a_sum_over_the_batch_is_refused():
    class Total(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x).sum()
    with pytest.raises(WorkloadError, match=r"Tensor.sum at module path '<top>'.*only the "
                                            "sum over dimensions after the batch"):
        from_torch(Total(), torch.randn(2, 4))
