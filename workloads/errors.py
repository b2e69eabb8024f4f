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


# The largest input file dnnsim reads: the biggest table it ships (the published GPU rows) is
# under a megabyte and a scenario a few kilobytes, so 64 MiB is generous for anything a person
# writes, and small enough to read whole without thought for memory.
MAX_INPUT_BYTES = 64 * 2 ** 20


def check_input_file(path: str | os.PathLike, what: str,
                     error: type[Exception] = DnnsimError,
                     max_bytes: int | None = MAX_INPUT_BYTES) -> None:
    """Refuse, before reading and naming it, an input that is not a regular file: a device
    (/dev/zero: reading never ends, until memory runs out), a named pipe (opening it waits for
    a writer that may never come; `<(...)` and /dev/stdin are pipes too: write to a file
    first), a socket, a directory; and a file over `max_bytes` (None: no cap, for journals
    dnnsim appends to itself). A missing path is left to the reader, whose message names it."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return
    name = repr(os.fspath(path))
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(st.st_mode):
            raise error(f"{what} {name} is {kind}, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {name} is not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{what} {name} is {st.st_size / 2 ** 20:,.1f} MiB, past dnnsim's limit "
                    f"of {max_bytes / 2 ** 20:g} MiB for an input file (see "
                    "docs/reliability.md)")
