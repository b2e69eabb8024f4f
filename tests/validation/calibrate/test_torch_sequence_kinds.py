"""The sequence-model kinds run in PyTorch: each replay kernel computes what autograd computes,
and the FLOPs of the products agree with torch.utils.flop_counter."""
import pytest

torch = pytest.importorskip("torch")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from validation.calibrate.torch_ops import KernelState, op_kernel  # noqa: E402
from workloads.builder import GraphBuilder  # noqa: E402
from workloads.training import lower_training  # noqa: E402

F = torch.nn.functional


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def run(train, name, *tensors, state=None):
    return op_kernel(train.op(name), state or KernelState(graph=train))(*tensors)


def product_graph():
    """(2, 1, 3, 4) @ (2, 5, 4, 2): the first factor broadcasts over 5."""
    b = GraphBuilder("mm", input_shape=(4,), batch=2)
    x = b.input()
    a = b.reshape(b.linear(x, 12, name="la"), (2, 1, 3, 4))
    c = b.reshape(b.linear(x, 40, name="lc"), (2, 5, 4, 2))
    y = b.batched_matmul(a, c, name="mm")
    b.linear(b.reshape(y, (2, 30)), 3)
    return lower_training(b.build())


def test_batched_matmul_kernels_are_autograds_and_flops_are_the_counters():
    train = product_graph()
    a = torch.randn(2, 1, 3, 4, requires_grad=True)
    c = torch.randn(2, 5, 4, 2, requires_grad=True)
    dy = torch.randn(2, 5, 3, 2)
    y = torch.matmul(a, c)
    assert torch.allclose(run(train, "mm", a, c), y)
    ga, gc = torch.autograd.grad(y, (a, c), dy)
    assert torch.allclose(run(train, "mm.grad0", dy, c), ga, atol=1e-5)
    assert torch.allclose(run(train, "mm.grad1", dy, a), gc, atol=1e-5)
    forward = counted(lambda: torch.matmul(a, c))
    both = counted(lambda: torch.autograd.grad(torch.matmul(a, c), (a, c), dy))
    assert train.op("mm").flops == forward
    assert sum(2 * train.op(f"mm.grad{i}").macs for i in (0, 1)) == both - forward


def attention_graph(causal: bool, fused: bool):
    b = GraphBuilder("attn", input_shape=(6, 8), batch=2)
    x = b.input()
    q, k, v = (b.transpose(b.reshape(b.linear(x, 8, name=n), (2, 6, 2, 4)), 1, 2)
               for n in "qkv")
    if fused:
        y = b.attention(q, k, v, causal=causal, name="sdpa")
    else:
        s = b.scalar(b.batched_matmul(q, b.transpose(k, -1, -2), name="qk"), 0.5, name="scale")
        if causal:
            s = b.causal_mask(s, name="mask")
        y = b.batched_matmul(b.softmax(s, name="softmax"), v, name="av")
    b.linear(b.reshape(b.transpose(y, 1, 2), (2, 48)), 3)
    return lower_training(b.build())


