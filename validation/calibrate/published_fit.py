"""Fitting a GPU architecture's efficiencies to published measurements.

Each op's time is min over its algorithms of max(arithmetic_s / efficiency, bytes / bandwidth)
plus the kernel overhead, or the framework's host time per op if longer (hwmodels/gpu.py), so
once every op of every row is decomposed into those terms (published_terms.Terms), a
candidate set of constants is scored with a few array operations and the fit is a plain
coordinate search on the mean absolute log error. Rows of every GPU of one architecture are
fitted together: the constants belong to the architecture, never to a row. The frameworks'
constants (host time per op, and the share of the part's streaming bandwidth the framework's own
elementwise, norm and pooling kernels reach) are fitted in turn over the rows of every GPU that
ran in that framework, so a GPU left out keeps its framework's streaming behaviour.

An architecture with no rows of its own takes each constant from its nearest fitted
predecessor (fill_unexercised); `default` is the median of the fitted architectures.
"""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any

import numpy as np

from hwmodels.gpu import DEFAULT_FRAMEWORK, Framework, GpuFamily
from hwmodels.specs import GPU_ARCHITECTURES

from . import published_gpu as pg
from . import published_kernels as pk
from .published_terms import KEYS, START_HOST_S, START_STREAM, Terms, kernel_terms, network_terms

PARAMETERS = (*GpuFamily.EFFICIENCIES, "kernel_overhead_s")
BOUNDS = {**{k: (0.05, 1.0) for k in GpuFamily.EFFICIENCIES},
          # at half its rate a CTA alone on its SM takes as long as two sharing it: below,
          # a GEMM one CTA too large for one round would finish sooner than one that fits
          "lone_cta": (0.5, 1.0),
          # a TN product at a quarter of its rate or bandwidth would take four times its NN
          # pair's time, more than any published pair shows
          "tn_gemm": (0.25, 1.0), "strided_memory": (0.25, 1.0),
          "kernel_overhead_s": (0.5e-6, 50e-6)}
HOST_BOUNDS = (1e-6, 300e-6)
STREAM_BOUNDS = (0.05, 1.0)
# where every fit starts: round values inside the bounds (the fit must not depend on what the
# catalog holds, or refitting would drift)
START = GpuFamily(name="start", gemm=0.9, conv_fwd=0.9, conv_dgrad=0.9, conv_wgrad=0.55,
                  winograd=0.5, winograd_fused=0.5, fft=0.5, tensor_core=0.8, lone_cta=1.0,
                  tn_gemm=1.0, strided_memory=1.0, memory=1.0, gemm_memory=1.0,
                  kernel_overhead_s=5e-6, fitted_to="")
# weight of the pull of each constant towards START (per unit of |log ratio|): it keeps a fit
# with few rows (one GPU's networks) from trading arithmetic for bandwidth at will
PRIOR_WEIGHT = 0.02


def loss(fam: GpuFamily, parts: list[Terms]) -> float:
    """Mean absolute log error of each part, summed (kernels and networks weigh alike), plus
    the prior's pull towards START."""
    total = PRIOR_WEIGHT * sum(abs(math.log(getattr(fam, p) / getattr(START, p)))
                               for p in PARAMETERS)
    for terms in parts:
        if len(terms.measured_s):
            total += float(np.sum(terms.log_errors(fam))) / terms.total_weight
    return total


def _with(fam: GpuFamily, param: str, value: float) -> GpuFamily:
    """fam with one constant set."""
    change: dict[str, Any] = {param: value}
    return dataclasses.replace(fam, **change)


def _golden(f, lo: float, hi: float, iterations: int = 24) -> float:
    """Minimise f on [lo, hi] in log space (golden-section)."""
    a, b = math.log(lo), math.log(hi)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(math.exp(c)), f(math.exp(d))
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(math.exp(d))
    return math.exp((a + b) / 2)


def fit_family(name: str, parts: list[Terms], start: GpuFamily, fitted_to: str,
               sweeps: int = 6) -> GpuFamily:
    """Coordinate search of PARAMETERS on `parts`; a parameter no row exercises keeps its
    start value (tensor_core without tensor-core rows, winograd without Winograd layers)."""
    fam = dataclasses.replace(start, name=name, fitted_to=fitted_to)
    used = _used_parameters(parts)
    for _ in range(sweeps):
        for param in PARAMETERS:
            if param not in used:
                continue
            lo, hi = BOUNDS[param]
            best = _golden(lambda v, p=param, f=fam: loss(_with(f, p, v), parts), lo, hi)
            if loss(_with(fam, param, best), parts) < loss(fam, parts):
                fam = _with(fam, param, best)
    return fam


