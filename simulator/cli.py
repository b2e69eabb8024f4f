"""The `dnnsim` command line.

Each command is a module with NAME, HELP, `add_arguments(parser)` and `run(args) -> int`.
The simulator's own commands are listed here; other packages (validation) add theirs through the
entry-point group `dnnsim.commands`, so this package never imports them.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points
from types import ModuleType

SIMULATOR_COMMANDS = [
    "simulator.commands.workloads",
    "simulator.commands.describe",
    "simulator.commands.simulate",
    "simulator.commands.policies",
]


class CommandLineError(ValueError):
    """A bad argument or option value given on the command line."""


def _command_modules() -> list[ModuleType]:
    modules = [importlib.import_module(m) for m in SIMULATOR_COMMANDS]
    for ep in sorted(entry_points(group="dnnsim.commands"), key=lambda e: e.name):
        modules.append(importlib.import_module(ep.value))
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnnsim",
        description="Discrete-event performance simulator for deep-learning training and inference.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _allow_extra=getattr(mod, "ALLOW_EXTRA", False), _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not args._allow_extra:
            args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args._extra = extra
    try:
        return int(args._run(args) or 0)
    except (ValueError, KeyError, OSError) as exc:  # our errors are ValueError subclasses
        if os.environ.get("DNNSIM_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"dnnsim: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dnnsim: interrupted; results written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
