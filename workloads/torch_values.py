"""Values of torch_import's lowering that are not builder tensors: a view pending a pattern, a
constant (a size, a count)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Pending:
    """A view that only has a meaning as part of a pattern (a shuffle, a strided subsample,
    heads expanded before a reshape repeats them)."""
    # "shuffle_split" | "shuffle_transposed" | "subsample" | "expanded" | "expanded_seq" |
    # "cell" | "positions" (a max's, min's, top-k's or sort's indices: no op reads them) |
    # "complex" (view_as_complex of (..., D, 2) parts)
    kind: str
    source: str                 # the builder tensor it views
    groups: int = 1             # channel groups; the repeats of an expand
    stride: tuple[int, int] = (1, 1)
    offset: tuple[int, int] = (0, 0)   # a cell: the pixel of each 2x2 cell, (row, column)


@dataclass(frozen=True)
class _Const:
    """The value of a node that computes a size or another constant, not a tensor."""
    value: object


@dataclass(frozen=True)
class _Param:
    """A parameter or buffer the forward reads directly (an fx get_attr node)."""
    target: str
    shape: tuple[int, ...]
    is_parameter: bool


@dataclass(frozen=True)
class _Stacked:
    """Tensors of one shape stacked along a new first dimension, before the batch: only their
    mean over it (CrossViT's mean of its branches' logits) is lowered."""
    tensors: tuple[str, ...]
