"""`dnnsim calibrate`: measure op kinds on this machine and write a device profile.

What is measured: every distinct op (kind + shapes + attributes) of the training graphs of the
zoo networks at their validation batches, and a grid around them (half and double batch).
Each op runs its ATen kernel (validation/torch_ops.py) on a cold cache: before each repetition a
buffer larger than the last-level cache is written, because inside a real training step an op
finds its operands evicted by the rest of the step (hot-cache timings underestimate whole
steps by 10-50% on CPU). Then the per-op framework overhead of a whole step (autograd graph
building, the backward engine, the Python module) is measured on a small synthetic network and
folded into every point: a point is "the time this op adds to a training step".

Each measurement is appended to a partial file (JSON lines) as it is taken: an interrupted run
keeps what it measured and resumes from it. The profile is built from the partial file.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass, field

from hwmodels.profile import Profile
from workloads import zoo
from workloads.graph import Op, OpGraph, WorkloadError
from workloads.training import lower_training

# The networks and batches the committed data set validates (steps of 10 ms - 2 s on one core)
DEFAULT_CASES: tuple[tuple[str, int], ...] = (
    ("lenet5", 64), ("lenet5", 256), ("resnet20", 16), ("resnet20", 32),
    ("resnet56", 8), ("resnet56", 16), ("alexnet_cifar", 32), ("alexnet_cifar", 128),
    ("vgg16_cifar", 8), ("vgg16_cifar", 16),
)
GRID_BATCH_FACTORS = (0.5, 2.0)
CACHE_FLUSH_BYTES = 64 * 1024 * 1024
DEFAULT_DEVICE_NAME = {"cpu": "xeon-avx512-2c", "cuda": "h100"}


@dataclass
class OpCase:
    key: str
    op: Op
    graph: OpGraph
    sources: set[str] = field(default_factory=set)


def op_key(op: Op) -> str:
    """Identity of an op for measurement: kind, input and output shapes, attributes."""
    attrs = {k: v for k, v in sorted(op.attrs.items()) if k != "optimizer"}
    shapes = [list(s.shape) for s in op.in_specs]
    return json.dumps([op.kind, shapes, list(op.out.shape), op.params, repr(attrs)])


def collect_ops(cases=DEFAULT_CASES, grid: bool = True) -> dict[str, OpCase]:
    """Distinct non-view ops of the cases' training graphs, with the networks they come from."""
    out: dict[str, OpCase] = {}
    for name, batch in cases:
        batches = {batch}
        if grid:
            batches |= {max(1, int(batch * f)) for f in GRID_BATCH_FACTORS}
        for b in sorted(batches):
            g = lower_training(zoo.get(name, batch=b))
            for op in g.topo():
                if op.is_view:
                    continue
                key = op_key(op)
                case = out.setdefault(key, OpCase(key, op, g))
                case.sources.add(name)
    return out


def read_partial(path) -> dict[str, dict]:
    """Measurements already taken (key -> record); a torn last line is ignored."""
    done: dict[str, dict] = {}
    if not os.path.exists(path):
        return done
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # an interrupted write
            if isinstance(rec, dict) and "key" in rec:
                done[rec["key"]] = rec
    return done


def machine_meta(device: str, threads: int) -> dict:
    import torch
    return {"machine": platform.machine() or "unknown", "processor": processor_name(device),
            "threads": int(threads), "torch_version": torch.__version__,
            "date": datetime.date.today().isoformat()}


