"""`dnnsim hardware [NAME]`: the parts catalog (GPUs, CPUs, ARM boards, links, host memory),
the node types (GPU servers as built) and the topologies, with their key figures; one part in
full, with its source."""
from __future__ import annotations

import argparse
import dataclasses
import json

from hwmodels import catalog
from hwmodels.specs import DeviceSpec, HostSpec, LinkSpec
from workloads.errors import did_you_mean

from ..cli import CommandLineError
from ..cluster import TOPOLOGIES
from ..node_types import node_types
from .workloads import format_table

NAME = "hardware"
HELP = ("List the hardware catalog (devices, links, hosts, node types, topologies), or show "
        "one part.")
KINDS = ("gpu", "cpu", "arm", "link", "host", "node", "topology")
GIB = 2 ** 30
TOPOLOGY_TEXT = {
    "switch": "every device on one non-blocking switch; each has its own link in and out",
    "ring": "each device linked to its two neighbours; transfers hop along the ring",
    "fully-connected": "one link between every pair of devices",
    "pcie": "GPUs on PCIe switches with no peer links: traffic between them crosses the "
            "switches and their uplinks",
    "dgx1-cube-mesh": "DGX-1 (V100): 8 GPUs, 6 NVLinks each, hybrid cube-mesh (nvlink2-link)",
    "nvswitch": "DGX-2: up to 16 GPUs, 6 NVLinks each into a non-blocking NVSwitch fabric",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="one part (or topology) to show in full")
    parser.add_argument("--kind", choices=KINDS, help="list only this kind of part")
    parser.add_argument("--json", action="store_true", help="print as JSON (SI units)")


def device_row(d: DeviceSpec) -> dict:
    """A device's key figures in SI units."""
    row = {"name": d.name, "kind": d.kind, "peak_fp32_flops": d.peak_flops,
           "memory_bytes": d.memory_bytes, "mem_bandwidth_Bps": d.mem_bandwidth_Bps,
           "precisions": list(d.peak_flops_by_precision)}
    if d.kind == "gpu":
        row.update(architecture=d.architecture, sm_count=d.sm_count, host_link=d.host_link)
    else:
        row.update(cores=d.cores, clock_hz=d.clock_hz, vector_lanes_fp32=d.vector_lanes_fp32,
                   fma_units_per_core=d.fma_units_per_core, l3_bytes=d.l3_bytes)
    return row


def link_row(x: LinkSpec) -> dict:
    return {"name": x.name, "kind": "link", "bandwidth_Bps": x.bandwidth_Bps,
            "latency_s": x.latency_s, "duplex": x.duplex, "shared_medium": x.shared_medium}


def host_row(h: HostSpec) -> dict:
    return {"name": h.name, "kind": "host", "memory_bytes": h.memory_bytes,
            "mem_bandwidth_Bps": h.mem_bandwidth_Bps}


def node_row(n) -> dict:
    return {"name": n.name, "kind": "node", "gpu": n.gpu, "gpus": n.gpus,
            "topology": n.topology, "link": n.link, "nic_link": n.nic_link, "nics": len(n.nics),
            "host_link": n.host_link}


def catalog_rows(kind: str | None = None) -> list[dict]:
    """Every part (and topology) of `kind` (None: all), sorted by kind then name."""
    cat = catalog.builtin()
    rows = []
    for k in KINDS:
        if kind not in (None, k):
            continue
        if k in ("gpu", "cpu", "arm"):
            rows += [device_row(cat.device(n)) for n in cat.names(k)]
        elif k == "link":
            rows += [link_row(cat.link(n)) for n in cat.names("link")]
        elif k == "host":
            rows += [host_row(cat.host(n)) for n in cat.names("host")]
        elif k == "node":
            rows += [node_row(n) for _, n in sorted(node_types().items())]
        else:
            rows += [{"name": t, "kind": "topology", "description": TOPOLOGY_TEXT.get(t, "")}
                     for t in TOPOLOGIES]
    return rows


