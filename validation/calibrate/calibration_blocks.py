"""Blocks of post-2016 networks in the calibration grid: the kinds public zoo models run that
the convolution grids never make, in the shapes those models run them.

- ConvNeXt stages: a depthwise 7x7 convolution, the map permuted to channels-last (a view),
  a LayerNorm over the channels of that strided view, a 4x MLP of linear layers on
  (N, H, W, C), GELU, permuted back, a learned per-channel layer scale, stochastic depth
  (a per-sample dropout mask broadcast over the map) and the residual add; from 32x32 of 32
  channels to 8x8 of 128 (a 2x2 stride-2 convolution between stages);
- ConvNeXt stages as torchvision runs them, on channels-last maps: a 4x4 stride-4 stem and
  LayerNorm2d (permuted, normalised, permuted back), which leaves the map channels-last, so
  every later convolution runs channels-last (hwmodels/kernels.py): each stage's LayerNorm2d
  and 2x2 stride-2 convolution, then blocks of depthwise 7x7 (a 3x3 and a 5x5 in two of
  them), permute, LayerNorm, 4x MLP, GELU, permute back, layer scale, stochastic depth and
  the residual add; 48 to 384 channels on 40x40 to 5x5 maps;
- ShuffleNetV2 units: the input split in two halves (views), one half through 1x1, depthwise
  3x3 and 1x1 convolutions, concatenated with the other and shuffled across 2 groups, and the
  stride-2 unit whose two branches both convolve; 24 to 96 channels per branch;
- EfficientNet MBConv blocks: a 1x1 expansion (4x), a depthwise 3x3 or 5x5, squeeze-and-
  excitation (pool, 1x1 squeeze, SiLU, 1x1 expansion, sigmoid, the gate's product), a 1x1
  projection, stochastic depth and the residual add;
- Llama decoder blocks (one block, Hugging Face's structure: RMSNorm written as pow, mean,
  + eps, rsqrt and a layer scale; rotary products with constant tables; grouped-query
  attention with the key/value heads repeated; a SwiGLU MLP), fused and written-out
  attention, at sequence lengths 128 and 256;
- a GPT-2-structure decoder block with a 65536-token vocabulary: the token embedding's
  gradient over a whole table and an output layer and loss as wide as a real vocabulary's;
- PoolFormer stages: a group norm of one group, a 3x3 stride-1 average pool minus its input
  (the token mixer), a layer scale and the residual add, from 32x32 of 32 channels to 8x8 of
  128;
- an encoder-decoder of maps (FCN's and U-Net's structure): strided 3x3 convolutions down to
  8x8, then back up by transposed convolutions (2x2 stride 2 and 4x4 stride 2) and by nearest
  and bilinear upsampling, each added to the skip of its resolution;
- Caffe-era first stages: 5x5 and 3x3 convolutions, ReLU, cross-channel local response
  normalisation (size 5) and 3x3 stride-2 max pools;
- what hand-written models run: ConvNeXt's channels-first LayerNorm as arithmetic (sub,
  pow, sqrt, div, a learned scale and shift), channels picked by a constant index and
  unfold's patch columns.

Widths, resolutions and vocabularies are none of the validated networks' (the torchvision
models and GPT-2 that validation runs); a replay takes 10-300 ms of CPU time on one core
(with calibration_windows.py's, 27 cases: 23 of them 1.7 s a round, about an eighth of a
round's 13.7 s; the user-idiom block's two 0.03 s of process time, one thread; the
channels-last ConvNeXt's two 0.08 and 0.13 s on a 2-vCPU Xeon).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from workloads.builder import GraphBuilder
from workloads.graph import OpGraph
from workloads.kinds.matmul import mark_channels_last
from workloads.zoo import _base as zoo_base
from workloads.zoo import transformers as zt

from .calibration_transformers import decoder_grid, decoder_name

STOCHASTIC_DEPTH_P = 0.1
# ConvNeXt: (channels, blocks) per stage, 32x32 input after a 2x2 patchify stem
CONVNEXT_STAGES = ((32, 2), (64, 1), (128, 1))
# ConvNeXt on channels-last maps: (channels, depthwise kernel of each block) per stage, 40x40
# after the stem; ConvNeXt's 7x7 in every stage, and a 3x3 and a 5x5 block so that a fit
# sees more than one kernel size
CONVNEXT_NHWC_STAGES = ((48, (7, 3)), (96, (7,)), (192, (7, 5)), (384, (7,)))
CONVNEXT_NHWC_CHANNELS = tuple(c for c, _ in CONVNEXT_NHWC_STAGES)
CONVNEXT_NHWC_INPUT = (3, 160, 160)
# ShuffleNetV2: output channels of the stride-2 unit starting each stage, then one stride-1 unit
SHUFFLE_STAGES = (48, 96, 192)
# MBConv: (output channels, depthwise kernel, stride) per block, expansion 4
MBCONV_BLOCKS = ((24, 3, 1), (24, 3, 1), (40, 5, 2), (40, 5, 1), (80, 3, 2), (80, 3, 1))
MBCONV_EXPAND = 4
POOLFORMER_CHANNELS = (32, 64, 128)
USER_IDIOMS_CHANNELS = 32
# the encoder-decoder: channels at 64, 32, 16, 8 and 4 pixels (down, then up by 4 means)
ENCODER_DECODER_CHANNELS = (16, 24, 32, 48, 64)
# Llama blocks: width 256, 8 query heads of 32, 2 key/value heads, SwiGLU 688 wide
LLAMA_SIZE = {"hidden": 256, "heads": 8, "kv_heads": 2, "intermediate": 688,
              "vocab_size": 3000}
LLAMA_SEQ_LENS = (128, 256)
LLAMA_BATCH = {128: 2, 256: 1}
# (head dim, sequence length, batch) of the decoder with a vocabulary-sized output layer
WIDE_VOCAB, WIDE_VOCAB_CASE = 65536, (32, 64, 2)


def _stochastic_depth(b: GraphBuilder, x: str) -> str:
    """torchvision's stochastic_depth(mode="row"): one draw per sample."""
    n = b.spec(x).shape[0]
    mask = (n,) + (1,) * (len(b.spec(x).shape) - 1)
    return b.op("dropout_broadcast", [x], p=STOCHASTIC_DEPTH_P, mask_shape=mask)


