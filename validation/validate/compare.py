"""`dnnsim validate`: measured against simulated steps, with the error statistics.

    cmp = compare_module(my_module, torch.randn(32, 3, 32, 32),
                         "validation/measured/cpu_profile.toml")
    print(cmp.measured_s, cmp.simulated_s, cmp.error_pct)

The simulated step is the `sequential` policy on a one-device cluster built from the profile's
catalog device with the profile: its step is the sum of the op times of the device model.
torch is needed only to measure (compare_module, measure_cases); simulating and scoring a
committed data set needs none.
"""
from __future__ import annotations

import contextlib
import csv
import os
import statistics
import warnings
from dataclasses import dataclass, field

from hwmodels import catalog
from hwmodels.cpu_identity import ProfileMachineWarning, warn_if_other_machine
from hwmodels.profile import Profile
from hwmodels.specs import HardwareError
from simulator.api import simulate
from simulator.cluster import Cluster
from workloads import zoo
from workloads.graph import OpGraph

CSV_FIELDS = ("network", "batch", "mode", "measured_s", "simulated_s", "error_pct")


@dataclass(frozen=True)
class Comparison:
    name: str
    batch: int
    training: bool
    measured_s: float
    simulated_s: float
    fallbacks: dict = field(default_factory=dict)  # op kind -> ops costed without the profile

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.simulated_s - self.measured_s) / self.measured_s

    @property
    def mode(self) -> str:
        return "train" if self.training else "infer"


@dataclass(frozen=True)
class Summary:
    mape_pct: float
    max_abs_error_pct: float
    kendall_tau: float
    cases: int


def load_profile(profile: Profile | str | os.PathLike) -> Profile:
    return profile if isinstance(profile, Profile) else Profile.load(profile)


def simulate_graph(graph: OpGraph, profile: Profile, training: bool = True
                   ) -> tuple[float, dict]:
    """Simulated step time of a forward graph with the profile, and the fallback op kinds."""
    spec = catalog.device(profile.device_name)
    if spec.kind != profile.device_kind:
        raise HardwareError(f"{profile.label}: profile is for a {profile.device_kind}, its "
                            f"device_name {profile.device_name!r} is a {spec.kind}")
    cluster = Cluster.build(spec, 1, profile=profile)
    result = simulate(graph, cluster, "sequential", training=training, enforce_memory=False)
    return result.iteration_time_s, dict(cluster.devices[0].model.fallbacks)


def kendall_tau(xs: list[float], ys: list[float]) -> float:
    """Kendall's tau-b rank correlation (ties counted in neither concordant nor discordant)."""
    n = len(xs)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + tx) * (conc + disc + ty)) ** 0.5
    return (conc - disc) / denom if denom else float("nan")


def summarize(rows: list[Comparison]) -> Summary:
    if not rows:
        raise ValueError("no cases to summarize")
    errs = [abs(r.error_pct) for r in rows]
    tau = kendall_tau([r.measured_s for r in rows], [r.simulated_s for r in rows])
    return Summary(sum(errs) / len(errs), max(errs), tau, len(rows))


def case_graph(network: str, batch: int) -> OpGraph:
    """A zoo network, or a held-out PyTorch module through from_torch (needs torch)."""
    if zoo.known(network):
        return zoo.get(network, batch=batch)
    from validation.calibrate import heldout
    return heldout.graph(network, batch)


def simulate_measured(measured: list[dict], profile: Profile) -> list[Comparison]:
    """Simulate each measured case (network, batch, mode, measured_s) of a data set. The
    data set was measured wherever it was, not necessarily here: whether the profile is this
    machine's is checked where steps are measured (validate, compare_module), not here."""
    out = []
    for rec in measured:
        training = rec["mode"] == "train"
        graph = case_graph(rec["network"], int(rec["batch"]))
        with machine_checked_elsewhere():
            sim_s, fb = simulate_graph(graph, profile, training)
        out.append(Comparison(rec["network"], int(rec["batch"]), training,
                              float(rec["measured_s"]), sim_s, fb))
    return out


