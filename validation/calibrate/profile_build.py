"""A device profile built from calibration's op measurements, and the ops CSV that keeps them
(`dnnsim calibrate --ops-csv`; `--refit` builds a profile again from one)."""
from __future__ import annotations

import statistics

from hwmodels.profile import RESIDENCY_FIELDS, Profile
from hwmodels.residency import meta_of as residency_meta
from workloads.graph import WorkloadError

from .residency_fit import as_spilled, fit_records


def build_profile(records, meta: dict, overhead_s: float = 0.0,
                  exclude_network: str | None = None, statistic: str = "time_s") -> Profile:
    """A Profile from measurement records: one point per distinct op, the median over the
    networks it was measured in. `exclude_network` builds a leave-one-network-out profile: it
    drops every op shape that network has, also where another network measured it (ResNet-20
    and ResNet-56 share all theirs), so the profile has never seen any of its shapes."""
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
    """The op measurements of an ops CSV, which validation/csv_input.py reads (or refuses,
    naming the file)."""
    from ..csv_input import read_csv_lines
    rows = read_csv_lines(path, tuple(f for f in OPS_CSV_FIELDS if f != "shape"),
                          "calibration ops CSV", WorkloadError)
    out = []
    for line, r in rows:
        try:
            out.append({**r, "flops": float(r["flops"]), "bytes": float(r["bytes"]),
                        # the column was called 'gemm' before layouts were recorded
                        "shape": _shape_cell(r.get("shape") or r.get("gemm")),
                        "time_s": float(r["time_s"]), "median_s": float(r["median_s"]),
                        "sources": r["sources"].split(";")})
        except (TypeError, ValueError) as exc:
            raise WorkloadError(f"{path}, line {line}: {exc}") from None
    return out


def _shape_cell(cell: str | None) -> list[int] | None:
    return [int(d) for d in cell.split(";")] if cell else None
