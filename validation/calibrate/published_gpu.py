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
from dataclasses import dataclass, field

from hwmodels import catalog
from hwmodels.catalog import gpu_model_siblings, resolve_gpu
from hwmodels.gpu import DEFAULT_FRAMEWORK, Framework, GpuFamily, GPUModel
from hwmodels.specs import HardwareError
from workloads import zoo
from workloads.graph import Op
from workloads.memory_format import with_memory_format
from workloads.precision import with_precision
from workloads.training import lower_training

from ..csv_input import read_csv_rows
from ..paths import MEASURED
from . import published_row

# a row as read, and the words that decide how it runs, live in published_row.py; the names
# stay importable from here, where the readers of published tables look for them
from .published_row import LAYOUT_WORDS as LAYOUT_WORDS
from .published_row import UNTRUSTED as UNTRUSTED
from .published_row import XLA_SUFFIX as XLA_SUFFIX
from .published_row import NetworkRow as NetworkRow
from .published_row import Skip as Skip
from .published_row import framework_key as framework_key
from .published_row import memory_format_of_row as memory_format_of_row

PUBLISHED_DIR = str(MEASURED / "published")

# GPU names: row_gpu; network labels: published_names.py
NETWORK_COLUMNS = ("network", "gpu", "precision", "batch_per_gpu")
# a file needs one of these: a throughput, or a time per step with the batch
THROUGHPUT_COLUMNS = ("throughput_img_s", "iter_time_ms")


class PublishedDataError(ValueError):
    """A published-measurements file that cannot be read as a whole."""


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
    same = [p for p in gpu_model_siblings(part) if dataclasses.replace(
        catalog.device(p), name=spec.name, source=spec.source, memory_bytes=spec.memory_bytes,
        sustained_clock_source=spec.sustained_clock_source) == spec]
    return min(same)


def read_network_rows(path: str) -> Table:
    """Training-throughput rows: throughput_img_s, or iter_time_ms with the batch."""
    raw = _open_rows(path, NETWORK_COLUMNS)
    if not any(c in raw[0] for c in THROUGHPUT_COLUMNS):
        raise PublishedDataError(f"{path}: not a published table (no column "
                                 f"{' or '.join(THROUGHPUT_COLUMNS)})")
    out = Table(path=path)
    gpus = set(catalog.names("gpu"))
    for i, r in enumerate(raw):
        rid = (r.get("row_id") or "").strip() or f"row {i + 2}"
        gpu, gpu_reason = row_gpu(r["gpu"], r.get("gpu_variant"), gpus)
        if gpu is None:
            out.skipped.append(Skip(rid, gpu_reason))
            continue
        row = published_row.network_row(rid, r, gpu)
        (out.skipped if isinstance(row, Skip) else out.rows).append(row)  # type: ignore[arg-type]
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
                 memory_format: str = "nchw",
                 options: tuple[tuple[str, int], ...] = (),
                 optimizer_loop: bool = False) -> list[Op]:
    """The ops of one training step (without the optimizer for forward+backward timings);
    `options`: the zoo options of the row (NetworkRow.options: a transformer's seq_len);
    `optimizer_loop`: torch.optim steps tensor by tensor (NetworkRow.optimizer_loop)."""
    key = (network, batch, precision, fwd_bwd_only, memory_format, options, optimizer_loop)
    if key not in _GRAPHS:
        graph = lower_training(with_memory_format(
            with_precision(zoo.get(network, batch=batch, **dict(options)), precision),
            memory_format), optimizer_loop=optimizer_loop)
        _GRAPHS[key] = [op for op in graph if not (fwd_bwd_only and op.phase == "update")]
    return _GRAPHS[key]


def row_ops(row: NetworkRow) -> list[Op]:
    """The ops of a row's training step, as its framework's release runs them."""
    return training_ops(row.network, row.batch, row.precision, row.fwd_bwd_only,
                        row.memory_format, row.options, row.optimizer_loop)


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
                      cuda=row.cuda, cudnn=row.cudnn)
    ops = row_ops(row)
    seconds: dict[str, float] = {}
    for op, op_s in zip(ops, model.stream_times_s(ops), strict=True):
        seconds[op.phase] = seconds.get(op.phase, 0.0) + op_s
    return seconds


def architecture(gpu: str) -> str:
    try:
        return catalog.device(gpu).architecture or "default"
    except HardwareError:
        return "default"
