"""One all-reduce of gradients as a data-parallel framework groups them: what DDP's buckets,
Horovod's fused buffers, MXNet's kvstore keys and Caffe's layers each make."""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class SyncGroup:
    """One all-reduce of gradients: the ops whose gradients it carries (`ops`, each rank
    waits for them), its bytes, the tasks it also waits for (`after`: Horovod's cycle tick),
    and time it spends before its first transfer beyond NCCL's launch (`extra_launch_s`:
    Horovod's copies into and out of its fusion buffer, a kvstore key's second NCCL call)."""
    ops: tuple[str, ...]
    nbytes: float
    after: tuple[str, ...] = ()
    extra_launch_s: float = 0.0

