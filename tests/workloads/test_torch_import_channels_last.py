"""The importer records the memory format PyTorch runs each convolution in: channels-last
where the traced convolution's output is channels-last (ATen allocates it in the format it
ran in), so the CPU model costs oneDNN's channels-last kernels; NCHW (no stamp) otherwise.
The replay runs a channels-last convolution on channels-last tensors."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from hwmodels.families import point_shape  # noqa: E402
from validation.calibrate.torch_ops import op_callable  # noqa: E402
from workloads.torch_import import from_torch  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class LayerNorm2d(nn.LayerNorm):
    """torchvision's: permute to (N, H, W, C), normalise, permute back."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
                            self.bias, self.eps).permute(0, 3, 1, 2)


class ConvNeXtStyle(nn.Module):
    """torchvision's ConvNeXt order: stem, LayerNorm2d, a block (depthwise 7x7, permute,
    LayerNorm, MLP, permute back, residual), a downsampling LayerNorm2d and 2x2 conv."""

    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, stride=4)
        self.norm = LayerNorm2d(c)
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.ln = nn.LayerNorm(c)
        self.fc1, self.fc2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.down_norm = LayerNorm2d(c)
        self.down = nn.Conv2d(c, 2 * c, 2, stride=2)
        self.dw_weight = nn.Parameter(torch.randn(2 * c, 1, 3, 3))

    def forward(self, x):
        x = self.norm(self.stem(x))
        y = self.ln(self.dw(x).permute(0, 2, 3, 1))
        x = x + self.fc2(F.gelu(self.fc1(y))).permute(0, 3, 1, 2)
        x = self.down(self.down_norm(x))
        return F.conv2d(x, self.dw_weight, None, 1, 1, 1, x.shape[1])   # a functional conv


class BasicBlock(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(c), nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


def formats(graph):
    return {op.name: op.attrs.get("memory_format") for op in graph.topo()
            if op.kind == "conv2d"}


def test_convnext_style_convolutions_after_the_permuted_norm_are_channels_last():
    graph = from_torch(ConvNeXtStyle(), torch.randn(2, 3, 32, 32), "convnext_style")
    assert formats(graph) == {"stem": None, "dw": "nhwc", "down": "nhwc", "conv2d": "nhwc"}
    train = lower_training(graph)
    grads = [op for op in train.topo() if op.kind.startswith("conv2d_grad")
             and op.name.startswith(("dw", "down"))]
    assert len(grads) == 4 and all(op.attrs["memory_format"] == "nhwc" for op in grads)
    assert all(len(point_shape(op)) == 8 for op in grads)


def test_an_nchw_resnet_block_has_no_channels_last_convolution():
    graph = from_torch(BasicBlock(), torch.randn(2, 16, 8, 8), "basic_block")
    assert set(formats(graph).values()) == {None}


def test_a_model_and_input_converted_to_channels_last_run_channels_last():
    model = BasicBlock().to(memory_format=torch.channels_last)
    x = torch.randn(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    assert set(formats(from_torch(model, x, "cl_block")).values()) == {"nhwc"}


def test_the_replay_runs_a_channels_last_convolution_channels_last():
    """The forward and the input gradient come out channels-last, as ATen writes the output
    of a convolution it ran channels-last; the NCHW twin's come out NCHW."""
    for model, x, fmt in ((ConvNeXtStyle(), torch.randn(2, 3, 32, 32), "nhwc"),
                          (BasicBlock(), torch.randn(2, 16, 8, 8), None)):
        train = lower_training(from_torch(model, x, "m"))
        name = "dw" if fmt else "conv2"
        for kind in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight"):
            op = next(o for o in train.topo() if o.kind == kind
                      and (o.forward or o.name) == name)
            out = op_callable(op, graph=train)()
            if kind != "conv2d_grad_weight":
                channels_last = out.is_contiguous(memory_format=torch.channels_last) \
                    and not out.is_contiguous()
                assert channels_last == (fmt == "nhwc"), (kind, fmt)
