"""All-reduce time and bus bandwidth on DGX A100 and DGX H100 clusters, beside the physical
bound and NCCL's own tuning prediction; and data-parallel scaling efficiency of ResNet-50 and
GPT-2 on the same clusters.

    python benchmarks/allreduce_table.py [--node-types dgx-a100,dgx-h100]
                                         [--nodes 1,2,8,32,128] [--sizes 1e3,...,1e9]
    python benchmarks/allreduce_table.py --scaling [--gpus 8,32,128,1024]
                                         [--workloads resnet50,gpt2] [--collectives flow]

Each all-reduce runs alone, link by link, as NCCL runs it (algorithm 'nccl': the ring or
tree and the protocol NCCL 2.8's tuning picks for the size; simulator/nccl_tuning.py) after
NCCL's launch. Bus bandwidth is nccl-tests': size x 2(n-1)/n over the time. The bound is
what the wires allow a ring or NCCL's trees: inside one node each GPU's NVLink bandwidth;
across nodes the node's NICs together (one ring or tree channel per NIC; each node sends and
receives 2(n-1)/n of the buffer over them), or the NVLink port that 7 of a node's 8 rings
cross, 8/7 of its bandwidth, where that is less. `tuned` is NCCL's predicted time for the
chosen pair (latency + size / bandwidth). A row is flagged where the bus bandwidth exceeds
the bound or the time falls below a smaller size's.

--scaling prints the efficiency (throughput at N over N times one GPU's) of data-parallel
training, DDP's buckets on 'nccl', synthetic data, ranks alike: ResNet-50 (FP32, 64 images a
GPU) and GPT-2 small (AMP FP16, 8 sequences of 1,024 tokens a GPU); docs/nccl_page.py writes
both tables into docs/nccl.md.
"""
from __future__ import annotations

import argparse

from simulator import Cluster, engine, nccl_fabric, nccl_tuning, simulate
from simulator.collectives import NCCL_BASE_LATENCY_S, collective
from simulator.tasks import TaskGraph

NODE_TYPES = ("dgx-a100", "dgx-h100")
NODES = (1, 2, 8, 32, 128)
SIZES = (1e3, 32e3, 1e6, 32e6, 1e9)
GPUS = (8, 32, 128, 1024)
WORKLOADS = {"resnet50": (64, "fp32"), "gpt2": (8, "amp-fp16")}


def allreduce_row(node_type: str, nodes: int, nbytes: float) -> dict:
    cluster = Cluster.from_node_type(node_type, 8 * nodes)
    ids = [d.id for d in cluster.devices]
    fabric = nccl_fabric.fabric_of(cluster, ids)
    choice = nccl_tuning.choose(fabric, nbytes)
    tg = TaskGraph()
    # a ring by symmetry class (the same times as in full); a tree link by link, in full (by
    # class it would be NCCL's predicted time, the `tuned` column)
    collective("allreduce", tg, cluster, ids, nbytes, {}, "ar", algorithm="nccl",
               symmetric=choice.algorithm == "ring", launch_latency_s=NCCL_BASE_LATENCY_S)
    log = engine.run(tg, cluster.resources)
    if not log.ok:
        raise RuntimeError(f"{node_type} x {nodes}: the all-reduce did not finish")
    n = len(ids)
    busbw = nbytes * 2 * (n - 1) / n / log.makespan_s
    return {"node_type": node_type, "nodes": nodes, "gpus": n, "bytes": nbytes,
            "time_s": log.makespan_s, "busbw_Bps": busbw, "bound_Bps": bound_Bps(cluster),
            "algorithm": choice.algorithm, "protocol": choice.protocol,
            "tuned_s": choice.time_s(nbytes), "tasks": len(tg)}


def bound_Bps(cluster: Cluster) -> float:
    """The bus bandwidth the wires allow (module notes)."""
    nvlink = cluster.link.bandwidth_Bps
    if cluster.nodes == 1:
        return nvlink
    nics = cluster.layout.nic_count()
    nic = cluster.inter_node_link.bandwidth_Bps if cluster.inter_node_link else float("inf")
    per_node = len(cluster.node_members()[0])
    return min(nics * nic, nvlink * per_node / (per_node - 1))


def flags(rows: list[dict]) -> dict[int, str]:
    """Row index -> what is implausible about it."""
    out: dict[int, str] = {}
    for i, r in enumerate(rows):
        why = []
        if r["busbw_Bps"] > r["bound_Bps"] * 1.001:
            why.append("above the bound")
        if any(q["time_s"] > r["time_s"] for q in rows[:i] if q["bytes"] < r["bytes"]
               and (q["node_type"], q["nodes"]) == (r["node_type"], r["nodes"])):
            why.append("faster than a smaller size")
        if why:
            out[i] = ", ".join(why)
    return out


