"""GraphBuilder: write a network layer by layer, with shape inference.

Each method takes the names of the tensors it reads (what earlier calls returned) and returns
the name of the tensor it makes. Names follow the scope, like a PyTorch module path:

    b = GraphBuilder("tiny", input_shape=(3, 32, 32), batch=8)
    x = b.input()
    with b.scope("stem"):
        x = b.relu(b.batchnorm(b.conv2d(x, 16, kernel=3, padding=1)))
    g = b.build()
"""
from __future__ import annotations

import contextlib
import math
from collections import Counter
from typing import Iterator, Sequence

from .builder_sequence import SequenceOps
from .graph import ACTIVATIONS, Op, OpGraph, ShapeError, TensorSpec, WorkloadError
from .kinds import is_kind, kind_of


def _pair(v: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    out = tuple(int(x) for x in v)
    if len(out) != 2:
        raise WorkloadError(f"{what} must be an int or a pair, got {v!r}")
    return out[0], out[1]


def _broadcasts(small: Sequence[int], full: Sequence[int]) -> bool:
    """Whether `small` broadcasts to `full`: same rank and batch, 1 or equal elsewhere."""
    return (len(small) == len(full) and small[0] == full[0]
            and all(s in (1, f) for s, f in zip(small[1:], full[1:], strict=True)))


def _conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _ceil_pool_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output size of a pool with ceil_mode, as PyTorch computes it: the division rounds up,
    but a last window that would start past the input and its left padding is dropped."""
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


class GraphBuilder(SequenceOps):
    def __init__(self, name: str, input_shape: Sequence[int], batch: int = 1,
                 dtype_bytes: int = 4, **meta) -> None:
        if not isinstance(batch, int) or batch < 1:
            raise WorkloadError(f"batch size must be an integer >= 1, got {batch!r}")
        self.graph = OpGraph(name, {"batch": batch, "input_shape": tuple(input_shape), **meta})
        self.batch = batch
        self.dtype_bytes = dtype_bytes
        self._scopes: list[str] = []
        self._counts: Counter[str] = Counter()
        self._layer = 0

    # -- naming --------------------------------------------------------------------------
    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        self._scopes.append(str(name))
        try:
            yield
        finally:
            self._scopes.pop()

    def _name(self, kind: str, name: str | None) -> str:
        prefix = ".".join(self._scopes)
        if name is None:
            key = f"{prefix}/{kind}"
            self._counts[key] += 1
            n = self._counts[key]
            name = kind if n == 1 else f"{kind}{n}"
        full = f"{prefix}.{name}" if prefix else name
        if full in self.graph:
            raise WorkloadError(f"duplicate op name {full!r}")
        return full

    def spec(self, tensor: str) -> TensorSpec:
        return self.graph.op(tensor).out

    def _add(self, kind: str, inputs: Sequence[str], out_shape: Sequence[int], name: str | None,
             attrs: dict | None = None, params: int = 0, layer: bool = False) -> str:
        full = self._name(kind, name)
        if layer:
            self._layer += 1
        op = Op(name=full, kind=kind, inputs=tuple(inputs),
                in_specs=tuple(self.spec(i) for i in inputs),
                out=TensorSpec(tuple(int(d) for d in out_shape), self.dtype_bytes),
                attrs=dict(attrs or {}), params=params,
                layer=self._layer if layer else None)
        self.graph.add(op)
        return full

    # -- layers --------------------------------------------------------------------------
    def input(self, name: str = "input", tokens: int | None = None,
              shape: Sequence[int] | None = None, dtype_bytes: int | None = None) -> str:
        """The network's input, (batch, *input_shape); tokens=V: integer token ids below V
        (int64, what an embedding reads) instead of values. A further input of a network
        that takes several gives its own sample `shape` (and element width)."""
        sample = self.graph.meta["input_shape"] if shape is None else tuple(shape)
        shape = (self.batch, *sample)
        full = self._name("input", name)
        if tokens is None:
            self.graph.add(Op(full, "input", (), (),
                              TensorSpec(shape, dtype_bytes or self.dtype_bytes)))
        elif not isinstance(tokens, int) or tokens < 1:
            raise WorkloadError(f"input tokens must be an integer >= 1, got {tokens!r}")
        else:
            self.graph.add(Op(full, "input", (), (), TensorSpec(shape, 8, integer=True),
                              dict(tokens=tokens)))
        return full

    def conv2d(self, x: str, out_channels: int, kernel: int | Sequence[int], stride=1, padding=0,
               dilation=1, groups: int = 1, bias: bool = False, name: str | None = None) -> str:
        n, cin, h, w = self._nchw(x, "conv2d")
        kh, kw = _pair(kernel, "kernel")
        sh, sw = _pair(stride, "stride")
        ph, pw = _pair(padding, "padding")
        dh, dw = _pair(dilation, "dilation")
        if groups < 1 or cin % groups or out_channels % groups:
            raise ShapeError(f"conv2d after {x!r}: groups={groups} must divide in_channels={cin} "
                             f"and out_channels={out_channels}")
        ho, wo = _conv_out(h, kh, sh, ph, dh), _conv_out(w, kw, sw, pw, dw)
        if ho < 1 or wo < 1:
            raise ShapeError(f"conv2d after {x!r}: kernel {kh}x{kw} (dilation {dh}, padding {ph}) "
                             f"does not fit input {h}x{w}")
        out_shape = (n, out_channels, ho, wo)
        params = out_channels * (cin // groups) * kh * kw + (out_channels if bias else 0)
        attrs = dict(in_channels=cin, out_channels=out_channels, kernel=(kh, kw), stride=(sh, sw),
                     padding=(ph, pw), dilation=(dh, dw), groups=groups, bias=bias,
                     in_shape=(n, cin, h, w), out_shape=out_shape)
        return self._add("conv2d", [x], out_shape, name, attrs, params, layer=True)

    def linear(self, x: str, out_features: int, bias: bool = True, name: str | None = None,
               shared_with: str | None = None) -> str:
        """x @ W^T (+ b) over the last dimension. shared_with: the op whose weight this layer
        uses (GPT-2's output layer reads its token embedding), counted once."""
        shape = self.spec(x).shape
        if len(shape) < 2:
            raise ShapeError(f"linear after {x!r}: input {shape} needs a batch and a feature dim")
        in_features = shape[-1]
        rows = math.prod(shape[:-1])
        params = in_features * out_features + (out_features if bias else 0)
        attrs = dict(in_features=in_features, out_features=out_features, bias=bias,
                     batch_rows=rows)
        if shared_with is not None:
            self._check_shareable(shared_with, (out_features, in_features), bias)
            params = 0
        out = self._add("linear", [x], (*shape[:-1], out_features), name, attrs, params,
                        layer=True)
        if shared_with is not None:
            self.graph.meta.setdefault("shared_params", {})[out] = shared_with
        return out

    def batchnorm(self, x: str, name: str | None = None, affine: bool = True) -> str:
        """Batch norm over (N, C, H, W) or (N, features); affine=False: no scale and shift."""
        shape = self.spec(x).shape
        c = shape[1]
        attrs = dict(num_features=c) if affine else dict(num_features=c, affine=False)
        return self._add("batchnorm", [x], shape, name, attrs, params=2 * c if affine else 0)

    def layernorm(self, x: str, normalized_shape: Sequence[int], affine: bool = True,
                  name: str | None = None, bias: bool = True) -> str:
        """Normalise each sample over its trailing dimensions `normalized_shape` (the features
        of (N, F), or (C, H, W) of an image), then a scale and shift per value if affine (the
        scale alone where bias is False: nn.LayerNorm(bias=False))."""
        shape, dims = self.spec(x).shape, tuple(int(d) for d in normalized_shape)
        if not dims or len(dims) >= len(shape) or tuple(shape[-len(dims):]) != dims:
            raise ShapeError(f"layernorm after {x!r}: normalized_shape {dims} is not the "
                             f"trailing dimensions of {shape} (batch excluded)")
        attrs: dict = dict(normalized_shape=dims, affine=affine)
        if affine and not bias:
            attrs["bias"] = False
        tensors = (2 if bias else 1) if affine else 0
        return self._add("layernorm", [x], shape, name, attrs,
                         params=tensors * math.prod(dims))

    def groupnorm(self, x: str, groups: int, affine: bool = True,
                  name: str | None = None, bias: bool = True) -> str:
        """Normalise each sample's channels in `groups` groups (over the group's channels and
        all pixels), then a scale and shift per channel if affine (the scale alone where bias
        is False: F.group_norm with a weight and no bias)."""
        shape = self.spec(x).shape
        c = shape[1]
        if len(shape) < 3 or groups < 1 or c % groups:
            raise ShapeError(f"groupnorm after {x!r}: {groups} groups must divide the channels "
                             f"of an (N, C, ...) tensor, got {shape}")
        attrs: dict = dict(num_groups=groups, num_channels=c, affine=affine)
        if affine and not bias:
            attrs["bias"] = False
        return self._add("groupnorm", [x], shape, name, attrs,
                         params=((2 if bias else 1) * c) if affine else 0)

    def relu(self, x: str, name: str | None = None, inplace: bool = True) -> str:
        """ReLU. inplace: written to overwrite its input, as torchvision's nn.ReLU(inplace=True)
        is; listed in graph.meta["inplace_ops"] (the lowering decides where autograd lets it)."""
        out = self._add("relu", [x], self.spec(x).shape, name)
        if inplace:
            self.graph.meta.setdefault("inplace_ops", []).append(out)
        return out

    def activation(self, x: str, kind: str, name: str | None = None, **attrs) -> str:
        """A pointwise activation other than ReLU (graph.ACTIVATIONS: tanh, sigmoid, gelu,
        silu, hardswish, hardtanh (ReLU6 is hardtanh from 0 to 6), leaky_relu, elu,
        hardsigmoid, mish, selu, softplus), with its attributes (negative_slope, alpha,
        min_val/max_val, approximate, beta/threshold)."""
        if kind not in ACTIVATIONS:
            raise WorkloadError(f"activation after {x!r}: unknown kind {kind!r}; known: "
                                f"relu, {', '.join(sorted(ACTIVATIONS))}")
        unknown = set(attrs) - set(ACTIVATIONS[kind])
        if unknown:
            raise WorkloadError(f"{kind} after {x!r}: unknown attributes "
                                f"{', '.join(sorted(unknown))}; it takes "
                                f"{', '.join(ACTIVATIONS[kind]) or 'none'}")
        return self._add(kind, [x], self.spec(x).shape, name, {**ACTIVATIONS[kind], **attrs})

    def add(self, a: str, b: str, name: str | None = None) -> str:
        sa, sb = self.spec(a).shape, self.spec(b).shape
        if sa != sb:
            raise ShapeError(f"add of {a!r} {sa} and {b!r} {sb}: shapes differ")
        return self._add("add", [a, b], sa, name)

    def _pool(self, kind: str, x: str, kernel, stride, padding, name, ceil_mode=False,
              dilation=1, **extra) -> str:
        n, c, h, w = self._nchw(x, kind)
        kh, kw = _pair(kernel, "kernel")
        sh, sw = _pair(kernel if stride is None else stride, "stride")
        ph, pw = _pair(padding, "padding")
        dh, dw = _pair(dilation, "dilation")
        if min(kh, kw, sh, sw, dh, dw) < 1 or ph < 0 or pw < 0:
            raise ShapeError(f"{kind} after {x!r}: kernel {kh}x{kw}, stride {sh}x{sw} and "
                             f"dilation {dh}x{dw} must be >= 1, padding {ph}x{pw} >= 0")
        if ceil_mode:   # the window as dilated
            ho = _ceil_pool_out(h, dh * (kh - 1) + 1, sh, ph)
            wo = _ceil_pool_out(w, dw * (kw - 1) + 1, sw, pw)
        else:
            ho, wo = _conv_out(h, kh, sh, ph, dh), _conv_out(w, kw, sw, pw, dw)
        if ho < 1 or wo < 1:
            raise ShapeError(f"{kind} after {x!r}: kernel {kh}x{kw} does not fit input {h}x{w}")
        attrs: dict[str, object] = dict(kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw))
        # set only where not PyTorch's default: measured profiles key a pool by its attributes
        if ceil_mode:
            attrs["ceil_mode"] = True
        if (dh, dw) != (1, 1):
            attrs["dilation"] = (dh, dw)
        attrs.update(extra)
        return self._add(kind, [x], (n, c, ho, wo), name, attrs)

    def maxpool(self, x: str, kernel, stride=None, padding=0, name: str | None = None,
                ceil_mode: bool = False, dilation=1) -> str:
        """Max pool; ceil_mode=True rounds the output size up, as nn.MaxPool2d(ceil_mode=True)
        (GoogLeNet's pools); dilation spreads the window."""
        return self._pool("maxpool", x, kernel, stride, padding, name, ceil_mode, dilation)

    def avgpool(self, x: str, kernel, stride=None, padding=0, name: str | None = None,
                ceil_mode: bool = False, count_include_pad: bool = True) -> str:
        """Average pool; count_include_pad=False divides by the window's values inside the
        input rather than by the kernel's size."""
        extra = {} if count_include_pad else {"count_include_pad": False}
        return self._pool("avgpool", x, kernel, stride, padding, name, ceil_mode, **extra)

    def adaptive_avgpool(self, x: str, output_size=(1, 1), name: str | None = None) -> str:
        """PyTorch's adaptive average pool: output cell i averages input rows
        floor(i*H/oh) to ceil((i+1)*H/oh); an output larger than the input repeats values."""
        n, c, h, w = self._nchw(x, "adaptive_avgpool")
        oh, ow = _pair(output_size, "output_size")
        if oh < 1 or ow < 1:
            raise ShapeError(f"adaptive_avgpool after {x!r}: output {oh}x{ow} must be >= 1")
        return self._add("adaptive_avgpool", [x], (n, c, oh, ow), name,
                         dict(output_size=(oh, ow)))

    def flatten(self, x: str, name: str | None = None) -> str:
        x = self.contiguous(x)   # a permuted view is copied first, as PyTorch's reshape does
        shape = self.spec(x).shape
        return self._add("flatten", [x], (shape[0], math.prod(shape[1:])), name)

    def reshape(self, x: str, shape: Sequence[int], name: str | None = None) -> str:
        """The same values seen with another shape of the same batch (a view, no copy):
        (N, C) to (N, C, 1, 1) before a channel-wise product, for example. A permuted view
        that is not contiguous is copied first, as PyTorch's reshape does."""
        x = self.contiguous(x)
        in_shape, shape = self.spec(x).shape, tuple(int(d) for d in shape)
        if not shape or shape[0] != in_shape[0] or math.prod(shape) != math.prod(in_shape):
            raise ShapeError(f"reshape of {x!r} {in_shape} to {shape}: a reshape keeps the "
                             "batch and the number of values")
        return self._add("reshape", [x], shape, name)

    def mul(self, a: str, b: str, name: str | None = None) -> str:
        """The elementwise product. One factor may broadcast over dimensions where it has 1
        (a squeeze-and-excitation gate of (N, C, 1, 1) times an (N, C, H, W) map); it is
        taken as the second input, the full-size one as the first. Both may broadcast, each
        where the other is larger (FocalNet's (N, C, 1, 1) context times its (N, 1, H, W)
        gate: an (N, C, H, W) product, one kernel, as PyTorch's)."""
        sa, sb = self.spec(a).shape, self.spec(b).shape
        if _broadcasts(sa, sb) and sa != sb:
            a, b, sa, sb = b, a, sb, sa
        out = sa
        if not _broadcasts(sb, sa):
            out = tuple(max(x, y) for x, y in zip(sa, sb, strict=False))
            if not (_broadcasts(sa, out) and _broadcasts(sb, out)):
                raise ShapeError(f"mul of {a!r} {sa} and {b!r} {sb}: each factor must have "
                                 "the other's size, or 1, in each dimension (batch excepted)")
        return self._add("mul", [a, b], out, name, dict(broadcast=sa != sb))

    def scalar(self, x: str, scale: float = 1.0, shift: float = 0.0,
                name: str | None = None) -> str:
        """Arithmetic with a constant, one kernel as PyTorch runs it: x + shift (scale 1),
        x * scale (shift 0) or shift - x (scale -1); x - c and x / c are x + (-c), x * (1/c)."""
        scale, shift = float(scale), float(shift)
        if not (scale == 1.0 or shift == 0.0 or scale == -1.0):
            raise WorkloadError(f"scalar after {x!r}: scale {scale} and shift {shift} are two "
                                "kernels; make two ops")
        return self._add("scalar", [x], self.spec(x).shape, name,
                         dict(scale=scale, shift=shift))

    def concat(self, xs: Sequence[str], dim: int = 1, name: str | None = None) -> str:
        shapes = [self.spec(x).shape for x in xs]
        base = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != len(base) or any(
                    a != b for i, (a, b) in enumerate(zip(s, base, strict=True)) if i != dim):
                raise ShapeError(f"concat of {list(xs)}: shapes {shapes} differ outside dim {dim}")
        base[dim] = sum(s[dim] for s in shapes)
        return self._add("concat", list(xs), base, name, dict(dim=dim))

    def channel_shuffle(self, x: str, groups: int, name: str | None = None) -> str:
        shape = self.spec(x).shape
        if groups < 1 or shape[1] % groups:
            raise ShapeError(f"channel_shuffle after {x!r}: groups={groups} must divide "
                             f"channels={shape[1]}")
        return self._add("channel_shuffle", [x], shape, name, dict(groups=groups))

    def pad_channels(self, x: str, pad: Sequence[int], stride=1, name: str | None = None) -> str:
        """Keep every `stride`-th row and column, then add `pad` = (before, after) zero channels:
        the parameter-free shortcut of the CIFAR ResNets (He et al. 2016, option A), which is
        `F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, before, after))` in PyTorch."""
        n, c, h, w = self._nchw(x, "pad_channels")
        before, after = _pair(pad, "pad")
        sh, sw = _pair(stride, "stride")
        if before < 0 or after < 0 or sh < 1 or sw < 1:
            raise ShapeError(f"pad_channels after {x!r}: pad {pad!r} must be >= 0 and "
                             f"stride {stride!r} >= 1")
        out_shape = (n, c + before + after, (h - 1) // sh + 1, (w - 1) // sw + 1)
        return self._add("pad_channels", [x], out_shape, name,
                         dict(pad=(before, after), stride=(sh, sw)))

    def dropout(self, x: str, p: float = 0.5, name: str | None = None) -> str:
        if not 0.0 <= p < 1.0:
            raise WorkloadError(f"dropout p must be in [0, 1), got {p}")
        return self._add("dropout", [x], self.spec(x).shape, name, dict(p=p))

    def slice(self, x: str, start: int, stop: int, dim: int = 1, name: str | None = None) -> str:
        """A contiguous range [start, stop) of one dimension, as a view (no copy)."""
        shape = list(self.spec(x).shape)
        if not 0 <= dim < len(shape) or not 0 <= start < stop <= shape[dim]:
            raise ShapeError(f"slice [{start}:{stop}] of dim {dim} after {x!r} does not fit "
                             f"shape {tuple(shape)}")
        shape[dim] = stop - start
        return self._add("slice", [x], shape, name, dict(dim=dim, start=start, stop=stop))

    def softmax_xent(self, logits: str, name: str | None = "loss") -> str:
        """Cross-entropy of (batch, classes) logits, or of (batch, ..., classes) ones over
        every position (a language model's tokens, as F.cross_entropy(logits.view(-1, V)))."""
        shape = self.spec(logits).shape
        if len(shape) < 2:
            raise ShapeError(f"softmax_xent needs (batch, ..., classes) logits, got {shape}")
        return self._add("softmax_xent", [logits], (1,), name, dict(classes=shape[-1]))

    def op(self, kind: str, inputs: Sequence[str], out_shape: Sequence[int] | None = None,
           params: int = 0, name: str | None = None, **attrs) -> str:
        """An op of any declared kind (workloads/kinds/), for kinds without a method of their
        own: its inputs, its output shape (by default the first input's), its parameter count
        and attributes. No shape inference: the caller says what the kind makes."""
        if not is_kind(kind):
            raise WorkloadError(f"op of unknown kind {kind!r}; declare it first "
                                "(workloads.kinds.register, see docs/op-kinds.md)")
        if kind_of(kind).phase != "forward":
            raise WorkloadError(f"{kind!r} is a {kind_of(kind).phase} kind; a network is built "
                                "of forward kinds (lower_training makes the others)")
        if not inputs:
            raise WorkloadError(f"op of kind {kind!r} needs at least one input")
        shape = self.spec(inputs[0]).shape if out_shape is None else out_shape
        return self._add(kind, inputs, shape, name, attrs, params)

    def build(self) -> OpGraph:
        self.graph.validate()
        return self.graph

    def _nchw(self, x: str, what: str) -> tuple[int, int, int, int]:
        shape = self.spec(x).shape
        if len(shape) != 4:
            raise ShapeError(f"{what} after {x!r}: needs an NCHW input, got shape {shape}")
        n, c, h, w = shape
        return n, c, h, w
