"""How much fits: the published memory rows (measured/published/memory.csv) against the
simulated step's memory.

Each row becomes checks:
- a measured peak (nvidia-smi's memory.used, which counts the CUDA context, the caching
  allocator's reserve and cuDNN's workspaces): the simulated peak as nvidia-smi would show it
  (reserved + context) against the measured one; goal within 10%;
- a statement that a batch fits or runs out of memory, and a batch a vendor or benchmark suite
  configures (known to fit): whether the simulated step fits; goal every statement agrees.
A row that cannot be simulated (GPU or network not in the catalog or zoo, precision or batch
not stated) is kept with its reason. Each row runs under the memory model of its harness
(`HARNESSES`, from its framework column): Torch7 rows under framework_memory `torch7` (every
module's output and gradInput, simulator/framework_memory.py), PyTorch rows of NVIDIA's ConvNets
scripts with cudnn.benchmark's algorithm search, other rows as PyTorch without it (autograd's
tensor lifetimes, its caching allocator, in-place ReLUs, SGD with momentum); rows of other
frameworks keep their framework, so a report can tell them apart.

    python -m validation.validate.published_memory       # the table, then the summary
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from hwmodels import catalog
from hwmodels.catalog import resolve_gpu
from hwmodels.specs import HardwareError
from simulator import Cluster, simulate
from workloads import zoo
from workloads.precision import with_precision

from ..paths import MEASURED

MEMORY_CSV = str(MEASURED / "published" / "memory.csv")
GIB = 2 ** 30
MEASURED_TOLERANCE = 0.10

# GPU names resolve as everywhere (hwmodels/catalog/gpu_names.py), with the row's
# gpu_memory_gb as the memory size (a row naming both sizes, 16/32 or 40/80, is held to the
# smaller), from the words of the name that `gpu_of` picks. "any GPU with N
# GB" is a memory class: a catalog GPU of that size.
MEMORY_CLASS_GPUS = {11: "gtx1080ti", 12: "titan-xp", 16: "v100", 24: "titan-rtx",
                     32: "v100-32gb", 40: "a100", 48: "l40s"}
NETWORKS = {
    "alexnet": "alexnet", "vgg-16": "vgg16", "vgg-19 (224x224)": "vgg19",
    "inception-v3": "inception_v3", "resnet-50 v1.5": "resnet50", "resnet-50 v1": "resnet50_v1",
    # the original ResNets (He et al.), which Torch's fb.resnet.torch, MXNet and Caffe ran
    "resnet-50": "resnet50_v1", "resnet-152": "resnet152_v1", "resnet-200": "resnet200",
}
PRECISIONS = {"fp32": "fp32", "tf32": "tf32", "amp": "amp-fp16", "amp (float16)": "amp-fp16",
              "amp (nhwc)": "amp-fp16",
              # NVIDIA's legacy --fp16: a half model (its FP32 master copy is not simulated)
              "fp16 (--fp16)": "fp16"}


@dataclass(frozen=True)
class Harness:
    """How a row's program used memory: the framework's memory model (framework_memory,
    simulator/framework_memory.py) and whether cudnn.benchmark searched the convolution
    algorithms. Every row trains on one GPU (`sequential`)."""
    framework_memory: str = "pytorch"
    cudnn_benchmark: bool = False
    source: str = "PyTorch's memory model, cudnn.benchmark off (PyTorch's default)"


# Harnesses by a lower-case part of the framework column; the first match wins, and a row that
# matches none runs as PyTorch with cudnn.benchmark off.
HARNESSES = (
    ("fb.resnet.torch", Harness(
        "torch7:share-grad-input",
        source="fb.resnet.torch, trained on several GPUs as its README's commands do, with "
               "-shareGradInput true (the row does not say; without it ResNet-152 at 32 a "
               "GPU does not fit the 12 GB card the report says it fits)")),
    ("torch7", Harness("torch7", source="Torch7's nn (cnn-benchmarks' forward and backward)")),
    ("torch-based", Harness("torch7", source="vDNN's baseline: Torch7-style buffers, every "
                                               "feature map and its gradient")),
    ("nvidia dle convnets", Harness(
        cudnn_benchmark=True,
        source="NVIDIA DeepLearningExamples PyTorch/Classification/ConvNets: main.py sets "
               "torch.backends.cudnn.benchmark = True")),
)


def harness_of(framework: str) -> Harness:
    """The harness of a row's framework column."""
    text = framework.lower()
    return next((h for key, h in HARNESSES if key in text), Harness())


