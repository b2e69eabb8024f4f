"""torchvision's classification zoo, built without weights for from_torch's coverage test.

`models()` imports torchvision.models. PyPI's torchvision wheel is built against a CUDA torch;
beside a CPU build of the same torch version its compiled operators (nms, roi_align, ...) do
not load, and importing it fails while registering fake kernels for two of them. The
classification models use none of those operators, so where that happens the two schemas are
declared (no kernel) and the import is retried.

Run as a script it prints the import coverage:
    python tests/workloads/torchvision_zoo.py
"""
from __future__ import annotations

import contextlib
import math
import sys

import torch

# Square input sizes tried, smallest first, for the smallest input each model accepts.
SIZES = (16, 32, 48, 64, 96, 128, 160, 192, 224)
# The relative FLOP difference allowed against torch.utils.flop_counter (convolutions and
# matrix products, which is what PyTorch's counter counts).
FLOP_TOLERANCE = 0.02


def models():
    """torchvision.models, or None where torchvision is not installed."""
    try:
        import torchvision.models as tvm
    except ModuleNotFoundError:
        return None
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        models._schemas = lib   # the library must outlive the import
        import torchvision.models as tvm
    return tvm


def classifiers(tvm) -> list[str]:
    """The classification architectures (torchvision.models itself, not its submodules)."""
    return sorted(tvm.list_models(module=tvm))


@contextlib.contextmanager
def _parameters_on_meta():
    """Parameters are moved to the meta device as they are registered, so that building even
    the largest model allocates and initialises nothing."""
    register = torch.nn.Module.register_parameter

    def on_meta(self, name, param):
        if param is not None:
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(self, name, param)
    torch.nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def build(tvm, name: str):
    """The model on the meta device, in eval mode (no weights)."""
    with _parameters_on_meta():
        model = tvm.get_model(name)
    return model.to("meta").eval()


def meta_input(size: int, batch: int = 1):
    return torch.randn(batch, 3, size, size, device="meta")


def runs(model, size: int) -> bool:
    try:
        with torch.no_grad():
            model(meta_input(size))
        return True
    except Exception:   # any error means PyTorch does not accept that size
        return False


def smallest_size(model) -> int | None:
    return next((s for s in SIZES if runs(model, s)), None)


def torch_flops(model, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def matmul_flops(g) -> float:
    """The graph's FLOPs of convolutions and matrix products, as PyTorch's counter counts
    them: 2 per multiply-add, and for fused attention its two products QK^T and AV."""
    total = 0.0
    for op in g:
        if op.kind == "attention":
            q, k, v = (s.shape for s in op.in_specs)
            total += 2.0 * math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])
        else:
            total += 2.0 * op.macs
    return total


def check(model, name: str, size: int) -> str | None:
    """None where `name` imports at `size` with PyTorch's FLOPs, else what went wrong."""
    from workloads.graph import WorkloadError
    from workloads.torch_import import from_torch
    x = meta_input(size)
    try:
        g = from_torch(model, x, name=name)
    except WorkloadError as exc:
        return str(exc)
    expected, got = torch_flops(model, x), matmul_flops(g)
    if abs(got - expected) > FLOP_TOLERANCE * expected:
        return f"{got:.4g} FLOPs against PyTorch's {expected:.4g}"
    return None


def coverage() -> dict:
    """{size label: (imported names, failures {name: why})} at 224x224 and the smallest input."""
    tvm = models()
    if tvm is None:
        raise SystemExit("torchvision is not installed")
    out: dict = {"224x224": ([], {}), "smallest": ([], {})}
    for name in classifiers(tvm):
        model = build(tvm, name)
        for label, size in (("224x224", 224), ("smallest", smallest_size(model))):
            why = check(model, name, size) if size else "runs at none of the sizes tried"
            if why is None:
                out[label][0].append(f"{name}@{size}")
            else:
                lines = why.splitlines()   # the count, then the first op refused
                out[label][1][name] = " ".join(line.strip() for line in lines[:2])
    return out


if __name__ == "__main__":
    sys.path.insert(0, ".")
    result = coverage()
    for label, (ok, failed) in result.items():
        total = len(ok) + len(failed)
        print(f"{label}: {len(ok)} of {total} classification models import with PyTorch's "
              f"convolution and matmul FLOPs within {FLOP_TOLERANCE:.0%}")
        for name, why in sorted(failed.items()):
            print(f"  {name}: {why}")
