"""Import coverage of models users bring: Hugging Face transformers built from small configs
(no weights downloaded), timm's classifiers (pretrained=False), torchvision's detection,
segmentation, video and optical-flow models (weights=None) and code as users write it (custom
autograd Functions, checkpointing, in-place ops, masks, einsum, recurrent layers;
tests/workloads/torch_user_code.py, torch_user_recurrent.py), each run through `from_torch`
and its convolution and matrix-product FLOPs compared with PyTorch's own counter
(torch.utils.flop_counter), within 2%, and its parameter count with the module's
(benchmarks/import_sweep_cases.py holds the cases).

    python benchmarks/import_sweep.py [--only transformers|timm|torchvision|user] [--verbose]

Prints one line per model (imported, or the first refusal of the import's error), the coverage
per group, and the refusals grouped by the op refused, each with the models it stops (and how
many it alone stops: the models it is the only refusal of). A library that is not installed
is skipped with a note; none is a dependency of dnnsim. timm's models and torchvision's
segmentation and video models are built on the meta device (shapes only); the transformers
configs, the detection models and the user code run on the CPU, so masks computed from real
ids and boxes kept by score are exercised.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository's packages
from benchmarks import import_sweep_cases as cases_  # noqa: E402

# The relative FLOP difference allowed against torch.utils.flop_counter (what it counts:
# convolutions and matrix products).
FLOP_TOLERANCE = 0.02


def torch_flops(model, x) -> int:
    """PyTorch's count. Its counter has no formula for the CPU kernel of
    F.scaled_dot_product_attention (it counts the CUDA and meta ones); that kernel is given
    the counter's own SDPA formula. Nor for the grouped product of a mixture of experts
    (aten._grouped_mm: rows (S, K) split among the experts' (E, K, N) weights), given 2 x S x
    K x N, a matrix product's."""
    from torch.utils import flop_counter

    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    def grouped_mm(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * a_shape[0] * a_shape[1] * b_shape[-1]
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa,
        torch.ops.aten._grouped_mm: grouped_mm})
    # why oneDNN off: its fused CPU LSTM is one kernel the counter has no formula for;
    # PyTorch's own cells run (and the counter counts) the mm and addmm cuDNN would
    with counter, torch.backends.mkldnn.flags(enabled=False):
        # why: with grad off, the counter's module hooks fail on some models (PiT)
        model(*x) if isinstance(x, tuple) else model(x)
    return counter.get_total_flops()


def check(model, x, name: str) -> str | None:
    """None where `model` imports with PyTorch's FLOPs and the module's parameters, else what
    went wrong."""
    found = measure(model, x, name)
    return found if isinstance(found, str) else None


def measure(model, x, name: str) -> str | tuple[float, int, int]:
    """(the graph's FLOPs, PyTorch's, the parameters) where `model` imports with PyTorch's
    FLOPs and the module's parameters, else what went wrong."""
    from tests.workloads.torchvision_zoo import matmul_flops
    from workloads.graph import WorkloadError
    from workloads.torch_detection import detector_dense_part
    from workloads.torch_import import from_torch
    try:
        graph = from_torch(model, x, name=name)
    except WorkloadError as exc:
        return str(exc)
    # a detector's own count is its dense part's: the steps after its head (box decoding,
    # NMS) run no convolution or product, and need torchvision's compiled ops
    dense = detector_dense_part(torch, model, x if isinstance(x, tuple) else (x,), name)
    expected, got = torch_flops(dense or model, x), matmul_flops(graph)
    if abs(got - expected) > FLOP_TOLERANCE * expected:
        return f"{got:.4g} FLOPs against PyTorch's {expected:.4g}"
    # a tied parameter once; one forward never reads (graph.meta["unread_params"]) not at all
    params = sum(p.numel() for p in model.parameters()) - \
        sum(graph.meta.get("unread_params", {}).values())
    if sum(op.params for op in graph) != params:
        return f"imports with {sum(op.params for op in graph)} parameters of the model's {params}"
    return got, expected, params


