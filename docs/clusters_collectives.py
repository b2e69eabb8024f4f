"""The figures docs/clusters.md and docs/data-parallel-scaling.md quote of collectives run
alone, of the node types and of the engine's graphs, each measured here
(docs/clusters_page.py writes them into the pages).

Every function returns {placeholder: text}; a collective runs alone on the engine as
benchmarks/allreduce_table.py runs it, after NCCL's launch.
"""
from __future__ import annotations

import math
from unittest import mock

from simulator import Cluster, engine, nccl_fabric, nccl_tuning, policies, simulate
from simulator import collective_trees as trees
from simulator.collectives import NCCL_BASE_LATENCY_S, collective
from simulator.node_types import node_types
from simulator.tasks import TaskGraph
from workloads import zoo

MIB = 2**20


def ms(seconds: float, digits: int = 2) -> str:
    return f"{seconds * 1e3:.{digits}f}"


def us(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1e6:.{digits}f}"


def pct(fraction: float, digits: int = 0) -> str:
    return f"{fraction * 100:.{digits}f}"


def span(values, fmt) -> str:
    """'a' or 'a-b' for the least and greatest of `values`, as `fmt` writes them."""
    lo, hi = fmt(min(values)), fmt(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def _shared(groups, part: str) -> str:
    """'4 x part, 2 GPUs each': how many, and how many GPUs share one."""
    sizes = sorted({len(g) for g in groups})
    each = "one per GPU" if sizes == [1] else \
        f"{sizes[0]} GPUs each" if len(sizes) == 1 else "GPUs " + " or ".join(map(str, sizes))
    return f"{len(groups)}{part}, {each}"


def node_table() -> dict[str, str]:
    """The node types of the catalog, as `dnnsim hardware` reads them."""
    rows = ["| node type | GPUs | fabric inside (topology, link) | NICs | PCIe switches |",
            "|---|---|---|---|---|"]
    for name, node in sorted(node_types().items()):
        rows.append(f"| `{name}` | {node.gpus} x `{node.gpu}` | `{node.topology}`, "
                    f"`{node.link}` | {_shared(node.nics, f' x `{node.nic_link}`')} "
                    f"| {_shared(node.pcie_switches, '')} |")
    return {"node_table": "\n".join(rows)}


def alone(node_type: str, gpus: int, nbytes: float, algorithm: str = "nccl",
          kind: str = "allreduce", fidelity: str = "link", in_full: bool | None = None):
    """(seconds, tasks, run log) of one collective alone; a ring by symmetry class, a tree
    in full (by class it would be NCCL's predicted time)."""
    cluster = Cluster.from_node_type(node_type, gpus)
    ids = [d.id for d in cluster.devices]
    if in_full is None:
        in_full = algorithm == "tree" or (algorithm == "nccl" and kind == "allreduce"
                                          and tuned(node_type, gpus, nbytes).algorithm == "tree")
    tg = TaskGraph()
    collective(kind, tg, cluster, ids, nbytes, {}, "c", fidelity=fidelity, algorithm=algorithm,
               symmetric=not in_full, launch_latency_s=NCCL_BASE_LATENCY_S)
    log = engine.run(tg, cluster.resources)
    if not log.ok:
        raise RuntimeError(f"{kind} of {nbytes} B over {gpus} {node_type} GPUs did not finish")
    return log.makespan_s, len(tg), log


def tuned(node_type: str, gpus: int, nbytes: float,
          algorithms: tuple[str, ...] = nccl_tuning.ALGORITHMS) -> nccl_tuning.Choice:
    cluster = Cluster.from_node_type(node_type, gpus)
    fabric = nccl_fabric.fabric_of(cluster, [d.id for d in cluster.devices])
    return nccl_tuning.choose(fabric, nbytes, algorithms)


def tuned_s(node_type: str, gpus: int, nbytes: float, algorithm: str = "nccl") -> float:
    """NCCL's predicted time for the pair it picks (only the tree's pairs for 'tree')."""
    choice = tuned(node_type, gpus, nbytes, ("tree",) if algorithm == "tree"
                   else nccl_tuning.ALGORITHMS)
    return choice.time_s(nbytes)


def nccl_chunks():
    """Trees in NCCL's own chunks, however many (the model caps them at TREE_MAX_CHUNKS)."""
    capped = trees.chunk_sizes
    return mock.patch.object(trees, "chunk_sizes",
                             lambda share, chunk, max_chunks=0: capped(share, chunk, 10**9))


def collectives_at_scale() -> dict[str, str]:
    """Section 'Collectives on thousands of GPUs'."""
    f: dict[str, str] = {}
    small = 64 * 1024
    f["small_tree_ms"] = ms(alone("dgx1-v100", 512, small)[0])
    f["last_bucket_ms"] = ms(alone("dgx1-v100", 8, 25 * MIB)[0], 1)
    f["small_ring_ms"] = ms(alone("dgx1-v100", 512, small, "ring")[0], 1)
    nodes = 32
    f["hd_nodes"], f["hd_saved"] = str(nodes), str(2 * (nodes - 1) - 2 * int(math.log2(nodes)))
    h100 = Cluster.from_node_type("dgx-h100", 64)
    nic_Bps = h100.inter_node_link.bandwidth_Bps
    nics = h100.layout.nic_count()
    big, n = 404e6, 64
    gather_s = big * (n - 1) / n / (nics * nic_Bps)
    f["launch_us"] = us(NCCL_BASE_LATENCY_S)
    f["big_gather_ms"] = ms(alone("dgx-h100", n, big, kind="allgather")[0])
    f["big_gather_bound_ms"] = ms(gather_s, 3)
    f["nics"], f["nic_GBps"] = str(nics), f"{nic_Bps / 1e9:.1f}"
    f["node_GBps"] = f"{nics * nic_Bps / 1e9:.0f}"
    f["big_reduce_ms"] = ms(alone("dgx-h100", n, big)[0])
    f["big_reduce_bound_ms"] = ms(2 * gather_s)
    f["mb_gather_ms"] = ms(alone("dgx-h100", n, 1e6, kind="allgather")[0])
    f["nvlink_latency_us"] = us(h100.link.latency_s, 0)
    f["net_step_us"] = f"{nccl_tuning.HW_LATENCY_US['net']['ring']['Simple']:g}"
    f["gather_steps"], f["cross_steps"] = str(n - 1), str(h100.nodes - 1)
    above = []
    for gpus in (16, 64, 128):
        link = alone("dgx-h100", gpus, big)[0]
        above.append(alone("dgx-h100", gpus, big, fidelity="flow")[0] / link - 1)
    f["flow_above"] = ", ".join(f"{pct(a)}%" for a in above[:-1]) + f" and {pct(above[-1])}%"
    f["small_reduce_ms"] = ms(alone("dgx-h100", n, 1e6)[0], 3)
    f["small_reduce_flow_ms"] = ms(alone("dgx-h100", n, 1e6, fidelity="flow")[0], 3)
    f["small_reduce_ring_flow_ms"] = ms(alone("dgx-h100", n, 1e6, "ring", fidelity="flow")[0])
    return f


def engine_graphs() -> dict[str, str]:
    """Section 'The engine': the graphs benchmarks/engine_bench.py runs, as planned."""
    policy = policies.get("data-parallel")

    def plan(devices, fidelity, replicas, node_type=None, algorithm=None):
        cluster = (Cluster.from_node_type(node_type, devices) if node_type
                   else Cluster.build("v100", devices, "nvlink2"))
        return policy.plan(zoo.get("resnet50", batch=32), cluster, True,
                           **policy.resolve({"collectives": fidelity, "replicas": replicas,
                                             "algorithm": algorithm}))

    flow = list(plan(1024, "flow", "one"))
    wide = [t for t in flow if len(t.resources) > 16]
    by_class = list(plan(1024, "link", "classes", "dgx1-v100", "ring"))
    return {"flow_tasks": f"{len(flow):,}", "wide_tasks": str(len(wide)),
            "wide_ports": span([len(t.resources) for t in wide], lambda v: f"{v:,}"),
            "class_deps": f"{sum(len(t.deps) for t in by_class):,}"}


def _busiest_nic_s(log) -> float:
    busy: dict[str, float] = {}
    for task, start, end in zip(log.tasks, log.start_s, log.end_s, strict=True):
        for r in task.resources:
            if ".nic" in r:
                busy[r] = busy.get(r, 0.0) + end - start
    return max(busy.values())


def tree_limits() -> dict[str, str]:
    """The list 'What the model leaves out at this scale': NCCL's trees and rings alone."""
    f: dict[str, str] = {}
    dgx1 = "dgx1-v100"
    for mib in (25, 38):
        f[f"tree{mib}_ms"] = ms(alone(dgx1, 64, mib * MIB, "tree")[0])
        f[f"tree{mib}_tuned_ms"] = ms(tuned_s(dgx1, 64, mib * MIB, "tree"))
    ratios = [alone(dgx1, 8 * nodes, mib * MIB, "tree")[0] / tuned_s(dgx1, 8 * nodes, mib * MIB,
                                                                     "tree")
              for nodes in (4, 8, 16) for mib in (16, 32, 64)]
    f["tree_above"] = span([r - 1 for r in ratios],
                           lambda v: f"{v * 100:+.0f}").replace("-+", " to +")
    f["max_chunks"] = str(trees.TREE_MAX_CHUNKS)
    capped_s, capped_tasks, _ = alone(dgx1, 64, 25 * MIB, "tree")
    with nccl_chunks():
        fine_s, fine_tasks, _ = alone(dgx1, 64, 25 * MIB, "tree")
    chunk = nccl_tuning.tree_chunk_bytes(25 * MIB, 8, 64, 8, "Simple")
    f["fine_chunk_kib"], f["fine_ms"] = f"{chunk / 1024:.0f}", ms(fine_s)
    f["fine_task_ratio"] = f"{fine_tasks / capped_tasks:.1f}"
    two = [alone(dgx1, 16, mib * MIB, "tree")[0] / tuned_s(dgx1, 16, mib * MIB, "tree")
           for mib in (16, 32, 64)]
    f["two_node_ratio"] = span(two, lambda v: f"{v:.2f}")
    f["tiny_ms"] = ms(alone(dgx1, 64, 64 * 1024)[0], 3)
    f["tiny_tuned_ms"] = ms(tuned_s(dgx1, 64, 64 * 1024), 3)
    f["nic_ring_ms"] = ms(alone(dgx1, 64, 64 * MIB)[0], 1)
    f["nic_ring_tuned_ms"] = ms(tuned_s(dgx1, 64, 64 * MIB))
    f["flat_ring_ms"] = ms(alone(dgx1, 64, 64 * MIB, "ring")[0], 1)
    cloud = "cloud-v100-25gbe"
    seconds, _, log = alone(cloud, 32, 20e6, "tree")
    f["cloud_tree_ms"], f["cloud_nic_ms"] = ms(seconds, 1), ms(_busiest_nic_s(log), 1)
    tree_s, ring_s = alone(cloud, 32, 1e6)[0], alone(cloud, 32, 1e6, "ring")[0]
    f["cloud_mb_tree_ms"], f["cloud_mb_ring_ms"] = ms(tree_s), ms(ring_s)
    f["cloud_mb_slower"] = pct(tree_s / ring_s - 1)
    # where the tuner's choice comes from: its prediction for the tree it picks, and for
    # the ring's Simple protocol, which link by link hides its steps' latency behind the NIC
    nodes = Cluster.from_node_type(cloud, 32)
    fabric = nccl_fabric.fabric_of(nodes, [d.id for d in nodes.devices])
    f["cloud_mb_tree_tuned_ms"] = ms(tuned_s(cloud, 32, 1e6))
    f["cloud_mb_ring_tuned_ms"] = ms(nccl_tuning.model(fabric, "ring", "Simple").time_s(1e6))
    return f


def tasks_by_class() -> dict[str, str]:
    """Tasks of a step by data-parallel's defaults: rings by symmetry class; beyond 64 GPUs a
    step on NCCL's trees flow-level, each tree one task."""
    def tasks(workload, batch, node_type, gpus, algorithm, **opts):
        cluster = Cluster.from_node_type(node_type, gpus)
        return simulate(workload, cluster, "data-parallel", batch=batch, algorithm=algorithm,
                        **opts).summary()["tasks"]
    f = {"resnet_nccl_tasks": f"{tasks('resnet50', 32, 'dgx1-v100', 1024, 'nccl'):,}",
         "resnet_ring_tasks": f"{tasks('resnet50', 32, 'dgx1-v100', 1024, 'ring'):,}"}
    gpt = [tasks("gpt2", 16, "dgx-h100", g, "nccl", precision="amp-bf16") for g in (256, 1024)]
    f["gpt_tasks"] = span(gpt, lambda v: f"{v:,}")
    size = 1 * MIB
    assert tuned("dgx-h100", 256, size).algorithm == "tree"
    f["tree_bucket_mib"] = "1"
    f["tree_full_tasks"] = f"{alone('dgx-h100', 256, size)[1]:,}"
    return f
