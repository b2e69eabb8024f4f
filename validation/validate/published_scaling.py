"""Data-parallel speedups against NVIDIA's published ResNet-50 v1.5 scaling on V100s.

    python -m validation.validate.published_scaling [--csv scaling.csv]

Reads the V100 ResNet-50 v1.5 rows of measured/published/scaling.csv (NVIDIA
DeepLearningExamples: 1, 2, 4 and 8 GPUs of a DGX-1, NVLink hybrid cube-mesh; 16 GPUs of a
DGX-2, NVSwitch; FP32, AMP and legacy FP16). For every row of N > 1 GPUs it simulates, with
the data-parallel policy (DDP's buckets on NCCL's rings), N GPUs and 1 GPU of the row's machine
at the row's precision and per-GPU batch, and compares the simulated speedup (throughput at N
over throughput at 1, both simulated) with the published one. Nothing is fitted to a row: the
links are datasheet rates and NCCL's own latencies (hwmodels/catalog/links.toml, collectives).

What the comparison can and cannot show: every row was measured on real data, so the input
pipeline (JPEG decoding on the host's CPUs, shared by the N training processes) is in the
published figures and not in the model. Horovod (TensorFlow, MXNet) and MXNet's kvstore rows
reduce their gradients in NCCL rings too but group them differently (Horovod's fusion buffer);
they are compared with the same simulation and labelled. TensorFlow rows marked XLA ran a
compiled graph; the op graph simulated is the eager one.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from ..paths import MEASURED

SCALING_CSV = MEASURED / "published" / "scaling.csv"
GOAL_RELATIVE_ERROR = 0.03        # the published 1-to-8 and 1-to-16 speedups, per row
REQUIRED_COLUMNS = ("row_id", "network", "gpu", "gpu_variant", "n_gpus", "interconnect_intra",
                    "framework", "framework_version", "precision", "precision_note",
                    "batch_per_gpu", "speedup_vs_1gpu")

# the machine each row names -> (catalog GPU, node topology)
MACHINES = {
    "DGX-1 V100 16GB": ("v100", "dgx1-cube-mesh"),
    "DGX-1 V100 32GB": ("v100-32gb", "dgx1-cube-mesh"),
    "DGX-2 V100 32GB": ("v100-32gb", "nvswitch"),
}
LINK = "nvlink2-link"
PRECISIONS = {"FP32": "fp32", "AMP": "amp-fp16", "FP16": "fp16"}
# Rows that state no batch: NVIDIA's ResNet-50 v1.5 training scripts for 16 GB V100s run 256
# images per GPU with AMP and 128 with FP32, in PyTorch and TensorFlow alike (the PyTorch
# 19.10 rows' own notes say so; the TensorFlow README's DGX-1 examples use the same).
DEFAULT_BATCH = {"FP32": 128, "AMP": 256}


@dataclass(frozen=True)
class RowResult:
    row_id: str
    framework: str
    version: str
    machine: str
    precision: str
    n_gpus: int
    batch_per_gpu: int | None
    batch_stated: bool
    published: float
    simulated: float | None     # None: not simulated (note says why)
    note: str

    @property
    def error(self) -> float | None:
        """simulated / published - 1."""
        return None if self.simulated is None else self.simulated / self.published - 1


def load_rows(path: Path = SCALING_CSV) -> list[dict]:
    """The V100 ResNet-50 v1.5 rows of more than one GPU, in file order."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = list(reader)
    except OSError as exc:
        raise ValueError(f"cannot read the scaling table {path}: {exc.strerror}") from None
    out = []
    for i, row in enumerate(rows, start=2):
        if row["gpu"] != "V100" or row["network"] != "ResNet-50 v1.5":
            continue
        try:
            n = int(row["n_gpus"])
            float(row["speedup_vs_1gpu"])
            int(row["batch_per_gpu"]) if row["batch_per_gpu"] else None
        except ValueError:
            raise ValueError(f"{path} line {i} ({row['row_id']}): n_gpus, batch_per_gpu and "
                             f"speedup_vs_1gpu must be numbers, got {row['n_gpus']!r}, "
                             f"{row['batch_per_gpu']!r}, {row['speedup_vs_1gpu']!r}") from None
        if n > 1:
            out.append(row)
    return out


