"""`torch7`: plain training (the plan of `sequential`) under Torch7 nn's memory (fb.resnet.torch,
cnn-benchmarks): every module's output and gradInput for the whole step
(simulator/framework_memory.py). The same as `--policy sequential --framework-memory torch7`
(`torch7:share-grad-input` with `share_grad_input`); other policies run under Torch7's memory
with that setting."""
from __future__ import annotations

from ..framework_memory import FrameworkMemory
from ..tasks import TaskGraph
from . import Option, Policy, parse_bool, register
from ._one_device import framework_step


@register
class Torch7(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="torch7", training_only=True, any_framework_memory=True,
            description="Plain training under Torch7 nn's memory (= sequential with "
                        "framework_memory torch7): every module's output and gradInput for "
                        "the whole step, in-place ReLU and residual sums.",
            options={"share_grad_input": Option(
                False, "share one gradInput storage per module type (fb.resnet.torch's "
                       "-shareGradInput; framework_memory torch7:share-grad-input)",
                parse_bool, expect="true or false")})

    def plan(self, graph, cluster, training: bool, *, share_grad_input: bool,
             **opts) -> TaskGraph:
        framework = FrameworkMemory("torch7", share_grad_input)
        return framework_step(self.name, framework, graph, cluster, training)
