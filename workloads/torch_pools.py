"""How torch_import lowers the pooling, padding, concatenation, dropout and channel-shuffle
functions (F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.pad, torch.cat, F.dropout,
F.channel_shuffle), and the pools that modules and functions share.

`PoolPadLowering` is a base of torch_functions.FunctionLowering, whose tables route these
functions here; the host (torch_import._Lowering) provides `b`, `bind`, `value`, `tensor`,
`name`, `unsupported`, `class_token_cat` and `_op`. torch is never imported here.
"""
from __future__ import annotations

from .torch_state import LoweringState
from .torch_values import _Pending


def _sig_maxpool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False): ...
def _sig_avgpool(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None): ...
def _sig_adaptive(input, output_size): ...
def _sig_cat(tensors, dim=0): ...
def _sig_dropout(input, p=0.5, training=True, inplace=False): ...
# F.pad's modes that copy border values (reflected, repeated) rather than a constant: the
# same copy of the input into the padded output (workloads/kinds/window_attention.py)
PAD_MODES = ("reflect", "replicate")


def _sig_pad(input, pad, mode="constant", value=None): ...
def _sig_shuffle(input, groups): ...


class PoolPadLowering(LoweringState):
    # -- pools shared by modules and functions ---------------------------------------------
    def _maxpool(self, x, kernel, stride, padding, dilation, ceil_mode, return_indices, name):
        if return_indices:
            raise self.unsupported("returns indices; only the pooled values are supported")
        return self.b.maxpool(x, kernel, stride=stride or None, padding=padding, name=name,
                              ceil_mode=bool(ceil_mode), dilation=dilation)

    def _avgpool(self, x, kernel, stride, padding, ceil_mode, name, count_include_pad=True,
                 divisor_override=None):
        if divisor_override is not None:
            raise self.unsupported("divides by divisor_override; only the window's size (or "
                                   "its values inside the input) are supported")
        unpadded = padding in (0, (0, 0), [0, 0])   # nothing to include: PyTorch's default
        return self.b.avgpool(x, kernel, stride=stride or None, padding=padding, name=name,
                              ceil_mode=bool(ceil_mode),
                              count_include_pad=bool(count_include_pad) or unpadded)

    def _adaptive(self, x, output_size, name):
        _, _, h, w = self.b.spec(x).shape
        size = (output_size, output_size) if isinstance(output_size, int) else output_size
        size = (size[0] or h, size[1] or w)  # None keeps the input size
        return self.b.adaptive_avgpool(x, size, name=name)

    def pool1d(self, x, kind: str, kernel, stride, padding, ceil_mode, name, dilation=1,
               return_indices=False, count_include_pad=True, divisor_override=None):
        """A 1-D max or average pool of (N, C, L) (NextViT's AvgPool1d over tokens) as
        PyTorch's avg_pool1d runs it: the 2-D pool over a one-pixel height, between views
        (N, C, L) -> (N, C, 1, L) -> (N, C, L'), as a Conv1d is lowered."""
        def one(v):
            return int(v[0] if isinstance(v, (tuple, list)) else v)
        shape = self.b.spec(x).shape
        if len(shape) != 3:
            raise self.unsupported(f"pools a tensor of shape {shape} in 1-D; only (N, C, L) "
                                   "is supported")
        n, c, length = shape
        x4 = self.b.reshape(x, (n, c, 1, length), name=self.name("as_2d"))
        k = (1, one(kernel))
        s = (1, one(kernel if stride is None or stride == () else stride))
        p = (0, one(padding))
        y = self._maxpool(x4, k, s, p, (1, one(dilation)), ceil_mode, return_indices, name) \
            if kind == "max" else \
            self._avgpool(x4, k, s, p, ceil_mode, name, count_include_pad, divisor_override)
        return self.b.reshape(y, (n, c, self.b.spec(y).shape[-1]), name=self.name("as_1d"))

    def _pool1d_module(self, m, node, x):
        if isinstance(m, self.torch.nn.MaxPool1d):
            return self.pool1d(x(), "max", m.kernel_size, m.stride, m.padding, m.ceil_mode,
                               self.name(""), m.dilation, m.return_indices)
        return self.pool1d(x(), "avg", m.kernel_size, m.stride, m.padding, m.ceil_mode,
                           self.name(""), count_include_pad=m.count_include_pad)

    # -- functions ------------------------------------------------------------------------
    def _maxpool1d_fn(self, node):
        a = self.bind(_sig_maxpool, node)
        return self.pool1d(self.tensor(a["input"]), "max", a["kernel_size"], a["stride"],
                           a["padding"], a["ceil_mode"], self.name("maxpool"), a["dilation"],
                           a["return_indices"])

    def _avgpool1d_fn(self, node):
        a = self.bind(_sig_avgpool, node)
        return self.pool1d(self.tensor(a["input"]), "avg", a["kernel_size"], a["stride"],
                           a["padding"], a["ceil_mode"], self.name("avgpool"),
                           count_include_pad=a["count_include_pad"],
                           divisor_override=a["divisor_override"])

    def _maxpool_fn(self, node):
        a = self.bind(_sig_maxpool, node)
        return self._maxpool(self.tensor(a["input"]), a["kernel_size"], a["stride"],
                             a["padding"], a["dilation"], a["ceil_mode"], a["return_indices"],
                             self.name("maxpool"))

    def _avgpool_fn(self, node):
        a = self.bind(_sig_avgpool, node)
        return self._avgpool(self.tensor(a["input"]), a["kernel_size"], a["stride"],
                             a["padding"], a["ceil_mode"], self.name("avgpool"),
                             a["count_include_pad"], a["divisor_override"])

    def _adaptive_fn(self, node):
        a = self.bind(_sig_adaptive, node)
        return self._adaptive(self.tensor(a["input"]), a["output_size"],
                              self.name("adaptive_avgpool"))

    def _dropout_fn(self, node):
        a = self.bind(_sig_dropout, node)
        return self.b.dropout(self.tensor(a["input"]), a["p"], name=self.name("dropout"))

    def _shuffle_fn(self, node):
        a = self.bind(_sig_shuffle, node)
        return self.b.channel_shuffle(self.tensor(a["input"]), a["groups"],
                                      name=self.name("channel_shuffle"))

    def _cat(self, node):
        a = self.bind(_sig_cat, node)
        if (out := self.class_token_cat(a["tensors"], a["dim"])) is not None:
            return out
        xs = [self.tensor(t) for t in a["tensors"]]
        rank = len(self.b.spec(xs[0]).shape)
        return self.b.concat(xs, dim=a["dim"] % rank, name=self.name("concat"))

    def _pad(self, node):
        """F.pad with zeros of the channels of (N, C, H, W) (a pad_channels op, ResNet's
        option-A shortcut), or with a constant of two dimensions after the batch, the last
        two or H and W of (N, H, W, C) (a pad_spatial copy: timm's "same" padding, CoaT's
        class-token row)."""
        a = self.bind(_sig_pad, node)
        src = self.value(a["input"])
        # sizes computed in the forward (EnCodec's padding to whole frames) as their values
        pad = tuple(self._pad_amount(p) for p in a["pad"])
        if not all(isinstance(p, int) for p in pad):
            raise self.unsupported(f"pads by {pad!r}; only whole numbers, or one-value "
                                   "tensors of constants, are supported")
        if a["mode"] == "constant" and len(pad) % 2 == 0 and \
                not (len(pad) == 6 and not any(pad[:4])):
            return self._pad_spatial(self.tensor(a["input"]), pad, a["value"] or 0.0)
        if a["mode"] in PAD_MODES and len(pad) in (2, 4):
            return self._pad_spatial(self.tensor(a["input"]), pad, 0.0, a["mode"])
        if a["mode"] != "constant" or a["value"] not in (None, 0) or len(pad) != 6 or any(pad[:4]):
            raise self.unsupported(f"pads in mode {a['mode']!r} with pad {pad}; only a "
                                   "constant on two dimensions after the batch, zeros on the "
                                   "channel dimension, or the last one or two dimensions "
                                   f"reflected or replicated ({', '.join(PAD_MODES)}) are "
                                   "supported")
        if isinstance(src, _Pending) and src.kind == "subsample":
            x, stride = src.source, src.stride
        else:
            x, stride = self.tensor(a["input"]), (1, 1)
        return self.b.pad_channels(x, pad[4:], stride, name=self.name("pad_channels"))

    def _pad_amount(self, arg):
        """One amount of F.pad's pad: a number, a size computed in the forward, or a one-value
        tensor of buffers and constants (its value in the traced run)."""
        v = self.resolve_index(arg)
        if isinstance(v, int) or (t := self.constant_values(arg)) is None or t.numel() != 1:
            return v
        return int(t.reshape(()))

    def _pad_spatial(self, x: str, pad: tuple, value: float, mode: str = "constant"):
        shape = self.b.spec(x).shape
        rank = len(shape)
        # (before, after) of each dimension, the last first as F.pad lists them
        pairs = {rank - 1 - i: tuple(pad[2 * i:2 * i + 2]) for i in range(len(pad) // 2)}
        padded = sorted(d for d, p in pairs.items() if any(p))
        last_two, hw = (rank - 2, rank - 1), (1, 2)
        # why: no padding at all is still the copy PyTorch makes (F.pad returns a new tensor)
        dims = last_two if set(padded) <= set(last_two) and rank >= 3 else \
            hw if rank == 4 and set(padded) <= set(hw) else None
        if dims is None:
            raise self.unsupported(f"pads dimensions {padded} of {shape}; only two dimensions "
                                   "after the batch, the last two or H and W of (N, H, W, C), "
                                   "are supported")
        (top, bottom), (left, right) = (pairs.get(d, (0, 0)) for d in dims)
        out = list(shape)
        out[dims[0]] += top + bottom
        out[dims[1]] += left + right
        if min(out[dims[0]], out[dims[1]]) < 1:
            raise self.unsupported(f"crops {shape} to nothing with pad {pad}")
        return self._op("pad_spatial", [x], tuple(out), self.name("pad"),
                        {"pad": (bottom, right), "pad_before": (top, left), "dims": dims,
                         "value": float(value), **({"mode": mode} if mode != "constant"
                                                     else {})})
