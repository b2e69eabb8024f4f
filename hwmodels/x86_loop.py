"""Cycles of a short x86 instruction sequence from an instruction table: ports, rename, branches.

A loop body is a multiset of instructions (name -> count per iteration). Each instruction's
uops may issue to a set of ports (hwmodels/catalog/x86_instructions.toml, the public Skylake-X
tables). Steady-state cycles per iteration are bounded below by

- the ports: for every set S of ports, the uops that can only issue inside S need
  count / |S| cycles (the max over S is the optimum of the fractional port assignment);
- rename: fused-domain uops / issue width;

and a mispredicted branch stalls the front end for `branch_mispredict_cycles`. The back end
keeps executing what the front end already delivered, so a misprediction costs time only where
the front end (rename plus refills) is the slower of the two:

    cycles = max(port bound, rename bound + mispredictions * penalty)

which holds while the scheduler (97 entries on Skylake) holds more than a penalty's worth of
back-end work, the case whenever the back end is the bottleneck.

`loop_exit_mispredictions(p, lanes)`: a loop over the set bits of a `lanes`-bit mask whose bits
are independently 1 with probability p (uniform random zeros) runs K ~ Binomial(lanes, p) times.
A predictor that knows how many iterations have run (global history covers 16 iterations)
predicts, at each test, the likelier outcome given that K >= j; it mispredicts whenever the
other one happens.
"""
from __future__ import annotations

import importlib.resources
import itertools
import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from .specs import DeviceSpec, HardwareError

TABLE_FILE = "x86_instructions.toml"


@dataclass(frozen=True)
class Instruction:
    ports: tuple[frozenset[str], ...]  # one port set per unfused uop
    fused: int
    latency: float
    rthroughput: float
    source: str           # the public table row and columns these figures come from


@dataclass(frozen=True, eq=False)  # hashed by identity: core_table caches one per part
class CoreTable:
    name: str
    source: str
    issue_width: int
    branch_mispredict_cycles: float
    scheduler_entries: int
    instructions: dict[str, Instruction]
    fma_ports: frozenset[str]
    l1d_bytes: int                       # L1 data cache of one core
    l2_bytes_per_cycle: float            # sustained L2 -> L1 bandwidth of one core

    def instruction(self, name: str) -> Instruction:
        try:
            return self.instructions[name]
        except KeyError:
            raise HardwareError(f"instruction table {self.name!r} has no {name!r}") from None

    def latency(self, name: str) -> float:
        return self.instruction(name).latency

    def shares_fma_port(self, name: str) -> bool:
        """Whether the instruction's first uop may only issue where the 512-bit FMAs do: it
        then waits behind older ready FMAs (the scheduler issues oldest first per port)."""
        return self.instruction(name).ports[0] <= self.fma_ports

    def body_uops(self, body: dict[str, float]) -> tuple[dict[frozenset[str], float], float]:
        """Unfused uops per port set and fused-domain uops of a loop body."""
        per_ports: dict[frozenset[str], float] = {}
        fused = 0.0
        for name, count in body.items():
            ins = self.instruction(name)
            fused += ins.fused * count
            for ports in ins.ports:
                per_ports[ports] = per_ports.get(ports, 0.0) + count
        return per_ports, fused

    def _port_sets(self, per_ports: dict[frozenset[str], float]) -> list[frozenset[str]]:
        all_ports = sorted(set().union(*per_ports)) if per_ports else []
        return [frozenset(c) for r in range(1, len(all_ports) + 1)
                for c in itertools.combinations(all_ports, r)]

    def port_cycles(self, body: dict[str, float]) -> float:
        per_ports, _ = self.body_uops(body)
        return max((sum(c for ports, c in per_ports.items() if ports <= s) / len(s)
                    for s in self._port_sets(per_ports)), default=0.0)

    def rename_cycles(self, body: dict[str, float]) -> float:
        return self.body_uops(body)[1] / self.issue_width

    def cycles(self, body: dict[str, float], mispredictions: float = 0.0) -> float:
        """Steady-state cycles of one iteration of `body` (see the module docstring)."""
        return max(self.port_cycles(body),
                   self.rename_cycles(body) + mispredictions * self.branch_mispredict_cycles)

    def cycles_over_trip_counts(self, fixed: dict[str, float], per_trip: dict[str, float],
                                mispredictions: list[float]) -> list[float]:
        """cycles(fixed + k * per_trip, mispredictions[k]) for k = 0..len - 1, computed once
        per port set (each bound is linear in k)."""
        fixed_ports, fixed_fused = self.body_uops(fixed)
        trip_ports, trip_fused = self.body_uops(per_trip)
        every = {**{p: 0.0 for p in trip_ports}, **fixed_ports}
        lines = []
        for s in self._port_sets(every):
            a = sum(c for ports, c in fixed_ports.items() if ports <= s) / len(s)
            b = sum(c for ports, c in trip_ports.items() if ports <= s) / len(s)
            lines.append((a, b))
        out = []
        for k, wrong in enumerate(mispredictions):
            port = max(a + b * k for a, b in lines)
            front = ((fixed_fused + k * trip_fused) / self.issue_width
                     + wrong * self.branch_mispredict_cycles)
            out.append(max(port, front))
        return out


