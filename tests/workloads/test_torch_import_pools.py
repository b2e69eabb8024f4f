"""from_torch on pooling with ceil_mode, dilation, padding and count_include_pad, and adaptive
pools of any output size: PyTorch's shapes, and the graph replayed in PyTorch gives the
model's values."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from validation.calibrate.torch_exec import GraphModule  # noqa: E402
from validation.calibrate.torch_ops import op_callable  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402

POOLS = [
    nn.MaxPool2d(3, 2, ceil_mode=True),
    nn.MaxPool2d(3, 2, padding=1, dilation=2),
    nn.MaxPool2d(2, 3, padding=1, dilation=(1, 2), ceil_mode=True),
    nn.AvgPool2d(3, 2, ceil_mode=True),
    nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
    nn.AvgPool2d((2, 3), (1, 2), padding=(1, 1)),
    nn.AdaptiveAvgPool2d((7, 5)),      # larger than the input
    nn.AdaptiveAvgPool2d((3, None)),   # windows that overlap
]


@pytest.mark.parametrize("pool", POOLS, ids=repr)
def test_pools_have_pytorchs_shapes_and_values(pool):
    x = torch.randn(2, 3, 6, 5)
    g = from_torch(nn.Sequential(pool), x)
    assert g.topo()[-1].out.shape == tuple(pool(x).shape)
    assert torch.allclose(GraphModule(g)(x), pool(x), atol=1e-6)
    train = lower_training(from_torch(nn.Sequential(nn.Conv2d(3, 4, 1), pool, nn.Flatten()), x))
    (grad,) = [op for op in train if op.kind.endswith("pool_grad")]
    assert tuple(op_callable(grad, graph=train)().shape) == (2, 4, 6, 5)


def test_a_pool_on_an_input_smaller_than_its_kernel_in_ceil_mode():
    """GoogLeNet on a 16x16 input: a 3x3 stride-2 ceil-mode pool of a 2x2 map gives 1x1."""
    g = from_torch(nn.MaxPool2d(3, 2, ceil_mode=True), torch.randn(1, 4, 2, 2))
    assert g.topo()[-1].out.shape == (1, 4, 1, 1)


def test_an_adaptive_pool_counts_the_values_each_window_reads():
    # 1x1 to 7x7 (VGG on a 32x32 input): each of the 49 outputs reads the one value
    g = from_torch(nn.AdaptiveAvgPool2d(7), torch.randn(2, 512, 1, 1))
    assert g.topo()[-1].flops == 2 * 512 * 49
    # 5 rows to 3: windows [0, 2), [1, 4), [3, 5) read 2 + 3 + 2 rows
    g = from_torch(nn.AdaptiveAvgPool2d((3, 4)), torch.randn(1, 1, 5, 4))
    assert g.topo()[-1].flops == 7 * 4


@settings(max_examples=60, deadline=None)
@given(size=st.tuples(st.integers(1, 12), st.integers(1, 12)), kernel=st.integers(1, 4),
       stride=st.integers(1, 3), dilation=st.integers(1, 2), ceil_mode=st.booleans(),
       padding=st.integers(0, 2), average=st.booleans())
def test_pool_shapes_are_pytorchs_wherever_pytorch_accepts_the_pool(
        size, kernel, stride, dilation, ceil_mode, padding, average):
    if average:
        pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    else:
        pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    x = torch.randn(1, 2, *size, device="meta")
    try:
        expected = tuple(pool(x).shape)
    except RuntimeError:   # PyTorch refuses it: the importer must refuse it too
        with pytest.raises(WorkloadError):
            from_torch(nn.Sequential(pool), x)
        return
    assert from_torch(nn.Sequential(pool), x).topo()[-1].out.shape == expected


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 12), out=st.integers(1, 12))
def test_adaptive_windows_cover_the_input(size, out):
    """Every input row is read by some window and every window reads a row; they read each
    row once exactly where the output divides the input."""
    from workloads.kinds.pools import _window_sum
    total = _window_sum(size, out)
    assert total >= max(size, out) and (total == size) == (size % out == 0)


class Pools1d(nn.Module):
    """1-D pools of (N, C, L), as modules (NextViT's AvgPool1d over tokens) and functions."""

    def forward(self, x):
        x = nn.AvgPool1d(2)(x) + F.avg_pool1d(x, 3, 2, 1, count_include_pad=False)
        return F.max_pool1d(nn.MaxPool1d(3, 1, padding=1, dilation=1)(x), 2, ceil_mode=True)


def test_1d_pools_are_2d_pools_over_a_one_pixel_height_with_pytorchs_values():
    x, pools1d = torch.randn(2, 4, 8), Pools1d()
    g = from_torch(pools1d, x)
    pools = [op for op in g if op.kind in ("avgpool", "maxpool")]
    assert [op.kind for op in pools] == ["avgpool", "avgpool", "maxpool", "maxpool"]
    assert all(op.out.shape[2] == 1 for op in pools)   # (N, C, 1, L')
    assert g.topo()[-1].out.shape == tuple(pools1d(x).shape) == (2, 4, 2)
    assert torch.allclose(GraphModule(g)(x), pools1d(x), atol=1e-6)
    train = lower_training(from_torch(nn.Sequential(nn.Conv1d(4, 4, 1), pools1d), x))
    assert sum(op.kind.endswith("pool_grad") for op in train) == 4


def test_a_1d_pool_of_another_rank_is_refused():
    with pytest.raises(WorkloadError, match=r"pools a tensor of shape \(2, 9\) in 1-D"):
        from_torch(nn.Sequential(nn.Linear(9, 9), nn.AvgPool1d(2)), torch.randn(2, 9))


@pytest.mark.parametrize("library, name", [("timm", "nextvit_small")])
def test_the_libraries_models_import_with_pytorchs_flops(library, name):
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops(library, name)
