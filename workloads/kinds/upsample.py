"""Upsampling (F.interpolate, nn.Upsample) of (N, C, H, W) maps, modes "nearest", "bilinear"
and "bicubic" (align_corners either way). attrs: mode, align_corners (bilinear, bicubic),
output_size. Nearest copies one input value per output value; bilinear blends four (3 multiply-
adds and a few index computations per output value, counted as 8 FLOPs); bicubic blends
sixteen (16 multiply-adds and two sets of four cubic weights, counted as 40 FLOPs): nominal
counts, a calibrated profile measures what each costs. Their gradients scatter dy back: an add
per output value (nearest), four multiply-adds (bilinear), sixteen (bicubic)."""
from __future__ import annotations

from ._registry import OpKind, register
from ._torch import F, aten

_FORWARD_FLOPS = {"nearest": 0.0, "bilinear": 8.0, "bicubic": 40.0}
_GRAD_FLOPS = {"nearest": 1.0, "bilinear": 8.0, "bicubic": 32.0}


def _interpolate(op):
    a = op.attrs
    extra = {"align_corners": a["align_corners"]} if a["mode"] != "nearest" else {}
    return lambda x: F.interpolate(x, size=tuple(a["output_size"]), mode=a["mode"], **extra)


def _kernel(op, state):
    a = op.attrs
    if op.kind == "upsample":
        return _interpolate(op)
    in_size, out_size = list(op.out.shape), list(a["output_size"])
    if a["mode"] == "nearest":
        return lambda dy: aten.upsample_nearest2d_backward(dy, out_size, in_size)
    backward = aten.upsample_bilinear2d_backward if a["mode"] == "bilinear" else \
        aten.upsample_bicubic2d_backward
    return lambda dy: backward(dy, out_size, in_size, a["align_corners"])


register(
    OpKind("upsample", "data_movement",
           flops=lambda op: _FORWARD_FLOPS[op.attrs["mode"]] * op.out.numel,
           torch_kernel=_kernel,
           torch_module=lambda op, m, i: lambda ins: _interpolate(op)(ins[0]),
           doc="F.interpolate to attrs['output_size'] (nearest, bilinear, bicubic)"),
    OpKind("upsample_grad", "data_movement", "backward",
           flops=lambda op: _GRAD_FLOPS[op.attrs["mode"]] * op.in_specs[0].numel,
           torch_kernel=_kernel),
)
