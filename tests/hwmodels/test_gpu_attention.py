"""Batched products and attention on the GPU model: the backend PyTorch's SDPA picks, fused
kernels that never write the score matrix, causal skipping, tensor cores under AMP, and the
math backend as its parts."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import model_for
from workloads.builder import GraphBuilder
from workloads.precision import with_precision
from workloads.training import lower_training


def _attention_graph(seq: int, heads: int = 12, head_dim: int = 64, batch: int = 4,
                     causal: bool = False, naive: bool = False, loss: bool = False):
    b = GraphBuilder("attn", input_shape=(heads, seq, head_dim), batch=batch)
    x = b.input()
    if loss:    # a trained projection first, so the attention has a gradient
        x = b.linear(x, head_dim)
    if naive:
        s = b.batched_matmul(x, b.transpose(x, -2, -1))
        p = b.softmax(b.causal_mask(s) if causal else s)
        y = b.batched_matmul(p, x)
    else:
        y = b.attention(x, x, x, causal=causal)
    if loss:
        b.softmax_xent(b.linear(b.flatten(y), 10))
    return b.build()


def _op(graph, kind):
    return next(op for op in graph if op.kind == kind)


def _gpu(name):
    return model_for(name)


@pytest.mark.parametrize("device,precision,backend", [
    ("a100", "amp-fp16", "flash"), ("a100", "amp-bf16", "flash"), ("h100", "amp-bf16", "flash"),
    ("a100", "fp32", "efficient"), ("v100", "amp-fp16", "efficient"),
    ("v100", "fp32", "efficient"), ("k80", "fp32", "math"),
])
def test_sdpa_backend_follows_pytorch_rules(device, precision, backend):
    graph = with_precision(_attention_graph(512), precision)
    assert _gpu(device).attention_backend(_op(graph, "attention")) == backend


def test_flash_needs_head_dim_at_most_256():
    graph = with_precision(_attention_graph(256, heads=2, head_dim=320), "amp-fp16")
    assert _gpu("a100").attention_backend(_op(graph, "attention")) == "efficient"


def test_fused_attention_never_writes_the_scores():
    """At a long sequence the math backend moves the (seq x seq) scores several times; the fused
    kernel moves Q, K, V and the output only, and is faster."""
    gpu = _gpu("v100")
    op = _op(_attention_graph(4096, batch=1), "attention")
    fused = gpu.kernel_options(op)[0]
    scores_bytes = 12 * 4096 * 4096 * 4
    assert fused.traffic_bytes < scores_bytes / 10
    k80 = _gpu("k80")    # Kepler: no fused backend, math
    math_option = k80.kernel_options(op)[0]
    assert math_option.algorithm == "math" and math_option.kernels > 1
    assert math_option.traffic_bytes > 3 * scores_bytes


def test_causal_fused_attention_does_about_half_the_work():
    gpu = _gpu("a100")
    full = with_precision(_attention_graph(4096, batch=2), "amp-fp16")
    causal = with_precision(_attention_graph(4096, batch=2, causal=True), "amp-fp16")
    t_full = gpu.op_time_s(_op(full, "attention"))
    t_causal = gpu.op_time_s(_op(causal, "attention"))
    assert 0.45 < t_causal / t_full < 0.6


def test_amp_attention_runs_on_tensor_cores():
    gpu = _gpu("v100")
    graph = _attention_graph(2048)
    fp32 = gpu.op_time_s(_op(graph, "attention"))
    amp = gpu.op_time_s(_op(with_precision(graph, "amp-fp16"), "attention"))
    assert gpu.tensor_cores(_op(with_precision(graph, "amp-fp16"), "attention"))
    assert amp < fp32 / 3


def test_attention_backward_costs_more_than_forward():
    gpu = _gpu("a100")
    train = lower_training(with_precision(_attention_graph(1024, loss=True), "amp-fp16"))
    fwd, bwd = _op(train, "attention"), _op(train, "attention_grad")
    assert gpu.attention_backend(bwd) == "flash"
    assert 2.0 < gpu.op_time_s(bwd) / gpu.op_time_s(fwd) < 4.0


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 2048), k=st.integers(1, 2048))
def test_a_batched_product_of_one_matrix_costs_what_a_linear_layer_does(m, k):
    """x @ x^T for x of (1, m, k) is the GEMM of a linear layer of k -> m features over m
    rows: same arithmetic, same kernel time."""
    gpu = _gpu("v100")
    b = GraphBuilder("p", input_shape=(m, k), batch=1)
    x = b.input()
    linear = b.linear(x, m, bias=False)
    product = b.batched_matmul(x, b.transpose(x, -2, -1))
    graph = b.build()
    t_linear = gpu.kernel_options(graph.op(linear))[0].unit_s
    t_product = gpu.kernel_options(graph.op(product))[0].unit_s
    assert t_product == pytest.approx(t_linear, rel=1e-9)


@pytest.mark.parametrize("device", ["v100", "a100"])
def test_attention_written_out_is_slower_than_the_fused_kernel_at_long_sequences(device):
    """Hand-written attention (products, mask, softmax as their own kernels) pays for the
    score matrix in DRAM; SDPA's fused kernel does not."""
    gpu = _gpu(device)

    def step_s(naive):
        graph = with_precision(_attention_graph(2048, causal=True, naive=naive), "amp-fp16")
        return sum(gpu.op_time_s(op) for op in graph)
    assert step_s(naive=False) < 0.7 * step_s(naive=True)
