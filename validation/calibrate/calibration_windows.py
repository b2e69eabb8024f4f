"""Windowed-attention blocks of the calibration grid (Swin's structure, as workloads/
torch_windows.py imports torchvision's): on an (N, H, W, C) map whose sides are not whole
windows, a layer norm, the zero padding to whole windows, the cyclic shift (torch.roll) in
the shifted blocks, the windows gathered (a permuted copy), q, k and v from one linear layer,
the scores of each window's tokens, a learned bias on them and the softmax, the context, the
projection, the windows scattered back, the shift undone, the padding cut off, and the
residual add, then a 4x GELU MLP.

Two forms of the scores: Swin's (q scaled, a relative position table gathered to (heads, T, T))
and Swin V2's cosine attention (q and k normalised to unit length, a learned per-head logit
scale, the continuous position bias: an MLP of the relative coordinates). Two stages: 30x30
of 64 channels (4 heads) and 15x15 of 128 (8 heads), in 8x8 windows (Swin's own 56/28/14/7
maps in 7x7 windows are not used), one plain and one shifted block each.

And attention over a whole map with a learned bias per head and token offset
(EfficientFormer's and LeViT's attention_biases read at a constant index): a 12x12 map of
128 channels as 144 tokens, 4 heads of 32, after a 1x1 convolution stage.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from workloads.builder import GraphBuilder
from workloads.graph import OpGraph

WINDOW = 8
# (map side, channels, heads) per stage
WINDOW_STAGES = ((30, 64, 4), (15, 128, 8))
# the whole-map attention: (map side, channels, heads)
MAP_ATTENTION = (12, 128, 4)
CPB_HIDDEN = 128             # the continuous position bias's hidden width (Swin V2: 512)


def _windowed(b: GraphBuilder, x: str, heads: int, shift: int, cosine: bool) -> str:
    n, h, w, c = b.spec(x).shape
    pad = (-h % WINDOW, -w % WINDOW)
    ph, pw = h + pad[0], w + pad[1]
    y = b.op("pad_spatial", [x], (n, ph, pw, c), pad=pad) if any(pad) else x
    if shift:
        y = b.op("roll", [y], shifts=(-shift, -shift), dims=(1, 2))
    nh, nw, tokens, d = ph // WINDOW, pw // WINDOW, WINDOW * WINDOW, c // heads
    y = b.permute(b.reshape(y, (n, nh, WINDOW, nw, WINDOW, c)), (0, 1, 3, 2, 4, 5))
    y = b.reshape(b.contiguous(y), (n, nh * nw, tokens, c))
    qkv = b.reshape(b.linear(y, 3 * c), (n, nh * nw, tokens, 3, heads, d))
    q, k, v = (b.permute(b.reshape(b.slice(qkv, i, i + 1, dim=3),
                                   (n, nh * nw, tokens, heads, d)), (0, 1, 3, 2, 4))
               for i in range(3))
    if cosine:
        q, k = (b.op("l2_normalize", [t]) for t in (q, k))
    else:
        q = b.scalar(q, scale=d ** -0.5)
    scores = b.batched_matmul(q, b.permute(k, (0, 1, 2, 4, 3)))
    if cosine:
        scores = b.op("logit_scale", [scores], params=heads, param_shape=(heads, 1, 1))
        scores = b.op("continuous_position_bias", [scores], tokens=tokens, hidden=CPB_HIDDEN,
                      heads=heads, params=CPB_HIDDEN * 2 + CPB_HIDDEN + heads * CPB_HIDDEN)
    else:
        table = ((2 * WINDOW - 1) ** 2, heads)
        scores = b.op("attention_bias", [scores], queries=tokens, keys=tokens,
                      table_shape=table, table_layout="positions_heads", index="window",
                      params=table[0] * table[1])
    y = b.batched_matmul(b.softmax(scores, -1), v)
    y = b.reshape(b.contiguous(b.permute(y, (0, 1, 3, 2, 4))), (n, nh * nw, tokens, c))
    y = b.reshape(b.linear(y, c), (n, nh, nw, WINDOW, WINDOW, c))
    y = b.reshape(b.contiguous(b.permute(y, (0, 1, 3, 2, 4, 5))), (n, ph, pw, c))
    if shift:
        y = b.op("roll", [y], shifts=(shift, shift), dims=(1, 2))
    if any(pad):
        y = b.slice(b.slice(y, 0, h, dim=1), 0, w, dim=2)
    return y


def window_grid(batch: int, cosine: bool) -> OpGraph:
    name = window_name(cosine)
    first_side = WINDOW_STAGES[0][0]
    b = GraphBuilder(name, input_shape=(3, 2 * first_side, 2 * first_side), batch=batch)
    x = b.input()
    for i, (_, c, heads) in enumerate(WINDOW_STAGES):
        with b.scope(f"stage{i}"):
            x = b.conv2d(x, c, 2, stride=2, bias=True)
            x = b.permute(x, (0, 2, 3, 1))
            for j, shift in enumerate((0, WINDOW // 2)):
                with b.scope(f"block{j}"):
                    x = b.add(x, _windowed(b, b.layernorm(x, (c,)), heads, shift, cosine))
                    h = b.activation(b.linear(b.layernorm(x, (c,)), 4 * c), "gelu")
                    x = b.add(x, b.linear(h, c))
            x = b.contiguous(b.permute(x, (0, 3, 1, 2)))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def map_attention_grid(batch: int) -> OpGraph:
    side, c, heads = MAP_ATTENTION
    d = c // heads
    b = GraphBuilder("grid_map_attention", input_shape=(3, 4 * side, 4 * side), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), c, 4, stride=4)))
    tokens = side * side
    x = b.transpose(b.reshape(x, (batch, c, tokens)), 1, 2)            # flatten(2).transpose
    h = b.layernorm(x, (c,))
    qkv = b.reshape(b.linear(h, 3 * c), (batch, tokens, 3, heads, d))
    q, k, v = (b.permute(b.reshape(b.slice(qkv, i, i + 1, dim=2), (batch, tokens, heads, d)),
                         (0, 2, 1, 3)) for i in range(3))
    scores = b.scalar(b.batched_matmul(q, b.permute(k, (0, 1, 3, 2))), scale=d ** -0.5)
    scores = b.op("attention_bias", [scores], queries=tokens, keys=tokens,
                  table_shape=(heads, tokens), params=heads * tokens)
    y = b.batched_matmul(b.softmax(scores, -1), v)
    y = b.reshape(b.contiguous(b.transpose(y, 1, 2)), (batch, tokens, c))
    x = b.add(x, b.linear(y, c))
    b.linear(b.mean(b.transpose(x, 1, 2), 1), 10)          # x.mean(1): over the tokens
    return b.build()


def window_name(cosine: bool) -> str:
    return "grid_window_cosine" if cosine else "grid_window"


WINDOW_NETWORKS: dict[str, Callable[[int], OpGraph]] = {
    **{window_name(cos): partial(window_grid, cosine=cos) for cos in (False, True)},
    "grid_map_attention": map_attention_grid,
}
WINDOW_CASES: tuple[tuple[str, int], ...] = (
    *((window_name(cos), batch) for cos in (False, True) for batch in (1, 4)),
    ("grid_map_attention", 2), ("grid_map_attention", 8))
