"""How torch_import lowers a tensor made empty and filled by copies into slices of its last
dimension (Hugging Face's DeepSeek-V3 attention: `key = kv.new_empty(N, H, S, dn + dr)`,
`key[..., :dn].copy_(k_nope)`, `key[..., dn:].copy_(k_rot.expand(-1, H, -1, -1))`): what
the copies write is the concatenation of their sources along that dimension, so the tensor,
once an op reads it, is one `concat` op of them (its memory the buffer new_empty allocates,
its gradient a slice for each source). A source expanded over the heads (a view of stride 0
that copy_ broadcasts) is first the `repeat_heads` copy of it: one copy more than PyTorch's
two copy_ kernels make, whose traffic the graph counts on top. Copies that leave part of the
tensor unwritten, overlap or write another dimension are refused naming the op.

`FilledLowering` is a mixin of `torch_import._Lowering`. torch is never imported here.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from .torch_state import LoweringState


@dataclass(eq=False)
class _Filled:
    """A tensor made by new_empty, filled by copy_ into slices of its last dimension."""
    shape: tuple[int, ...]
    pieces: list = field(default_factory=list)     # (start, stop, source)
    tensor: str | None = None                      # the concat, once read


@dataclass(frozen=True)
class _FilledSlice:
    filled: _Filled
    start: int
    stop: int


@dataclass(frozen=True)
class _Broadcast:
    """A computed tensor expanded where it has 1 (stride 0), read only by copy_."""
    source: str
    shape: tuple[int, ...]


def _only_copied(node) -> bool:
    return bool(node.users) and all(u.op == "call_method" and u.target == "copy_" and
                                    len(u.args) > 1 and u.args[1] is node for u in node.users)


class FilledLowering(LoweringState):
    def filled_value(self, node):
        """The value of a node of the pattern, or None for any other node."""
        if node.op == "call_method" and node.target == "new_empty":
            shape = self.traced_shape(node)
            if shape and shape[0] == self.b.batch and len(shape) >= 2:
                return _Filled(tuple(shape))
            return None
        if node.op == "call_method" and node.target == "expand" and _only_copied(node) and \
                isinstance(self.value(node.args[0]), str):
            return _Broadcast(self.value(node.args[0]), tuple(self.known_shape(node)))
        src = self.value(node.args[0]) if node.args else None
        if node.op == "call_function" and node.target is operator.getitem and \
                isinstance(src, _Filled) and all(u.op == "call_method" and u.target == "copy_"
                                                 for u in node.users):
            return self._filled_slice(src, node.args[1])
        if node.op == "call_method" and node.target == "copy_" and \
                isinstance(src, _FilledSlice):
            return self._copied(src, self.value(node.args[1]))
        return None

    def _filled_slice(self, filled: _Filled, index) -> _FilledSlice:
        index = index if isinstance(index, tuple) else (index,)
        last = filled.shape[-1]
        if len(index) == 2 and index[0] is Ellipsis and isinstance(index[1], slice) and \
                index[1].step in (None, 1):
            start, stop, _ = index[1].indices(last)
            return _FilledSlice(filled, start, stop)
        raise self.unsupported(f"writes {index!r} of a tensor made by new_empty; only slices "
                               "of its last dimension (t[..., a:b].copy_(x)) are supported")

    def _copied(self, where: _FilledSlice, source) -> _FilledSlice:
        shape = (*where.filled.shape[:-1], where.stop - where.start)
        got = source.shape if isinstance(source, _Broadcast) else \
            self.b.spec(source).shape if isinstance(source, str) else None
        if where.filled.tensor is not None or got != shape:
            raise self.unsupported(f"copies {got} into {shape} of a tensor made by new_empty"
                                   + (" after it was read" if where.filled.tensor else "") +
                                   "; only a tensor of the slice's shape, or one expanded to "
                                   "it, copied before any op reads it is supported")
        where.filled.pieces.append((where.start, where.stop, source))
        return where

    def filled_tensor(self, filled: _Filled) -> str:
        """The concatenation of what the copies wrote (made once, at the first read)."""
        if filled.tensor is not None:
            return filled.tensor
        pieces, at, parts = sorted(filled.pieces, key=lambda p: p[0]), 0, []
        for start, stop, source in pieces:
            if start != at:
                break
            parts.append(self._materialised(source))
            at = stop
        if at != filled.shape[-1] or len(parts) != len(pieces) or not parts:
            raise self.unsupported(f"reads a tensor made by new_empty {filled.shape} whose "
                                   "copies do not write its last dimension exactly once")
        rank = len(filled.shape)
        filled.tensor = parts[0] if len(parts) == 1 else \
            self.b.concat(parts, dim=rank - 1, name=self.name("filled"))
        return filled.tensor

    def _materialised(self, source) -> str:
        if isinstance(source, str):
            return source
        have, want = self.b.spec(source.source).shape, source.shape
        if len(have) == 4 and have[1] == 1 and (have[0], *have[2:]) == (want[0], *want[2:]):
            return self.b.repeat_heads(source.source, want[1], name=self.name("repeat_heads"))
        raise self.unsupported(f"copies {have} expanded to {want}; only (N, 1, S, D) "
                               "expanded over the heads is supported")
