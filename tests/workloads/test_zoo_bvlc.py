"""Caffe's BVLC AlexNet and GoogLeNet v1 in the zoo: parameter counts pinned to the published
models, and each builder graph equal, op for op, to the same network written in PyTorch and
imported through torch.fx, with PyTorch's own FLOP count (convolutions and matrix products)
within 2%."""
import pytest

from workloads import zoo
from workloads.graph import ShapeError, WorkloadError

# Caffe's bvlc_alexnet: 60,965,224 parameters (conv1-5 2,334,080, fc6-8 58,631,144);
# bvlc_googlenet without its two auxiliary classifiers: 6,998,552 (about 7.0M; Szegedy et al.
# 2015 give the network's budget, not a count).
PARAMS = {"alexnet_bvlc": 60_965_224, "googlenet_v1": 6_998_552,
          "googlenet_v1_nolrn": 6_998_552}


@pytest.mark.parametrize("name,params", sorted(PARAMS.items()))
def test_parameter_counts(name, params):
    assert zoo.get(name).params() == params


def test_alexnet_bvlc_has_two_towers_and_lrn_before_its_pools():
    g = zoo.get("alexnet_bvlc")
    assert [g.op(f"conv{i}").attrs.get("groups", 1) for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [op.name for op in g if op.kind == "lrn"] == ["norm1", "norm2"]
    assert g.op("pool5").out.shape == (1, 256, 6, 6)
    # Caffe's 227x227 crop gives the same 6x6 maps after conv5 as the harnesses' 224
    assert zoo.get("alexnet_bvlc", input_size=227).op("pool5").out.shape == (1, 256, 6, 6)


def test_googlenet_v1_differs_from_its_nolrn_variant_by_the_two_norms():
    with_lrn, without = zoo.get("googlenet_v1"), zoo.get("googlenet_v1_nolrn")
    assert [op.name for op in with_lrn if op.kind == "lrn"] == ["norm1", "norm2"]
    assert not any(op.kind in ("lrn", "batchnorm") for op in without)
    assert len(with_lrn) == len(without) + 2
    assert with_lrn.macs() == without.macs()


def test_bad_options_are_named():
    with pytest.raises(ShapeError, match="11x11"):
        zoo.get("alexnet_bvlc", input_size=8)
    with pytest.raises(WorkloadError, match="lrn_after_stem"):   # the name fixes it
        zoo.get("googlenet_v1_nolrn", lrn_after_stem=True)
    with pytest.raises(WorkloadError, match="width"):
        zoo.get("alexnet_bvlc", width=0)


torch = pytest.importorskip("torch")
nn = torch.nn

from tests.workloads.graph_compare import assert_same  # noqa: E402
from tests.workloads.torchvision_zoo import FLOP_TOLERANCE, matmul_flops  # noqa: E402
from workloads.torch_import import from_torch  # noqa: E402


class BvlcAlexNet(nn.Module):
    """Caffe's bvlc_alexnet deploy network, layer for layer, under its layer names."""

    def __init__(self):
        super().__init__()
        lrn = (5, 1e-4, 0.75, 1.0)
        self.conv1, self.relu1 = nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True)
        self.norm1 = nn.LocalResponseNorm(*lrn)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.relu2, self.norm2 = nn.ReLU(inplace=True), nn.LocalResponseNorm(*lrn)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.relu3 = nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.relu4 = nn.ReLU(inplace=True)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.relu5 = nn.ReLU(inplace=True)
        self.pool5 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.flatten = nn.Flatten()
        self.fc6, self.relu6, self.drop6 = nn.Linear(9216, 4096), nn.ReLU(True), nn.Dropout()
        self.fc7, self.relu7, self.drop7 = nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout()
        self.fc8 = nn.Linear(4096, 1000)

    def forward(self, x):
        for layer in self.children():
            x = layer(x)
        return x


class Conv(nn.Module):
    """A conv with a bias and its ReLU (Caffe's convolution + relu layers)."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv(x))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pool_proj):
        super().__init__()
        self.branch1 = Conv(cin, c1, 1)
        self.branch2 = nn.Sequential(Conv(cin, c3r, 1), Conv(c3r, c3, 3, padding=1))
        self.branch3 = nn.Sequential(Conv(cin, c5r, 1), Conv(c5r, c5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     Conv(cin, pool_proj, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                          self.branch4(x)], 1)


class BvlcGoogLeNet(nn.Module):
    """Caffe's bvlc_googlenet without its auxiliary classifiers (Szegedy et al. 2015, Table 1:
    the channels of each inception module)."""

    def __init__(self, lrn=True):
        super().__init__()
        norm = (lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)) if lrn else nn.Identity
        self.conv1 = Conv(3, 64, 7, stride=2, padding=3)
        self.maxpool1, self.norm1 = nn.MaxPool2d(3, 2, ceil_mode=True), norm()
        self.conv2, self.conv3 = Conv(64, 64, 1), Conv(64, 192, 3, padding=1)
        self.norm2, self.maxpool2 = norm(), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool, self.flatten = nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()
        self.dropout, self.fc = nn.Dropout(0.4), nn.Linear(1024, 1000)

    def forward(self, x):
        for layer in self.children():
            x = layer(x)
        return x


def _flop_count(model, x) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name,model,names", [
    ("alexnet_bvlc", BvlcAlexNet, True),
    ("googlenet_v1", BvlcGoogLeNet, True),
    ("googlenet_v1_nolrn", lambda: BvlcGoogLeNet(lrn=False), True),
])
def test_the_builder_graph_is_the_network_written_in_pytorch(name, model, names):
    module = model().eval()
    x = torch.randn(2, *zoo.info(name).input_shape)
    imported = from_torch(module, x, name=name)
    built = zoo.get(name, batch=2)
    assert_same(imported, built, names=names)
    assert built.params() == sum(p.numel() for p in module.parameters())
    expected = _flop_count(module, x)
    assert abs(matmul_flops(built) - expected) <= FLOP_TOLERANCE * expected
