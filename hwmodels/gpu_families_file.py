"""A families file of one's own (written by `dnnsim calibrate --published`, in the form of
catalog/gpu_families.toml) in place of the catalog's constants: what `--gpu-families FILE`
and the scenario field `gpu_families` load, and how a cluster's GPUs take it.

    from hwmodels.gpu_families_file import use_gpu_families
    use_gpu_families(cluster_or_models, "mine.toml")
"""
from __future__ import annotations

import os
from collections.abc import Iterable

from workloads.errors import check_input_file

from .gpu import GPUModel
from .gpu_constants import Framework, GpuFamily, load_families, load_frameworks
from .specs import HardwareError

GpuConstants = tuple[dict[str, GpuFamily], dict[str, Framework]]
# files loaded in this process, by path, modification time and size: each point of a sweep
# reads its file once; a file changed on disk is read again
_LOADED: dict[tuple[str, int, int], GpuConstants] = {}


def load_gpu_families(path: str | os.PathLike) -> GpuConstants:
    """The architectures' and frameworks' constants a families file holds, checked as the
    catalog's are; HardwareError naming the file where it is missing or malformed."""
    name = os.fspath(path)
    check_input_file(name, "GPU families file", HardwareError)
    try:
        st = os.stat(name)
    except OSError as exc:
        raise HardwareError(f"GPU families file {name!r}: {exc.strerror or exc}") from None
    key = (os.path.realpath(name), st.st_mtime_ns, st.st_size)
    if key not in _LOADED:
        try:
            with open(name, encoding="utf-8-sig") as fh:   # a byte-order mark is no text
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise HardwareError(f"GPU families file {name!r}: cannot be read ({exc})") from None
        where = f"GPU families file {name!r}"
        _LOADED[key] = (load_families(text, where), load_frameworks(text, where))
    return _LOADED[key]


def use_gpu_families(models: Iterable, path: str | os.PathLike) -> int:
    """Cost every GPU of `models` (device models, or devices with a .model: a Cluster's
    devices) with the constants of the families file at `path`; the number of GPUs set."""
    families, frameworks = load_gpu_families(path)
    count = 0
    for item in models:
        model = getattr(item, "model", item)
        if isinstance(model, GPUModel):
            model.families, model.frameworks = families, frameworks
            count += 1
    return count
