"""F.pad of two dimensions with a constant imports as the pad_spatial copy: timm's asymmetric
"same" padding of (N, C, H, W) before a convolution or a max pool (with -inf), a row put
before the tokens of (N, heads, S, D) (CoaT), and a pad of nothing (still PyTorch's copy);
its kernels are what autograd computes; a pad of other dimensions is refused by name."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.workloads.test_torch_import_transformers import imported  # noqa: E402
from validation.calibrate.torch_ops import KernelState, op_kernel  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class SamePadded(nn.Module):
    """timm's Conv2dSame and MaxPool2dSame: pad right and bottom by one, then a stride-2 layer."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, stride=2), nn.Linear(4, 5)

    def forward(self, x):
        x = self.conv(F.pad(x, (0, 1, 0, 1)))
        x = F.max_pool2d(F.pad(x, (1, 1, 0, 1), value=-float("inf")), 3, stride=2)
        x = F.pad(x, (0, 0, 0, 0))   # nothing to pad: PyTorch still copies
        return self.fc(x.mean((2, 3)))


def test_same_padding_of_height_and_width_is_a_pad_spatial_copy():
    g = imported(SamePadded(), torch.randn(2, 3, 8, 8))
    pads = [op for op in g if op.kind == "pad_spatial"]
    assert [op.out.shape for op in pads] == [(2, 3, 9, 9), (2, 4, 5, 6), (2, 4, 2, 2)]
    assert [op.attrs["pad_before"] for op in pads] == [(0, 0), (0, 1), (0, 0)]
    assert pads[1].attrs["value"] == -float("inf") and pads[1].attrs["dims"] == (2, 3)
    assert all(op.bytes_read == op.in_specs[0].nbytes and op.bytes_written == op.out.nbytes
               for op in pads)


def test_a_row_before_the_tokens_pads_the_second_last_dimension():
    class ClassRow(nn.Module):
        def forward(self, x):
            return F.pad(x.view(2, 4, 6, 2), (0, 0, 1, 0, 0, 0)).flatten(1)
    g = from_torch(ClassRow(), torch.randn(2, 48))
    (pad,) = [op for op in g if op.kind == "pad_spatial"]
    assert pad.out.shape == (2, 4, 7, 2) and pad.attrs["pad_before"] == (1, 0)


@settings(max_examples=20, deadline=None)
@given(dims=st.sampled_from([(1, 2), (2, 3)]),
       before=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       after=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       value=st.sampled_from([0.0, -1.5, -float("inf")]))
def test_the_pad_kernels_are_autograds(dims, before, after, value):
    from workloads.builder import GraphBuilder
    b = GraphBuilder("pad", input_shape=(3, 4, 5), batch=2)
    shape = [2, 3, 4, 5]
    shape[dims[0]] += before[0] + after[0]
    shape[dims[1]] += before[1] + after[1]
    x = b.linear(b.input(), 5, name="in")   # so that the pad's input needs a gradient
    y = b.op("pad_spatial", [x], tuple(shape), name="pad", pad=after,
             pad_before=before, dims=dims, value=value)
    b.linear(b.flatten(y), 3)
    train = lower_training(b.build())
    state = KernelState(graph=train)
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    pads = [0, 0] * (3 - dims[1])
    pads += [before[1], after[1], before[0], after[0]]
    ref = F.pad(x, pads, value=value)
    assert torch.equal(op_kernel(train.op("pad"), state)(x), ref)
    dy = torch.randn_like(ref)
    (dx,) = torch.autograd.grad(ref, (x,), dy)
    assert torch.equal(op_kernel(train.op("pad.grad"), state)(dy), dx)


def test_a_pad_of_other_dimensions_is_refused_naming_them():
    class Deep(nn.Module):
        def forward(self, x):
            return F.pad(x, (1, 1, 1, 1, 1, 1)).flatten(1)
    with pytest.raises(WorkloadError, match=r"pads dimensions \[1, 2, 3\]"):
        from_torch(Deep(), torch.randn(2, 3, 4, 4))


