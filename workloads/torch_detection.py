"""torchvision's detection models in from_torch: what of them an op graph of fixed shapes
holds, and a clear refusal of the rest.

A single-stage detector (RetinaNet, FCOS, SSD, SSDlite) is costed as its dense part: the resize its
transform does to the batch (bilinear, to its min_size / max_size; 128x128 images become
800x800), the zero padding to a multiple of size_divisible, the backbone with its feature
pyramid, and the head's class logits and box regression at every anchor of every level,
whose number is fixed by the input size. Not costed: the per-channel normalisation of the
images (two elementwise passes over the input), and what depends on the values: decoding
boxes and keeping them by score (non-maximum suppression) after the head, at inference, and
matching anchors to the targets for the loss, in training. A two-stage detector (Faster,
Mask, Keypoint R-CNN) samples its regions of interest from the proposals the NMS keeps, so
which and how many run through its box (and mask) head depends on the values: it is
refused, naming those steps.
torch is imported only when from_torch runs.
"""
from __future__ import annotations

from typing import Any

from .graph import WorkloadError

_TORCHVISION_DETECTION = "torchvision.models.detection."
DENSE_PART = ("costed as its dense part: the transform's resize and padding, the backbone "
              "and the head at every anchor; the input's normalisation, box decoding, NMS and "
              "anchor matching are not costed")


def detector_dense_part(torch, module, examples, name: str):
    """A module computing `module`'s dense part where it is a torchvision single-stage
    detector, None where it is no torchvision detector; raises WorkloadError for a
    two-stage one, or for an example that is not one batch of images."""
    cls = type(module)
    if not cls.__module__.startswith(_TORCHVISION_DETECTION):
        return None
    if hasattr(module, "rpn") or hasattr(module, "roi_heads"):
        raise WorkloadError(
            f"{name} is a two-stage detector: its region proposal network keeps proposals "
            "by score (torchvision.ops.nms, data-dependent) and its RoI heads run on regions "
            "sampled from them (MultiScaleRoIAlign), so what its box and mask heads compute "
            "depends on the values, which an op graph of fixed shapes cannot hold. Import its "
            "dense part instead: from_torch of a module running model.backbone on the images "
            "(and model.rpn.head on the pyramid's levels, a list)")
    if not all(hasattr(module, part) for part in ("transform", "backbone", "head")):
        return None
    if len(examples) != 1 or examples[0].dim() != 4:
        raise WorkloadError(f"{name}: a detector takes one (N, C, H, W) batch of images; got "
                            f"shapes {[tuple(x.shape) for x in examples]}")
    x = examples[0]
    with torch.no_grad():
        images, _ = module.transform(list(x.unbind(0)))
    resized = tuple(int(d) for d in images.image_sizes[0])
    padded = tuple(int(d) for d in images.tensors.shape[-2:])
    size = tuple(int(d) for d in x.shape[-2:])
    dense = _dense_detector(torch.nn.Module, torch.nn.functional)
    return dense(module, size, resized, padded)


def _dense_detector(module_class: Any, F: Any) -> Any:
    """The class of a detector's dense part (torch's Module class and functions given: torch
    is imported only when from_torch runs)."""
    class DenseDetector(module_class):
        """The transform's resize and padding, the backbone and the head of a detector; its
        submodules keep the detector's names (backbone.*, head.*)."""

        def __init__(self, detector, size, resized, padded) -> None:
            super().__init__()
            self.backbone, self.head = detector.backbone, detector.head
            self.size, self.resized, self.padded = size, resized, padded

        def forward(self, x):
            if self.resized != self.size:
                x = F.interpolate(x, size=self.resized, mode="bilinear", align_corners=False)
            if self.padded != self.resized:
                x = F.pad(x, (0, self.padded[1] - self.resized[1],
                              0, self.padded[0] - self.resized[0]))
            features = self.backbone(x)
            levels = list(features.values()) if isinstance(features, dict) else [features]
            return self.head(levels)
    return DenseDetector
