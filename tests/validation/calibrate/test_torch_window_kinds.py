"""The windowed-attention kinds run in PyTorch: each replay kernel computes what autograd
computes for the relative position bias (Swin's and MaxViT's), torch.roll and the spatial
pad of an (N, H, W, C) map, and the bias's table gradient lands where autograd puts it."""
import pytest

torch = pytest.importorskip("torch")

from validation.calibrate.torch_ops import KernelState, op_kernel  # noqa: E402
from workloads.builder import GraphBuilder  # noqa: E402
from workloads.kinds.window_attention import relative_position_index  # noqa: E402
from workloads.training import lower_training  # noqa: E402

F = torch.nn.functional
WINDOW, HEADS = 3, 2
T = WINDOW * WINDOW


def window_graph():
    """(N, 5, 5, 4) padded to 6x6, rolled, then (N, windows, heads, T, T) scores + bias."""
    b = GraphBuilder("win", input_shape=(5, 5, 4), batch=2)
    x = b.linear(b.input(), 4, name="in")
    x = b.op("pad_spatial", [x], (2, 6, 6, 4), pad=(1, 1), name="pad")
    x = b.op("roll", [x], shifts=(-1, -1), dims=(1, 2), name="roll")
    s = b.reshape(b.linear(x, 4 * HEADS * T // 4, name="proj"), (2, 4, HEADS, T, T))
    table = ((2 * WINDOW - 1) ** 2, HEADS)
    y = b.op("attention_bias", [s], params=table[0] * table[1], name="bias",
             queries=T, keys=T, table_shape=table, table_layout="positions_heads",
             index="window")
    b.linear(b.reshape(y, (2, 4 * HEADS * T * T)), 3)
    return lower_training(b.build())


def run(train, name, *tensors, state):
    return op_kernel(train.op(name), state)(*tensors)


def test_relative_position_bias_kernels_are_autograds():
    train = window_graph()
    state = KernelState(graph=train)
    table, = state.params_of(train.op("bias"))
    table = table.detach().requires_grad_(True)
    state.params[train.op("bias").name] = [table]
    scores = torch.randn(2, 4, HEADS, T, T, requires_grad=True)
    index = relative_position_index(WINDOW).reshape(-1)
    ref = scores + table[index].view(T, T, HEADS).permute(2, 0, 1)
    assert torch.allclose(run(train, "bias", scores, state=state), ref)
    dy = torch.randn_like(ref)
    g_scores, g_table = torch.autograd.grad(ref, (scores, table), dy)
    assert torch.allclose(run(train, "bias.grad", dy, state=state), g_table, atol=1e-5)
    assert torch.allclose(state.grads["bias"][0], g_table, atol=1e-5)
    assert torch.equal(g_scores, dy)   # the scores' gradient is dy itself (routed, no op)
    assert train.op("bias").params == table.numel()


def test_the_relative_position_index_is_torchvisions():
    tvm = pytest.importorskip("tests.workloads.torchvision_zoo").models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    from torchvision.models.maxvit import _get_relative_position_index
    assert torch.equal(relative_position_index(WINDOW), _get_relative_position_index(WINDOW,
                                                                                     WINDOW))


def test_roll_and_pad_kernels_are_autograds():
    train = window_graph()
    state = KernelState(graph=train)
    x = torch.randn(2, 5, 5, 4, requires_grad=True)
    padded = F.pad(x, (0, 0, 0, 1, 0, 1))
    assert torch.equal(run(train, "pad", x, state=state), padded)
    rolled = torch.roll(padded, (-1, -1), (1, 2))
    assert torch.equal(run(train, "roll", padded, state=state), rolled)
    dy = torch.randn_like(rolled)
    g_padded, g_x = torch.autograd.grad(rolled, (padded, x), dy)
    assert torch.equal(run(train, "roll.grad", dy, state=state), g_padded)
    assert torch.equal(run(train, "pad.grad", g_padded, state=state), g_x)


def test_window_kinds_cost_their_traffic_and_no_arithmetic():
    train = window_graph()
    pad, roll, bias = (train.op(n) for n in ("pad", "roll", "bias"))
    assert pad.flops == roll.flops == 0
    assert pad.bytes_written == 2 * 6 * 6 * 4 * 4 and roll.bytes_read == roll.bytes_written
    assert bias.flops == bias.out.numel
    assert bias.bytes_read == bias.in_specs[0].nbytes + HEADS * T * T * 4


def cosine_graph(hidden=16):
    """Swin V2's scores: unit q and k, their product, the logit scale, the position bias."""
    b = GraphBuilder("cos", input_shape=(4, T, 8), batch=2)
    x = b.input()
    qk = [b.reshape(b.linear(x, 8, name=n), (2, 4, T, HEADS, 4)) for n in "qk"]
    q, k = (b.permute(t, (0, 1, 3, 2, 4)) for t in qk)
    q = b.op("l2_normalize", [q], name="qn")
    k = b.op("l2_normalize", [k], name="kn")
    s = b.batched_matmul(q, b.transpose(k, -1, -2), name="scores")
    s = b.op("logit_scale", [s], params=HEADS, name="scale", param_shape=(HEADS, 1, 1))
    params = hidden * 2 + hidden + HEADS * hidden
    s = b.op("continuous_position_bias", [s], params=params, name="cpb", tokens=T,
             hidden=hidden, heads=HEADS)
    b.linear(b.reshape(s, (2, 4 * HEADS * T * T)), 3)
    return lower_training(b.build())


def test_cosine_attention_kernels_are_autograds():
    from workloads.kinds.cosine_attention import coordinate_table
    train = cosine_graph()
    state = KernelState(graph=train)
    x = torch.randn(2, 4, HEADS, T, 4, requires_grad=True)
    dy = torch.randn(2, 4, HEADS, T, 4)
    ref = F.normalize(x, dim=-1)
    assert torch.allclose(run(train, "qn", x, state=state), ref, atol=1e-6)
    assert torch.allclose(run(train, "qn.grad", dy, x, state=state),
                          torch.autograd.grad(ref, x, dy)[0], atol=1e-5)

    scale = (torch.randn(HEADS, 1, 1) + 3.0).requires_grad_(True)   # some above log(100)
    state.params["scale"] = [scale]
    s = torch.randn(2, 4, HEADS, T, T, requires_grad=True)
    ref = s * torch.clamp(scale, max=torch.log(torch.tensor(100.0))).exp()
    assert torch.allclose(run(train, "scale", s, state=state), ref)
    dy = torch.randn_like(ref)
    gs, gscale = torch.autograd.grad(ref, (s, scale), dy)
    assert torch.allclose(run(train, "scale.grad", dy, s, state=state), gs, atol=1e-5)
    assert torch.allclose(state.grads["scale"][0], gscale, atol=1e-4)

    w1, b1, w2 = (p.detach().requires_grad_(True)
                  for p in state.params_of(train.op("cpb")))
    state.params["cpb"] = [w1, b1, w2]
    table = F.linear(F.relu(F.linear(coordinate_table(WINDOW), w1, b1)), w2).view(-1, HEADS)
    index = relative_position_index(WINDOW).reshape(-1)
    bias = 16 * torch.sigmoid(table[index].view(T, T, HEADS).permute(2, 0, 1))
    ref = s + bias
    assert torch.allclose(run(train, "cpb", s, state=state), ref, atol=1e-5)
    grads = torch.autograd.grad(ref, (w1, b1, w2), dy)
    run(train, "cpb.grad", dy, state=state)
    for got, want in zip(state.grads["cpb"], grads, strict=True):
        assert torch.allclose(got, want, atol=1e-4)


def test_the_coordinate_table_is_torchvisions():
    tvm = pytest.importorskip("tests.workloads.torchvision_zoo").models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    from workloads.kinds.cosine_attention import coordinate_table
    attn = ShiftedWindowAttentionV2(8, [WINDOW, WINDOW], [0, 0], HEADS)
    assert torch.allclose(coordinate_table(WINDOW), attn.relative_coords_table)
    assert torch.equal(relative_position_index(WINDOW).reshape(-1),
                       attn.relative_position_index)


def test_the_position_bias_mlp_is_counted_as_pytorch_counts_its_linear_layers():
    from torch.utils.flop_counter import FlopCounterMode

    from workloads.kinds.cosine_attention import coordinate_table
    train = cosine_graph(hidden=16)
    w1, b1, w2 = torch.randn(16, 2), torch.randn(16), torch.randn(HEADS, 16)
    with FlopCounterMode(display=False) as counter:
        F.linear(F.relu(F.linear(coordinate_table(WINDOW), w1, b1)), w2)
    assert 2 * train.op("cpb").macs == counter.get_total_flops()