@contextlib.contextmanager
def machine_checked_elsewhere():
    """Building a CPU model with a profile does not warn here that the profile describes
    another machine (hwmodels/cpu_identity.py): the caller checked, or the check is moot."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileMachineWarning)
        yield


def write_table_csv(rows: list[Comparison], path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_FIELDS)
        for r in rows:
            w.writerow([r.name, r.batch, r.mode, f"{r.measured_s:.6g}", f"{r.simulated_s:.6g}",
                        f"{r.error_pct:.2f}"])


def format_table(rows: list[Comparison]) -> str:
    lines = [f"{'network':<16}{'batch':>6} {'mode':<6}{'measured ms':>13}{'simulated ms':>14}"
             f"{'error %':>9}"]
    for r in rows:
        fb = f"  (fallback: {', '.join(sorted(r.fallbacks))})" if r.fallbacks else ""
        lines.append(f"{r.name:<16}{r.batch:>6} {r.mode:<6}{r.measured_s * 1e3:>13.2f}"
                     f"{r.simulated_s * 1e3:>14.2f}{r.error_pct:>+9.2f}{fb}")
    s = summarize(rows)
    lines.append(f"cases {s.cases}: MAPE {s.mape_pct:.2f}%  max |error| "
                 f"{s.max_abs_error_pct:.2f}%  Kendall tau {s.kendall_tau:.3f}")
    return "\n".join(lines)


# -- measuring (needs torch) ---------------------------------------------------------------
def measure_cases(cases, training_modes=(True,), device: str = "cpu", reps: int = 2,
                  rounds: int = 6, statistic: str = "median", progress: bool = True
                  ) -> list[dict]:
    """Measured steps of zoo networks: `reps` steps in each of `rounds` interleaved passes over
    the cases (a burst of load on the machine then hits one pass, not every sample of a case);
    `statistic` (mean, median, min) over all the samples."""
    from tqdm import tqdm

    from validation.calibrate.torch_exec import Timing, graph_step, measure, resolve_device
    keys = [(n, b, t) for n, b in cases for t in training_modes]
    samples: dict = {k: [] for k in keys}
    loops: dict = {}      # one persistent training loop (or inference) per case
    dev = resolve_device(device)
    total = len(keys) * rounds
    with tqdm(total=total, desc="measure steps", disable=not progress) as bar:
        for _ in range(rounds):
            for n, b, t in keys:
                if (n, b, t) not in loops:
                    loops[(n, b, t)] = graph_step(zoo.get(n, batch=b), t, device)
                samples[(n, b, t)] += measure(loops[(n, b, t)], dev, 1, reps).samples_s
                bar.update()
    out = []
    for n, b, t in keys:
        s = samples[(n, b, t)]
        out.append({"network": n, "batch": b, "mode": "train" if t else "infer",
                    "measured_s": Timing(statistics.median(s), tuple(s)).get(statistic)})
    return out


def compare_module(module, example_input, profile, training: bool = True, reps: int = 12,
                   statistic: str = "median", name: str | None = None) -> Comparison:
    """Measure `module` on `example_input` (a training step: cross-entropy loss, backward,
    SGD-momentum; or inference) and simulate the graph `workloads.from_torch` makes of it.
    Warns (hwmodels.cpu_identity.ProfileMachineWarning) when the profile was measured on
    another processor, or at another PyTorch thread count or version, than this run."""
    import torch

    from validation.calibrate.torch_exec import time_module
    from workloads import from_torch
    prof = load_profile(profile)
    # measured here, at this run's threads: warn if the profile is another machine's
    warn_if_other_machine(prof.meta, prof.label, torch.get_num_threads(), torch.__version__)
    graph = from_torch(module, example_input, name=name)
    with machine_checked_elsewhere():
        sim_s, fb = simulate_graph(graph, prof, training)
    measured = time_module(module, example_input, training, reps=reps).get(statistic)
    return Comparison(graph.name, int(example_input.shape[0]), training, measured, sim_s, fb)
