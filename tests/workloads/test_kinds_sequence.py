"""The sequence-model kinds (batched matmul, softmax, causal mask, fused attention, embeddings,
permute): shapes, FLOPs and bytes, and what training makes of them."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads.builder import GraphBuilder
from workloads.builder_sequence import broadcast_batch, is_contiguous_permute
from workloads.graph import ShapeError, WorkloadError
from workloads.precision import with_precision
from workloads.training import lower_training, training_memory


def tokens(seq=6, vocab=11, batch=2, lm=True):
    """A builder of a language model (trained on every position's logits) and its ids."""
    b = GraphBuilder("lm", input_shape=(seq,), batch=batch, token_logits=lm)
    return b, b.input(tokens=vocab)


def test_embedding_reads_the_rows_it_gathers_and_its_gradient_is_the_table():
    b, ids = tokens()
    x = b.embedding(ids, 11, 4, name="wte")
    b.linear(x, 3, name="head")
    g = b.build()
    emb = g.op("wte")
    assert emb.out.shape == (2, 6, 4) and emb.params == 44 and emb.flops == 0
    assert emb.bytes_read == 2 * 6 * 8 + 2 * 6 * 4 * 4     # ids (int64) and the rows
    assert g.input_op.out.integer and g.input_op.out.dtype_bytes == 8
    # AMP halves the activations, never the ids
    assert with_precision(g, "amp-fp16").input_op.out.dtype_bytes == 8
    b2, ids2 = tokens()
    b2.linear(b2.embedding(ids2, 11, 4, name="wte"), 3)
    train = lower_training(b2.build(), "sgd")
    grad = train.op("wte.grad")
    assert grad.kind == "embedding_grad" and grad.out.shape == (44,)
    assert grad.inputs == ("linear.grad_input", "input") and grad.params == 44
    assert train.op("wte.update").inputs == ("wte.grad",)
    assert "input.grad" not in train     # ids get no gradient


def test_embedding_needs_integer_ids():
    b = GraphBuilder("x", input_shape=(6,), batch=2)
    with pytest.raises(ShapeError, match="needs integer ids"):
        b.embedding(b.input(), 10, 4)
    with pytest.raises(WorkloadError, match="tokens must be an integer"):
        GraphBuilder("y", input_shape=(6,), batch=2).input(tokens=0)


def test_position_embedding_and_class_token_route_the_gradient_and_train_their_table():
    b, ids = tokens(seq=5)
    x = b.position_embedding(b.embedding(ids, 11, 4), 8, name="wpe")
    x = b.class_token(x, name="cls")
    b.linear(b.reshape(b.slice(x, 0, 1, dim=1), (2, 4)), 3)
    g = b.build()
    assert g.op("wpe").params == 32 and g.op("cls").out.shape == (2, 6, 4)
    assert g.op("wpe").bytes_read == 2 * 5 * 4 * 4 + 5 * 4 * 4   # x and the 5 rows used
    train = lower_training(g)
    assert train.op("wpe.grad").out.shape == (32,)
    assert train.op("cls.grad").out.shape == (4,)
    # the embedding below reads the gradient the class token and the positions pass on
    assert train.op("embedding.grad").inputs[0] == "linear.grad_input"
    with pytest.raises(ShapeError, match="5 positions from row 0 but a table of 4"):
        b.position_embedding(b.embedding(ids, 11, 4), 4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["both", "a", "b"])),
                max_size=2),
       st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
def test_batched_matmul_broadcasts_and_its_gradients_have_the_factors_shapes(dims, m, k, n):
    # batch dimensions after the sample's: equal, or 1 in one factor (it broadcasts)
    ba = [d if who != "b" else 1 for d, who in dims]
    bb = [d if who != "a" else 1 for d, who in dims]
    b = GraphBuilder("mm", input_shape=(4,), batch=2)
    x = b.input()
    fa = b.reshape(b.linear(x, math.prod(ba) * m * k), (2, *ba, m, k))
    fb = b.reshape(b.linear(x, math.prod(bb) * k * n), (2, *bb, k, n))
    y = b.batched_matmul(fa, fb)
    batch = broadcast_batch((2, *ba), (2, *bb))
    op = b.graph.op(y)
    assert op.out.shape == (*batch, m, n)
    assert op.flops == 2 * math.prod(batch) * m * k * n
    b.linear(b.reshape(y, (2, math.prod(op.out.shape[1:]))), 3)
    train = lower_training(b.build())
    for i, src in enumerate((fa, fb)):
        grad = train.op(f"{y}.grad{i}")
        assert grad.out.shape == train.op(src).out.shape
        # the product, plus the sum over what broadcast
        expanded = math.prod(batch) * math.prod(grad.out.shape[-2:])
        assert grad.flops == 2 * math.prod(batch) * m * k * n + expanded - grad.out.numel


def test_batched_matmul_refuses_what_torch_matmul_refuses():
    b = GraphBuilder("mm", input_shape=(3, 4), batch=2)
    x = b.input()
    with pytest.raises(ShapeError, match=r"needs \(\.\.\., m, k\) and \(\.\.\., k, n\)"):
        b.batched_matmul(x, x)
    y = b.reshape(b.linear(x, 6), (2, 3, 3, 2))
    with pytest.raises(ShapeError, match="do not broadcast"):
        b.batched_matmul(b.reshape(b.linear(x, 8), (2, 2, 3, 4)),
                         b.reshape(b.linear(x, 8), (2, 3, 4, 2)))
    assert y


