"""The machine calibration runs on: what the profile records of it, the per-op overhead of a
whole training step, and how fast it runs now against how fast it ran at calibration."""
from __future__ import annotations

import datetime
import platform
import statistics

from hwmodels.cpu_identity import this_host
from hwmodels.profile import Profile
from workloads import zoo
from workloads.graph import OpGraph, WorkloadError
from workloads.training import lower_training

from .cases import REFERENCE_CASE
from .subnormals import subnormal_slowdown

DEFAULT_DEVICE_NAME = {"cpu": "xeon-avx512-2c", "cuda": "h100"}


def default_device_name(device: str) -> str:
    if device not in DEFAULT_DEVICE_NAME:
        raise WorkloadError(f"--device must be cpu or cuda, got {device!r}")
    return DEFAULT_DEVICE_NAME[device]


def machine_meta(device: str, threads: int) -> dict:
    """What a profile records of the machine that measured it: for a CPU, the processor, its
    ISA, cores and caches as the system reports them (hwmodels/cpu_identity.py; what it does
    not report is listed as unrecorded), the PyTorch threads and version that ran, and how
    much slower it runs products on subnormal floats (subnormals.py)."""
    import torch

    from hwmodels.kernels import vector_fp32_lanes
    facts = ({"processor": torch.cuda.get_device_name()} if device == "cuda"
             else this_host().meta())
    meta = {"machine": platform.machine() or "unknown", **facts,
            "threads": int(threads), "torch_version": torch.__version__,
            "date": datetime.date.today().isoformat()}
    lanes = vector_fp32_lanes() if device == "cpu" else None
    if lanes:   # oneDNN blocks channels by it (hwmodels/kernels.py)
        meta["vector_fp32_lanes"] = lanes
    if device == "cpu":   # at the calibration's threads: validate's subnormal warning quotes it
        meta["subnormal_slowdown"] = round(subnormal_slowdown(), 1)
    return meta


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
    median step minus the median replay, over interleaved rounds (medians, as calibration
    counts ops and steps: journal.records_of_replay)."""
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
    return max(0.0, (statistics.median(steps) - statistics.median(replays)) / n_ops)


def reference_replay_s(device: str = "cpu", rounds: int = 5) -> float:
    """The median of `rounds` replays of REFERENCE_CASE now, in seconds."""
    from .replay import replay_times
    train = lower_training(zoo.get(REFERENCE_CASE[0], batch=REFERENCE_CASE[1]))
    return statistics.median(sum(r.values()) for r in replay_times(train, device, rounds=rounds))


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
