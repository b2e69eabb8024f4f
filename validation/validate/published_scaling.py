"""Data-parallel speedups against NVIDIA's published ResNet-50 v1.5 scaling on V100s.

    python -m validation.validate.published_scaling [--csv scaling.csv] [--gpu-as-modelled]
                                                    [--gradient-sync SCHEME] [--fit-loaders]
                                                    [--step-losses] [--breakdown]

Reads the V100 ResNet-50 v1.5 rows of measured/published/scaling.csv (NVIDIA
DeepLearningExamples: 1, 2, 4 and 8 GPUs of a DGX-1, NVLink hybrid cube-mesh; 16 GPUs of a
DGX-2, NVSwitch; FP32, AMP and legacy FP16). For every row of N > 1 GPUs it simulates, with
the data-parallel policy (DDP's buckets on NCCL's rings), N GPUs and 1 GPU of the row's node
type at the row's precision and per-GPU batch, and compares the simulated speedup (throughput
at N over throughput at 1, both simulated) with the published one.

What the simulation holds beyond the GPUs and NVLink (datasheet rates, NCCL's latencies):
- The GPU at the row's own speed: each GPU's compute is scaled so that one simulated GPU on
  synthetic data runs at the table's 1-GPU throughput for the same software and precision.
  This checks scaling, not the single-GPU model (`dnnsim validate --published` does that);
  the two disagree where the software differs from what the GPU model was fitted to.
  --gpu-as-modelled runs the GPU model's own speed instead. Either way each row runs in the
  memory format its container used (row_memory_format: NCHW AMP in the PyTorch 19.10 and 20.06
  containers, NHWC in 21.03, as the single-GPU rows of those containers state).
- The input pipeline every row ran (real ImageNet): the loader of the row's framework as
  NVIDIA's scripts run it by default (LOADERS; an assumption, the table does not record it),
  decoding on the node's CPU cores that the N training processes share
  (hwmodels/host_input.py). Each loader's per-image cost was fitted to one row
  (catalog/input_pipelines.toml names it; --fit-loaders recomputes it); every other row is a
  prediction.
- Ranks that vary: a synchronous step waits for the slowest of N. The spread of the ranks'
  step times (data-parallel option rank_spread, with the tail rank_tail: exponential by
  default, --rank-tail lognormal for the other) is fitted here, by least squares on the log
  speedups of the 2- and 4-GPU rows only; the 1-to-8 and 1-to-16 rows are predictions.

Each row's gradients are all-reduced as its framework does it (row_gradient_sync): DDP's
buckets for PyTorch, Horovod's cycles and fusion buffer for TensorFlow and MXNet with
Horovod, a reduce and broadcast per parameter array for MXNet's kvstore (one key after
another once the backward pass ends, as its engine orders them), each with its framework's
defaults. On one GPU Horovod's TensorFlow optimizer all-reduces nothing, nor does MXNet's
from Horovod 0.19; MXNet 19.07's (a Horovod 0.16) still runs its loop there
(row_horovod_one_rank). TensorFlow's Horovod is told of each gradient as the host
dispatches its op, ahead of the GPU, MXNet's once the gradient is computed
(row_horovod_enqueue). TensorFlow rows marked XLA make every gradient ready at the end of the
backward pass (one compiled cluster); their op times are the eager graph's, scaled to the
row's 1-GPU throughput like every row's.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from simulator.policies._data_parallel import GRADIENT_SYNCS, RANK_TAILS, rank_time_factors

from .scaling_report import (
    SPREAD_FIT_GPUS,
    RowResult,
    StepParts,
    format_breakdown,
    format_report,
    format_step_losses,
)
from .scaling_rows import (
    DEFAULT_BATCH,
    MACHINES,
    PRECISIONS,
    SCALING_CSV,
    load_baselines,
    load_rows,
    published_step_losses,
    read_table,
    row_gradient_sync,
    row_horovod_enqueue,
    row_horovod_one_rank,
    row_loader,
    row_memory_format,
    setup_of,
    stated_memory_formats,
)

# What fit_rank_spread gives on the committed table (a test holds the two equal): the spread
# of V100 ranks' step times that benchmarks/dp_scaling.py takes as its default
FITTED_RANK_SPREAD = 0.0150

@dataclass(frozen=True)
class _Config:
    """What a row simulates: node type, GPU, precision, per-GPU batch, how its framework
    all-reduces gradients and when they are ready (data-parallel options gradient_sync and
    gradients_ready)."""
    node: str
    gpu: str
    precision: str
    batch: int
    gradient_sync: str = "ddp"
    gradients_ready: str = "per-op"
    memory_format: str = "nchw"
    horovod_one_rank: str | None = None
    horovod_enqueue: str | None = None


class _Simulator:
    """Simulated throughput of a configuration, each simulated once."""

    def __init__(self) -> None:
        self.cache: dict[tuple, float | str] = {}

    def throughput(self, cfg: _Config, n: int, speed: float = 1.0, loader: str = "synthetic",
                   spread: float = 0.0, tail: str = "exponential") -> float | str:
        """Samples per second, or the reason there is none."""
        key = (cfg, n, speed, loader, spread, tail if spread else "")
        if key not in self.cache:
            from simulator import Cluster, simulate
            from simulator.policies import ConfigError
            cluster = Cluster.from_node_type(cfg.node, n, device=cfg.gpu,
                                             speeds={f"gpu{i}": speed for i in range(n)})
            try:
                # replica 0 alone, the others in lockstep: exact for a synchronous step,
                # since rank 0 is the slowest (rank_spread) and every rank waits for it
                r = simulate("resnet50", cluster, "data-parallel", batch=cfg.batch,
                             precision=cfg.precision, input_pipeline=loader,
                             gradient_sync=cfg.gradient_sync,
                             gradients_ready=cfg.gradients_ready,
                             rank_spread=spread, rank_tail=tail, replicas="one",
                             memory_format=cfg.memory_format,
                             horovod_one_rank=cfg.horovod_one_rank,
                             horovod_enqueue=cfg.horovod_enqueue)
                self.cache[key] = (r.throughput_samples_per_s if r.oom is None else
                                   f"simulated out of memory ({r.oom.message()})")
            except ConfigError as exc:
                self.cache[key] = f"not simulated: {exc}"
        return self.cache[key]

    def anchor_speed(self, cfg: _Config, base: float, one: float) -> float:
        """The compute speed at which one GPU on synthetic data runs `base` samples/s (one:
        its throughput at speed 1). Compute scales with the speed, a fixed wait (Horovod's
        cycle) does not, so the ratio is refined until it holds to 1e-6."""
        speed = round(base / one, 9)
        for _ in range(8):
            at = self.throughput(cfg, 1, speed)
            if isinstance(at, str) or abs(at / base - 1) < 1e-6:
                break
            speed = round(speed * base / at, 9)
        return speed

    def step_parts(self, cfg: _Config, n: int, speed: float, loader: str, spread: float,
                   tail: str) -> StepParts | None:
        """What the simulated step at n GPUs adds to the one at 1, part by part (None where
        a run gives no throughput): the step at n on synthetic data with ranks alike less the
        1-GPU step (all-reduces, Horovod's cycles and copies, the kvstore's chain), then what
        the ranks' spread adds, then what the loader adds at n beyond what it adds at 1."""
        def step_s(at: int, pipeline: str, spread_at: float) -> float | None:
            got = self.throughput(cfg, at, speed, pipeline, spread_at, tail)
            return None if isinstance(got, str) else cfg.batch * at / got
        one, one_full = step_s(1, "synthetic", 0.0), step_s(1, loader, spread)
        plain, spread_s = step_s(n, "synthetic", 0.0), step_s(n, "synthetic", spread)
        full = step_s(n, loader, spread)
        if one is None or one_full is None or plain is None or spread_s is None or full is None:
            return None
        return StepParts(one_full, plain - one, spread_s - plain,
                         full - spread_s - (one_full - one))

    def speedup(self, cfg: _Config, n: int, speed: float, loader: str,
                spread: float, tail: str = "exponential") -> float | str:
        at_n = self.throughput(cfg, n, speed, loader, spread, tail)
        at_1 = self.throughput(cfg, 1, speed, loader, spread, tail)
        if isinstance(at_n, str):
            return at_n
        if isinstance(at_1, str):
            return at_1
        return at_n / at_1


