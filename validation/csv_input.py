"""CSV files a user hands to a command, read whole or refused with one message naming the
file: one that cannot be opened or decoded, lacks a required column, or has no rows. A
byte-order mark (spreadsheets write one) is not part of the first column's name."""
from __future__ import annotations

import csv

from workloads.errors import DnnsimError


def read_csv_rows(path, required: tuple[str, ...], what: str,
                  error: type[Exception] = DnnsimError) -> list[dict]:
    """The rows of `path` as dicts; `what` names the kind of file in the messages."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or ())]
            if missing:
                raise error(f"{path}: not a {what} (no column {', '.join(missing)})")
            rows = list(reader)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise error(f"{path}: not a CSV file: {exc}") from None
    if not rows:
        raise error(f"{path}: no rows (only the header {', '.join(required)})")
    return rows
