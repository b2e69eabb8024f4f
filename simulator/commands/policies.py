"""`dnnsim policies`: the registered policies and their options."""
from __future__ import annotations

import textwrap

from .. import policies

NAME = "policies"
HELP = "List the policies (techniques and baselines) and their options."


def add_arguments(p) -> None:
    p.add_argument("name", nargs="?", help="show one policy only")


WIDTH = 99   # fixed, not the terminal's: the same listing wherever it is printed


def run(args) -> int:
    for name in ([args.name] if args.name else policies.names()):
        pol = policies.get(name)
        print(_fill(f"{pol.name}: {pol.description}", "", "  "))
        for key, opt in pol.options.items():
            flag = f"    --{key.replace('_', '-'):<22} "
            print(_fill(f"{opt.help} (default: {opt.default!r})", flag, " " * len(flag)))
    return 0


def _fill(text: str, first: str, rest: str) -> str:
    # names and values ('host-dispatch', a path) stay whole
    return textwrap.fill(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False)
