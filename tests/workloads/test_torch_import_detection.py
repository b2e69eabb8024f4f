"""from_torch on torchvision's detectors (workloads/torch_detection.py): a single-stage
detector (RetinaNet, FCOS, SSDlite) imports as its dense part, the images resized and
padded as its transform does, the backbone and the head at every anchor, with PyTorch's FLOPs
for that part and all of the model's parameters, and trains every head output; a two-stage
one (Faster R-CNN) is refused with one error naming its data-dependent steps."""
import pytest

torch = pytest.importorskip("torch")

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops, models  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.torch_detection import detector_dense_part  # noqa: E402
from workloads.training import lower_training  # noqa: E402


@pytest.fixture(scope="module")
def detection():
    tvm = models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    return tvm.detection


SINGLE_STAGE = {   # builder: its options, the input's size, the resized size, the padded one
    "retinanet_resnet50_fpn": (dict(min_size=96, max_size=128), (80, 120), (85, 128),
                               (96, 128)),
    "fcos_resnet50_fpn": (dict(min_size=64, max_size=100), (64, 64), (64, 64), (64, 64)),
    "ssdlite320_mobilenet_v3_large": ({}, (100, 150), (320, 320), (320, 320)),
}


@pytest.mark.parametrize("builder", sorted(SINGLE_STAGE))
def test_a_single_stage_detector_imports_as_its_dense_part(detection, builder):
    options, size, resized, padded = SINGLE_STAGE[builder]
    torch.manual_seed(0)
    model = getattr(detection, builder)(weights=None, weights_backbone=None, num_classes=4,
                                        **options).eval()
    x = torch.randn(2, 3, *size)
    g = from_torch(model, x)
    dense = detector_dense_part(torch, model, (x,), "detector")
    assert matmul_flops(g) == pytest.approx(torch_flops(dense, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert "box decoding, NMS and anchor matching are not costed" in g.meta["cost_model"]
    first = g.topo()[1]   # after the input: the transform's resize where it resizes
    assert (first.kind, first.out.shape[2:]) == ("upsample", resized) if resized != size \
        else first.kind == "conv2d"
    padding = [op.out.shape[2:] for op in g if op.kind == "pad_spatial"]
    assert padding == ([] if padded == resized else [padded])
    assert any(op.name.startswith("head.") for op in g)
    train = lower_training(g)
    assert len([op for op in train if op.kind == "softmax_xent"]) >= 2
    assert sum(op.params for op in train.phase("update")) == g.params()


def test_a_two_stage_detector_is_refused_naming_its_data_dependent_steps(detection):
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None,
                                                             weights_backbone=None,
                                                             num_classes=4).eval()
    with pytest.raises(WorkloadError) as err:
        from_torch(model, torch.randn(1, 3, 64, 64))
    message = str(err.value)
    assert message.startswith("FasterRCNN is a two-stage detector")
    assert "torchvision.ops.nms" in message and "MultiScaleRoIAlign" in message


def test_a_detector_takes_one_batch_of_images(detection):
    model = detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None,
                                             num_classes=4, min_size=64, max_size=64).eval()
    with pytest.raises(WorkloadError, match=r"RetinaNet: a detector takes one \(N, C, H, W\) "
                                            r"batch of images; got shapes \[\(2, 3, 64\)\]"):
        from_torch(model, torch.randn(2, 3, 64))


class _L2Norm(torch.nn.Module):
    """SSD's L2Norm: each pixel's channels scaled to unit length, then by a learned scale."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.scale = torch.nn.Parameter(torch.full((channels,), 20.0))

    def forward(self, x):
        y = torch.nn.functional.normalize(self.conv(x), dim=1)
        return self.scale.view(1, -1, 1, 1) * y


def test_an_l2_norm_over_the_channels_is_the_norm_of_the_channels_moved_last():
    from tests.workloads.test_torch_import_user_models import imported
    g = imported(_L2Norm(), torch.randn(2, 3, 8, 8))
    (norm,) = [op for op in g if op.kind == "l2_normalize"]
    assert norm.in_specs[0].shape == (2, 8, 8, 8) and norm.out.shape == (2, 8, 8, 8)
    assert [op.kind for op in g].count("permute") == 2
