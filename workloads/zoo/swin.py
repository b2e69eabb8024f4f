"""Swin Transformer (Liu et al. 2021) as torchvision builds it, on ImageNet (3x224x224):
swin_t has 28,288,354 parameters and 4.49 G multiply-adds in its linear layers and convs.

Channels last throughout: a 4x4 patch conv of stride 4, permuted to (N, H, W, C) and
normalised; four stages of pre-norm blocks, each attending within 7 x 7 windows (the map cut
into windows by reshape, permute and a copy), with a learned relative position bias read at
the window's relative coordinates; every second block first rolls the map by half a window
and masks the scores of positions that the roll brought together (a masked fill, costed as
the importer costs torchvision's added mask), then rolls it back. Between stages, patch
merging gathers each 2 x 2 cell's channels (a copy), normalises and halves them with a
linear layer. Stochastic depth rises from 0 to 0.2 over the blocks. The op names are those
workloads/torch_import.py gives torchvision's swin_t (features.1.1.attn.qkv,
features.1.1.attn.relative_position_bias, features.2.reduction); torchvision's dropouts of
p = 0 are no ops here, as PyTorch runs none.
"""
from __future__ import annotations

from ..graph import OpGraph, WorkloadError
from ._base import check_classes, start
from .mobile import stochastic_depth

# (embedding width, blocks per stage, heads per stage, final stochastic depth probability)
CONFIGS = {"swin_t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2),
           "swin_s": (96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3),
           "swin_b": (128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5)}
WINDOW = 7
MLP_RATIO = 4
# the shifted windows' mask: -100 where a score pairs positions the roll brought together
SHIFT_MASK_VALUE = -100.0


def _copy_as(b, x: str, dims, shape, name: str) -> str:
    """permute, the copy that makes it contiguous, and the reshape: <name>_t, <name>_copy,
    <name>."""
    x = b.contiguous(b.permute(x, dims, name=f"{name}_t"), name=f"{name}_copy")
    return b.reshape(x, shape, name=name)


def _heads(b, qkv: str, index: int, heads: int, name: str) -> str:
    n, windows, tokens = b.spec(qkv).shape[:3]
    part = b.slice(qkv, index, index + 1, dim=3, name=f"{name}_part")
    part = b.reshape(part, (n, windows, tokens, heads, b.spec(qkv).shape[-1]),
                     name=f"{name}_view")
    return b.permute(part, (0, 1, 3, 2, 4), name=f"{name}_heads")


def _window_attention(b, x: str, heads: int, shift: int) -> str:
    n, h, w, c = b.spec(x).shape
    gh, gw, tokens, hd = h // WINDOW, w // WINDOW, WINDOW * WINDOW, c // heads
    if shift:
        x = b.op("roll", [x], name="roll", shifts=(-shift, -shift), dims=(1, 2))
    x = b.reshape(x, (n, gh, WINDOW, gw, WINDOW, c), name="windows_view")
    x = _copy_as(b, x, (0, 1, 3, 2, 4, 5), (n, gh * gw, tokens, c), "windows")
    qkv = b.linear(x, 3 * c, name="qkv")
    qkv = b.reshape(qkv, (n, gh * gw, tokens, 3, heads, hd), name="qkv_view")
    q, k, v = (_heads(b, qkv, i, heads, part) for i, part in enumerate("qkv"))
    q = b.scalar(q, scale=hd ** -0.5, name="scale")
    scores = b.batched_matmul(q, b.permute(k, (0, 1, 2, 4, 3), name="k_t"), name="scores")
    positions = (2 * WINDOW - 1) ** 2
    scores = b.op("attention_bias", [scores], params=positions * heads,
                  name="relative_position_bias", queries=tokens, keys=tokens,
                  table_shape=(positions, heads), table_layout="positions_heads",
                  index="window")
    if shift:
        scores = b.op("masked_fill", [scores], name="mask", mask="causal",
                      value=SHIFT_MASK_VALUE)
    y = b.batched_matmul(b.softmax(scores, dim=4, name="softmax"), v, name="context")
    y = _copy_as(b, y, (0, 1, 3, 2, 4), (n, gh * gw, tokens, c), "merge_heads")
    y = b.linear(y, c, name="proj")
    y = b.reshape(y, (n, gh, gw, WINDOW, WINDOW, c), name="unwindow_view")
    y = _copy_as(b, y, (0, 1, 3, 2, 4, 5), (n, h, w, c), "unwindow")
    if shift:
        y = b.op("roll", [y], name="unroll", shifts=(shift, shift), dims=(1, 2))
    return y


