"""How torch_import lowers rows of a parameter table read as data: position and token-type
tables as the reference implementations write them.

    x + self.wpe[:s]                          # the first s rows of a parameter (a view)
    x + self.pos_embed[:, 1:]                 # rows past a class token's (ViT-MAE)
    x + self.pos_embedding[:, :s]             # of a (1, P, D) table
    x + self.token_type.weight[0]             # one row, broadcast over every position
    x + self.position_embeddings(self.position_ids[:, :s])    # rows gathered by a buffer
    x + self.token_type_embeddings(self.token_type_ids[:, :s].expand(n, s))

Each becomes a `_ParamRows` value (no op: a view of the parameter, or a lookup whose ids are
constants) until it is added to a sequence (N, S, D), where it is one `position_embedding` op
holding the whole table, whose gradient goes into the rows read (as autograd's does for a
slice or a lookup). Rows gathered by a buffer are the table's first S rows, or row 0 at every
position when every id is 0 (BERT's token types); the ids are read off the traced run
(`dnnsim_ids` in the node's meta). On the meta device, where they are not known, a table at
least as long as the sequence is read as its first rows and a shorter one as row 0. Ids that
differ from row to row (T5's relative position buckets, or on the meta device ids of another
shape than (S,), (1, S) or (N, S)) make a gathered table (torch_transformer's `_Gathered`), a
bias of attention scores. Shapes of a `_ParamRows` may change (view, unsqueeze, ...) before
the sum. `ParamViewLowering` is a mixin
of `torch_import._Lowering`; torch is never imported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .torch_layers import _Param
from .torch_operands import _Gathered
from .torch_state import LoweringState

_SHAPE_ONLY = {"view", "reshape", "unsqueeze", "contiguous", "expand", "squeeze"}


@dataclass(frozen=True)
class _ParamRows:
    """Rows of a parameter table (P, D) or (1, P, D) read as data: the first `rows` rows, or
    row 0 at every position (constant_row), seen with `shape`."""
    param: _Param
    shape: tuple[int, ...]
    rows: int
    constant_row: bool
    first_row: int = 0   # rows from this one: ViT-MAE's pos[:, 1:] past the class token's


def index_pattern(t) -> str | None:
    """What the ids of an integer tensor are, for a lookup by a buffer: "zeros" (every id 0),
    "positions" (one id per position, the same in every row: position ids), "pairs" (ids
    that differ between rows: T5's relative position buckets, one per query and key), or
    None where the values are not known (the meta device) or it holds no ids."""
    if str(t.dtype) not in ("torch.int64", "torch.int32") or t.device.type == "meta" \
            or t.numel() == 0:
        return None
    if not bool(t.any()):
        return "zeros"
    rows = t.reshape(-1, t.shape[-1]) if t.dim() else t.reshape(1, 1)
    return "positions" if bool((rows == rows[:1]).all()) else "pairs"


def _new_axes_only(index) -> bool:
    """An index that only adds axes: t[None, None, :, :], t[:, None]."""
    return isinstance(index, tuple) and None in index and all(
        i is None or i == slice(None) or i is Ellipsis for i in index)


class ParamViewLowering(LoweringState):
    def param_rows_value(self, node):
        """A `_ParamRows` for a slice or a row of a parameter table, or a shape-only op of
        one; None otherwise (lookups by buffer ids: `looked_up_rows`)."""
        if node.op not in ("call_function", "call_method", "call_module") or not node.args:
            return None
        src = self.value(node.args[0])
        name = getattr(node.target, "__name__", node.target)
        if isinstance(src, _ParamRows) and (name in _SHAPE_ONLY or (
                name == "getitem" and _new_axes_only(self.resolve_index(node.args[1])))):
            return _ParamRows(src.param, self.known_shape(node), src.rows, src.constant_row,
                              src.first_row)
        if isinstance(src, _ParamRows) and name == "getitem":
            raise self.unsupported(f"indexes rows {src.shape} of parameter "
                                   f"{src.param.target!r} with "
                                   f"{self.resolve_index(node.args[1])!r}; only new axes "
                                   "([None, None]) of a table's rows are supported")
        if (name == "getitem" and isinstance(src, _Param) and src.is_parameter
                and not hasattr(self.value(node.args[1]), "shape")):
            index = self.resolve_index(node.args[1])
            if _new_axes_only(index):
                # new axes only (ConvNeXt's weight[:, None, None]): the parameter reshaped
                return _Param(src.target, self.known_shape(node), src.is_parameter)
            return self._sliced_rows(node, src, node.args[1])
        return None

    def _sliced_rows(self, node, table: _Param, index) -> _ParamRows:
        """table[:s], table[:, :s] (a (1, P, D) table) or table[0]."""
        resolved = self.resolve_index(index)
        index = resolved if isinstance(resolved, tuple) else (resolved,)
        shape = table.shape
        row_dim = len(shape) - 2
        whole = slice(None)
        if (row_dim not in (0, 1) or (row_dim == 1 and shape[0] != 1)
                or len(index) > len(shape) or any(i != whole for i in index[:row_dim])
                or any(i != whole for i in index[row_dim + 1:])):
            raise self.unsupported(f"indexes parameter {table.target!r} {shape} with "
                                   f"{index!r}; only a table's first rows (t[:s], t[:, :s] "
                                   "of a (1, P, D) table) and its row 0 (t[0]) are supported")
        rows = index[row_dim] if len(index) > row_dim else whole
        if rows == 0 and row_dim == 0:
            return _ParamRows(table, self.known_shape(node), 1, True)
        if isinstance(rows, slice) and rows.step in (None, 1):
            start, stop, _ = rows.indices(shape[row_dim])
            if stop > start:
                return _ParamRows(table, self.known_shape(node), stop - start, False, start)
        raise self.unsupported(f"reads rows {rows!r} of parameter {table.target!r}; only "
                               "consecutive rows (t[a:b]) and row 0 (t[0]) are supported")

    def looked_up_rows(self, table: _Param, ids_node):
        """An embedding table read by ids computed from buffers and constants: a `_ParamRows`
        for ids per position (HF's position_ids and token_type_ids), a `_Gathered` table for
        ids per pair of positions (a relative position bias), or None where the ids are the
        model's input (a token lookup, an op)."""
        ids = self.value(ids_node)
        if isinstance(ids, str) or not hasattr(ids, "shape") or isinstance(ids, _ParamRows):
            return None
        shape = tuple(ids.shape)
        seq, table_rows = (shape[-1] if shape else 1), table.shape[0]
        pattern = ids_node.meta.get("dnnsim_ids") if hasattr(ids_node, "meta") else None
        out = (*shape, table.shape[1])
        per_sample = len(shape) == 1 or len(shape) == 2 and shape[0] in (1, self.b.batch)
        if pattern is None:   # values unknown (the meta device): read by the sizes alone
            self.guessed.append(f"the rows of {table.target!r} read")
        if pattern == "pairs" or (pattern is None and not per_sample):
            return _Gathered(table, out)
        if pattern == "zeros" or (pattern is None and seq > table_rows):
            return _ParamRows(table, out, 1, True)
        if seq > table_rows:
            raise self.unsupported(f"looks up {seq} ids from buffers in a table of "
                                   f"{table_rows} rows; only the first rows (positions) or "
                                   "row 0 at every position (token types) are supported")
        return _ParamRows(table, out, seq, False)

    def _token_plus_rows(self, rows: _ParamRows, other) -> _Param | None:
        """A learned (1, T, D) token plus T rows of a position table that a position_embedding
        op already holds (ViT-MAE's cls_token + pos[:, :1], then expanded and put before the
        sequence): the token, which the class_token op holds. The sum of two (1, T, D)
        parameters (T x D additions, one tiny kernel each way) and the rows' share of the
        table's gradient are not costed; None where `other` is no such token."""
        if not (isinstance(other, _Param) and other.is_parameter and len(other.shape) == 3
                and other.shape[0] == 1 and tuple(rows.shape) == other.shape):
            return None
        if rows.param.target not in self.param_owner:
            raise self.unsupported(f"adds rows of parameter {rows.param.target!r} to the "
                                   f"token {other.target!r}; only rows of a table also added "
                                   "to the sequence are supported")
        return other

    def rows_operand(self, a):
        """x + rows of a table (a position or token-type table): the op, or None where
        neither operand is such rows."""
        vx, vy = (self.value(a[k]) for k in ("input", "other"))
        rows = vx if isinstance(vx, _ParamRows) else vy if isinstance(vy, _ParamRows) else None
        if rows is None:
            return None
        if (token := self._token_plus_rows(rows, vy if rows is vx else vx)) is not None:
            return token
        x = self.tensor(a["other"] if rows is vx else a["input"])
        shape, seen = self.b.spec(x).shape, rows.shape
        # the rows broadcast over the sequence: (S, D) or (1|N, S, D); one row: (D,) and any
        # shape that broadcasts over (N, S, D)
        fits = (len(shape) == 3 and 1 <= len(seen) <= 3 and seen[-1] == shape[-1]
                and all(e in (1, m) for e, m in zip(reversed(seen), reversed(shape),
                                                    strict=False))
                and (rows.constant_row or (rows.rows == shape[1] and len(seen) >= 2
                                           and seen[-2] == shape[1])))
        if not fits:
            raise self.unsupported(f"adds rows {seen} of parameter {rows.param.target!r} to "
                                   f"{shape}; only S rows, or one row, of a (P, D) table added "
                                   "to an (N, S, D) sequence are supported")
        out = self.b.position_embedding(x, rows.param.shape[-2], constant_row=rows.constant_row,
                                        name=self.name("position_embedding"),
                                        first_row=rows.first_row)
        if self.b.graph.op(out).params != math.prod(rows.param.shape):
            raise self.unsupported(f"adds rows of parameter {rows.param.target!r} "
                                   f"{rows.param.shape}, which is not a (P, D) table")
        self._claim([rows.param], out)
        return out
