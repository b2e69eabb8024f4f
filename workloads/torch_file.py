"""A network from the user's own Python file: `path/to/net.py:factory` names a function (or a
class) in that file that returns a torch.nn.Module; `from_torch` lowers it on a random input
of the workload option `input_shape` (one sample: "3x32x32" for an image, "8x128" for an
(N, C, L) sequence, "784" for flat features or a sequence of tokens). With the option
`tokens=V` the input holds integer token ids below V (what an nn.Embedding reads).

A model whose forward takes several inputs (forward(x, t), forward(image, text)) gets one
shape per input, joined by "+", in forward's order; "scalar" is an input of one number per
sample (a diffusion timestep, (N,)). `tokens` then says which inputs are token ids: one
value for the first input alone, or one per input joined by "+", 0 for an input of values.

    dnnsim simulate --workload mynet.py:make_net --workload-option input_shape=3x32x32 ...
    dnnsim simulate --workload lm.py:make --workload-option input_shape=128 \
        --workload-option tokens=50257 ...
    dnnsim simulate --workload unet.py:UNet --workload-option input_shape=3x64x64+scalar ...
    dnnsim simulate --workload clip.py:CLIP --workload-option input_shape=3x224x224+77 \
        --workload-option tokens=0+49408 ...

The module and its examples are built on the meta device (`with torch.device("meta")`): no
weight and no activation is allocated, so a 70-billion-parameter decoder imports in seconds.
Where that fails (control flow or `.item()` on values, numpy, a checkpoint loaded in the
factory, ids read from buffers, whose values meta tensors do not hold) the module is built
and run on the CPU at the full batch (where only the factory failed, it is first built on
the CPU and imported on meta), and the CPU's error, if any, is the one raised;
graph.meta["import_device"] says which was done and why. The option `import_on=cpu` asks for
the CPU run.

The zoo resolves such names through `file_info` (workloads.zoo.info), so scenarios, sweeps
and the Python API take them wherever they take a zoo name. torch is imported only then.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import sys
from contextlib import nullcontext
from pathlib import Path
from types import ModuleType
from typing import Callable

from .errors import ShapeError, check_input_file
from .graph import MAX_TENSOR_ELEMENTS, OpGraph, WorkloadError, count_text
from .zoo._base import NetworkInfo

# "meta": built and traced on the meta device, on the CPU where that fails; "cpu": a real run
IMPORT_DEVICES = ("meta", "cpu")
FILE_SPEC = re.compile(r"(?P<path>.+\.py):(?P<attr>[A-Za-z_][A-Za-z0-9_]*)")
_LOADED: dict[tuple[str, int], ModuleType] = {}   # (resolved path, mtime_ns) -> module


def is_file_spec(name: str) -> bool:
    return isinstance(name, str) and FILE_SPEC.fullmatch(name) is not None


def file_info(name: str) -> NetworkInfo:
    """The zoo entry of `path.py:factory` (its input shape comes with the build's options)."""
    match = FILE_SPEC.fullmatch(name)
    if match is None:
        raise WorkloadError(f"{name!r} is not a network file; write path/to/net.py:factory")
    factory = _factory(Path(match["path"]), match["attr"])

    def build(batch: int = 1, input_shape=None, tokens=None, moe_routing: str = "expected",
              import_on: str = "meta") -> OpGraph:
        shapes = parse_input_shapes(name, input_shape)
        for shape in shapes:   # before torch is asked for the batch (meta fails over to CPU)
            elements = batch * math.prod(shape)
            if elements > MAX_TENSOR_ELEMENTS:
                raise ShapeError(f"an input of {count_text(elements)} elements, past the most "
                                 f"one tensor may hold (2**53)")
        vocabularies = _parse_tokens(name, tokens, len(shapes))
        if import_on not in IMPORT_DEVICES:
            raise WorkloadError(f"{name}: import_on {import_on!r} is not one of "
                                f"{', '.join(IMPORT_DEVICES)}")

        def imported(device: str, built=None, build_on: str | None = None) -> OpGraph:
            return _import_on(device, name, match["attr"], factory, shapes, vocabularies,
                              batch, moe_routing, built, build_on)
        if import_on == "cpu":
            graph = imported("cpu")
            graph.meta["import_device"] = "cpu, at the full batch (import_on=cpu)"
            return graph
        return import_meta_first(name, imported)
    return NetworkInfo(name, (), 0, f"PyTorch module from {match['path']}", build)


def _built(name: str, attr: str, factory):
    """The user's module, built on the current default device."""
    import torch
    torch.manual_seed(0)   # the same weights each time: a graph does not depend on them
    try:
        module = factory()
    except Exception as exc:  # the user's code may raise anything (KeyboardInterrupt not)
        raise WorkloadError(f"{name}: {attr}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(f"{name}: {attr}() returned {type(module).__name__!r}, not a "
                            "torch.nn.Module")
    return module


def _import_on(device: str, name: str, attr: str, factory, shapes, vocabularies, batch: int,
               moe_routing: str, built=None, build_on: str | None = None) -> OpGraph:
    """The graph of the user's module built, with its examples, on `device` ("meta": shapes
    only, nothing allocated; "cpu": real weights and a real run), or built on `build_on` and
    moved there. `built` receives the module as soon as it is built (import_meta_first sizes
    a fallback by its weights)."""
    import torch

    from .torch_import import from_torch
    from .torch_shadow import shadow_mode
    # on meta, buffers the factory makes from constants (BERT's position ids) keep their values
    shadows = shadow_mode(torch) if device == "meta" else nullcontext()
    with torch.device(device), shadows:
        with torch.device(build_on or device):
            module = _built(name, attr, factory).to(device)
        if built is not None:
            built.append(module)
        try:   # on the CPU a batch is allocated: one too large for this machine is named
            examples = [torch.randn(batch, *shape) if vocabulary is None else
                        torch.randint(0, vocabulary, (batch, *shape))
                        for shape, vocabulary in zip(shapes, vocabularies, strict=True)]
        except (RuntimeError, MemoryError) as exc:
            raise WorkloadError(f"{name}: the input at batch {count_text(batch)} cannot be "
                                f"made on the {device} to trace the module ({exc}); give a "
                                "smaller batch") from None
        return from_torch(module, examples[0] if len(examples) == 1 else examples,
                          name=attr, moe_routing=moe_routing)


def _parse_tokens(name: str, value, inputs: int = 1) -> list[int | None]:
    """The vocabulary of each of `inputs` inputs (None: values): one value is the first
    input's; several, joined by "+" (or a list), one per input, 0 for values."""
    if value is None:
        return [None] * inputs
    several = isinstance(value, (list, tuple)) or (isinstance(value, str) and "+" in value)
    parts = list(value) if isinstance(value, (list, tuple)) else \
        value.split("+") if several else [value]
    if several and len(parts) != inputs:
        raise WorkloadError(f"{name}: tokens {value!r} gives {len(parts)} values for "
                            f"{inputs} inputs; give one per input (0 for an input of values)")
    if any(not _is_whole(p) or int(p) < (0 if several else 1) for p in parts):
        raise WorkloadError(f"{name}: tokens {value!r} must be the vocabulary size, an "
                            "integer >= 1" + (" (0 for an input of values)" if several else ""))
    sizes = [int(p) or None for p in parts]
    return sizes + [None] * (inputs - len(sizes))


def parse_input_shapes(name: str, value) -> list[tuple[int, ...]]:
    """The sample shape of each input: "3x32x32+scalar" (or a list of lists) is two inputs,
    an image and one number per sample (shape ()); anything parse_input_shape takes is one."""
    if value is None or not (isinstance(value, str) and "+" in value or
                             isinstance(value, (list, tuple)) and value and
                             all(isinstance(v, (list, tuple)) for v in value)):
        return [parse_input_shape(name, value)]
    parts = value.split("+") if isinstance(value, str) else list(value)
    shapes: list[tuple[int, ...]] = []
    for i, part in enumerate(parts):
        if i > 0 and (part == [] or isinstance(part, str) and part.strip() == "scalar"):
            shapes.append(())
            continue
        try:
            shapes.append(parse_input_shape(name, part))
        except WorkloadError:
            raise WorkloadError(
                f"{name}: input_shape {value!r}: input {i + 1} of {len(parts)} is {part!r}; "
                "each input is C x H x W, C x L or F, positive integers, or 'scalar' (one "
                "number per sample) after the first, joined by '+' "
                "(e.g. input_shape=3x64x64+scalar)") from None
    return shapes


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
    if math.prod(shape) > MAX_TENSOR_ELEMENTS:   # before torch is asked for such a tensor
        raise WorkloadError(f"{name}: input_shape {value!r} is {count_text(math.prod(shape))} "
                            f"elements a sample, past the most one tensor may hold (2**53)")
    return shape


def _is_whole(part) -> bool:
    """An int, a float with no fraction, or the text of an integer."""
    if isinstance(part, bool):
        return False
    if isinstance(part, (int, float)):
        return float(part).is_integer()
    return isinstance(part, str) and part.strip().lstrip("+-").isdigit()


def _factory(path: Path, attr: str) -> Callable[[], object]:
    check_input_file(path, "network file", WorkloadError)
    if not path.is_file():
        # a relative path is read from the directory dnnsim runs in, not the scenario's
        raise WorkloadError(f"network file {str(path)!r} does not exist" + (
            "" if path.is_absolute() else " (a relative path is read from the current "
            "directory)"))
    resolved = path.resolve()
    key = (str(resolved), resolved.stat().st_mtime_ns)
    if key not in _LOADED:
        # a private module name per file, so two files named net.py do not collide
        mod_name = "dnnsim_user_" + hashlib.sha1(key[0].encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(mod_name, resolved)
        if spec is None or spec.loader is None:   # not a Python source file
            raise WorkloadError(f"network file {str(path)!r} is not a Python file")
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


def import_meta_first(name: str, imported: Callable[..., OpGraph]) -> OpGraph:
    """The graph `imported(device, built)` gives on the meta device, where the module is built
    and run without allocating a weight or an activation; where it cannot be built or traced
    there (control flow or `.item()` on values, numpy, an op with no meta kernel) or the
    import needed values meta tensors do not hold (ids read from buffers), the graph of a
    real run on the CPU at the full batch, whose error (the model's own) is the one raised.
    graph.meta["import_device"] says which, and why."""
    built: list = []
    graph: OpGraph | None = None
    try:
        graph = imported("meta", built)
    except Exception as exc:  # a WorkloadError, or anything meta tensors make the code raise
        why: str = _first_line(exc)
        failure: Exception | None = exc
        if not built and (moved := _built_on_cpu_imported_on_meta(imported, why)) is not None:
            return moved
    else:
        guessed = graph.meta.get("guessed_on_meta", [])
        if not guessed:
            graph.meta["import_device"] = "meta (shapes only: no weight or activation allocated)"
            return graph
        why = f"values it does not hold decide {'; '.join(guessed)}"
        failure = None
    weights = _tensor_bytes(built[0]) if built else 0
    memory = _physical_memory_bytes()
    if memory is not None and weights >= memory:
        if graph is not None:
            graph.meta["import_device"] = (
                f"meta, guessed: {why} (the CPU would need {weights / 1e9:.1f} GB for the "
                f"weights, this machine has {memory / 1e9:.1f} GB)")
            return graph
        raise WorkloadError(f"{failure}\n(on the meta device; the CPU, where it might import, "
                            f"is not tried: its weights alone need {weights / 1e9:.1f} GB, "
                            f"this machine has {memory / 1e9:.1f} GB)") from failure
    graph = imported("cpu")
    graph.meta["import_device"] = f"cpu, at the full batch: on the meta device, {why}"
    return graph


def _built_on_cpu_imported_on_meta(imported: Callable[..., OpGraph], why: str):
    """Where only the factory needs values (an assertion on a weight, a checkpoint checked
    while it is loaded), the module built on the CPU and moved to the meta device, imported
    there without running a batch; None where that fails or guesses as well."""
    try:
        graph = imported("meta", None, "cpu")
    except Exception:  # the same failures as on the meta device: the CPU's run tells
        return None
    if graph.meta.get("guessed_on_meta"):
        return None
    graph.meta["import_device"] = f"meta, the module built on the CPU (the factory on the " \
        f"meta device: {why})"
    return graph


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")[:300]


def _tensor_bytes(module) -> int:
    """Bytes of the module's parameters and buffers (what a CPU build allocates)."""
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _physical_memory_bytes() -> int | None:
    import os
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # not a POSIX system that says
        return None