def test_permute_is_a_view_and_a_reshape_of_it_copies():
    b = GraphBuilder("p", input_shape=(3, 4), batch=2)
    x = b.linear(b.input(), 5)
    t = b.transpose(x, 1, 2)
    assert b.graph.op(t).is_view and b.spec(t).shape == (2, 5, 3)
    y = b.reshape(t, (2, 15))
    copy = b.graph.op(b.graph.op(y).inputs[0])
    assert copy.kind == "contiguous" and copy.bytes_moved == 2 * 2 * 15 * 4
    assert copy.attrs["dims"] == (0, 2, 1) and copy.attrs["source_shape"] == (2, 3, 5)
    # a permute that keeps the order of the dimensions above 1 stays contiguous
    u = b.reshape(b.linear(b.input("input2"), 5), (2, 3, 1, 5))
    assert b.contiguous(b.transpose(u, 1, 2)) != u
    assert b.graph.op(b.contiguous(b.transpose(u, 1, 2))).kind == "permute"
    assert is_contiguous_permute((2, 3, 1, 5), (0, 2, 1, 3))
    assert not is_contiguous_permute((2, 3, 4), (0, 2, 1))
    with pytest.raises(ShapeError, match="not a permutation"):
        b.permute(x, (0, 1, 1))
    with pytest.raises(ShapeError, match="batch must stay first"):
        b.permute(x, (1, 0, 2))
    b.linear(y, 2)
    train = lower_training(b.build())
    assert not [op for op in train.phase("backward") if op.forward in (t, copy.name)]


def attention_graph(causal: bool, fused: bool, seq=6, heads=2, hd=4):
    b = GraphBuilder("attn", input_shape=(seq, heads * hd), batch=2)
    x = b.input()
    q, k, v = (b.transpose(b.reshape(b.linear(x, heads * hd, name=n), (2, seq, heads, hd)),
                           1, 2) for n in "qkv")
    if fused:
        y = b.attention(q, k, v, causal=causal, name="sdpa")
    else:
        s = b.scalar(b.batched_matmul(q, b.transpose(k, -1, -2)), 1 / math.sqrt(hd))
        if causal:
            s = b.causal_mask(s)
        y = b.batched_matmul(b.softmax(s), v)
    b.linear(b.reshape(b.transpose(y, 1, 2), (2, seq * heads * hd)), 3, name="head")
    return b.build()


@pytest.mark.parametrize("causal", [False, True])
def test_fused_attention_counts_the_products_and_the_softmax_of_the_naive_form(causal):
    fused, naive = attention_graph(causal, True), attention_graph(causal, False)
    sdpa = fused.op("sdpa")
    products = sum(op.flops for op in naive if op.kind == "batched_matmul")
    softmax = naive.op("softmax").flops
    assert sdpa.flops == products + softmax == 2 * 2 * 2 * 6 * 6 * 4 * 2 + 5 * 2 * 2 * 6 * 6
    assert sdpa.attrs["causal"] is causal
    train = lower_training(fused)
    grad = train.op("sdpa.grad")
    # one kernel makes dQ, dK and dV; it reads dy, q, k, v and the output
    assert grad.out.shape == (3 * 2 * 2 * 6 * 4,) and len(grad.inputs) == 5
    assert set(grad.saved) == {*sdpa.inputs, "sdpa"}
    assert grad.flops == 4 * 2 * 2 * 6 * 6 * (4 + 4) + 4 * 2 * 2 * 6 * 6
    assert training_memory(train).activations_bytes > training_memory(
        lower_training(attention_graph(causal, True, seq=3))).activations_bytes


def test_causal_mask_reads_its_mask_and_softmax_saves_its_output():
    g = attention_graph(True, False)
    mask = next(op for op in g if op.kind == "masked_fill")
    assert mask.bytes_read == mask.in_specs[0].nbytes + 6 * 6
    train = lower_training(g)
    soft = next(op for op in train if op.kind == "softmax_grad")
    assert soft.saved == ("softmax",)
    assert next(op for op in train if op.kind == "masked_fill_grad").saved == ()


def test_shared_weights_count_once_and_train_once():
    b, ids = tokens()
    x = b.embedding(ids, 11, 4, name="wte")
    b.linear(x, 11, bias=False, name="lm_head", shared_with="wte")
    g = b.build()
    assert g.params() == 44 and g.meta["shared_params"] == {"lm_head": "wte"}
    assert g.op("lm_head").bytes_read == 2 * 6 * 4 * 4 + 44 * 4   # it reads the table
    train = lower_training(g)
    assert train.op("lm_head.grad_weight").out.shape == (44,)
    # autograd sums both calls' gradients (a table-sized add) before the optimizer steps
    assert train.op("wte.grad_weight_acc").inputs == ("wte.grad", "lm_head.grad_weight")
    assert train.op("wte.grad_weight_acc").kind == "grad_accumulate"
    assert train.op("wte.update").inputs == ("wte.grad_weight_acc",)
    assert "lm_head.update" not in train
    with pytest.raises(WorkloadError, match="cannot share the weight"):
        b.linear(x, 11, bias=True, shared_with="wte")
    with pytest.raises(WorkloadError, match="cannot share the weight"):
        b.linear(x, 12, bias=False, shared_with="wte")


def test_language_model_logits_train_on_every_position():
    b, ids = tokens(lm=False)
    b.linear(b.embedding(ids, 11, 4), 11)
    g = b.build()
    with pytest.raises(WorkloadError, match="training needs"):
        lower_training(g)
    g.meta["token_logits"] = True
    loss = lower_training(g).op("loss")
    assert loss.attrs["classes"] == 11 and loss.flops == 5 * 2 * 6 * 11
