"""`dnnsim workloads`: the network zoo, one line each."""
from __future__ import annotations

import argparse
import sys

from workloads import zoo

NAME = "workloads"
HELP = "List the networks of the zoo (input shape, parameters, GFLOPs per sample)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all-resnets", action="store_true",
                        help="also list the generic cifar_resnet entry")


def format_table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Aligned text: columns in `right` are right-aligned (numbers), the others left."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in zoo.names():
        if name == "cifar_resnet" and not args.all_resnets:
            continue  # the same network as cifar_resnet20 by default
        info = zoo.info(name)
        g = zoo.get(name, batch=1)
        rows.append([name, "x".join(map(str, info.input_shape)), f"{g.params():,}",
                     f"{g.flops() / 1e9:.3f}", info.description])
    header = ["network", "input (CxHxW)", "parameters", "GFLOPs/sample", "description"]
    print("\n".join(format_table(header, rows, right={2, 3})))
    # on stderr: the table stays clean for scripts
    print("and any cifar_resnet<6k+2> (resnet<6k+2> too where no ImageNet ResNet has that "
          "depth); a PyTorch module of yours is --workload path/to/net.py:factory "
          "with --workload-option input_shape=CxHxW", file=sys.stderr)
    return 0
