"""Data-parallel scaling of ResNet-50 training on V100s: NVLink against 10 Gb Ethernet.

    python benchmarks/dp_scaling.py [--out dp_scaling.png] [--max-devices 64]

Prints throughput and speedup over one GPU for 1..64 devices on each link and writes the
curve as a PNG. Expected shape: near-linear on NVLink, communication bound on 10 GbE.
"""
from __future__ import annotations

import argparse

from _plot import log_log_plot

from simulator import Cluster, simulate


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="dp_scaling.png", help="PNG to write")
    ap.add_argument("--max-devices", type=int, default=64)
    args = ap.parse_args()
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= args.max_devices]
    rows = scaling("nvlink2", counts) + scaling("eth10g", counts)
    print(f"{'link':8s} {'devices':>7s} {'samples/s':>10s} {'speedup':>8s} {'exposed comm ms':>16s}")
    for r in rows:
        print(f"{r['link']:8s} {r['devices']:7d} {r['throughput_samples_per_s']:10.1f} "
              f"{r['speedup']:8.2f} {r['exposed_communication_s'] * 1e3:16.2f}")
    plot(rows, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
