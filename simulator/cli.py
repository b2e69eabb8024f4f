"""The `dnnsim` command line.

Each command is a module with NAME, HELP, `add_arguments(parser)` and `run(args) -> int`.
The simulator's own commands are listed here; other packages (validation) add theirs through the
entry-point group `dnnsim.commands`, so this package never imports them.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import warnings
from importlib.metadata import PackageNotFoundError, entry_points, version
from types import ModuleType
from typing import Any, NoReturn

from workloads.errors import DnnsimError

SIMULATOR_COMMANDS = [
    "simulator.commands.workloads",
    "simulator.commands.hardware",
    "simulator.commands.describe",
    "simulator.commands.simulate",
    "simulator.commands.policies",
    "simulator.commands.tune_batch",
    "simulator.commands.sweep",
    "simulator.commands.plot",
]


START = """a first run:
  dnnsim workloads                  the networks (dnnsim hardware, dnnsim policies: the rest)
  dnnsim simulate --workload gpt2 --batch 8 --hardware h100 --devices 8 --link nvlink4 \\
      --policy data-parallel --precision amp-bf16
  dnnsim COMMAND --help             a command's flags; docs/README.md indexes the docs"""


class CommandLineError(DnnsimError):
    """A bad argument or option value given on the command line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a CommandLineError (one line, exit 2 from main) rather
    than usage text and a SystemExit; subparsers inherit this class. It keeps, through public
    API only, the option strings declared on it, its arguments that take an empty value
    (`empty_ok=True`: tune-batch's `--baseline ''`) and (the top parser) its command
    parsers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # set before argparse adds --help through add_argument
        self.declared_options: set[str] = set()
        self.declared_actions: list[tuple[argparse.Action, bool]] = []
        self.commands: dict[str, _Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, empty_ok: bool = False, **kwargs: Any
                     ) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.declared_options.update(action.option_strings)
        self.declared_actions.append((action, empty_ok))
        return action

    def refuse_empty(self, args: argparse.Namespace) -> None:
        """An empty value (`--trace ""`, an unset shell variable) where a name or path is
        wanted is refused, not read as the flag left out: `--trace ""` wrote no trace and
        `calibrate --out ""` wrote the default file. A value equal to the default ("" of
        plot's --by) is what leaving the flag out gives, and stands."""
        for action, empty_ok in self.declared_actions:
            value = getattr(args, action.dest, None)
            values = value if isinstance(value, list) else [value]
            if empty_ok or value == action.default or not any(
                    isinstance(v, str) and not v.strip() for v in values):
                continue
            name = "/".join(action.option_strings) or action.metavar or action.dest
            leave = "" if action.required else " or leave the argument out"
            raise CommandLineError(f"argument {name}: an empty value; give one{leave} (see "
                                   f"{self.prog} --help)")

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(f"{message} (see {self.prog} --help)")


def _command_modules() -> list[ModuleType]:
    modules = [importlib.import_module(m) for m in SIMULATOR_COMMANDS]
    for ep in sorted(entry_points(group="dnnsim.commands"), key=lambda e: e.name):
        modules.append(importlib.import_module(ep.value))
    return modules


def _split_extra(parser: _Parser, argv: list[str]) -> tuple[list[str], list[str]]:
    """Take `--key value` pairs the command does not declare out of argv (policy options),
    before argparse could mistake their values for positional arguments."""
    if not argv:
        return argv, []
    cmd = parser.commands.get(argv[0])
    if cmd is None or not cmd.get_default("_allow_extra"):
        return argv, []
    known = cmd.declared_options
    keep, extra, i = [argv[0]], [], 1
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--") and tok.split("=", 1)[0] not in known:
            extra.append(tok)
            if "=" not in tok and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                extra.append(argv[i + 1])
                i += 1
        else:
            keep.append(tok)
        i += 1
    return keep, extra


def build_parser() -> _Parser:
    parser = _Parser(
        prog="dnnsim", epilog=START, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Discrete-event performance simulator for deep-learning training and "
                    "inference.")
    parser.add_argument("--version", action="version", version=f"dnnsim {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP,
                           epilog=getattr(mod, "EPILOG", None))
        parser.commands[mod.NAME] = p
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _allow_extra=getattr(mod, "ALLOW_EXTRA", False), _parser=p)
    return parser


