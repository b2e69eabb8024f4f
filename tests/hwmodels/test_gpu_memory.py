"""hwmodels.gpu_memory: the CUDA context, PyTorch's caching allocator, cuDNN's workspaces."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from hwmodels.gpu_memory import (
    CONV_ALGORITHMS,
    AllocatorRules,
    CachingAllocator,
    block_bytes,
    context_bytes,
    conv_workspace_bytes,
    driver_bytes,
    runtime_reservation,
)
from hwmodels.specs import HardwareError
from workloads.builder import GraphBuilder

MIB = 2 ** 20


def test_requests_round_up_to_512_byte_blocks():
    assert [block_bytes(n) for n in (0, 1, 512, 513, 4096, 4097)] == \
        [0, 512, 512, 1024, 4096, 4608]


def test_segment_sizes_follow_pytorchs_size_classes():
    rules = AllocatorRules.pytorch()
    assert rules.segment_size(512) == 2 * MIB                  # small: 2 MiB segments
    assert rules.segment_size(1 * MIB) == 2 * MIB
    assert rules.segment_size(1 * MIB + 512) == 20 * MIB       # medium: 20 MiB segments
    assert rules.segment_size(10 * MIB - 512) == 20 * MIB
    assert rules.segment_size(10 * MIB) == 10 * MIB           # large: rounded to 2 MiB
    assert rules.segment_size(11 * MIB) == 12 * MIB


def test_small_requests_share_a_segment():
    a = CachingAllocator()
    assert a.malloc("x", 600_000) and a.malloc("y", 600_000)
    assert a.reserved == 2 * MIB and a.segments == 1
    assert a.allocated == a.requested == 2 * block_bytes(600_000)


def test_best_fit_reuses_a_cached_block_and_splits_the_rest():
    a = CachingAllocator()
    a.malloc("big", 100 * MIB)
    a.free("big")
    assert a.allocated == 0 and a.reserved == 100 * MIB       # cached, not returned
    a.malloc("x", 60 * MIB)                                    # reuses it; 40 MiB split off
    assert a.reserved == 100 * MIB and a.allocated == 60 * MIB
    a.malloc("y", 50 * MIB)                                    # 40 MiB is too small
    assert a.reserved == 150 * MIB and a.peak_reserved == 150 * MIB
    a.malloc("z", 40 * MIB)                                    # the split-off rest
    assert a.reserved == 150 * MIB


def test_a_rest_of_at_most_1_mib_stays_in_the_block():
    a = CachingAllocator()
    a.malloc("x", 11 * MIB + MIB // 2)                         # a 12 MiB segment
    assert a.requested == 11 * MIB + MIB // 2 and a.allocated == 12 * MIB


def test_freed_neighbours_merge():
    a = CachingAllocator()
    for key in ("a", "b", "c"):
        a.malloc(key, 2 * MIB)                                 # one 20 MiB segment
    a.free("a")
    a.free("b")
    a.malloc("d", 4 * MIB)                                     # fits the merged a+b
    assert a.segments == 1 and a.reserved == 20 * MIB


def test_at_the_limit_cached_segments_are_released_before_running_out():
    a = CachingAllocator(limit_bytes=100 * MIB)
    a.malloc("x", 60 * MIB)
    a.free("x")
    assert a.malloc("y", 80 * MIB)                             # released x's segment first
    assert a.reserved == 80 * MIB
    assert not a.malloc("z", 40 * MIB)                         # 120 MiB: does not fit
    assert a.reserved == 80 * MIB and "z" not in a.live
    assert a.malloc("z", 40 * MIB, overcommit=True) and a.over_limit == 1


def test_context_is_local_memory_plus_libraries_and_within_300_to_600_mib():
    v100 = catalog.device("v100")
    if getattr(v100, "sm_count", None):
        assert context_bytes(v100) == 80 * 2048 * 1024 + 300 * MIB
    for name in catalog.builtin().names("gpu"):
        assert 300 * MIB <= context_bytes(catalog.device(name)) <= 600 * MIB, name
    assert context_bytes(catalog.device(catalog.builtin().names("cpu")[0])) == 0


def test_driver_keeps_what_cuda_does_not_expose_on_a_nominal_board_only():
    v100 = catalog.device("v100")
    assert driver_bytes(v100) == 16 * 2 ** 30 - round(15.78 * 2 ** 30)
    small = v100.with_options(memory_bytes=2 ** 30)
    assert driver_bytes(small) == 0
    held = runtime_reservation(v100)
    assert held.total_bytes == held.driver_bytes + held.context_bytes


def _conv(batch=8, cin=64, cout=128, size=28, kernel=3, stride=1):
    b = GraphBuilder("ws", input_shape=(cin, size, size), batch=batch)
    b.conv2d(b.input(), cout, kernel, stride=stride, padding=kernel // 2)
    return next(op for op in b.build() if op.kind == "conv2d")


def test_conv_workspaces_by_algorithm():
    op = _conv()
    n, c, k, p, r = 8, 64, 128, 28, 3
    assert conv_workspace_bytes(op, "implicit_gemm") == 0
    assert conv_workspace_bytes(op, "winograd_fused") == 0
    assert conv_workspace_bytes(op, "implicit_precomp_gemm") == c * r * r * 4
    assert conv_workspace_bytes(op, "gemm") == n * p * p * c * r * r * 4     # im2col
    tiles = n * 7 * 7                                           # 4x4 output tiles of 28x28
    assert conv_workspace_bytes(op, "winograd_nonfused") == 36 * (tiles * (c + k) + c * k) * 4
    assert conv_workspace_bytes(op, "fft") == (n * c + c * k + n * k) * 30 * 16 * 2 * 4
    assert all(conv_workspace_bytes(op, a) >= 0 for a in CONV_ALGORITHMS)


def test_conv_workspace_rejects_other_ops_and_unknown_algorithms():
    b = GraphBuilder("ws", input_shape=(3, 8, 8), batch=2)
    relu = b.relu(b.input())
    op = b.build().op(relu)
    with pytest.raises(HardwareError, match="not a convolution pass"):
        conv_workspace_bytes(op, "gemm")
    with pytest.raises(HardwareError, match="unknown algorithm 'magic'"):
        conv_workspace_bytes(_conv(), "magic")