def _used_parameters(parts: list[Terms]) -> set[str]:
    used = {"kernel_overhead_s", "memory"}
    for terms in parts:
        used.update(KEYS[k] for k in np.unique(terms.key) if k)
        if terms.tensor.any():
            used.add("tensor_core")
        if terms.lone.any():
            used.add("lone_cta")
        if terms.strided.any():
            used.add("strided_memory")
        if terms.slow_tn.any():
            used.add("tn_gemm")
        if terms.cublas.any():
            used.add("gemm_memory")
    return used


def median_family(families: dict[str, GpuFamily], fitted: dict[str, set[str]],
                  fitted_to: str) -> GpuFamily:
    """The median of each constant over the architectures whose rows exercised it
    (`fitted`: architecture -> parameters its rows determine)."""
    values = {}
    for p in PARAMETERS:
        sample = [getattr(f, p) for a, f in families.items() if p in fitted[a]]
        values[p] = float(np.median(sample)) if sample else getattr(START, p)
    return GpuFamily(name="default", fitted_to=fitted_to, **values)


Fitted = tuple[dict[str, GpuFamily], dict[str, Framework]]
ROUNDS = 3      # alternations of the architectures' fits and the frameworks'


def fit_all(kernels: list[pk.KernelRow], networks: list[pg.NetworkRow],
            exclude_gpu: str | None = None) -> Fitted:
    """Architectures (plus default) and frameworks fitted to the rows, leaving out every row
    of `exclude_gpu` and every row the data marks anomalous (pg.UNTRUSTED): the architectures
    with the frameworks' host times held, then the host times with the architectures held,
    ROUNDS times."""
    left_out: dict[str, int] = defaultdict(int)  # architecture -> its rows graded untrusted
    for r in networks:
        if r.untrusted and r.gpu != exclude_gpu:
            left_out[pg.architecture(r.gpu)] += 1
    networks = [r for r in networks if not r.untrusted]
    by_arch: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for k in kernels:
        if k.gpu != exclude_gpu:
            by_arch[pg.architecture(k.gpu)][0].append(k)
    for r in networks:
        if r.gpu != exclude_gpu:
            by_arch[pg.architecture(r.gpu)][1].append(r)
    parts = {arch: [t for t in (kernel_terms(k), network_terms(n)) if len(t.measured_s)]
             for arch, (k, n) in sorted(by_arch.items())}
    used_frameworks = sorted({pg.framework_key(r.framework) for r in networks
                              if r.gpu != exclude_gpu} | {DEFAULT_FRAMEWORK})
    consts = {f: {"host": START_HOST_S, "stream": START_STREAM} for f in used_frameworks}
    # the frameworks first, against the starting architectures: each architecture is then
    # fitted with host times and streaming shares drawn from every GPU of its frameworks
    # (fitting one architecture's GPUs first lets them settle what the frameworks share)
    families = {arch: START for arch in parts}
    for _ in range(ROUNDS):
        consts = _fit_frameworks(consts, families, parts)
        _set_frameworks(parts, consts)
        for arch, arch_parts in parts.items():
            families[arch] = fit_family(arch, arch_parts, families[arch], "")
    exercised = {arch: _used_parameters(p) for arch, p in parts.items()}
    for arch, (krows, nrows) in by_arch.items():
        gpus = sorted({r.gpu for r in krows} | {r.gpu for r in nrows})
        families[arch] = dataclasses.replace(
            families[arch], fitted_to=f"{len(krows)} kernel rows and {len(nrows)} "
                                      f"training-throughput rows of {', '.join(gpus)}"
                                      + (f", leaving out {left_out[arch]} the data grades "
                                         f"{'/'.join(sorted(pg.UNTRUSTED))}"
                                         if left_out[arch] else ""))
    default = median_family(families, exercised, "median of the fitted architectures: "
                            + ", ".join(sorted(families)))
    with_networks = {a for a, (_, nrows) in by_arch.items() if nrows}
    frameworks = {}
    for f in used_frameworks:
        rows = [r for r in networks if r.gpu != exclude_gpu and pg.framework_key(r.framework) == f]
        on = ", ".join(sorted({r.gpu for r in rows}))
        host, stream = consts[f]["host"], consts[f]["stream"]
        at_start = [name for name, value, start in (("host_overhead_s", host, START_HOST_S),
                                                    ("stream_memory", stream, START_STREAM))
                    if abs(value / start - 1) < 0.01]
        if not rows:
            what = "no rows: the starting values"
        elif at_start:
            what = (f"{len(rows)} training-throughput rows on {on}, which leave "
                    f"{' and '.join(at_start)} at the start")
        else:
            what = f"{len(rows)} training-throughput rows on {on}"
        frameworks[f] = Framework(f, host, stream, what)
    return ({**fill_unexercised(families, exercised, default, with_networks),
             "default": default}, frameworks)


