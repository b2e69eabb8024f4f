"""3-D pooling of (N, C, T, H, W) clips (nn.MaxPool3d, nn.AvgPool3d: S3D's and I3D's pools
over time and space) and their gradients: a read of each window per output value, like the
2-D pools (pools.py), keyed on the output's layout.

attrs: kernel, stride, padding (each (t, h, w)), ceil_mode; dilation (max); count_include_pad
(average)."""
from __future__ import annotations

import math

from ._registry import OpKind, per_element, register, shape_layout
from ._torch import F
from .pools import avgpool_args, avgpool_kernel, maxpool_args, maxpool_kernel


def _window_flops(op) -> float:
    return float(op.out.numel * math.prod(op.attrs["kernel"]))


def _output_layout(op) -> tuple[int, int]:
    return shape_layout(op.out.shape)


register(
    OpKind("maxpool3d", "pooling", flops=_window_flops, layout=_output_layout, saves=("in",),
           torch_kernel=maxpool_kernel(3),
           torch_module=lambda op, m, i: lambda ins: F.max_pool3d(ins[0],
                                                                  *maxpool_args(op.attrs, 3)),
           doc="max over (t, h, w) kernel windows of a clip (stride, padding, dilation, "
               "ceil_mode)"),
    OpKind("avgpool3d", "pooling", flops=_window_flops, layout=_output_layout,
           torch_kernel=avgpool_kernel(3),
           torch_module=lambda op, m, i: lambda ins: F.avg_pool3d(ins[0], *avgpool_args(op.attrs)),
           doc="mean over (t, h, w) kernel windows of a clip (stride, padding, ceil_mode, "
               "count_include_pad)"),
    OpKind("maxpool3d_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=maxpool_kernel(3)),
    OpKind("avgpool3d_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=avgpool_kernel(3)),
)