def _version() -> str:
    try:
        return version("dnnsim")
    except PackageNotFoundError:   # run from a clone that was never installed
        return "(not installed)"


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings (a profile measured on another machine) as one line naming what differs, not
    Python's default of a source path and line."""
    return f"dnnsim: warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    try:
        parser = build_parser()
        argv, extra = _split_extra(parser, list(sys.argv[1:] if argv is None else argv))
        args, unknown = _parse(parser, argv)
        if unknown:
            raise CommandLineError(_unrecognized(unknown, args._parser))
        args._parser.refuse_empty(args)
        args._extra = extra
        return _run_command(args)
    except BrokenPipeError:  # `dnnsim ... | head`: the reader left; not an error
        # stdout's descriptor goes to the null device, so the flush at exit has nowhere to fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (DnnsimError, ValueError, OSError) as exc:
        # Bad input: DnnsimError and its subclasses, plus the plain ValueErrors some
        # validation readers still raise. A KeyError is a bug and shows as one (traceback).
        if os.environ.get("DNNSIM_DEBUG"):
            raise
        # one line, whatever the message holds (TOML and OS errors may carry newlines)
        print(f"dnnsim: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except (RecursionError, ArithmeticError, MemoryError) as exc:
        # Input past what can be computed: nesting past Python's depth, a zero or overflowing
        # value, a run larger than memory. One line, as any other bad input.
        from .limits import release_reserve
        release_reserve()
        if os.environ.get("DNNSIM_DEBUG"):
            raise
        print(f"dnnsim: error: {_beyond_limits(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:   # SIGINT; SIGTERM and SIGHUP where a run handles them
        signum = getattr(exc, "signum", 2)
        print("dnnsim: interrupted; results written so far are kept", file=sys.stderr)
        return 128 + signum


def _parse(parser: _Parser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """parse_known_args, but an unknown flag is named before a missing required argument
    (`dnnsim sweep --nope` names --nope, the likelier slip, not SWEEP and --out): on a missing
    argument the command is parsed again with nothing required, and its unknown arguments,
    if any, are the error."""
    try:
        return parser.parse_known_args(argv)
    except CommandLineError:
        command = parser.commands.get(argv[0]) if argv else None
        if command is None:
            raise
        required = [a for a, _ in command.declared_actions if a.required]
        for action in required:
            action.required = False
        try:
            _, unknown = parser.parse_known_args(argv)
        except CommandLineError:
            unknown = []
        finally:
            for action in required:
                action.required = True
        if unknown:
            raise CommandLineError(_unrecognized(unknown, command)) from None
        raise


def _unrecognized(unknown: list[str], command: _Parser) -> str:
    """The arguments a command does not take, the declared option each is a typo of (if one
    is close), and the help to read: the command's own, not the top parser's."""
    hints = []
    for token in unknown:
        flag = token.split("=", 1)[0]
        close = difflib.get_close_matches(flag, sorted(command.declared_options), n=1,
                                          cutoff=0.8)
        if flag.startswith("--") and close:
            hints.append(f"{flag}: did you mean {close[0]}?")
    hint = f"; {'; '.join(hints)}" if hints else ""
    return f"unrecognized arguments: {' '.join(unknown)}{hint} (see {command.prog} --help)"


def _run_command(args) -> int:
    try:
        return int(args._run(args) or 0)
    except SystemExit as exc:   # code of the user's (a workload file) must not end dnnsim quietly
        raise CommandLineError(f"the run called sys.exit({exc.code!r}) (in a workload file?); "
                               "dnnsim stopped without a result") from None


def _beyond_limits(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to read (RecursionError)"
    if isinstance(exc, MemoryError):
        from .limits import max_memory_given
        allowed = f"--max-memory {max_memory_given}" if max_memory_given else "this machine"
        return (f"out of memory: the run needs more than {allowed} allows (the limits of "
                "dnnsim are in docs/reliability.md)")
    return (f"{type(exc).__name__}: {' '.join(str(exc).split())} (a value of zero, or one too "
            "large, where a positive finite number is needed?)")


if __name__ == "__main__":
    sys.exit(main())
