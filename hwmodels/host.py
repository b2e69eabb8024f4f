"""Host-side copy costs (for swapping activations between GPU and host memory).

Pinned (page-locked) host buffers let the GPU's copy engine DMA straight over the link: the
copy costs the link transfer only. Pageable buffers are first copied by the CPU into a pinned
staging buffer (the CUDA driver does this), so a pageable copy also pays a host memcpy; we add
the two (the driver pipelines them in chunks, so this is an upper bound, close in practice
because pageable copies are typically ~half the pinned bandwidth).
"""
from __future__ import annotations

from .network import transfer_time_s
from .specs import HardwareError, HostSpec, LinkSpec


def host_memcpy_time_s(host: HostSpec, nbytes: float) -> float:
    """A CPU memcpy in host DRAM: reads and writes every byte (2 * nbytes of traffic)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or not nbytes >= 0:
        raise HardwareError(f"host {host.name!r}: copy size must be a number >= 0 bytes, "
                            f"got {nbytes!r}")
    return 2.0 * nbytes / host.mem_bandwidth_Bps


def host_device_copy_time_s(link: LinkSpec, host: HostSpec, nbytes: float,
                            pinned: bool = True) -> float:
    """A host<->device copy of nbytes over `link` (one direction), from pinned or pageable
    host memory."""
    t = transfer_time_s(link, nbytes)
    return t if pinned else t + host_memcpy_time_s(host, nbytes)
