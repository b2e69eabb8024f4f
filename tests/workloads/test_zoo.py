"""The zoo: parameter counts and multiply-adds pinned to the published/torchvision figures."""
import pytest

from workloads import zoo
from workloads.graph import ShapeError, WorkloadError
from workloads.training import lower_training

# Parameters: torchvision's models for the ImageNet nets (its weights' "num_params"; ResNet-200
# is its ResNet(Bottleneck, [3, 24, 36, 3]), fb.resnet.torch's "64.7M"; Inception-v3 without
# its auxiliary classifier, 27,161,264 with it); He et al. (2016) for the CIFAR ResNets with
# option-A shortcuts (ResNet-56: 0.85M); LeNet-5 as LeCun et al. (1998); OverFeat fast as
# Sermanet et al. (2014) Table 1 ("145 million").
PARAMS = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "alexnet_cifar": 2_472_266,
    "overfeat_fast": 145_920_872,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "vgg16_cifar": 14_728_266,
    "googlenet": 6_624_904,
    "inception_v3": 23_834_568,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet50_v1": 25_557_032,
    "resnet101": 44_549_160,
    "resnet101_v1": 44_549_160,
    "resnet152": 60_192_808,
    "resnet152_v1": 60_192_808,
    "resnet200": 64_673_832,
    "fixup_resnet50": 25_557_032 - 53_120,   # ResNet-50 less its 53 batch norms
    "cifar_resnet20": 269_722,
    "cifar_resnet56": 853_018,
    "cifar_resnet110": 1_727_962,
}
# Multiply-adds per sample (convs and linears), as torchvision / fvcore count them; OverFeat's
# summed by hand from the layers of Sermanet et al. (2014) Table 1.
MACS = {
    "resnet50": 4_089_184_256,
    "resnet50_v1": 3_857_973_248,
    "resnet18": 1_814_073_344,
    "vgg16": 15_470_264_320,
    "alexnet": 714_188_480,
    "overfeat_fast": 2_801_403_904,
    "cifar_resnet56": 125_485_696,
}
# torchvision's published multiply-adds (its weights' "_ops", in G, three decimals)
TORCHVISION_GMACS = {
    "googlenet": 1.498, "inception_v3": 5.713, "vgg11": 7.609, "vgg11_bn": 7.609,
    "vgg19": 19.632, "vgg19_bn": 19.632, "resnet34": 3.664, "resnet101": 7.801,
    "resnet152": 11.514,
}
# He et al. (2016) Table 1: FLOPs (multiply-adds) of the v1 ImageNet ResNets, in G
HE_2016_GMACS = {"resnet50_v1": 3.8, "resnet101_v1": 7.6, "resnet152_v1": 11.3}


@pytest.mark.parametrize("name,params", sorted(PARAMS.items()))
def test_parameter_counts(name, params):
    assert zoo.get(name).params() == params


@pytest.mark.parametrize("name,macs", sorted(MACS.items()))
def test_multiply_adds_per_sample(name, macs):
    g = zoo.get(name, batch=2)
    assert g.macs() / g.batch == macs


@pytest.mark.parametrize("name,gmacs", sorted(TORCHVISION_GMACS.items()))
def test_multiply_adds_are_torchvisions(name, gmacs):
    assert round(zoo.get(name).macs() / 1e9, 3) == gmacs


@pytest.mark.parametrize("name,gmacs", sorted(HE_2016_GMACS.items()))
def test_v1_resnets_do_the_multiply_adds_of_he_et_al(name, gmacs):
    assert zoo.get(name).macs() / 1e9 == pytest.approx(gmacs, rel=0.02)   # 2 digits given


