"""The zoo against torchvision's own models, imported through torch.fx: op by op, the same kinds,
shapes, parameters and FLOPs, and the same names (skipped where torchvision is not installed)."""
import pytest

from workloads import zoo

torch = pytest.importorskip("torch")

from tests.workloads.torchvision_zoo import models as _torchvision_models  # noqa: E402

models = _torchvision_models()
if models is None:
    pytest.skip("torchvision is not installed", allow_module_level=True)

from tests.workloads.graph_compare import assert_same  # noqa: E402
from workloads.torch_import import from_torch  # noqa: E402


def _resnet_v1(depth: int):
    """torchvision's ResNet with each downsampling stride moved from the 3x3 to the first 1x1."""
    model = getattr(models, f"resnet{depth}")()
    for layer in (model.layer2, model.layer3, model.layer4):
        layer[0].conv1.stride, layer[0].conv2.stride = (2, 2), (1, 1)
    return model


def _resnet200():
    from torchvision.models.resnet import Bottleneck, ResNet
    return ResNet(Bottleneck, [3, 24, 36, 3])


TORCHVISION = {
    "googlenet": lambda: models.googlenet(aux_logits=False, init_weights=False),
    "inception_v3": lambda: models.inception_v3(aux_logits=False, init_weights=False),
    "vgg11": models.vgg11, "vgg11_bn": models.vgg11_bn,
    "vgg19": models.vgg19, "vgg19_bn": models.vgg19_bn,
    "alexnet": models.alexnet,
    "resnet50_v1": lambda: _resnet_v1(50),
    "resnet200": _resnet200,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_the_zoo_network_is_torchvisions(name):
    model = TORCHVISION[name]()
    built = zoo.get(name)
    example = torch.randn(1, *zoo.info(name).input_shape)
    imported = from_torch(model, example, name=name)
    assert_same(imported, built, names=True)
    assert built.params() == sum(p.numel() for p in model.parameters())
