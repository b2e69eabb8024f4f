"""GPU memory as a PyTorch training process uses it.

- `runtime_reservation(spec)`: what the process cannot use for tensors: the part of the board
  CUDA does not expose (`driver_bytes`) and the CUDA context with the library handles
  (`context_bytes`, which nvidia-smi counts as the process's).
- `CachingAllocator`: PyTorch's CUDA caching allocator, replayed on a sequence of tensor
  allocations and frees. Requests are rounded to 512-byte blocks; small ones (<= 1 MiB) come
  from 2 MiB segments, medium ones (< 10 MiB) from 20 MiB segments, large ones get a segment of
  their own rounded to 2 MiB. A request takes the smallest cached free block that holds it
  (best fit) and splits off the rest when the rest is worth keeping (>= 512 bytes in a small
  segment, > 1 MiB in a large one); a freed block merges with free neighbours in its segment;
  segments stay cached (reserved) until a new segment would not fit, when every wholly free
  segment is released and the allocation retried. `reserved` is what
  torch.cuda.max_memory_reserved reports, `allocated` what max_memory_allocated reports.
- `conv_workspace_bytes(op, algorithm)`: the scratch memory a cuDNN convolution algorithm asks
  for during one forward, backward-data or backward-filter call.
What cudnn.benchmark's algorithm search does to the allocator is in cudnn_benchmark.py.

The constants and their sources are in catalog/gpu_runtime.toml.
"""
from __future__ import annotations

import bisect
import importlib.resources
import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from workloads.graph import Op

from .specs import DeviceSpec, HardwareError

RUNTIME_FILE = "gpu_runtime.toml"
GIB = 2 ** 30
CONV_KINDS = ("conv2d", "conv2d_grad_input", "conv2d_grad_weight")
# cuDNN's convolution algorithms by what their workspace holds (conv_workspace_bytes)
CONV_ALGORITHMS = ("implicit_gemm", "implicit_precomp_gemm", "direct", "winograd_fused",
                   "winograd_nonfused", "gemm", "fft", "fft_tiling")


@lru_cache(maxsize=1)
def runtime_data() -> dict:
    ref = importlib.resources.files("hwmodels.catalog").joinpath(RUNTIME_FILE)
    data = tomllib.loads(ref.read_text(encoding="utf-8"))
    for section in ("allocator", "context", "cuda_total", "cudnn_workspace", "launch"):
        if not isinstance(data.get(section), dict):
            raise HardwareError(f"catalog/{RUNTIME_FILE}: missing table [{section}]")
    return data


def kernel_launch_s() -> float:
    """The host's seconds for a bare kernel launch inside a framework op ([launch])."""
    value = runtime_data()["launch"].get("kernel_launch_s")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e-3:
        raise HardwareError(f"catalog/{RUNTIME_FILE}: [launch] kernel_launch_s must be seconds "
                            f"between 0 and 1e-3, got {value!r}")
    return float(value)


# -- what the process cannot use ------------------------------------------------------------
@dataclass(frozen=True)
class RuntimeReservation:
    driver_bytes: int    # nominal memory CUDA does not expose (driver, ECC)
    context_bytes: int   # CUDA context and library handles (nvidia-smi counts it as used)

    @property
    def total_bytes(self) -> int:
        return self.driver_bytes + self.context_bytes


def context_bytes(spec: DeviceSpec) -> int:
    """Bytes of the CUDA context and the library handles on a GPU (0 for other devices)."""
    if spec.kind != "gpu":
        return 0
    ctx = runtime_data()["context"]
    arch = getattr(spec, "architecture", None)
    sms = getattr(spec, "sm_count", None)
    threads = ctx["max_threads_per_sm"].get(arch)
    if not sms or threads is None:
        return int(ctx["fallback_bytes"])
    return int(sms * threads * ctx["stack_bytes_per_thread"] + ctx["libraries_bytes"])


def driver_bytes(spec: DeviceSpec) -> int:
    """Nominal memory of the board that CUDA does not expose (0 where not known)."""
    if spec.kind != "gpu":
        return 0
    board = runtime_data()["cuda_total"].get(spec.name)
    if board is None or spec.memory_bytes != board["nominal_gib"] * GIB:
        return 0
    return int(spec.memory_bytes - round(board["total_gib"] * GIB))


def runtime_reservation(spec: DeviceSpec) -> RuntimeReservation:
    return RuntimeReservation(driver_bytes(spec), context_bytes(spec))


