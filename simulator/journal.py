"""Journals: the append-only JSON-lines files that let a long run stop and resume exactly.

Sweeps (their results file), calibration (its partial file) and `reproduce` (OUT/journal.jsonl)
all write through this module:

- The first line is a header, {"dnnsim_journal": KIND, "format": 1, "identity": ...}: it marks
  the file as dnnsim's own, says what wrote it and for which run (a sweep's hash). A file
  without it, or with another kind or identity, is refused and left as it is: nothing here
  appends to, repairs or truncates a file that a journal did not start.
- Each record is one complete line written by a single `os.write`, then fsync, so a kill loses
  at most the line being written and never leaves half of one followed by another.
- A torn last line (a kill mid-write) is cut when the journal is opened for writing; the bytes
  cut are first appended to PATH.torn, so nothing is lost even then.
- One writer at a time: an exclusive `flock` on PATH.lock, which holds the writer's pid and
  command line. A second writer is refused, naming the first. The lock goes with the process
  (a killed writer holds nothing); the small lock file stays.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from workloads.errors import check_input_file

from .policies import ConfigError

FORMAT_VERSION = 1
HEADER_KEY = "dnnsim_journal"


class JournalError(ConfigError):
    """A journal that cannot be used: not one, another run's, or being written by another."""


def dumps_line(record: dict) -> bytes:
    """One record as its line: canonical, strict JSON (NaN and infinity are refused, never
    written as tokens other readers reject), newline included."""
    try:
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise JournalError(f"a journal record holds a value JSON cannot carry: {exc}") from None
    return (text + "\n").encode()


def header(kind: str, identity: Any) -> dict:
    return {HEADER_KEY: kind, "format": FORMAT_VERSION, "identity": identity}


@dataclass
class Contents:
    """What a journal file holds: its header (None for an empty or missing file), its complete
    records, and the bytes of a torn last line (b"" when there is none)."""
    header: dict | None
    records: list[dict] = field(default_factory=list)
    torn: bytes = b""
    complete_bytes: int = 0     # the length of the file up to the end of its last whole line


def _describe(path: Path) -> str:
    return f"{str(path)!r}"


def parse(path: str | Path, kind: str, what: str = "journal") -> Contents:
    """Read a journal without changing it. Raises JournalError naming the file and the line for
    anything that is not a journal of `kind`: a missing or foreign header, a line that is not a
    JSON object before the last, JSON too deeply nested to read."""
    p = Path(path)
    if p.is_dir():
        raise JournalError(f"{what} {_describe(p)} is a directory, not a file")
    check_input_file(p, what, JournalError, max_bytes=None)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return Contents(None)
    lines = raw.split(b"\n")
    torn = lines.pop()           # b"" when the file ends with a newline
    if not lines and not torn:
        return Contents(None)    # an empty file: nothing to lose, a journal may start in it
    if not lines:
        raise JournalError(f"{what} {_describe(p)} is not a dnnsim {kind} file (one line with "
                           "no header); it is left as it is: give another path")
    head = _json_line(lines[0], p, 1, what, kind)
    if not isinstance(head, dict) or head.get(HEADER_KEY) != kind:
        found = head.get(HEADER_KEY) if isinstance(head, dict) else None
        why = (f"it is a dnnsim {found} file" if isinstance(found, str)
               else "its first line is not a dnnsim header")
        raise JournalError(f"{what} {_describe(p)} is not a dnnsim {kind} file ({why}); it is "
                           "left as it is: give another path")
    if head.get("format") != FORMAT_VERSION:
        raise JournalError(f"{what} {_describe(p)} has format {head.get('format')!r}; this "
                           f"dnnsim reads format {FORMAT_VERSION}")
    records = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        rec = _json_line(line, p, i, what, kind)
        if not isinstance(rec, dict):
            raise JournalError(f"{what} {_describe(p)}: line {i} is not a JSON object")
        records.append(rec)
    return Contents(head, records, torn, len(raw) - len(torn))


def _refuse_constant(token: str):
    raise ValueError(f"{token} is not strict JSON")


def _json_line(line: bytes, p: Path, number: int, what: str, kind: str) -> Any:
    # strict, as written: NaN and Infinity tokens are not JSON, and dnnsim never writes them
    try:
        return json.loads(line, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise JournalError(f"{what} {_describe(p)}: line {number} is not JSON, so this is not "
                           f"a dnnsim {kind} file; it is left as it is") from None


def read_records(path: str | Path, kind: str, what: str = "journal") -> Iterator[dict]:
    yield from parse(path, kind, what).records


class Journal:
    """A journal opened for appending: locked, checked, its torn tail (if any) cut and kept in
    PATH.torn. Use as a context manager; `records` holds what was there before."""

    def __init__(self, path: str | Path, kind: str, identity: Any = None,
                 what: str = "journal", owner: str = "") -> None:
        self.path = Path(path)
        self.kind, self.identity, self.what = kind, identity, what
        self.owner = owner or kind      # who writes one: "sweep", "calibration", ...
        self.fd: int | None = None
        self.lock_fd: int | None = None
        self.records: list[dict] = []

    # -- opening -------------------------------------------------------------------------
    def open(self, fresh: bool = False) -> "Journal":
        """Lock and check the file; fresh=True empties a journal of this kind and identity
        (a run that starts over) instead of resuming it."""
        if self.path.is_dir():
            raise JournalError(f"{self.what} {_describe(self.path)} is a directory, not a file")
        if not self.path.parent.is_dir():
            raise JournalError(f"{self.what} {_describe(self.path)}: folder "
                               f"{str(self.path.parent)!r} does not exist")
        self._lock()
        try:
            contents = parse(self.path, self.kind, self.what)
            if contents.header is not None and contents.header.get("identity") != self.identity:
                raise JournalError(
                    f"{self.what} {_describe(self.path)} was written by another {self.owner} "
                    f"(its identity {contents.header.get('identity')!r}, this one "
                    f"{self.identity!r}); give another path or remove the file")
            if contents.torn:
                self._cut_torn_tail(contents)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if contents.header is None or fresh:
                os.ftruncate(self.fd, 0)     # empty, new, or this run's own and starting over
                self._write(dumps_line(header(self.kind, self.identity)))
            self.records = [] if fresh else contents.records
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise JournalError(f"{self.what} {_describe(self.path)} is being written by "
                               f"{holder}; wait for it to finish or give another path") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"dnnsim pid {os.getpid()} ({' '.join(sys.argv)[:200]})\n".encode(), 0)
        self.lock_fd = fd

    def _cut_torn_tail(self, contents: Contents) -> None:
        """Keep the torn bytes in PATH.torn (fsynced), then cut them from the journal."""
        backup = self.path.with_name(self.path.name + ".torn")
        fd = os.open(backup, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _write_all(fd, contents.torn + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.truncate(self.path, contents.complete_bytes)

    # -- writing -------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        self._write(dumps_line(record))
        self.records.append(record)

    def append_line(self, line: bytes) -> None:
        """A record already serialised by dumps_line (a worker process made it)."""
        self._write(line)

    def _write(self, data: bytes) -> None:
        if self.fd is None:
            raise JournalError(f"{self.what} {_describe(self.path)} is not open for writing")
        _write_all(self.fd, data)
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)      # closing the descriptor releases the flock
            self.lock_fd = None

    def __enter__(self) -> "Journal":
        return self.open() if self.fd is None else self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    # One write for a line; a short write (a full disk) is an error, never half a record.
    if os.write(fd, data) != len(data):
        raise OSError(f"short write to a dnnsim journal ({len(data)} bytes wanted)")