class _Simulator:
    """Simulated throughput of a configuration, each simulated once."""

    def __init__(self) -> None:
        self.cache: dict[tuple, float | str] = {}

    def throughput(self, gpu: str, topology: str, precision: str, batch: int,
                   n: int) -> float | str:
        """Samples per second, or the reason there is none."""
        key = (gpu, topology, precision, batch, n)
        if key not in self.cache:
            from simulator import Cluster, simulate
            from simulator.policies import ConfigError
            cluster = Cluster.build(gpu, n, LINK, topology=topology)
            try:
                r = simulate("resnet50", cluster, "data-parallel", batch=batch,
                             precision=precision)
                self.cache[key] = (r.throughput_samples_per_s if r.ok else
                                   f"simulated out of memory ({r.oom.message()})")
            except ConfigError as exc:
                self.cache[key] = f"not simulated: {exc}"
        return self.cache[key]


def compare(rows: list[dict] | None = None) -> list[RowResult]:
    """Simulated against published speedup for every row (load_rows() by default)."""
    rows = load_rows() if rows is None else rows
    sim = _Simulator()
    out = []
    for row in rows:
        n, published = int(row["n_gpus"]), float(row["speedup_vs_1gpu"])
        stated = bool(row["batch_per_gpu"])
        batch = int(row["batch_per_gpu"]) if stated else DEFAULT_BATCH.get(row["precision"])
        notes = []
        if "Horovod" in row["framework"] or "kvstore" in row["framework"]:
            notes.append("gradients grouped as DDP's buckets")
        if "XLA" in row["precision_note"] and "no XLA" not in row["precision_note"]:
            notes.append("XLA-compiled there, eager op graph here")
        simulated, reason = None, None
        machine = MACHINES.get(row["gpu_variant"])
        if machine is None:
            reason = f"machine {row['gpu_variant']!r} is not modelled"
        elif row["precision"] not in PRECISIONS:
            reason = f"precision {row['precision']!r} is not modelled"
        elif batch is None:
            reason = "no batch stated and no default"
        else:
            at_n = sim.throughput(*machine, PRECISIONS[row["precision"]], batch, n)
            at_1 = sim.throughput(*machine, PRECISIONS[row["precision"]], batch, 1)
            bad = next((t for t in (at_n, at_1) if isinstance(t, str)), None)
            if bad is None:
                simulated = at_n / at_1
            else:
                reason = bad
        if reason:
            notes.insert(0, reason)
        out.append(RowResult(row["row_id"], row["framework"], row["framework_version"],
                             row["gpu_variant"], row["precision"], n, batch, stated, published,
                             simulated, "; ".join(notes)))
    return out


def summary(results: list[RowResult], n_gpus: tuple[int, ...] | None = None) -> dict:
    """Rows compared, mean absolute percentage error, the largest error and its row, and the
    rows within the goal; over the rows of `n_gpus` (all when None)."""
    picked = [r for r in results if r.error is not None
              and (n_gpus is None or r.n_gpus in n_gpus)]
    if not picked:
        return {"rows": 0, "mape": None, "max_abs_error": None, "worst": None, "within_goal": 0}
    worst = max(picked, key=lambda r: abs(r.error))
    return {"rows": len(picked), "mape": sum(abs(r.error) for r in picked) / len(picked),
            "max_abs_error": abs(worst.error), "worst": worst.row_id,
            "within_goal": sum(abs(r.error) <= GOAL_RELATIVE_ERROR for r in picked)}


def format_report(results: list[RowResult]) -> str:
    lines = [f"{'row':6} {'framework':22} {'version':26} {'machine':16} {'prec':4} {'N':>2} "
             f"{'batch':>6} {'published':>9} {'simulated':>9} {'error':>7}  note"]
    for r in results:
        batch = "-" if r.batch_per_gpu is None else f"{r.batch_per_gpu}{'' if r.batch_stated else '*'}"
        sim = "-" if r.simulated is None else f"{r.simulated:.2f}"
        err = "-" if r.error is None else f"{100 * r.error:+.1f}%"
        lines.append(f"{r.row_id:6} {r.framework[:22]:22} {r.version[:26]:26} {r.machine:16} "
                     f"{r.precision:4} {r.n_gpus:>2} {batch:>6} {r.published:>9.2f} {sim:>9} "
                     f"{err:>7}  {r.note}")
    lines.append("* no batch stated: NVIDIA's default for the precision (DEFAULT_BATCH)")
    for label, ns in (("all rows", None), ("1-to-8 and 1-to-16", (8, 16))):
        s = summary(results, ns)
        if s["rows"]:
            lines.append(f"{label}: {s['rows']} rows, MAPE {100 * s['mape']:.2f}%, max "
                         f"{100 * s['max_abs_error']:.2f}% ({s['worst']}), within "
                         f"{100 * GOAL_RELATIVE_ERROR:g}%: {s['within_goal']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.validate.published_scaling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=SCALING_CSV,
                        help="the published scaling table (default: the committed one)")
    args = parser.parse_args(argv)
    try:
        results = compare(load_rows(args.csv))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