def print_table(node_types, nodes_list, sizes) -> None:
    print("all-reduce alone, link by link, algorithm 'nccl' (NCCL 2.8's tuning), NCCL's "
          "launch; busbw = size x 2(n-1)/n / time")
    print(f"{'node type':9s} {'nodes':>5s} {'GPUs':>5s} {'size':>6s} {'time us':>10s} "
          f"{'tuned us':>9s} {'busbw GB/s':>10s} {'bound':>6s} {'% bound':>7s}  pair")
    rows = [allreduce_row(t, n, s) for t in node_types for n in nodes_list for s in sizes]
    notes = flags(rows)
    for i, r in enumerate(rows):
        print(f"{r['node_type']:9s} {r['nodes']:5d} {r['gpus']:5d} {_size(r['bytes']):>6s} "
              f"{1e6 * r['time_s']:10.1f} {1e6 * r['tuned_s']:9.1f} "
              f"{r['busbw_Bps'] / 1e9:10.2f} {r['bound_Bps'] / 1e9:6.0f} "
              f"{100 * r['busbw_Bps'] / r['bound_Bps']:6.1f}%  "
              f"{r['algorithm']}/{r['protocol']}" + (f"  FLAG: {notes[i]}" if i in notes
                                                     else ""))


def _size(nbytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:g}{unit}"
    return f"{nbytes:g}B"


def print_scaling(node_types, gpus_list, workloads=tuple(WORKLOADS), collectives="link"
                  ) -> None:
    print("data-parallel scaling efficiency (throughput at N / N x one GPU's), DDP's buckets "
          f"on 'nccl', collectives {collectives}, synthetic data, ranks alike")
    print(f"{'node type':9s} {'workload':9s} " + " ".join(f"{g:>6d}" for g in gpus_list))
    for node_type in node_types:
        for workload in workloads:
            effs = efficiencies(node_type, workload, gpus_list, collectives)
            print(f"{node_type:9s} {workload:9s} " + " ".join(f"{100 * e:5.1f}%" for e in effs),
                  flush=True)


def efficiencies(node_type: str, workload: str, gpus_list, collectives: str) -> list[float]:
    """Throughput at each GPU count over that many times one GPU's."""
    batch, precision = WORKLOADS[workload]
    one = _throughput(node_type, 1, workload, batch, precision, collectives)
    return [_throughput(node_type, g, workload, batch, precision, collectives) / (g * one)
            for g in gpus_list]


def _throughput(node_type: str, gpus: int, workload: str, batch: int, precision: str,
                collectives: str) -> float:
    cluster = Cluster.from_node_type(node_type, gpus)
    return simulate(workload, cluster, "data-parallel", batch=batch, precision=precision,
                    algorithm="nccl", collectives=collectives).throughput_samples_per_s


def _numbers(text: str, kind=float) -> list:
    return [kind(float(x)) for x in text.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node-types", default=",".join(NODE_TYPES))
    ap.add_argument("--nodes", default=",".join(map(str, NODES)))
    ap.add_argument("--sizes", default=",".join(f"{s:g}" for s in SIZES), help="bytes")
    ap.add_argument("--scaling", action="store_true",
                    help="data-parallel scaling efficiency instead of the all-reduce table")
    ap.add_argument("--gpus", default=",".join(map(str, GPUS)),
                    help="with --scaling, GPU counts (multiples of 8)")
    ap.add_argument("--collectives", choices=("link", "flow"), default="link",
                    help="with --scaling, the all-reduces link by link or one task each at "
                         "NCCL's predicted or closed-form time (GPT-2 on 1,024 GPUs link by "
                         "link, its trees built in full, needs more than 13 GB)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"with --scaling, some of {', '.join(WORKLOADS)}")
    args = ap.parse_args()
    node_types = [t for t in args.node_types.split(",") if t]
    try:
        nodes, sizes, gpus = (_numbers(args.nodes, int), _numbers(args.sizes),
                              _numbers(args.gpus, int))
    except ValueError as exc:
        ap.error(f"--nodes, --sizes and --gpus take comma-separated numbers: {exc}")
    if any(n < 1 for n in nodes) or any(s <= 0 for s in sizes) or any(g < 8 or g % 8
                                                                      for g in gpus):
        ap.error("--nodes must be >= 1, --sizes > 0, --gpus multiples of 8")
    workloads = [w for w in args.workloads.split(",") if w]
    if not set(workloads) <= set(WORKLOADS):
        ap.error(f"--workloads takes some of {', '.join(WORKLOADS)}, got {args.workloads}")
    if args.scaling:
        print_scaling(node_types, gpus, workloads, args.collectives)
    else:
        print_table(node_types, nodes, sizes)


if __name__ == "__main__":
    main()
