"""The decoupled ResNet-50 (DeCNN): structure, width rule, bad options, and from_torch."""
import math

import pytest

from workloads import zoo
from workloads.graph import WorkloadError


def test_groups_1_width_1_is_resnet50():
    d, r = zoo.get("decnn_resnet50", groups=1, width=1.0), zoo.get("resnet50")
    assert (d.params(), d.flops()) == (r.params(), r.flops())
    assert not [op for op in d if op.kind == "channel_shuffle"]


def test_grouped_convs_and_one_shuffle_per_block():
    g = zoo.get("decnn_resnet50", groups=4)
    shuffles = [op for op in g if op.kind == "channel_shuffle"]
    assert len(shuffles) == 16 and all(op.attrs["groups"] == 4 for op in shuffles)
    convs = [op for op in g if op.kind == "conv2d"]
    assert convs[0].name == "conv1" and convs[0].attrs["groups"] == 1   # dense stem
    assert all(op.attrs["groups"] == 4 for op in convs[1:])
    assert g.op("fc").attrs["in_features"] == 4096        # 2048 * sqrt(4)


def test_default_width_keeps_parameters_and_flops_close_to_resnet50():
    r = zoo.get("resnet50")
    for groups in (2, 4, 8):
        g = zoo.get("decnn_resnet50", groups=groups)
        assert g.meta["width"] == pytest.approx(math.sqrt(groups))
        # grouped layers keep the original's weights; the dense stem and fc grow with width
        assert 1.0 < g.params() / r.params() < 1.2
        assert 1.0 < g.flops() / r.flops() < 1.1
        assert all(op.attrs["out_channels"] % groups == 0 for op in g if op.kind == "conv2d")


def test_explicit_width_scales_grouped_layers():
    a = zoo.get("decnn_resnet50", groups=4, width=1.0)
    b = zoo.get("decnn_resnet50", groups=4, width=2.0)
    assert a.op("layer1.0.conv2").params * 4 == b.op("layer1.0.conv2").params


def test_groups_that_do_not_divide_the_channels():
    with pytest.raises(WorkloadError, match=r"groups=3 does not divide the 64 channels of "
                                            r"conv1"):
        zoo.get("decnn_resnet50", groups=3, width=1.0)
    with pytest.raises(WorkloadError, match="groups must be an integer >= 1"):
        zoo.get("decnn_resnet50", groups=0)


def _torch_decoupled(torch, groups: int, width: float):
    nn = torch.nn

    def ch(c):
        return int(round(c * width))

    class Shuffle(nn.Module):
        def forward(self, x):
            n, c, h, w = x.size()
            x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
            return x.view(n, c, h, w)

    class Block(nn.Module):
        def __init__(self, cin, planes, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, groups=groups, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.shuffle = Shuffle()
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=groups, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, cout, 1, groups=groups, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, groups=groups, bias=False),
                    nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.shuffle(self.relu(self.bn1(self.conv1(x))))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            short = x if self.downsample is None else self.downsample(x)
            return self.relu(out + short)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, ch(64), 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(ch(64))
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            layers, cin = [], ch(64)
            for stage, count in enumerate((3, 4, 6, 3)):
                blocks = []
                for i in range(count):
                    planes, cout = ch(64 * 2 ** stage), ch(256 * 2 ** stage)
                    blocks.append(Block(cin, planes, cout, 2 if stage and not i else 1))
                    cin = cout
                layers.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(cin, 1000)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def test_from_torch_agrees_with_the_zoo():
    torch = pytest.importorskip("torch")
    from workloads import from_torch
    module = _torch_decoupled(torch, groups=4, width=2.0)
    g = from_torch(module, torch.zeros(1, 3, 224, 224))
    z = zoo.get("decnn_resnet50", groups=4, width=2.0)
    assert g.params() == z.params() == sum(p.numel() for p in module.parameters())
    assert g.flops() == z.flops()
    assert sum(op.kind == "channel_shuffle" for op in g) == 16


def test_authors_build_shuffles_after_stages_1_to_3():
    """The authors' code: groups 4 in every block conv, width x1.5 (stage widths
    96/192/384/768), one channel shuffle after each of stages 1-3."""
    g = zoo.get("decnn_resnet50", groups=4, width=1.5, shuffles="stages")
    shuffles = [op.name for op in g.topo() if op.kind == "channel_shuffle"]
    assert shuffles == ["layer1.shuffle", "layer2.shuffle", "layer3.shuffle"]
    planes = [g.op(f"layer{s}.0.conv1").attrs["out_channels"] for s in (1, 2, 3, 4)]
    assert planes == [96, 192, 384, 768]
    block_convs = [op for op in g.topo() if op.kind == "conv2d" and op.name.startswith("layer")]
    assert all(op.attrs["groups"] == 4 for op in block_convs)
    assert len([op for op in zoo.get("decnn_resnet50", groups=4).topo()
                if op.kind == "channel_shuffle"]) == 16


def test_unknown_shuffle_placement_is_named():
    with pytest.raises(WorkloadError, match="shuffles must be one of block, stages"):
        zoo.get("decnn_resnet50", shuffles="layer")
