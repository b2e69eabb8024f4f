"""Measured training steps as CSV (network, batch, mode, measured_s): what `dnnsim calibrate
--steps-csv/--heldout-csv` and `dnnsim validate --save-measured` write, and what `dnnsim
validate --measured` scores."""
from __future__ import annotations

import csv
import math

from workloads.graph import WorkloadError

STEPS_CSV_FIELDS = ("network", "batch", "mode", "measured_s")


def read_steps_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in STEPS_CSV_FIELDS if f not in (reader.fieldnames or ())]
        if missing:
            raise WorkloadError(f"{path}: not a measured-steps CSV (no column "
                                f"{', '.join(missing)})")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        try:
            seconds = float(row["measured_s"])
        except (TypeError, ValueError):
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise WorkloadError(f"{path}, line {line}: measured_s must be a positive number of "
                                f"seconds, got {row['measured_s']!r}")
    return rows


def write_steps_csv(measured: list[dict], path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(STEPS_CSV_FIELDS)
        for r in measured:
            w.writerow([r["network"], r["batch"], r["mode"], f"{float(r['measured_s']):.6g}"])
