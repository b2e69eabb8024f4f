"""Data-parallel scaling of training on V100s: NVLink against 10 Gb Ethernet, and multi-node
clusters of the catalog's node types beside published multi-node measurements.

    python benchmarks/dp_scaling.py [--out dp_scaling.png] [--max-devices 64]
    python benchmarks/dp_scaling.py --clusters [--max-devices 512] [--rank-spread S]
                                    [--rank-tail exponential|lognormal]

The first form prints throughput and speedup over one GPU for 1..64 devices on each link and
writes the curve as a PNG. Expected shape: near-linear on NVLink, communication bound on
10 GbE.

--clusters runs ResNet-50 (FP32, 64 images per GPU, synthetic data) on DGX-1 nodes (100 Gb
InfiniBand) and on cloud nodes of 8 V100s with one 25 Gb Ethernet NIC, from 8 to 512 GPUs,
with DDP's buckets and with Horovod's cycles, over a flat ring, over NCCL's hierarchical
all-reduce and as NCCL 2.8's tuning runs each all-reduce (ring or tree, LL, LL128 or Simple:
algorithm 'nccl'); then the published setups of PUBLISHED on the node types that rebuild them
(on those three and on the paper's own all-reduce where it names one), each figure printed
beside the published one, with every rank alike and with the ranks' step times spread as
--rank-spread says (default published_scaling's FITTED_RANK_SPREAD: a synchronous step waits
for the slowest of N ranks, whose expected lag grows with N).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from _plot import log_log_plot

from simulator import Cluster, simulate
from simulator.policies._data_parallel import RANK_TAILS
from validation.validate.published_scaling import FITTED_RANK_SPREAD


def scaling(link: str, counts: list[int], batch: int = 32) -> list[dict]:
    rows = []
    base = None
    for n in counts:
        r = simulate("resnet50", Cluster.build("v100", n, link), "data-parallel", batch=batch)
        tput = r.throughput_samples_per_s
        base = base or tput
        rows.append({"link": link, "devices": n, "throughput_samples_per_s": tput,
                     "speedup": tput / base,
                     "exposed_communication_s": r.summary()["exposed_communication_s"]})
    return rows


def plot(rows: list[dict], path: str) -> None:
    counts = sorted({r["devices"] for r in rows})
    series = {link: ([r["devices"] for r in rows if r["link"] == link],
                     [r["speedup"] for r in rows if r["link"] == link])
              for link in sorted({r["link"] for r in rows})}
    log_log_plot(series, path, xlabel="V100 GPUs", ylabel="speedup over 1 GPU (throughput)",
                 title="ResNet-50 data-parallel training, batch 32 per GPU", y_base=2,
                 reference=(counts, counts))


@dataclass(frozen=True)
class Published:
    """A published multi-node scaling efficiency and the setup that rebuilds it here."""
    source: str
    node_type: str
    workload: str
    batch: int
    base_gpus: int        # efficiency = throughput at gpus / (gpus / base_gpus x at base)
    gpus: int
    gradient_sync: str
    efficiency: float     # the published figure (a reference, never an output)
    setup: str
    own_algorithm: str | None = None   # the paper's own all-reduce, run beside ALGORITHMS


PUBLISHED = (
    Published("Goyal et al. 2017 (arXiv:1706.02677), section 5.5: ~90% scaling efficiency "
              "from 8 to 256 GPUs", "big-basin-p100", "resnet50", 32, 8, 256, "ddp", 0.90,
              "ResNet-50, 32 images per P100, Caffe2 all-reducing gradients during backprop "
              "(DDP's buckets here), 50 Gb Ethernet, Gloo's recursive halving and doubling "
              "between servers (section 4)", "halving-doubling"),
    Published("Sergeev and Del Balso 2018 (arXiv:1802.05799), section 5, Figure 6: 88% "
              "scaling efficiency for ResNet-101 on 128 GPUs", "pcie-4gpu-p100-25gbe",
              "resnet101", 64, 1, 128, "horovod", 0.88,
              "ResNet-101, 64 images per Pascal GPU (tf_cnn_benchmarks' default), Horovod, "
              "servers of 4 GPUs on 25 Gb Ethernet over TCP"),
)
# The default spread of the ranks' step times, FITTED_RANK_SPREAD, is what
# `python -m validation.validate.published_scaling` fits to NVIDIA's 2- and 4-GPU DGX-1 and
# DGX-2 rows: measured V100 ranks, not these papers' Pascal clusters, whose efficiencies it
# was not fitted to.
ALGORITHMS = ("ring", "hierarchical", "nccl")


def _throughput(node_type: str, gpus: int, workload: str, batch: int, **opts) -> float:
    cluster = Cluster.from_node_type(node_type, gpus)
    r = simulate(workload, cluster, "data-parallel", batch=batch, precision="fp32", **opts)
    return r.throughput_samples_per_s


def cluster_scaling(max_devices: int) -> list[dict]:
    """Scaling efficiency over one GPU on the catalog's multi-node node types."""
    rows = []
    counts = [n for n in (8, 32, 64, 128, 256, 512) if n <= max_devices]
    for node_type in ("dgx1-v100", "cloud-v100-25gbe"):
        for sync in ("ddp", "horovod"):
            one = _throughput(node_type, 1, "resnet50", 64, gradient_sync=sync)
            for algorithm in ALGORITHMS:
                for n in counts:
                    tput = _throughput(node_type, n, "resnet50", 64, gradient_sync=sync,
                                       algorithm=algorithm)
                    rows.append({"node_type": node_type, "gradient_sync": sync,
                                 "algorithm": algorithm, "gpus": n,
                                 "efficiency": tput / (n * one)})
    return rows


