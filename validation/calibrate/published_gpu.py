"""Published GPU measurements, read and simulated: whole-network training throughputs
(single_gpu.csv), in the columns of validation/measured/published/README.md; library kernels
(kernels.csv) are read in published_kernels.py.

Reading is strict about the file and lenient about rows: a file without the columns it needs
is an error (PublishedDataError); a row that cannot be simulated (an unknown GPU or network,
an unparseable number, no batch, a library the model does not describe) is kept as a Skip with
its reason, so a report always says how much of the file it scored.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from hwmodels import catalog, gpu_conv
from hwmodels.catalog.gpu_names import model_siblings, resolve_gpu
from hwmodels.gpu import DEFAULT_FRAMEWORK, Framework, GpuFamily, GPUModel
from hwmodels.specs import HardwareError
from workloads import zoo
from workloads.graph import Op
from workloads.memory_format import with_memory_format
from workloads.precision import HALF_FORMAT, PRECISIONS, with_precision
from workloads.training import lower_training

from ..csv_input import read_csv_rows
from ..paths import MEASURED

PUBLISHED_DIR = str(MEASURED / "published")

# The names the published tables use, mapped onto the zoo's (GPU names: row_gpu). A row may
# also name a zoo network directly.
# Each label is one harness's, so the label names the model that harness ran:
# - "AlexNet": jcjohnson/cnn-benchmarks (and dmikushin's fork, same models) loaded Caffe's
#   BVLC AlexNet (two towers, LRN) at 224x224;
# - "AlexNet (One Weird Trick)", "GoogLeNet v1": soumith/convnet-benchmarks, whose alexnet.lua
#   is the one-tower network and whose googlenet.lua / benchmark_googlenet.py build GoogLeNet v1
#   with biases and 5x5 branches but without its two LRNs ("LRN (not added for now)");
# - "Inception-v1 (GoogLeNet)": jcjohnson/cnn-benchmarks' Inception-v1, a Torch port of
#   Google's GoogLeNet v1, taken as Caffe's bvlc_googlenet (LRN after the stem, no batch
#   norm). Uncertain: the port's own file is not in the published data; if it left out the
#   LRNs as convnet-benchmarks did, googlenet_v1_nolrn is the closer model.
NETWORK_NAMES = {
    "alexnet": "alexnet_bvlc", "alexnet (one weird trick)": "alexnet",
    "inception-v1 (googlenet)": "googlenet_v1", "googlenet v1": "googlenet_v1_nolrn",
    "googlenet": "googlenet", "inception-v3": "inception_v3",
    "vgg-16": "vgg16", "vgg-19": "vgg19", "vgg-a (oxfordnet model a)": "vgg11",
    "overfeat (fast)": "overfeat_fast",
    "resnet-18": "resnet18", "resnet-34": "resnet34",
    "resnet-50 v1.5": "resnet50", "resnet-50 v1": "resnet50_v1",
    "resnet-101": "resnet101", "resnet-152": "resnet152", "resnet-200": "resnet200",
}
# Torch7 harnesses ran fb.resnet.torch's models, whose bottleneck strides in the 3x3 (the
# layout torchvision took from it, called v1.5 elsewhere): a "ResNet-50 v1" timed there is
# that layout, whatever the label says
TORCH7_NETWORKS = {"resnet50_v1": "resnet50", "resnet101_v1": "resnet101",
                   "resnet152_v1": "resnet152"}
# networks the tables name that the zoo does not have, with why (a zoo name is taken as is)
UNMODELLED_NETWORKS: dict[str, str] = {}
PRECISION_NAMES = {"fp32": "fp32", "tf32": "tf32", "amp": "amp-fp16", "fp16": "fp16",
                   "bf16": "bf16", "amp-bf16": "amp-bf16", **{p: p for p in PRECISIONS}}
# libraries whose kernels are not cuDNN's/cuBLAS's: the model does not describe them
OTHER_LIBRARIES = ("neon",)
# harnesses that time forward + backward only (no optimizer step): README of the published data
FWD_BWD_ONLY = ("torch7", "cudnn r4", "neon")

NETWORK_COLUMNS = ("network", "gpu", "precision", "batch_per_gpu")
# Trust grades of rows the data itself marks secondary or anomalous: ResNet-34 on the V100 at
# batch 2 and 4 publishes one time for both (a copy error in the source), so at least one of
# the two is not a measurement of its batch. A fit leaves them out (a constant would learn the
# copy); validate still scores and lists them, apart from the rows it fits.
UNTRUSTED = frozenset({"C"})
# the framework a row ran in, by a word of its `framework` column: its host time per op
FRAMEWORK_WORDS = (("torch7", "torch7"), ("cudnn r4", "torch7"), ("pytorch", "pytorch"),
                   ("xla", "tensorflow-xla"), ("tensorflow", "tensorflow"), ("mxnet", "mxnet"))
# a row whose precision_note says it ran with XLA (and not "no XLA") is scored in that
# framework, which fuses elementwise ops (hwmodels/gpu.py FUSED_POINTWISE)
XLA_SUFFIX = " + XLA"
# The memory format a row ran in: the one its notes name (NVIDIA's 21.03 PyTorch rows: "AMP
# uses NHWC per configs.yml"), else the one its harness uses for that precision:
# - PyTorch: NCHW (torch.contiguous_format) unless the script asks for channels_last;
# - Torch7: cudnn.torch has NCHW only;
# - TensorFlow: grappler's layout optimizer runs GPU convolutions in NCHW;
# - XLA: its GPU layout assignment puts half-precision convolutions in NHWC where tensor
#   cores run them, FP32 ones in NCHW;
# - NVIDIA's MXNet containers: NHWC in half precision (the fused NHWC batch-norm kernels that
#   hwmodels/gpu.py FUSED_POINTWISE describes), NCHW in FP32.
LAYOUT_WORDS = (("channels_last", "nhwc"), ("nhwc", "nhwc"), ("nchw", "nchw"))
HALF_PRECISION_NHWC_FRAMEWORKS = frozenset({"tensorflow-xla", "mxnet"})


def memory_format_of_row(framework: str, precision: str, notes: str) -> str:
    """The memory format a published row ran in (LAYOUT_WORDS, then the harness's)."""
    text = notes.lower()
    stated = next((fmt for word, fmt in LAYOUT_WORDS if word in text), None)
    if stated:
        return stated
    half = precision in HALF_FORMAT
    return "nhwc" if half and framework_key(framework) in HALF_PRECISION_NHWC_FRAMEWORKS \
        else "nchw"


def framework_key(framework: str) -> str:
    """The framework family of a `framework` column ("Torch7 (cudnn.torch)" -> torch7);
    PyTorch's where the column names none of them."""
    text = framework.lower()
    return next((key for word, key in FRAMEWORK_WORDS if word in text), DEFAULT_FRAMEWORK)


class PublishedDataError(ValueError):
    """A published-measurements file that cannot be read as a whole."""


@dataclass(frozen=True)
class Skip:
    row_id: str
    reason: str


@dataclass(frozen=True)
class NetworkRow:
    row_id: str
    network: str          # zoo name
    gpu: str              # catalog name
    precision: str
    batch: int
    throughput: float     # samples/s, published
    fwd_bwd_only: bool
    framework: str
    source: str
    memory_format: str = "nchw"
    # the harness's forward and backward times of the step, where it publishes both (Torch7's
    # and convnet-benchmarks' tables): validate scores each phase on its own
    phase_s: tuple[float, float] | None = None
    # the cuDNN its sw_stack names (hwmodels/gpu_conv.py cudnn_release), where it names one
    cudnn: tuple[int, int, int] | None = None
    # the data's own trust grade (README of the published data: A, B, or C for a secondary or
    # anomalous row); "" where the file gives none
    trust: str = ""

    @property
    def untrusted(self) -> bool:
        """Whether the data marks the row anomalous (UNTRUSTED): scored, never fitted."""
        return self.trust in UNTRUSTED


@dataclass
class Table:
    rows: list = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    path: str = ""


def _open_rows(path: str, required: tuple[str, ...]) -> list[dict]:
    """Every row, or PublishedDataError naming the file: see validation/csv_input.py (a row
    id given twice is refused: one measurement would otherwise count twice)."""
    return read_csv_rows(path, required, "published table", PublishedDataError, "row_id")


def _number(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _lookup(table: dict[str, str], name: str, known) -> str | None:
    """A catalog or zoo name as written is itself ("alexnet" is torchvision's AlexNet), else
    the table's entry for the label in any case ("AlexNet" is the BVLC model)."""
    if name.strip() in known:
        return name.strip()
    return table.get(name.strip().lower())


def row_gpu(name: str | None, variant: str | None, gpus: set[str]) -> tuple[str | None, str]:
    """The catalog part a row's gpu and gpu_variant name (hwmodels/catalog/gpu_names.py), as
    the row is scored (scored_gpu); else None and why."""
    try:
        return scored_gpu(resolve_gpu(name or "", variant or "", gpus)), ""
    except HardwareError as exc:
        return None, f"{exc} (dnnsim hardware --kind gpu lists the parts)"


def scored_gpu(part: str) -> str:
    """The part a row is scored as: parts of one model that differ in memory capacity alone
    (v100, v100-32gb) run a step at the same speed, so they are one GPU, the first of their
    names in sorted order; leave-one-GPU-out then holds out the chip, not one memory size of it."""
    spec = catalog.device(part)
    same = [p for p in model_siblings(part) if dataclasses.replace(
        catalog.device(p), name=spec.name, source=spec.source, memory_bytes=spec.memory_bytes,
        sustained_clock_source=spec.sustained_clock_source) == spec]
    return min(same)


def _named_in(label: object, known) -> str:
    """' (did you mean 'h100'?)' for a label that holds a known name as a word ('H100 SXM5
    80GB') or spells one with other separators ('ViT-B/16'): a hint only, never a mapping."""
    if not isinstance(label, str):
        return ""
    words = re.split(r"[\s_/-]+", label.strip().lower())
    bare = re.sub(r"[^a-z0-9]", "", label.lower())
    hits = [k for k in sorted(known) if k in words or re.sub(r"[^a-z0-9]", "", k) == bare]
    # a100 has siblings (a100-80gb, a100-pcie): name them all, the SKU decides
    family = [k for k in sorted(known) if any(k.startswith(f"{h}-") for h in hits)]
    return f" (did you mean {' or '.join(map(repr, hits + family))}?)" if hits else ""


def read_network_rows(path: str) -> Table:
    """Training-throughput rows: throughput_img_s, or iter_time_ms with the batch."""
    raw = _open_rows(path, NETWORK_COLUMNS)
    out = Table(path=path)
    gpus, nets = set(catalog.names("gpu")), set(zoo.names())
    for i, r in enumerate(raw):
        rid = (r.get("row_id") or "").strip() or f"row {i + 2}"
        gpu, gpu_reason = row_gpu(r["gpu"], r.get("gpu_variant"), gpus)
        net = _lookup(NETWORK_NAMES, r["network"] or "", nets)
        precision = PRECISION_NAMES.get((r["precision"] or "").strip().lower())
        framework = (r.get("framework") or "").strip()
        note = (r.get("precision_note") or "").lower()
        if "xla" in note and "no xla" not in note:
            framework += XLA_SUFFIX
        batch = _number(r["batch_per_gpu"])
        throughput = _number(r.get("throughput_img_s"))
        if throughput is None and batch and _number(r.get("iter_time_ms")):
            throughput = batch / (_number(r.get("iter_time_ms")) / 1e3)  # type: ignore[operator]
        reason = None
        if (r["network"] or "").strip() in UNMODELLED_NETWORKS:
            reason = UNMODELLED_NETWORKS[r["network"].strip()]
        elif gpu is None:
            reason = gpu_reason
        elif net is None or net not in nets:
            reason = (f"network {r['network']!r} is not in the zoo{_named_in(r['network'], nets)}"
                      f" (dnnsim workloads)")
        elif precision is None:
            reason = f"precision {r['precision']!r} is not one of {', '.join(PRECISIONS)}"
        elif not (r.get("batch_per_gpu") or "").strip():
            reason = "no batch stated (a throughput depends on it: the row is not guessed at)"
        elif batch is None or not batch.is_integer():
            reason = f"batch {r['batch_per_gpu']!r} is not a whole number"
        elif throughput is None:
            reason = "neither throughput_img_s nor iter_time_ms is a positive number"
        elif any(lib in framework.lower() for lib in OTHER_LIBRARIES):
            reason = f"{framework}: its own kernels, not cuDNN/cuBLAS"
        if reason:
            out.skipped.append(Skip(rid, reason))
            continue
        if "torch7" in framework.lower():
            net = TORCH7_NETWORKS.get(net, net)
        fwd_bwd = (any(h in framework.lower() for h in FWD_BWD_ONLY)
                   or bool(_number(r.get("fwd_ms"))))
        layout = memory_format_of_row(framework, precision, " ".join(  # type: ignore[arg-type]
            (r.get(c) or "") for c in ("precision_note", "notes")))
        fwd_ms, bwd_ms = _number(r.get("fwd_ms")), _number(r.get("bwd_ms"))
        phases = (fwd_ms / 1e3, bwd_ms / 1e3) if fwd_bwd and fwd_ms and bwd_ms else None
        cudnn = (gpu_conv.cudnn_version(r.get("sw_stack") or "")
                 or gpu_conv.cudnn_version(framework))
        out.rows.append(NetworkRow(  # type: ignore[arg-type]
            rid, net, gpu, precision, int(batch), throughput, fwd_bwd, framework,
            (r.get("source") or "").strip(), layout, phases, cudnn,
            (r.get("trust") or "").strip().upper()))
    return out


def gpu_model(gpu: str, families: dict[str, GpuFamily] | None = None,
              frameworks: dict[str, Framework] | None = None,
              framework: str | None = DEFAULT_FRAMEWORK,
              cuda: tuple[int, int, int] | None = None,
              cudnn: tuple[int, int, int] | None = None) -> GPUModel:
    model = GPUModel(catalog.device(gpu))
    model.families, model.frameworks, model.framework = families, frameworks, framework
    model.cuda_version, model.cudnn_version = cuda, cudnn
    return model


_GRAPHS: dict[tuple, list[Op]] = {}


def training_ops(network: str, batch: int, precision: str, fwd_bwd_only: bool,
                 memory_format: str = "nchw") -> list[Op]:
    """The ops of one training step (without the optimizer for forward+backward timings)."""
    key = (network, batch, precision, fwd_bwd_only, memory_format)
    if key not in _GRAPHS:
        graph = lower_training(with_memory_format(
            with_precision(zoo.get(network, batch=batch), precision), memory_format))
        _GRAPHS[key] = [op for op in graph if not (fwd_bwd_only and op.phase == "update")]
    return _GRAPHS[key]


def simulate_row(row: NetworkRow, families: dict[str, GpuFamily] | None = None,
                 frameworks: dict[str, Framework] | None = None) -> float:
    """Simulated samples/s of a row: one GPU runs the step op after op (the sequential
    policy's schedule; its engine run gives the same sum, see the tests), in the row's
    framework."""
    return row.batch / sum(phase_seconds(row, families, frameworks).values())


def phase_seconds(row: NetworkRow, families: dict[str, GpuFamily] | None = None,
                  frameworks: dict[str, Framework] | None = None) -> dict[str, float]:
    """Simulated seconds of each phase of a row's step (forward, backward, update), in the
    row's framework."""
    model = gpu_model(row.gpu, families, frameworks, framework_key(row.framework),
                      cudnn=row.cudnn)
    seconds: dict[str, float] = {}
    for op in training_ops(row.network, row.batch, row.precision, row.fwd_bwd_only,
                           row.memory_format):
        seconds[op.phase] = seconds.get(op.phase, 0.0) + model.op_time_s(op)
    return seconds


def architecture(gpu: str) -> str:
    try:
        return catalog.device(gpu).architecture or "default"
    except HardwareError:
        return "default"
