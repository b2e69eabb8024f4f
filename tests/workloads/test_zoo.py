"""The zoo: parameter counts and multiply-adds pinned to the published/torchvision figures."""
import pytest

from workloads import zoo
from workloads.graph import ShapeError, WorkloadError
from workloads.training import lower_training

# Parameters: torchvision's models for the ImageNet nets; He et al. (2016) for the CIFAR
# ResNets with option-A shortcuts (ResNet-56: 0.85M); LeNet-5 as LeCun et al. (1998).
PARAMS = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "alexnet_cifar": 2_472_266,
    "vgg16": 138_357_544,
    "vgg16_cifar": 14_728_266,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "fixup_resnet50": 25_557_032 - 53_120,   # ResNet-50 less its 53 batch norms
    "resnet20": 269_722,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
}
# Multiply-adds per sample (convs and linears), as torchvision / fvcore count them.
MACS = {
    "resnet50": 4_089_184_256,
    "resnet18": 1_814_073_344,
    "vgg16": 15_470_264_320,
    "alexnet": 714_188_480,
    "resnet56": 125_485_696,
}


@pytest.mark.parametrize("name,params", sorted(PARAMS.items()))
def test_parameter_counts(name, params):
    assert zoo.get(name).params() == params


@pytest.mark.parametrize("name,macs", sorted(MACS.items()))
def test_multiply_adds_per_sample(name, macs):
    g = zoo.get(name, batch=2)
    assert g.macs() / g.batch == macs


def test_resnet50_is_about_4_1_giga_multiply_adds():
    g = zoo.get("resnet50", batch=4)
    assert g.macs() / 4 == pytest.approx(4.09e9, rel=2e-3)


def test_names_and_info():
    names = zoo.names()
    for required in ["lenet5", "alexnet", "alexnet_cifar", "vgg16", "vgg16_cifar", "resnet18",
                     "resnet34", "resnet50", "resnet101", "resnet152", "fixup_resnet50",
                     "resnet20", "resnet56", "resnet110", "resnet224", "resnet362"]:
        assert required in names
        assert zoo.info(required).description
    assert zoo.info("lenet5").input_shape == (1, 28, 28)
    assert zoo.info("resnet50").input_shape == (3, 224, 224)
    assert zoo.info("resnet1202").input_shape == (3, 32, 32)


def test_torchvision_module_paths():
    g = zoo.get("resnet50")
    for name in ["conv1", "bn1", "maxpool", "layer1.0.conv1", "layer1.0.downsample.0",
                 "layer1.0.downsample.1", "layer4.2.bn3", "layer1.0.relu3", "fc"]:
        assert name in g
    assert "features.0" in zoo.get("vgg16") and "classifier.6" in zoo.get("vgg16")
    assert "layer2.0.shortcut" in zoo.get("resnet20")


def test_any_cifar_depth_and_generic_entry():
    assert zoo.get("resnet32").params() == zoo.get("cifar_resnet", depth=32).params()
    assert len(zoo.get("cifar_resnet", depth=8).layers()) == 8
    # option B projects with 1x1 convs (+ batch norm): two shortcuts of 16->32 and 32->64
    b = zoo.get("resnet56", shortcut="B").params()
    assert b - PARAMS["resnet56"] == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_options():
    assert zoo.get("lenet5", num_classes=7).topo()[-1].out.shape == (1, 7)
    half = zoo.get("resnet20", width=0.5)
    assert half.op("conv1").out.shape[1] == 8
    assert zoo.get("resnet18", batch=3, input_size=64).input_op.out.shape == (3, 3, 64, 64)
    assert zoo.get("resnet18", dtype_bytes=2).input_op.out.dtype_bytes == 2


@pytest.mark.parametrize("call,match", [
    (lambda: zoo.get("resnet57"), "6k\\+2"),
    (lambda: zoo.get("cifar_resnet", depth=21), "6k\\+2"),
    (lambda: zoo.get("nonexistent"), "unknown network.*resnet50"),
    (lambda: zoo.get("resnet20", batch=0), "batch"),
    (lambda: zoo.get("resnet20", colour="blue"), "unknown option"),
    (lambda: zoo.get("resnet56", depth=20), "unknown option"),
    (lambda: zoo.get("resnet20", shortcut="C"), "shortcut"),
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
    assert g.topo()[-1].kind == "linear"      # forward graphs end at the logits
    train = lower_training(g)
    train.validate()
    assert train.flops(["backward"]) > train.flops(["forward"])
    assert {op.forward for op in train.phase("update")} == {op.name for op in g if op.params}