def published_comparison(rank_spread: float = FITTED_RANK_SPREAD,
                         rank_tail: str = RANK_TAILS[0],
                         published: tuple[Published, ...] | None = None) -> list[dict]:
    """Each published setup on each algorithm: the simulated efficiency with every rank alike
    ('simulated') and with the ranks' step times spread by `rank_spread` with the tail
    `rank_tail` ('spread'; the base run's ranks spread too: one GPU runs as one rank, eight
    wait for the slowest of 8). `published`: the setups (None: PUBLISHED)."""
    rows = []
    for p in PUBLISHED if published is None else published:
        for algorithm in ALGORITHMS + ((p.own_algorithm,) if p.own_algorithm else ()):
            effs = []
            for spread in (0.0, rank_spread):
                opts = {"gradient_sync": p.gradient_sync, "algorithm": algorithm,
                        "rank_spread": spread, "rank_tail": rank_tail}
                base = _throughput(p.node_type, p.base_gpus, p.workload, p.batch, **opts)
                at = _throughput(p.node_type, p.gpus, p.workload, p.batch, **opts)
                effs.append(at / (p.gpus / p.base_gpus * base))
            rows.append({"source": p.source, "setup": p.setup, "node_type": p.node_type,
                         "algorithm": algorithm, "published": p.efficiency,
                         "simulated": effs[0], "spread": effs[1],
                         "rank_spread": rank_spread, "rank_tail": rank_tail})
    return rows


def scaling_table(rows: list[dict]) -> str:
    """cluster_scaling's rows as --clusters prints them: a line per node type, scheme and
    algorithm, a column per GPU count."""
    counts = sorted({r["gpus"] for r in rows})
    lines = [f"{'node type':18s} {'sync':8s} {'all-reduce':12s} " +
             " ".join(f"{n:>6d}" for n in counts)]
    for key in dict.fromkeys((r["node_type"], r["gradient_sync"], r["algorithm"]) for r in rows):
        effs = {r["gpus"]: r["efficiency"] for r in rows
                if (r["node_type"], r["gradient_sync"], r["algorithm"]) == key}
        lines.append(f"{key[0]:18s} {key[1]:8s} {key[2]:12s} " +
                     " ".join(f"{100 * effs[n]:5.1f}%" for n in counts))
    return "\n".join(lines)


def published_table(rows: list[dict], sources: bool = True) -> str:
    """published_comparison's rows as --clusters prints them (each setup and its source
    after the figures where `sources`)."""
    lines = [f"{'node type':24s} {'all-reduce':16s} {'alike':>6s} {'spread':>6s} "
             f"{'published':>9s}"]
    lines += [f"{r['node_type']:24s} {r['algorithm']:16s} {100 * r['simulated']:5.1f}% "
              f"{100 * r['spread']:5.1f}% {100 * r['published']:8.0f}%"
              + (f"  ({r['setup']}; {r['source']})" if sources else "") for r in rows]
    return "\n".join(lines)


def print_clusters(max_devices: int, rank_spread: float = FITTED_RANK_SPREAD,
                   rank_tail: str = RANK_TAILS[0]) -> None:
    print("ResNet-50, FP32, 64 images per GPU, synthetic data: scaling efficiency "
          "(throughput at N / N x one GPU's)")
    print(scaling_table(cluster_scaling(max_devices)))
    print("\npublished multi-node runs and the model on the node types that rebuild them: "
          f"ranks alike, and ranks spread {rank_spread:g} (rank_spread, {rank_tail} tail)")
    print(published_table(published_comparison(rank_spread, rank_tail)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="dp_scaling.png", help="PNG to write")
    ap.add_argument("--max-devices", type=int, default=None,
                    help="largest GPU count (default 64; with --clusters 512)")
    ap.add_argument("--clusters", action="store_true",
                    help="multi-node node types and published multi-node runs instead")
    ap.add_argument("--rank-spread", type=float, default=FITTED_RANK_SPREAD,
                    help=f"with --clusters, the ranks' spread beside ranks alike in the "
                         f"published runs (log standard deviation, in [0, 1); default "
                         f"{FITTED_RANK_SPREAD}, fitted to NVIDIA's 2- and 4-GPU rows)")
    ap.add_argument("--rank-tail", choices=RANK_TAILS, default=RANK_TAILS[0],
                    help="with --clusters, how the ranks' step times vary (data-parallel "
                         "option rank_tail; default %(default)s)")
    args = ap.parse_args()
    if not 0 <= args.rank_spread < 1:
        ap.error(f"--rank-spread must be in [0, 1), got {args.rank_spread}")
    least = 8 if args.clusters else 1
    if args.max_devices is not None and args.max_devices < least:
        ap.error(f"--max-devices must be at least {least}"
                 f"{' with --clusters' if args.clusters else ''}, got {args.max_devices}")
    if args.clusters:
        print_clusters(args.max_devices or 512, args.rank_spread, args.rank_tail)
        return
    max_devices = args.max_devices or 64
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= max_devices]
    rows = scaling("nvlink2", counts) + scaling("eth10g", counts)
    print(f"{'link':8s} {'devices':>7s} {'samples/s':>10s} {'speedup':>8s} "
          f"{'exposed comm ms':>16s}")
    for r in rows:
        print(f"{r['link']:8s} {r['devices']:7d} {r['throughput_samples_per_s']:10.1f} "
              f"{r['speedup']:8.2f} {r['exposed_communication_s'] * 1e3:16.2f}")
    plot(rows, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
