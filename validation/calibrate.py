"""`dnnsim calibrate`: measure op kinds on this machine and write a device profile.

What is measured: every op of the training graphs of the zoo networks at their validation
batches and a grid around them (half and double batch), and of synthetic networks that cover
other shapes (validation/calibration_nets.py). Each network's training graph is *replayed*
(validation/replay.py): its ops' ATen kernels run in step order on the tensors their producers
made, so each op is timed as it runs inside a step, with the cache and allocator state a step
leaves it (ops timed alone ran 5-20% faster than in a step). A point is an op's time in its
network's fastest replay round (records_of_replay says why). Then the per-op framework
overhead of a whole step (autograd, the Python module, the optimizer's Python loop) is measured
on a small network, as its step minus its replay, and folded into every point: a point is "the
time this op adds to a step".

Each replay is appended to a partial file (JSON lines) as it is done: an interrupted run keeps
what it measured and resumes from it. The profile is built from the partial file.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics

from hwmodels.families import point_shape
from hwmodels.profile import RESIDENCY_FIELDS, Profile
from hwmodels.residency import meta_of as residency_meta
from workloads import zoo
from workloads.graph import Op, OpGraph, WorkloadError
from workloads.training import lower_training

from .calibration_nets import GRID_CASES

# The networks and batches the committed data set validates (steps of 5 ms - 0.4 s on one core)
DEFAULT_CASES: tuple[tuple[str, int], ...] = (
    ("lenet5", 64), ("lenet5", 256), ("resnet20", 16), ("resnet20", 32),
    ("resnet56", 8), ("resnet56", 16), ("alexnet_cifar", 32), ("alexnet_cifar", 128),
    ("vgg16_cifar", 8), ("vgg16_cifar", 16),
)
GRID_BATCH_FACTORS = (0.5, 2.0)
DEFAULT_DEVICE_NAME = {"cpu": "xeon-avx512-2c", "cuda": "h100"}


def op_key(op: Op) -> str:
    """Identity of an op for measurement: kind, input and output shapes, attributes."""
    attrs = {k: v for k, v in sorted(op.attrs.items()) if k != "optimizer"}
    shapes = [list(s.shape) for s in op.in_specs]
    return json.dumps([op.kind, shapes, list(op.out.shape), op.params, repr(attrs)])


def calibration_cases(cases=DEFAULT_CASES, grid: bool = True,
                      synthetic: bool = True) -> list[tuple[str, int]]:
    """(network, batch) pairs to replay: the cases, with `grid` their half and double batches,
    with `synthetic` the shape-grid networks of calibration_nets."""
    out: set[tuple[str, int]] = set()
    for name, batch in cases:
        out.add((name, batch))
        if grid:
            out |= {(name, max(1, int(batch * f))) for f in GRID_BATCH_FACTORS}
    if synthetic:
        out |= set(GRID_CASES)
    return sorted(out)


def records_of_replay(network: str, train: OpGraph, rounds: list[dict[str, float]]) -> list[dict]:
    """One record per distinct op of a replayed graph: its time in the fastest replay round
    (time_s; the mean over repeats of the same op in the network) and the median over all
    rounds (median_s). Why the fastest round and not each op's fastest time: slowdowns of a
    shared machine come and go within a round, and the sum of each op's best would undercut
    the fastest step measured whole (by 7% over 5 rounds on a 2-vCPU VM)."""
    fastest = min(rounds, key=lambda r: sum(r.values()))
    by_key: dict[str, tuple[Op, list[float], list[float]]] = {}
    for op in train.topo():
        if op.is_view:
            continue
        _, best, every = by_key.setdefault(op_key(op), (op, [], []))
        best.append(fastest[op.name])
        every.extend(r[op.name] for r in rounds)
    return [{"key": key, "kind": op.kind, "flops": op.flops, "bytes": op.bytes_moved,
             "shape": point_shape(op), "time_s": statistics.fmean(best),
             "median_s": statistics.median(every), "sources": [network]}
            for key, (op, best, every) in sorted(by_key.items())]


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

    from hwmodels.kernels import vector_fp32_lanes
    meta = {"machine": platform.machine() or "unknown", "processor": processor_name(device),
            "threads": int(threads), "torch_version": torch.__version__,
            "date": datetime.date.today().isoformat()}
    lanes = vector_fp32_lanes() if device == "cpu" else None
    if lanes:   # oneDNN blocks channels by it (hwmodels/kernels.py)
        meta["vector_fp32_lanes"] = lanes
    return meta


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


# A case's fastest time is settled when a second round comes within this of it: on a shared
# VM a slow spell can last a whole run of 10 rounds (steps and replays 10-40% slower), and a
# fastest time that no other round confirms may be a spell's, or luck
SETTLE_TOLERANCE = 0.03


def measure_cases(cases: list[tuple[str, int]], partial_path, device: str = "cpu",
                  rounds: int = 5, progress: bool = True, steps_of=(),
                  module_steps=None, max_rounds: int | None = None,
                  settle: float = SETTLE_TOLERANCE) -> list[dict]:
    """Replay every (network, batch) `rounds` times, round-robin: one replay of each case per
    round, so that a slow spell of a shared machine (seconds to a minute long) hits one round
    of a case, not all of them. Then, up to `max_rounds`, more rounds of the cases whose
    fastest time is not yet settled (is_settled). Each replay is appended to the partial file
    as it is done (resumable). Returns the records of all cases (records_of_replay), in case
    order.

    steps_of: cases whose real training steps are also timed, next to their replay in every
    round (read them back with measured_steps); the profile never uses them. Why here: steps
    timed by a later `dnnsim validate` may meet another spell of the machine than the ops.
    module_steps: {(name, batch): (forward OpGraph, callable returning step times)} of
    modules that are only timed, once per round (the held-out modules)."""
    from tqdm import tqdm

    from .calibration_nets import get
    from .replay import replay_times
    from .torch_exec import graph_step, measure, resolve_device
    trains = {c: lower_training(get(*c)) for c in cases}
    module_steps = dict(module_steps or {})
    everything = [*cases, *module_steps]
    prints = {c: graph_fingerprint(t) for c, t in trains.items()}
    prints |= {c: graph_fingerprint(lower_training(g)) for c, (g, _) in module_steps.items()}
    # a line of another version of a case's graph (an older dnnsim, a changed grid) is stale
    done = {k: rec for k, rec in read_partial(partial_path).items()
            if rec.get("graph") == prints.get(_case_of(k))}
    loops: dict = {}

    def measure_round(fh, r: int, case: tuple[str, int]) -> None:
        line = {"key": round_id(*case, r), "graph": prints[case]}
        if case in module_steps:
            line["step_s"] = list(module_steps[case][1]())
        else:
            line["times"] = replay_times(trains[case], device, rounds=1)[0]
        if case in steps_of:   # one persistent training loop per case, a few steps a round
            if case not in loops:
                loops[case] = graph_step(get(*case), True, device)
            line["step_s"] = list(measure(loops[case], resolve_device(device), 1, 2).samples_s)
        fh.write(json.dumps(line, sort_keys=True) + "\n")
        fh.flush()
        done[line["key"]] = line

    todo = [(r, c) for r in range(rounds) for c in everything if round_id(*c, r) not in done]
    _end_torn_line(partial_path)
    with open(partial_path, "a", encoding="utf-8") as fh:
        for r, case in tqdm(todo, desc="calibrate (replayed steps)", unit="step",
                            disable=not progress):
            measure_round(fh, r, case)
        for r in range(rounds, max_rounds or 0):
            unsettled = [c for c in everything
                         if not is_settled(case_rounds(done, c), settle)]
            if not unsettled:
                break
            for case in tqdm(unsettled, desc=f"calibrate (round {r + 1}, unsettled cases)",
                             unit="step", disable=not progress):
                if round_id(*case, r) not in done:
                    measure_round(fh, r, case)
    return [rec for c in cases for rec in records_of_replay(
        c[0], trains[c], [rnd["times"] for rnd in case_rounds(done, c)])]


def is_settled(rounds: list[dict], settle: float = SETTLE_TOLERANCE) -> bool:
    """Whether a case's fastest replay (and fastest step, where steps are timed) is confirmed:
    another round came within `settle` of it."""
    series = [[sum(r["times"].values()) for r in rounds if "times" in r],
              [min(r["step_s"]) for r in rounds if r.get("step_s")]]
    return all(len(s) >= 2 and sorted(s)[1] <= sorted(s)[0] * (1 + settle)
               for s in series if s or not rounds)


def case_rounds(done: dict[str, dict], case: tuple[str, int]) -> list[dict]:
    """A case's measured rounds, in round order."""
    prefix = f"{case[0]}@{case[1]}#"
    found = sorted((int(k[len(prefix):]), rec) for k, rec in done.items()
                   if k.startswith(prefix) and k[len(prefix):].isdigit())
    return [rec for _, rec in found]


