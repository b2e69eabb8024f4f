"""dnnsim: workloads.

The op-graph IR (`graph`), the builder, the training lowering, the network zoo and the PyTorch
importer. Importing this package never imports torch: `from_torch` loads it when called.
"""
from . import zoo
from .errors import DnnsimError
from .graph import OpGraph, ShapeError, WorkloadError


def from_torch(module, example_input, name=None, moe_routing: str = "expected") -> OpGraph:
    """Lower a `torch.nn.Module` to an OpGraph (see `workloads.torch_import`)."""
    from .torch_import import from_torch as _from_torch
    return _from_torch(module, example_input, name=name, moe_routing=moe_routing)


__all__ = ["zoo", "from_torch", "OpGraph", "ShapeError", "WorkloadError", "DnnsimError"]
