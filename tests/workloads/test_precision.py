"""Training precision: tensor widths and the stamp every op carries."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import zoo
from workloads.graph import WorkloadError
from workloads.precision import PRECISIONS, precision_of, with_precision
from workloads.training import lower_training, training_memory


def test_amp_halves_activations_and_keeps_fp32_master_weights():
    g = zoo.get("resnet18", batch=8)
    fp32 = training_memory(lower_training(with_precision(g, "fp32")))
    amp = training_memory(lower_training(with_precision(g, "amp-fp16")))
    half = training_memory(lower_training(with_precision(g, "fp16")))
    assert amp.activations_bytes * 2 == fp32.activations_bytes
    assert amp.weights_bytes == fp32.weights_bytes          # FP32 master weights
    assert half.weights_bytes * 2 == fp32.weights_bytes     # model.half()


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_op_of_the_training_graph_carries_the_precision(precision):
    train = lower_training(with_precision(zoo.get("lenet5", batch=4), precision))
    assert {precision_of(op) for op in train if op.kind != "softmax_xent"} == {precision}
    grads = [op for op in train if op.kind.endswith("_grad_weight")]
    width = 4 if precision in ("fp32", "tf32", "amp-fp16", "amp-bf16") else 2
    assert all(op.out.dtype_bytes == width for op in grads)


def test_same_precision_is_the_same_graph_and_unknown_is_an_error():
    g = with_precision(zoo.get("lenet5", batch=2), "bf16")
    assert with_precision(g, "bf16") is g
    with pytest.raises(WorkloadError, match="unknown precision 'fp8'.*fp32, tf32"):
        with_precision(g, "fp8")


# A Llama block as Hugging Face runs it under CUDA autocast: the FP32 embedding starts an FP32
# residual stream; RMSNorm (x.to(float32), pow, mean, rsqrt, weight *) stays FP32; q * cos
# promotes to FP32 (cos is made in the hidden states' dtype), rotate_half(q) does not; the
# projections, attention and the SwiGLU MLP write half.
_LLAMA_FP32 = {"model.embed_tokens", "model.layers.0.add", "model.layers.0.add2",
               *(f"{norm}.{op}" for norm in ("model.layers.0.input_layernorm",
                                             "model.layers.0.post_attention_layernorm",
                                             "model.norm")
                 for op in ("pow", "mean", "scalar", "rsqrt", "mul", "layer_scale")),
               *(f"model.layers.0.self_attn.{op}" for op in (
                   "mul_table", "mul_table2", "add", "mul_table3", "mul_table4", "add2",
                   "repeat_heads"))}


@pytest.mark.parametrize("precision", ["amp-bf16", "amp-fp16"])
def test_a_llama_block_under_amp_stores_each_tensor_in_autocasts_dtype(precision):
    from workloads.zoo.transformers import llama
    block = llama(1, layers=1, hidden=64, heads=4, kv_heads=2, intermediate=128,
                  vocab_size=100, seq_len=16)
    g = with_precision(block, precision)
    widths = {op.name: op.out.dtype_bytes for op in g if not op.is_view}
    assert {n for n, w in widths.items() if w == 4} == _LLAMA_FP32
    assert set(widths.values()) == {2, 4}
    # values: 18,064 in FP32 (embedding 1,024; three RMSNorms of 3,120; rotary q 3,072 and k
    # 1,536; k repeated 1,024; two residual adds of 1,024), 19,264 in half
    assert g.activation_bytes() == 4 * 18_064 + 2 * 19_264
    assert with_precision(block, "bf16").activation_bytes() == 2 * (18_064 + 19_264)
    # a gradient has its tensor's dtype; the loss is FP32
    train = lower_training(g)
    assert train.op("model.layers.0.add.grad_acc").out.dtype_bytes == 4
    assert train.op("model.layers.0.self_attn.permute.grad_acc").out.dtype_bytes == 2
    assert train.op("loss").out.dtype_bytes == 4


@settings(max_examples=15, deadline=None)
@given(network=st.sampled_from(["gpt2", "bert", "llama", "googlenet_v1", "cifar_resnet20",
                                "vit_ti_16"]),
       seq=st.integers(2, 12), layers=st.integers(1, 2))
def test_amp_widths_are_consistent_and_between_half_and_fp32(network, seq, layers):
    """Both AMP formats store the same widths; every op reads its producers' widths; AMP's
    activations lie between pure half's and FP32's."""
    g = _small(network, seq, layers)
    fp16, bf16 = with_precision(g, "amp-fp16"), with_precision(g, "amp-bf16")
    assert [op.out for op in fp16] == [op.out for op in bf16]
    for op in fp16:
        assert op.out.integer or op.out.dtype_bytes in (2, 4)
        for src, s in zip(op.inputs, op.in_specs, strict=False):
            assert s.dtype_bytes == fp16.op(src).out.dtype_bytes
    half, full = (with_precision(g, p).activation_bytes() for p in ("bf16", "fp32"))
    assert half <= fp16.activation_bytes() <= full


def _small(network: str, seq: int, layers: int):
    from workloads.zoo import transformers as tz
    if network == "gpt2":
        return tz.gpt2(2, depth=layers, width=32, heads=4, seq_len=seq, vocab_size=50)
    if network == "bert":
        return tz.bert_base(1, seq_len=seq, vocab_size=50)
    if network == "llama":
        return tz.llama(1, layers=layers, hidden=32, heads=4, kv_heads=2, intermediate=64,
                        vocab_size=50, seq_len=seq)
    return zoo.get(network, batch=2)
