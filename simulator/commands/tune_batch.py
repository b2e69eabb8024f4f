"""`dnnsim tune-batch`: throughput against minibatch size for each policy under memory."""
from __future__ import annotations

import json
import math

from hwmodels.specs import PLAUSIBLE

from .. import tuner
from ..outputs import check_plot_output, write_atomically
from ..policies import ConfigError
from ..scenario import Scenario
from . import input_files, refuse_inputs_as_outputs
from .simulate import parse_pairs

NAME = "tune-batch"
HELP = ("Find the largest trainable and the throughput-optimal minibatch for each policy "
        "(none, swap, swap-all, recompute, ...) under the device's memory.")


def add_arguments(p) -> None:
    p.add_argument("--workload", required=True,
                   help="zoo network name (dnnsim workloads), or a PyTorch module of yours as "
                        "path/to/net.py:factory (with --workload-option input_shape=CxHxW)")
    p.add_argument("--workload-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a network option, e.g. seq_len=512 or input_shape=3x32x32; repeatable")
    p.add_argument("--hardware", required=True, help="catalog device name")
    p.add_argument("--precision", help="fp32 (default) | tf32 | fp16 | bf16 | amp-fp16 | "
                                       "amp-bf16")
    p.add_argument("--memory-format", help="nchw | nhwc (channels_last); default: the "
                                           "workload's own")
    p.add_argument("--policy", default="swap",
                   help="comma-separated policies (default swap)")
    p.add_argument("--baseline", default="none", empty_ok=True,
                   help="policy to compare against ('' for none; default none)")
    p.add_argument("--devices", type=int, default=1,
                   help="devices the policy runs on (default 1)")
    p.add_argument("--link", help="link between devices (default pcie3)")
    p.add_argument("--host", help="host memory (catalog name), tracked when given")
    p.add_argument("--memory-gib", type=float, help="device memory in GiB (default: catalog)")
    p.add_argument("--min-batch", type=int, default=1,
                   help="smallest minibatch per device tried (default 1)")
    p.add_argument("--max-batch", type=int, default=512,
                   help="largest minibatch per device tried (default 512)")
    p.add_argument("--no-refine", action="store_true",
                   help="keep the throughput-optimal minibatch a point of the ~sqrt(2) ladder "
                        "(default: refined to one sample by a Fibonacci search)")
    p.add_argument("--reference-lr", type=float, default=0.1,
                   help="learning rate at --reference-batch, scaled linearly to each "
                        "minibatch (default 0.1)")
    p.add_argument("--reference-batch", type=int, default=256,
                   help="total minibatch of --reference-lr (default 256)")
    p.add_argument("--plot", help="write the throughput curve (PNG) here")
    p.add_argument("--json", action="store_true", help="print every size simulated as JSON")


def run(args) -> int:
    policies = [s.strip() for s in args.policy.split(",") if s.strip()]
    if not policies:
        raise ConfigError(f"tune-batch: --policy {args.policy!r} names no policy; give one or "
                          "more, comma-separated (dnnsim policies)")
    if args.baseline and args.baseline not in policies:
        policies = [args.baseline] + policies
    least, most, _ = PLAUSIBLE["memory_bytes"]   # the device's memory_bytes it sets
    if args.memory_gib is not None and not (math.isfinite(args.memory_gib)
                                            and least <= args.memory_gib * 2 ** 30 <= most):
        raise ConfigError(f"tune-batch: --memory-gib must be a finite number from "
                          f"{least / 2 ** 30:.3g} to {most / 2 ** 30:.3g} (GiB), got "
                          f"{args.memory_gib}")
    if args.plot:
        check_plot_output(args.plot, "--plot")   # before the search, not after it
        refuse_inputs_as_outputs([("--plot", args.plot)],
                                 input_files([args.workload, args.hardware]))
    tuner.check_range(args.min_batch, args.max_batch)
    if args.reference_batch < 1:
        raise ConfigError(f"tune-batch: --reference-batch must be >= 1, got "
                          f"{args.reference_batch}")
    if not math.isfinite(args.reference_lr) or args.reference_lr <= 0:
        raise ConfigError(f"tune-batch: --reference-lr must be a finite number > 0, got "
                          f"{args.reference_lr}")
    sc = Scenario.from_dict({
        "workload": args.workload, "batch": 1, "hardware": args.hardware,
        "policy": policies[0], "devices": args.devices,
        "link": args.link if args.link is not None else ("pcie3" if args.devices > 1
                                                          else None), "host": args.host,
        "precision": args.precision or "fp32", "memory_format": args.memory_format,
        "workload_options": parse_pairs(args.workload_option, "--workload-option"),
        "hardware_options": ({"memory_bytes": int(args.memory_gib * 2 ** 30)}
                             if args.memory_gib else {})}, source="tune-batch")
    cluster = sc.build_cluster()
    results = tuner.tune(args.workload, cluster, policies, min_batch=args.min_batch,
                         max_batch=args.max_batch, reference_lr=args.reference_lr,
                         reference_batch=args.reference_batch, refine=not args.no_refine,
                         workload_options=sc.workload_options, precision=args.precision,
                         memory_format=args.memory_format)
    if args.plot:
        title = f"{args.workload} on {args.devices} x {args.hardware}"
        write_atomically(args.plot, lambda tmp: tuner.plot(results, tmp, title=title))
    if args.json:
        print(json.dumps([{"policy": t.policy, "largest_trainable": t.largest_trainable,
                           "reached_memory_limit": t.reached_memory_limit,
                           "best_batch": t.best.batch if t.best else None,
                           "points": [p.__dict__ for p in t.points]} for t in results],
                         indent=2, sort_keys=True))
    else:
        print(tuner.table(results))
    return 0
