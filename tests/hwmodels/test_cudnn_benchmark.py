"""hwmodels.cudnn_benchmark: cudnn.benchmark's algorithm search as it leaves
PyTorch's caching allocator (the largest workspace that fits, kept cached)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.cudnn_benchmark import FIND_ALGORITHMS, CudnnBenchmarkSearch, supports
from hwmodels.cudnn_releases import cudnn_release
from hwmodels.gpu_memory import CachingAllocator, conv_workspace_bytes
from workloads.builder import GraphBuilder
from workloads.training import lower_training

MIB = 2 ** 20


def _passes(batch=8, cin=64, cout=128, size=28, kernel=3, stride=1):
    """The forward, backward-data and backward-filter ops of one convolution."""
    b = GraphBuilder("search", input_shape=(cin, size, size), batch=batch)
    x = b.conv2d(b.input(), cin, 1, name="first")   # so that "conv" has a data gradient
    y = b.conv2d(x, cout, kernel, stride=stride, padding=kernel // 2, name="conv")
    b.linear(b.flatten(y), 10, name="fc")
    g = lower_training(b.build())
    return {op.kind: op for op in g if op.kind.startswith("conv2d")
            and "conv" in (op.name, op.forward)}


def _candidates(op):
    return sorted(conv_workspace_bytes(op, a) for a in FIND_ALGORITHMS[op.kind]
                  if supports(op, a))


def test_which_algorithms_cudnn_offers_per_pass_and_shape():
    three = _passes()
    assert all(supports(three["conv2d"], a) for a in FIND_ALGORITHMS["conv2d"])
    assert supports(three["conv2d_grad_input"], "winograd_fused")
    # no fused Winograd and no explicit GEMM for the weight gradient
    assert not supports(three["conv2d_grad_weight"], "winograd_fused")
    assert not supports(three["conv2d_grad_weight"], "gemm")
    strided = _passes(stride=2)["conv2d"]
    assert [a for a in FIND_ALGORITHMS["conv2d"] if supports(strided, a)] == \
        ["implicit_gemm", "implicit_precomp_gemm", "gemm"]
    large = _passes(size=300, cin=3, cout=8, batch=1)["conv2d"]   # padded side 302 > 256
    assert not supports(large, "fft") and supports(large, "fft_tiling")
    five = _passes(kernel=5)["conv2d"]
    assert supports(five, "winograd_nonfused") and not supports(five, "winograd_fused")


def test_the_search_takes_the_largest_workspace_that_fits_and_leaves_it_cached():
    op = _passes()["conv2d"]
    sizes = [s for s in _candidates(op) if s > 0]
    assert len(sizes) >= 3
    limit = 64 * MIB + sizes[-2] + 4 * MIB          # the largest does not fit, the next does
    assert sizes[-1] > limit - 64 * MIB
    a = CachingAllocator(limit_bytes=limit)
    a.malloc("tensors", 64 * MIB)
    taken = CudnnBenchmarkSearch().run(a, op)
    assert taken == sizes[-2]
    assert a.requested == a.allocated == 64 * MIB  # scratch: no tensor counted
    assert a.reserved > 64 * MIB + taken - 2 * MIB and a.reserved <= limit
    assert a.largest_free_block() >= taken        # cached, not given back


def test_a_shape_is_searched_once_and_other_ops_never():
    passes = _passes()
    search = CudnnBenchmarkSearch()
    a = CachingAllocator(limit_bytes=2 ** 34)
    assert search.run(a, passes["conv2d"]) > 0
    reserved = a.reserved
    assert search.run(a, passes["conv2d"]) == 0 and a.reserved == reserved
    assert search.run(a, passes["conv2d_grad_weight"]) > 0    # another pass, another shape
    b = GraphBuilder("r", input_shape=(3, 8, 8), batch=2)
    relu = b.build().op(b.relu(b.input()))
    assert search.run(a, relu) == 0


def test_the_search_empties_the_cache_while_its_workspace_is_held():
    op = _passes(batch=4, cin=64, cout=64, size=28)["conv2d"]
    assert MIB < max(_candidates(op)) < 30 * MIB
    a = CachingAllocator(limit_bytes=2 ** 34)
    a.malloc("old", 30 * MIB)
    a.free("old")                                 # a cached segment of 30 MiB
    taken = CudnnBenchmarkSearch().run(a, op)
    assert taken == max(_candidates(op))
    # the workspace came out of the cached segment, which emptyCache cannot release while the
    # workspace holds part of it; freed afterwards, the segment stays cached
    assert a.reserved == 30 * MIB and a.allocated == 0
    small = _passes(batch=1, cin=8, cout=8, size=8)["conv2d"]  # workspaces under 1 MiB
    b = CachingAllocator(limit_bytes=2 ** 34)
    b.malloc("old", 30 * MIB)
    b.free("old")
    assert 0 < CudnnBenchmarkSearch().run(b, small) <= MIB
    # a small workspace comes from a 2 MiB segment: the 30 MiB one was wholly free, released
    assert b.reserved == 2 * MIB


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 900), st.integers(1, 16), st.sampled_from([1, 3, 5]))
def test_the_search_never_reserves_past_the_limit_nor_counts_tensors(free_mib, batch, kernel):
    op = _passes(batch=batch, kernel=kernel)["conv2d_grad_input"]
    limit = 100 * MIB + free_mib * MIB
    a = CachingAllocator(limit_bytes=limit)
    a.malloc("tensors", 100 * MIB)
    taken = CudnnBenchmarkSearch().run(a, op)
    assert a.reserved <= limit
    assert a.requested == 100 * MIB
    assert taken in [0, *_candidates(op)]
    assert taken <= free_mib * MIB


def test_the_search_times_only_what_the_release_has_on_the_architecture():
    wgrad = _passes()["conv2d_grad_weight"]
    deepbench_5 = cudnn_release("maxwell", (5, 1, 0))
    torch7_5_1_05 = cudnn_release("maxwell", (5, 1, 5))
    # DeepBench's cuDNN 5.1 build's Maxwell weight gradient transforms no tiles; 5.1.05's
    # does, and so does the former's on Pascal
    for algorithm in ("winograd_nonfused", "fft_tiling"):
        assert not supports(wgrad, algorithm, deepbench_5, "maxwell")
        assert supports(wgrad, algorithm, torch7_5_1_05, "maxwell")
        assert supports(wgrad, algorithm, deepbench_5, "pascal")
    assert supports(wgrad, "fft", deepbench_5, "maxwell")
    # so its search takes whole-image FFT's workspace, not FFT_TILING's larger one
    sizes = {a: conv_workspace_bytes(wgrad, a) for a in FIND_ALGORITHMS[wgrad.kind]}
    assert sizes["fft_tiling"] > sizes["fft"] > 0
    taken = {}
    for arch, cudnn in (("maxwell", (5, 1, 0)), ("maxwell", (5, 1, 5)), (None, None)):
        search = (CudnnBenchmarkSearch.for_device(arch, cudnn) if arch
                  else CudnnBenchmarkSearch())
        taken[cudnn] = search.run(CachingAllocator(limit_bytes=2 ** 34), wgrad)
    assert taken[(5, 1, 0)] == sizes["fft"]
    assert taken[(5, 1, 5)] == taken[None] == sizes["fft_tiling"]
    # no Winograd on Kepler or in cuDNN 4; 5.1 and 6 have a non-fused one for 3x3 filters only
    fwd, five = _passes()["conv2d"], _passes(kernel=5)["conv2d"]
    assert not supports(fwd, "winograd_fused", cudnn_release("kepler"), "kepler")
    assert not supports(fwd, "winograd_nonfused", cudnn_release("pascal", (4, 0, 0)), "pascal")
    assert supports(fwd, "winograd_fused", cudnn_release("pascal", (6, 0, 21)), "pascal")
    assert not supports(five, "winograd_nonfused", cudnn_release("pascal", (6, 0, 21)),
                        "pascal")
    assert supports(five, "winograd_nonfused", cudnn_release("volta", (7, 6, 2)), "volta")