def measured_steps(partial_path, cases) -> list[dict]:
    """The real training steps timed alongside the replays (fastest sample), in the layout of
    validate's measured-steps CSV."""
    done = read_partial(partial_path)
    out = []
    for name, batch in cases:
        samples = [s for rnd in case_rounds(done, (name, batch)) for s in rnd.get("step_s", [])]
        if samples:
            out.append({"network": name, "batch": batch, "mode": "train",
                        "measured_s": min(samples)})
    return out


def round_id(network: str, batch: int, round_index: int) -> str:
    return f"{network}@{batch}#{round_index}"


def _case_of(key: str) -> tuple[str, int] | None:
    try:
        name, rest = key.split("@", 1)
        return name, int(rest.split("#", 1)[0])
    except ValueError:
        return None


def graph_fingerprint(train: OpGraph) -> str:
    """A short hash of a training graph's timed ops (kind, shapes, attributes, in order)."""
    import hashlib
    keys = [f"{op.name}={op_key(op)}" for op in train.topo() if not op.is_view]
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


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


def measure_overhead(device: str = "cpu", rounds: int = 15) -> float:
    """Seconds per non-view op that a whole training step adds over its replayed ops: the
    fastest step minus the fastest replay, over interleaved rounds."""
    from .replay import replay_times
    from .torch_exec import GraphModule, example_input, measure, resolve_device, step_function
    dev = resolve_device(device)
    g = overhead_network()
    train = lower_training(g)
    step = step_function(GraphModule(g, dev), example_input(g, dev), True)
    steps: list[float] = []
    replays: list[float] = []
    for _ in range(rounds):
        steps += measure(step, dev, 1, 2).samples_s
        replays += [sum(r.values()) for r in replay_times(train, dev, rounds=2)]
    n_ops = sum(1 for op in train.topo() if not op.is_view)
    return max(0.0, (min(steps) - min(replays)) / n_ops)


