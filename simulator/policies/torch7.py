"""`torch7`: plain training with Torch7's memory behaviour (fb.resnet.torch, cnn-benchmarks):
every nn module keeps its output and its gradInput for the whole step, in-place ReLUs and
residual sums share their input's storage, and each fork adds a ConcatTable gradInput
(simulator/policies/_framework_memory.py). `share_grad_input` is fb.resnet.torch's
-shareGradInput: one gradInput storage per module type. A zero-time set-up task allocates the
footprint before the first op, so the engine runs out of memory there when it does not fit;
ops then run one after another and allocate nothing of their own."""
from __future__ import annotations

from ..tasks import TaskGraph
from . import Option, Policy, parse_bool, register
from ._framework_memory import plan_static_footprint, torch7_training_bytes


@register
class Torch7(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="torch7", training_only=True,
            description="Plain training whose memory is Torch7 nn's: every module's output "
                        "and gradInput for the whole step, in-place ReLU and residual sums.",
            options={"share_grad_input": Option(
                False, "share one gradInput storage per module type (fb.resnet.torch's "
                       "-shareGradInput)", parse_bool, expect="true or false")})

    def plan(self, graph, cluster, training: bool, *, share_grad_input: bool,
             **opts) -> TaskGraph:
        footprint = torch7_training_bytes(graph, share_grad_input)
        return plan_static_footprint(self.name, graph, cluster, footprint)
