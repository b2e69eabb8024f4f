"""from_torch on what users' models compute along a dimension and on norms and layers without
a shift: torch.max / torch.min(x, dim) (`.values`, `.indices`, or a tuple), torch.topk and
torch.sort (one select_values op writing the values and their int64 positions; its gradient
scatters dy into them, as autograd's), torch.addcmul with a learned scale and shift (one
addcmul kernel), a weight read through `.t()`, GroupNorm with a scale and no shift,
LayerNorm / GroupNorm without affine, and nn.TransformerEncoderLayer / DecoderLayer with
bias=False, and a product of two factors broadcast against each other (FocalNet). Each
imports with PyTorch's FLOPs and the module's parameters, replays in PyTorch
and trains; the kernels are checked against autograd."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.workloads.test_torch_import_recent_models import every_training_policy  # noqa: E402
from tests.workloads.test_torch_import_user_kinds import _kernel, _op  # noqa: E402
from tests.workloads.test_torch_import_user_models import imported  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training, training_memory  # noqa: E402


class Selected(nn.Module):
    """Values picked along dimensions after the batch, as models pick them."""

    def __init__(self, how: str):
        super().__init__()
        self.how, self.proj = how, nn.Linear(8, 8)
        self.head = nn.Linear(4 if how == "topk" else 8, 4)

    def forward(self, x):                                   # (N, S, 8)
        h = self.proj(x)
        if self.how == "max-values":                        # over the sequence: (N, 8)
            return self.head(torch.max(h, 1).values)
        if self.how == "min-tuple":
            low, _ = torch.min(h, dim=1)
            return self.head(low)
        if self.how == "max-keepdim-method":                # (N, S, 1), broadcast back
            return self.head(h - h.max(dim=-1, keepdim=True)[0])
        if self.how == "topk":                              # the 4 largest features
            return self.head(torch.topk(h, 4, dim=-1).values)
        return self.head(torch.sort(h, dim=1, descending=True).values)   # sorted over S


@pytest.mark.parametrize("how, picked_shape", [
    ("max-values", (2, 8)), ("min-tuple", (2, 8)), ("max-keepdim-method", (2, 5, 1)),
    ("topk", (2, 5, 4)), ("sort", (2, 8, 5))])
def test_values_picked_along_a_dimension_are_one_op_with_their_positions(how, picked_shape):
    torch.manual_seed(0)
    g = imported(Selected(how), torch.randn(2, 5, 8))
    (picked,) = [op for op in g if op.kind == "select_values"]
    out = picked.out
    assert out.shape == picked_shape   # over the sequence: moved last first (a view)
    # the values and their int64 positions, written by one kernel
    assert picked.bytes_written == out.nbytes + 8 * out.numel
    (grad,) = [op for op in lower_training(g) if op.kind == "select_values_grad"]
    assert grad.bytes_read == 4 * out.numel + 8 * out.numel   # dy and the positions
    assert grad.out.shape == picked.in_specs[0].shape


def test_the_positions_are_no_tensor_an_op_may_read():
    class Argmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            return self.proj(x) * torch.max(x, dim=1).indices.unsqueeze(1)

    with pytest.raises(WorkloadError, match="Tensor.unsqueeze at module path '<top>': reads "
                       "the positions of a max"):
        from_torch(Argmax(), torch.randn(2, 5, 8))


@pytest.mark.parametrize("which, k, attrs", [("max", 1, dict(keepdim=False)),
                                             ("min", 1, dict(keepdim=True)),
                                             ("topk", 3, dict(keepdim=True, largest=False)),
                                             ("sort", 7, dict(keepdim=True, descending=True))])
def test_the_select_values_kernels_are_autograds(which, k, attrs):
    x = torch.randn(2, 6, 7, requires_grad=True)
    if which in ("max", "min"):
        y = getattr(torch, which)(x, -1, attrs["keepdim"]).values
    elif which == "topk":
        y = torch.topk(x, k, -1, largest=False).values
    else:
        y = torch.sort(x, -1, descending=True).values
    y.backward(dy := torch.randn(y.shape))
    fwd, state = _kernel("select_values", [(2, 6, 7)], tuple(y.shape), op=which, k=k, **attrs)
    assert torch.equal(fwd(x.detach()), y.detach())
    state.saved["fwd"] = state.saved.pop("select_values")   # the positions it wrote
    grad_op = _op("select_values_grad", [tuple(y.shape), tuple(y.shape)], (2, 6, 7),
                  "backward", op=which, k=k, **attrs)
    from workloads.kinds import kind_of
    grad = kind_of("select_values_grad").torch_kernel(grad_op, state)
    assert torch.equal(grad(dy, y.detach()), x.grad)


def test_addcmul_of_a_learned_scale_and_shift_is_one_kernel_with_autograds_gradients():
    fwd, state = _kernel("addcmul", [(2, 3, 4)], (2, 3, 4), param_shape=(3, 1))
    w, b = state.params_of(_op("addcmul", [(2, 3, 4)], (2, 3, 4), param_shape=(3, 1)))
    x = torch.randn(2, 3, 4, requires_grad=True)
    wl, bl = w.clone().requires_grad_(), b.clone().requires_grad_()
    y = torch.addcmul(bl, wl, x)
    assert torch.equal(fwd(x.detach()), y.detach())
    y.backward(dy := torch.randn(2, 3, 4))
    grad, state = _kernel("addcmul_grad", [(2, 3, 4), (2, 3, 4)], (2, 3, 4),
                          param_shape=(3, 1))
    state.params = {"fwd": [w, b]}
    assert torch.allclose(grad(dy, x.detach()), x.grad)
    gw, gb = state.grads["fwd"]
    assert torch.allclose(gw, wl.grad) and torch.allclose(gb, bl.grad)


class Unshifted(nn.Module):
    """Norms and a projection as bias-free models write them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.gn.bias = None                                  # a scale and no shift
        self.plain_gn = nn.GroupNorm(4, 8, affine=False)
        self.ln = nn.LayerNorm(8, elementwise_affine=False)
        self.proj = nn.Parameter(torch.randn(4, 8) / 8)      # CLIP's `x @ proj.t()`

    def forward(self, x):
        h = self.plain_gn(self.gn(self.conv(x))).mean((2, 3))
        return self.ln(h) @ self.proj.t()


