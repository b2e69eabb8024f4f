"""Learned tables a sequence model reads: token embeddings (a gather of rows by id, whose
weight gradient is a scatter-add), position embeddings added to a sequence, and the class token
put before one (ViT)."""
from __future__ import annotations

from . import backward_rules
from ._registry import OpKind, per_input_element, register
from ._torch import F, aten, torch


def _table(op):
    return [(op.attrs["num_embeddings"], op.attrs["embedding_dim"])]


def _embedding_kernel(op, state):
    """F.embedding (a gather), and autograd's embedding_dense_backward: a zeroed table with
    dy's rows added at their ids."""
    owner, rows = op.forward or op.name, op.attrs["num_embeddings"]
    if op.kind == "embedding":
        weight, = state.params_of(op)
        return lambda ids: F.embedding(ids, weight)

    def embedding_grad(dy, ids):
        grad = aten.embedding_dense_backward(dy, ids, rows, -1, False)
        state.grads[owner] = [grad]
        return grad
    return embedding_grad


def _position_rows(op, table):
    """The rows added: S of the table (S the sequence length) from row first_row (default 0;
    1 after a class token's row: ViT-MAE's pos[:, 1:]), or row 0 for every position (a
    constant type id, as BERT's token types when every token is type 0)."""
    if op.attrs.get("constant_row"):
        return table[0]
    first = int(op.attrs.get("first_row", 0))
    return table[first:first + op.in_specs[0].shape[-2]]


def _position_bytes_read(op) -> int:
    """x and the rows added, once (they broadcast over the batch)."""
    rows = 1 if op.attrs.get("constant_row") else op.in_specs[0].shape[-2]
    width = int(op.attrs.get("param_dtype_bytes", op.out.dtype_bytes))
    return op.in_specs[0].nbytes + rows * op.out.shape[-1] * width


def _position_kernel(op, state):
    """x + the table's rows (broadcast over the batch); the gradient sums dy over the batch
    (and over the positions for a constant row) into a zeroed table, as autograd does."""
    owner = op.forward or op.name
    table, = state.params_of(op)
    if op.kind == "position_embedding":
        return lambda x: x + _position_rows(op, table)

    def position_embedding_grad(dy):
        grad = torch.zeros_like(table)
        reduce = tuple(range(dy.dim() - (1 if op.attrs.get("constant_row") else 2)))
        _position_rows(op, grad).add_(dy.sum(reduce))
        state.grads[owner] = [grad]
        return grad
    return position_embedding_grad


def _position_module(op, m, i):
    return lambda ins: ins[0] + _position_rows(op, m._p(i, 0))


def _tokens_before(tokens, x):
    """torch.cat of the tokens, each expanded over the batch, and x along the sequence."""
    return torch.cat([t.reshape(1, 1, -1).expand(x.shape[0], -1, -1) for t in tokens] + [x], 1)


def _class_token_kernel(op, state):
    """The tokens put before the sequence; each token's gradient is dy at its position summed
    over the batch."""
    owner = op.forward or op.name
    tokens = state.params_of(op)
    if op.kind == "class_token":
        return lambda x: _tokens_before(tokens, x)

    def class_token_grad(dy):
        grads = [dy[:, i].sum(0) for i in range(len(tokens))]
        state.grads[owner] = grads
        return torch.cat(grads)
    return class_token_grad


def _class_token_module(op, m, i):
    count = int(op.attrs.get("tokens", 1))
    return lambda ins: _tokens_before([m._p(i, j) for j in range(count)], ins[0])


def _queries_kernel(op, state):
    """The table repeated over the batch; its gradient, dy summed over the batch (autograd's
    RepeatBackward)."""
    owner = op.forward or op.name
    table, = state.params_of(op)
    if op.kind == "learned_queries":
        n = op.out.shape[0]
        return lambda: table.unsqueeze(0).repeat(n, *(1 for _ in table.shape))

    def learned_queries_grad(dy):
        grad = dy.sum(0)
        state.grads[owner] = [grad]
        return grad
    return learned_queries_grad


def _queries_module(op, m, i):
    n = op.out.shape[0]
    return lambda ins: m._p(i, 0).unsqueeze(0).repeat(n, *(1 for _ in op.out.shape[1:]))


register(
    OpKind("learned_queries", "data_movement", flops=lambda op: 0.0,
           bytes_read=lambda op: op.param_bytes,
           backward=backward_rules.parameter_gradient,
           param_shapes=lambda op: [tuple(op.out.shape[1:])], param_tensors=lambda op: 1,
           torch_kernel=_queries_kernel, torch_module=_queries_module,
           doc="a learned (Q, D) table repeated over the batch: (N, Q, D), reading no input "
               "(DETR's object queries)"),
    OpKind("learned_queries_grad", "data_movement", "backward", flops=per_input_element(1.0),
           carries_params=True, torch_kernel=_queries_kernel,
           doc="dy summed over the batch into the table"),
    OpKind("embedding", "data_movement", saves=("in",),
           # the ids and the rows gathered (not the whole table)
           bytes_read=lambda op: op.in_specs[0].nbytes + op.out.nbytes,
           backward=backward_rules.parameter_gradient, param_shapes=_table,
           torch_kernel=_embedding_kernel,
           torch_module=lambda op, m, i: lambda ins: F.embedding(ins[0], m._p(i, 0)),
           doc="rows of a (num_embeddings, embedding_dim) table by integer id"),
    OpKind("embedding_grad", "data_movement", "backward", flops=per_input_element(1.0),
           carries_params=True, torch_kernel=_embedding_kernel,
           doc="the table's gradient, a scatter-add of dy by id; the ids get none"),
    OpKind("position_embedding", "elementwise", flops=lambda op: float(op.out.numel),
           bytes_read=_position_bytes_read,
           backward=backward_rules.route_and_parameter_gradient,
           param_shapes=lambda op: [(op.attrs["num_embeddings"], op.out.shape[-1])],
           param_tensors=lambda op: 1, torch_kernel=_position_kernel,
           torch_module=_position_module,
           doc="x (N, S, D) plus rows of a learned (num_embeddings, D) table"),
    OpKind("position_embedding_grad", "elementwise", "backward", flops=per_input_element(1.0),
           carries_params=True, torch_kernel=_position_kernel,
           doc="dy summed over the batch into the table"),
    OpKind("class_token", "data_movement",
           bytes_read=lambda op: op.in_specs[0].nbytes + op.param_bytes,
           backward=backward_rules.route_and_parameter_gradient,
           param_shapes=lambda op: [(op.out.shape[-1],)] * int(op.attrs.get("tokens", 1)),
           param_tensors=lambda op: int(op.attrs.get("tokens", 1)),
           torch_kernel=_class_token_kernel, torch_module=_class_token_module,
           doc="learned tokens put before the sequence: (N, S, D) to (N, S + T, D) (attrs: "
               "tokens T, default 1: ViT's class token; 2: DeiT's class and distillation "
               "tokens)"),
    # dy at each token's position summed over the batch
    OpKind("class_token_grad", "data_movement", "backward",
           flops=lambda op: float(op.in_specs[0].numel // op.in_specs[0].shape[1]
                                  * int(op.attrs.get("tokens", 1))),
           carries_params=True, torch_kernel=_class_token_kernel,
           doc="dy at each token's position summed over the batch"),
)
