"""One tensor-parallel rank's share of a transformer's forward graph (Megatron-LM: Shoeybi et
al. 2019, section 3), for the `tensor-parallel` policy.

The zoo's transformers pair their split linear layers in graph.meta["tensor_parallel_pairs"]
(workloads/zoo/transformers.py): the column-parallel layers hold 1/tp of their output
features (the attention's heads, the MLP's hidden features), every op between them and the
row-parallel layer works on that share (the heads, reshaped, rotated, attended), and the
row-parallel layer reads 1/tp of its input features, making a partial sum of its whole output
that an all-reduce completes. Every other op (embeddings, norms, residual adds, dropout on the
residual stream, the output layer and the loss) is replicated whole on every rank.

The share is made by shrinking shapes: each tensor of a split region is divided by tp along
the dimension that carries the split (a linear layer's features; the heads after the reshape
that splits them off; wherever a permute moves it), and a linear layer's features and
parameters with it, so the kinds' own cost rules give the rank's FLOPs, bytes and memory.
"""
from __future__ import annotations

import dataclasses
import math

from workloads.graph import Op, OpGraph, TensorSpec
from workloads.zoo.transformers import TP_PAIRS_META, TP_VOCAB_META

from . import ConfigError

# Megatron-LM's --make-vocab-size-divisible-by (default 128): the vocabulary is padded to a
# multiple of it times tp before it is split
VOCAB_MULTIPLE = 128
# kinds with weights that sequence parallelism splits along the sequence (each rank holds
# them whole: a norm's scale and shift)
_NORM_KINDS = frozenset({"layernorm", "layer_scale"})


@dataclasses.dataclass(frozen=True)
class SplitPair:
    """Column-parallel linear layers and the row-parallel one that closes them."""
    columns: tuple[str, ...]
    row: str
    heads: int | None        # key/value heads shared out whole; None for an MLP


def split_pairs(graph: OpGraph, policy: str = "tensor-parallel") -> list[SplitPair]:
    """The graph's pairs of split linear layers; a graph without them is refused."""
    pairs = graph.meta.get(TP_PAIRS_META)
    if not pairs:
        raise ConfigError(
            f"policy {policy!r}: graph {graph.name!r} marks no pairs of column- and "
            f"row-parallel linear layers, so how to split it is unknown. It runs on the zoo's "
            f"GPT, BERT, ViT, Llama and Mistral transformers (`dnnsim workloads`); an imported "
            f"model, T5 or a CNN runs under data-parallel, fsdp or a pipeline")
    return [SplitPair(tuple(p["columns"]), p["row"], p.get("heads")) for p in pairs]


def check_tp(graph: OpGraph, pairs: list[SplitPair], tp: int,
             policy: str = "tensor-parallel") -> None:
    """tp must share every attention's key/value heads and every split layer's features out
    evenly."""
    for pair in pairs:
        if pair.heads is not None and pair.heads % tp:
            raise ConfigError(
                f"policy {policy!r} option 'tp': {tp} ranks cannot share the "
                f"{pair.heads} key/value heads of {pair.row!r} evenly (tp must divide them)")
        for name in pair.columns:
            features = graph.op(name).attrs["out_features"]
            if features % tp:
                raise ConfigError(
                    f"policy {policy!r} option 'tp': {tp} does not divide the "
                    f"{features} output features of {name!r}")


def vocab_layers(graph: OpGraph) -> tuple[str, str] | None:
    """A language model's token embedding and output layer (workloads/zoo/transformers.py's
    TP_VOCAB_META), which Megatron splits by vocabulary; None where the graph has none."""
    marked = graph.meta.get(TP_VOCAB_META)
    return (marked["embedding"], marked["output"]) if marked else None


