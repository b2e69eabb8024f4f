"""`dnnsim calibrate`: measure op kinds on this machine and write a profile TOML."""
from __future__ import annotations

import os
import sys

from workloads.graph import WorkloadError

NAME = "calibrate"
HELP = ("Measure the op kinds of the zoo networks (and a grid around them) on this machine and "
        "write a calibrated device profile.")


def add_arguments(p) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", default="profile.toml", help="profile TOML to write")
    p.add_argument("--quick", action="store_true",
                   help="one batch per network, no grid, fewer repetitions (a few minutes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (recorded; default 1)")
    p.add_argument("--device-name", help="catalog device the profile calibrates "
                   "(default xeon-avx512-2c for cpu, h100 for cuda)")
    p.add_argument("--partial", help="measurements file to append to and resume from "
                   "(default OUT.partial.jsonl)")
    p.add_argument("--ops-csv", help="also write the op measurements as CSV here")
    p.add_argument("--cache", default="warm", choices=("warm", "cold"),
                   help="time each op with its operands in cache as a step leaves them "
                        "(warm, default) or after evicting them (cold)")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hwmodels import catalog
    from validation import calibrate as cal

    if args.threads < 1:
        raise WorkloadError(f"--threads must be >= 1, got {args.threads}")
    device_name = args.device_name or cal.default_device_name(args.device)
    spec = catalog.device(device_name)
    want_kind = "gpu" if args.device == "cuda" else "cpu"
    if spec.kind != want_kind:
        raise WorkloadError(f"--device-name {device_name!r} is a {spec.kind}, but --device "
                            f"{args.device} measures a {want_kind}")
    import torch
    from validation.torch_exec import resolve_device
    resolve_device(args.device)
    torch.set_num_threads(args.threads)
    cases = cal.DEFAULT_CASES[::2] if args.quick else cal.DEFAULT_CASES
    ops = cal.collect_ops(cases, grid=not args.quick)
    partial = args.partial or f"{args.out}.partial.jsonl"
    print(f"calibrate: {len(ops)} distinct ops on {args.device} ({args.threads} thread(s)); "
          f"measurements go to {partial}", file=sys.stderr)
    records = cal.measure_ops(ops, partial, args.device, reps=3 if args.quick else 5,
                              progress=not args.no_progress, cache=args.cache)
    records = [records[k] for k in sorted(records) if k in ops]
    overhead_s = cal.measure_overhead(args.device, reps=7 if args.quick else 15)
    meta = {"device_kind": spec.kind, "device_name": device_name,
            "cache": args.cache, **cal.machine_meta(args.device, args.threads)}
    profile = cal.build_profile(records, meta, overhead_s)
    profile.save(args.out)
    if args.ops_csv:
        cal.write_ops_csv(records, args.ops_csv)
    print(f"wrote {args.out}: {sum(len(v) for v in profile.kinds.values())} points over "
          f"{len(profile.kinds)} op kinds; step overhead {overhead_s * 1e6:.1f} us/op")
    return 0
