"""_tensor_split: one tensor-parallel rank's share of a transformer holds 1/tp of each split
layer's multiply-adds, weights and activations, and all of every other op."""
from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.api import load_workload
from simulator.policies import ConfigError
from simulator.policies._tensor_split import (
    sequence_region,
    split_graph,
    split_pairs,
    vocab_layers,
    vocab_shard_rows,
)
from workloads.precision import with_precision
from workloads.training import lower_training

# small configurations of each marked family: (zoo name, options, key/value heads)
SMALL = {
    "gpt2": ({"depth": 2, "width": 96, "heads": 12, "seq_len": 16, "vocab_size": 64}, 12),
    "llama": ({"layers": 2, "hidden": 64, "heads": 8, "kv_heads": 4, "intermediate": 96,
               "vocab_size": 64, "seq_len": 8}, 4),
    "bert_base": ({"seq_len": 8, "vocab_size": 64}, 12),
    "vit_ti_16": ({"input_size": 32}, 3),
}


@functools.cache
def _graph(name: str, attention: str = "fused"):
    options = dict(SMALL[name][0])
    if name != "vit_ti_16" or attention == "naive":
        options["attention"] = attention
    return with_precision(load_workload(name, 2, **options), "amp-bf16")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(SMALL)), st.sampled_from(["fused", "naive"]), st.data())
def test_a_rank_does_one_tpth_of_each_split_op_and_all_of_the_rest(name, attention, data):
    whole = _graph(name, attention)
    tp = data.draw(st.sampled_from(_divisors(SMALL[name][1])))
    share = split_graph(whole, tp)
    pairs = split_pairs(whole)
    columns = {c for p in pairs for c in p.columns}
    rows = {p.row for p in pairs}
    changed = 0
    for op, mine in zip(whole.topo(), share.topo(), strict=True):
        assert op.name == mine.name
        if op.name in columns:
            assert mine.macs * tp == op.macs and mine.params * tp == op.params
        elif op.name in rows:
            bias = op.attrs["out_features"] if op.attrs.get("bias") else 0
            assert mine.macs * tp == op.macs
            assert (mine.params - bias) * tp == op.params - bias
            assert mine.out == op.out           # each rank a partial sum of the whole
        elif mine.out != op.out:                # between them: the heads' or features' share
            changed += 1
            assert mine.out.numel * tp == op.out.numel
            assert mine.flops * tp == pytest.approx(op.flops)
        else:
            assert mine.flops == op.flops and mine.params == op.params
    assert changed >= (2 * len(pairs) if tp > 1 else 0)
    # the training graph's backward ops follow: the split layers' gradients 1/tp too
    train, train_share = lower_training(whole), lower_training(share)
    for op, mine in zip(train.topo(), train_share.topo(), strict=True):
        if op.forward in columns | rows and op.kind.startswith("linear_grad"):
            assert mine.macs * tp == op.macs


def test_attention_runs_on_a_ranks_heads():
    whole = _graph("llama")
    share = split_graph(whole, 4)
    attention = [op for op in share if op.kind == "attention"]
    assert attention and all(op.out.shape[1] == 8 // 4 for op in attention)


def test_graphs_without_pairs_and_bad_tp_are_refused_naming_why():
    cnn = load_workload("resnet18", 1)
    with pytest.raises(ConfigError, match="marks no pairs.*data-parallel"):
        split_graph(cnn, 2)
    with pytest.raises(ConfigError, match="cannot share the 4 key/value heads"):
        split_graph(_graph("llama"), 8)
    with pytest.raises(ConfigError, match="cannot share the 12 key/value heads"):
        split_graph(_graph("gpt2"), 8)


def test_tp_1_is_the_graph_itself():
    whole = _graph("gpt2")
    assert split_graph(whole, 1) is whole


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["gpt2", "llama", "bert_base"]), st.sampled_from([1, 2, 4]))
def test_sequence_parallel_splits_the_residual_stream_along_the_sequence(name, tp):
    whole = _graph(name)
    pairs = split_pairs(whole)
    region = sequence_region(whole, pairs)
    share = split_graph(whole, tp, sequence_parallel=True)
    kinds = {whole.op(n).kind for n in region}
    assert {"add"} <= kinds and kinds & {"layernorm", "layer_scale"}
    for op, mine in zip(whole.topo(), share.topo(), strict=True):
        if op.name in region and tp > 1:
            assert mine.out.shape[1] * tp == op.out.shape[1]
            assert mine.flops * tp == pytest.approx(op.flops)
            assert mine.params == op.params          # a norm's scale whole on every rank
        elif op.kind in ("embedding", "softmax_xent") or op.name == pairs[-1].row:
            assert mine.out == op.out


def test_vocab_parallel_pads_the_vocabulary_as_megatron_and_splits_its_rows():
    assert vocab_shard_rows(50257, 2) == 50432 // 2          # GPT-2's, padded to 256s
    assert vocab_shard_rows(50257, 8) == 51200 // 8          # and to 1024s
    assert vocab_shard_rows(32000, 2) == 16000
    whole = _graph("llama")
    table, head = vocab_layers(whole)
    share = split_graph(whole, 2, vocab_parallel=True)
    rows = vocab_shard_rows(64, 2)
    assert share.op(table).params == rows * 64 and share.op(table).out == whole.op(table).out
    assert share.op(head).out.shape[-1] == rows and share.op(head).params == rows * 64
    loss = next(op for op in lower_training(share) if op.kind == "softmax_xent")
    assert loss.in_specs[0].shape[-1] == rows
    assert split_graph(whole, 2).op(head).out == whole.op(head).out     # replicated
    assert vocab_layers(_graph("bert_base")) is None
