"""Output files: checked before a run, written whole or not at all.

`check_output(path, flag)` refuses, before anything runs, a path that is a directory or whose
folder does not exist or takes no new file; `check_plot_output` also a suffix no plot can be
written as. `write_atomically(path, write)` has `write` fill a temporary file beside
`path` and renames it over `path`: a kill leaves the old file or none, never half of one, and
the file lands exactly at `path` (a plotting library would add `.png` to a name without one).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .policies import ConfigError


def check_output(path: str | Path, flag: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {str(p)!r} is a directory; give a file name")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"{flag} {str(p)!r}: folder {str(folder)!r} does not exist")
    probe = folder / f".{p.name}.{os.getpid()}.check"
    try:   # a folder that takes no new file (read-only, /proc) fails now, not after the run
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{flag} {str(p)!r}: cannot write in folder {str(folder)!r} "
                          f"({exc.strerror or exc})") from None
    return p


def check_plot_output(path: str | Path, flag: str) -> Path:
    """check_output, and a suffix matplotlib can write (none: PNG), refused before the run
    rather than after it."""
    p = check_output(path, flag)
    if p.suffix:
        from matplotlib.backend_bases import FigureCanvasBase
        formats = sorted(FigureCanvasBase.get_supported_filetypes())
        if p.suffix[1:].lower() not in formats:
            raise ConfigError(f"{flag} {str(p)!r}: cannot write a plot as {p.suffix!r}; "
                              f"give one of .{', .'.join(formats)} (or no suffix: PNG)")
    return p


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) and rename tmp to `path`. tmp keeps the suffix of `path` (PNG where
    `path` has none), so writers that choose a format by suffix write the same thing."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp{p.suffix or '.png'}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