def _set_frameworks(parts: dict[str, list[Terms]], consts: dict[str, dict[str, float]]) -> None:
    hosts = {f: c["host"] for f, c in consts.items()}
    streams = {f: c["stream"] for f, c in consts.items()}
    for ts in parts.values():
        for t in ts:
            t.set_frameworks(hosts, streams)


FRAMEWORK_CONSTANTS = {"host": (HOST_BOUNDS, START_HOST_S),
                       "stream": (STREAM_BOUNDS, START_STREAM)}


def _fit_frameworks(consts: dict[str, dict[str, float]], families: dict[str, GpuFamily],
                    parts: dict[str, list[Terms]]) -> dict[str, dict[str, float]]:
    """Each framework's host time per op and streaming share, one after the other, over the
    network rows of every architecture that ran in it, the architectures held."""
    out = {f: dict(c) for f, c in consts.items()}
    for f in sorted(out):
        if not any(f in t.frameworks for ts in parts.values() for t in ts):
            continue
        for which, (bounds, start) in FRAMEWORK_CONSTANTS.items():

            def total(value: float, f: str = f, which: str = which, start: float = start) -> float:
                _set_frameworks(parts, {**out, f: {**out[f], which: value}})
                used = [(arch, t) for arch, ts in parts.items() for t in ts
                        if f in t.frameworks]
                errs = sum(float(np.sum(t.log_errors(families[arch]))) for arch, t in used)
                return (errs / sum(t.total_weight for _, t in used)
                        + PRIOR_WEIGHT * abs(math.log(value / start)))

            best = _golden(total, *bounds)
            if total(best) < total(out[f][which]):
                out[f][which] = best
            _set_frameworks(parts, out)
    return out


# The FP32 work a CUDA core completes per clock, relative to Maxwell's and later ones (1 where
# not listed). NVIDIA's GeForce GTX 750 Ti whitepaper (Maxwell, 2014): a Maxwell SMM core
# delivers about 1.35x the performance of a Kepler SMX core. Kepler's SMX feeds 192 cores from
# 4 schedulers of 2 dispatch units each, so its six 32-lane groups are all busy only when
# independent instructions dual-issue; Maxwell's SMM gives each scheduler its own 32 lanes.
LANE_RATE = {"kepler": 1.0 / 1.35}
# the constants that are shares of the arithmetic peak (a borrowed one scales by LANE_RATE)
ARITHMETIC = frozenset(KEYS[1:])


def borrowed_value(param: str, value: float, arch: str, donor: str) -> float:
    """A constant `arch` takes from `donor`: an arithmetic efficiency scaled by the two
    architectures' lane rates (a share of peak sustained on Maxwell is less of peak on Kepler),
    inside its bounds; any other as it is."""
    rate, donor_rate = LANE_RATE.get(arch, 1.0), LANE_RATE.get(donor, 1.0)
    if param not in ARITHMETIC or rate == donor_rate:
        return value
    lo, hi = BOUNDS[param]
    return min(hi, max(lo, value * rate / donor_rate))


