"""The simulator's commands, one module each (simulator/cli.py lists them), and the checks they
share."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable

from ..policies import ConfigError


def input_files(values: Iterable[object]) -> list[str]:
    """The files a run reads, among values a user gave: paths of existing files, and the file
    of a network named as path/to/net.py:factory."""
    out = []
    for value in values:
        if not isinstance(value, str) or not value:
            continue
        network = re.fullmatch(r"(.+\.py):[A-Za-z_]\w*", value)
        path = network.group(1) if network else value
        if os.path.isfile(path):
            out.append(path)
    return out


def refuse_inputs_as_outputs(outputs: Iterable[tuple[str, str | None]],
                             inputs: Iterable[str]) -> None:
    """Naming a file on an output flag asks to replace it, but never with a file this run reads
    (the scenario, the network's .py, a profile or an option's CSV) nor with another output
    of the same run: either would lose the user's file. Refused before the run."""
    taken = {os.path.realpath(path): f"a file this run reads ({path})" for path in inputs}
    for flag, path in outputs:
        if not path:
            continue
        key = os.path.realpath(path)
        if key in taken:
            raise ConfigError(f"{flag} {path!r} is {taken[key]}; give the output another path")
        taken[key] = f"the output of {flag} too"
