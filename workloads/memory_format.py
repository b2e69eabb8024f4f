"""Memory format: the order in which a 4-D activation's elements lie in memory.

    nchw   batch, channels, rows, columns: PyTorch's default (torch.contiguous_format), and
           the only layout of Torch7's cudnn.torch
    nhwc   channels innermost: PyTorch's torch.channels_last (model.to(memory_format=
           torch.channels_last) and the input likewise), TensorFlow's default data_format

The format does not change an op's shapes, FLOPs or bytes; it changes which kernels a library
can run on them, which is a device model's business (hwmodels/gpu_layout.py). It is stamped on
every op (`op.attrs["memory_format"]`) and recorded in `graph.meta["memory_format"]`, as the
precision is; an op without the stamp is in the default, nchw.
"""
from __future__ import annotations

import dataclasses

from .errors import did_you_mean
from .graph import Op, OpGraph, WorkloadError

MEMORY_FORMATS = ("nchw", "nhwc")
DEFAULT_MEMORY_FORMAT = "nchw"


def check_memory_format(memory_format: object) -> str:
    if not isinstance(memory_format, str) or memory_format not in MEMORY_FORMATS:
        raise WorkloadError(f"unknown memory format {memory_format!r}"
                            f"{did_you_mean(memory_format, MEMORY_FORMATS)}; known: "
                            f"{', '.join(MEMORY_FORMATS)}")
    return memory_format


def memory_format_of(op: Op) -> str:
    return str(op.attrs.get("memory_format", DEFAULT_MEMORY_FORMAT))


def graph_memory_format(graph: OpGraph) -> str:
    return str(graph.meta.get("memory_format", DEFAULT_MEMORY_FORMAT))


def with_memory_format(graph: OpGraph, memory_format: str) -> OpGraph:
    """The same network with its activations in `memory_format`, every op stamped. A graph
    already in that format is returned as it is (the caller's graph is never changed)."""
    check_memory_format(memory_format)
    if all(memory_format_of(op) == memory_format for op in graph) \
            and graph_memory_format(graph) == memory_format:
        return graph

    def stamp(op: Op) -> Op:
        return dataclasses.replace(op, attrs={**op.attrs, "memory_format": memory_format})

    out = graph.copy(graph.name, stamp)
    out.meta["memory_format"] = memory_format
    return out