def _load_tables() -> dict[str, dict]:
    text = importlib.resources.files("hwmodels.catalog").joinpath(TABLE_FILE).read_text()
    return tomllib.loads(text)["cores"]


@lru_cache(maxsize=16)
def core_table(device_name: str, fma_units: int) -> CoreTable:
    """The instruction table of the core a catalog CPU is built on, its FMA ports resolved."""
    tables = _load_tables()
    found = [core for core, doc in tables.items() if device_name in doc["devices"]]
    if not found:
        known = sorted(d for doc in tables.values() for d in doc["devices"])
        raise HardwareError(f"no instruction table for device {device_name!r} in {TABLE_FILE} "
                            f"(it has: {', '.join(known)})")
    core = found[0]
    doc = tables[core]
    fma_ports = doc["fma512_ports"].get(str(fma_units))
    if fma_ports is None:
        raise HardwareError(f"{core}: fma_units_per_core must be one of "
                            f"{', '.join(sorted(doc['fma512_ports']))}, got {fma_units}")
    instructions = {}
    for name, ins in doc["instructions"].items():
        ports = tuple(frozenset(fma_ports) if p == ["fma"] else frozenset(p)
                      for p in ins["ports"])
        instructions[name] = Instruction(ports, int(ins["fused"]), float(ins["latency"]),
                                         float(ins["rthroughput"]), str(ins["source"]))
    return CoreTable(core, doc["source"], int(doc["issue_width"]),
                     float(doc["branch_mispredict_cycles"]), int(doc["scheduler_entries"]),
                     instructions, frozenset(fma_ports), int(doc["l1d_bytes"]),
                     float(doc["l2_sustained_bytes_per_cycle"]))


def table_for(spec: DeviceSpec) -> CoreTable:
    return core_table(spec.name, int(spec.fma_units_per_core or 0))


def binomial_pmf(n: int, p: float) -> list[float]:
    return [math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)]


def loop_exit_mispredictions(p: float, lanes: int) -> list[float]:
    """Mispredictions of the set-bit loop's exit test, per trip count k = 0..lanes."""
    pmf = binomial_pmf(lanes, p)
    # At the j-th test (j iterations done) the loop exits with hazard h_j = P(K=j | K>=j);
    # the predictor says "exit" where h_j >= 1/2.
    tails = [sum(pmf[j:]) for j in range(lanes + 1)]   # P(K >= j), summed: no cancellation
    predict_exit = [tail <= 0.0 or pmf[j] / tail >= 0.5 for j, tail in enumerate(tails)]
    out = []
    for k in range(lanes + 1):
        wrong = sum(1 for j in range(k) if predict_exit[j])  # said exit, went on
        wrong += 0 if predict_exit[k] else 1                 # said go on, exited
        out.append(float(wrong))
    return out
