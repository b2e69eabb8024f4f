"""The errors of the workloads package."""
from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Iterable


class DnnsimError(ValueError):
    """Base of every error that reports bad input (a name, a value, a file): the CLI prints it
    in one line and exits 2. It lives here, in the package every other one imports."""


class WorkloadError(DnnsimError):
    """A network, an op or an option that cannot be built as asked."""


class ShapeError(WorkloadError):
    """Shapes that do not fit together (a kernel larger than its input, mismatched adds, ...)."""


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """' (did you mean 'h100'?)' after an unknown name that differs from a known one only in
    case or by a typo, else ''. Shared by every lookup of a name a user types."""
    if not isinstance(name, str):
        return ""
    known = sorted(known)
    same = [k for k in known if k.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def refuse_device(path: str | os.PathLike, what: str,
                  error: type[Exception] = DnnsimError) -> None:
    """A device given where a file is read (/dev/zero, /dev/urandom: reading one never ends,
    until memory runs out) is refused before reading, naming it. A missing path is left to
    the reader, whose message names it; a pipe (`<(...)`, /dev/stdin) is read as a file."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise error(f"{what} {os.fspath(path)!r} is a device, not a file")