OVERHEAD_KEY = "step_overhead"   # the partial file's record of the measured step overhead


def overhead_from_partial(partial_path, device: str = "cpu", rounds: int = 15) -> float:
    """The step overhead recorded in the partial file, else measured now and recorded: a
    resumed run keeps the overhead of the run it resumes (measured again, minutes or days
    later, it moves every point of the profile; 2.0 against 4.1 us per op, once)."""
    fingerprint = graph_fingerprint(lower_training(overhead_network()))
    rec = read_partial(partial_path).get(OVERHEAD_KEY)
    if rec is not None and rec.get("graph") == fingerprint:
        return float(rec["overhead_s"])
    overhead_s = measure_overhead(device, rounds)
    _end_torn_line(partial_path)
    with open(partial_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"key": OVERHEAD_KEY, "graph": fingerprint,
                             "overhead_s": overhead_s}, sort_keys=True) + "\n")
    return overhead_s


# A fixed validation case whose replay says how fast the machine runs: calibrate records its
# fastest round (rounds are spread over the whole run), validate replays it again and compares
# (a shared VM drifts by 10-30% over minutes)
REFERENCE_CASE = ("resnet20", 16)


def reference_replay_s(device: str = "cpu", rounds: int = 5) -> float:
    """The fastest of `rounds` replays of REFERENCE_CASE now, in seconds."""
    from .replay import replay_times
    train = lower_training(zoo.get(REFERENCE_CASE[0], batch=REFERENCE_CASE[1]))
    return min(sum(r.values()) for r in replay_times(train, device, rounds=rounds))


def reference_from_rounds(partial_path) -> float | None:
    """REFERENCE_CASE's fastest replay among calibration's rounds (None if not measured)."""
    sums = [sum(rnd["times"].values())
            for rnd in case_rounds(read_partial(partial_path), REFERENCE_CASE) if "times" in rnd]
    return min(sums) if sums else None


