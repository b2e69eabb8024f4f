"""`dnnsim simulate`: one scenario, from flags or a TOML file."""
from __future__ import annotations

import difflib
import json
import re
import warnings

from .. import limits, policies
from ..outputs import check_output, check_plot_output, write_atomically
from ..policies import ConfigError
from ..scenario import REQUIRED, Scenario, read_toml
from ..scenario_paths import resolve_scenario_paths
from ..workers import single_threaded_numerics
from . import input_files, refuse_inputs_as_outputs

NAME = "simulate"
HELP = "Simulate one training step or inference of a workload on a cluster with a policy."
ALLOW_EXTRA = True  # unknown --name value pairs become the policy's options
EPILOG = ("Exit status: 0 the step ran; 2 bad input (one error line naming it); 3 the step ran "
          "out of device memory (the output names the task and the memory in use). Any other "
          "--NAME VALUE is an option of the policy (dnnsim policies NAME).")


def add_arguments(p) -> None:
    p.add_argument("scenario", nargs="?", help="a scenario TOML file (flags below override it)")
    p.add_argument("--workload", help="zoo network name (dnnsim workloads), or a PyTorch module "
                   "of yours as path/to/net.py:factory (with --workload-option input_shape=CxHxW, "
                   "one shape per input joined by '+' for forward(x, t, ...))")
    p.add_argument("--batch", type=int, help="minibatch per device")
    p.add_argument("--hardware", help="catalog device name, or a calibrated profile .toml")
    p.add_argument("--gpu-families", metavar="FILE.toml",
                   help="GPU architectures' constants of your own, written by dnnsim calibrate "
                   "--published, in place of the catalog's (docs/calibrate-gpu.md)")
    p.add_argument("--devices", type=int, help="number of devices")
    p.add_argument("--link", help="catalog link between devices")
    p.add_argument("--topology", help="switch | ring | fully-connected | pcie | "
                                      "dgx1-cube-mesh | nvswitch (default switch)")
    p.add_argument("--devices-per-node", type=int,
                   help="devices in one node, for a cluster of several nodes (default: all "
                        "in one)")
    p.add_argument("--inter-node-link", help="catalog link between nodes, e.g. ib400 (needed "
                                             "with --devices-per-node below --devices)")
    p.add_argument("--host-link", help="catalog link between a device and its host "
                                       "(default: the device's own, e.g. pcie5 for h100)")
    p.add_argument("--node-type", help="a catalog node type (dgx1-v100, dgx2, dgx-a100, dgx-h100, "
                   "pcie-8gpu-v100, cloud-v100-25gbe, cloud-v100-100gbe): its fabric, NICs and "
                   "PCIe switches, instead of --link, --topology and the node flags; "
                   "--hardware names its GPUs (the node's own, or another GPU in their place)")
    p.add_argument("--network", help="between nodes: fat-tree (default) | rail-optimised")
    p.add_argument("--oversubscription", type=float,
                   help="a fat-tree leaf's (or a rail's) down over up bandwidth, >= 1")
    p.add_argument("--nodes-per-leaf", type=int, help="nodes under one fat-tree leaf switch")
    p.add_argument("--speed", action="append", default=[], metavar="DEVICE=SPEED",
                   help="a device's compute speed, e.g. gpu3=0.8 (1: as modelled)")
    p.add_argument("--jitter", metavar="DIST:SPREAD",
                   help="per-op time factors: lognormal | uniform | exponential with a "
                        "spread, e.g. lognormal:0.05")
    p.add_argument("--seed", type=int, help="the jitter's seed (default 0); a policy's own "
                   "seed option (sparse-train's) is -o seed=N")
    p.add_argument("--policy", help="policy name (dnnsim policies)")
    p.add_argument("--inference", action="store_true", help="inference instead of training")
    p.add_argument("--precision", help="fp32 (default) | tf32 | fp16 | bf16 | amp-fp16 | "
                                       "amp-bf16")
    p.add_argument("--memory-format", help="nchw | nhwc (channels_last): restamp every op's "
                   "activation layout, "
                   "which decides cuDNN's transposes and algorithms (default: the workload's "
                   "own, nchw for zoo networks, as the importer found it for a model of yours)")
    p.add_argument("--cudnn-benchmark", action="store_true", default=None,
                   help="run PyTorch's cuDNN algorithm search first, as cudnn.benchmark does: "
                        "its workspaces stay cached, so reserved memory grows")
    p.add_argument("--framework-memory", metavar="NAME",
                   help="what the framework keeps allocated: pytorch (default) | cudnn | "
                        "caffe | torch7 | torch7:share-grad-input (docs/gpu-memory.md)")
    p.add_argument("--optimizer", help="sgd | sgd-momentum (default) | adam | adamw: the state it "
                   "keeps in memory and the traffic of its step")
    p.add_argument("--optimizer-loop", action="store_true", default=None,
                   help="torch.optim steps tensor by tensor (foreach=False, PyTorch 1.x's "
                        "default), not in its multi-tensor calls")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a policy option (also accepted as --key value)")
    p.add_argument("--workload-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a network option, e.g. seq_len=512, or input_shape=3x32x32 for a "
                        "model of yours (dnnsim workloads lists each network's); repeatable")
    p.add_argument("--hardware-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a device spec field, e.g. memory_bytes=8e9")
    p.add_argument("--no-enforce-memory", action="store_true",
                   help="track memory without stopping at the capacity")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--trace", help="write a Chrome trace (Perfetto) here")
    p.add_argument("--plot", help="write a timeline PNG here")
    p.add_argument("--memory-plot", help="write a memory-over-time PNG here")
    p.add_argument("--csv", help="write one row per task here")
    p.add_argument("--max-memory", metavar="SIZE", help="stop with an error, not the kernel's "
                   "OOM killer, past this much memory (e.g. 4G)")
    p.add_argument("--efficiency", action="store_true",
                   help="also simulate one device with the sequential policy and print the "
                        "speedup over it and the scaling efficiency (speedup / devices)")


