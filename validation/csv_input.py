"""CSV files a user hands to a command, read whole or refused with one message naming the
file: one that cannot be opened or decoded, names a column twice, lacks a required column,
has no rows, has a row
with more or fewer values than its header (an unquoted comma, a cut line: what else the row
says is unknown), or gives one row id twice. A byte-order mark (spreadsheets write one) is not
part of the first column's name, and a row whose every cell is blank (a spreadsheet's ",,,,")
is a blank line; spaces around a column's name are not part of it."""
from __future__ import annotations

import csv

from workloads.errors import DnnsimError, check_input_file


def read_csv_rows(path, required: tuple[str, ...], what: str,
                  error: type[Exception] = DnnsimError,
                  id_column: str | None = None) -> list[dict]:
    """The rows of `path` as dicts; `what` names the kind of file in the messages. Where
    `id_column` is given, a non-empty id may appear once only."""
    return [row for _, row in read_csv_lines(path, required, what, error, id_column)]


def read_csv_lines(path, required: tuple[str, ...], what: str,
                   error: type[Exception] = DnnsimError,
                   id_column: str | None = None) -> list[tuple[int, dict]]:
    """read_csv_rows' rows, each with the line of the file it ends on (for a message about
    one of its values)."""
    check_input_file(path, what, error)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            # spaces around a column's name ("gpu, precision") are not part of it
            reader.fieldnames = [name.strip() for name in reader.fieldnames or ()]
            header = reader.fieldnames
            # DictReader keeps the last of two columns of one name: which one was meant is
            # unknown
            twice = sorted({c for c in header if c and header.count(c) > 1})
            if twice:
                raise error(f"{path}: column {', '.join(twice)} is given twice in the header")
            missing = [c for c in required if c not in header]
            if missing:
                raise error(f"{path}: not a {what} (no column {', '.join(missing)})")
            rows = []
            first_line_of: dict[str, int] = {}
            for row in reader:
                line = reader.line_num
                # DictReader files a long row's extra values under None and fills a short
                # row's missing ones with None
                extra = row.pop(None, None) or []  # type: ignore[call-overload]
                absent = sum(v is None for v in row.values())
                if extra or absent:
                    values = len(header) + len(extra) - absent
                    raise error(f"{path}, line {line}: the row has {values} values, the "
                                f"header {len(header)} ({', '.join(header)})")
                if not any((v or "").strip() for v in row.values()):
                    continue
                rid = (row.get(id_column) or "").strip() if id_column else ""
                if rid and rid in first_line_of:
                    raise error(f"{path}, line {line}: {id_column} {rid!r} is given twice "
                                f"(first on line {first_line_of[rid]})")
                first_line_of.setdefault(rid, line)
                rows.append((line, row))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise error(f"{path}: not a CSV file: {exc}") from None
    if not rows:
        raise error(f"{path}: no rows (only the header {', '.join(required)})")
    return rows