def processor_name(device: str = "cpu") -> str:
    if device == "cuda":
        import torch
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def measure_ops(cases: dict[str, OpCase], partial_path, device: str = "cpu", reps: int = 5,
                progress: bool = True, cache: str = "warm") -> dict[str, dict]:
    """Measure every case not yet in the partial file, appending each as it is taken.

    cache: 'warm' times repeated calls, so operands sit in cache when they fit, as they do
    inside a step where each op reads what the previous one just wrote; 'cold' evicts them
    first (an upper bound). Measured on an idle 2-core EPYC, warm predicted whole steps better.
    """
    if cache not in ("warm", "cold"):
        raise WorkloadError(f"cache must be 'warm' or 'cold', got {cache!r}")
    import torch
    from tqdm import tqdm

    from .torch_exec import measure, resolve_device
    from .torch_ops import op_callable

    dev = resolve_device(device)
    done = read_partial(partial_path)
    todo = [c for k, c in sorted(cases.items()) if k not in done]
    flush = torch.empty(CACHE_FLUSH_BYTES // 4, device=dev)
    _end_torn_line(partial_path)
    with open(partial_path, "a", encoding="utf-8") as fh:
        for case in tqdm(todo, desc="calibrate ops", unit="op", disable=not progress):
            fn = op_callable(case.op, dev, graph=case.graph)
            t = measure(fn, dev, 1, reps,
                        setup=(lambda: flush.fill_(1.0)) if cache == "cold" else None)
            rec = {"key": case.key, "kind": case.op.kind, "flops": case.op.flops,
                   "bytes": case.op.bytes_moved, "time_s": t.min_s, "median_s": t.median_s,
                   "sources": sorted(case.sources)}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[case.key] = rec
    # sources may have grown (more networks this run): refresh them from the cases
    for k, c in cases.items():
        if k in done:
            done[k] = {**done[k], "sources": sorted(set(done[k]["sources"]) | c.sources)}
    return done


def _end_torn_line(path) -> None:
    """An interrupted write leaves a line without its newline: end it, so the next record
    starts on a line of its own (the torn one is skipped when read)."""
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


def overhead_network(batch: int = 2) -> OpGraph:
    """A small synthetic network whose ops are tiny: its step is almost all framework overhead."""
    from workloads.builder import GraphBuilder
    b = GraphBuilder("overhead_probe", input_shape=(8, 8, 8), batch=batch)
    x = b.input()
    for i in range(12):
        with b.scope(f"block{i}"):
            y = b.relu(b.batchnorm(b.conv2d(x, 8, kernel=3, padding=1)))
            x = b.add(x, y)
    x = b.flatten(b.adaptive_avgpool(x))
    b.linear(x, 10)
    return b.build()


def measure_overhead(device: str = "cpu", reps: int = 15) -> float:
    """Seconds per non-view op that a whole training step adds over its ops timed alone."""
    from .torch_exec import measure, resolve_device, time_step
    from .torch_ops import op_callable
    dev = resolve_device(device)
    g = overhead_network()
    train = lower_training(g)
    fns = [f for f in (op_callable(op, dev, graph=train) for op in train.topo()) if f]
    ops_s = sum(measure(f, dev, 2, reps).min_s for f in fns)
    step_s = time_step(g, True, dev, warmup=3, reps=reps).min_s
    return max(0.0, (step_s - ops_s) / len(fns))


def build_profile(records, meta: dict, overhead_s: float = 0.0,
                  exclude_network: str | None = None, statistic: str = "time_s") -> Profile:
    """A Profile from measurement records; `exclude_network` drops every point measured for
    that network (a leave-one-network-out profile)."""
    kinds: dict[str, list] = {}
    for rec in records:
        if exclude_network and exclude_network in rec["sources"]:
            continue
        kinds.setdefault(rec["kind"], []).append(
            [float(rec["flops"]), float(rec["bytes"]), float(rec[statistic]) + overhead_s])
    meta = {**meta, "step_overhead_s": float(overhead_s)}
    return Profile(meta=meta, kinds=kinds, label="calibrated profile")


def default_device_name(device: str) -> str:
    if device not in DEFAULT_DEVICE_NAME:
        raise WorkloadError(f"--device must be cpu or cuda, got {device!r}")
    return DEFAULT_DEVICE_NAME[device]


OPS_CSV_FIELDS = ("kind", "flops", "bytes", "time_s", "median_s", "sources", "key")


def write_ops_csv(records, path) -> None:
    import csv
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(OPS_CSV_FIELDS)
        for r in sorted(records, key=lambda r: r["key"]):
            w.writerow([r["kind"], repr(float(r["flops"])), repr(float(r["bytes"])),
                        f"{r['time_s']:.6g}", f"{r['median_s']:.6g}", ";".join(r["sources"]),
                        r["key"]])


def read_ops_csv(path) -> list[dict]:
    import csv
    with open(path, newline="", encoding="utf-8") as fh:
        return [{**r, "flops": float(r["flops"]), "bytes": float(r["bytes"]),
                 "time_s": float(r["time_s"]), "median_s": float(r["median_s"]),
                 "sources": r["sources"].split(";")} for r in csv.DictReader(fh)]