# What the simulation leaves out; the report names it beside a miss.
MEASURED_NOTE = ("nvidia-smi's memory.used bounds the need from above: it counts every cached "
                 "segment of the allocator, whatever left it there")


@dataclass(frozen=True)
class Check:
    """One simulated claim of a row."""
    batch: int
    precision: str
    claims_fit: bool
    fits: bool
    peak_gib: float                     # simulated: reserved + context, as nvidia-smi shows
    measured_gib: float | None = None   # only for a measured peak

    @property
    def agrees(self) -> bool:
        return self.fits == self.claims_fit

    @property
    def error(self) -> float | None:
        if self.measured_gib is None:
            return None
        return self.peak_gib / self.measured_gib - 1.0


@dataclass
class RowResult:
    row_id: str
    network: str
    gpu: str
    framework: str
    kind: str
    catalog_gpu: str | None = None
    checks: list[Check] = field(default_factory=list)
    skipped: str | None = None          # why the row cannot be simulated


# -- reading -----------------------------------------------------------------------------------
def read_rows(path: str = MEMORY_CSV) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    needed = {"row_id", "network", "gpu", "gpu_memory_gb", "framework", "precision",
              "batch_per_gpu", "memory_gb", "fits", "kind"}
    missing = needed - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
    return rows


def gpu_of(row: dict) -> str | None:
    """The catalog GPU of a memory row, or None. memory.csv writes hosts and doubts into its
    GPU names ("V100 (DGX-1)", "Titan X (Maxwell presumed)", "(any; paper platform Titan X
    Maxwell 12GB)"): the longest run of the name's words that names one part is taken."""
    memory = row["gpu_memory_gb"].split("/")[0].strip()
    size = int(memory) if memory.isdigit() else None
    if "memory class" in row["gpu"].lower():
        return MEMORY_CLASS_GPUS.get(size) if size is not None else None
    name = re.sub(r"\b\d+\s*GB\b", " ", row["gpu"], flags=re.IGNORECASE)
    words = re.findall(r"[^\s();,\"]+", name)
    variant = f"{size}GB" if size is not None else ""
    for length in range(len(words), 0, -1):
        for start in range(len(words) - length + 1):
            try:
                return resolve_gpu(" ".join(words[start:start + length]), variant)
            except HardwareError:
                continue
    return None


def claims(row: dict) -> list[tuple[int, str, bool]]:
    """(batch, precision, fits) the row states; empty when it states none that can be read."""
    precisions = [p.strip().lower() for p in row["precision"].split("/")]
    batches = re.findall(r"\b\d+\b", row["batch_per_gpu"])
    fits = row["fits"].lower()
    if len(precisions) > 1 and len(batches) == len(precisions):   # "128 FP32 / 256 AMP"
        return [(int(b), p, True) for b, p in zip(batches, precisions, strict=True)]
    if len(precisions) != 1:
        return []
    stated = re.findall(r"(\d+)(?:/gpu)? (yes|no)", fits) + \
        [(b, "yes") for b in re.findall(r"fits at (\d+)", fits)] + \
        [(b, "no") for b in re.findall(r"oom at (\d+)", fits)]
    if stated:
        return [(int(b), precisions[0], v == "yes") for b, v in stated]
    if len(batches) == 1 and fits.startswith(("yes", "no")):
        return [(int(batches[0]), precisions[0], fits.startswith("yes"))]
    return []


def why_not(row: dict) -> str | None:
    """The reason a row cannot be simulated, or None."""
    stated = claims(row)
    if not stated:
        return f"no batch and outcome to check (batch {row['batch_per_gpu']!r}, " \
               f"{row['fits']!r})"
    if gpu_of(row) is None:
        return f"GPU {row['gpu']!r} is not in the catalog"
    if NETWORKS.get(row["network"].lower()) is None:
        return f"network {row['network']!r} is not in the zoo"
    unknown = sorted({p for _, p, _ in stated if p not in PRECISIONS})
    if unknown:
        return f"precision {', '.join(unknown)!r} is not stated or not modelled"
    return None


