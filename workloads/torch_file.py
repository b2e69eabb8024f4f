"""A network from the user's own Python file: `path/to/net.py:factory` names a function (or a
class) in that file that returns a torch.nn.Module; `from_torch` lowers it on a random input
of the workload option `input_shape` (one sample: "3x32x32" for an image, "8x128" for an
(N, C, L) sequence, "784" for flat features or a sequence of tokens). With the option
`tokens=V` the input holds integer token ids below V (what an nn.Embedding reads).

    dnnsim simulate --workload mynet.py:make_net --workload-option input_shape=3x32x32 ...
    dnnsim simulate --workload lm.py:make --workload-option input_shape=128 \
        --workload-option tokens=50257 ...

The zoo resolves such names through `file_info` (workloads.zoo.info), so scenarios, sweeps
and the Python API take them wherever they take a zoo name. torch is imported only then.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Callable

from .graph import OpGraph, WorkloadError
from .zoo._base import NetworkInfo

FILE_SPEC = re.compile(r"(?P<path>.+\.py):(?P<attr>[A-Za-z_][A-Za-z0-9_]*)")
_LOADED: dict[tuple[str, int], object] = {}   # (resolved path, mtime_ns) -> module


def is_file_spec(name: str) -> bool:
    return isinstance(name, str) and FILE_SPEC.fullmatch(name) is not None


def file_info(name: str) -> NetworkInfo:
    """The zoo entry of `path.py:factory` (its input shape comes with the build's options)."""
    match = FILE_SPEC.fullmatch(name)
    if match is None:
        raise WorkloadError(f"{name!r} is not a network file; write path/to/net.py:factory")
    factory = _factory(Path(match["path"]), match["attr"])

    def build(batch: int = 1, input_shape=None, tokens=None) -> OpGraph:
        import torch

        from .torch_import import from_torch
        shape = parse_input_shape(name, input_shape)
        vocabulary = _parse_tokens(name, tokens)
        torch.manual_seed(0)   # the same weights each time: a graph does not depend on them
        module = factory()
        if not isinstance(module, torch.nn.Module):
            raise WorkloadError(f"{name}: {match['attr']}() returned "
                                f"{type(module).__name__!r}, not a torch.nn.Module")
        example = torch.randn(batch, *shape) if vocabulary is None else \
            torch.randint(0, vocabulary, (batch, *shape))
        return from_torch(module, example, name=match["attr"])
    return NetworkInfo(name, (), 0, f"PyTorch module from {match['path']}", build)


def _parse_tokens(name: str, value) -> int | None:
    if value is None:
        return None
    if not _is_whole(value) or int(value) < 1:
        raise WorkloadError(f"{name}: tokens {value!r} must be the vocabulary size, an "
                            "integer >= 1")
    return int(value)


def parse_input_shape(name: str, value) -> tuple[int, ...]:
    """(C, H, W), (C, L) or (F,) of one sample, from "3x32x32", "3,32,32", 784 or a list."""
    if value is None:
        raise WorkloadError(f"{name}: give the input of one sample as the workload option "
                            "input_shape (e.g. input_shape=3x32x32, or 784 for features)")
    if isinstance(value, str):
        parts = re.split(r"[x,]", value.strip())
    else:
        parts = list(value) if isinstance(value, (list, tuple)) else [value]
    shape = tuple(int(p) for p in parts if _is_whole(p))
    if len(shape) != len(parts) or len(shape) not in (1, 2, 3) or min(shape, default=0) < 1:
        raise WorkloadError(f"{name}: input_shape {value!r} must be C x H x W, C x L or F, "
                            "positive integers (e.g. 3x32x32)")
    return shape


def _is_whole(part) -> bool:
    """An int, a float with no fraction, or the text of an integer."""
    if isinstance(part, bool):
        return False
    if isinstance(part, (int, float)):
        return float(part).is_integer()
    return isinstance(part, str) and part.strip().lstrip("+-").isdigit()


def _factory(path: Path, attr: str) -> Callable[[], object]:
    if not path.is_file():
        raise WorkloadError(f"network file {str(path)!r} does not exist")
    resolved = path.resolve()
    key = (str(resolved), resolved.stat().st_mtime_ns)
    if key not in _LOADED:
        # a private module name per file, so two files named net.py do not collide
        mod_name = "dnnsim_user_" + hashlib.sha1(key[0].encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(mod_name, resolved)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module   # dataclasses and pickling look modules up here
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's code may raise anything
            sys.modules.pop(mod_name, None)
            raise WorkloadError(f"importing {str(path)!r} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
        _LOADED[key] = module
    module = _LOADED[key]
    factory = getattr(module, attr, None)
    if not callable(factory):
        defined = sorted(n for n, v in vars(module).items()
                         if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        raise WorkloadError(f"{str(path)!r} has no function or class {attr!r}; it defines: "
                            f"{', '.join(defined) or 'nothing callable'}")
    return factory
