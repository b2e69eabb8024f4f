"""`decnn`: DeCNN's model-parallel inference of a decoupled CNN (Du et al., IEEE TPDS).

The network is a decoupled one (workload `decnn_resnet50`): group convs whose groups only mix at
channel shuffles. Device d holds channel group d (more groups than devices: a contiguous block
of groups each) and only that group's kernels:
- conv layers: each device runs its groups as a dense conv; no communication;
- channel shuffles: the one exchange, an all-to-all (each device sends 1/N of its block to
  every other device);
- the dense stem (3 input channels): split by output channel, the input image broadcast from
  device 0;
- the fully connected classifier: split by input (each device has its slice of the pooled
  features and the matching weight columns); the partial outputs are summed on device 0.
Several samples are in flight (`in_flight`), so a sample's exchange overlaps another's compute.
Results: `iteration_time_s` is the steady-state time per sample (batch) with `in_flight` in
flight; extras hold `latency_s` (one sample alone), `throughput_samples_per_s` and memory.
"""
from __future__ import annotations

from . import register
from ._channel_split import INFERENCE_OPTIONS
from ._channel_split_tasks import SplitInferencePolicy


@register
class DeCNN(SplitInferencePolicy):
    mode = "decnn"

    def __init__(self) -> None:
        super().__init__(name="decnn",
                         description="DeCNN: decoupled CNN split by channel group, all-to-all "
                                     "at channel shuffles, FC split by input, samples in "
                                     "flight (inference).",
                         options=dict(INFERENCE_OPTIONS), inference_only=True)
