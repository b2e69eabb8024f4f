"""Views and copies that only move data: the input, flatten, reshape, slice, permute (views: no
kernel, no traffic), and concatenation, channel shuffle, the CIFAR ResNets' channel pad and the
copy that makes a permuted view contiguous, and the heads of grouped-query attention's keys and
values repeated for their queries (copies)."""
from __future__ import annotations

from . import backward_rules
from ._registry import OpKind, per_element, register
from ._torch import F, torch

_no_arithmetic = per_element(0.0)


def shuffle(x, groups: int):
    """nn.ChannelShuffle: (N, g, C/g, H, W) transposed to (N, C/g, g, H, W), made contiguous."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def _pad_channels(op, state):
    sh, sw = op.attrs["stride"]
    pad = op.attrs["pad"]
    return lambda x: F.pad(x[:, :, ::sh, ::sw], (0, 0, 0, 0, *pad))


def _slice_module(op, m, i):
    a = op.attrs
    return lambda ins: ins[0].narrow(a["dim"], a["start"], a["stop"] - a["start"])


def _contiguous_kernel(op, state):
    """The copy .contiguous() makes of a permuted view. In a replayed step the input is that
    view; run alone on a fresh tensor of the view's shape (contiguous), the kernel first views
    it from the source layout, so the copy makes the same strided reads."""
    dims, source = tuple(op.attrs["dims"]), tuple(op.attrs["source_shape"])

    def copy(x):
        if x.is_contiguous():
            x = x.reshape(source).permute(dims)
        return x.contiguous()
    return copy


def _repeat_heads_kernel(op, state):
    """Hugging Face's repeat_kv: (N, KV, S, D) expanded to (N, KV, rep, S, D), then reshaped
    (a copy) to (N, KV * rep, S, D); autograd sums the gradient over the repeats."""
    rep = op.attrs["repeats"]
    if op.kind == "repeat_heads":
        return lambda x: torch.repeat_interleave(x, rep, dim=1)

    def repeat_heads_grad(dy):
        n, heads, *rest = dy.shape
        return dy.reshape(n, heads // rep, rep, *rest).sum(2)
    return repeat_heads_grad


register(
    OpKind("input", "view", view=True, backward=backward_rules.route,
           doc="the network's input (a GraphModule's argument)"),
    OpKind("flatten", "view", view=True, aliases_input=True, backward=backward_rules.route,
           torch_module=lambda op, m, i: lambda ins: torch.flatten(ins[0], 1),
           doc="(N, ...) to (N, features), a view"),
    OpKind("slice", "view", view=True, backward=backward_rules.route,
           torch_module=_slice_module, doc="[start, stop) of one dimension, a view"),
    OpKind("reshape", "view", view=True, aliases_input=True, backward=backward_rules.route,
           torch_module=lambda op, m, i: lambda ins: ins[0].reshape(op.out.shape),
           doc="the same values in another shape of the same batch, a view"),
    OpKind("concat", "data_movement", flops=_no_arithmetic, backward=backward_rules.route,
           torch_kernel=lambda op, state: lambda *xs: torch.cat(xs, op.attrs["dim"]),
           doc="torch.cat along attrs['dim']"),
    OpKind("channel_shuffle", "data_movement", flops=_no_arithmetic,
           torch_kernel=lambda op, state: lambda x: shuffle(x, op.attrs["groups"]),
           doc="nn.ChannelShuffle(groups)"),
    OpKind("channel_shuffle_grad", "data_movement", "backward", flops=_no_arithmetic,
           torch_kernel=lambda op, state: lambda dy: shuffle(dy,
                                                             dy.shape[1] // op.attrs["groups"])),
    OpKind("pad_channels", "data_movement", flops=_no_arithmetic,
           backward=backward_rules.route, torch_kernel=_pad_channels,
           doc="x[:, :, ::s, ::s] with zero channels before and after (ResNet option A)"),
    OpKind("permute", "view", view=True, aliases_input=True, backward=backward_rules.route,
           torch_module=lambda op, m, i: lambda ins: ins[0].permute(op.attrs["dims"]),
           doc="x.permute(dims) (transpose: two dims swapped), a view with strides"),
    # autograd passes the gradient of .contiguous() through as it is
    OpKind("contiguous", "data_movement", flops=_no_arithmetic, backward=backward_rules.route,
           torch_kernel=_contiguous_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0].contiguous(),
           doc="the copy .contiguous() (or a reshape) makes of a permuted view (dims, "
               "source_shape: the permutation and the shape it permuted)"),
    OpKind("repeat_heads", "data_movement", flops=_no_arithmetic,
           torch_kernel=_repeat_heads_kernel,
           doc="(N, KV, S, D) to (N, KV * repeats, S, D), each head repeated in place "
               "(grouped-query attention's keys and values)"),
    # the sum over the repeats: one addition per value of dy beyond the first
    OpKind("repeat_heads_grad", "data_movement", "backward",
           flops=lambda op: float(op.in_specs[0].numel - op.out.numel),
           torch_kernel=_repeat_heads_kernel, doc="dy summed over the repeats"),
)