@pytest.mark.parametrize("causal", [False, True])
def test_fused_attention_kernels_are_autograds(causal):
    train = attention_graph(causal, fused=True)
    q, k, v = (torch.randn(2, 2, 6, 4, requires_grad=True) for _ in range(3))
    dy = torch.randn(2, 2, 6, 4)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    state = KernelState(graph=train)
    out = run(train, "sdpa", q, k, v, state=state)
    assert torch.allclose(out, ref, atol=1e-5)
    dq = torch.autograd.grad(ref, q, dy)[0]
    assert torch.allclose(run(train, "sdpa.grad", dy, q, k, v, out, state=state), dq,
                          atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_flops_are_the_counters_products_plus_the_softmax(causal):
    """The counter counts the products of PyTorch's math attention; the fused op adds the
    softmax between them (5 FLOPs a score), its gradient the softmax's (4 a score)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    train = attention_graph(causal, fused=True)
    q, k, v = (torch.randn(2, 2, 6, 4, requires_grad=True) for _ in range(3))
    scores = 2 * 2 * 6 * 6
    with sdpa_kernel(SDPBackend.MATH):
        forward = counted(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
        both = counted(lambda: torch.autograd.grad(
            F.scaled_dot_product_attention(q, k, v, is_causal=causal), (q, k, v),
            torch.ones(2, 2, 6, 4)))
    assert train.op("sdpa").flops == forward + 5 * scores
    assert train.op("sdpa.grad").flops == both - forward + 4 * scores


def test_naive_attention_kernels_are_autograds():
    train = attention_graph(True, fused=False)
    s = torch.randn(2, 2, 6, 6, requires_grad=True)
    masked = s.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
    p = masked.softmax(-1)
    dy = torch.randn(2, 2, 6, 6)
    assert torch.equal(run(train, "mask", s), masked)
    assert torch.allclose(run(train, "softmax", masked), p)
    dmasked = torch.autograd.grad(p, masked, dy, retain_graph=True)[0]
    assert torch.allclose(run(train, "softmax.grad", dy, p), dmasked, atol=1e-6)
    ds = torch.autograd.grad(masked, s, dmasked)[0]
    assert torch.allclose(run(train, "mask.grad", dmasked), ds)


def embedding_graph():
    b = GraphBuilder("lm", input_shape=(5,), batch=2, token_logits=True)
    x = b.embedding(b.input(tokens=7), 7, 4, name="wte")
    x = b.position_embedding(x, 8, name="wpe")
    x = b.position_embedding(x, 2, constant_row=True, name="types")
    x = b.class_token(x, name="cls")
    b.linear(x, 7, bias=False, name="head", shared_with="wte")
    return lower_training(b.build())


def test_embedding_kernels_are_autograds():
    train = embedding_graph()
    state = KernelState(graph=train)
    ids = torch.randint(0, 7, (2, 5))
    table, = state.params_of(train.op("wte"))
    pos, = state.params_of(train.op("wpe"))
    types, = state.params_of(train.op("types"))
    token, = state.params_of(train.op("cls"))
    leaves = [t.detach().requires_grad_() for t in (table, pos, types, token)]
    x = F.embedding(ids, leaves[0])
    x = x + leaves[1][:5]
    x = x + leaves[2][0]
    y = torch.cat([leaves[3].reshape(1, 1, 4).expand(2, 1, 4), x], 1)
    x0 = F.embedding(ids, table)
    assert torch.equal(run(train, "wte", ids, state=state), x0)
    x1 = run(train, "wpe", x0, state=state)
    x2 = run(train, "types", x1, state=state)
    assert torch.allclose(run(train, "cls", x2, state=state), y)
    dy = torch.randn(2, 6, 4)
    grads = torch.autograd.grad(y, leaves, dy)
    dx = dy[:, 1:]
    assert torch.allclose(run(train, "cls.grad", dy, state=state), grads[3])
    assert torch.allclose(run(train, "types.grad", dx, state=state).reshape(2, 4),
                          grads[2], atol=1e-6)
    assert torch.allclose(run(train, "wpe.grad", dx, state=state).reshape(8, 4), grads[1],
                          atol=1e-6)
    assert torch.allclose(run(train, "wte.grad", dx, ids, state=state), grads[0], atol=1e-6)
    # the output layer reads the embedding's table (shared)
    assert state.params_of(train.op("head"))[0] is table


def test_a_copy_of_a_permuted_view_is_the_permute_made_contiguous():
    b = GraphBuilder("p", input_shape=(3, 4), batch=2)
    t = b.transpose(b.linear(b.input(), 5), 1, 2)
    y = b.reshape(t, (2, 15))
    copy = b.graph.op(b.graph.op(y).inputs[0])
    x = torch.randn(2, 3, 5)
    # replay hands the kernel its source's values reshaped to the view's shape (no strides)
    out = op_kernel(copy, KernelState())(x.reshape(2, 5, 3))
    assert out.is_contiguous() and torch.equal(out, x.transpose(1, 2).contiguous())
