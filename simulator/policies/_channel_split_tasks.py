"""From a channel-split plan (_channel_split.py) to tasks, with several samples in flight, and
the base class of the `decnn` and `layerwise-mp` policies.

Sample s enters device d when sample s - in_flight has left it, and earlier samples go first on
every resource (priority), so the compute of one sample fills the time another waits for its
exchange. Each exchange is one transfer per (source, destination); a transfer allocates its
bytes on the destination, freed when the op that consumes them ends.
"""
from __future__ import annotations

from workloads.graph import OpGraph

from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import Policy
from ._channel_split import Exchange, SplitPlan, split_plan
from ._runs import run_tasks

PRIORITY_STRIDE = 1_000_000      # sample s's tasks rank after sample s-1's on every resource


def _pairs(ex: Exchange, n: int) -> list[tuple[int, int]]:
    if ex.kind == "broadcast":
        return [(0, e) for e in range(1, n)]
    if ex.kind in ("reduce", "gather"):
        return [(d, 0) for d in range(1, n)]
    if ex.kind == "halo_rows":      # slabs in a column: each swaps with the one above, below
        return [p for d in range(n - 1) for p in ((d, d + 1), (d + 1, d))]
    if ex.kind == "halo_grid":      # 2x2 tiles: each swaps with its row and column neighbour
        return [(0, 1), (1, 0), (2, 3), (3, 2), (0, 2), (2, 0), (1, 3), (3, 1)]
    # all_to_all, allgather: pairwise rounds (d sends to d+k in round k) so ports stay busy
    return [(d, (d + k) % n) for k in range(1, n) for d in range(n)]


def build_tasks(plan: SplitPlan, graph: OpGraph, cluster, name: str, samples: int,
                in_flight: int) -> TaskGraph:
    n = plan.devices
    devices = cluster.devices[:n]
    ids = [d.id for d in devices]
    tg = TaskGraph(name, meta={
        "samples": graph.batch, "iterations": samples,
        "resident_bytes": {ids[d]: resident_bytes(plan.local[d], False) for d in range(n)},
        "split_devices": n})
    position = {d: {op.name: i for i, op in enumerate(plan.local[d].topo())} for d in range(n)}
    last_op = [plan.local[d].topo()[-1].name for d in range(n)]

    def task(s: int, d: int, op_name: str) -> str:
        return f"s{s}/{ids[d]}/{op_name}"

    for s in range(samples):
        extra: list[dict[str, list[str]]] = [{} for _ in range(n)]
        received: list[dict[str, int]] = [{} for _ in range(n)]
        transfers = []
        for ex in plan.exchanges:
            for src, dst in _pairs(ex, n):
                tname = f"s{s}/x/{ex.name}/{ids[src]}->{ids[dst]}"
                transfers.append((tname, ex, src, dst))
                extra[dst].setdefault(ex.consumer, []).append(tname)
                if ex.kind in ("all_to_all", "allgather"):
                    # the sender's buffer lives until its own consumer runs
                    extra[src].setdefault(ex.consumer, []).append(tname)
                if ex.kind != "broadcast":
                    received[dst][ex.consumer] = (received[dst].get(ex.consumer, 0)
                                                  + ex.piece_bytes[src])
        if s >= in_flight:
            first = plan.local[0].topo()[0].name
            for d in range(n):
                extra[d].setdefault(first, []).append(task(s - in_flight, d, last_op[d]))
        for d, dev in enumerate(devices):
            emit_ops(tg, plan.local[d], dev, prefix=f"s{s}/{dev.id}/", extra_deps=extra[d],
                     priority_base=s * PRIORITY_STRIDE, meta={"sample": s})
            for consumer, nbytes in received[d].items():   # received pieces die with it
                t = tg[task(s, d, consumer)]
                t.free[dev.id] = t.free.get(dev.id, 0) + nbytes
        for tname, ex, src, dst in transfers:
            nbytes = ex.piece_bytes[src]
            resources, duration = cluster.transfer(ids[src], ids[dst], nbytes)
            alloc = {} if ex.kind == "broadcast" else {ids[dst]: nbytes}
            sent = [task(s, src, ex.source)]
            priority = s * PRIORITY_STRIDE + position[src][ex.source]
            tg.new(tname, resources, duration, deps=sent, priority=priority, alloc=alloc,
                   category="comm", device=ids[src],
                   meta={"bytes": nbytes, "src": ids[src], "dst": ids[dst],
                         "collective": ex.kind, "sample": s, "op": ex.name})
    tg.meta["exchange_bytes_per_sample"] = sum(
        ex.piece_bytes[src] for ex in plan.exchanges for src, _ in _pairs(ex, n))
    return tg


def sample_times(result) -> tuple[list[float], list[float]]:
    """Start and end of every sample (its first task's start, its last task's end)."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for t, st, en in zip(result.log.tasks, result.log.start_s, result.log.end_s, strict=True):
        s = t.meta.get("sample")
        if s is None or en != en:
            continue
        starts[s] = min(starts.get(s, st), st)
        ends[s] = max(ends.get(s, en), en)
    order = sorted(ends)
    return [starts[s] for s in order], [ends[s] for s in order]


class SplitInferencePolicy(Policy):
    """Base of `decnn` and `layerwise-mp`: plan, then latency and throughput in extras."""
    mode = ""

    def split(self, graph: OpGraph, cluster) -> SplitPlan:
        return split_plan(graph, len(cluster.devices), self.mode, self.name)

    def plan(self, graph, cluster, training: bool, *, in_flight: int,
             samples: int) -> TaskGraph:
        return build_tasks(self.split(graph, cluster), graph, cluster,
                           f"{self.name}:{graph.name}", samples, in_flight)

    def finalize(self, result, graph, cluster, training: bool, *, in_flight: int,
                 samples: int) -> float:
        starts, ends = sample_times(result)
        # steady state: the interval between finishing samples once the pipeline is full
        interval = ((ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1
                    else ends[0] - starts[0])
        alone = self.plan(graph, cluster, training, in_flight=1, samples=1)
        log = run_tasks(alone, cluster, enforce_memory=False)
        peaks = result.peak_memory_bytes
        result.extras.update({
            "latency_s": log.makespan_s,
            "latency_loaded_s": sum(e - s for s, e in zip(starts, ends, strict=True)) / len(ends),
            "throughput_samples_per_s": graph.batch / interval,
            "in_flight": in_flight, "samples": samples,
            "exchange_bytes_per_sample": alone.meta["exchange_bytes_per_sample"],
            "weights_per_device_bytes": max(alone.meta["resident_bytes"].values()),
            "memory_per_device_bytes": max(peaks.values()),
        })
        return interval
