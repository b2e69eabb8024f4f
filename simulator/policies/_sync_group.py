"""One all-reduce of gradients as a data-parallel framework groups them: what DDP's buckets,
Horovod's fused buffers, MXNet's kvstore keys and Caffe's layers each make."""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
NORMALISATIONS = ("batchnorm", "layernorm", "groupnorm", "instancenorm")


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


def parameter_arrays_bytes(op) -> list[int]:
    """The bytes of each parameter array whose gradient a backward op makes, as a framework
    keeps them: a normalisation's scale and shift, a layer's weight and its bias (one per
    output channel or feature)."""
    total = op.param_bytes
    if op.kind.split("_")[0] in NORMALISATIONS:
        return [total // 2, total - total // 2]
    outputs = op.attrs.get("out_channels", op.attrs.get("out_features"))
    if op.attrs.get("bias") and isinstance(outputs, int) and 0 < outputs < op.params:
        bias = total * outputs // op.params
        return [total - bias, bias]
    return [total]
