"""`layerwise-mp`: conventional layer-wise model parallelism for inference (DeCNN's baseline).

Every conv and fully connected layer of the (original) network is split across the devices by
output channels (features); the next layer needs all of its input, so the split output is
all-gathered after every layer (channel-wise ops, batch norm, ReLU, pooling and the residual
add, run on the split data before the gather). The last layer's output is gathered on device
0. Each device holds 1/N of every layer's weights but the full activations that it gathers.
`in_flight` (default 1: the conventional scheme, one sample at a time) lets several samples
overlap as in `decnn`, for a like-for-like comparison.
"""
from __future__ import annotations

from . import Option, register
from ._channel_split import INFERENCE_OPTIONS
from ._channel_split_tasks import SplitInferencePolicy


@register
class LayerwiseMP(SplitInferencePolicy):
    mode = "layerwise"

    def __init__(self) -> None:
        options = dict(INFERENCE_OPTIONS)
        options["in_flight"] = Option(1, "samples in flight at once (1: the conventional "
                                         "scheme)", int, lambda v: v >= 1, "an integer >= 1")
        super().__init__(name="layerwise-mp",
                         description="Layer-wise model parallelism: every layer split by "
                                     "output channels, all-gather after each (inference).",
                         options=options, inference_only=True)
