"""How torch_import lowers torchvision's Swin Transformer functions, which torch.fx keeps whole
(torch.fx.wrap): shifted_window_attention, _patch_merging_pad and _get_relative_position_bias.

PyTorch folds the windows into the batch: (N, H, W, C) becomes (N * windows, tokens, C). The
IR keeps the batch as its first dimension (pipelines split it into micro-batches, data
parallelism across devices), so the windows are kept as a dimension of their own instead:
(N, windows, tokens, C), heads after them. Every product, elementwise op and copy then has the
same values, FLOPs and bytes as PyTorch's, and a copy stands exactly where PyTorch copies (the
reshape of a permuted view that partitions the windows, merges the heads and reverses the
windows; the padding; the roll; the final slice when the map was padded).

Swin V2 adds cosine attention (l2_normalize of q and k, a learned logit_scale) and its
continuous position bias: the MLP that PyTorch runs on a coordinate buffer before calling
shifted_window_attention is followed as a `_BiasMLP` value (no op) through the gather and
16 * sigmoid, and becomes one continuous_position_bias op where it is added to the scores.

`WindowLowering` is a mixin of `torch_import._Lowering`. torch is never imported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .torch_layers import _Param
from .torch_operands import _Gathered
from .torch_state import LoweringState


@dataclass(frozen=True)
class _BiasMLP:
    """Swin V2's continuous position bias on its way: an MLP run on the coordinate buffer
    (its layers' parameters so far), then viewed, gathered, put through 16 * sigmoid. No op
    until it is added to the scores."""
    params: tuple
    hidden: int
    shape: tuple[int, ...] | None   # as traced
    stage: str            # "mlp", "gathered", "sigmoid", "scaled"


def _sig_swa(input, qkv_weight, proj_weight, relative_position_bias, window_size, num_heads,
             shift_size, attention_dropout=0.0, dropout=0.0, qkv_bias=None, proj_bias=None,
             logit_scale=None, training=True): ...


def _sig_roll(input, shifts, dims=None): ...


class WindowLowering(LoweringState):
    def window_handlers(self, torch) -> tuple[dict, dict]:
        """(functions, Tensor methods) lowered here."""
        return {torch.roll: self._roll}, {"roll": self._roll}

    def _roll(self, node):
        """torch.roll along dimensions after the batch: a copy (the roll kind)."""
        a = self.bind(_sig_roll, node)
        x = self.tensor(a["input"])
        rank = len(self.b.spec(x).shape)
        shifts, dims = a["shifts"], a["dims"]
        shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if dims == (None,) or len(dims) != len(shifts) or any(d % rank == 0 for d in dims):
            raise self.unsupported("rolls the flattened tensor or the batch; only rolls along "
                                   "dimensions after the batch are supported")
        return self._op("roll", [x], self.b.spec(x).shape, self.name("roll"),
                        {"shifts": tuple(int(s) for s in shifts),
                         "dims": tuple(int(d) % rank for d in dims)})

    def window_value(self, node):
        """A _BiasMLP for a step of Swin V2's continuous position bias; None otherwise."""
        if not node.args:
            return None
        src = self.value(node.args[0])
        shape = self.traced_shape(node)
        if node.op == "call_module":
            m = self.modules[node.target]
            from_buffer = isinstance(src, _Param) and not src.is_parameter
            if not (from_buffer or isinstance(src, _BiasMLP) and src.stage == "mlp"):
                return None
            if isinstance(m, (self.nn.Sequential, self.nn.Embedding)):
                return None   # traced one by one; a lookup by buffer ids (torch_params)
            if isinstance(m, self.nn.ReLU):
                return src
            if not isinstance(m, self.nn.Linear):
                raise self.unsupported("runs a layer on a buffer; only the linear layers and "
                                       "ReLU of Swin V2's position bias MLP are supported")
            params = (*(src.params if isinstance(src, _BiasMLP) else ()),
                      *(_Param(f"{node.target}.{n}", tuple(p.shape), True)
                        for n, p in m.named_parameters()))
            hidden = src.hidden if isinstance(src, _BiasMLP) else m.out_features
            return _BiasMLP(params, hidden, shape, "mlp")
        values = [self.value(v) for v in node.args]
        pending = [v for v in values if isinstance(v, _BiasMLP)]
        name = getattr(node.target, "__name__", node.target)
        if not pending or name == "shifted_window_attention":   # its bias argument
            return None
        src = pending[0]
        if name == "_get_relative_position_bias" and src.stage == "mlp":
            return _BiasMLP(src.params, src.hidden, shape, "gathered")
        if name in ("view", "reshape") and src is values[0]:
            return _BiasMLP(src.params, src.hidden, shape, src.stage)
        if name == "sigmoid" and src.stage == "gathered":
            return _BiasMLP(src.params, src.hidden, shape, "sigmoid")
        if name == "mul" and src.stage == "sigmoid" and 16 in values:
            return _BiasMLP(src.params, src.hidden, shape, "scaled")
        raise self.unsupported("computes with Swin V2's position bias other than "
                               "16 * sigmoid(bias)")

    NAMED_FUNCTIONS = {
        "torchvision.models.swin_transformer.shifted_window_attention": "_swin_attention",
        "torchvision.models.swin_transformer._patch_merging_pad": "_swin_patch_merging",
        "torchvision.models.swin_transformer._get_relative_position_bias": "_swin_bias",
    }

    def _swin_bias(self, node):
        """table[index] seen as (1, heads, T, T): no op until it is added to the scores."""
        table = self.value(node.args[0])
        if not getattr(table, "is_parameter", False):
            raise self.unsupported("gathers a relative position bias from a computed table; "
                                   "only a learned table (Swin V1) is supported")
        return _Gathered(table, self.known_shape(node))

    def _swin_patch_merging(self, node):
        """x (N, H, W, C) padded to even H and W, then the four pixels of each 2x2 cell
        concatenated along the channels: as a view (N, H/2, 2, W/2, 2, C) permuted to put the
        cell's column then row before C, copied contiguous (the traffic of PyTorch's cat)."""
        x = self.tensor(node.args[0])
        if len(self.b.spec(x).shape) != 4:   # Swin3D's (N, T, H, W, C)
            raise self.unsupported(f"merges patches of a tensor of shape {self.b.spec(x).shape};"
                                   " only (N, H, W, C) maps are supported")
        return self.cells_merged(self._swin_pad(x, 2, 2))

    def cells_merged(self, x):
        """The four pixels of each 2x2 cell of x (N, H, W, C) concatenated along the channels,
        (row 0, column 0), (1, 0), (0, 1), (1, 1): a view permuted and copied."""
        n, h, w, c = self.b.spec(x).shape
        x = self.b.reshape(x, (n, h // 2, 2, w // 2, 2, c), name=self.name("cells"))
        x = self._permuted(x, (0, 1, 3, 4, 2, 5), "cells_t")
        return self._reshaped(x, (n, h // 2, w // 2, 4 * c), "merged")

    def _swin_pad(self, x, wh: int, ww: int):
        """F.pad of (N, H, W, C) with zeros up to multiples of (wh, ww): a copy, or x."""
        n, h, w, c = self.b.spec(x).shape
        bottom, right = (wh - h % wh) % wh, (ww - w % ww) % ww
        if not (bottom or right):
            return x
        return self._op("pad_spatial", [x], (n, h + bottom, w + right, c), self.name("pad"),
                        {"pad": (bottom, right)})

    def _swin_attention(self, node):
        a = self.bind(_sig_swa, node)
        logit_scale = self.value(a["logit_scale"])
        x = self.tensor(a["input"])
        n, h, w, c = self.b.spec(x).shape
        (wh, ww), heads = (int(v) for v in a["window_size"]), int(a["num_heads"])
        x = self._swin_pad(x, wh, ww)
        _, ph, pw, _ = self.b.spec(x).shape
        shift = [0 if wh >= ph else int(a["shift_size"][0]),
                 0 if ww >= pw else int(a["shift_size"][1])]
        if sum(shift) > 0:
            x = self._op("roll", [x], (n, ph, pw, c), self.name("roll"),
                         {"shifts": (-shift[0], -shift[1]), "dims": (1, 2)})
        nh, nw, tokens, d = ph // wh, pw // ww, wh * ww, c // heads
        x = self.b.reshape(x, (n, nh, wh, nw, ww, c), name=self.name("windows_view"))
        x = self._permuted(x, (0, 1, 3, 2, 4, 5), "windows_t")
        x = self._reshaped(x, (n, nh * nw, tokens, c), "windows")
        qkv = self._swin_linear(x, 3 * c, a["qkv_weight"], a["qkv_bias"], "qkv")
        qkv = self.b.reshape(qkv, (n, nh * nw, tokens, 3, heads, d), name=self.name("qkv_view"))
        q, k, v = (self._permuted(
            self.b.reshape(self.b.slice(qkv, i, i + 1, dim=3, name=self.name(f"{p}_part")),
                           (n, nh * nw, tokens, heads, d), name=self.name(f"{p}_view")),
            (0, 1, 3, 2, 4), f"{p}_heads") for i, p in enumerate("qkv"))
        if logit_scale is None:
            q = self.b.scalar(q, scale=d ** -0.5, name=self.name("scale"))
        else:   # cosine attention: unit q and k
            q, k = (self._op("l2_normalize", [t], self.b.spec(t).shape,
                             self.name(f"{p}_normalize")) for t, p in ((q, "q"), (k, "k")))
        attn = self.b.batched_matmul(q, self._permuted(k, (0, 1, 2, 4, 3), "k_t"),
                                     name=self.name("scores"))
        if logit_scale is not None:
            attn = self._op("logit_scale", [attn], self.b.spec(attn).shape,
                            self.name("logit_scale"), {"param_shape": logit_scale.shape},
                            params=math.prod(logit_scale.shape))
            self._claim([logit_scale], attn)
        attn = self._window_bias(attn, self.value(a["relative_position_bias"]))
        if sum(shift) > 0:   # the shifted windows' mask, computed from constants
            attn = self._masked_fill(attn, -100.0, self.name("mask"))
        attn = self.b.softmax(attn, -1, name=self.name("softmax"))
        if a["training"] and a["attention_dropout"]:
            attn = self.b.dropout(attn, float(a["attention_dropout"]), name=self.name("drop"))
        y = self.b.batched_matmul(attn, v, name=self.name("context"))
        y = self._permuted(y, (0, 1, 3, 2, 4), "merge_heads_t")
        y = self._reshaped(y, (n, nh * nw, tokens, c), "merge_heads")
        y = self._swin_linear(y, c, a["proj_weight"], a["proj_bias"], "proj")
        if a["training"] and a["dropout"]:
            y = self.b.dropout(y, float(a["dropout"]), name=self.name("proj_drop"))
        y = self.b.reshape(y, (n, nh, nw, wh, ww, c), name=self.name("unwindow_view"))
        y = self._permuted(y, (0, 1, 3, 2, 4, 5), "unwindow_t")
        y = self._reshaped(y, (n, ph, pw, c), "unwindow")
        if sum(shift) > 0:
            y = self._op("roll", [y], (n, ph, pw, c), self.name("unroll"),
                         {"shifts": tuple(shift), "dims": (1, 2)})
        if (ph, pw) != (h, w):   # x[:, :H, :W, :].contiguous()
            y = self.b.slice(self.b.slice(y, 0, h, dim=1, name=self.name("unpad_h")), 0, w,
                             dim=2, name=self.name("unpad"))
            y = self._copy(y, "unpad")
        return y

    def _window_bias(self, attn, bias):
        if isinstance(bias, _Gathered):
            return self.relative_bias(attn, bias)
        if not (isinstance(bias, _BiasMLP) and bias.stage == "scaled"):
            raise self.unsupported("adds a relative position bias that is neither a learned "
                                   "table nor Swin V2's 16 * sigmoid of its MLP")
        shape = self.b.spec(attn).shape
        heads, tokens = shape[-3], shape[-1]
        expected = [(bias.hidden, 2), (bias.hidden,), (heads, bias.hidden)]
        if [p.shape for p in bias.params] != expected:
            raise self.unsupported(f"runs a position bias MLP with parameters "
                                   f"{[p.shape for p in bias.params]}; only Swin V2's "
                                   f"Linear(2, hidden), ReLU, Linear(hidden, heads) is supported")
        out = self._op("continuous_position_bias", [attn], shape,
                       self.name("continuous_position_bias"),
                       {"tokens": tokens, "hidden": bias.hidden, "heads": heads},
                       params=sum(math.prod(p.shape) for p in bias.params))
        self._claim(list(bias.params), out)
        return out

    def _reshaped(self, x, shape, base):
        """x.reshape(shape) of a permuted view: the copy PyTorch makes, then the view."""
        x = self.b.contiguous(x, name=self.name(f"{base}_copy"))
        return self.b.reshape(x, shape, name=self.name(base))

    def _swin_linear(self, x, out_features, weight, bias, base):
        w, b = self.value(weight), self.value(bias)
        out = self.b.linear(x, out_features, bias=b is not None, name=self.name(base))
        self._claim([w, b], out)
        return out
