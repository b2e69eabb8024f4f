"""Output files: checked before a run, written whole or not at all.

`check_output(path, flag)` refuses, before anything runs, a path that is a directory or whose
folder does not exist or takes no new file; `check_plot_output` also a suffix no plot can be
written as. `write_atomically(path, write)` has `write` fill a temporary file beside
`path` and renames it over `path`: a kill leaves the old file or none, never half of one, and
the file lands exactly at `path` (a plotting library would add `.png` to a name without one).
An existing target that is not a regular file (/dev/null, /dev/stdout, a named pipe) is
written through, never renamed over: where its folder is writable (/dev, as root) a rename
would replace the device itself.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable

from .policies import ConfigError


def _written_through(p: Path) -> bool:
    """An existing target that is not a regular file (a device, a pipe, a terminal, also
    through a symbolic link such as /dev/stdout)."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_output(path: str | Path, flag: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {str(p)!r} is a directory; give a file name")
    if _written_through(p):
        if not os.access(p, os.W_OK):
            raise ConfigError(f"{flag} {str(p)!r} cannot be written")
        return p
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
    `path` has none), so writers that choose a format by suffix write the same thing. A
    target that is not a regular file (a device, a pipe) gets tmp's bytes written into it."""
    p = Path(path)
    if _written_through(p):
        fd, name = tempfile.mkstemp(suffix=p.suffix or ".png")
        os.close(fd)
        try:
            write(Path(name))
            with open(name, "rb") as src, open(p, "wb") as dst:
                shutil.copyfileobj(src, dst)
        finally:
            os.unlink(name)
        return p
    # through a symbolic link, the file it names is replaced, not the link
    target = Path(os.path.realpath(p))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix or '.png'}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
