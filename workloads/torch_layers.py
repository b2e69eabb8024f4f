"""How torch_import lowers layers written as functions on parameters read directly
(F.linear(x, self.weight), F.layer_norm(x, shape, self.weight, self.bias), ...), the dropouts
with a broadcast mask (Dropout1d/2d/3d, stochastic depth) and the layers expressed through
other kinds (Conv1d as a conv2d over a one-pixel height, instance norm as a group norm with a
group per channel).

`LayerLowering` is a mixin of `torch_import._Lowering`. A parameter read by an fx get_attr node
is a `_Param`; the op that consumes it carries its elements, counted once however often it is
read (graph.meta["shared_params"] maps a later reader to the first). torch is never imported
here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .kinds.matmul import mark_channels_last
from .torch_state import LoweringState
from .torch_values import _Param


def explicit_padding(padding, kernel, dilation):
    """A convolution's zero padding as numbers: 'valid' is none, 'same' half of dilation *
    (kernel - 1) on each side where that is even (PyTorch pads one side more where it is odd:
    None); numbers as given."""
    if not isinstance(padding, str):
        return padding
    if padding == "valid":
        return 0
    dilation = (dilation,) * len(kernel) if isinstance(dilation, int) else tuple(dilation)
    same = tuple(d * (k - 1) for d, k in zip(dilation, kernel, strict=True))
    return tuple(t // 2 for t in same) if padding == "same" and not any(t % 2 for t in same) \
        else None


@dataclass(frozen=True)
class _JoinedBias:
    """1-D parameters and buffers concatenated into one bias (BEiT's and Data2Vec's qkv bias,
    cat(q_bias, zeros, v_bias)): the learned pieces are parameters, the others constants."""
    parts: tuple[_Param, ...]


def _sig_linear(input, weight, bias=None): ...
def _sig_conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1): ...
def _sig_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5): ...
def _sig_group_norm(input, num_groups, weight=None, bias=None, eps=1e-5): ...
def _sig_instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                       use_input_stats=True, momentum=0.1, eps=1e-5): ...
def _sig_feature_dropout(input, p=0.5, training=True, inplace=False): ...
def _sig_stochastic_depth(input, p, mode, training=True): ...
def _sig_interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                     recompute_scale_factor=None, antialias=False): ...
def _sig_unfold(input, kernel_size, dilation=1, padding=0, stride=1): ...
def _sig_fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1): ...


class LayerLowering(LoweringState):
    def layer_handlers(self, torch) -> dict:
        F = torch.nn.functional
        return {
            F.linear: self._linear_fn, F.conv2d: self._conv2d_fn, F.conv1d: self._conv1d_fn,
            F.layer_norm: self._layer_norm_fn, F.group_norm: self._group_norm_fn,
            F.instance_norm: self._instance_norm_fn,
            F.dropout1d: self._feature_dropout_fn, F.dropout2d: self._feature_dropout_fn,
            F.dropout3d: self._feature_dropout_fn, F.interpolate: self._interpolate_fn,
            F.unfold: self._unfold_fn, F.fold: self._fold_fn, F.conv3d: self._conv3d_fn,
        }

    # functions of optional packages, matched by their qualified name (never imported here)
    NAMED_FUNCTIONS = {
        "torchvision.ops.stochastic_depth.stochastic_depth": "_stochastic_depth_fn",
    }

    # -- parameters read directly ------------------------------------------------------------
    def parameter(self, node) -> _Param:
        value = self.gm
        for part in node.target.split("."):
            value = getattr(value, part)
        is_parameter = isinstance(value, self.torch.nn.Parameter)
        return _Param(node.target, tuple(int(d) for d in value.shape), is_parameter)

    def _claim(self, params, out: str) -> None:
        """Give op `out` the elements of the parameters it reads, once per parameter."""
        ps = [p for p in params if p is not None]
        op = self.b.graph.op(out)
        expected = sum(math.prod(p.shape) for p in ps if p.is_parameter)
        fixed = sum(math.prod(p.shape) for p in ps if not p.is_parameter)
        if fixed and op.params == expected + fixed:
            # a buffer read as the weight (timm's BlurPool filter): read, never trained
            op.params = expected
        if op.params != expected:
            raise self.unsupported(f"reads {expected} parameter elements but is lowered with "
                                   f"{op.params}")
        owners = {self.param_owner.get(p.target) for p in ps}
        if ps and owners != {None}:
            op.params = 0
            self.b.graph.meta.setdefault("shared_params", {})[out] = sorted(
                o for o in owners if o)[0]
        for p in ps:
            self.param_owner.setdefault(p.target, out)
            if p.is_parameter:   # a layer given the same tensor later ties to it (Gemma)
                self.param_holder.setdefault(id(self.gm.get_parameter(p.target)),
                                             self.param_owner[p.target])
        if op.params:
            self.note_frozen([self.gm.get_parameter(p.target) for p in ps if p.is_parameter],
                             [out])

    def _param_arg(self, value, what: str):
        if value is None or isinstance(value, _Param):
            return value
        raise self.unsupported(f"takes a computed {what}; only a parameter of the model "
                               "(or none) is supported")

    # -- functional layers -------------------------------------------------------------------
    def _linear_fn(self, node):
        """F.linear; a bias joined from learned and constant pieces is read whole (the
        concatenation, 3 * C values of BEiT's qkv bias, is not costed) and the op holds the
        learned pieces only."""
        a = self.bind(_sig_linear, node)
        w, b = self._param_arg(self.value(a["weight"]), "weight"), self.value(a["bias"])
        parts = list(b.parts) if isinstance(b, _JoinedBias) else [self._param_arg(b, "bias")]
        out = self.b.linear(self.tensor(a["input"]), w.shape[0], bias=b is not None,
                            name=self.name("linear"))
        self.b.graph.op(out).params -= sum(math.prod(p.shape) for p in parts
                                           if p is not None and not p.is_parameter)
        self._claim([w, *parts], out)
        return out

    def _conv_args(self, node):
        a = self.bind(_sig_conv, node)
        w, b = self._param_arg(self.value(a["weight"]), "weight"), \
            self._param_arg(self.value(a["bias"]), "bias")
        padding = explicit_padding(a["padding"], w.shape[2:], a["dilation"])
        if padding is None:
            raise self.unsupported(f"has padding {a['padding']!r}; only zero padding, explicit "
                                   "or the same on each side, is supported")
        return dict(a, padding=padding), w, b

    def _conv2d_fn(self, node):
        a, w, b = self._conv_args(node)
        out = self.b.conv2d(self.tensor(a["input"]), w.shape[0], w.shape[2:],
                            stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                            groups=a["groups"], bias=b is not None, name=self.name("conv2d"))
        self._claim([w, b], out)
        return self.conv_memory_format(node, out)

    def _conv3d_fn(self, node):
        a, w, b = self._conv_args(node)
        out = self.conv3d(self.tensor(a["input"]), w.shape[1] * a["groups"], w.shape[0],
                          w.shape[2:], a["stride"], a["padding"], a["dilation"], a["groups"],
                          b is not None, self.name("conv3d"))
        self._claim([w, b], out)
        return out

    def conv3d(self, x, in_channels, out_channels, kernel, stride, padding, dilation, groups,
               bias, name):
        """A conv3d op of an (N, C, T, H, W) clip; its output shape computed here, so the
        importer's check against PyTorch's holds it to the convolution's arithmetic."""
        def triple(v):
            return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),) * 3
        shape = self.b.spec(x).shape
        if len(shape) != 5 or shape[1] != in_channels:
            raise self.unsupported(f"convolves a tensor of shape {shape} with {in_channels} "
                                   "input channels; only (N, C, T, H, W) clips are supported")
        k, s, p, d = triple(kernel), triple(stride), triple(padding), triple(dilation)
        out = (shape[0], int(out_channels), *(
            (size + 2 * pad - dil * (kk - 1) - 1) // st + 1
            for size, kk, st, pad, dil in zip(shape[2:], k, s, p, d, strict=True)))
        attrs = dict(in_channels=int(in_channels), out_channels=int(out_channels), kernel=k,
                     stride=s, padding=p, dilation=d, groups=int(groups), bias=bool(bias),
                     in_shape=shape, out_shape=out)
        params = int(out_channels) * int(in_channels) // int(groups) * math.prod(k) + \
            (int(out_channels) if bias else 0)
        return self._op("conv3d", [x], out, name, attrs, params)

    def conv_memory_format(self, node, conv: str) -> str:
        """Marks the conv2d op `conv` channels-last where PyTorch ran it so: ATen runs a
        convolution channels-last when its input's or weight's strides suggest it and
        allocates the output in that format, so a traced output that is channels-last
        contiguous, and not NCHW contiguous, tells."""
        meta = node.meta.get("tensor_meta")
        channels_last = str(getattr(meta, "memory_format", None)) == "torch.channels_last"
        if self.examples[0].is_meta:   # meta's kernel allocates NCHW whatever its input
            channels_last = self._suggests_channels_last(node)
            first = not any(g.startswith("the memory formats") for g in self.guessed)
            if channels_last and first:   # and the formats after it, which the CPU propagates
                self.guessed.append(f"the memory formats after its channels-last convolutions "
                                    f"(the first: {conv!r})")
        if channels_last:
            mark_channels_last(self.b.graph, conv)
        return conv

    def _suggests_channels_last(self, node) -> bool:
        """ATen's choice on the CPU, from the strides of the input and the weight: channels-last
        where either is so, told by an output that is not also NCHW contiguous (one channel,
        or one pixel, is both)."""
        source = node.args[0] if node.args else node.kwargs.get("input")
        layout = source.meta.get("tensor_meta") if hasattr(source, "meta") else None
        weight = self.modules[node.target].weight if node.op == "call_module" else None
        held = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
        if weight is None and getattr(held, "op", None) == "get_attr":   # F.conv2d(x, self.w)
            weight = self.gm.get_parameter(held.target) if held.target in dict(
                self.gm.named_parameters()) else None
        cl = self.torch.channels_last
        suggested = str(getattr(layout, "memory_format", None)) == "torch.channels_last" or (
            isinstance(weight, self.torch.Tensor) and weight.dim() == 4 and
            weight.is_contiguous(memory_format=cl) and not weight.is_contiguous())
        n, c, h, w = self.known_shape(node)
        return suggested and c > 1 and h * w > 1

    def _conv1d_fn(self, node):
        a, w, b = self._conv_args(node)
        out, conv = self._conv1d(self.tensor(a["input"]), w.shape[0], w.shape[2], a["stride"],
                                 a["padding"], a["dilation"], a["groups"], b is not None,
                                 self.name("conv1d"))
        self._claim([w, b], conv)
        return out

    def _conv1d(self, x, out_channels, kernel, stride, padding, dilation, groups, bias,
                conv_name):
        """A Conv1d as PyTorch runs it on the CPU: a conv2d over a one-pixel height, between
        views (N, C, L) -> (N, C, 1, L) -> (N, C', L'). Returns (output, the conv2d op)."""
        def one(v):
            return int(v[0] if isinstance(v, (tuple, list)) else v)
        n, c, length = self.b.spec(x).shape
        x4 = self.b.reshape(x, (n, c, 1, length), name=self.name("as_2d"))
        conv = self.b.conv2d(x4, out_channels, (1, one(kernel)), stride=(1, one(stride)),
                             padding=(0, one(padding)), dilation=(1, one(dilation)),
                             groups=groups, bias=bias, name=conv_name)
        _, co, _, lo = self.b.spec(conv).shape
        return self.b.reshape(conv, (n, co, lo), name=self.name("as_1d")), conv

    def _layer_norm_fn(self, node):
        a = self.bind(_sig_layer_norm, node)
        w, b = self._param_arg(self.value(a["weight"]), "weight"), \
            self._param_arg(self.value(a["bias"]), "bias")
        if w is None and b is not None:
            raise self.unsupported("has a shift without a scale; only both, the scale alone "
                                   "or neither are modelled")
        out = self.b.layernorm(self.tensor(a["input"]), tuple(a["normalized_shape"]),
                               affine=w is not None, bias=b is not None,
                               name=self.name("layer_norm"))
        self._claim([w, b], out)
        return out

    def _group_norm_fn(self, node):
        a = self.bind(_sig_group_norm, node)
        return self._groupnorm_params(a["input"], a["num_groups"], a["weight"], a["bias"],
                                      "group_norm")

    def _instance_norm_fn(self, node):
        """Instance norm is a group norm with one group per channel (statistics per sample
        and channel, over the pixels)."""
        a = self.bind(_sig_instance_norm, node)
        if not a["use_input_stats"]:
            raise self.unsupported("normalises with running statistics (use_input_stats="
                                   "False); only statistics of the input are modelled")
        x = self.tensor(a["input"])
        return self._groupnorm_params(a["input"], self.b.spec(x).shape[1], a["weight"],
                                      a["bias"], "instance_norm")

    def _groupnorm_params(self, arg, groups, weight, bias, base):
        w, b = self._param_arg(self.value(weight), "weight"), \
            self._param_arg(self.value(bias), "bias")
        if w is None and b is not None:
            raise self.unsupported("has a shift without a scale; only both, the scale alone "
                                   "or neither are modelled")
        out = self.b.groupnorm(self.tensor(arg), groups, affine=w is not None,
                               name=self.name(base), bias=b is not None)
        self._claim([w, b], out)
        return out

    # -- dropouts with a broadcast mask -------------------------------------------------------
    def _masked_dropout(self, x, p, mask_shape, name):
        """Dropout whose random mask has `mask_shape` and broadcasts over the input: one draw
        per channel (Dropout2d) or per sample (stochastic depth). Identity outside training."""
        if not 0.0 <= float(p) < 1.0:
            raise self.unsupported(f"drops with p={p}; p must be in [0, 1)")
        if float(p) == 0.0:
            return x
        if not self._has_kind("dropout_broadcast"):
            raise self.unsupported("draws a broadcast mask, which needs the op kind "
                                   "'dropout_broadcast' that this IR does not declare")
        return self._op("dropout_broadcast", [x], self.b.spec(x).shape, name,
                        {"p": float(p), "mask_shape": tuple(mask_shape)})

    def _channel_mask(self, x):
        shape = self.b.spec(x).shape
        return (shape[0], shape[1], *(1,) * (len(shape) - 2))

    def _feature_dropout_fn(self, node):
        a = self.bind(_sig_feature_dropout, node)
        x = self.tensor(a["input"])
        return self._masked_dropout(x, a["p"], self._channel_mask(x), self.name("dropout"))

    def _stochastic_depth_fn(self, node):
        """torchvision.ops.stochastic_depth: the residual branch dropped per sample ("row")
        or for the whole batch ("batch")."""
        a = self.bind(_sig_stochastic_depth, node)
        x = self.tensor(a["input"])
        shape = self.b.spec(x).shape
        if a["mode"] not in ("row", "batch"):
            raise self.unsupported(f"has mode {a['mode']!r}; only 'row' and 'batch' exist")
        mask = (shape[0] if a["mode"] == "row" else 1, *(1,) * (len(shape) - 1))
        return self._masked_dropout(x, a["p"], mask, self.name("stochastic_depth"))

    # -- upsampling and transposed convolutions ------------------------------------------------
    def _interpolate_fn(self, node):
        a = self.bind(_sig_interpolate, node)
        return self._upsample(self.tensor(a["input"]), a["mode"], a["align_corners"],
                              bool(a["antialias"]), self.name("interpolate"))

    def _upsample(self, x, mode, align_corners, antialias, name):
        """F.interpolate / nn.Upsample to the size PyTorch computed (nearest, bilinear or
        bicubic)."""
        shape, out = self.b.spec(x).shape, self.known_shape(self.node)
        if len(shape) != 4 or mode not in ("nearest", "bilinear", "bicubic") or antialias:
            raise self.unsupported(f"interpolates {len(shape) - 2}-D with mode {mode!r}"
                                   f"{' and antialias' if antialias else ''}; only 2-D "
                                   "'nearest', 'bilinear' and 'bicubic' are supported")
        attrs = {"mode": mode, "output_size": tuple(out[2:])}
        if mode != "nearest":
            attrs["align_corners"] = bool(align_corners)
        return self._op("upsample", [x], out, name, attrs)

    def _unfold_fn(self, node):
        a = self.bind(_sig_unfold, node)
        return self.unfold(self.tensor(a["input"]), a["kernel_size"], a["dilation"],
                           a["padding"], a["stride"], self.name("unfold"))

    def _fold_fn(self, node):
        a = self.bind(_sig_fold, node)
        return self.unfold(self.tensor(a["input"]), a["kernel_size"], a["dilation"],
                           a["padding"], a["stride"], self.name("fold"), kind="fold")

    def unfold(self, x, kernel, dilation, padding, stride, name, kind="unfold"):
        """nn.Unfold / F.unfold of an (N, C, H, W) map, or nn.Fold / F.fold of (N, C * kh *
        kw, L) columns back into one (kind "fold"): one op of the shape PyTorch computed."""
        rank = 4 if kind == "unfold" else 3
        if len(self.b.spec(x).shape) != rank:
            raise self.unsupported(f"{kind}s a tensor of shape {self.b.spec(x).shape}; only "
                                   + ("(N, C, H, W) maps" if kind == "unfold" else
                                      "(N, C * kh * kw, L) columns") + " are supported")

        def pair(v):
            v = self.value(v) if not isinstance(v, (int, tuple, list)) else v
            return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),) * 2
        attrs = {"kernel": pair(kernel), "dilation": pair(dilation), "padding": pair(padding),
                 "stride": pair(stride)}
        return self._op(kind, [x], self.traced_shape(self.node), name, attrs)

    def _conv_transpose2d(self, x, m, name):
        a = dict(in_channels=m.in_channels, out_channels=m.out_channels,
                 kernel=tuple(m.kernel_size), stride=tuple(m.stride),
                 padding=tuple(m.padding), output_padding=tuple(m.output_padding),
                 dilation=tuple(m.dilation), groups=m.groups, bias=m.bias is not None)
        if m.padding_mode != "zeros":
            raise self.unsupported(f"has padding mode {m.padding_mode!r}; only zeros exist")
        out = self.traced_shape(self.node)
        a.update(in_shape=self.b.spec(x).shape, out_shape=out)
        params = sum(math.prod(p.shape) for p in m.parameters())
        return self._op("conv_transpose2d", [x], out, name, a, params)
