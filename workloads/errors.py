"""The errors of the workloads package."""
from __future__ import annotations


class DnnsimError(ValueError):
    """Base of every error that reports bad input (a name, a value, a file): the CLI prints it
    in one line and exits 2. It lives here, in the package every other one imports."""


class WorkloadError(DnnsimError):
    """A network, an op or an option that cannot be built as asked."""


class ShapeError(WorkloadError):
    """Shapes that do not fit together (a kernel larger than its input, mismatched adds, ...)."""