def test_norms_without_a_shift_and_a_weight_read_through_t_import():
    torch.manual_seed(0)
    g = imported(Unshifted(), torch.randn(2, 3, 8, 8))
    norms = [(op.kind, op.params) for op in g if op.kind in ("groupnorm", "layernorm")]
    assert norms == [("groupnorm", 8), ("groupnorm", 0), ("layernorm", 0)]
    (last,) = [op for op in g if op.kind == "linear"]
    assert last.params == 32 and not last.attrs.get("bias")


@pytest.mark.parametrize("decoder", [False, True])
def test_transformer_layers_without_biases_import_and_train(decoder):
    torch.manual_seed(0)
    layer = (nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer)(
        16, 2, 32, dropout=0.0, batch_first=True, bias=False)

    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x, x) if decoder else self.layer(x)

    g = imported(Body(), torch.randn(2, 5, 16))
    assert all(op.params == 16 for op in g if op.kind == "layernorm")
    assert all(op.params > 0 for op in g if op.kind == "layernorm")
    assert training_memory(lower_training(g)).weights_bytes == 4 * g.params()
    times = every_training_policy(g)
    assert all(t > 0 for t in times.values())


class FocalModulation(nn.Module):
    """FocalNet's global context (N, C, 1, 1) times its gate (N, 1, H, W): each factor
    broadcast where the other is larger."""

    def __init__(self):
        super().__init__()
        self.f, self.h = nn.Conv2d(8, 9, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        g = self.f(x)
        return self.h(g[:, :8].mean((2, 3), keepdim=True) * g[:, 8:])


def test_a_product_of_two_factors_broadcast_against_each_other_is_one_op():
    torch.manual_seed(0)
    g = imported(FocalModulation(), torch.randn(2, 8, 5, 5))
    (product,) = [op for op in g if op.kind == "mul"]
    assert product.out.shape == (2, 8, 5, 5) and product.attrs["broadcast"]
    grads = sorted(op.out.shape for op in lower_training(g) if op.kind == "mul_grad")
    assert grads == [(2, 1, 5, 5), (2, 8, 1, 1)]   # each summed back to its factor