def slowest_rank_log_lag(n: int, spread: float, tail: str) -> float:
    """log of what the slowest of n ranks' compute takes against one rank's (>= 0)."""
    return math.log(rank_time_factors(n, spread, tail)[0])


def fit_rank_spread(results: list[RowResult], tail: str = "exponential") -> float:
    """Least squares, on the log speedups of the SPREAD_FIT_GPUS rows, of the spread whose
    slowest rank of N makes the rest of the model's speedup the published one:
    log(published / simulated) = -slowest_rank_log_lag(N, spread). The lag grows with the
    spread, so the sum of squares has one minimum in [0, 1), found by golden-section
    search."""
    pairs = [(r.n_gpus, math.log(r.published / r.simulated)) for r in results
             if r.n_gpus in SPREAD_FIT_GPUS and r.simulated is not None]
    if not pairs:
        return 0.0

    def squares(spread: float) -> float:
        return sum((y + slowest_rank_log_lag(n, spread, tail)) ** 2 for n, y in pairs)

    low, high = 0.0, 0.999
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(100):            # the bracket shrinks to 0.618^100 of [0, 1)
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if squares(a) <= squares(b):
            high = b
        else:
            low = a
    return (low + high) / 2


def compare(rows: list[dict] | None = None, baselines: dict[tuple, float] | None = None,
            rank_spread: float | None = None, gradient_sync: str | None = None,
            rank_tail: str = "exponential", breakdown: bool = False) -> list[RowResult]:
    """Simulated against published speedup for every row (load_rows() by default), each GPU
    at its row's 1-GPU throughput (baselines, load_baselines() by default; a setup without
    one runs the GPU as modelled), with the row's loader, its framework's gradient
    synchronisation (row_gradient_sync; `gradient_sync` instead: that scheme for every row,
    gradients ready per op), and the ranks' spread fitted on the 2- and 4-GPU rows
    with its tail rank_tail (fit_rank_spread) unless rank_spread is given. With `breakdown`,
    each simulated row also carries its step's parts (_Simulator.step_parts)."""
    from hwmodels import host_input
    rows = load_rows() if rows is None else rows
    baselines = load_baselines() if baselines is None else baselines
    loader_fits = {host_input.loader(name).fitted_to.split(":")[0]: name
                   for name in host_input.loader_names()[1:]}
    sim = _Simulator()
    formats = stated_memory_formats()
    plans = []
    for row in rows:
        n, published = int(row["n_gpus"]), float(row["speedup_vs_1gpu"])
        stated = bool(row["batch_per_gpu"])
        batch = int(row["batch_per_gpu"]) if stated else DEFAULT_BATCH.get(row["precision"])
        notes = []
        sync, ready = row_gradient_sync(row) if gradient_sync is None else \
            (gradient_sync, "per-op")
        if ready == "at-end":
            notes.append("XLA: compiled there, eager op times here")
        machine, loader = MACHINES.get(row["gpu_variant"]), row_loader(row)
        reason: str | None = None
        cfg: _Config | None = None
        speed = 1.0
        if machine is None:
            reason = f"machine {row['gpu_variant']!r} is not modelled"
        elif row["precision"] not in PRECISIONS:
            reason = f"precision {row['precision']!r} is not modelled"
        elif batch is None:
            reason = "no batch stated and no default"
        elif loader is None:
            reason = f"no loader known for {row['framework']!r}"
        else:
            horovod = sync == "horovod"
            cfg = _Config(*machine, PRECISIONS[row["precision"]], batch, sync, ready,
                          row_memory_format(row, formats),
                          row_horovod_one_rank(row) if horovod else None,
                          row_horovod_enqueue(row) if horovod else None)
            one = sim.throughput(cfg, 1)
            base = baselines.get(setup_of(row))
            if isinstance(one, str):
                reason = one
            elif base is None:
                notes.append("no 1-GPU row: GPU as modelled")
            else:
                speed = sim.anchor_speed(cfg, base, one)
        plans.append((row, n, published, stated, batch, notes, reason, cfg, speed, loader))

    def run(spread: float, parts_too: bool = False) -> list[RowResult]:
        out = []
        for row, n, published, stated, batch, notes, reason, cfg, speed, loader in plans:
            anchored = setup_of(row) in baselines
            simulated: float | None = None
            synthetic: float | None = None
            parts: StepParts | None = None
            if cfg is not None and loader is not None and reason is None:
                full = sim.speedup(cfg, n, speed, loader, spread, rank_tail)
                plain = sim.speedup(cfg, n, 1.0, "synthetic", 0.0)
                if isinstance(full, str):
                    reason = full
                elif isinstance(plain, str):
                    reason = plain
                else:
                    simulated, synthetic = full, plain
                    if parts_too:
                        parts = sim.step_parts(cfg, n, speed, loader, spread, rank_tail)
            fitted = (f"{loader_fits[row['row_id']]} cost" if row["row_id"] in loader_fits else
                      "rank_spread" if n in SPREAD_FIT_GPUS else "")
            out.append(RowResult(row["row_id"], row["framework"], row["framework_version"],
                                 row["gpu_variant"], row["precision"], n, batch, stated,
                                 published, simulated, "; ".join(
                                     ([reason] if reason else []) + notes), synthetic, loader,
                                 spread, rank_tail, fitted, anchored, parts))
        return out

    if rank_spread is None:
        rank_spread = fit_rank_spread(run(0.0), rank_tail)
    return run(rank_spread, breakdown)


