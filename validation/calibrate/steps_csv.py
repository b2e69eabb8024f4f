"""Measured training steps as CSV (network, batch, mode, measured_s): what `dnnsim calibrate
--steps-csv/--heldout-csv` and `dnnsim validate --save-measured` write, and what `dnnsim
validate --measured` scores."""
from __future__ import annotations

import csv
import math

from workloads.graph import WorkloadError

from ..csv_input import read_csv_rows

STEPS_CSV_FIELDS = ("network", "batch", "mode", "measured_s")
MODES = ("train", "infer")


def read_steps_csv(path) -> list[dict]:
    """The rows, each checked: a file with a row that cannot be scored is refused whole (a
    half-read file is never scored as if whole)."""
    rows = read_csv_rows(path, STEPS_CSV_FIELDS, "measured-steps CSV", WorkloadError)
    for line, row in enumerate(rows, start=2):
        _check_row(path, line, row)
    return rows


def _check_row(path, line: int, row: dict) -> None:
    if row["mode"] not in MODES:
        raise WorkloadError(f"{path}, line {line}: mode must be one of {', '.join(MODES)}, got "
                            f"{row['mode']!r}")
    if not row["batch"].strip().isdigit() or int(row["batch"]) < 1:
        raise WorkloadError(f"{path}, line {line}: batch must be a whole number >= 1, got "
                            f"{row['batch']!r}")
    try:
        seconds = float(row["measured_s"])
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise WorkloadError(f"{path}, line {line}: measured_s must be a positive number of "
                            f"seconds, got {row['measured_s']!r}")


def write_steps_csv(measured: list[dict], path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(STEPS_CSV_FIELDS)
        for r in measured:
            w.writerow([r["network"], r["batch"], r["mode"], f"{float(r['measured_s']):.6g}"])
