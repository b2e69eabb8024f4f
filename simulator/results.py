"""Result: the figures of one simulated run, with units in every name."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .cluster import WIRE_RESOURCE
from .engine_log import OutOfMemory, RunLog


def _union_length(intervals: list[tuple[float, float]]) -> float:
    return _sorted_union_length(sorted(intervals))


def _sorted_union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in intervals:
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def _subtract_length(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Length of union(a) not covered by union(b)."""
    a = sorted(a)   # once: the union's length and the merge read the same order
    return _sorted_union_length(a) - _union_length(_intersect(_merge(a), _merge(sorted(b))))


def _merge(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Intervals sorted by start, overlapping or touching ones joined."""
    out: list[tuple[float, float]] = []
    if not iv:
        return out
    start, end = iv[0]
    for s, e in iv:
        if s <= end:
            if e > end:
                end = e
        else:
            out.append((start, end))
            start, end = s, e
    out.append((start, end))
    return out


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]
               ) -> list[tuple[float, float]]:
    """Where two merged interval lists overlap (max and min spelt out: a hot loop)."""
    i = j = 0
    na, nb = len(a), len(b)
    out = []
    while i < na and j < nb:
        a_start, a_end = a[i]
        b_start, b_end = b[j]
        s = b_start if b_start > a_start else a_start
        e = b_end if b_end < a_end else a_end
        if s < e:
            out.append((s, e))
        if a_end < b_end:
            i += 1
        else:
            j += 1
    return out


@dataclass
class Result:
    policy: str
    workload: str
    batch: int
    training: bool
    cluster: dict
    options: dict
    log: RunLog
    samples_per_iteration: int
    iterations: int = 1
    extras: dict = field(default_factory=dict)
    iteration_time_override_s: float | None = None
    # what a sample is in tokens and FLOPs, and the devices' peak (simulator/model_flops.py);
    # None where not known: no token input, or a policy that trains other graphs (supernets)
    tokens_per_sample: int | None = None
    model_flops_per_sample: float | None = None
    peak_flops_per_s: float | None = None

    # -- headline figures ----------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.log.ok

    @property
    def oom(self) -> OutOfMemory | None:
        return self.log.oom

    @property
    def makespan_s(self) -> float:
        return self.log.makespan_s

    @property
    def iteration_time_s(self) -> float:
        if not self.ok:
            return float("nan")
        if self.iteration_time_override_s is not None:
            return self.iteration_time_override_s
        return self.makespan_s / self.iterations

    @property
    def throughput_samples_per_s(self) -> float:
        t = self.iteration_time_s
        return self.samples_per_iteration / t if t > 0 else float("nan")

    @property
    def throughput_tokens_per_s(self) -> float | None:
        """Samples per second times the tokens of one sample; None without a token input."""
        if self.tokens_per_sample is None:
            return None
        return self.throughput_samples_per_s * self.tokens_per_sample

    @property
    def achieved_flops_per_s(self) -> float | None:
        """The op graph's counted FLOPs per sample times samples per second."""
        if self.model_flops_per_sample is None:
            return None
        return self.model_flops_per_sample * self.throughput_samples_per_s

    @property
    def model_flops_utilisation(self) -> float | None:
        """Achieved FLOP/s over the devices' peak in the run's arithmetic (MFU, 0-1)."""
        achieved = self.achieved_flops_per_s
        if achieved is None or not self.peak_flops_per_s:
            return None
        return achieved / self.peak_flops_per_s

    def _every_one(self, values: dict, additive: bool = False) -> dict:
        """Figures per device or resource for every one of them: where the run simulated one
        replica per symmetry class (log.meta 'represented_by': a device or resource -> the
        one standing for it; policies/_replicas.py), each takes its representative's, as the
        run of every replica gives it. An `additive` figure (bytes, busy time) of a resource
        every class crosses (log.meta 'class_copies': a rail's uplinks) is the simulated
        class's times the classes."""
        out = dict(values)
        if additive:
            for r, copies in ((self.log.meta or {}).get("class_copies") or {}).items():
                if r in out:
                    out[r] = out[r] * copies
        for name, rep in ((self.log.meta or {}).get("represented_by") or {}).items():
            if rep in values:
                out[name] = values[rep]
        return out

    # The figures below read every task of the log, which does not change once the run is
    # over: each is computed once (summary() reads them several times, over hundreds of
    # thousands of tasks in a big run) and handed out as a copy.
    @cached_property
    def _busy_s(self) -> dict[str, float]:
        busy = {r: 0.0 for r in self.log.capacities}
        for t, s, e in zip(self.log.tasks, self.log.start_s, self.log.end_s, strict=True):
            if e == e:
                ran_s = e - s
                for r in t.resources:
                    busy[r] += ran_s
        return self._every_one(busy, additive=True)

    @property
    def busy_s(self) -> dict[str, float]:
        """Per resource: task-seconds run on it (a resource of capacity c can reach c*time)."""
        return dict(self._busy_s)

    @property
    def utilisation(self) -> dict[str, float]:
        """Per resource: busy time over the run's makespan and the resource's capacity (0-1)."""
        span = self.makespan_s
        return {r: (b / (span * self.log.capacities[r]) if span > 0 else 0.0)
                for r, b in self._busy_s.items()}

    @property
    def link_utilisation(self) -> dict[str, float]:
        """Per network resource (a link direction, a node's NIC, a shared medium) and copy
        engine that carried bytes: its utilisation (0-1)."""
        util = self.utilisation
        return {r: util[r] for r in sorted(self._link_bytes) if r in util}

    @cached_property
    def _link_bytes(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for t, e in zip(self.log.tasks, self.log.end_s, strict=True):
            if e == e and t.category in ("comm", "copy"):
                carried = float(t.meta.get("bytes", 0.0)) + float(
                    t.meta.get("received_bytes", 0.0))
                for r in t.resources:
                    if r != WIRE_RESOURCE:
                        out[r] = out.get(r, 0.0) + carried
        return self._every_one(out, additive=True)

    @property
    def link_bytes(self) -> dict[str, float]:
        """Per network resource and copy engine: bytes it carried over the whole run, sent
        (a task's `bytes`) or taken off the network (a receive's `received_bytes`). The wire
        (a transfer's flight between nodes: a delay, no link) is not one."""
        return dict(self._link_bytes)

    @cached_property
    def _exposed_communication_s(self) -> dict[str, float]:
        comm: dict[str, list] = {}
        comp: dict[str, list] = {}
        for t, s, e in zip(self.log.tasks, self.log.start_s, self.log.end_s, strict=True):
            if e > s and (device := t.device) is not None:   # False for NaN: never ran
                spans = comp if t.category == "compute" else comm
                if (on := spans.get(device)) is None:
                    spans[device] = [(s, e)]
                else:
                    on.append((s, e))
        return self._every_one({d: _subtract_length(iv, comp.get(d, []))
                                for d, iv in sorted(comm.items())})

    @property
    def exposed_communication_s(self) -> dict[str, float]:
        """Per device: time its communication or copies run while its compute stream is idle,
        over the whole run (every simulated iteration; see
        exposed_communication_per_iteration_s)."""
        return dict(self._exposed_communication_s)

    @property
    def exposed_communication_per_iteration_s(self) -> dict[str, float]:
        """Per device: exposed communication over the run divided by the iterations simulated
        (a pipeline simulates several minibatches; fill and drain are spread over them)."""
        return {d: v / self.iterations for d, v in self._exposed_communication_s.items()}

    @property
    def peak_memory_bytes(self) -> dict[str, int]:
        """Per device: the peak of the step's tensors, each in the allocator's blocks (what
        torch.cuda.max_memory_allocated reports on a GPU); the same as peak_allocated_bytes."""
        return self._every_one(self.log.peak_memory_bytes)

    @property
    def peak_allocated_bytes(self) -> dict[str, int]:
        return self._every_one(self.log.peak_memory_bytes)

    @property
    def peak_reserved_bytes(self) -> dict[str, int]:
        """Per device: what the caching allocator holds at its peak (torch.cuda.
        max_memory_reserved): the tensors plus its rounding and cached blocks."""
        return self._every_one(self.log.peak_reserved_bytes or self.log.peak_memory_bytes)

    @property
    def peak_device_memory_bytes(self) -> dict[str, int]:
        """Per device: what nvidia-smi would show at the peak: reserved plus the CUDA context."""
        context = self._every_one(self.log.context_bytes)
        return {d: b + context.get(d, 0)
                for d, b in self.peak_reserved_bytes.items()}

    def __repr__(self) -> str:
        c = self.cluster
        head = (f"Result({self.policy}: {self.workload} batch {self.batch} "
                f"{'training' if self.training else 'inference'} on {c.get('devices')} x "
                f"{c.get('device')}")
        if not self.ok:
            return head + ", out of memory)"
        from .report import seconds, sig
        return (head + f", iteration {seconds(self.iteration_time_s)}, "
                f"{sig(self.throughput_samples_per_s)} samples/s, {len(self.log.tasks)} tasks)")

    # -- outputs -------------------------------------------------------------------------
    def summary(self) -> dict:
        """The figures, units in the keys; what --json prints."""
        exposed = self.exposed_communication_per_iteration_s
        util = self.utilisation
        busy = self._busy_s
        # A device computes on its stream, or core by core (CPU work items): count what ran.
        compute_util = [u for r, u in util.items()
                        if r.endswith((".compute", ".cores")) and busy[r] > 0]
        out: dict[str, Any] = {
            "policy": self.policy, "workload": self.workload, "batch": self.batch,
            "training": self.training, "cluster": self.cluster, "options": self.options,
            "status": "ok" if self.ok else "out_of_memory",
            "iteration_time_s": self.iteration_time_s,
            "throughput_samples_per_s": self.throughput_samples_per_s,
            "throughput_tokens_per_s": self.throughput_tokens_per_s,
            "achieved_flops_per_s": self.achieved_flops_per_s,
            "peak_flops_per_s": self.peak_flops_per_s,
            "model_flops_utilisation": self.model_flops_utilisation,
            "makespan_s": self.makespan_s,
            "tasks": len(self.log.tasks),
            "iterations_simulated": self.iterations,
            "exposed_communication_s": max(exposed.values(), default=0.0),
            "mean_compute_utilisation": (sum(compute_util) / len(compute_util)
                                         if compute_util else 0.0),
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_reserved_bytes": self.peak_reserved_bytes,
            "context_bytes": self._every_one(self.log.context_bytes),
            "memory_capacity_bytes": self.log.memory_capacity_bytes,
            "link_bytes": self.link_bytes,
            "link_utilisation": self.link_utilisation,
        }
        if self.ok:
            # A speed or bandwidth so small that a figure overflows is not a result.
            bad = [k for k in HEADLINE_FIGURES if not math.isfinite(out[k])]
            if bad:
                out["status"] = "error"
                out["error"] = ("non-finite figures: " + ", ".join(f"{k} = {out[k]}" for k in bad)
                                + " (a bandwidth, speed or size too small or too large?)")
        if self.oom is not None:
            out["out_of_memory"] = {**self.oom.__dict__, "message": self.oom.message()}
        if self.extras:
            out["extras"] = self.extras
        return out

    def to_json(self) -> str:
        return json.dumps(jsonable(self.summary()), indent=2, sort_keys=True)

    def records(self) -> list[dict]:
        """One tidy row per task (loads straight into pandas.DataFrame)."""
        rows = []
        for t, s, e in zip(self.log.tasks, self.log.start_s, self.log.end_s, strict=True):
            rows.append({
                "task": t.name, "resource": "+".join(t.resources), "device": t.device or "",
                "category": t.category, "start_s": s, "end_s": e,
                "duration_s": t.duration_s, "op": t.meta.get("op", ""),
                "kind": t.meta.get("kind", ""), "phase": t.meta.get("phase", ""),
                "bytes": t.meta.get("bytes", 0.0),
                "alloc_bytes": sum(t.alloc.values()), "free_bytes": sum(t.free.values()),
            })
        return rows

    def to_csv(self, path: str | Path) -> None:
        rows = self.records()
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["task"])
            w.writeheader()
            w.writerows(rows)

    def to_chrome_trace(self, path: str | Path) -> None:
        from .trace import write_chrome_trace
        write_chrome_trace(self, path)


HEADLINE_FIGURES = ("iteration_time_s", "throughput_samples_per_s", "makespan_s",
                    "exposed_communication_s")


def jsonable(x):
    """Plain, strict JSON values: string keys, lists for tuples, null for NaN and infinities
    (which strict JSON parsers reject), text for the rest."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def model_figures(graph, cluster, training: bool, plan) -> dict:
    """Result's tokens_per_sample, model_flops_per_sample and peak_flops_per_s for a run of
    `graph`; a supernet policy's plan trains subnets other than the graph, so its FLOPs are
    not the graph's and stay unknown."""
    from .model_flops import model_flops_per_sample, peak_flops_per_s, tokens_per_sample
    from .policies._supernet import SupernetPlan
    trains_other_graphs = isinstance(plan, SupernetPlan)
    return {"tokens_per_sample": tokens_per_sample(graph),
            "model_flops_per_sample": (None if trains_other_graphs
                                       else model_flops_per_sample(graph, training)),
            "peak_flops_per_s": peak_flops_per_s(graph, cluster)}