def test_resnet50_v1_5_does_6_percent_more_than_v1():
    v15, v1 = zoo.get("resnet50"), zoo.get("resnet50_v1")
    assert v15.macs() == pytest.approx(4.09e9, rel=2e-3)
    assert v1.macs() == pytest.approx(3.86e9, rel=2e-3)
    assert v15.macs() / v1.macs() == pytest.approx(1.06, abs=0.005)
    # the first 1x1 conv of each downsampling block (in channels, planes, input side) runs on
    # the input's pixels in v1.5 and on the output's, a quarter as many, in v1
    first_1x1 = [(256, 128, 56), (512, 256, 28), (1024, 512, 14)]
    assert v15.macs() - v1.macs() == sum(cin * p * (s * s - (s // 2) ** 2)
                                         for cin, p, s in first_1x1)
    assert v15.op("layer2.0.conv1").attrs["stride"] == (1, 1)
    assert v1.op("layer2.0.conv1").attrs["stride"] == (2, 2)
    assert v1.op("layer2.0.conv2").attrs["stride"] == (1, 1)


def test_names_and_info():
    names = zoo.names()
    for required in ["lenet5", "alexnet", "alexnet_cifar", "overfeat_fast", "vgg11", "vgg16",
                     "vgg19", "vgg16_cifar", "googlenet", "inception_v3", "resnet18",
                     "resnet34", "resnet50", "resnet50_v1", "resnet101", "resnet152",
                     "resnet200", "fixup_resnet50", "cifar_resnet20", "cifar_resnet56",
                     "cifar_resnet110", "cifar_resnet224", "cifar_resnet362"]:
        assert required in names
        assert zoo.info(required).description
    assert zoo.info("lenet5").input_shape == (1, 28, 28)
    assert zoo.info("resnet50").input_shape == (3, 224, 224)
    assert zoo.info("inception_v3").input_shape == (3, 299, 299)
    assert zoo.info("overfeat_fast").input_shape == (3, 231, 231)
    assert zoo.info("cifar_resnet1202").input_shape == (3, 32, 32)
    assert "One weird trick" in zoo.info("alexnet").description


def test_a_resnet_name_means_one_network():
    # an ImageNet depth is ImageNet; the CIFAR net of that depth is cifar_resnet<N>
    assert zoo.info("resnet200").input_shape == (3, 224, 224)
    assert zoo.get("resnet200").params() == PARAMS["resnet200"]
    cifar200 = zoo.get("cifar_resnet200")
    assert cifar200.meta["input_shape"] == (3, 32, 32) and len(cifar200.layers()) == 200
    assert zoo.info("cifar_resnet50").input_shape == (3, 32, 32)
    # any other depth 6k+2 is only a CIFAR ResNet, under either name
    for depth in (20, 56, 1202):
        plain, cifar = zoo.info(f"resnet{depth}"), zoo.info(f"cifar_resnet{depth}")
        assert plain == cifar and plain.name == f"cifar_resnet{depth}"
    assert zoo.get("resnet56").params() == zoo.get("cifar_resnet56").params()
    assert zoo.get("resnet56").meta["network"] == "resnet56"   # as asked for
    assert "resnet56" not in zoo.names()   # listed once, as cifar_resnet56
    assert zoo.known("resnet56") and zoo.known("cifar_resnet200") and zoo.known("vgg19")
    assert not any(zoo.known(n) for n in ("resnet57", "cifar_resnet2", "small_vgg", "resnet"))


def test_googlenet_pools_round_up_and_the_papers_variant():
    g = zoo.get("googlenet")
    sides = [g.op(f"maxpool{i}").out.shape[2] for i in (1, 2, 3, 4)]
    assert sides == [56, 28, 14, 7]
    assert g.op("maxpool1").attrs["ceil_mode"] is True
    # the paper's: biases instead of batch norms (one parameter per channel fewer), and a 5x5
    # conv where torchvision has a 3x3 in the third branch
    from workloads.zoo.googlenet import STAGES
    convs = [op for op in g if op.kind == "conv2d"]
    no_bn = zoo.get("googlenet", batchnorm=False)
    assert no_bn.params() == g.params() - sum(op.attrs["out_channels"] for op in convs)
    paper = zoo.get("googlenet", batchnorm=False, branch3_kernel=5)
    assert paper.params() - no_bn.params() == sum(
        c[3] * c[4] * (25 - 9) for _, c in STAGES if not isinstance(c, int))
    assert paper.op("inception3a.branch3.1.conv").attrs["kernel"] == (5, 5)
    assert paper.params() == 6_998_552


def test_inception_v3_factors_its_convs():
    g = zoo.get("inception_v3")
    assert g.op("Mixed_6b.branch7x7_2.conv").attrs["kernel"] == (1, 7)
    assert g.op("Mixed_6b.branch7x7_3.conv").attrs["kernel"] == (7, 1)
    assert g.op("Mixed_7b.concat3").out.shape == (1, 2048, 8, 8)
    assert g.op("Mixed_6e.concat").out.shape == (1, 768, 17, 17)


@pytest.mark.parametrize("call,match", [
    (lambda: zoo.get("resnet57"), "6k\\+2"),
    (lambda: zoo.get("cifar_resnet57"), "6k\\+2"),
    (lambda: zoo.get("cifar_resnet", depth=21), "6k\\+2"),
    (lambda: zoo.get("googlenet", branch3_kernel=7), "branch3_kernel"),
    (lambda: zoo.get("resnet200", depth=20), "unknown option"),
    (lambda: zoo.get("nonexistent"), "unknown network.*resnet50"),
    (lambda: zoo.get("cifar_resnet20", batch=0), "batch"),
    (lambda: zoo.get("cifar_resnet20", colour="blue"), "unknown option"),
    (lambda: zoo.get("cifar_resnet56", depth=20), "unknown option"),
    (lambda: zoo.get("cifar_resnet20", shortcut="C"), "shortcut"),
    (lambda: zoo.get("lenet5", num_classes=0), "num_classes"),
    (lambda: zoo.get("lenet5", width=-1), "width"),
])
def test_bad_requests_are_workload_errors(call, match):
    with pytest.raises(WorkloadError, match=match):
        call()


def test_input_too_small_is_a_shape_error():
    with pytest.raises(ShapeError, match="does not fit"):
        zoo.get("alexnet", input_size=8)


@pytest.mark.parametrize("name", zoo.names())
def test_every_network_lowers_for_training(name):
    g = zoo.get(name, batch=2)
    # forward graphs end at the logits (SqueezeNet's: a pooled 1x1 conv, flattened)
    assert g.topo()[-1].kind in ("linear", "flatten")
    train = lower_training(g)
    train.validate()
    assert train.flops(["backward"]) > train.flops(["forward"])
    assert {op.forward for op in train.phase("update")} == {op.name for op in g if op.params}