def parse_pairs(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {item!r} must be KEY=VALUE")
        out[key.replace("-", "_")] = _scalar(value)
    return out


def parse_extra(extra: list[str]) -> dict:
    out, i = {}, 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--") or len(tok) < 3:
            raise ConfigError(f"unexpected argument {tok!r}")
        key, sep, value = tok[2:].partition("=")
        if not sep:
            if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
                raise ConfigError(f"{tok} is not a flag of dnnsim simulate, and as an option "
                                  f"of the policy {tok} needs a value (see dnnsim simulate "
                                  "--help, dnnsim policies)")
            value = extra[i + 1]
            i += 1
        out[key.replace("-", "_")] = _scalar(value)
        i += 1
    return out


# numbers as TOML writes them: no leading zeros, underscores, nan or inf (those stay text:
# '0123' is a name, not 123)
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _scalar(text: str):
    """Numbers as numbers, everything else as text (policies convert further)."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def scenario_from_args(args) -> Scenario:
    data: dict = {}
    if args.scenario:   # read as written, so flags may give the fields the file leaves out
        # its relative paths from its folder; the flags' stay relative to the current one
        data = resolve_scenario_paths(read_toml(args.scenario, "scenario file"),
                                      args.scenario, args.scenario)
    flags = {"workload": args.workload, "batch": args.batch, "hardware": args.hardware,
             "devices": args.devices, "link": args.link, "topology": args.topology,
             "devices_per_node": args.devices_per_node, "inter_node_link": args.inter_node_link,
             "host_link": args.host_link, "policy": args.policy, "precision": args.precision,
             "cudnn_benchmark": args.cudnn_benchmark, "memory_format": args.memory_format,
             "framework_memory": args.framework_memory, "optimizer": args.optimizer,
             "optimizer_loop": args.optimizer_loop, "node_type": args.node_type,
             "network": args.network,
             "oversubscription": args.oversubscription, "nodes_per_leaf": args.nodes_per_leaf,
             "jitter": args.jitter, "seed": args.seed, "gpu_families": args.gpu_families}
    data.update({k: v for k, v in flags.items() if v is not None})
    if not args.scenario:
        data.setdefault("policy", "sequential")
    policy_flags = parse_extra(getattr(args, "_extra", []))
    # a misspelt field ('wrokload') is named by the scenario's check, with the field meant
    misspelt = set(data) - set(Scenario.__dataclass_fields__)
    missing = [] if misspelt else [k for k in REQUIRED if k not in data]
    flags_text = ", ".join(f"--{k}" for k in missing)
    if missing:   # an unknown flag first: `simulate --nope` names --nope
        refuse_flag_typos(policy_flags, data.get("policy"), args._parser.declared_options,
                          typos_only=False)
    if missing and args.scenario:   # all at once, as fields of the file and as flags
        raise ConfigError(f"{args.scenario}: missing field(s) {', '.join(map(repr, missing))}: "
                          f"give them in the file or as {flags_text}")
    if missing:
        raise ConfigError(f"give {flags_text} (or a scenario file); e.g. --workload resnet50 "
                          "--batch 32 --hardware h100 (see dnnsim simulate --help)")
    if args.inference:
        data["inference"] = True
    for key, items, what in (("options", args.option, "--option"),
                             ("workload_options", args.workload_option, "--workload-option"),
                             ("hardware_options", args.hardware_option, "--hardware-option"),
                             ("speeds", args.speed, "--speed")):
        extra = parse_pairs(items, what)
        if extra:
            data[key] = _merged(data.get(key, {}), extra)
    if policy_flags:
        refuse_flag_typos(policy_flags, data.get("policy"), args._parser.declared_options)
        data["options"] = _merged(data.get("options", {}), policy_flags)
    return Scenario.from_dict(data, source=args.scenario or "command line")


def _merged(table: object, flags: dict) -> object:
    """A file's table with the flags' pairs over it; a file's value that is not a table stays,
    for the scenario's check to name."""
    return {**table, **flags} if isinstance(table, dict) else table


def refuse_flag_typos(extra: dict, policy: object, declared: set[str],
                      typos_only: bool = True) -> None:
    """A `--key value` that is no option of the policy but close to one of simulate's own
    flags (--precison) is a typo: name the flag, rather than the policy's option list. With
    typos_only=False (the scenario's fields are missing, so its check will not name them)
    any option the policy does not take is named, with the policy's options."""
    if not isinstance(policy, str) or policy not in policies.names():
        return   # the scenario names the missing or unknown policy
    options = policies.get(policy).options
    for key in extra:
        flag = "--" + key.replace("_", "-")
        close = difflib.get_close_matches(flag, sorted(declared), n=1, cutoff=0.8)
        if key in options or (typos_only and not close):
            continue
        hint = (f"did you mean {close[0]}?" if close else
                f"its options: {', '.join(sorted(options)) or 'none'}")
        raise ConfigError(f"{flag} is not a flag of simulate, and policy {policy!r} has no "
                          f"option {key!r}: {hint} (see dnnsim simulate --help, dnnsim "
                          "policies)")


OUTPUT_FLAGS = (("trace", "--trace"), ("csv", "--csv"), ("plot", "--plot"),
                ("memory_plot", "--memory-plot"))


def run(args) -> int:
    single_threaded_numerics()
    limits.apply_max_memory(args.max_memory)
    sc = scenario_from_args(args)
    for attr, flag in OUTPUT_FLAGS:   # refused before the run, not after it
        if getattr(args, attr):
            check = check_plot_output if attr in ("plot", "memory_plot") else check_output
            check(getattr(args, attr), flag)
    read = input_files([args.scenario, sc.workload, sc.hardware, sc.gpu_families,
                        *sc.options.values(),
                        *sc.workload_options.values(), *sc.hardware_options.values()])
    refuse_inputs_as_outputs([(flag, getattr(args, attr)) for attr, flag in OUTPUT_FLAGS], read)
    for note in without_effect(sc, args):
        warnings.warn(note, stacklevel=1)
    result = sc.run(enforce_memory=not args.no_enforce_memory)
    for note in idle_devices(sc, result):
        warnings.warn(note, stacklevel=1)
    summary = result.summary()
    if summary["status"] == "error":
        raise ConfigError(f"{args.scenario or 'command line'}: {summary['error']}")
    if args.trace:
        write_atomically(args.trace, result.to_chrome_trace)
    if args.csv:
        write_atomically(args.csv, result.to_csv)
    if args.plot:
        from ..trace import plot_timeline
        write_atomically(args.plot, lambda tmp: plot_timeline(result, tmp))
    if args.memory_plot:
        from ..trace import plot_memory
        write_atomically(args.memory_plot, lambda tmp: plot_memory(result, tmp))
    if args.json:
        doc = json.loads(result.to_json())
        doc["scenario"] = sc.to_dict()
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        base = baseline_run(sc, not args.no_enforce_memory) if args.efficiency else None
        print_summary(result, base, sc)
    return 0 if result.ok else 3


def without_effect(sc: Scenario, args) -> list[str]:
    """Settings this scenario gives that change nothing, each named on stderr, so a user does
    not take a run for the one they meant: a seed with no jitter to draw, a network between
    nodes of a one-node cluster, speedup and efficiency of one device."""
    notes = []
    if args.seed is not None and not sc.jitter:
        notes.append("--seed has no effect without --jitter (it seeds the jitter's draws)")
    if sc.inference and sc.optimizer is not None:
        notes.append(f"optimizer {sc.optimizer!r} has no effect with --inference (nothing is "
                     "updated)")
    per_node = sc.devices_per_node or sc.devices
    if sc.node_type is None and sc.devices <= per_node:
        given = [f"--{k.replace('_', '-')}" for k in
                 ("inter_node_link", "network", "oversubscription", "nodes_per_leaf")
                 if getattr(sc, k) is not None]
        if given:
            notes.append(f"{', '.join(given)}: the {sc.devices} device(s) are one node, so "
                         "nothing runs between nodes (--devices-per-node makes several)")
    if args.efficiency and sc.devices == 1:
        notes.append("--efficiency compares with one device; this run has one")
    return notes


def idle_devices(sc: Scenario, result) -> list[str]:
    """A cluster of several devices on which the policy ran the whole step on one device's
    compute stream and nothing else (sequential, none): the figures are one device's, which a
    user forgetting --policy would take for the cluster's. A policy that simulates one replica
    for all (replicas one or classes) still moves bytes over links, and is not named."""
    held = {r for t in result.log.tasks for r in t.resources}
    if sc.devices < 2 or len(held) != 1 or not next(iter(held)).endswith(".compute") \
            or not result.ok:
        return []
    device = next(iter(held)).removesuffix(".compute")
    return [f"policy {sc.policy!r} ran the step on one device, {device}; the other "
            f"{sc.devices - 1} of the {sc.devices} stayed idle (data-parallel, fsdp, "
            "tensor-parallel and others use them: dnnsim policies)"]


def print_summary(result, baseline=None, sc: Scenario | None = None) -> None:
    """The figures for people (docs/metrics.md defines each); --json has the exact values.
    The first line names the scenario's precision, memory format and optimizer where they are
    not the defaults (runs of one network in fp32 and in AMP differ nowhere else in what is
    printed), and the algorithm the collectives ran where the policy names one (data
    parallelism's all-reduces: 'all-reduce', another policy's: 'collectives')."""
    from ..report import summary_lines
    lines = summary_lines(result, baseline)
    settings = [sc.precision if sc.precision != "fp32" else None,
                sc.memory_format, sc.optimizer] if sc is not None else []
    algorithm = result.extras.get("allreduce_algorithm")
    settings.append(f"all-reduce {algorithm}" if algorithm else None)
    collectives = result.extras.get("collective_algorithm")
    settings.append(f"collectives {collectives}" if collectives else None)
    lines[0] += "".join(f", {setting}" for setting in settings if setting)
    print("\n".join(lines))


def baseline_run(sc: Scenario, enforce_memory: bool):
    """The same workload on one device of the same kind, with the sequential policy."""
    one = Scenario.from_dict({**sc.to_dict(), "devices": 1, "policy": "sequential",
                              "options": {}, "devices_per_node": None,
                              "inter_node_link": None}, source="--efficiency baseline")
    return one.run(enforce_memory=enforce_memory)