def _load_torchvision() -> None:
    """Both libraries import torchvision where it is installed; a PyPI torchvision beside a CPU
    torch needs the workaround of the torchvision coverage test to import."""
    from tests.workloads.torchvision_zoo import models
    models()


def transformers_cases():
    _load_torchvision()
    try:
        importlib.import_module("transformers")
    except ModuleNotFoundError:
        return None
    return [(n, lambda n=n: cases_.transformers_model(n)) for n in cases_.TRANSFORMERS]


def timm_cases():
    _load_torchvision()
    try:
        importlib.import_module("timm")
    except ModuleNotFoundError:
        return None
    return [(n, lambda n=n: cases_.timm_model(n)) for n in cases_.TIMM]


def torchvision_cases():
    from tests.workloads.torchvision_zoo import models
    return None if models() is None else list(cases_.TORCHVISION.items())


def user_cases():
    return [(n, lambda n=n: cases_.user_model(n)) for n in cases_.user_case_table()]


GROUPS = {"transformers": transformers_cases, "timm": timm_cases,
          "torchvision": torchvision_cases, "user": user_cases}
_REFUSED_OP = re.compile(r"^  - (.+?) at module paths? ")


def refused_ops(message: str, name: str = "") -> list[str]:
    """The ops an import's error refuses, each once: those its list names, else the kind of
    failure (a model fx cannot trace, or that does not run on its input, a detector of two
    stages) with its reason, the model's name left out so that models group."""
    ops = [m.group(1) for line in message.splitlines() if (m := _REFUSED_OP.match(line))]
    if ops:
        return list(dict.fromkeys(ops))
    first = message.splitlines()[0] if message else "no message"
    first = first[len(name):].lstrip(": ") if name and first.startswith(name) else first
    if "cannot trace" in first:
        reason = first.rsplit(": ", 2)
        return [f"not traceable ({': '.join(reason[-2:])[:90]})"]
    return [first.split(":")[0][:110]]


def sweep(cases, verbose: bool, refusals: dict[str, list[str]]) -> tuple[int, int]:
    """(models imported, models built); each refused model's name is added to `refusals`
    under every op its import refuses."""
    imported = built = 0
    for name, build in cases:
        try:
            model, x = build()
        except Exception as exc:  # a model this library version cannot build: not counted
            print(f"  {name}: not built ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        built += 1
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            try:
                found = measure(model, x, name)
            except Exception as exc:  # an importer crash is a failure to report, not to hide
                found = f"crashed: {type(exc).__name__}: {exc}"
        if isinstance(found, str):
            for op in refused_ops(found, name):
                refusals.setdefault(op, []).append(name)
            shown = " ".join(line.strip() for line in found.splitlines()[:2])
            print(f"  {name}: {shown[:300]}", flush=True)
            continue
        imported += 1
        got, expected, params = found
        print(f"  {name}: imports, {got:.4g} FLOPs against PyTorch's {expected:.4g} "
              f"({(got - expected) / expected:+.2%}), {params} parameters", flush=True)
    return imported, built


def refusal_table(refusals: dict[str, list[str]]) -> list[str]:
    """One line per refused op, the most models first: how many it stops, how many it alone
    stops, and their names."""
    alone = {op: [m for m in models if all(m not in others for o, others in refusals.items()
                                           if o != op)] for op, models in refusals.items()}
    order = sorted(refusals, key=lambda op: (-len(alone[op]), -len(refusals[op]), op))
    return [f"  {len(refusals[op])} models ({len(alone[op])} by it alone): {op}: "
            f"{', '.join(refusals[op])}" for op in order]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=tuple(GROUPS))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    rows, refusals = [], {}
    for label, cases in GROUPS.items():
        if args.only and args.only != label:
            continue
        found = cases()
        if found is None:
            print(f"{label}: not installed, skipped")
            continue
        print(f"{label}:")
        rows.append((label, *sweep(found, args.verbose, refusals)))
    for label, ok, total in rows:
        print(f"{label}: {ok} of {total} import with PyTorch's convolution and matmul FLOPs "
              f"within {FLOP_TOLERANCE:.0%} and the module's parameter count")
    if refusals:
        print("refused, by op (models it stops):")
        print("\n".join(refusal_table(refusals)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
