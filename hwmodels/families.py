"""Op-kind families: the unit at which a device model's efficiency is set.

Every kind of the IR declares its family in its record (workloads/kinds/: `OpKind.family`), so
a kind cannot exist without a decision about its cost. Why the families: kernels in one family
share a library implementation and therefore a fraction of peak they reach (cuDNN implicit GEMM
for conv, cuBLAS SGEMM for linear, one memory-streaming kernel for elementwise ops, ...).
Gradients of conv are separate families because cuDNN/MKL-DNN use different algorithms for
them (see the device models).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Iterator

from workloads.graph import MATMUL_KINDS
from workloads.kinds import all_kinds, is_kind, kind_of, shape_layout


class _KindFamilies(Mapping):
    """kind -> family, read from the kind records (a kind declared later is in it at once)."""

    def __getitem__(self, kind: str) -> str:
        if not is_kind(kind):
            raise KeyError(kind)
        return kind_of(kind).family

    def __iter__(self) -> Iterator[str]:
        return iter([k.name for k in all_kinds()])

    def __len__(self) -> int:
        return len(all_kinds())


KIND_FAMILY: Mapping[str, str] = _KindFamilies()

# The families device models set efficiencies for (those of the IR's kinds).
FAMILIES: frozenset[str] = frozenset(KIND_FAMILY.values())

# Families whose efficiency is scaled down for grouped convolutions (attrs["groups"] > 1).
CONV_FAMILIES: frozenset[str] = frozenset({"conv", "conv_grad_input", "conv_grad_weight"})


def gemm_shape(op) -> tuple[int, ...] | None:
    """(m, n, k, groups, window, stride, pixels) of the matrix product an op of a GEMM kind
    performs, else None: m rows (output positions), n columns (output channels), k the
    reduction, per group for grouped convolutions; window and stride are the kernel's and the
    stride's area, pixels the positions per sample (m / batch), which tells apart convolutions
    of one GEMM (16 maps of 8x8 from 4 of 16x16); all 1 for linear layers.

    Why: libraries run convolutions and fully connected layers as (implicit) GEMMs, and how
    close a GEMM gets to peak depends on each of its three dimensions, not only on its FLOPs
    (a 3-channel first layer or a 2x2-pixel late layer underfills the vector units however
    many FLOPs it has); and a strided or 1x1 convolution may take another algorithm than a
    3x3 one of the same GEMM (a strided input gradient scatters). A convolution PyTorch runs
    on channels-last maps (attrs["memory_format"]) adds an eighth number, 1: oneDNN runs
    other kernels on them (hwmodels/kernels.py)."""
    gemm = kind_of(op.kind).gemm_shape
    return gemm(op) if gemm is not None else None


def layout(op) -> tuple[int, int]:
    """(planes, pixels) of the first input of an op that is not a GEMM (of the output for a
    forward pool): N*C planes of H*W pixels for an image tensor, N rows of F features for a
    2-D one, 1 plane otherwise; for an optimizer update, (parameter tensors, parameters).

    Why: ops of one kind with equal FLOPs and bytes run at different speeds by how their data
    is laid out (kernels loop over planes): measured on a 2-vCPU EPYC, a 2x2 max-pool over
    256 x 192 planes of 4x4 pixels takes 2.6 ns per value, one over 32 x 24 planes of 32x32
    pixels 4.6 ns, though their FLOPs and bytes are the same."""
    own = kind_of(op.kind).layout
    if own is not None:   # a forward pool's output; an update's (tensors, values)
        return own(op)
    return shape_layout(op.in_specs[0].shape if op.in_specs else op.out.shape)


def point_shape(op) -> tuple[int, ...]:
    """What a calibrated profile keys an op's time on besides FLOPs and bytes: the GEMM shape
    of a convolution or linear layer (with a convolution's memory format where it is
    channels-last), the layout of any other op."""
    gemm = gemm_shape(op) if op.kind in MATMUL_KINDS else None
    return gemm if gemm is not None else layout(op)