def speed_check(profile: Profile, device: str = "cpu") -> str:
    """A line comparing the machine's speed now with its speed at calibration."""
    ref = profile.meta.get("reference_replay_s")
    if ref is None:
        return ("machine speed check: none (the profile records no reference replay; "
                "calibrate again to get one)")
    now = reference_replay_s(device)
    drift = now / ref - 1.0
    line = (f"machine speed check: {REFERENCE_CASE[0]} at batch {REFERENCE_CASE[1]} replays in "
            f"{now * 1e3:.2f} ms now, {ref * 1e3:.2f} ms at calibration ({drift:+.1%})")
    if abs(drift) > 0.05:
        line += ("; errors of that size and sign come from the machine, not the model "
                 "(time steps with `dnnsim calibrate --steps-csv` to compare in one phase)")
    return line


def build_profile(records, meta: dict, overhead_s: float = 0.0,
                  exclude_network: str | None = None, statistic: str = "time_s") -> Profile:
    """A Profile from measurement records: one point per distinct op, the median over the
    networks it was measured in. `exclude_network` builds a leave-one-network-out profile: it
    drops every op shape that network has, also where another network measured it (ResNet-20
    and ResNet-56 share all theirs), so the profile has never seen any of its shapes."""
    from .residency import as_spilled, fit_records
    excluded = {rec["key"] for rec in records
                if exclude_network and exclude_network in rec["sources"]}
    kept = [rec for rec in records if rec["key"] not in excluded]
    # points are times in steps that do not fit in the cache; the others are converted
    residency = fit_records(kept, meta, statistic)
    by_key: dict[str, list[float]] = {}
    first: dict[str, dict] = {}
    for rec in kept:
        first.setdefault(rec["key"], rec)
        by_key.setdefault(rec["key"], []).append(as_spilled(rec, residency, statistic))
    kinds: dict[str, list] = {}
    for key in sorted(by_key):
        rec = first[key]
        t = statistics.median(by_key[key])
        kinds.setdefault(rec["kind"], []).append(
            [float(rec["flops"]), float(rec["bytes"]), t + overhead_s, *(rec.get("shape") or [])])
    meta = {k: v for k, v in meta.items() if k not in RESIDENCY_FIELDS}
    meta |= {**residency_meta(residency), "step_overhead_s": float(overhead_s)}
    return Profile(meta=meta, kinds=kinds, label="calibrated profile")


def default_device_name(device: str) -> str:
    if device not in DEFAULT_DEVICE_NAME:
        raise WorkloadError(f"--device must be cpu or cuda, got {device!r}")
    return DEFAULT_DEVICE_NAME[device]


OPS_CSV_FIELDS = ("kind", "flops", "bytes", "shape", "time_s", "median_s", "sources", "key")


def write_ops_csv(records, path) -> None:
    import csv
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(OPS_CSV_FIELDS)
        for r in sorted(records, key=lambda r: (r["key"], r["sources"])):
            shape = ";".join(str(d) for d in r["shape"]) if r.get("shape") else ""
            w.writerow([r["kind"], repr(float(r["flops"])), repr(float(r["bytes"])), shape,
                        repr(float(r["time_s"])), repr(float(r["median_s"])),
                        ";".join(r["sources"]), r["key"]])


def read_ops_csv(path) -> list[dict]:
    import csv
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in OPS_CSV_FIELDS if f != "shape" and f not in (reader.fieldnames
                                                                           or ())]
        if missing:
            raise WorkloadError(f"{path}: not an ops CSV of `dnnsim calibrate` (no column "
                                f"{', '.join(missing)})")
        try:
            return [{**r, "flops": float(r["flops"]), "bytes": float(r["bytes"]),
                     # the column was called 'gemm' before layouts were recorded
                     "shape": _shape_cell(r.get("shape") or r.get("gemm")),
                     "time_s": float(r["time_s"]), "median_s": float(r["median_s"]),
                     "sources": r["sources"].split(";")} for r in reader]
        except (TypeError, ValueError) as exc:
            raise WorkloadError(f"{path}, line {reader.line_num}: {exc}") from None


def _shape_cell(cell: str | None) -> list[int] | None:
    return [int(d) for d in cell.split(";")] if cell else None
