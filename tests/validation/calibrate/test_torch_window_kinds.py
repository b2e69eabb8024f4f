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
    y = b.op("relative_position_bias", [s], params=table[0] * table[1], name="bias",
             tokens=T, table_shape=table)
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
