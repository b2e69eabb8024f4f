"""A published table's network label names one zoo network: by the harness that wrote it, by
its spelling with case and separators ignored (so a network added to the zoo is found without
an entry of its own), and for a ResNet without v1/v1.5 by the framework whose model it is."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from validation.calibrate import published_names as pn
from workloads import zoo


def network(label: str, family: str = "pytorch", framework: str = "") -> str | None:
    return pn.resolve_network(label, family, framework).network


@pytest.mark.parametrize("label, expected", [
    ("ResNet50", "resnet50"), ("resnet-50", "resnet50"), ("ResNet-50", "resnet50"),
    ("ResNet-50 v1.5", "resnet50"), ("resnet50_v1.5", "resnet50"), ("ResNet-50 V1", "resnet50_v1"),
    ("InceptionV3", "inception_v3"), ("Inception V3", "inception_v3"),
    ("inception3", "inception_v3"), ("Inception-v3 (ImageNet)", "inception_v3"),
    ("VGG-16", "vgg16"), ("vgg16", "vgg16"), ("VGG-19 BN", "vgg19_bn"),
    ("ViT-B/16", "vit_b_16"), ("GPT-2 Medium", "gpt2_medium"), ("BERT-base", "bert_base"),
    ("ResNet-18 v1", "resnet18"), ("ResNet-56", "resnet56"),
    ("ShuffleNet V2", "shufflenet_v2_x1_0"), ("ResNet-50 v1.5 (NHWC)", "resnet50"),
    ("ResNet-50 (synthetic data)", "resnet50"), ("inception4", "inception_v4"),
    ("Inception-v4", "inception_v4"), ("BERT-Large", "bert_large"),
    ("ResNeXt-50 32x4d", "resnext50_32x4d"), ("MobileNetV2", "mobilenet_v2"),
])
def test_spellings_of_one_network_resolve_to_it(label, expected):
    assert network(label) == expected


@pytest.mark.parametrize("label, family, framework, expected", [
    ("ResNet-50", "tensorflow", "TensorFlow 1.14", "resnet50_v1"),
    ("resnet152", "tensorflow", "TF 2.4", "resnet152_v1"),
    ("ResNet-50", "tensorflow-xla", "TensorFlow + XLA", "resnet50_v1"),
    ("ResNet-101", "pytorch", "Caffe", "resnet101_v1"),
    ("ResNet-50", "pytorch", "Caffe2", "resnet50"),
    ("ResNet-50", "pytorch", "PyTorch", "resnet50"),
    ("ResNet-50", "mxnet", "MXNet", "resnet50"),
    ("ResNet-50", "torch7", "Torch7", "resnet50"),
    ("ResNet-50 v1.5", "tensorflow", "TensorFlow", "resnet50"),
])
def test_a_resnet_without_v1_or_v1_5_is_its_frameworks_model(label, family, framework,
                                                              expected):
    resolved = pn.resolve_network(label, family, framework)
    assert resolved.network == expected
    if "v1" not in label:
        assert resolved.assumed.startswith("ResNet v1")


def test_a_v1_resnet_the_zoo_lacks_and_an_unknown_network_are_named():
    resolved = pn.resolve_network("ResNet-200", "tensorflow", "TensorFlow")
    assert resolved.network is None and "the zoo has no resnet200_v1" in resolved.reason
    for label in ("SSD300", "Mask R-CNN", "ResNet-51"):
        resolved = pn.resolve_network(label, "pytorch")
        assert resolved.network is None and resolved.reason.endswith("is not in the zoo")


def test_harness_labels_keep_their_models():
    assert network("AlexNet") == "alexnet_bvlc" and network("alexnet") == "alexnet"
    assert network("GoogLeNet v1") == "googlenet_v1_nolrn"
    assert network("AlexNet (One Weird Trick)") == "alexnet"


def test_a_qualifier_that_changes_the_network_is_not_dropped():
    assert network("ResNet-56 (CIFAR-10)") is None
    assert network("VGG-16 (ImageNet)") == "vgg16"


def test_no_two_zoo_names_normalise_alike():
    keys = [pn._key(name) for name in zoo.names()]
    assert len(keys) == len(set(keys))


@given(st.sampled_from(sorted(zoo.names())), st.sampled_from(["-", " ", "_", ""]),
       st.booleans())
def test_every_zoo_network_is_found_by_its_name_spelt_otherwise(name, separator, upper):
    """The rule that will find networks the zoo gains: any zoo name, with its underscores
    written as another separator and in another case, resolves to itself (ResNets to their
    v1.5 or the _v1 they name; harness labels aside)."""
    label = name.replace("_", separator)
    label = label.upper() if upper else label
    if label.lower() in pn.HARNESS_LABELS:
        return
    assert network(label) == name
