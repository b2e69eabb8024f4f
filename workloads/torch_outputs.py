"""The outputs of an imported model: which tensor the graph ends at (of a tuple or dict, the
one computed last), every tensor it returns (each takes a loss in training), and how its
logits are trained (every pixel's of a dense prediction, every position's of a sequence)."""
from __future__ import annotations

from .graph import OpGraph, WorkloadError
from .torch_state import LoweringState


def _dense_prediction(graph: OpGraph) -> bool:
    """An (N, C, H, W) map from an image, or an (N, C, L) one that a convolution makes (its
    channels first, not a linear layer's (N, L, classes)) from an (N, C, L) input."""
    out, rank = graph.topo()[-1], len(graph.input_op.out.shape)
    if rank != len(out.out.shape) or rank not in (3, 4):
        return False
    while rank == 3 and out.kind == "reshape":   # a Conv1d is a conv2d between views
        out = graph.op(out.inputs[0])
    return rank == 4 or out.kind in ("conv2d", "conv_transpose2d")


class OutputLowering(LoweringState):
    """The outputs of the fx graph, for the lowering (torch_import._Lowering)."""

    def _output_node(self, result):
        """The model's output; of a tuple or dict of tensors (Hugging Face's ModelOutput), the
        one computed last: the graph's ops are everything computed before it."""
        leaves: list = []
        self.torch.fx.node.map_arg(result, leaves.append)
        if not isinstance(result, self.torch.fx.Node) and leaves:
            order = {n: i for i, n in enumerate(self.gm.graph.nodes)}
            return max((n for n in leaves if isinstance(self.env.get(n), str)),
                       key=order.__getitem__, default=result)
        return result

    def _output_tensors(self, result) -> tuple[str, ...]:
        """Every tensor the model returns (of a tuple or dict, in the order returned; each
        once)."""
        leaves: list = []
        self.torch.fx.node.map_arg(result, leaves.append)
        return tuple(dict.fromkeys(self.env[n] for n in leaves
                                   if isinstance(self.env.get(n), str)))

    def with_outputs(self, graph: OpGraph, output: str, outputs: tuple[str, ...]) -> OpGraph:
        """`graph` with what training reads of its outputs in its meta: the loss's layout
        and every tensor returned; refused where the output is not the last op computed."""
        out_rank = len(graph.topo()[-1].out.shape)
        if not self.example_is_integer and _dense_prediction(graph):
            # an image in, an (N, C, H, W) map out (a U-Net), or a sequence in and a
            # convolution's (N, C, L) out (WaveNet): trained on every pixel's or position's
            # logits, as F.cross_entropy takes them
            graph.meta["pixel_logits"] = True
        elif out_rank == 3 and (self.example_is_integer or
                                len(graph.input_op.out.shape) == 3 or
                                any(op.kind == "recurrence" for op in graph)):
            # token ids (a language model) or (N, T, features) frames (a Conformer) in, or a
            # recurrent layer's steps (a CRNN's or a speech model's, whose CTC loss is costed
            # as the cross-entropy over the same logits, not its alignment), (N, T, classes)
            # logits out: trained on every position's
            graph.meta["token_logits"] = True
        if output != graph.topo()[-1].name:
            raise WorkloadError(f"{graph.name}: the output {output!r} must be the last op "
                                f"computed (ops after it would be counted)")
        if len(outputs) > 1:
            # every tensor returned takes a loss in training (workloads/training.py)
            graph.meta["outputs"] = outputs
        return graph
