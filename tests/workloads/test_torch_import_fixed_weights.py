"""from_torch on convolutions whose weight is not a trained parameter as it is: a fixed filter
held in a buffer (timm's BlurPool, in TResNet and anti-aliased ResNets): the convolution is
costed, but makes only its input's gradient and holds no parameter to update."""
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class Blurred(nn.Module):
    """A conv, then timm's BlurPool2d: a reflected pad and a depthwise stride-2 convolution by
    a fixed binomial filter held in a buffer."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, channels, 3, padding=1), nn.Linear(channels, 5)
        taps = torch.tensor([1.0, 2.0, 1.0])
        blur = (taps[:, None] * taps[None, :]) / 16
        self.register_buffer("filt", blur[None, None].repeat(channels, 1, 1, 1),
                             persistent=False)

    def forward(self, x):
        x = F.pad(self.conv(x), (1, 1, 1, 1), mode="reflect")
        x = F.conv2d(x, self.filt, stride=2, groups=x.shape[1])
        return self.fc(x.mean((2, 3)))


def test_a_buffer_filter_is_convolved_but_never_trained():
    torch.manual_seed(0)
    model, x = Blurred().eval(), torch.randn(2, 3, 8, 8)
    g = from_torch(model, x)
    assert matmul_flops(g) == torch_flops(model, x)
    assert g.params() == sum(p.numel() for p in model.parameters())   # the filter is none
    blur = g.op("conv2d")
    assert blur.params == 0 and blur.attrs["groups"] == 8 and blur.out.shape == (2, 8, 4, 4)
    # the filter is still read: 8 x 3 x 3 values beside the input
    assert blur.bytes_read == 4 * (2 * 8 * 10 * 10 + 8 * 9)
    train = lower_training(g)
    of_blur = [op.kind for op in train.phase("backward") if op.forward == "conv2d"]
    assert of_blur == ["conv2d_grad_input"]   # the trained conv below needs it
    updates = train.phase("update")
    assert sorted(op.forward for op in updates) == ["conv", "fc"]
    assert sum(op.params for op in updates) == g.params()
