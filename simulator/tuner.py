"""The minibatch tuner: throughput against minibatch size under the device's memory.

For each policy, a ladder of minibatch sizes (ratio ~sqrt(2)) from `min_batch` up to the first
size that runs out of memory (or `max_batch`), then a bisection between the last size that ran
and the first that did not: the largest trainable minibatch, found in O(log) simulations rather
than one per size. Then a Fibonacci search (the golden section on whole numbers) between the
best size simulated and its simulated neighbours: the throughput-optimal minibatch to one
sample, rather than a point of the ladder (whose steps of ~1.4x would set any ratio of
minibatches built on it). The search assumes throughput has one peak between those neighbours;
where it has several it finds one of them, never one worse than the ladder's best. Each size
gets a learning rate scaled linearly from a reference (Goyal et al. 2017), the rule the
paper's tuner pairs with the minibatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .api import simulate
from .cluster import Cluster
from .policies import ConfigError


@dataclass
class BatchPoint:
    batch: int                        # per device
    ok: bool
    throughput_samples_per_s: float
    iteration_time_s: float
    peak_memory_bytes: int            # the largest over the devices
    learning_rate: float
    note: str = ""                    # the out-of-memory message, if any


@dataclass
class PolicyTuning:
    policy: str
    points: list[BatchPoint] = field(default_factory=list)

    @property
    def largest_trainable(self) -> int | None:
        ok = [p.batch for p in self.points if p.ok]
        return max(ok) if ok else None

    @property
    def reached_memory_limit(self) -> bool:
        """Whether a size ran out of memory: if none did, largest_trainable is only the
        largest size tried (--max-batch), a lower bound."""
        return any(not p.ok for p in self.points)

    @property
    def best(self) -> BatchPoint | None:
        ok = [p for p in self.points if p.ok]
        return max(ok, key=lambda p: (p.throughput_samples_per_s, -p.batch)) if ok else None


def ladder(min_batch: int, max_batch: int, ratio: float = 2 ** 0.5) -> list[int]:
    out: list[int] = []
    b = float(min_batch)
    while round(b) < max_batch:
        if not out or round(b) > out[-1]:
            out.append(round(b))
        b *= ratio
    out.append(max_batch)
    return out


def check_range(min_batch: int, max_batch: int) -> None:
    if min_batch < 1:
        raise ConfigError(f"tune-batch: --min-batch must be >= 1, got {min_batch}")
    if max_batch < min_batch:
        raise ConfigError(f"tune-batch: the minibatch range [{min_batch}, {max_batch}] is empty "
                          "(--max-batch is below --min-batch)")


def tune_policy(workload: str, cluster: Cluster, policy: str, *, min_batch: int = 1,
                max_batch: int = 512, reference_lr: float = 0.1, reference_batch: int = 256,
                workload_options: dict | None = None, options: dict | None = None,
                precision: str | None = None, memory_format: str | None = None,
                refine: bool = True,
                progress: Callable[[str], None] | None = None) -> PolicyTuning:
    check_range(min_batch, max_batch)
    devices = len(cluster.devices)
    out = PolicyTuning(policy)
    seen: dict[int, BatchPoint] = {}

    def run(b: int) -> BatchPoint:
        if b not in seen:
            r = simulate(workload, cluster, policy, batch=b, workload_options=workload_options,
                         precision=precision, memory_format=memory_format, **(options or {}))
            peak = max((v for d, v in r.peak_memory_bytes.items()
                        if not d.startswith("host")), default=0)
            lr = reference_lr * b * devices / reference_batch
            seen[b] = BatchPoint(b, r.ok, r.throughput_samples_per_s if r.ok else 0.0,
                                 r.iteration_time_s, peak, lr, r.oom.message() if r.oom else "")
            if progress:
                progress(f"{policy} batch {b}: {'ok' if r.ok else 'out of memory'}")
        return seen[b]

    good = bad = None
    for b in ladder(min_batch, max_batch):
        if run(b).ok:
            good = b
        else:
            bad = b
            break
    if good is not None and bad is not None:
        while bad - good > 1:   # bisection: the largest size that still fits
            mid = (good + bad) // 2
            if run(mid).ok:
                good = mid
            else:
                bad = mid
    if refine:
        refine_optimum(run, seen)
    out.points = [seen[b] for b in sorted(seen)]
    return out


def _rank(p: BatchPoint) -> tuple[int, float, int]:
    """Better is larger: a size that trains, then throughput, then the smaller minibatch
    (PolicyTuning.best's order)."""
    return (1, p.throughput_samples_per_s, -p.batch) if p.ok else (0, 0.0, -p.batch)


def refine_optimum(run: Callable[[int], BatchPoint], seen: dict[int, BatchPoint]) -> None:
    """Fibonacci search (golden section on whole numbers) between the best size in `seen` and
    its neighbours there, running `run` (which adds to `seen`) on the sizes it probes: one
    new size per step, the bracket shrinking ~1.6x a step."""
    ok = [b for b in sorted(seen) if seen[b].ok]
    if not ok:
        return
    best = max(ok, key=lambda b: _rank(seen[b]))
    sizes = sorted(seen)
    at = sizes.index(best)
    lo, hi = sizes[max(at - 1, 0)], sizes[min(at + 1, len(sizes) - 1)]
    fib = [1, 2]
    while fib[-1] < hi - lo:
        fib.append(fib[-1] + fib[-2])
    # the bracket is [lo, lo + fib[k]], sizes past hi ranking below any that run
    k = len(fib) - 1

    def rank(b: int) -> tuple[int, float, int]:
        return _rank(run(b)) if b <= hi else (-1, 0.0, -b)
    while k >= 2:
        x1, x2 = lo + fib[k - 2], lo + fib[k - 1]
        if rank(x1) < rank(x2):
            lo = x1
        k -= 1
    for b in range(lo, min(lo + fib[k], hi) + 1):
        run(b)


def tune(workload: str, cluster: Cluster, policies: list[str], **kw) -> list[PolicyTuning]:
    if not policies:
        raise ConfigError("tune-batch: no policy given")
    return [tune_policy(workload, cluster, p, **kw) for p in policies]


def table(tunings: list[PolicyTuning]) -> str:
    lines = [f"{'policy':<12} {'batch':>6} {'ok':>4} {'samples/s':>11} {'step ms':>10} "
             f"{'peak GiB':>9} {'lr':>8}"]
    for t in tunings:
        for p in t.points:
            speed = (f"{p.throughput_samples_per_s:>11.1f} {p.iteration_time_s * 1e3:>10.1f}"
                     if p.ok else f"{'-':>11} {'-':>10}")
            lines.append(f"{t.policy:<12} {p.batch:>6} {'yes' if p.ok else 'OOM':>4} {speed} "
                         f"{p.peak_memory_bytes / 2 ** 30:>9.2f} {p.learning_rate:>8.4f}")
    lines.append("(an OOM row's peak GiB is the memory in use when it ran out)")
    lines.append("")
    for t in tunings:
        best = t.best
        largest = (f"{t.largest_trainable}" if t.reached_memory_limit else
                   f"at least {t.largest_trainable} (no size up to the largest tried, "
                   f"--max-batch, ran out of memory: raise it to find the limit)")
        lines.append(f"{t.policy}: largest trainable minibatch {largest}, "
                     + (f"throughput-optimal {best.batch} ({best.throughput_samples_per_s:.1f} "
                        f"samples/s, lr {best.learning_rate:.4f})" if best else "none trains"))
    return "\n".join(lines)


def plot(tunings: list[PolicyTuning], path=None, title: str = ""):
    """Throughput against minibatch per policy; returns the Figure (and writes `path`)."""
    from .trace import new_figure, save_figure

    fig = new_figure((7, 4))
    ax = fig.subplots()
    for t in tunings:
        ok = [p for p in t.points if p.ok]
        ax.plot([p.batch for p in ok], [p.throughput_samples_per_s for p in ok], "o-",
                label=t.policy)
        if t.best:
            ax.plot([t.best.batch], [t.best.throughput_samples_per_s], "k*", ms=12)
        oom = [p.batch for p in t.points if not p.ok]
        if oom:
            ax.axvline(min(oom), ls=":", lw=0.8, color=ax.lines[-1].get_color())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("minibatch per device (dotted: first out of memory)")
    ax.set_ylabel("samples / s")
    ax.set_title(title or "throughput against minibatch (star: optimum)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return fig
