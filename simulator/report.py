"""The text summary of a Result that `dnnsim simulate` prints: figures per iteration, with
units and four significant digits, the cluster's real shape, and each technique's own
trade-off (staleness and stage memory for a pipeline, swapped bytes and exposed copies for
swapping, merged FLOPs and gradient bytes for path parallelism). docs/metrics.md defines every
line; `--json` holds the exact values.
"""
from __future__ import annotations

import math

GIB, MIB = 2 ** 30, 2 ** 20
# extras shown in a technique's own section (or too long for one line): not listed again
_SHOWN_ELSEWHERE = {"memory", "staleness_minibatches", "weight_drift_minibatches",
                    "in_flight_minibatches", "in_flight_micro_batches", "stage_compute_s",
                    "drain_s", "fill_s", "completion_s", "search", "conv_passes",
                    "bubble_fraction", "devices_used", "throughput_samples_per_s",
                    "offloaded_gib", "offloaded_tensors", "flops_merged", "flops_separate",
                    "flops_saved", "gradient_bytes_merged", "gradient_bytes_separate",
                    "gradient_bytes_saved", "megatron", "allreduce_algorithm",
                    "collective_algorithm"}


# Magnitudes written without an exponent; beyond them (a bandwidth of 1e-300 B/s gives a step
# of 1e297 s) a fixed-point figure would run to hundreds of digits
EVERYDAY = (1e-6, 1e15)


def sig(value: float, digits: int = 4) -> str:
    """`value` to `digits` significant digits, without exponent for everyday magnitudes."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if not EVERYDAY[0] <= abs(value) < EVERYDAY[1]:
        return f"{value:.{digits - 1}e}"
    places = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{places}f}" if abs(value) < 10 ** digits else f"{value:,.0f}"


def seconds(value_s: float) -> str:
    """A duration in the unit that reads best: s, ms or us."""
    a = abs(value_s)
    if a >= 1:
        return f"{sig(value_s)} s"
    if a >= 1e-3 or a == 0:
        return f"{sig(value_s * 1e3)} ms"
    return f"{sig(value_s * 1e6)} us"


def size(n_bytes: float) -> str:
    return f"{sig(n_bytes / GIB)} GiB" if abs(n_bytes) >= GIB else f"{sig(n_bytes / MIB)} MiB"


def extra_value(name: str, value) -> str | None:
    """A policy's extra figure with its unit, read from its name; None for what a line cannot
    hold (tables, long lists)."""
    if isinstance(value, (bool, str)):
        return str(value).lower() if isinstance(value, bool) else value
    if isinstance(value, (list, tuple)):
        if len(value) > 8 or not all(isinstance(v, (int, float)) for v in value):
            return None
        return "[" + ", ".join(extra_value(name, v) or "" for v in value) + "]"
    if not isinstance(value, (int, float)):
        return None
    if name.endswith("_per_s"):
        return f"{sig(value)} /s"
    if name.endswith("_s"):
        return seconds(value)
    if "bytes" in name:
        return size(value) + (" per sample" if name.endswith("_per_sample") else "")
    if name.endswith("_gib"):
        return f"{sig(value)} GiB"
    if name.endswith("_fraction"):
        return f"{sig(value * 100, 3)} %"
    if "flops" in name:
        return f"{sig(value / 1e9)} GFLOPs"
    return f"{value:d}" if isinstance(value, int) else sig(value)


def flop_rate(flops_per_s: float) -> str:
    """A FLOP/s figure in the prefix that reads best: GFLOP/s, TFLOP/s or PFLOP/s."""
    for prefix, scale in (("P", 1e15), ("T", 1e12)):
        if abs(flops_per_s) >= scale:
            return f"{sig(flops_per_s / scale)} {prefix}FLOP/s"
    return f"{sig(flops_per_s / 1e9)} GFLOP/s"


def _model_rows(s: dict) -> list[tuple[str, str]]:
    """Tokens per second where the workload has a token input; the op graph's FLOP/s and
    their share of the devices' peak where its FLOPs are known."""
    rows = []
    if s.get("throughput_tokens_per_s") is not None:
        rows.append(("token throughput", f"{sig(s['throughput_tokens_per_s'])} tokens/s"))
    if s.get("model_flops_utilisation") is not None:
        rows.append(("model FLOP/s", f"{flop_rate(s['achieved_flops_per_s'])}, "
                                     f"{sig(s['model_flops_utilisation'] * 100, 3)} % of peak "
                                     f"{flop_rate(s['peak_flops_per_s'])} (MFU)"))
    return rows