def vocab_shard_rows(vocab: int, tp: int) -> int:
    """A rank's rows of the vocabulary, padded as Megatron pads it: to a multiple of
    VOCAB_MULTIPLE x tp (GPT-2's 50,257 becomes 50,432 on 2 ranks, 51,200 on 8)."""
    multiple = VOCAB_MULTIPLE * tp
    return -(-vocab // multiple) * multiple // tp


def split_graph(graph: OpGraph, tp: int, sequence_parallel: bool = False,
                vocab_parallel: bool = False) -> OpGraph:
    """One rank's forward graph: every split region's tensors and weights divided by tp;
    with `sequence_parallel`, the sequence region's tensors too (sequence_region); with
    `vocab_parallel`, the token embedding's rows and the output layer's logits (the loss
    that lower_training adds follows the logits)."""
    pairs = split_pairs(graph)
    check_tp(graph, pairs, tp)
    if tp == 1:
        return graph
    split_dim = _split_dims(graph, pairs)
    rows = {p.row for p in pairs}
    replaced = {name: _shrunk(graph, graph.op(name), split_dim, tp) for name in split_dim}
    for row in rows:
        replaced[row] = _row_share(graph.op(row), tp)
    vocab = vocab_layers(graph) if vocab_parallel else None
    if vocab is not None:
        table, head = graph.op(vocab[0]), graph.op(vocab[1])
        width = table.attrs["embedding_dim"]
        shard = vocab_shard_rows(table.attrs["num_embeddings"], tp)
        replaced[table.name] = dataclasses.replace(
            table, params=shard * width, attrs={**table.attrs, "num_embeddings": shard})
        replaced[head.name] = dataclasses.replace(
            head, params=shard * width if head.params else 0,
            out=TensorSpec((*head.out.shape[:-1], shard), head.out.dtype_bytes),
            attrs={**head.attrs, "out_features": shard})
    if sequence_parallel:
        lead = _batch_and_sequence(graph, pairs)
        if lead[1] % tp:
            raise ConfigError(f"policy 'tensor-parallel' option 'sequence_parallel': tp={tp} "
                              f"does not divide the sequence of {lead[1]}")
        for name in sequence_region(graph, pairs):
            op = graph.op(name)
            ins = tuple(_divided(s, 1, tp) if s.shape[:2] == lead else s for s in op.in_specs)
            replaced[name] = dataclasses.replace(op, in_specs=ins, out=_divided(op.out, 1, tp))
    return graph.copy(graph.name, lambda op: replaced.get(op.name, op))


def _split_dims(graph: OpGraph, pairs: list[SplitPair]) -> dict[str, int]:
    """Each op of a split region -> the dimension its output splits along."""
    split_dim: dict[str, int] = {}
    for pair in pairs:
        _trace_region(graph, pair, split_dim)
    return split_dim


def _batch_and_sequence(graph: OpGraph, pairs: list[SplitPair]) -> tuple[int, ...]:
    """(batch, sequence): the leading dimensions of what the first split layers read."""
    return graph.op(pairs[0].columns[0]).in_specs[0].shape[:2]


def sequence_region(graph: OpGraph, pairs: list[SplitPair]) -> set[str]:
    """The ops Megatron's sequence parallelism (Korthikanti et al. 2022) splits along the
    sequence: those of the residual stream around the split layers (norms, residual adds,
    dropout), from what the first block reads to what the output layer reads. Grown from
    the split layers' inputs and the row layers' readers through ops on (batch, sequence,
    ...) tensors without weights (a norm's scale excepted), it stops at embeddings, the
    output layer and any op that leaves the sequence (a class token's slice)."""
    split_dim = _split_dims(graph, pairs)
    paired = {n for p in pairs for n in (*p.columns, p.row)}
    lead = _batch_and_sequence(graph, pairs)

    def belongs(name: str) -> bool:
        op = graph.op(name)
        return (name not in split_dim and name not in paired and op.kind != "input"
                and op.layer is None                   # an output layer (its weight tied)
                and op.phase == "forward" and op.out.shape[:2] == lead
                and (not op.params or op.kind in _NORM_KINDS))
    frontier = [graph.op(c).inputs[0] for p in pairs for c in p.columns]
    frontier += [r for p in pairs for r in graph.successors(p.row)]
    region: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in region or not belongs(name):
            continue
        region.add(name)
        frontier += [*graph.predecessors(name), *graph.successors(name)]
    return region


def _trace_region(graph: OpGraph, pair: SplitPair, split_dim: dict[str, int]) -> None:
    """Follow each column layer's output to the row layer, recording the split dimension of
    every op on the way; an op that leaves the region another way is refused."""
    frontier = []
    for name in pair.columns:
        op = graph.op(name)
        if op.kind != "linear":
            raise ConfigError(f"policy 'tensor-parallel': {name!r} is marked column-parallel "
                              f"but is a {op.kind}, not a linear layer")
        split_dim[name] = len(op.out.shape) - 1
        frontier.append(name)
    region: set[str] = set()
    while frontier:
        name = frontier.pop()
        for nxt in graph.successors(name):
            if nxt != pair.row and nxt not in region and nxt not in split_dim:
                region.add(nxt)
                frontier.append(nxt)
    for op in graph.topo():                # inputs before readers
        if op.name not in region:
            continue
        nxt = op.name
        outside = [i for i in op.inputs if i not in split_dim]
        if outside or op.params:
            raise ConfigError(
                f"policy 'tensor-parallel': {nxt!r} ({op.kind}) between the split layers "
                f"{pair.columns[0]!r} and {pair.row!r} also reads {outside or 'weights'}; "
                f"only the marked linear layers may meet the rest of the graph")
        split_dim[nxt] = _out_split_dim(graph, op, split_dim)
    row = graph.op(pair.row)
    if any(i not in split_dim for i in row.inputs) or row.kind != "linear":
        raise ConfigError(f"policy 'tensor-parallel': {pair.row!r} is marked row-parallel but "
                          f"is not a linear layer reading the split region")


def _out_split_dim(graph: OpGraph, op: Op, split_dim: dict[str, int]) -> int:
    """Where op's output carries the split, from where its first input does."""
    d = split_dim[op.inputs[0]]
    in_shape = op.in_specs[0].shape
    if op.kind == "permute":
        return list(op.attrs["dims"]).index(d)
    if op.kind in ("reshape", "flatten"):
        before = math.prod(in_shape[:d])       # the split dimension keeps what precedes it
        out = op.out.shape
        for j in reversed(range(len(out))):    # the last: dims of 1 before it add nothing
            if math.prod(out[:j]) == before:
                return j
        raise ConfigError(f"policy 'tensor-parallel': the reshape {op.name!r} of {in_shape} "
                          f"to {out} mixes the split dimension {d} with the ones before it")
    if op.kind == "concat" and op.attrs["dim"] == d:
        raise ConfigError(f"policy 'tensor-parallel': {op.name!r} concatenates along the "
                          f"split dimension {d}")
    if len(op.out.shape) != len(in_shape):
        raise ConfigError(f"policy 'tensor-parallel': {op.name!r} ({op.kind}) changes the "
                          f"rank of the split tensor {in_shape} -> {op.out.shape}")
    return d


def _divided(spec: TensorSpec, dim: int, tp: int) -> TensorSpec:
    shape = list(spec.shape)
    if shape[dim] % tp:
        raise ConfigError(f"policy 'tensor-parallel': dimension {dim} of a split tensor "
                          f"{spec.shape} is not divisible by tp={tp}")
    shape[dim] //= tp
    return dataclasses.replace(spec, shape=tuple(shape))


def _shrunk(graph: OpGraph, op: Op, split_dim: dict[str, int], tp: int) -> Op:
    """An op of a split region on one rank's share."""
    d = split_dim[op.name]
    ins = tuple(_divided(s, split_dim[i], tp) if i in split_dim else s
                for i, s in zip(op.inputs, op.in_specs, strict=True))
    attrs = dict(op.attrs)
    params = op.params
    if op.kind == "linear":           # column-parallel: its output features and weights
        attrs["out_features"] = op.attrs["out_features"] // tp
        params = op.params // tp
    elif op.kind == "slice" and op.attrs["dim"] == d:
        # a packed projection's q, k or v: each rank holds its heads of each
        attrs.update(start=op.attrs["start"] // tp, stop=op.attrs["stop"] // tp)
    elif op.kind == "contiguous":
        src = list(op.attrs["source_shape"])
        src[list(op.attrs["dims"])[d]] //= tp
        attrs["source_shape"] = tuple(src)
    return dataclasses.replace(op, in_specs=ins, out=_divided(op.out, d, tp), attrs=attrs,
                               params=params)


def _row_share(op: Op, tp: int) -> Op:
    """A row-parallel linear layer on one rank: 1/tp of its input features and weights (its
    bias whole: Megatron adds it once, after the all-reduce)."""
    a = op.attrs
    attrs = {**a, "in_features": a["in_features"] // tp}
    bias = a["out_features"] if a.get("bias") else 0
    params = (op.params - bias) // tp + bias
    ins = (_divided(op.in_specs[0], len(op.in_specs[0].shape) - 1, tp), *op.in_specs[1:])
    return dataclasses.replace(op, in_specs=ins, attrs=attrs, params=params)