def fit_loader_costs(path: Path = SCALING_CSV) -> dict[str, tuple[str, float]]:
    """Per loader of the catalog, the row it is fitted to and the per-image CPU cost that
    row gives: the node's cores over its published images/s (the row was input-bound)."""
    from hwmodels import host_input
    rows = {r["row_id"]: r for r in read_table(path)}
    out = {}
    for name in host_input.loader_names()[1:]:
        row_id = host_input.loader(name).fitted_to.split(":")[0]
        row = rows[row_id]
        cores = host_input.host_cpus(MACHINES[row["gpu_variant"]][0]).cores  # type: ignore[union-attr]
        out[name] = (row_id, cores / float(row["throughput_img_s"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.validate.published_scaling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=SCALING_CSV,
                        help="the published scaling table (default: the committed one)")
    parser.add_argument("--gpu-as-modelled", action="store_true",
                        help="run each GPU at the GPU model's speed instead of the row's 1-GPU "
                             "throughput")
    parser.add_argument("--gradient-sync", choices=("framework", *GRADIENT_SYNCS),
                        default="framework",
                        help="how gradients are all-reduced: each row's framework's way "
                             "(default), or one scheme for every row")
    parser.add_argument("--rank-tail", choices=RANK_TAILS, default=RANK_TAILS[0],
                        help="how the ranks' step times vary (data-parallel option "
                             "rank_tail; default %(default)s)")
    parser.add_argument("--fit-loaders", action="store_true",
                        help="print each loader's per-image CPU cost fitted to its row of the "
                             "table (catalog/input_pipelines.toml holds them)")
    parser.add_argument("--breakdown", action="store_true",
                        help="print, per row, how much longer its step at N GPUs is than at "
                             "one, published and simulated, the simulated part by part "
                             "(communication, the ranks' spread, the loader)")
    parser.add_argument("--step-losses", action="store_true",
                        help="print, per setup of the table, its 1-GPU step and how much "
                             "longer a step at each GPU count takes (from the table alone)")
    args = parser.parse_args(argv)
    try:
        if args.fit_loaders:
            for name, (row_id, cost) in fit_loader_costs(args.csv).items():
                print(f"{name}: cpu_core_s_per_image = {cost:.4e} (fitted to {row_id})")
            return 0
        if args.step_losses:
            print(format_step_losses(published_step_losses(args.csv)))
            return 0
        results = compare(load_rows(args.csv),
                          {} if args.gpu_as_modelled else load_baselines(args.csv),
                          gradient_sync=None if args.gradient_sync == "framework" else
                          args.gradient_sync, rank_tail=args.rank_tail,
                          breakdown=args.breakdown)
    except (ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_breakdown(results) if args.breakdown else format_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