def cluster_line(c: dict) -> str:
    """The cluster's shape: devices, nodes, the link within and between nodes, the host link."""
    n, per_node = c["devices"], c.get("devices_per_node") or c["devices"]
    nodes = -(-n // per_node)
    text = f"{n} x {c['device']}"
    kind = f" {c['node_type']}" if c.get("node_type") else ""
    if nodes > 1:
        network = c.get("network")
        between = c["inter_node_link"] + (f" {network}" if network else "")
        if c.get("oversubscription", 1) not in (None, 1, 1.0):
            between += f" oversubscribed {c['oversubscription']:g}:1"
        last = n - (nodes - 1) * per_node   # the devices fill nodes in order
        shape = f"of {per_node}" if last == per_node else f"of {per_node}, the last of {last}"
        text += (f" in {nodes}{kind} nodes {shape}: {c['link']} ({c['topology']}) within a "
                 f"node, {between} between nodes")
    elif n > 1:
        text += f" on one{kind} node: {c['link']} ({c['topology']})"
    if c.get("host_link"):
        text += f"; host link {c['host_link']}"
    return text


def summary_lines(result, baseline=None) -> list[str]:
    """The text summary; `baseline`, a Result on one device, adds speedup and efficiency."""
    s = result.summary()
    kind = "training" if s["training"] else "inference"
    lines = [f"{s['policy']}: {s['workload']}, batch {s['batch']}, {kind}",
             f"cluster: {cluster_line(s['cluster'])}"]
    if result.oom is not None:
        return lines + [f"  OUT OF MEMORY: {result.oom.message()}"]
    iters = s["iterations_simulated"]
    per = "per iteration" + (f" (mean of {iters} simulated)" if iters > 1 else "")
    peak = max(s["peak_memory_bytes"].values(), default=0)
    cap = min(s["memory_capacity_bytes"].values(), default=0)
    steady = " (steady-state period: one minibatch completes per period)" if (
        "steady_period_s" in s.get("extras", {})) else ""
    rows = [("iteration time", seconds(s["iteration_time_s"]) + steady),
            ("throughput", f"{sig(s['throughput_samples_per_s'])} samples/s"),
            *_model_rows(s),
            ("exposed communication", f"{seconds(s['exposed_communication_s'])} {per}, "
                                      "most exposed device"),
            ("compute utilisation", f"{sig(s['mean_compute_utilisation'] * 100, 3)} %"),
            ("peak memory", f"{size(peak)} on the fullest device"
                            + (f" (capacity {size(cap)})" if cap else "")),
            ("tasks simulated", f"{s['tasks']:,}")]
    if baseline is not None and baseline.ok:
        speedup = result.throughput_samples_per_s / baseline.throughput_samples_per_s
        rows.append(("speedup", f"{sig(speedup, 3)}x over one device ({baseline.policy})"))
        rows.append(("scaling efficiency",
                     f"{sig(speedup / s['cluster']['devices'] * 100, 3)} % (speedup / devices)"))
    elif baseline is not None:
        rows.append(("speedup", "none: one device runs out of memory at this batch"))
    if s["exposed_communication_s"] == 0 and s["cluster"]["devices"] == 1:
        rows = [r for r in rows if r[0] != "exposed communication"]   # nothing to expose
    lines += [f"  {k:<22} {v}" for k, v in rows]
    extras = s.get("extras", {})
    lines += _pipeline_lines(extras) + _swap_lines(result, extras) + _path_lines(extras)
    lines += _megatron_lines(extras.get("megatron"))
    rest = [(k, extra_value(k, v)) for k, v in sorted(extras.items())
            if k not in _SHOWN_ELSEWHERE]
    rest = [(k, v) for k, v in rest if v is not None]
    if rest:
        lines.append("policy figures (--json has them all):")
        lines += [f"  {k:<26} {v}" for k, v in rest]
    return lines


def _pipeline_lines(e: dict) -> list[str]:
    memory = e.get("memory")
    if not isinstance(memory, dict) or "staleness_minibatches" not in e:
        return []
    stale = e["staleness_minibatches"]
    flight = e.get("in_flight_minibatches") or e.get("in_flight_micro_batches") or []
    compute = e.get("stage_compute_s") or []
    lines = ["pipeline stages: staleness in minibatches (updates not yet applied when a forward "
             "starts); memory at the stage's peak",
             f"  {'stage':<6}{'device':<8}{'staleness':>10}{'in flight':>10}"
             f"{'peak memory':>14}{'stash':>12}" + (f"{'compute':>12}" if compute else "")]
    for i, (dev, m) in enumerate(sorted(memory.items(), key=lambda kv: kv[1]["partition"])):
        line = (f"  {i:<6}{dev:<8}{stale[i] if i < len(stale) else '':>10}"
                f"{flight[i] if i < len(flight) else '':>10}{size(m['peak_bytes']):>14}"
                f"{size(m.get('stash_bytes', 0)):>12}")
        if i < len(compute):
            line += f"{seconds(compute[i]):>12}"
        lines.append(line)
    if "fill_s" in e:
        lines.append(f"  fill {seconds(e['fill_s'])}: the first minibatch's time beyond one "
                     "steady period")
    if "drain_s" in e:
        d = e["drain_s"]
        how = ("the emptying pipe, with no forwards left, finishes sooner than whole periods"
               if d < 0 else "what the last minibatches take beyond whole periods")
        lines.append(f"  drain {seconds(d)}: {how}")
    if "bubble_fraction" in e:
        lines.append("  bubble per stage: " + ", ".join(
            f"{sig(b * 100, 3)} %" for b in e["bubble_fraction"]))
    return lines


def _megatron_lines(e: dict | None) -> list[str]:
    if not e:
        return []
    exposed = e.get("exposed_communication_s", {})
    lines = [f"megatron: tp {e['tp']} x pp {e['pp']} x dp {e['dp']}, {e['micro_batches']} "
             f"micro-batches of {e['micro_batch_size']} (global batch {e['global_batch']}), "
             f"{e['schedule']}, recompute {e['recompute']}",
             f"  per GPU                {sig(e['achieved_tflops_per_gpu'])} TFLOP/s of the "
             f"model's FLOPs, {sig(e['hardware_tflops_per_gpu'])} with the recomputed ones",
             f"  pipeline flush         {seconds(e['pipeline_flush_s'])} (the last backward)",
             "  bubble per stage       " + ", ".join(f"{sig(b * 100, 3)} %"
                                                   for b in e["bubble_fraction"])]
    if exposed:
        lines.append("  exposed communication  " + ", ".join(
            f"{k.replace('_', ' ')} {seconds(max(v))}" for k, v in sorted(exposed.items()))
            + " (the most exposed stage)")
    lines.append(f"  {'stage':<6}{'device':<8}{'in flight':>10}{'kept per micro-batch':>22}"
                 f"{'weights+state':>15}{'peak memory':>14}")
    for dev, m in sorted(e["memory"].items(), key=lambda kv: kv[1]["stage"]):
        lines.append(f"  {m['stage']:<6}{dev:<8}{m['in_flight_micro_batches']:>10}"
                     f"{size(m['activation_bytes_per_micro_batch']):>22}"
                     f"{size(m['resident_bytes']):>15}{size(m['peak_bytes']):>14}")
    return lines


def _swap_lines(result, e: dict) -> list[str]:
    if "offloaded_gib" not in e:
        return []
    copies = result.exposed_communication_per_iteration_s
    worst = max(copies.values(), default=0.0)
    return ["swapping:",
            f"  swapped to the host      {sig(e['offloaded_gib'])} GiB "
            f"({e.get('offloaded_tensors', '?')} tensors) per iteration",
            f"  exposed copy time        {seconds(worst)} per iteration (copies the compute "
            "stream waits for)"]


def _path_lines(e: dict) -> list[str]:
    if "flops_merged" not in e:
        return []
    return ["path merging:",
            f"  FLOPs per step           {sig(e['flops_merged'] / 1e9)} GFLOPs merged, "
            f"{sig(e['flops_separate'] / 1e9)} separate (saved "
            f"{sig(e.get('flops_saved', 0) / 1e9)} GFLOPs)",
            f"  gradient bytes           {size(e['gradient_bytes_merged'])} merged, "
            f"{size(e['gradient_bytes_separate'])} separate (saved "
            f"{size(e.get('gradient_bytes_saved', 0))})"]