# Constants of one cuBLAS release's FP32 kernels rather than of the silicon: how much slower
# its TN kernels move their traffic (strided_memory) and run their arithmetic (tn_gemm) than
# its NN ones. Volta's strided_memory (0.76) is CUDA 10.1's volta_sgemm TN kernels as
# DeepBench's V100 table timed them, Turing's (0.91) the same release's Turing kernels on the
# T4; tn_gemm is CUDA 7.5 and 8.0's. CUDA 11 and later run Ampere's, Ada's and Hopper's FP32
# GEMMs in kernels of their own (ampere_sgemm_*, built for Ampere's asynchronous copies from
# global to shared memory), and no published table times them, TN or NN: nothing carries a
# predecessor's penalty over, so an architecture with no rows to fit them takes the
# datasheet's bandwidth and rate for them (1.0).
LIBRARY_KERNEL_CONSTANTS = ("tn_gemm", "strided_memory")
AT_DATASHEET = "the datasheet"


def fill_unexercised(families: dict[str, GpuFamily], exercised: dict[str, set[str]],
                     default: GpuFamily, with_networks: set[str]) -> dict[str, GpuFamily]:
    """Every architecture of GPU_ARCHITECTURES, each constant its rows did not determine taken
    from the nearest earlier architecture whose rows did, preferring those fitted to whole
    networks too (a GPU resembles its predecessor more than the average of all, and a
    kernel-only fit has not seen the framework); else the nearest later one; else
    `default`. An arithmetic efficiency taken from an architecture of another lane rate is
    scaled by it (borrowed_value). A library kernel's penalty (LIBRARY_KERNEL_CONSTANTS) is
    never borrowed: without rows it is 1.0, the datasheet's."""
    out = {}
    for i, arch in enumerate(GPU_ARCHITECTURES):
        own = exercised.get(arch, set())
        values, borrowed = {}, defaultdict(list)
        earlier = list(reversed(GPU_ARCHITECTURES[:i]))
        order = ([a for a in earlier if a in with_networks]
                 + [a for a in earlier if a not in with_networks]
                 + list(GPU_ARCHITECTURES[i + 1:]))
        for p in PARAMETERS:
            if p in own:
                continue
            if p in LIBRARY_KERNEL_CONSTANTS:
                values[p] = 1.0
                borrowed[AT_DATASHEET].append(p)
                continue
            donor = next((a for a in order if p in exercised.get(a, ())), None)
            values[p] = (borrowed_value(p, getattr(families[donor], p), arch, donor)
                         if donor else getattr(default, p))
            borrowed[donor or "default"].append(p)
        base = families.get(arch, dataclasses.replace(default, name=arch))
        note = "; ".join(f"{', '.join(ps)} from {a}" for a, ps in sorted(borrowed.items()))
        if arch in families:
            fitted_to = base.fitted_to + (f" ({note})" if note else "")
        else:
            fitted_to = f"no rows: {note}"
        out[arch] = dataclasses.replace(base, name=arch, fitted_to=fitted_to, **values)
    return out


def families_toml(fitted: Fitted, sources: list[str]) -> str:
    """The architectures and frameworks as catalog TOML, each with what it was fitted to."""
    families, frameworks = fitted
    lines = ["# GPU architectures' efficiencies for the kernel model of hwmodels/gpu.py: "
             "the share",
             "# of the arithmetic peak (of the precision an op runs in, at the clock the part",
             "# sustains: gpus.toml sustained_clock_hz) that a large, full-wave tile of each",
             "# library algorithm sustains, the share of the part's streaming",
             "# bandwidth the library's kernels reach, and the per-kernel overhead; and each",
             "# framework's host time per op and the share of that bandwidth its own",
             "# streaming kernels (norms, activations, pooling, the optimizer) reach.",
             "# Written by `dnnsim calibrate --published`, fitted to:",
             *(f"#   {s}" for s in sources),
             "# A fit to these rows reproduces them: `dnnsim validate --published` on the same",
             "# rows is in-sample; its leave-one-GPU-out figures are the predictions.", ""]
    for name in sorted(families):
        fam = families[name]
        lines.append(f"[families.{name}]")
        for key, value in fam.as_table().items():
            if key == "fitted_to":
                lines.append(f'fitted_to = "{value}"')
            elif key.endswith("_s"):
                lines.append(f"{key} = {value:.3e}")
            else:
                lines.append(f"{key} = {value:.4f}")
        lines.append("")
    for name in sorted(frameworks):
        fw = frameworks[name]
        lines += [f"[frameworks.{name}]", f"host_overhead_s = {fw.host_overhead_s:.3e}",
                  f"stream_memory = {fw.stream_memory:.4f}", f'fitted_to = "{fw.fitted_to}"', ""]
    return "\n".join(lines)