# -- simulating --------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def simulated(network: str, gpu: str, precision: str, batch: int,
              harness: Harness = Harness()) -> tuple[bool, float]:
    """(fits, peak as nvidia-smi would show it in GiB) of one training step under `harness`;
    a step that does not fit reports what it would need."""
    graph = with_precision(zoo.get(network, batch=batch), precision)
    cluster = Cluster.build(catalog.device(gpu), 1, "pcie3")
    options: dict[str, Any] = dict(cudnn_benchmark=harness.cudnn_benchmark,
                                   framework_memory=harness.framework_memory)
    first = simulate(graph, cluster, "sequential", **options)
    result = first if first.ok else simulate(graph, cluster, "sequential",
                                             enforce_memory=False, **options)
    return first.ok, result.peak_device_memory_bytes[cluster.devices[0].id] / GIB


def fits(network: str, gpu: str, precision: str, batch: int,
         harness: Harness = Harness()) -> bool:
    return simulated(network, gpu, precision, batch, harness)[0]


def largest_batch(network: str, gpu: str, precision: str, upper: int = 4096,
                  harness: Harness = Harness()) -> int:
    """The largest batch whose step fits (0 if none does), by bisection up to `upper`."""
    lo, hi = 0, upper + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(network, gpu, precision, mid, harness) else (lo, mid)
    return lo


def check_row(row: dict) -> RowResult:
    out = RowResult(row["row_id"], row["network"], row["gpu"], row["framework"], row["kind"],
                    gpu_of(row))
    out.skipped = why_not(row)
    if out.skipped:
        return out
    network, gpu = NETWORKS[row["network"].lower()], out.catalog_gpu
    measured = row["kind"].startswith("measured")
    for batch, precision, claim in claims(row):
        ok, peak = simulated(network, gpu, PRECISIONS[precision], batch,
                             harness_of(row["framework"]))
        value = float(row["memory_gb"]) if measured else None
        out.checks.append(Check(batch, PRECISIONS[precision], claim, ok, peak, value))
    return out


def check_all(path: str = MEMORY_CSV) -> list[RowResult]:
    return [check_row(row) for row in read_rows(path)]


# -- reporting ---------------------------------------------------------------------------------
def summary(results: list[RowResult]) -> dict:
    checks = [c for r in results for c in r.checks]
    errors = [c.error for c in checks if c.error is not None]
    return {
        "rows": len(results), "skipped": sum(1 for r in results if r.skipped),
        "statements": len(checks), "agree": sum(c.agrees for c in checks),
        "measured": len(errors),
        "measured_within_tolerance": sum(abs(e) <= MEASURED_TOLERANCE for e in errors),
    }


def report(results: list[RowResult]) -> str:
    lines = [f"{'row':5} {'network':16} {'gpu':12} {'prec':8} {'batch':>5} {'claim':5} "
             f"{'sim':5} {'sim GiB':>8} {'meas GiB':>8} {'error':>7}  framework"]
    for r in results:
        if r.skipped:
            lines.append(f"{r.row_id:5} {r.network[:16]:16} skipped: {r.skipped}")
            continue
        gpu = r.catalog_gpu or ""
        for c in r.checks:
            err = f"{c.error:+.1%}" if c.error is not None else ""
            meas = f"{c.measured_gib:.2f}" if c.measured_gib is not None else ""
            lines.append(f"{r.row_id:5} {r.network[:16]:16} {gpu[:12]:12} {c.precision:8} "
                         f"{c.batch:5d} {'fits' if c.claims_fit else 'OOM':5} "
                         f"{'fits' if c.fits else 'OOM':5} {c.peak_gib:8.2f} {meas:>8} "
                         f"{err:>7}  {r.framework[:40]}")
    for r in results:
        for c in r.checks:
            if not c.agrees:
                lines.append(f"{r.row_id} disagrees at batch {c.batch} "
                             f"({harness_of(r.framework).source})")
            elif c.error is not None and abs(c.error) > MEASURED_TOLERANCE:
                lines.append(f"{r.row_id} {c.error:+.1%} at batch {c.batch}: {MEASURED_NOTE}")
    s = summary(results)
    lines.append(f"{s['rows']} rows, {s['skipped']} not simulated; {s['agree']} of "
                 f"{s['statements']} statements agree; {s['measured_within_tolerance']} of "
                 f"{s['measured']} measured peaks within {MEASURED_TOLERANCE:.0%}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(check_all()))