def test_timms_coat_imports_with_pytorchs_flops():
    """CoaT pads a row before its tokens and stacks its stages' class tokens."""
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops("timm", "coat_tiny")


class BorderPadded(nn.Module):
    """Reflected and replicated borders (CycleGAN's ResNet blocks, HiFi-GAN, timm's BlurPool):
    F.pad in those modes, of H and W or of a sequence's length, and their nn modules."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 5)
        self.reflect, self.replicate = nn.ReflectionPad2d((1, 2, 0, 1)), nn.ReplicationPad1d(2)

    def forward(self, x):
        x = self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        x = F.pad(self.reflect(x), (2, 0, 1, 1), mode="replicate")
        return self.fc(self.replicate(x.flatten(2)).mean(2))


def test_reflected_and_replicated_borders_are_pad_spatial_copies():
    g = imported(BorderPadded(), torch.randn(2, 3, 8, 8))
    pads = [op for op in g if op.kind == "pad_spatial"]
    assert [op.attrs["mode"] for op in pads] == ["reflect", "reflect", "replicate", "replicate"]
    assert [op.out.shape for op in pads] == [(2, 3, 10, 10), (2, 4, 9, 11), (2, 4, 11, 13),
                                             (2, 4, 147)]
    assert all(op.bytes_read == op.in_specs[0].nbytes and op.bytes_written == op.out.nbytes
               and op.flops == 0 for op in pads)


@settings(max_examples=20, deadline=None)
@given(mode=st.sampled_from(["reflect", "replicate"]),
       before=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       after=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_the_border_pad_kernels_are_autograds(mode, before, after):
    """Forward and gradient (each border value's copies summed back into it) equal PyTorch's."""
    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return F.pad(self.conv(x), (before[1], after[1], before[0], after[0]), mode=mode)
    train = lower_training(from_torch(Padded(), torch.randn(2, 3, 4, 5)))
    (pad,) = [op for op in train if op.kind == "pad_spatial"]
    state = KernelState(graph=train)
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    ref = F.pad(x, (before[1], after[1], before[0], after[0]), mode=mode)
    assert torch.equal(op_kernel(pad, state)(x), ref)
    dy = torch.randn_like(ref)
    (dx,) = torch.autograd.grad(ref, (x,), dy)
    assert torch.equal(op_kernel(train.op(f"{pad.name}.grad"), state)(dy), dx)


def test_a_circular_pad_is_refused_naming_its_mode():
    class Circular(nn.Module):
        def forward(self, x):
            return F.pad(x, (1, 1, 1, 1), mode="circular").flatten(1)
    with pytest.raises(WorkloadError, match=r"pads in mode 'circular'"):
        from_torch(Circular(), torch.randn(2, 3, 4, 4))


class FramePadded(nn.Module):
    """EnCodec's padding: amounts computed from the length and held in a one-value buffer."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv1d(3, 4, 4, stride=2), nn.Linear(4, 5)
        self.register_buffer("padding_total", torch.tensor(2, dtype=torch.int64),
                             persistent=False)

    def forward(self, x):
        extra = (-x.shape[-1]) % 4
        x = F.pad(x, (self.padding_total, extra), mode="reflect")
        return self.fc(self.conv(x).mean(2))


def test_pad_amounts_computed_in_the_forward_are_their_values():
    model = FramePadded()
    g = from_torch(model, torch.randn(2, 3, 10))
    (pad,) = [op for op in g if op.kind == "pad_spatial"]
    assert pad.out.shape == (2, 3, 14) and pad.attrs["mode"] == "reflect"
    assert (pad.attrs["pad_before"], pad.attrs["pad"]) == ((0, 2), (0, 2))
    train = lower_training(g)
    assert sum(op.params for op in train.phase("update")) == \
        sum(p.numel() for p in model.parameters())
