"""The calibration grid's transformers: which kinds and sizes they cover, and that a profile
refitted from their op measurements (synthetic times here, through the ops CSV) keys every
sequence-model kind on its layout and costs a transformer without falling back."""
import pytest

from validation.calibrate import profile_build
from validation.calibrate.calibration_nets import GRID_CASES, get
from validation.calibrate.calibration_transformers import (
    DECODER_SIZES,
    SEQ_LENS,
    TRANSFORMER_CASES,
    decoder_name,
)
from validation.calibrate.journal import records_of_replay
from validation.validate.compare import machine_checked_elsewhere, simulate_graph
from workloads.training import lower_training
from workloads.zoo import transformers as zt

META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1}
SEQUENCE_KINDS = {"attention", "attention_grad", "batched_matmul", "batched_matmul_grad",
                  "softmax", "softmax_grad", "masked_fill", "masked_fill_grad", "embedding",
                  "embedding_grad", "position_embedding", "position_embedding_grad",
                  "class_token", "class_token_grad", "contiguous", "layernorm",
                  "layernorm_grad", "gelu", "gelu_grad"}


def synthetic_s(op) -> float:
    """A time law the fit can recover: overhead, FLOPs and bytes."""
    return 2e-6 + 1e-11 * op.flops + 2e-10 * op.bytes_moved


def records(cases):
    out = []
    for name, batch in cases:
        train = lower_training(get(name, batch))
        times = {op.name: synthetic_s(op) for op in train.topo() if not op.is_view}
        out += records_of_replay(name, train, [times])
    return out


def test_the_grid_covers_sequence_lengths_head_dims_and_both_attention_forms():
    assert set(TRANSFORMER_CASES) <= set(GRID_CASES)
    names = {n for n, _ in TRANSFORMER_CASES}
    for hd in DECODER_SIZES:
        for s in SEQ_LENS:
            assert {decoder_name(hd, s, "fused"), decoder_name(hd, s, "naive")} <= names
    kinds = {op.kind for name, batch in TRANSFORMER_CASES
             for op in lower_training(get(name, batch))}
    assert kinds >= SEQUENCE_KINDS
    attention = [op for name, batch in TRANSFORMER_CASES
                 for op in get(name, batch) if op.kind == "attention"]
    assert {op.in_specs[0].shape[-1] for op in attention} == {32, 64}       # head dims
    assert {op.in_specs[0].shape[-2] for op in attention} >= set(SEQ_LENS)  # sequence lengths
    assert {op.attrs.get("causal", False) for op in attention} == {True, False}
    # a table near a real vocabulary's (GPT-2: 50257 x 768), written whole by its gradient
    assert max(op.bytes_written for name, batch in TRANSFORMER_CASES
               for op in lower_training(get(name, batch)) if op.kind == "embedding_grad") \
        >= 32 * 2**20


def test_a_refitted_profile_keys_the_sequence_kinds_on_layouts_and_predicts_unseen_sizes(
        tmp_path):
    held_out = decoder_name(64, 256, "fused")
    recs = records([c for c in TRANSFORMER_CASES if c[0] != held_out])
    profile_build.write_ops_csv(recs, tmp_path / "ops.csv")
    prof = profile_build.build_profile(profile_build.read_ops_csv(tmp_path / "ops.csv"), META)
    for kind in SEQUENCE_KINDS:
        points = prof.points(kind)
        # (flops, bytes, time, planes, pixels): a layout, not a GEMM shape
        assert points and all(len(p) == 5 for p in points), kind
    from hwmodels.families import point_shape
    graph = lower_training(get(held_out, 2))
    for op in graph:
        if op.kind in ("attention", "attention_grad", "layernorm", "gelu"):
            predicted = prof.predictor(op.kind).predict_s(op.flops, op.bytes_moved,
                                                          point_shape(op))
            assert predicted == pytest.approx(synthetic_s(op), rel=0.02), op.name


def test_a_refitted_profile_costs_a_transformer_without_fallbacks():
    prof = profile_build.build_profile(records(TRANSFORMER_CASES), META)
    g = zt.gpt2(2, width=128, depth=2, heads=2, seq_len=96, vocab_size=1000,
                max_positions=128, attention="naive")
    with machine_checked_elsewhere():
        step_s, fallbacks = simulate_graph(g, prof)
    assert step_s > 0 and not fallbacks