def _block(b, x: str, heads: int, shift: int, p: float) -> str:
    c = b.spec(x).shape[-1]
    y = b.layernorm(x, (c,), name="norm1")
    with b.scope("attn"):
        y = _window_attention(b, y, heads, shift)
    x = b.add(x, stochastic_depth(b, y, p, "stochastic_depth"), name="add")
    y = b.activation(b.linear(b.layernorm(x, (c,), name="norm2"), MLP_RATIO * c,
                              name="mlp.0"), "gelu", name="mlp.1")
    y = stochastic_depth(b, b.linear(y, c, name="mlp.3"), p, "stochastic_depth",
                         "stochastic_depth2")
    return b.add(x, y, name="add2")


def _patch_merging(b, x: str) -> str:
    """torchvision's PatchMerging: each 2 x 2 cell's four positions side by side along the
    channels (x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]), then layer norm
    and a linear layer from 4C to 2C without bias."""
    n, h, w, c = b.spec(x).shape
    x = b.reshape(x, (n, h // 2, 2, w // 2, 2, c), name="cells")
    x = b.contiguous(b.permute(x, (0, 1, 3, 4, 2, 5), name="cells_t"), name="merged_copy")
    x = b.reshape(x, (n, h // 2, w // 2, 4 * c), name="merged")
    return b.linear(b.layernorm(x, (4 * c,), name="norm"), 2 * c, bias=False,
                    name="reduction")


def _swin(name: str, batch: int, num_classes: int, input_size: int | None,
          dtype_bytes: int) -> OpGraph:
    check_classes(num_classes)
    width, depths, heads, last_p = CONFIGS[name]
    b = start(name, (3, 224, 224), batch, input_size, dtype_bytes)
    size = b.graph.meta["input_shape"][1]
    maps = [size // 4 // 2 ** stage for stage in range(len(depths))]
    if size % (4 * 2 ** (len(depths) - 1)) or any(m % WINDOW for m in maps):
        raise WorkloadError(f"{name}: input_size {size} does not cut into whole {WINDOW} x "
                            f"{WINDOW} windows at every stage (maps {maps}); torchvision pads "
                            f"such maps, which this builder does not model: use 224, 448, ...")
    x = b.conv2d(b.input(), width, 4, stride=4, bias=True, name="features.0.0")
    x = b.layernorm(b.permute(x, (0, 2, 3, 1), name="features.0.1.permute"), (width,),
                    name="features.0.2")
    total, block_id = sum(depths), 0
    for stage, (depth, stage_heads) in enumerate(zip(depths, heads, strict=True)):
        if stage > 0:
            with b.scope(f"features.{2 * stage}"):
                x = _patch_merging(b, x)
        size = b.spec(x).shape[1]
        for i in range(depth):
            # torchvision shifts no window where one window covers the whole map
            shift = WINDOW // 2 if i % 2 and size > WINDOW else 0
            with b.scope(f"features.{2 * stage + 1}.{i}"):
                x = _block(b, x, stage_heads, shift, last_p * block_id / (total - 1.0))
            block_id += 1
    x = b.layernorm(x, (b.spec(x).shape[-1],), name="norm")
    x = b.adaptive_avgpool(b.permute(x, (0, 3, 1, 2), name="permute.permute"), (1, 1),
                           name="avgpool")
    b.linear(b.flatten(x, name="flatten"), num_classes, name="head")
    return b.build()


def _swin_of(name: str):
    def build(batch: int = 1, num_classes: int = 1000, input_size: int | None = None,
              dtype_bytes: int = 4) -> OpGraph:
        return _swin(name, batch, num_classes, input_size, dtype_bytes)
    return build


swin_t, swin_s, swin_b = _swin_of("swin_t"), _swin_of("swin_s"), _swin_of("swin_b")
