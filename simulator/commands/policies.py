"""`dnnsim policies`: the registered policies and their options."""
from __future__ import annotations

from .. import policies

NAME = "policies"
HELP = "List the policies (techniques and baselines) and their options."


def add_arguments(p) -> None:
    p.add_argument("name", nargs="?", help="show one policy only")


def run(args) -> int:
    for name in ([args.name] if args.name else policies.names()):
        pol = policies.get(name)
        print(f"{pol.name}: {pol.description}")
        for key, opt in pol.options.items():
            print(f"    --{key.replace('_', '-'):<22} {opt.help} (default: {opt.default!r})")
    return 0
