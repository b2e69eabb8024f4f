"""The zoo's CNNs of torchvision (ResNeXt, Wide ResNet, SqueezeNet, DenseNet, MobileNetV2/V3,
EfficientNet, ShuffleNet V2, ConvNeXt), Swin, ViT-L/16 and Inception-v4: parameters and
multiply-adds pinned to the published tables, and the graph equal op for op, names included,
to torchvision's own model imported through torch.fx (Inception-v4: timm's; skipped where
torch, torchvision or timm is not installed)."""
import pytest

from workloads import zoo
from workloads.graph import WorkloadError

# (parameters, G multiply-adds per image at the network's resolution) as torchvision's weights
# tables publish them (num_params, _ops "GFLOPS", given to 2 or 3 decimals); Inception-v4,
# ResNeXt-101 32x4d and SE-ResNeXt: the parameters of timm's models (inception_v4,
# resnext101_32x4d, seresnext50_32x4d, seresnext101_32x4d), their ops checked against timm's
# below; ViTs: their multiply-adds outside the attention, which the tables include, are not
# the tables' figure, and their FLOPs are checked against torchvision's below
PUBLISHED = {
    "resnext50_32x4d": (25_028_904, 4.23), "resnext101_32x8d": (88_791_336, 16.41),
    "resnext101_32x4d": (44_177_704, None),   # timm's resnext101_32x4d
    "se_resnext50_32x4d": (27_559_896, None), "se_resnext101_32x4d": (48_955_416, None),
    "wide_resnet50_2": (68_883_240, 11.4), "wide_resnet101_2": (126_886_696, 22.75),
    "squeezenet1_1": (1_235_496, 0.35),
    "densenet121": (7_978_856, 2.83), "densenet161": (28_681_000, 7.73),
    "densenet169": (14_149_480, 3.36), "densenet201": (20_013_928, 4.29),
    "mobilenet_v2": (3_504_872, 0.301), "mobilenet_v3_large": (5_483_032, 0.217),
    "mobilenet_v3_small": (2_542_856, 0.06),
    "efficientnet_b0": (5_288_548, 0.386), "efficientnet_b1": (7_794_184, 0.687),
    "efficientnet_b2": (9_109_994, 1.088), "efficientnet_b3": (12_233_232, 1.827),
    "efficientnet_b4": (19_341_616, 4.394), "efficientnet_b5": (30_389_784, 10.266),
    "efficientnet_b6": (43_040_704, 19.068), "efficientnet_b7": (66_347_960, 37.746),
    "efficientnet_v2_s": (21_458_488, 8.37), "efficientnet_v2_m": (54_139_356, 24.58),
    "efficientnet_v2_l": (118_515_272, 56.08),
    "shufflenet_v2_x0_5": (1_366_792, 0.04), "shufflenet_v2_x1_0": (2_278_604, 0.14),
    "shufflenet_v2_x1_5": (3_503_624, 0.3), "shufflenet_v2_x2_0": (7_393_996, 0.58),
    "convnext_tiny": (28_589_128, 4.456), "convnext_small": (50_223_688, 8.684),
    "convnext_base": (88_591_464, 15.355), "convnext_large": (197_767_336, 34.361),
    "swin_t": (28_288_354, 4.49), "swin_s": (49_606_258, 8.74), "swin_b": (87_768_224, 15.43),
    "vit_l_16": (304_326_632, None), "vit_b_32": (88_224_232, None),
    "vit_l_32": (306_535_400, None), "vit_h_14": (632_045_800, None),
    "inception_v4": (42_679_816, None),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_and_multiply_adds_are_the_published_figures(name):
    params, gmacs = PUBLISHED[name]
    g = zoo.get(name)
    assert g.params() == params
    if gmacs is not None:   # the table's last digit is rounded: half a unit of it, or 1%
        digits = len(str(gmacs).split(".")[1])
        assert abs(g.macs() / 1e9 - gmacs) <= max(0.5 * 10 ** -digits, 0.01 * gmacs)


def test_the_blocks_have_their_papers_shapes():
    assert zoo.get("resnext50_32x4d").op("layer1.0.conv2").attrs["groups"] == 32
    assert zoo.get("wide_resnet50_2").op("layer1.0.conv2").out.shape[1] == 128
    v2 = zoo.get("mobilenet_v2", batch=2)
    assert v2.op("features.2.conv.1.0").attrs["groups"] == 96   # depthwise
    assert sum(op.kind == "hardsigmoid" for op in zoo.get("mobilenet_v3_large")) == 8
    b0 = zoo.get("efficientnet_b0", batch=4)
    drops = [op for op in b0 if op.kind == "dropout_broadcast"]
    assert drops and all(op.attrs["mask_shape"] == (4, 1, 1, 1) for op in drops)
    assert max(op.attrs["p"] for op in drops) < 0.2   # rising from 0 towards 0.2
    assert zoo.get("shufflenet_v2_x1_0").op("stage2.0.channel_shuffle").attrs["groups"] == 2
    assert zoo.get("squeezenet1_1").topo()[-1].out.shape == (1, 1000)
    assert zoo.get("densenet121", width=0.5).params() < PUBLISHED["densenet121"][0]
    assert zoo.get("inception_v4").op("features.21.concat3").out.shape == (1, 1536, 8, 8)
    swin = zoo.get("swin_t", input_size=448)
    assert swin.op("features.1.1.attn.windows").out.shape == (1, 256, 49, 96)
    with pytest.raises(WorkloadError, match="input_size 256 does not cut into whole 7 x 7"):
        zoo.get("swin_t", input_size=256)


# one network of each family that torchvision builds; the others differ by sizes only
TORCHVISION = ["resnext50_32x4d", "wide_resnet50_2", "squeezenet1_1", "densenet121",
               "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0",
               "efficientnet_b4", "efficientnet_v2_s",
               "shufflenet_v2_x1_0", "convnext_tiny"]


@pytest.mark.parametrize("name", TORCHVISION)
def test_the_zoo_network_is_torchvisions(name):
    torch = pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import models
    tvm = models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    from tests.workloads.graph_compare import assert_same
    from workloads.torch_import import from_torch
    model = getattr(tvm, name)()
    imported = from_torch(model, torch.randn(1, *zoo.info(name).input_shape), name=name)
    assert_same(imported, zoo.get(name), names=True)
    assert imported.params() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["vit_l_16", "vit_b_32", "vit_l_32", "vit_h_14"])
