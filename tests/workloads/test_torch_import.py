"""from_torch: PyTorch modules written here lower to the same ops, op for op, as the zoo."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from workloads import from_torch, zoo  # noqa: E402
from workloads.builder import GraphBuilder  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402

from .graph_compare import assert_same  # noqa: E402


# -- networks written the usual PyTorch way ------------------------------------------------
class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class CifarBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10's BasicBlock with the option-A shortcut."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, blocks=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, layers = 16, []
        for planes, stride in [(16, 1), (32, 2), (64, 2)]:
            stage = []
            for i in range(blocks):
                stage.append(CifarBlock(cin, planes, stride if i == 0 else 1))
                cin = planes
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: stride on the 3x3 conv)."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, count) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
            blocks = []
            for j in range(count):
                blocks.append(Bottleneck(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def vgg16_cifar_features():
    layers, cin = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


class VGG16Cifar(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = vgg16_cifar_features()
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(512, 10)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


class ShuffleUnit(nn.Module):
    """A ShuffleNet-like unit: grouped 1x1, shuffle, depthwise 3x3, grouped 1x1, residual."""

    def __init__(self, channels=32, groups=4):
        super().__init__()
        self.groups = groups
        self.gconv1 = nn.Conv2d(channels, channels, 1, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.gconv2 = nn.Conv2d(channels, channels, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def shuffle(self, x):
        n, c, h, w = x.size()
        x = x.view(n, self.groups, c // self.groups, h, w)
        return x.transpose(1, 2).contiguous().view(n, c, h, w)

    def forward(self, x):
        out = F.relu(self.bn1(self.gconv1(x)))
        out = self.shuffle(out)
        out = self.bn2(self.dwconv(out))
        out = self.bn3(self.gconv2(out))
        return F.relu(torch.add(x, out))


class ShuffleNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self.unit = ShuffleUnit()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.unit(F.max_pool2d(self.stem(x), 3, 2, 1))
        x = torch.cat([x, F.relu(x)], dim=-3)
        return self.fc(self.drop(torch.flatten(self.pool(x), 1)))


def shufflenet_like_builder(batch):
    b = GraphBuilder("shuffle", (3, 32, 32), batch=batch)
    x = b.maxpool(b.conv2d(b.input(), 32, 3, stride=2, padding=1), 3, stride=2, padding=1)
    out = b.relu(b.batchnorm(b.conv2d(x, 32, 1, groups=4)))
    out = b.channel_shuffle(out, 4)
    out = b.batchnorm(b.conv2d(out, 32, 3, padding=1, groups=32))
    out = b.batchnorm(b.conv2d(out, 32, 1, groups=4))
    x = b.relu(b.add(x, out))
    x = b.concat([x, b.relu(x)])
    b.linear(b.dropout(b.flatten(b.adaptive_avgpool(x, 1)), 0.2), 10)
    return b.build()


# -- tests -------------------------------------------------------------------------------
def test_lenet5_matches_the_zoo():
    assert_same(from_torch(LeNet5(), torch.randn(2, 1, 28, 28)), zoo.get("lenet5", batch=2))


def test_cifar_resnet20_with_option_a_shortcuts_matches_the_zoo():
    g = from_torch(CifarResNet(3), torch.randn(2, 3, 32, 32))
    assert_same(g, zoo.get("resnet20", batch=2))
    assert g.params() == 269_722
    assert g.op("layer2.0.shortcut.pad_channels").attrs == {"pad": (8, 8), "stride": (2, 2)}


def test_resnet50_matches_the_zoo_names_included():
    model = ResNet50()
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    g = from_torch(model, torch.randn(1, 3, 64, 64), name="resnet50")
    assert_same(g, zoo.get("resnet50", input_size=64), names=True)


def test_vgg16_cifar_matches_the_zoo_names_included():
    g = from_torch(VGG16Cifar(), torch.randn(2, 3, 32, 32))
    assert_same(g, zoo.get("vgg16_cifar", batch=2), names=True)


def test_grouped_conv_and_channel_shuffle():
    g = from_torch(ShuffleNetLike(), torch.randn(2, 3, 32, 32))
    assert_same(g, shufflenet_like_builder(2))
    shuffle = [op for op in g if op.kind == "channel_shuffle"]
    assert len(shuffle) == 1 and shuffle[0].attrs["groups"] == 4
    assert shuffle[0].name == "unit.channel_shuffle"


def test_module_modes_are_kept():
    model = CifarResNet(1)
    model.train()
    from_torch(model, torch.randn(2, 3, 32, 32))
    assert model.training and model.layer1[0].bn1.training
    assert int(model.bn1.num_batches_tracked) == 0   # shapes were propagated in eval mode


class WithPixelShuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.PixelShuffle(2))

    def forward(self, x):
        return self.head(x)


class WithSoftsign(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Softsign())

    def forward(self, x):
        return self.head(x)


class WithLgamma(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(LambdaLayer(torch.lgamma))

    def forward(self, x):
        return self.block(x)


@pytest.mark.parametrize("model,op,path", [
    (WithPixelShuffle(), "torch.nn.PixelShuffle", "head.1"),
    (WithSoftsign(), "torch.nn.Softsign", "head.1"),
    (WithLgamma(), "lgamma", "block.0"),
])
def test_unsupported_ops_name_the_op_and_module(model, op, path):
    with pytest.raises(WorkloadError) as err:
        from_torch(model, torch.randn(1, 3, 8, 8))
    assert op in str(err.value) and repr(path) in str(err.value)


def test_bad_arguments():
    with pytest.raises(WorkloadError, match="nn.Module"):
        from_torch(lambda x: x, torch.randn(1, 3))
    with pytest.raises(WorkloadError, match="does not run"):
        from_torch(LeNet5(), torch.randn(1, 3, 28, 28))
