"""The kinds that models written by hand brought to the IR (index_select, unfold, bias_add,
sqrt, div, a broadcast sub, the per-pixel loss): each kind's PyTorch kernels, forward and
gradient, against what autograd computes."""
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tests.workloads import torch_user_models as um  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def _op(kind, ins, out, phase="forward", **attrs):
    from workloads.graph import Op, TensorSpec
    specs = tuple(TensorSpec(s, 4) for s in ins)
    return Op(kind, kind, tuple(f"in{i}" for i in range(len(ins))), specs, TensorSpec(out, 4),
              attrs=attrs, phase=phase, forward=None if phase == "forward" else "fwd")


def _kernel(kind, ins, out, **attrs):
    from validation.calibrate.torch_ops import KernelState
    from workloads.kinds import kind_of
    phase = "backward" if kind.endswith(("_grad", "_grad_divisor")) else "forward"
    op = _op(kind, ins, out, phase, **attrs)
    state = KernelState()
    return kind_of(kind).torch_kernel(op, state), state


BIG, SMALL = (2, 4, 6, 6), (2, 1, 6, 6)


def test_sub_div_and_sqrt_of_a_broadcast_operand_have_autograds_gradients():
    x = torch.randn(BIG, requires_grad=True)
    y = (torch.rand(SMALL) + 0.5).requires_grad_()
    dy = torch.randn(BIG)
    (x / y).backward(dy)
    div, _ = _kernel("div", [BIG, SMALL], BIG)
    assert torch.equal(div(x.detach(), y.detach()), x.detach() / y.detach())
    dividend, _ = _kernel("div_grad", [BIG, SMALL], BIG)
    divisor, _ = _kernel("div_grad_divisor", [BIG, BIG, SMALL], SMALL)
    assert torch.allclose(dividend(dy, y.detach()), x.grad)
    assert torch.allclose(divisor(dy, x.detach(), y.detach()), y.grad, rtol=1e-5, atol=1e-5)
    y.grad = None
    (x - y).backward(dy)
    sub_grad, _ = _kernel("sub_grad", [BIG], SMALL)
    assert torch.allclose(sub_grad(dy), y.grad)
    s = torch.rand(SMALL).add(0.5).requires_grad_()
    root = torch.sqrt(s)
    root.backward(dsmall := torch.randn(SMALL))
    sqrt_grad, _ = _kernel("sqrt_grad", [SMALL, SMALL], SMALL)
    assert torch.allclose(sqrt_grad(dsmall, root.detach()), s.grad)


def test_a_learned_shift_and_picked_rows_have_autograds_gradients():
    bias_add, state = _kernel("bias_add", [BIG], BIG, param_shape=(4, 1, 1))
    bias_grad, _ = _kernel("bias_add_grad", [BIG], (4,), param_shape=(4, 1, 1))
    x, dy = torch.randn(BIG), torch.randn(BIG)
    (b,) = state.params_of(_op("bias_add", [BIG], BIG, param_shape=(4, 1, 1)))
    assert torch.equal(bias_add(x), x + b)
    assert torch.allclose(bias_grad(dy), dy.sum((0, 2, 3), keepdim=True))
    rows = (3, 1, 1, 0)   # a row picked twice gets both contributions
    pick, _ = _kernel("index_select", [(2, 5, 8)], (2, 4, 8), dim=1, index=rows)
    pick_grad, _ = _kernel("index_select_grad", [(2, 4, 8)], (2, 5, 8), dim=1, index=rows)
    x = torch.randn(2, 5, 8, requires_grad=True)
    x[:, list(rows)].backward(dy := torch.randn(2, 4, 8))
    assert torch.equal(pick(x.detach()), x.detach()[:, list(rows)])
    assert torch.allclose(pick_grad(dy), x.grad)


def test_unfolds_gradient_is_autograds():
    attrs = dict(kernel=(3, 3), dilation=(1, 1), padding=(1, 1), stride=(2, 2))
    unfold, _ = _kernel("unfold", [(2, 3, 8, 8)], (2, 27, 16), **attrs)
    fold, _ = _kernel("unfold_grad", [(2, 27, 16)], (2, 3, 8, 8), **attrs)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    cols = F.unfold(x, 3, padding=1, stride=2)
    cols.backward(dy := torch.randn_like(cols))
    assert torch.equal(unfold(x.detach()), cols.detach())
    assert torch.allclose(fold(dy), x.grad)


def test_a_dense_prediction_trains_on_every_pixels_logits():
    """A U-Net's (N, classes, H, W) logits: per-pixel cross-entropy, as F.cross_entropy takes
    them (log_softmax over the classes, nll_loss2d), forward and gradient."""
    g = from_torch(um.UNet().eval(), torch.randn(2, 3, 32, 32))
    assert g.meta["pixel_logits"]
    loss = next(op for op in lower_training(g) if op.kind == "softmax_xent")
    assert loss.attrs["class_dim"] == 1 and loss.attrs["classes"] == 2
    forward, state = _kernel("softmax_xent", [(2, 3, 4, 4)], (1,), class_dim=1)
    backward, _ = _kernel("softmax_xent_grad", [(2, 3, 4, 4)], (2, 3, 4, 4), class_dim=1)
    from workloads.kinds.loss_update import _pixel_targets
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = _pixel_targets(_op("softmax_xent", [(2, 3, 4, 4)], (1,), class_dim=1),
                            gen=torch.Generator().manual_seed(0))
    F.cross_entropy(logits, target).backward()
    assert torch.allclose(forward(logits.detach()), F.cross_entropy(logits.detach(), target))
    assert torch.allclose(backward(logits.detach()), logits.grad, atol=1e-7)
