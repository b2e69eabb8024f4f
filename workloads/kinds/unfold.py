"""nn.Unfold / F.unfold (im2col): the sliding blocks of an (N, C, H, W) map as columns, (N,
C * kh * kw, L) for L block positions, a copy of the values each block covers (TNT's and
hand-written patch embeddings, convolutions written as unfold and a product). attrs: kernel,
dilation, padding, stride (pairs). Its gradient is autograd's: F.fold of dy, which sums the
values of overlapping blocks back into the map (col2im).

nn.Fold / F.fold (col2im) is the reverse: (N, C * kh * kw, L) columns summed into the (N, C, H,
W) map their blocks cover (VOLO's outlook attention), one addition per column value; its
gradient is F.unfold of dy, a copy."""
from __future__ import annotations

from ._registry import OpKind, register
from ._torch import F


def _args(op) -> dict:
    a = op.attrs
    return dict(kernel_size=tuple(a["kernel"]), dilation=tuple(a["dilation"]),
                padding=tuple(a["padding"]), stride=tuple(a["stride"]))


def _kernel(op, state):
    if op.kind in ("unfold", "fold_grad"):
        return lambda x: F.unfold(x, **_args(op))
    size = tuple(op.out.shape[2:])
    return lambda dy: F.fold(dy, size, **_args(op))


register(
    OpKind("unfold", "data_movement", flops=lambda op: 0.0, torch_kernel=_kernel,
           doc="F.unfold: (N, C, H, W) to (N, C * kh * kw, L) columns of sliding blocks "
               "(attrs: kernel, dilation, padding, stride)"),
    # one addition per value of dy into the map it folds back to
    OpKind("unfold_grad", "data_movement", "backward",
           flops=lambda op: float(op.in_specs[0].numel), torch_kernel=_kernel,
           doc="F.fold of dy: overlapping blocks summed back into the map"),
    OpKind("fold", "data_movement", saves=(),
           flops=lambda op: float(op.in_specs[0].numel), torch_kernel=_kernel,
           doc="F.fold: (N, C * kh * kw, L) columns summed into the (N, C, H, W) map of their "
               "blocks (attrs: kernel, dilation, padding, stride)"),
    OpKind("fold_grad", "data_movement", "backward", flops=lambda op: 0.0,
           torch_kernel=_kernel, doc="F.unfold of dy: the map's blocks as columns again"),
)