def convnext_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_convnext", input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    for i, (c, blocks) in enumerate(CONVNEXT_STAGES):
        with b.scope(f"stage{i}"):
            x = b.conv2d(x, c, 2, stride=2, bias=True)
            for j in range(blocks):
                with b.scope(f"block{j}"):
                    y = b.conv2d(x, c, 7, padding=3, groups=c, bias=True)
                    y = b.layernorm(b.permute(y, (0, 2, 3, 1)), (c,))
                    y = b.linear(b.activation(b.linear(y, 4 * c), "gelu"), c)
                    y = b.op("layer_scale", [b.permute(y, (0, 3, 1, 2))], params=c,
                             param_shape=(c, 1, 1))
                    x = b.add(x, _stochastic_depth(b, y))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def _layernorm2d(b: GraphBuilder, x: str) -> str:
    """torchvision's LayerNorm2d: the map permuted to (N, H, W, C), normalised over C, permuted
    back (a channels-last map)."""
    c = b.spec(x).shape[1]
    return b.permute(b.layernorm(b.permute(x, (0, 2, 3, 1)), (c,)), (0, 3, 1, 2))


def convnext_nhwc_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_convnext_nhwc", input_shape=CONVNEXT_NHWC_INPUT, batch=batch)
    x = _layernorm2d(b, b.conv2d(b.input(), CONVNEXT_NHWC_CHANNELS[0], 4, stride=4, bias=True))
    for i, (c, kernels) in enumerate(CONVNEXT_NHWC_STAGES):
        with b.scope(f"stage{i}"):
            if i:
                x = b.conv2d(_layernorm2d(b, x), c, 2, stride=2, bias=True)
                mark_channels_last(b.graph, x)
            for j, kernel in enumerate(kernels):
                with b.scope(f"block{j}"):
                    y = b.conv2d(x, c, kernel, padding=kernel // 2, groups=c, bias=True)
                    mark_channels_last(b.graph, y)
                    y = b.layernorm(b.permute(y, (0, 2, 3, 1)), (c,))
                    y = b.linear(b.activation(b.linear(y, 4 * c), "gelu"), c)
                    y = b.op("layer_scale", [b.permute(y, (0, 3, 1, 2))], params=c,
                             param_shape=(c, 1, 1))
                    x = b.add(x, _stochastic_depth(b, y))
    y = b.layernorm(b.flatten(b.adaptive_avgpool(x)), (CONVNEXT_NHWC_CHANNELS[-1],))
    b.linear(y, 10)
    return b.build()


def _shuffle_branch(b: GraphBuilder, x: str, c: int, stride: int) -> str:
    y = b.relu(b.batchnorm(b.conv2d(x, c, 1)))
    y = b.batchnorm(b.conv2d(y, c, 3, stride=stride, padding=1, groups=c))
    return b.relu(b.batchnorm(b.conv2d(y, c, 1)))


def shufflenet_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_shufflenet", input_shape=(3, 64, 64), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), 24, 3, stride=2, padding=1)))
    for i, c in enumerate(SHUFFLE_STAGES):
        half = c // 2
        with b.scope(f"stage{i}.down"):
            cin = b.spec(x).shape[1]
            left = b.batchnorm(b.conv2d(x, cin, 3, stride=2, padding=1, groups=cin))
            left = b.relu(b.batchnorm(b.conv2d(left, half, 1)))
            x = b.channel_shuffle(b.concat([left, _shuffle_branch(b, x, half, 2)]), 2)
        with b.scope(f"stage{i}.unit"):
            x1, x2 = b.slice(x, 0, half), b.slice(x, half, c)        # x.chunk(2, dim=1)
            x = b.channel_shuffle(b.concat([x1, _shuffle_branch(b, x2, half, 1)]), 2)
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def mbconv_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_mbconv", input_shape=(3, 64, 64), batch=batch)
    x = b.activation(b.batchnorm(b.conv2d(b.input(), 24, 3, stride=2, padding=1)), "silu")
    for i, (c, kernel, stride) in enumerate(MBCONV_BLOCKS):
        with b.scope(f"block{i}"):
            cin = b.spec(x).shape[1]
            wide = cin * MBCONV_EXPAND
            y = b.activation(b.batchnorm(b.conv2d(x, wide, 1)), "silu")
            y = b.activation(b.batchnorm(b.conv2d(y, wide, kernel, stride=stride,
                                                  padding=kernel // 2, groups=wide)), "silu")
            gate = b.conv2d(b.adaptive_avgpool(y), max(1, cin // 4), 1, bias=True)
            gate = b.conv2d(b.activation(gate, "silu"), wide, 1, bias=True)
            y = b.mul(y, b.activation(gate, "sigmoid"))
            y = b.batchnorm(b.conv2d(y, c, 1))
            x = b.add(x, _stochastic_depth(b, y)) if stride == 1 and cin == c else y
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def poolformer_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_poolformer", input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    for i, c in enumerate(POOLFORMER_CHANNELS):
        with b.scope(f"stage{i}"):
            x = b.conv2d(x, c, 3, stride=2, padding=1, bias=True)
            y = b.groupnorm(x, 1)
            y = b.op("sub", [b.avgpool(y, 3, 1, 1, count_include_pad=False), y])
            x = b.add(x, b.op("layer_scale", [y], params=c, param_shape=(c, 1, 1)))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def _layernorm_by_hand(b: GraphBuilder, x: str, c: int) -> str:
    """ConvNeXt's channels-first LayerNorm as written: the channel mean of the map permuted
    channels-last (views around the mean), x - mean, its square's mean, sqrt(var + eps),
    the quotient, then the learned scale and shift broadcast over the map."""
    def channel_mean(t: str) -> str:
        return b.permute(b.mean(b.permute(t, (0, 2, 3, 1)), 1, keepdim=True), (0, 3, 1, 2))
    u = channel_mean(x)
    var = channel_mean(b.pow(b.op("sub", [x, u]), 2.0))
    std = b.op("sqrt", [b.scalar(var, shift=1e-6)])
    y = b.op("div", [b.op("sub", [x, u]), std])
    y = b.op("layer_scale", [y], params=c, param_shape=(c, 1, 1))
    return b.op("bias_add", [y], params=c, param_shape=(c, 1, 1))


def user_idioms_grid(batch: int) -> OpGraph:
    """What models written by hand run (workloads/torch_*: imported user models): the
    LayerNorm above, channels picked by a constant index (a gather copy) and the map's 2x2
    patches as columns (unfold) embedded by a linear layer, from 32x32 of 32 channels."""
    b = GraphBuilder("grid_user_idioms", input_shape=(3, 64, 64), batch=batch)
    x = b.conv2d(b.input(), USER_IDIOMS_CHANNELS, 3, stride=2, padding=1, bias=True)
    x = _layernorm_by_hand(b, x, USER_IDIOMS_CHANNELS)
    c = USER_IDIOMS_CHANNELS
    x = b.op("index_select", [x], dim=1, index=tuple(range(c - 1, -1, -1)))
    cols = b.op("unfold", [x], (batch, 4 * c, 16 * 16), kernel=(2, 2), dilation=(1, 1),
                padding=(0, 0), stride=(2, 2))
    y = b.linear(b.permute(cols, (0, 2, 1)), 2 * c)
    b.linear(b.mean(y, 1), 10)
    return b.build()


def _conv_transpose(b: GraphBuilder, x: str, out_channels: int, kernel: int,
                    padding: int) -> str:
    """nn.ConvTranspose2d(stride=2) with a bias: twice the input's resolution."""
    n, cin, h, w = b.spec(x).shape
    out = (n, out_channels, 2 * h, 2 * w)
    attrs = dict(in_channels=cin, out_channels=out_channels, kernel=(kernel, kernel),
                 stride=(2, 2), padding=(padding, padding), output_padding=(0, 0),
                 dilation=(1, 1), groups=1, bias=True, in_shape=(n, cin, h, w), out_shape=out)
    params = cin * out_channels * kernel * kernel + out_channels
    # its attributes name an `out_shape`, which GraphBuilder.op takes for itself: added as the
    # importer adds it (workloads/torch_layers.py)
    return b._add("conv_transpose2d", [x], out, None, attrs, params)


def _upsample(b: GraphBuilder, x: str, mode: str) -> str:
    n, c, h, w = b.spec(x).shape
    attrs: dict = {"mode": mode, "output_size": (2 * h, 2 * w)}
    if mode == "bilinear":
        attrs["align_corners"] = False
    return b.op("upsample", [x], (n, c, 2 * h, 2 * w), **attrs)


def encoder_decoder_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_encoder_decoder", input_shape=(3, 64, 64), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), 16, 3, padding=1)))
    skips = []
    for i, c in enumerate(ENCODER_DECODER_CHANNELS[1:]):
        with b.scope(f"down{i}"):
            skips.append(x)
            x = b.relu(b.batchnorm(b.conv2d(x, c, 3, stride=2, padding=1)))
    ups = (lambda y, c: _conv_transpose(b, y, c, 2, 0),
           lambda y, c: _conv_transpose(b, y, c, 4, 1),
           lambda y, c: b.conv2d(_upsample(b, y, "bilinear"), c, 1),
           lambda y, c: b.conv2d(_upsample(b, y, "nearest"), c, 1))
    for i, (skip, up) in enumerate(zip(reversed(skips), ups, strict=True)):
        with b.scope(f"up{i}"):
            x = b.relu(b.add(up(x, b.spec(skip).shape[1]), skip))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def lrn_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_lrn", input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    for i, (c, kernel) in enumerate(((24, 5), (64, 3))):
        with b.scope(f"stage{i}"):
            x = b.relu(b.conv2d(x, c, kernel, padding=kernel // 2, bias=True))
            x = b.maxpool(zoo_base.lrn(b, x, "norm"), 3, 2, ceil_mode=True)
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def llama_grid(batch: int, seq_len: int, attention: str) -> OpGraph:
    return zt.llama(batch, layers=1, seq_len=seq_len, attention=attention,
                    name=llama_name(seq_len, attention), **LLAMA_SIZE)


def llama_name(seq_len: int, attention: str) -> str:
    return f"grid_llama_{attention}_s{seq_len}"


def wide_vocab_grid(batch: int) -> OpGraph:
    head_dim, seq_len, _ = WIDE_VOCAB_CASE
    return decoder_grid(batch, head_dim, seq_len, "fused", WIDE_VOCAB)


WIDE_VOCAB_NAME = decoder_name(*WIDE_VOCAB_CASE[:2], "fused", WIDE_VOCAB)


BLOCK_NETWORKS: dict[str, Callable[[int], OpGraph]] = {
    "grid_convnext": convnext_grid,
    "grid_convnext_nhwc": convnext_nhwc_grid,
    "grid_shufflenet": shufflenet_grid,
    "grid_mbconv": mbconv_grid,
    **{llama_name(s, form): partial(llama_grid, seq_len=s, attention=form)
       for s in LLAMA_SEQ_LENS for form in zt.ATTENTION_FORMS},
    WIDE_VOCAB_NAME: wide_vocab_grid,
    "grid_poolformer": poolformer_grid,
    "grid_encoder_decoder": encoder_decoder_grid,
    "grid_lrn": lrn_grid,
    "grid_user_idioms": user_idioms_grid,
}
BLOCK_CASES: tuple[tuple[str, int], ...] = (
    ("grid_convnext", 2), ("grid_convnext", 8),
    ("grid_convnext_nhwc", 2), ("grid_convnext_nhwc", 4),
    ("grid_shufflenet", 4), ("grid_shufflenet", 16),
    ("grid_mbconv", 2), ("grid_mbconv", 8),
    *((llama_name(s, form), LLAMA_BATCH[s]) for s in LLAMA_SEQ_LENS
      for form in zt.ATTENTION_FORMS),
    (WIDE_VOCAB_NAME, WIDE_VOCAB_CASE[2]),
    ("grid_poolformer", 4), ("grid_poolformer", 16),
    ("grid_encoder_decoder", 2), ("grid_encoder_decoder", 8),
    ("grid_lrn", 2), ("grid_lrn", 8),
    ("grid_user_idioms", 2), ("grid_user_idioms", 8),
)