# -- the caching allocator ------------------------------------------------------------------
@dataclass(frozen=True)
class AllocatorRules:
    block_bytes: int
    small_request_max_bytes: int
    small_segment_bytes: int
    medium_segment_bytes: int
    large_request_min_bytes: int
    large_rounding_bytes: int

    @classmethod
    def pytorch(cls) -> "AllocatorRules":
        return cls(**runtime_data()["allocator"])

    def block_size(self, nbytes: int) -> int:
        """A request as the allocator counts it: rounded up to whole blocks (0 stays 0)."""
        if nbytes <= 0:
            return 0
        return -(-int(nbytes) // self.block_bytes) * self.block_bytes

    def is_small(self, size: int) -> bool:
        return size <= self.small_request_max_bytes

    def segment_size(self, size: int) -> int:
        """The cudaMalloc a request makes when no cached block holds it."""
        if self.is_small(size):
            return self.small_segment_bytes
        if size < self.large_request_min_bytes:
            return self.medium_segment_bytes
        step = self.large_rounding_bytes
        return -(-size // step) * step

    def splits(self, small: bool, remaining: int) -> bool:
        """Whether a free block's rest after a request is split off and kept free."""
        return remaining >= self.block_bytes if small else remaining > self.small_request_max_bytes


def block_bytes(nbytes: int) -> int:
    """Bytes PyTorch's CUDA allocator counts for a tensor of `nbytes` (512-byte blocks)."""
    return AllocatorRules.pytorch().block_size(nbytes)


class _Block:
    __slots__ = ("segment", "offset", "size", "small", "free", "prev", "next")

    def __init__(self, segment: int, offset: int, size: int, small: bool) -> None:
        self.segment, self.offset, self.size, self.small = segment, offset, size, small
        self.free = True
        self.prev: _Block | None = None
        self.next: _Block | None = None

    @property
    def key(self) -> tuple[int, int, int]:   # the pools' order: size, then address
        return (self.size, self.segment, self.offset)


class CachingAllocator:
    """A replay of PyTorch's CUDA caching allocator on one stream.

    limit_bytes: memory the allocator may reserve (None: unbounded). When a new segment would
    pass it, wholly free segments are released first, as PyTorch does before it reports out of
    memory; `malloc` then returns False and changes nothing if the request still does not fit,
    unless asked to `overcommit`: then it allocates anyway (so that a step that does not fit
    still says what it would need) and counts the event in `over_limit`.
    `requested` counts the live requests rounded to blocks; `allocated` counts the blocks
    handed out, which include the rest of a block too small to split off."""

    def __init__(self, limit_bytes: int | None = None,
                 rules: AllocatorRules | None = None) -> None:
        self.rules = rules or AllocatorRules.pytorch()
        self.limit = limit_bytes
        self.pools: dict[bool, list[tuple[int, int, int]]] = {True: [], False: []}
        self._free_at: dict[tuple[int, int, int], _Block] = {}
        self.live: dict[object, _Block] = {}
        self.segments = 0
        self.allocated = self.reserved = self.requested = 0
        self.peak_allocated = self.peak_reserved = self.peak_requested = 0
        self.over_limit = 0
        self._requests: dict[object, int] = {}

    def malloc(self, key: object, nbytes: int, overcommit: bool = False,
               counted: bool = True) -> bool:
        """Allocate `nbytes` under `key`; False (and nothing changed) if it does not fit.
        A request that is not `counted` holds blocks but stays out of `requested` (scratch
        memory the caller's own accounting of tensors does not see)."""
        if key in self.live:
            raise ValueError(f"allocator: {key!r} is already allocated")
        size = self.rules.block_size(nbytes)
        if size == 0:
            return True
        small = self.rules.is_small(size)
        block = self._best_fit(small, size)
        if block is None:
            block = self._new_segment(small, size, overcommit)
            if block is None:
                return False
        self._take(block)
        rest = block.size - size
        if self.rules.splits(small, rest):
            tail = _Block(block.segment, block.offset + size, rest, small)
            tail.prev, tail.next = block, block.next
            if block.next is not None:
                block.next.prev = tail
            block.next, block.size = tail, size
            self._give(tail)
        block.free = False
        self.live[key] = block
        self._requests[key] = size if counted else 0
        self.allocated += block.size
        self.requested += self._requests[key]
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_requested = max(self.peak_requested, self.requested)
        return True

    def free(self, key: object) -> None:
        block = self.live.pop(key, None)
        if block is None:
            return   # a zero-byte tensor, or one this replay never allocated
        self.allocated -= block.size
        self.requested -= self._requests.pop(key)
        block.free = True
        for neighbour in (block.prev, block.next):
            if neighbour is not None and neighbour.free:
                self._take(neighbour)
                if neighbour is block.prev:
                    neighbour.size += block.size
                    neighbour.next = block.next
                    if block.next is not None:
                        block.next.prev = neighbour
                    block = neighbour
                else:
                    block.size += neighbour.size
                    block.next = neighbour.next
                    if neighbour.next is not None:
                        neighbour.next.prev = block
        self._give(block)

    def largest_free_block(self) -> int:
        """The largest cached block free to hand out (0 when none)."""
        return max((key[0] for pool in self.pools.values() for key in pool[-1:]), default=0)

    def release_cached(self) -> None:
        """Give every wholly free segment back to CUDA (what PyTorch does before an OOM)."""
        for small in (True, False):
            for key in list(self.pools[small]):
                block = self._free_at[key]
                if block.prev is None and block.next is None:
                    self._take(block)
                    self.reserved -= block.size

    # -- internals -------------------------------------------------------------------------
    def _best_fit(self, small: bool, size: int) -> _Block | None:
        pool = self.pools[small]
        i = bisect.bisect_left(pool, (size, -1, -1))
        return self._free_at[pool[i]] if i < len(pool) else None

    def _new_segment(self, small: bool, size: int, overcommit: bool) -> _Block | None:
        seg = self.rules.segment_size(size)
        if self.limit is not None and self.reserved + seg > self.limit:
            self.release_cached()
            if self.reserved + seg > self.limit:
                if not overcommit:
                    return None
                self.over_limit += 1
        self.segments += 1
        block = _Block(self.segments, 0, seg, small)
        self.reserved += seg
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self._give(block)
        return block

    def _give(self, block: _Block) -> None:
        block.free = True
        key = block.key
        bisect.insort(self.pools[block.small], key)
        self._free_at[key] = block

    def _take(self, block: _Block) -> None:
        key = block.key
        pool = self.pools[block.small]
        del pool[bisect.bisect_left(pool, key)]
        del self._free_at[key]


# -- cuDNN workspaces -----------------------------------------------------------------------
def conv_workspace_bytes(op: Op, algorithm: str) -> int:
    """Scratch bytes cuDNN asks for to run convolution pass `op` (conv2d, conv2d_grad_input or
    conv2d_grad_weight) with `algorithm`, held only during the call:
    - implicit_gemm, direct, winograd_fused: 0 (they build their tiles in shared memory);
    - implicit_precomp_gemm: a table of input offsets, one int32 per filter tap and channel;
    - gemm: the explicit im2col matrix of the whole batch, N*P*Q rows of C/g*R*S values;
    - winograd_nonfused: the transformed input, filter and output, 6x6 values per 4x4 tile;
    - fft: input, filter and output spectra at the padded input size, complex values of twice
      the element width, half a plane each (real transforms);
    - fft_tiling: the same on 32x32 tiles.
    Values are of the op's element width (half under AMP and FP16)."""
    if op.kind not in CONV_KINDS:
        raise HardwareError(f"conv_workspace_bytes: op {op.name!r} is a {op.kind}, not a "
                            f"convolution pass ({', '.join(CONV_KINDS)})")
    if algorithm not in CONV_ALGORITHMS:
        raise HardwareError(f"conv_workspace_bytes: unknown algorithm {algorithm!r}; known: "
                            f"{', '.join(CONV_ALGORITHMS)}")
    a = op.attrs
    n, c, h, w = a["in_shape"]
    _, k, p, q = a["out_shape"]
    r, s = a["kernel"]
    g = a.get("groups", 1)
    elem = op.out.dtype_bytes
    tiles_conf = runtime_data()["cudnn_workspace"]
    if algorithm in ("implicit_gemm", "direct", "winograd_fused"):
        return 0
    if algorithm == "implicit_precomp_gemm":
        return (c // g) * r * s * 4
    if algorithm == "gemm":
        return n * p * q * (c // g) * r * s * elem
    if algorithm == "winograd_nonfused":
        m = tiles_conf["winograd_nonfused_output_tile"]
        alpha = m + r - 1
        th, tw = (h, w) if op.kind == "conv2d_grad_input" else (p, q)
        tiles = n * math.ceil(th / m) * math.ceil(tw / m)
        return alpha * alpha * (tiles * (c + k) + c * k) * elem
    ph, pw = a.get("padding", (0, 0))
    if algorithm == "fft":
        planes = (h + 2 * ph) * ((w + 2 * pw) // 2 + 1)
        return (n * c + c * k + n * k) * planes * 2 * elem
    tile = tiles_conf["fft_tile"]                                      # fft_tiling
    per_tile = (tile - r + 1, tile - s + 1)
    tiles = math.ceil(p / per_tile[0]) * math.ceil(q / per_tile[1])
    return (n * c * tiles + c * k + n * k * tiles) * tile * (tile // 2 + 1) * 2 * elem