def test_vits_have_torchvisions_parameters_and_flops(name):
    """torchvision's nn.MultiheadAttention copies its packed projections once more than the
    zoo's ViT writes them (a layout copy, no FLOPs): the parameters and FLOPs are equal."""
    torch = pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import models
    tvm = models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    from workloads.torch_import import from_torch
    with torch.device("meta"):
        model = getattr(tvm, name)()
    imported = from_torch(model, torch.randn(1, 3, 224, 224, device="meta"), name=name)
    built = zoo.get(name)
    assert imported.params() == built.params() == PUBLISHED[name][0]
    assert imported.flops() == built.flops()


def test_inception_v4_is_timms():
    """timm's inception_v4 (a port of TF-slim's): the same ops, shapes, parameters and FLOPs
    (timm's head dropout of p = 0 aside); timm names its ops otherwise (bn.batchnorm)."""
    torch = pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import models
    if models() is None:
        pytest.skip("torchvision is not installed")
    timm = pytest.importorskip("timm")
    from tests.workloads.graph_compare import costs
    from workloads.torch_import import from_torch
    model = timm.create_model("inception_v4", pretrained=False)
    imported = from_torch(model, torch.randn(1, 3, 299, 299), name="inception_v4")
    kept = [op for op in imported
            if not op.is_view and not (op.kind == "dropout" and op.attrs["p"] == 0)]
    built = zoo.get("inception_v4")
    assert [(op.kind, op.out.shape, op.params, op.flops) for op in kept] == costs(built)
    assert imported.flops() == built.flops()
    assert imported.params() == sum(p.numel() for p in model.parameters())


def test_swin_t_is_torchvisions():
    """Op for op as torch.fx imports torchvision's swin_t (window partition copies, relative
    position bias, shifted windows' roll and mask, patch merging, stochastic depth); its
    dropouts of p = 0, which PyTorch does not run, are views there and absent here."""
    torch = pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import models
    tvm = models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    from tests.workloads.graph_compare import assert_same
    from workloads.torch_import import from_torch
    model = tvm.swin_t()
    imported = from_torch(model, torch.randn(1, 3, 224, 224), name="swin_t")
    built = zoo.get("swin_t")
    assert_same(imported, built)
    assert [op.name for op in imported if not op.is_view] == \
        [op.name for op in built if not op.is_view]
    assert imported.params() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, timm_name", [("se_resnext50_32x4d", "seresnext50_32x4d"),
                                             ("resnext101_32x4d", "resnext101_32x4d")])
def test_the_timm_resnexts_are_timms(name, timm_name):
    """The same ops, shapes, parameters and FLOPs as timm's model (which names its ops
    otherwise: act1, se.gate)."""
    torch = pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import models
    if models() is None:
        pytest.skip("torchvision is not installed")
    timm = pytest.importorskip("timm")
    from tests.workloads.graph_compare import assert_same
    from workloads.torch_import import from_torch
    model = timm.create_model(timm_name, pretrained=False)
    imported = from_torch(model, torch.randn(1, 3, 224, 224), name=name)
    assert_same(imported, zoo.get(name))
    assert imported.params() == sum(p.numel() for p in model.parameters())
