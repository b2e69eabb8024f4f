"""What `dnnsim calibrate --published` fits: a folder of published tables or one CSV of a
user's own training steps, with the shipped tables added unless asked otherwise, and what the
fit moved against the constants the catalog ships.

A folder holds single_gpu.csv (training throughputs) and may hold kernels.csv (library kernel
times); a single CSV is read as single_gpu.csv is (docs/published-tables.md). The rows of the
given path are the user's own ("own" below): the held-out estimate is made over them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from hwmodels.gpu import Framework, GpuFamily, builtin_families, builtin_frameworks
from workloads.graph import WorkloadError

from . import published_fit as pf
from . import published_gpu as pg
from . import published_kernels as pk
from .published_terms import network_terms

KERNELS_CSV, NETWORKS_CSV = "kernels.csv", "single_gpu.csv"
# a constant counts as moved when it differs from the shipped one by more than this share
MOVED_SHARE = 0.005


@dataclass
class FitInput:
    kernels: list[pk.KernelRow]
    networks: list[pg.NetworkRow]
    own: list[pg.NetworkRow]       # the training rows of the given path (held out in turn)
    sources: list[str]             # what the families file says it was fitted to
    skipped: list[pg.Skip]         # rows of the given path that cannot be fitted
    shipped: bool                  # the given path is the shipped folder itself


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _fittable(table, what: str) -> None:
    """Constants fitted to nothing are not a fit: a table none of whose rows can be used is
    refused, naming the first row's reason."""
    if not table.rows:
        first = (f"; {table.skipped[0].row_id}: {table.skipped[0].reason}"
                 if table.skipped else "")
        raise WorkloadError(f"{table.path}: none of its {len(table.skipped)} rows can be "
                            f"fitted as {what}{first}")


def read_inputs(path: str, alone: bool) -> FitInput:
    """The rows to fit: those of `path` (a folder or one CSV of training rows), and unless
    `alone` the shipped tables of validation/measured/published as well."""
    if os.path.isdir(path):
        kernels_csv, networks_csv = (os.path.join(path, n) for n in (KERNELS_CSV, NETWORKS_CSV))
        # present but not a regular file (a pipe): the reader refuses it by name
        if not os.path.exists(networks_csv):
            raise WorkloadError(f"--published {path!r}: give a folder holding {NETWORKS_CSV} "
                                f"(and {KERNELS_CSV}, if it has kernel times), as "
                                f"validation/measured/published/, or one CSV of training "
                                f"rows; it lacks {NETWORKS_CSV}")
        if not os.path.exists(kernels_csv):
            kernels_csv = ""
    elif os.path.exists(path):
        kernels_csv, networks_csv = "", path
    else:
        raise WorkloadError(f"--published {path!r}: no such file or folder (give a CSV of "
                            f"training rows or a folder holding {NETWORKS_CSV})")
    shipped_dir = pg.PUBLISHED_DIR
    shipped = os.path.isdir(path) and _same_path(path, shipped_dir)
    networks = pg.read_network_rows(networks_csv)
    _fittable(networks, "training steps")
    table_kernels = pk.read_kernel_rows(kernels_csv) if kernels_csv else None
    if table_kernels is not None:
        _fittable(table_kernels, "kernel times")
    kernel_rows = list(table_kernels.rows) if table_kernels else []
    network_rows = list(networks.rows)
    sources = []
    if table_kernels:
        sources.append(f"{kernels_csv} ({len(table_kernels.rows)} kernel rows)")
    sources.append(f"{networks_csv} ({len(networks.rows)} training-throughput rows)")
    if not (alone or shipped):
        for name, given in ((KERNELS_CSV, kernels_csv), (NETWORKS_CSV, networks_csv)):
            shipped_path = os.path.join(shipped_dir, name)
            if given and _same_path(given, shipped_path):
                continue    # given already
            where = f"the shipped validation/measured/published/{name}"
            if name == KERNELS_CSV:
                more_kernels = pk.read_kernel_rows(shipped_path).rows
                kernel_rows += more_kernels
                sources.append(f"{where} ({len(more_kernels)} kernel rows)")
            else:
                more_networks = pg.read_network_rows(shipped_path).rows
                network_rows += more_networks
                sources.append(f"{where} ({len(more_networks)} training-throughput rows)")
    skipped = [*(table_kernels.skipped if table_kernels else []), *networks.skipped]
    return FitInput(kernel_rows, network_rows, list(networks.rows), sources, skipped, shipped)


def moved_constants(fitted: pf.Fitted, own: list[pg.NetworkRow]) -> list[str]:
    """One line per architecture the rows of `own` ran on and per framework they ran in:
    the constants that moved from the shipped ones, from what to what, on how many rows."""
    families, frameworks = fitted
    lines = []
    by_arch: dict[str, list[pg.NetworkRow]] = {}
    for r in own:
        by_arch.setdefault(pg.architecture(r.gpu), []).append(r)
    shipped = builtin_families()
    for arch in sorted(by_arch):
        rows = by_arch[arch]
        gpus = ", ".join(sorted({r.gpu for r in rows}))
        old = shipped.get(arch, shipped["default"])
        # constants no op of these rows depends on: the fit leaves them where it starts
        determined = pf._used_parameters([network_terms(rows)])
        idle = [p for p in pf.PARAMETERS if p not in determined]
        lines.append(f"  {arch} ({len(rows)} of your rows, on {gpus}): "
                     + _changes(old, families[arch], tuple(p for p in pf.PARAMETERS
                                                           if p in determined))
                     + (f"; not determined by your rows: {', '.join(idle)}" if idle else ""))
    shipped_fw = builtin_frameworks()
    for name in sorted({pg.framework_key(r.framework) for r in own}):
        rows = [r for r in own if pg.framework_key(r.framework) == name]
        old_fw = shipped_fw.get(name)
        if old_fw is None:
            lines.append(f"  framework {name} ({len(rows)} of your rows): new, "
                         f"{_value('host_overhead_s', frameworks[name].host_overhead_s)}, "
                         f"{_value('stream_memory', frameworks[name].stream_memory)}")
            continue
        lines.append(f"  framework {name} ({len(rows)} of your rows): "
                     + _changes(old_fw, frameworks[name], ("host_overhead_s", "stream_memory")))
    return lines


def _value(name: str, value: float) -> str:
    return f"{name} {value * 1e6:.2f} us" if name.endswith("_s") else f"{name} {value:.3f}"


def _changes(old: GpuFamily | Framework, new: GpuFamily | Framework,
             names: tuple[str, ...]) -> str:
    moved = []
    for name in names:
        a, b = getattr(old, name), getattr(new, name)
        if abs(b / a - 1) > MOVED_SHARE:
            moved.append(f"{_value(name, a)} -> {_value(name, b).split(' ', 1)[1]}")
    return "; ".join(moved) if moved else "no constant moved"
