"""Strided slices are views exactly where PyTorch's are: x[..., a::s] shares its input's
storage and is not contiguous (PyTorch's own is_contiguous and storage say so), and the graph
holds only views for it; a reader that copies it first (an aten::clone under the op in
torch.profiler: linear, softmax, layer norm, convolution) gets one `contiguous` copy, and a
reader that takes its strides (elementwise ops, cat, stack, reductions) none. The replayed
graph computes PyTorch's values."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from validation.calibrate.torch_exec import GraphModule  # noqa: E402
from workloads import from_torch  # noqa: E402

COPIES = ("contiguous", "index_select")


class Reads(nn.Module):
    """x[..., 1::2] (and x[..., ::2] where two operands) read by one op."""

    def __init__(self, reader):
        super().__init__()
        self.reader, self.fc, self.conv = reader, nn.Linear(8, 8), nn.Conv1d(8, 8, 3)

    def forward(self, x):
        return self.reader(self, x[..., ::2], x[..., 1::2])


READERS = {
    "mul": lambda m, a, b: a * b,
    "gelu": lambda m, a, b: F.gelu(b),
    "cat": lambda m, a, b: torch.cat((a, b), -1),
    "stack": lambda m, a, b: torch.stack((-b, a), -1).flatten(-2),
    "linear": lambda m, a, b: m.fc(b),
    "softmax": lambda m, a, b: b.softmax(-1),
    "layer_norm": lambda m, a, b: F.layer_norm(b, (8,)),
    "conv1d": lambda m, a, b: m.conv(b),
}


def pytorch_copies_first(model, x) -> bool:
    """Whether PyTorch's forward clones a tensor (the reader's .contiguous())."""
    from torch.profiler import profile
    with torch.no_grad(), profile() as prof:
        model(x)
    return any(e.name == "aten::clone" for e in prof.events())


def test_pytorchs_strided_slice_is_a_view_of_the_same_storage():
    x = torch.randn(2, 8, 16)
    y = x[..., 1::2]
    assert y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    assert not y.is_contiguous() and y.stride() == (128, 16, 2)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_strided_slice_is_copied_only_where_its_reader_copies_it(reader):
    torch.manual_seed(0)
    model, x = Reads(READERS[reader]).eval(), torch.randn(2, 8, 16)
    g = from_torch(model, x)
    copies = [op for op in g if op.kind in COPIES]
    if pytorch_copies_first(model, x):
        assert [op.kind for op in copies] == ["contiguous"]
        assert all(op.out.shape == (2, 8, 8) for op in copies)
    else:
        assert copies == []
    assert all(op.is_view for op in g if op.name.split(".")[-1].startswith(("strided", "slice")))


@pytest.mark.parametrize("reader", ["mul", "stack", "cat"])
def test_the_replayed_views_hold_pytorchs_values(reader):
    model, x = Reads(READERS[reader]).eval(), torch.randn(2, 8, 16)
    g = from_torch(model, x)
    torch.testing.assert_close(GraphModule(g)(x), model(x))


def test_a_start_past_the_step_and_a_dimension_after_the_batch():
    class Subsample(nn.Module):
        def forward(self, x):      # LeViT's x[:, ::2, ::2] of (N, H, W, C), and x[:, 3::2]
            return x[:, ::2, ::2] + x[:, 1::2, 1::2], x[:, 3::2]

    model, x = Subsample().eval(), torch.randn(2, 8, 8, 4)
    g = from_torch(model, x)
    assert not [op for op in g if op.kind in COPIES]
    (sub, skip) = (g.op(n) for n in g.meta["outputs"])
    assert sub.out.shape == (2, 4, 4, 4) and skip.out.shape == (2, 3, 8, 4)


def test_a_slice_overrunning_its_dimension_is_a_copy():
    """Seven values two by two: no contiguous range of four pairs, so an index_select."""
    class Odd(nn.Module):
        def forward(self, x):
            return x[..., ::2] * 2

    g = from_torch(Odd().eval(), torch.randn(2, 4, 7))
    (pick,) = [op for op in g if op.kind in COPIES]
    assert pick.kind == "index_select" and pick.attrs["index"] == (0, 2, 4, 6)
