"""A layer over a tensor the forward computes from constants (XCiT's and EdgeNeXt's Fourier
positional encoding, a grid of sines and cosines put through a 1x1 convolution): a
constant_tensor op the convolution reads, its weight gradient alone; computed once and
repeated over the batch (XCiT's), a repeat_batch copy whose gradient sums over the batch.
Each imports with PyTorch's FLOPs and the module's parameters, replays and trains."""
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.workloads.test_torch_import_user_kinds import _kernel  # noqa: E402
from tests.workloads.test_torch_import_user_models import imported  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class FourierPosition(nn.Module):
    """timm's PositionalEncodingFourier: a (rows, H, W, hidden) grid of sines and cosines of
    the positions, projected by a 1x1 convolution; rows 1 (XCiT's, repeated over the batch
    after) or the batch (EdgeNeXt's, made from a zero mask of (N, H, W))."""

    def __init__(self, hidden=8, dim=16):
        super().__init__()
        self.hidden = hidden
        self.token_projection = nn.Conv2d(2 * hidden, dim, 1)

    def forward(self, rows: int, h: int, w: int):
        on = dict(dtype=torch.float32, device=self.token_projection.weight.device)
        y = torch.arange(1, h + 1, **on).view(1, h, 1, 1).repeat(rows, 1, w, 1)
        x = torch.arange(1, w + 1, **on).view(1, 1, w, 1).repeat(rows, h, 1, 1)
        freq = 10000 ** (torch.arange(self.hidden, **on) / self.hidden)
        grid = torch.cat(((y / freq).sin(), (x / freq).cos()), dim=3).permute(0, 3, 1, 2)
        return self.token_projection(grid)


class PositionedTokens(nn.Module):
    """Patch tokens (N, H*W, dim) plus the encoding: `per_sample` made for each sample
    (EdgeNeXt), else made once and repeated over the batch (XCiT)."""

    def __init__(self, per_sample: bool, dim=16):
        super().__init__()
        self.per_sample = per_sample
        self.patch, self.pos = nn.Conv2d(3, dim, 4, 4), FourierPosition(dim=dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        tokens = self.patch(x)
        n, c, h, w = tokens.shape
        pos = self.pos(n if self.per_sample else 1, h, w)
        if not self.per_sample:
            pos = pos.repeat(n, 1, 1, 1)
        mixed = (tokens + pos).flatten(2).transpose(1, 2)
        return self.head(mixed.mean(1))


@pytest.mark.parametrize("per_sample", [True, False], ids=["per-sample", "repeated"])
def test_a_convolution_of_constants_imports_with_its_weight_gradient_alone(per_sample):
    torch.manual_seed(0)
    g = imported(PositionedTokens(per_sample), torch.randn(2, 3, 16, 16))
    (constant,) = [op for op in g if op.kind == "constant_tensor"]
    assert constant.inputs == () and constant.out.shape == (2 if per_sample else 1, 16, 4, 4)
    assert math.prod(constant.out.shape) * 4 == constant.bytes_written
    (projection,) = [op for op in g if op.inputs == (constant.name,)]
    assert projection.kind == "conv2d"
    trained = lower_training(g)
    grads = [op.kind for op in trained.phase("backward") if op.forward == projection.name]
    assert grads == ["conv2d_grad_weight"]
    repeats = [op for op in trained if op.kind.startswith("repeat_batch")]
    assert [op.kind for op in repeats] == ([] if per_sample else
                                           ["repeat_batch", "repeat_batch_grad"])


def test_the_repeat_kernels_are_autograds():
    repeat, _ = _kernel("repeat_batch", [(1, 3, 2)], (4, 3, 2))
    grad, _ = _kernel("repeat_batch_grad", [(4, 3, 2)], (1, 3, 2))
    x = torch.randn(1, 3, 2, requires_grad=True)
    x.repeat(4, 1, 1).backward(dy := torch.randn(4, 3, 2))
    assert torch.equal(repeat(x.detach()), x.detach().repeat(4, 1, 1))
    assert torch.allclose(grad(dy), x.grad)
