"""`dnnsim describe NAME`: the ops of one network with their costs, optionally for training."""
from __future__ import annotations

import argparse
import csv

from workloads import zoo
from workloads.graph import OpGraph
from workloads.training import lower_training, training_memory

from ..cli import CommandLineError
from ..outputs import check_output, write_atomically
from . import input_files, refuse_inputs_as_outputs
from .workloads import format_table

NAME = "describe"
HELP = ("Show a network op by op: output shape, parameters, FLOPs, activation bytes (and "
        "with --training, the memory of a step).")
MIB, GIB = 2 ** 20, 2 ** 30
CSV_COLUMNS = ["op", "kind", "phase", "output_shape", "params", "flops", "bytes_moved",
               "output_bytes", "activation_bytes"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", help="a zoo name (see `dnnsim workloads`), e.g. resnet50, "
                        "or a PyTorch module of yours as path/to/net.py:factory (with --option "
                        "input_shape=CxHxW)")
    parser.add_argument("--batch", type=int, default=1, help="samples per batch (default 1)")
    parser.add_argument("--training", action="store_true",
                        help="lower for training: loss, backward, optimizer update, memory "
                             "(of the graph in FP32, before any allocator; simulate and "
                             "tune-batch take --precision and count what PyTorch holds)")
    parser.add_argument("--optimizer",
                        help="optimizer for --training: sgd, sgd-momentum (default), adam, adamw")
    parser.add_argument("--input-size", type=int, metavar="PIXELS",
                        help="height and width of the input (default: the network's own)")
    # --workload-option is simulate's and tune-batch's name for the same thing
    parser.add_argument("--option", "--workload-option", "-o", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a network option, e.g. width=0.5, depth=110 (cifar_resnet), "
                             "shortcut=B, input_shape=3x64x64 for a model of yours; "
                             "repeatable")
    parser.add_argument("--csv", metavar="FILE", help="also write the rows to this CSV file")


def parse_options(items: list[str]) -> dict:
    """KEY=VALUE strings to options; values become int or float where they read as one."""
    options: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise CommandLineError(f"--option {item!r}: expected KEY=VALUE")
        for convert in (int, float):
            try:
                options[key] = convert(text)
                break
            except ValueError:
                options[key] = text
    return options


def op_rows(g: OpGraph) -> list[dict]:
    """One record per op. `params` are counted on forward ops only (a weight gradient or an
    update carries its layer's count in the IR, to cost it); `activation_bytes` is the forward
    tensor an op materialises (0 for views and for backward/update ops, whose outputs are
    gradients: see `output_bytes`)."""
    rows = []
    for op in g.topo():
        output_bytes = 0 if op.is_view else op.out.nbytes
        forward = op.phase == "forward"
        rows.append({"op": op.name, "kind": op.kind, "phase": op.phase,
                     "output_shape": "x".join(map(str, op.out.shape)),
                     "params": op.params if forward else 0, "flops": op.flops,
                     "bytes_moved": op.bytes_moved, "output_bytes": output_bytes,
                     "activation_bytes": output_bytes if forward else 0})
    return rows


def _size(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.3f} GiB" if n_bytes >= GIB else f"{n_bytes / MIB:.3f} MiB"


def _write_csv(rows: list[dict], path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def run(args: argparse.Namespace) -> int:
    if args.csv:
        check_output(args.csv, "--csv")   # before the network is built, not after
        refuse_inputs_as_outputs([("--csv", args.csv)], input_files([args.network]))
    if args.optimizer is not None and not args.training:   # not silently ignored
        raise CommandLineError("--optimizer sets the update of --training; give --training")
    optimizer = "sgd-momentum" if args.optimizer is None else args.optimizer
    options = parse_options(args.option)
    if args.input_size is not None:
        options["input_size"] = args.input_size
    g = zoo.get(args.network, batch=args.batch, **options)
    imported_on = g.meta.get("import_device")   # a PyTorch module of the user's
    if args.training:
        g = lower_training(g, optimizer=optimizer)
    rows = op_rows(g)
    header = ["op", "kind", "output shape", "params", "MFLOPs", "output (KiB)"]
    table = [[r["op"], r["kind"], r["output_shape"], f"{r['params']:,}",
              f"{r['flops'] / 1e6:,.3f}", f"{r['output_bytes'] / 1024:,.1f}"] for r in rows]
    print(f"{g.name}: batch {g.batch}, {len(g)} ops"
          + (f", training with {optimizer}" if args.training else ""))
    print("\n".join(format_table(header, table, right={3, 4, 5})))
    if imported_on:
        print(f"imported on {imported_on}")
    print(f"total: {g.params():,} parameters, {g.flops() / 1e9:,.3f} GFLOPs, "
          f"{g.activation_bytes() / MIB:,.3f} MiB forward activations")
    if args.training:
        for phase in ("forward", "backward", "update"):
            print(f"  {phase} GFLOPs: {g.flops([phase]) / 1e9:,.3f}")
        mem = training_memory(g)
        print("training memory:")
        print("\n".join(format_table(["part", "size"], [
            ["weights", _size(mem.weights_bytes)], ["gradients", _size(mem.gradients_bytes)],
            ["optimizer state", _size(mem.optimizer_bytes)],
            ["saved activations", _size(mem.activations_bytes)],
            ["total", _size(mem.total_bytes)]], right={1})))
    if args.csv:
        write_atomically(args.csv, lambda tmp: _write_csv(rows, tmp))
        print(f"wrote {len(rows)} rows to {args.csv}")
    return 0