def part(name: str) -> dict:
    """Every field of one part or topology, its source included."""
    cat = catalog.builtin()
    for table in (cat.devices, cat.links, cat.hosts):
        if name in table:
            spec = table[name]
            kind = getattr(spec, "kind", "link" if isinstance(spec, LinkSpec) else "host")
            return {"kind": kind, **dataclasses.asdict(spec)}
    nodes = node_types()
    if name in nodes:
        return {"kind": "node", **dataclasses.asdict(nodes[name])}
    if name in TOPOLOGIES:
        return {"name": name, "kind": "topology", "description": TOPOLOGY_TEXT.get(name, "")}
    known = sorted([*cat.devices, *cat.links, *cat.hosts, *nodes, *TOPOLOGIES])
    raise CommandLineError(f"no part or topology named {name!r} in the catalog"
                           f"{did_you_mean(name, known)}; known: "
                           f"{', '.join(known)}")


def _g(x: float | None, scale: float, fmt: str = ".1f") -> str:
    return "" if x is None else format(x / scale, fmt)


def tables(rows: list[dict]) -> list[str]:
    """The listing, one aligned table per kind."""
    out: list[str] = []
    for kind in KINDS:
        part_rows = [r for r in rows if r["kind"] == kind]
        if not part_rows:
            continue
        if kind == "gpu":
            header = ["gpu", "architecture", "SMs", "FP32 TFLOP/s", "memory GiB",
                      "memory GB/s", "precisions"]
            body = [[r["name"], r["architecture"] or "", r["sm_count"] or "",
                     _g(r["peak_fp32_flops"], 1e12), _g(r["memory_bytes"], GIB),
                     _g(r["mem_bandwidth_Bps"], 1e9, ".0f"), " ".join(r["precisions"])]
                    for r in part_rows]
            right = {2, 3, 4, 5}
        elif kind in ("cpu", "arm"):
            header = [kind, "cores", "GHz", "fp32 lanes", "FMA/core", "FP32 GFLOP/s",
                      "L3 MiB", "memory GiB", "memory GB/s"]
            body = [[r["name"], r["cores"], _g(r["clock_hz"], 1e9, ".2f"),
                     r["vector_lanes_fp32"], r["fma_units_per_core"],
                     _g(r["peak_fp32_flops"], 1e9, ".0f"), _g(r["l3_bytes"], 2 ** 20, ".1f"),
                     _g(r["memory_bytes"], GIB), _g(r["mem_bandwidth_Bps"], 1e9)]
                    for r in part_rows]
            right = set(range(1, 9))
        elif kind == "link":
            header = ["link", "GB/s per direction", "latency us", "duplex", "shared medium"]
            body = [[r["name"], _g(r["bandwidth_Bps"], 1e9, ".3g"),
                     _g(r["latency_s"], 1e-6, ".4g"), "yes" if r["duplex"] else "no",
                     "yes" if r["shared_medium"] else "no"] for r in part_rows]
            right = {1, 2}
        elif kind == "host":
            header = ["host", "memory GiB", "memory GB/s"]
            body = [[r["name"], _g(r["memory_bytes"], GIB, ".0f"),
                     _g(r["mem_bandwidth_Bps"], 1e9)] for r in part_rows]
            right = {1, 2}
        elif kind == "node":
            header = ["node", "GPUs", "topology", "link", "NICs", "NIC link", "host link"]
            body = [[r["name"], f"{r['gpus']} x {r['gpu']}", r["topology"], r["link"],
                     r["nics"], r["nic_link"], r["host_link"]] for r in part_rows]
            right = {4}
        else:
            header = ["topology", "wiring"]
            body = [[r["name"], r["description"]] for r in part_rows]
            right = set()
        out += format_table(header, [[str(c) for c in b] for b in body], right) + [""]
    return out[:-1]


def run(args: argparse.Namespace) -> int:
    if args.name is not None:
        doc = part(args.name)
        if args.kind and doc["kind"] != args.kind:
            raise CommandLineError(f"{args.name!r} is a {doc['kind']}, not a {args.kind}")
        if args.json:
            print(json.dumps(doc, indent=2, sort_keys=True))
        else:
            width = max(len(k) for k in doc)
            print("\n".join(f"{k:<{width}}  {v}" for k, v in doc.items()
                            if v not in (None, {}, [])))
        return 0
    rows = catalog_rows(args.kind)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        print("\n".join(tables(rows)))
        print("`dnnsim hardware NAME` shows one part in full, with its source")
    return 0
